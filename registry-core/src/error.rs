//! Errors of `registry-core` and the OCI distribution error codes.
//!
//! [`Error`] is the one error type of this crate. [`Error::code`] maps every variant to the
//! distribution spec's [`ErrorCode`] in exactly one place; [`ErrorCode::status`] gives its HTTP status.
//! [`ErrorBody`] is the serde type of the spec's JSON error body.

use serde::{Deserialize, Serialize};

/// An error from parsing or verifying registry data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a digest of the form `algorithm:encoded`.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The rejected input (truncated to a bounded length).
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The digest is well formed but names an algorithm this registry does not support.
    #[error("unsupported digest algorithm {algorithm:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm {
        /// The algorithm as written.
        algorithm: String,
    },
    /// The content does not hash to the digest it was declared with.
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// The declared digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The content is not of the size it was declared with.
    #[error("size mismatch: expected {expected} bytes, received {actual}")]
    SizeMismatch {
        /// The declared size.
        expected: u64,
        /// The number of bytes received.
        actual: u64,
    },
    /// More bytes arrived than the declared size or a limit allows.
    #[error("size exceeded: more than {limit} bytes")]
    SizeExceeded {
        /// The limit that was passed.
        limit: u64,
    },
    /// Saved verifier state could not be restored.
    #[error("invalid verifier state: {reason}")]
    InvalidVerifierState {
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A repository name outside the distribution spec's grammar.
    #[error("invalid repository name {input:?}: {reason}")]
    InvalidName {
        /// The rejected input (truncated to a bounded length).
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A tag outside `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {input:?}")]
    InvalidTag {
        /// The rejected input (truncated to a bounded length).
        input: String,
    },
    /// A token-auth scope that cannot be parsed.
    #[error("invalid scope {input:?}: {reason}")]
    InvalidScope {
        /// The rejected input (truncated to a bounded length).
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A manifest that is not valid JSON of its declared kind, or breaks a rule of the spec.
    #[error("invalid manifest: {reason}")]
    InvalidManifest {
        /// What is wrong, meant for the client.
        reason: String,
    },
    /// A manifest of a media type the registry does not store (Docker schema 1, unknown types).
    #[error("unsupported manifest media type {media_type:?}: {reason}")]
    UnsupportedManifest {
        /// The media type as given.
        media_type: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

/// Longest rejected input quoted back in an error message.
const QUOTE_LIMIT: usize = 256;

/// Bounds a rejected input before it is quoted in an error (never split inside a character).
pub(crate) fn quote(input: &str) -> String {
    if input.len() <= QUOTE_LIMIT {
        return input.to_owned();
    }
    let mut end = QUOTE_LIMIT;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &input[..end])
}

impl Error {
    /// The distribution spec's error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidDigest { .. } | Error::UnsupportedAlgorithm { .. } | Error::DigestMismatch { .. } => {
                ErrorCode::DigestInvalid
            }
            Error::SizeMismatch { .. } | Error::SizeExceeded { .. } => ErrorCode::SizeInvalid,
            Error::InvalidVerifierState { .. } => ErrorCode::BlobUploadInvalid,
            Error::InvalidName { .. } => ErrorCode::NameInvalid,
            Error::InvalidTag { .. } => ErrorCode::TagInvalid,
            Error::InvalidManifest { .. } => ErrorCode::ManifestInvalid,
            Error::InvalidScope { .. } => ErrorCode::Unauthorized,
            Error::UnsupportedManifest { .. } => ErrorCode::ManifestInvalid,
        }
    }
}

/// The error codes of the OCI distribution spec, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Blob unknown to registry (referenced by a manifest).
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// A tag outside the grammar (distribution's `TAG_INVALID`).
    TagInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    #[serde(rename = "TOOMANYREQUESTS")]
    TooManyRequests,
    /// An unknown error on the server's side (distribution's `UNKNOWN`, status 500): storage
    /// faults, never bad input.
    Unknown,
}

impl ErrorCode {
    /// Every code, in the order of the spec's table.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::TagInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::Unknown,
    ];

    /// The code as it appears in the JSON body, e.g. `BLOB_UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status the spec pairs with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unknown => 500,
        }
    }

    /// The spec's short description of the code.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::TagInvalid => "manifest tag did not match URI",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::Unknown => "unknown error",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the spec's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
    /// Unstructured detail; absent when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

/// The spec's unstructured `detail` of an error: any JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Detail(serde_json::Value);

impl Detail {
    /// A detail from JSON text; `None` when the text is not JSON.
    pub fn from_json(text: &str) -> Option<Detail> {
        serde_json::from_str(text).ok().map(Detail)
    }

    /// A detail of one string.
    pub fn text(text: impl Into<String>) -> Detail {
        Detail(serde_json::Value::String(text.into()))
    }

    /// The detail as JSON text.
    pub fn to_json(&self) -> String {
        self.0.to_string()
    }
}

/// The spec's JSON error body: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors, at least one.
    pub errors: Vec<ErrorInfo>,
}

impl ErrorBody {
    /// A body holding one error.
    pub fn new(code: ErrorCode, message: impl Into<String>, detail: Option<Detail>) -> Self {
        ErrorBody { errors: vec![ErrorInfo { code, message: message.into(), detail }] }
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and enums cannot fail; fall back to a fixed body all the same.
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"errors":[{"code":"UNSUPPORTED","message":"error body could not be encoded"}]}"#.to_vec()
        })
    }
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody::new(e.code(), e.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_the_spec_writes_them() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, code);
        }
    }

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(ErrorCode::BlobUnknown.status(), 404);
        assert_eq!(ErrorCode::ManifestBlobUnknown.status(), 400);
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::Denied.status(), 403);
        assert_eq!(ErrorCode::Unsupported.status(), 405);
        assert_eq!(ErrorCode::TooManyRequests.status(), 429);
    }

    #[test]
    fn body_round_trips_and_omits_missing_detail() {
        let body = ErrorBody::new(ErrorCode::NameInvalid, "bad name", None);
        let json = String::from_utf8(body.to_json()).expect("utf8");
        assert_eq!(json, r#"{"errors":[{"code":"NAME_INVALID","message":"bad name"}]}"#);
        let with_detail = ErrorBody::new(ErrorCode::SizeInvalid, "x", Detail::from_json(r#"{"a": 1}"#));
        let back: ErrorBody = serde_json::from_slice(&with_detail.to_json()).expect("parse");
        assert_eq!(back, with_detail);
    }

    #[test]
    fn quoting_bounds_long_inputs_on_char_boundaries() {
        let long = "é".repeat(300);
        let q = quote(&long);
        assert!(q.len() <= QUOTE_LIMIT + 3);
        assert!(q.ends_with("..."));
    }
}
