//! The error type of the auth crate.

use registry_core::BackendError;

/// An authentication or authorization failure, a refused account change, or a fault behind them.
///
/// Clients see every credential or token failure the same way (401); the variant and its reason
/// are for the log only. Account changes are refused with a message a person can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown account, wrong password or secret, disabled or expired account.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A bearer token that does not verify.
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    /// Too many failed attempts for this account: try later.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// A request that breaks a rule (an invalid name, a short password, a wrong old password…).
    #[error("{0}")]
    Invalid(String),
    /// The object of a request does not exist (`what` names it: "project team").
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The object to create exists already (`what` names it: "user dana").
    #[error("{what} already exists")]
    Conflict {
        /// What exists.
        what: String,
    },
    /// The change is refused in the current state (a project that still holds repositories).
    #[error("{0}")]
    Precondition(String),
    /// The service that checks credentials (a directory) cannot be asked now; the text names it
    /// and says why. Not the caller's mistake: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Unusable configuration (keys, files).
    #[error("auth configuration: {0}")]
    Config(String),
    /// A storage or system fault; [`BackendError::is_retryable`] says whether to retry.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl AuthError {
    /// `what` was not found.
    pub fn not_found(what: impl Into<String>) -> AuthError {
        AuthError::NotFound { what: what.into() }
    }

    /// `what` exists already.
    pub fn conflict(what: impl Into<String>) -> AuthError {
        AuthError::Conflict { what: what.into() }
    }
}

/// Why a token was refused (for the log: clients see one answer for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than any token this registry accepts.
    #[error("too long")]
    TooLong,
    /// Not a JWS compact serialization with a decodable header and claims.
    #[error("malformed")]
    Malformed,
    /// An algorithm no trusted key has (`none`, HMAC, or another key's).
    #[error("algorithm not accepted")]
    Algorithm,
    /// No trusted key has its key id.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Issued by another token service.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Issued for another registry.
    #[error("wrong audience")]
    WrongAudience,
    /// Past its expiry (and any grace).
    #[error("expired")]
    Expired,
    /// Before its `nbf`.
    #[error("not yet valid")]
    NotYetValid,
}
