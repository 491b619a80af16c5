//! The [`QuotaStore`] half of [`PgStore`], and the usage bookkeeping every metadata write does in
//! its own transaction (tables in `migrations/0004_quotas_labels.sql`; the rules are
//! `registry_storage::quota`'s).
//!
//! A write that adds a holder (a blob link, a manifest) calls [`hold`], one that removes one
//! [`release`]; both move the digest's row of `holdings` (its row lock orders concurrent holders
//! of one digest in one project) and gather the change. [`settle`] then takes each changed
//! project's `quotas` row `FOR UPDATE`, applies the limit rule (failing the transaction when the
//! project would pass its limit) and records the warnings crossed. Lock order, to stay free of
//! deadlocks: digest advisory locks, then `holdings` rows, then `quotas` rows, then the event
//! counter (so every writer settles before it records its events).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use registry_core::event::Event;
use registry_storage::quota::{Changes, QuotaStore, project_of};
use registry_storage::{Error, Quota, Result};

use crate::{Cached, PgStore, pg_err};

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn quota_of(row: &tokio_postgres::Row) -> Quota {
    let hard: Option<i64> = row.get("hard");
    let warn: i16 = row.get("warn_percent");
    Quota {
        project: row.get("project"),
        limit: hard.map(u64_of),
        used: u64_of(row.get("used")),
        warn_percent: u8::try_from(warn).unwrap_or(100),
        created_ms: u64_of(row.get("created_ms")),
        updated_ms: u64_of(row.get("updated_ms")),
    }
}

const COLUMNS: &str = "project, hard, used, warn_percent, created_ms, updated_ms";

/// A new holder of `digest` in `repo` (the caller added its link or manifest row): counts the
/// digest in the project when it is its first holder there.
pub(crate) async fn hold(
    txn: &Transaction<'_>,
    repo: &str,
    digest: &str,
    size: u64,
    changes: &mut Changes,
) -> Result<()> {
    let holders: i64 = txn
        .cached_one(
            "INSERT INTO holdings (project, digest, size, holders) VALUES ($1, $2, $3, 1)
             ON CONFLICT (project, digest) DO UPDATE SET holders = holdings.holders + 1
             RETURNING holders",
            &[&project_of(repo), &digest, &i64_of(size) as &(dyn tokio_postgres::types::ToSql + Sync)],
        )
        .await
        .map_err(db("counting a holder"))?
        .get(0);
    if holders == 1 {
        changes.grow(repo, size);
    }
    Ok(())
}

/// A holder of `digest` in `repo` gone (the caller removed its row): takes the digest out of the
/// project with its last holder there.
pub(crate) async fn release(txn: &Transaction<'_>, repo: &str, digest: &str, changes: &mut Changes) -> Result<()> {
    let project = project_of(repo);
    let row = txn
        .cached_opt(
            "UPDATE holdings SET holders = holders - 1 WHERE project = $1 AND digest = $2 RETURNING holders, size",
            &[&project, &digest],
        )
        .await
        .map_err(db("counting a holder"))?;
    let Some(row) = row else { return Ok(()) };
    let (holders, size): (i64, i64) = (row.get(0), row.get(1));
    if holders <= 0 {
        txn.cached_execute("DELETE FROM holdings WHERE project = $1 AND digest = $2", &[&project, &digest])
            .await
            .map_err(db("removing a holding"))?;
        changes.shrink(repo, u64_of(size));
    }
    Ok(())
}

/// Applies `changes` to the quotas (each row locked): [`Error::QuotaExceeded`] when a project
/// would pass its limit (the caller's transaction is then dropped, undoing everything); the
/// warnings crossed are recorded.
pub(crate) async fn settle(txn: &Transaction<'_>, changes: &Changes, now_ms: u64) -> Result<()> {
    let mut warnings = Vec::new();
    for (project, change, repo) in changes.iter() {
        let select = format!("SELECT {COLUMNS} FROM quotas WHERE project = $1 FOR UPDATE");
        let mut row = txn.cached_opt(&select, &[&project]).await.map_err(db("locking a quota"))?;
        if row.is_none() {
            txn.cached_execute(
                "INSERT INTO quotas (project, hard, used, warn_percent, created_ms, updated_ms)
                 VALUES ($1, NULL, 0, $2, $3, $3) ON CONFLICT (project) DO NOTHING",
                &[&project, &i16::from(registry_storage::quota::DEFAULT_WARN_PERCENT), &i64_of(now_ms)],
            )
            .await
            .map_err(db("making a quota"))?;
            row = txn.cached_opt(&select, &[&project]).await.map_err(db("locking a quota"))?;
        }
        let quota = row.map(|r| quota_of(&r)).unwrap_or_else(|| Quota::new(project, now_ms));
        let (after, warning) = quota.admit(change, now_ms, repo)?;
        txn.cached_execute(
            "UPDATE quotas SET used = $2, updated_ms = $3 WHERE project = $1",
            &[&project, &i64_of(after.used), &i64_of(after.updated_ms)],
        )
        .await
        .map_err(db("moving a quota"))?;
        warnings.extend(warning);
    }
    crate::events::record(txn, &warnings).await.map_err(db("recording quota warnings"))?;
    Ok(())
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn quota(&self, project: &str) -> Result<Option<Quota>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(&format!("SELECT {COLUMNS} FROM quotas WHERE project = $1"), &[&project])
            .await
            .map_err(db("reading a quota"))?;
        Ok(row.map(|r| quota_of(&r)))
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(&format!("SELECT {COLUMNS} FROM quotas ORDER BY project"), &[])
            .await
            .map_err(db("listing quotas"))?;
        Ok(rows.iter().map(quota_of).collect())
    }

    async fn set_quota(&self, project: &str, limit: Option<u64>, warn_percent: u8, events: &[Event]) -> Result<Quota> {
        let now_ms = i64_of(self.clock.now_millis());
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let row = txn
            .cached_one(
                &format!(
                    "INSERT INTO quotas (project, hard, used, warn_percent, created_ms, updated_ms)
                     VALUES ($1, $2, 0, $3, $4, $4)
                     ON CONFLICT (project) DO UPDATE
                     SET hard = EXCLUDED.hard, warn_percent = EXCLUDED.warn_percent, updated_ms = EXCLUDED.updated_ms
                     RETURNING {COLUMNS}"
                ),
                &[&project, &limit.map(i64_of), &i16::from(warn_percent), &now_ms],
            )
            .await
            .map_err(db("setting a quota"))?;
        crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        txn.commit().await.map_err(db("committing"))?;
        Ok(quota_of(&row))
    }

    async fn remove_quota(&self, project: &str) -> Result<bool> {
        let client = self.client().await?;
        let removed = client
            .cached_execute("DELETE FROM quotas WHERE project = $1 AND used = 0", &[&project])
            .await
            .map_err(db("removing a quota"))?;
        if removed == 1 {
            return Ok(true);
        }
        let held = client
            .cached_opt("SELECT 1 FROM quotas WHERE project = $1", &[&project])
            .await
            .map_err(db("reading a quota"))?;
        Ok(held.is_none())
    }
}
