//! Without the `tls` feature: no TLS configuration can be made, so every server of this build
//! serves plain HTTP (behind the embedder's own TLS terminator).

use std::path::Path;

/// A certificate or key that cannot be used (here: any, for want of the `tls` feature).
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

impl TlsError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> TlsError {
        TlsError(message.into())
    }
}

/// A server's TLS configuration: none can exist in a build without the `tls` feature.
#[derive(Debug, Clone)]
pub enum TlsConfig {}

impl TlsConfig {
    /// Refused: this build lacks the `tls` feature.
    pub fn from_pem(_: &[u8], _: &[u8]) -> Result<TlsConfig, TlsError> {
        Err(TlsError::new("this build of the registry lacks the `tls` feature"))
    }

    /// Refused: this build lacks the `tls` feature.
    pub fn from_files(_: &Path, _: &Path) -> Result<TlsConfig, TlsError> {
        Self::from_pem(&[], &[])
    }
}
