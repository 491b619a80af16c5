//! Pull policies: what a project may require of a manifest before it is served (content trust:
//! only signed artifacts). The engine asks its [`PullPolicies`] after it found the manifest and
//! before it serves it, on every pull (by tag, by digest, an index's children); a refusal is
//! [`Error::PullDenied`](crate::Error::PullDenied), the spec's `DENIED`.

use async_trait::async_trait;
use registry_core::RepositoryName;

use crate::error::Result;
use crate::meta::ManifestRecord;

/// Decides whether a manifest may be pulled.
#[async_trait]
pub trait PullPolicies: Send + Sync + 'static {
    /// `Ok` when `record` of `repository` may be pulled now; [`Error::PullDenied`] saying why
    /// when not.
    ///
    /// [`Error::PullDenied`]: crate::Error::PullDenied
    async fn admit(&self, repository: &RepositoryName, record: &ManifestRecord) -> Result<()>;
}
