//! The listing index and counts (see `registry_storage::listing`), kept in the transactions of
//! `meta.rs`.
//!
//! | table | key | value |
//! |---|---|---|
//! | `artifacts` | repo `\0` push time newest first (16 hex) `\0` digest | unused |
//! | `artifact_at` | repo `\0` digest | push time of a manifest in `artifacts` |
//! | `repository_stats` | repo | (manifests, artifacts, pulls, created, updated) |
//! | `listed` | project `\0` newest push first (16 hex) `\0` repo | unused: the repositories holding an artifact |
//! | `listed_count` | project | how many repositories `listed` holds for it |
//!
//! Opening a version 4 database builds them from `manifests`, `blob_refs`, `manifest_tags` and
//! `pulls`.

use redb::{ReadableTable, TableDefinition};
use registry_storage::listing::{
    ArtifactPage, RepositoryPage, RepositoryStats, Touched, is_artifact, listed_change, newest_first,
};
use registry_storage::quota::project_of;
use registry_storage::{ManifestRecord, Result};

use crate::tables::{BLOB_REFS, MANIFEST_TAGS, MANIFESTS, PULLS};

const ARTIFACTS: TableDefinition<&str, u8> = TableDefinition::new("artifacts");
const ARTIFACT_AT: TableDefinition<&str, u64> = TableDefinition::new("artifact_at");
type Numbers = (u64, u64, u64, u64, u64);
const REPOSITORY_STATS: TableDefinition<&str, Numbers> = TableDefinition::new("repository_stats");
const LISTED: TableDefinition<&str, u8> = TableDefinition::new("listed");
const LISTED_COUNT: TableDefinition<&str, u64> = TableDefinition::new("listed_count");

fn db_err(e: impl Into<redb::Error>) -> registry_storage::Error {
    crate::handle::db_err(e)
}

fn key(parts: &[&str]) -> String {
    parts.join("\0")
}

/// Creates the tables; builds them from the manifests when opening a version 4 database.
pub(crate) fn prepare(txn: &redb::WriteTransaction, version: u64) -> Result<()> {
    txn.open_table(ARTIFACTS).map_err(db_err)?;
    txn.open_table(ARTIFACT_AT).map_err(db_err)?;
    txn.open_table(REPOSITORY_STATS).map_err(db_err)?;
    txn.open_table(LISTED).map_err(db_err)?;
    txn.open_table(LISTED_COUNT).map_err(db_err)?;
    if version < 5 {
        build(txn)?;
    }
    Ok(())
}

/// Counts every manifest as if it were pushed now, in key order.
fn build(txn: &redb::WriteTransaction) -> Result<()> {
    let manifests: Vec<(String, Vec<u8>)> = {
        let table = txn.open_table(MANIFESTS).map_err(db_err)?;
        let rows = table.iter().map_err(db_err)?.map(|item| {
            let (k, v) = item.map_err(db_err)?;
            Ok((k.value().to_owned(), v.value().to_vec()))
        });
        rows.collect::<Result<_>>()?
    };
    for (k, value) in manifests {
        let Some((repo, _)) = k.split_once('\0') else { continue };
        let record = decode(&value)?;
        let pulls = txn.open_table(PULLS).map_err(db_err)?.get(k.as_str()).map_err(db_err)?.map_or(0, |v| v.value().0);
        let mut touched = Touched::default();
        touched.written(&record, true);
        touched.change.pulls = i64::try_from(pulls).unwrap_or(i64::MAX);
        settle(txn, repo, touched)?;
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<ManifestRecord> {
    serde_json::from_slice(bytes).map_err(|e| registry_storage::Error::corrupt("a manifest record", e))
}

/// What decides whether a manifest is an artifact: its record, whether a manifest of its
/// repository references it, and its tags; `None` when it is not there.
fn facts(
    txn: &redb::WriteTransaction,
    repo: &str,
    digest: &str,
) -> Result<Option<(ManifestRecord, bool, Vec<String>)>> {
    let k = key(&[repo, digest]);
    let record = match txn.open_table(MANIFESTS).map_err(db_err)?.get(k.as_str()).map_err(db_err)? {
        Some(v) => decode(v.value())?,
        None => return Ok(None),
    };
    let referenced = {
        let refs = txn.open_table(BLOB_REFS).map_err(db_err)?;
        let (start, end) = (format!("{digest}\0{repo}\0"), format!("{digest}\0{repo}\x01"));
        refs.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)?.next().is_some()
    };
    // Its tags up to the first that is not cosign's: enough for the rule, and a manifest with
    // 100,000 tags costs one read, not 100,000.
    let mut tags = Vec::new();
    let table = txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
    let (start, end) = (format!("{k}\0"), format!("{k}\x01"));
    for item in table.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)? {
        let (key, _) = item.map_err(db_err)?;
        let tag = key.value()[start.len()..].to_owned();
        let decisive = registry_storage::listing::cosign_tag(&tag).is_none();
        tags.push(tag);
        if decisive {
            break;
        }
    }
    Ok(Some((record, referenced, tags)))
}

/// Recomputes the artifact index for what `touched` names and moves `repo`'s counts and its
/// project's listing; called after everything else a write transaction changed.
pub(crate) fn settle(txn: &redb::WriteTransaction, repo: &str, touched: Touched) -> Result<()> {
    let mut change = touched.change;
    {
        let mut index = txn.open_table(ARTIFACTS).map_err(db_err)?;
        let mut at = txn.open_table(ARTIFACT_AT).map_err(db_err)?;
        for digest in &touched.digests {
            let k = key(&[repo, digest]);
            let now = facts(txn, repo, digest)?.and_then(|(record, referenced, tags)| {
                is_artifact(record.subject.is_some(), referenced, &tags).then_some(record.pushed_at)
            });
            let before = at.get(k.as_str()).map_err(db_err)?.map(|v| v.value());
            if now == before {
                continue;
            }
            if let Some(time) = before {
                index.remove(key(&[repo, &newest_first(time), digest]).as_str()).map_err(db_err)?;
                at.remove(k.as_str()).map_err(db_err)?;
                change.artifacts -= 1;
            }
            if let Some(time) = now {
                index.insert(key(&[repo, &newest_first(time), digest]).as_str(), 0).map_err(db_err)?;
                at.insert(k.as_str(), time).map_err(db_err)?;
                change.artifacts += 1;
            }
        }
    }
    if change.is_empty() {
        return Ok(());
    }
    let mut stats_table = txn.open_table(REPOSITORY_STATS).map_err(db_err)?;
    let old = stats_table.get(repo).map_err(db_err)?.map(|v| RepositoryStats::from_numbers(repo, v.value()));
    let new = change.apply(repo, old.as_ref());
    match &new {
        Some(stats) => stats_table.insert(repo, stats.numbers()).map_err(db_err)?,
        None => stats_table.remove(repo).map_err(db_err)?,
    };
    let project = project_of(repo);
    let mut listed = txn.open_table(LISTED).map_err(db_err)?;
    if let Some(old) = old.as_ref().filter(|o| o.listed()) {
        listed.remove(key(&[project, &newest_first(old.updated), repo]).as_str()).map_err(db_err)?;
    }
    if let Some(new) = new.as_ref().filter(|n| n.listed()) {
        listed.insert(key(&[project, &newest_first(new.updated), repo]).as_str(), 0).map_err(db_err)?;
    }
    let moved = listed_change(old.as_ref(), new.as_ref());
    if moved != 0 {
        let mut counts = txn.open_table(LISTED_COUNT).map_err(db_err)?;
        let count = counts.get(project).map_err(db_err)?.map(|v| v.value()).unwrap_or(0).saturating_add_signed(moved);
        if count == 0 {
            counts.remove(project).map_err(db_err)?;
        } else {
            counts.insert(project, count).map_err(db_err)?;
        }
    }
    Ok(())
}

/// Up to `limit` digests of `repo`'s artifacts after skipping `offset`, and how many it holds.
pub(crate) fn artifact_digests(
    txn: &redb::ReadTransaction,
    repo: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<String>, u64)> {
    let total = repository_stats(txn, repo)?.map_or(0, |s| s.artifacts);
    let (start, end) = (format!("{repo}\0"), format!("{repo}\x01"));
    let index = txn.open_table(ARTIFACTS).map_err(db_err)?;
    let mut out = Vec::new();
    for item in index.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)?.skip(offset).take(limit) {
        let (k, _) = item.map_err(db_err)?;
        if let Some((_, digest)) = k.value().rsplit_once('\0') {
            out.push(digest.to_owned());
        }
    }
    Ok((out, total))
}

/// A repository's counts.
pub(crate) fn repository_stats(txn: &redb::ReadTransaction, repo: &str) -> Result<Option<RepositoryStats>> {
    let table = txn.open_table(REPOSITORY_STATS).map_err(db_err)?;
    Ok(table.get(repo).map_err(db_err)?.map(|v| RepositoryStats::from_numbers(repo, v.value())))
}

/// A page of a project's listed repositories.
pub(crate) fn project_repositories(
    txn: &redb::ReadTransaction,
    project: &str,
    offset: usize,
    limit: usize,
) -> Result<RepositoryPage> {
    let total = txn.open_table(LISTED_COUNT).map_err(db_err)?.get(project).map_err(db_err)?.map_or(0, |v| v.value());
    let (start, end) = (format!("{project}\0"), format!("{project}\x01"));
    let listed = txn.open_table(LISTED).map_err(db_err)?;
    let mut entries = Vec::new();
    for item in listed.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)?.skip(offset).take(limit) {
        let (k, _) = item.map_err(db_err)?;
        if let Some((_, repo)) = k.value().rsplit_once('\0')
            && let Some(stats) = repository_stats(txn, repo)?
        {
            entries.push(stats);
        }
    }
    Ok(RepositoryPage { entries, total })
}

/// The page type the store returns, from its entries.
pub(crate) fn page(entries: Vec<registry_storage::ManifestEntry>, total: u64) -> ArtifactPage {
    ArtifactPage { entries, total }
}
