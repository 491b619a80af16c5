//! The error type of the storage crate, with its mapping to the spec's codes. (HTTP statuses are
//! chosen in one place: `registry-http`'s `error` module.)

use registry_core::fault::Cause;
use registry_core::{BackendError, Digest, ErrorCode};

/// The error a request body yields when it fails mid-stream.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

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
    Body(#[source] BodyError),
    /// A backend failed: I/O, database, object store. [`BackendError::is_retryable`] says whether
    /// the client may retry.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A saved record does not decode: the store is corrupt or from an incompatible version.
    #[error("stored record is corrupt: {what}")]
    Corrupt {
        /// What could not be read.
        what: String,
        /// Why, when a decoder said.
        #[source]
        source: Option<Cause>,
    },
    /// Another request (on another replica) is appending to this upload; retry once it is done.
    #[error("another request is writing to this upload; retry shortly")]
    UploadBusy,
    /// The digest is being deleted by garbage collection; linking or pushing it succeeds once the
    /// collection has passed (retry shortly).
    #[error("{digest} is being garbage-collected; retry shortly")]
    Collecting {
        /// The digest.
        digest: String,
    },
    /// A name another record of its kind already has (a policy's name in its project).
    #[error("{what} already exists")]
    Conflict {
        /// What, named for a person.
        what: String,
    },
    /// No such record (a policy, a job).
    #[error("{what} not found")]
    NotFound {
        /// What, named for a person.
        what: String,
    },
    /// The change would take a project past its storage quota: refused, nothing of it kept.
    #[error(
        "quota exceeded: project {project} uses {} of its {} quota, and this needs {} more; delete \
         artifacts (garbage collection then frees them) or ask an administrator to raise the limit",
        registry_core::units::bytes(*used), registry_core::units::bytes(*limit), registry_core::units::bytes(*needed)
    )]
    QuotaExceeded {
        /// The project.
        project: String,
        /// Its usage before the change.
        used: u64,
        /// Its limit.
        limit: u64,
        /// The bytes the change would add.
        needed: u64,
    },
    /// A tag that an immutability rule protects would move or go.
    #[error("{what}: tag {tag} of {repository} is immutable (rule {rule}); push a new tag instead")]
    TagImmutable {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// What the change was (`pushing another manifest as …`, `deleting …`).
        what: String,
        /// The rule that protects it, for a person.
        rule: String,
    },
    /// A pull a project's policy refuses (content trust: an unsigned artifact).
    #[error("{reason}")]
    PullDenied {
        /// Why, for a person.
        reason: String,
    },
    /// A push a project refuses (a proxy cache takes content only from its upstream).
    #[error("{reason}")]
    PushDenied {
        /// Why, for a person.
        reason: String,
    },
    /// A job that runs in one process at a time (garbage collection) is running in another
    /// process sharing the metadata store (another replica).
    #[error("{job} is running on another replica; try again once it has finished")]
    JobRunning {
        /// The job.
        job: &'static str,
    },
}

impl Error {
    /// The spec's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Core(e) => e.code(),
            Error::BlobUnknown { .. } => ErrorCode::BlobUnknown,
            Error::UploadUnknown => ErrorCode::BlobUploadUnknown,
            Error::UploadInvalid { .. } | Error::RangeInvalid { .. } | Error::Body(_) | Error::UploadBusy => {
                ErrorCode::BlobUploadInvalid
            }
            Error::RangeNotSatisfiable { .. } => ErrorCode::BlobUnknown,
            Error::ManifestUnknown { .. } | Error::ManifestNotAcceptable { .. } => ErrorCode::ManifestUnknown,
            Error::ManifestBlobUnknown { .. } => ErrorCode::ManifestBlobUnknown,
            Error::ManifestDigestMismatch { .. } => ErrorCode::DigestInvalid,
            Error::NameUnknown { .. } => ErrorCode::NameUnknown,
            Error::QuotaExceeded { .. }
            | Error::TagImmutable { .. }
            | Error::PullDenied { .. }
            | Error::PushDenied { .. } => ErrorCode::Denied,
            Error::TooLarge { .. } => ErrorCode::SizeInvalid,
            Error::Backend(_)
            | Error::Corrupt { .. }
            | Error::Collecting { .. }
            | Error::JobRunning { .. }
            | Error::Conflict { .. }
            | Error::NotFound { .. } => ErrorCode::Unknown,
        }
    }

    /// Whether the same request may succeed later (a retryable backend fault, a collection in
    /// progress).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Backend(e) => e.is_retryable(),
            Error::Collecting { .. } | Error::UploadBusy | Error::JobRunning { .. } => true,
            _ => false,
        }
    }

    /// Whether this is a fault of the server rather than of the request.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Error::Backend(_) | Error::Corrupt { .. } | Error::Collecting { .. })
    }

    /// A record that does not decode.
    pub fn corrupt(what: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::Corrupt { what: what.into(), source: Some(source.into()) }
    }

    /// A broken invariant of a store (permanent).
    pub fn invariant(what: impl Into<String>) -> Error {
        Error::Backend(BackendError::message(what.into(), false))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Backend(BackendError::io("storage I/O", e))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Backend(BackendError::permanent("a storage task failed", e))
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
