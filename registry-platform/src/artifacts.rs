//! What each manifest of a repository is to a person: an artifact of its own, a child of an
//! index, or an accessory (a signature, attestation or SBOM) of another — read once from the
//! store's listing of the repository's manifests. The artifacts API shows artifacts with what
//! belongs to them; retention keeps or deletes artifacts (their accessories with them).

use registry_core::{Digest, RepositoryName};
use registry_storage::{ManifestEntry, Registry, Result};

/// Manifests read from the store per call.
const PAGE: usize = 500;

/// Every manifest of a repository (in digest order).
pub async fn all_manifests(registry: &Registry, repository: &RepositoryName) -> Result<Vec<ManifestEntry>> {
    let mut out: Vec<ManifestEntry> = Vec::new();
    loop {
        let after = out.last().map(|m| m.record.digest.clone());
        let page = registry.manifests(repository, after.as_ref(), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// What a manifest is to the artifacts listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An artifact of its own.
    Artifact,
    /// An index's child.
    Child,
    /// An accessory of `subject`, of Harbor's accessory `kind`.
    Accessory {
        /// The subject.
        subject: Digest,
        /// Harbor's accessory kind (`signature.cosign`, …).
        kind: &'static str,
    },
}

pub use registry_storage::listing::cosign_tag;

/// Harbor's accessory kind of a referrer, by its artifact type (the kinds of
/// [`registry_core::kind`]).
pub fn referrer_kind(artifact_type: Option<&str>) -> &'static str {
    use registry_core::kind::{ArtifactKind, COSIGN_SIGNATURE, NOTATION_SIGNATURE, SIGSTORE_BUNDLE};
    let Some(t) = artifact_type else { return "subject.accessory" };
    let t = registry_core::media_type::essence(t);
    match ArtifactKind::of_type(&t) {
        _ if t == NOTATION_SIGNATURE => "signature.notation",
        _ if t == COSIGN_SIGNATURE || t == SIGSTORE_BUNDLE => "signature.cosign",
        ArtifactKind::Sbom => "sbom.harbor",
        ArtifactKind::Attestation => "attestation.in-toto",
        _ => "subject.accessory",
    }
}

/// What `entry` is.
pub fn place(entry: &ManifestEntry) -> Place {
    if let Some(subject) = &entry.record.subject {
        return Place::Accessory {
            subject: subject.clone(),
            kind: referrer_kind(entry.record.artifact_type.as_deref()),
        };
    }
    // Tagged only by the cosign scheme: an accessory of the digest its tag names.
    let cosign: Option<Vec<_>> = entry.tags.iter().map(|t| cosign_tag(t)).collect();
    if let Some((subject, kind)) = cosign.and_then(|found| found.into_iter().next()) {
        return Place::Accessory { subject, kind };
    }
    if !entry.referenced_by.is_empty() {
        return Place::Child;
    }
    Place::Artifact
}

/// The project a repository belongs to (its first path component), if it exists: as read within
/// the last two seconds ([`registry_auth::Accounts::recent_project`]), for what every pull asks.
pub async fn project_of_repository(
    accounts: &registry_auth::Accounts,
    repository: &RepositoryName,
) -> Result<Option<std::sync::Arc<registry_auth::Project>>> {
    accounts.recent_project(repository.first_component()).await.map_err(|e| {
        registry_storage::Error::Backend(registry_core::BackendError::message(format!("reading a project: {e}"), true))
    })
}
