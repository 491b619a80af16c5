//! The [`QuotaStore`] half of [`RedbStore`], and the usage bookkeeping every metadata write does
//! in its own transaction (the rules are `registry_storage::quota`'s).
//!
//! | table | key | value |
//! |---|---|---|
//! | `holdings` | project `\0` digest | (size, holders in the project) |
//! | `quotas` | project | JSON [`Quota`] |
//!
//! A write adds or removes a `holders` entry through [`hold`] and [`release`], which move the
//! digest's holding in its project and gather the change; [`settle`] then applies the changes to
//! the quotas with the limit rule, failing (and so aborting the whole transaction) when a project
//! would pass its limit, and records the warnings crossed. redb has one writer at a time, so the
//! check and the counter move cannot interleave with another push's.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_core::event::Event;
use registry_storage::quota::{Changes, Holding, QuotaStore, project_of};
use registry_storage::{Error, Quota, Result};

use crate::RedbStore;
use crate::tables::{BLOB_LINKS, HOLDERS, MANIFESTS};

const HOLDINGS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("holdings");
const QUOTAS: TableDefinition<&str, &[u8]> = TableDefinition::new("quotas");

fn db_err(e: impl Into<redb::Error>) -> Error {
    crate::handle::db_err(e)
}

fn decode(bytes: &[u8]) -> Result<Quota> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt("a quota", e))
}

fn encode(quota: &Quota) -> Result<Vec<u8>> {
    serde_json::to_vec(quota).map_err(|e| Error::corrupt("a quota", e))
}

fn holding_key(repo: &str, digest: &str) -> String {
    format!("{}\0{digest}", project_of(repo))
}

/// Every key of `holders` (opening an older layout).
pub(crate) fn holder_keys(txn: &redb::WriteTransaction) -> Result<Vec<String>> {
    let table = txn.open_table(HOLDERS).map_err(db_err)?;
    let keys = table.iter().map_err(db_err)?.map(|item| item.map(|(k, _)| k.value().to_owned()).map_err(db_err));
    keys.collect()
}

/// The size of what `repo` holds as `digest`: its link's, or its manifest's.
pub(crate) fn size_held(txn: &redb::WriteTransaction, repo: &str, digest: &str, manifest: bool) -> Result<u64> {
    let k = format!("{repo}\0{digest}");
    if manifest {
        let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
        let value = manifests.get(k.as_str()).map_err(db_err)?;
        Ok(value
            .map(|v| {
                serde_json::from_slice::<registry_storage::ManifestRecord>(v.value())
                    .map_err(|e| Error::corrupt("a manifest record", e))
            })
            .transpose()?
            .map_or(0, |r| r.size))
    } else {
        Ok(txn.open_table(BLOB_LINKS).map_err(db_err)?.get(k.as_str()).map_err(db_err)?.map_or(0, |v| v.value()))
    }
}

/// Sets a `holders` entry; whether it is new.
pub(crate) fn insert_holder(txn: &redb::WriteTransaction, holder_key: &str, since: u64) -> Result<bool> {
    Ok(txn.open_table(HOLDERS).map_err(db_err)?.insert(holder_key, since).map_err(db_err)?.is_none())
}

/// Removes a `holders` entry; whether it was there.
pub(crate) fn remove_holder(txn: &redb::WriteTransaction, holder_key: &str) -> Result<bool> {
    Ok(txn.open_table(HOLDERS).map_err(db_err)?.remove(holder_key).map_err(db_err)?.is_some())
}

/// Creates the tables; from a layout before version 4, counts what every project holds.
pub(crate) fn prepare(txn: &redb::WriteTransaction, version: u64) -> Result<()> {
    txn.open_table(HOLDINGS).map_err(db_err)?;
    txn.open_table(QUOTAS).map_err(db_err)?;
    if version < 4 {
        count_holdings(txn)?;
    }
    Ok(())
}

/// Counts every project's holdings and usage from `holders` (opening a version 3 database).
fn count_holdings(txn: &redb::WriteTransaction) -> Result<()> {
    let holders: Vec<String> = holder_keys(txn)?;
    let mut changes = Changes::default();
    for key in holders {
        let mut parts = key.split('\0');
        let (Some(digest), Some(repo), Some(kind)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let size = size_held(txn, repo, digest, kind == "m")?;
        let mut holdings = txn.open_table(HOLDINGS).map_err(db_err)?;
        let k = holding_key(repo, digest);
        let (size_was, holders) = holdings.get(k.as_str()).map_err(db_err)?.map(|v| v.value()).unwrap_or_default();
        let mut holding = Holding { size: size_was, holders };
        changes.grow(repo, holding.hold(size));
        holdings.insert(k.as_str(), (holding.size, holding.holders)).map_err(db_err)?;
    }
    // Existing content is counted even over a limit (there is none yet).
    let mut quotas = txn.open_table(QUOTAS).map_err(db_err)?;
    for (project, change, _) in changes.iter() {
        let quota = Quota { used: change.grow, ..Quota::new(project, 0) };
        quotas.insert(project, encode(&quota)?.as_slice()).map_err(db_err)?;
    }
    Ok(())
}

/// Adds the holder `digest` of `repo` (a manifest or a blob link) since `since`, counting the
/// digest in its project when it is new there. The holder key is the caller's (`holders`).
pub(crate) fn hold(
    txn: &redb::WriteTransaction,
    holder_key: &str,
    repo: &str,
    digest: &str,
    size: u64,
    since: u64,
    changes: &mut Changes,
) -> Result<()> {
    let new = insert_holder(txn, holder_key, since)?;
    if new {
        let mut holdings = txn.open_table(HOLDINGS).map_err(db_err)?;
        let k = holding_key(repo, digest);
        let (was, holders) = holdings.get(k.as_str()).map_err(db_err)?.map(|v| v.value()).unwrap_or_default();
        let mut holding = Holding { size: was, holders };
        changes.grow(repo, holding.hold(size));
        holdings.insert(k.as_str(), (holding.size, holding.holders)).map_err(db_err)?;
    }
    Ok(())
}

/// Removes the holder, taking the digest out of its project with its last holder there.
pub(crate) fn release(
    txn: &redb::WriteTransaction,
    holder_key: &str,
    repo: &str,
    digest: &str,
    changes: &mut Changes,
) -> Result<()> {
    if !remove_holder(txn, holder_key)? {
        return Ok(());
    }
    let mut holdings = txn.open_table(HOLDINGS).map_err(db_err)?;
    let k = holding_key(repo, digest);
    let Some((size, holders)) = holdings.get(k.as_str()).map_err(db_err)?.map(|v| v.value()) else { return Ok(()) };
    let mut holding = Holding { size, holders };
    changes.shrink(repo, holding.release());
    if holding.holders == 0 {
        holdings.remove(k.as_str()).map_err(db_err)?;
    } else {
        holdings.insert(k.as_str(), (holding.size, holding.holders)).map_err(db_err)?;
    }
    Ok(())
}

/// Applies `changes` to the quotas: [`Error::QuotaExceeded`] (the caller's transaction then
/// aborts) when a project would pass its limit; the warnings crossed are recorded.
pub(crate) fn settle(txn: &redb::WriteTransaction, changes: &Changes, now_ms: u64) -> Result<()> {
    let mut warnings: Vec<Event> = Vec::new();
    {
        let mut quotas = txn.open_table(QUOTAS).map_err(db_err)?;
        for (project, change, repo) in changes.iter() {
            let quota = match quotas.get(project).map_err(db_err)? {
                Some(v) => decode(v.value())?,
                None => Quota::new(project, now_ms),
            };
            let (after, warning) = quota.admit(change, now_ms, repo)?;
            quotas.insert(project, encode(&after)?.as_slice()).map_err(db_err)?;
            warnings.extend(warning);
        }
    }
    if !warnings.is_empty() {
        crate::events::record::<Error>(txn, &warnings)?;
    }
    Ok(())
}

#[async_trait]
impl QuotaStore for RedbStore {
    async fn quota(&self, project: &str) -> Result<Option<Quota>> {
        let project = project.to_owned();
        self.db
            .read(move |txn| {
                let quotas = txn.open_table(QUOTAS).map_err(db_err)?;
                let value = quotas.get(project.as_str()).map_err(db_err)?;
                value.map(|v| decode(v.value())).transpose()
            })
            .await
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        self.db
            .read(move |txn| {
                let quotas = txn.open_table(QUOTAS).map_err(db_err)?;
                let mut out = Vec::new();
                for item in quotas.iter().map_err(db_err)? {
                    let (_, v) = item.map_err(db_err)?;
                    out.push(decode(v.value())?);
                }
                Ok(out)
            })
            .await
    }

    async fn set_quota(&self, project: &str, limit: Option<u64>, warn_percent: u8, events: &[Event]) -> Result<Quota> {
        let (project, events) = (project.to_owned(), events.to_vec());
        let now_ms = self.clock.now_millis();
        self.db
            .write(move |txn| {
                let quota = {
                    let mut quotas = txn.open_table(QUOTAS).map_err(db_err)?;
                    let mut quota = match quotas.get(project.as_str()).map_err(db_err)? {
                        Some(v) => decode(v.value())?,
                        None => Quota::new(&project, now_ms),
                    };
                    quota.limit = limit;
                    quota.warn_percent = warn_percent;
                    quota.updated_ms = now_ms;
                    quotas.insert(project.as_str(), encode(&quota)?.as_slice()).map_err(db_err)?;
                    quota
                };
                crate::events::record::<Error>(txn, &events)?;
                Ok(quota)
            })
            .await
    }

    async fn remove_quota(&self, project: &str) -> Result<bool> {
        let project = project.to_owned();
        self.db
            .write(move |txn| {
                let mut quotas = txn.open_table(QUOTAS).map_err(db_err)?;
                let used = match quotas.get(project.as_str()).map_err(db_err)? {
                    Some(v) => decode(v.value())?.used,
                    None => 0,
                };
                if used > 0 {
                    return Ok(false);
                }
                quotas.remove(project.as_str()).map_err(db_err)?;
                Ok(true)
            })
            .await
    }
}
