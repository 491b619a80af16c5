//! [`BackendError`]: a failure of whatever a store runs on (a disk, a database, an object store),
//! with its cause kept and the one fact callers act on: whether retrying can succeed.
//!
//! Every storage and account backend reports its faults through this one type, so the HTTP layer
//! maps them in one place (a retryable fault is 503 with `Retry-After`, a permanent one 500) and
//! nothing upstream matches on message text.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::io;

/// The cause of a [`BackendError`].
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// A backend failed. Opaque, with predicates ([`BackendError::is_retryable`],
/// [`BackendError::io_kind`]) and the cause as [`std::error::Error::source`].
#[derive(Debug)]
pub struct BackendError {
    context: Cow<'static, str>,
    retryable: bool,
    source: Option<Cause>,
}

impl BackendError {
    /// A permanent failure while doing `context` (retrying the same request fails the same way).
    pub fn permanent(context: impl Into<Cow<'static, str>>, source: impl Into<Cause>) -> BackendError {
        BackendError { context: context.into(), retryable: false, source: Some(source.into()) }
    }

    /// A failure that may clear: a lost connection, a database restarting, a file being reopened.
    pub fn retryable(context: impl Into<Cow<'static, str>>, source: impl Into<Cause>) -> BackendError {
        BackendError { context: context.into(), retryable: true, source: Some(source.into()) }
    }

    /// A failure with no underlying error to keep (an invariant broken, a state refused).
    pub fn message(context: impl Into<Cow<'static, str>>, retryable: bool) -> BackendError {
        BackendError { context: context.into(), retryable, source: None }
    }

    /// An I/O failure: retryable when its kind says the condition is passing (timeouts, lost
    /// connections, interruptions), permanent otherwise.
    pub fn io(context: impl Into<Cow<'static, str>>, source: io::Error) -> BackendError {
        let retryable = matches!(
            source.kind(),
            io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::BrokenPipe
        );
        BackendError { context: context.into(), retryable, source: Some(Box::new(source)) }
    }

    /// The same failure, marked retryable (a caller that knows the backend recovers by itself).
    pub fn into_retryable(mut self) -> BackendError {
        self.retryable = true;
        self
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The kind of the underlying I/O error, when the cause is one (at any depth).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        let mut cause: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|c| c as _);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<io::Error>() {
                return Some(io.kind());
            }
            cause = c.source();
        }
        None
    }

    /// What was being done when it failed.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|c| c as _)
    }
}

impl From<io::Error> for BackendError {
    fn from(e: io::Error) -> Self {
        BackendError::io("I/O", e)
    }
}

/// An error with its causes, as a person reads it: `what: why: deeper why`.
pub fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cause_and_its_kind() {
        let e = BackendError::io("writing blob", io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "writing blob: disk full");
        assert!(e.source().is_some());
        let e = BackendError::io("reading", io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert!(e.is_retryable());
        let wrapped = BackendError::permanent("outer", BackendError::io("inner", io::Error::other("x")));
        assert_eq!(wrapped.io_kind(), Some(io::ErrorKind::Other), "found at depth");
        assert!(BackendError::message("refused", true).is_retryable());
    }
}
