//! The error type of the auth crate.

/// An authentication or authorization failure, or a fault behind it.
///
/// Clients see every credential or token failure the same way (401); the variant and its reason
/// are for the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown account, wrong password or secret, disabled or expired account.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A bearer token that does not verify.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// Why (log only).
        reason: &'static str,
    },
    /// Too many failed attempts for this account: try later.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// A request to the accounts API that breaks a rule (name taken, unknown project, …).
    #[error("{0}")]
    Invalid(String),
    /// The object of a management request does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Unusable configuration (keys, files).
    #[error("auth configuration: {0}")]
    Config(String),
    /// A storage or system fault.
    #[error("auth backend failed: {0}")]
    Backend(String),
}
