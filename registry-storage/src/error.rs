//! The error type of the storage crate, with its mapping to the spec's codes and statuses.

use registry_core::{Digest, ErrorCode};

/// An error from a store or the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input caught by a `registry-core` parser or the digest verifier.
    #[error(transparent)]
    Core(#[from] registry_core::Error),
    /// The blob is not in the repository (or not in the store).
    #[error("blob unknown to registry: {digest}")]
    BlobUnknown {
        /// The blob asked for.
        digest: Digest,
    },
    /// No upload session with this id in this repository.
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    /// The upload request is inconsistent (reason for the client).
    #[error("blob upload invalid: {reason}")]
    UploadInvalid {
        /// What is wrong.
        reason: String,
    },
    /// A chunk that does not start at the upload's current offset: 416 with the current range.
    #[error("chunk out of order: upload is at offset {offset}")]
    RangeInvalid {
        /// The offset the upload is at.
        offset: u64,
    },
    /// A byte range outside the blob: 416.
    #[error("requested range not satisfiable (blob has {size} bytes)")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// No such manifest or tag in the repository.
    #[error("manifest unknown to registry: {reference}")]
    ManifestUnknown {
        /// The tag or digest asked for.
        reference: String,
    },
    /// The manifest exists but none of the client's Accept types matches it.
    #[error("manifest of type {media_type} is not among the accepted types")]
    ManifestNotAcceptable {
        /// The stored manifest's media type.
        media_type: String,
    },
    /// A manifest references a blob or manifest that is not in the repository.
    #[error("manifest references {digest}, which is unknown to this repository")]
    ManifestBlobUnknown {
        /// The missing reference.
        digest: Digest,
    },
    /// A manifest pushed by digest that hashes to another digest.
    #[error("manifest digest mismatch: pushed as {expected}, content is {actual}")]
    ManifestDigestMismatch {
        /// The digest in the URL.
        expected: Digest,
        /// The digest of the content.
        actual: Digest,
    },
    /// The repository has no tags, manifests or blobs.
    #[error("repository name not known to registry: {name}")]
    NameUnknown {
        /// The repository.
        name: String,
    },
    /// A request body over a configured limit: 413.
    #[error("{what} larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The request body failed while it was read (client disconnected, stalled or sent a broken body).
    #[error("request body failed: {0}")]
    Body(String),
    /// A backend failed: I/O, database. The client may retry.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A saved record does not decode: the store is corrupt or from an incompatible version.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The operation conflicts with work in progress (a blob being garbage-collected); retrying
    /// shortly succeeds.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// The spec's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Core(e) => e.code(),
            Error::BlobUnknown { .. } => ErrorCode::BlobUnknown,
            Error::UploadUnknown => ErrorCode::BlobUploadUnknown,
            Error::UploadInvalid { .. } | Error::RangeInvalid { .. } | Error::Body(_) => ErrorCode::BlobUploadInvalid,
            Error::RangeNotSatisfiable { .. } => ErrorCode::BlobUnknown,
            Error::ManifestUnknown { .. } | Error::ManifestNotAcceptable { .. } => ErrorCode::ManifestUnknown,
            Error::ManifestBlobUnknown { .. } => ErrorCode::ManifestBlobUnknown,
            Error::ManifestDigestMismatch { .. } => ErrorCode::DigestInvalid,
            Error::NameUnknown { .. } => ErrorCode::NameUnknown,
            Error::TooLarge { .. } => ErrorCode::SizeInvalid,
            Error::Backend(_) | Error::Corrupt(_) | Error::Unavailable(_) => ErrorCode::Unknown,
        }
    }

    /// The HTTP status: the code's, except where the spec asks for another.
    pub fn status(&self) -> u16 {
        match self {
            Error::RangeInvalid { .. } | Error::RangeNotSatisfiable { .. } => 416,
            Error::TooLarge { .. } => 413,
            Error::Unavailable(_) => 503,
            // An unsupported digest algorithm, schema 1 or an unknown manifest type: the spec's
            // 400 with the code, rather than the 405 of UNSUPPORTED.
            _ => self.code().status(),
        }
    }

    /// Whether this is a fault of the server (5xx), to be logged as such.
    pub fn is_server_fault(&self) -> bool {
        self.status() >= 500
    }

    pub(crate) fn backend(e: impl std::fmt::Display) -> Error {
        Error::Backend(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Backend(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
