//! Pull policies: what a project may require of a manifest before it is served (content trust:
//! only signed artifacts; vulnerability prevention). The engine asks each of its [`PullPolicies`]
//! in turn after it found the manifest and before it serves it, on every pull (by tag, by
//! digest, an index's children); a refusal is [`Error::PullDenied`](crate::Error::PullDenied),
//! the spec's `DENIED`. The puller is named, so that a policy can let the registry's own
//! delegates (a scanner pulling what it was asked to scan) through.

use async_trait::async_trait;
use registry_core::RepositoryName;
use registry_core::event::Operator;

use crate::error::Result;
use crate::meta::ManifestRecord;

/// Decides whether a manifest may be pulled.
#[async_trait]
pub trait PullPolicies: Send + Sync + 'static {
    /// `Ok` when `record` of `repository` may be pulled now by `puller`; [`Error::PullDenied`]
    /// saying why when not.
    ///
    /// [`Error::PullDenied`]: crate::Error::PullDenied
    async fn admit(&self, repository: &RepositoryName, record: &ManifestRecord, puller: &Operator) -> Result<()>;
}
