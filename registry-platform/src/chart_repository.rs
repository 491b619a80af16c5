//! A classic Helm chart repository (`index.yaml` and the chart archives) generated from the OCI
//! charts of a project's repositories, so `helm repo add` works beside `helm pull oci://`.
//! Nothing is stored: the index is made from the manifests and the chart configs (cached by
//! digest in [`Additions`]), and an archive is the chart layer's blob.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use registry_core::chart::ChartMetadata;
use registry_core::kind::ArtifactKind;
use registry_core::{Descriptor, RepositoryName};
use registry_storage::Registry;
use serde::Serialize;

use crate::additions::{AdditionError, Additions, kind_of};
use crate::artifacts::all_manifests;

/// One version of a chart, as the index lists it.
#[derive(Debug, Clone)]
pub struct ChartVersion {
    /// Its metadata.
    pub metadata: ChartMetadata,
    /// The repository holding it.
    pub repository: RepositoryName,
    /// Its manifest's digest.
    pub manifest: registry_core::Digest,
    /// When it was pushed (seconds since the epoch).
    pub pushed_at: u64,
    /// The layer holding its archive.
    pub archive: Descriptor,
    /// The layer holding its provenance file, if pushed.
    pub provenance: Option<Descriptor>,
}

impl ChartVersion {
    /// The archive's file name in the repository: `<name>-<version>.tgz` (Helm's).
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.metadata.name, self.metadata.version)
    }
}

/// Every chart version in `repositories`: newest push first, one per (name, version). Charts
/// whose config cannot be read are left out (their artifacts' additions say why).
pub async fn chart_versions(
    registry: &Registry,
    additions: &Additions,
    repositories: &[RepositoryName],
) -> Result<Vec<ChartVersion>, registry_storage::Error> {
    let mut out: Vec<ChartVersion> = Vec::new();
    for repository in repositories {
        for entry in all_manifests(registry, repository).await? {
            if kind_of(&entry.record) != ArtifactKind::Chart {
                continue;
            }
            match additions.chart(registry, repository, &entry.record).await {
                Ok(summary) => out.push(ChartVersion {
                    metadata: summary.metadata.clone(),
                    repository: repository.clone(),
                    manifest: entry.record.digest.clone(),
                    pushed_at: entry.record.pushed_at,
                    archive: summary.archive.clone(),
                    provenance: summary.provenance.clone(),
                }),
                Err(AdditionError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::debug!(repository = %repository, digest = %entry.record.digest, error = %e, "chart left out of the index")
                }
            }
        }
    }
    out.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.archive.digest.cmp(&b.archive.digest)));
    let mut seen = std::collections::HashSet::new();
    out.retain(|v| seen.insert((v.metadata.name.clone(), v.metadata.version.clone())));
    Ok(out)
}

/// The repository's `index.yaml`: Helm's index file (`apiVersion: v1`), each chart's versions
/// newest SemVer first, archive URLs relative to the index (`charts/<name>-<version>.tgz`).
pub fn index_yaml(versions: &[ChartVersion], generated_at: u64) -> String {
    #[derive(Serialize)]
    struct Index<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        entries: BTreeMap<&'a str, Vec<Entry<'a>>>,
        generated: String,
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        #[serde(flatten)]
        metadata: &'a ChartMetadata,
        urls: Vec<String>,
        created: String,
        digest: String,
    }
    let mut entries: BTreeMap<&str, Vec<(&ChartVersion, Entry)>> = BTreeMap::new();
    for v in versions {
        let entry = Entry {
            metadata: &v.metadata,
            urls: vec![format!("charts/{}", v.file_name())],
            created: registry_core::time::rfc3339(v.pushed_at),
            digest: v.archive.digest.hex().to_owned(),
        };
        entries.entry(v.metadata.name.as_str()).or_default().push((v, entry));
    }
    let entries = entries
        .into_iter()
        .map(|(name, mut list)| {
            list.sort_by(|(a, _), (b, _)| compare_versions(&b.metadata.version, &a.metadata.version));
            (name, list.into_iter().map(|(_, e)| e).collect())
        })
        .collect();
    let index = Index { api_version: "v1", entries, generated: registry_core::time::rfc3339(generated_at) };
    serde_norway::to_string(&index).unwrap_or_default()
}

/// SemVer precedence of two versions (a leading `v` and build metadata ignored; what does not
/// parse as numbers compares as text).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<&str>, Option<&str>) {
        let v = v.trim_start_matches('v');
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (core.split('.').collect(), Some(pre)),
            None => (v.split('.').collect(), None),
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => a.cmp(b),
        }
    }
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    for i in 0..core_a.len().max(core_b.len()) {
        let ordering = part(core_a.get(i).unwrap_or(&"0"), core_b.get(i).unwrap_or(&"0"));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('.').collect(), y.split('.').collect());
            for (p, q) in xs.iter().zip(&ys) {
                let ordering = part(p, q);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            xs.len().cmp(&ys.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_semver_precedence() {
        let mut list = vec!["1.10.0", "1.2.0", "v2.0.0-rc.1", "2.0.0", "1.2.0-alpha", "2.0.0-rc.10", "2.0.0-rc.2"];
        list.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(list, ["2.0.0", "2.0.0-rc.10", "2.0.0-rc.2", "v2.0.0-rc.1", "1.10.0", "1.2.0", "1.2.0-alpha"]);
    }
}
