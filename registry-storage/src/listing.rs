//! Listings whose cost grows with the page, not with the repository: which manifests are
//! artifacts (the rule), and the counts each store keeps beside its index of them.
//!
//! Every store keeps, in the transaction of each write:
//!
//! - an **artifact index** per repository, newest push first: the manifests [`is_artifact`]
//!   accepts, so Harbor's artifacts page reads one page of it;
//! - a **[`RepositoryStats`]** record per repository (manifests, artifacts, pulls, first and newest
//!   push), so the repositories page and a repository's summary read one record;
//! - per project, its **listed repositories** (those holding an artifact) newest push first and
//!   their count, so the repositories page and the project summary read one page and one number.
//!
//! A write names the manifests whose facts it changed (pushed, deleted, tagged, untagged, or
//! referenced by an index pushed or deleted): the store recomputes [`is_artifact`] for each,
//! inside the transaction and after everything else it wrote, and moves the index and the counts
//! by the difference ([`StatsChange`]). On a store written by several processes at once
//! (PostgreSQL), the recomputation runs after taking the repository's record lock, so the last
//! writer of a repository sees what every earlier one committed.

use registry_core::Digest;

/// The cosign tag scheme: `sha256-<hex>.sig` (signature), `.att` (attestation), `.sbom`; the
/// digest it names and Harbor's accessory kind.
pub fn cosign_tag(tag: &str) -> Option<(Digest, &'static str)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, kind) = rest.split_once('.')?;
    let kind = match kind {
        "sig" => "signature.cosign",
        "att" => "attestation.cosign",
        "sbom" => "sbom.cosign",
        _ => return None,
    };
    Some((Digest::parse(&format!("sha256:{hex}")).ok()?, kind))
}

/// Whether a manifest is an artifact of its own in Harbor's listings: it has no subject (else
/// it is an accessory of it), no manifest of its repository references it (else it is an index's
/// child), and it is not tagged only by the cosign scheme (else it is an accessory of the digest
/// its tag names).
pub fn is_artifact<T: AsRef<str>>(has_subject: bool, referenced: bool, tags: &[T]) -> bool {
    if has_subject || referenced {
        return false;
    }
    tags.is_empty() || !tags.iter().all(|t| cosign_tag(t.as_ref()).is_some())
}

/// A repository's counts, kept by its store with every write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryStats {
    /// The repository.
    pub name: String,
    /// Its manifests (artifacts, children, accessories).
    pub manifests: u64,
    /// Its artifacts ([`is_artifact`]).
    pub artifacts: u64,
    /// Pulls of its manifests (those still there).
    pub pulls: u64,
    /// When its first manifest was pushed, in seconds since the Unix epoch (since it last held
    /// none).
    pub created: u64,
    /// When its newest manifest was pushed.
    pub updated: u64,
}

impl RepositoryStats {
    /// Whether the repository is listed in its project (it holds an artifact: Harbor deletes a
    /// repository whose last artifact goes).
    pub fn listed(&self) -> bool {
        self.artifacts > 0
    }

    /// The stats as five numbers (manifests, artifacts, pulls, created, updated), the way the
    /// embedded store keeps them.
    pub fn numbers(&self) -> (u64, u64, u64, u64, u64) {
        (self.manifests, self.artifacts, self.pulls, self.created, self.updated)
    }

    /// The stats of `name` from [`RepositoryStats::numbers`].
    pub fn from_numbers(
        name: &str,
        (manifests, artifacts, pulls, created, updated): (u64, u64, u64, u64, u64),
    ) -> Self {
        RepositoryStats { name: name.to_owned(), manifests, artifacts, pulls, created, updated }
    }
}

/// What one write changes in its repository's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsChange {
    /// Manifests added (negative: removed).
    pub manifests: i64,
    /// Artifacts added (negative: removed), as the recomputation found.
    pub artifacts: i64,
    /// Pulls counted (negative: those of removed manifests).
    pub pulls: i64,
    /// The push time of a manifest written.
    pub pushed: Option<u64>,
}

impl StatsChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == StatsChange::default()
    }

    /// The stats after this change of `old` (`None`: the repository had none); `None` when it
    /// holds no manifest afterwards (its record goes).
    pub fn apply(&self, name: &str, old: Option<&RepositoryStats>) -> Option<RepositoryStats> {
        let add = |n: u64, d: i64| n.saturating_add_signed(d);
        let mut stats = old.cloned().unwrap_or_else(|| RepositoryStats { name: name.to_owned(), ..Default::default() });
        stats.manifests = add(stats.manifests, self.manifests);
        stats.artifacts = add(stats.artifacts, self.artifacts).min(stats.manifests);
        stats.pulls = add(stats.pulls, self.pulls);
        if let Some(pushed) = self.pushed {
            if old.is_none_or(|o| o.manifests == 0) {
                stats.created = pushed;
            }
            stats.created = stats.created.min(pushed);
            stats.updated = stats.updated.max(pushed);
        }
        (stats.manifests > 0).then_some(stats)
    }
}

/// How a write moves its project's count of listed repositories.
pub fn listed_change(old: Option<&RepositoryStats>, new: Option<&RepositoryStats>) -> i64 {
    i64::from(new.is_some_and(RepositoryStats::listed)) - i64::from(old.is_some_and(RepositoryStats::listed))
}

/// What one write touched in one repository: the manifests whose facts it changed (the store
/// recomputes [`is_artifact`] for each) and the counts it moved besides the artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// The manifests (digests) to recompute.
    pub digests: std::collections::BTreeSet<String>,
    /// The counts it moved.
    pub change: StatsChange,
}

impl Touched {
    /// A manifest written (`new`: it was not there before): it and what it references.
    pub fn written(&mut self, record: &crate::ManifestRecord, new: bool) {
        self.digests.insert(record.digest.to_string());
        self.digests.extend(record.references.iter().map(Digest::to_string));
        self.change.manifests += i64::from(new);
        self.change.pushed = Some(self.change.pushed.unwrap_or(0).max(record.pushed_at));
    }

    /// A manifest removed, with the pulls it had: it and what it referenced.
    pub fn removed(&mut self, record: &crate::ManifestRecord, pulls: u64) {
        self.digests.insert(record.digest.to_string());
        self.digests.extend(record.references.iter().map(Digest::to_string));
        self.change.manifests -= 1;
        self.change.pulls -= i64::try_from(pulls).unwrap_or(i64::MAX);
    }

    /// A manifest whose tags changed.
    pub fn retagged(&mut self, digest: &str) {
        self.digests.insert(digest.to_owned());
    }

    /// Whether it touched nothing.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty() && self.change.is_empty()
    }
}

/// A key part that orders times newest first in a store that sorts keys as text.
pub fn newest_first(time: u64) -> String {
    format!("{:016x}", u64::MAX - time)
}

/// One page of a repository's artifacts, newest push first, and how many it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPage {
    /// The page.
    pub entries: Vec<crate::ManifestEntry>,
    /// How many artifacts the repository holds.
    pub total: u64,
}

/// One page of a project's listed repositories, newest push first, and how many it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPage {
    /// The page.
    pub entries: Vec<RepositoryStats>,
    /// How many repositories the project lists.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_artifact_rule() {
        let sig = format!("sha256-{HEX}.sig");
        assert!(is_artifact::<&str>(false, false, &[]));
        assert!(is_artifact(false, false, &["v1"]));
        assert!(is_artifact(false, false, &["v1", sig.as_str()]), "a person's tag makes it an artifact");
        assert!(!is_artifact(false, false, &[sig.as_str()]));
        assert!(!is_artifact::<&str>(true, false, &[]));
        assert!(!is_artifact(false, true, &["v1"]));
        assert!(is_artifact(false, false, &["sha256-abc.sig"]), "not a digest: an ordinary tag");
    }

    #[test]
    fn stats_follow_their_changes() {
        let first = StatsChange { manifests: 1, artifacts: 1, pulls: 0, pushed: Some(100) }.apply("p/r", None);
        let first = first.expect("one manifest");
        assert_eq!((first.created, first.updated, first.artifacts), (100, 100, 1));
        let second = StatsChange { manifests: 1, artifacts: 0, pulls: 3, pushed: Some(200) }.apply("p/r", Some(&first));
        let second = second.expect("two manifests");
        assert_eq!((second.created, second.updated, second.pulls, second.manifests), (100, 200, 3, 2));
        assert_eq!(listed_change(None, Some(&second)), 1);
        let gone = StatsChange { manifests: -2, artifacts: -1, pulls: -3, pushed: None }.apply("p/r", Some(&second));
        assert_eq!(gone, None);
        assert_eq!(listed_change(Some(&second), gone.as_ref()), -1);
        assert!(newest_first(2) < newest_first(1));
    }
}
