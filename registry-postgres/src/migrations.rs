//! The schema's migrations, embedded in the binary and applied at start. Several replicas starting
//! at once apply each migration once: they take turns on an advisory lock, and each migration
//! records its version in the same transaction as its changes.

use registry_core::BackendError;

use crate::{PgStore, pg_err};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_jobs_policies.sql")),
    (3, include_str!("../migrations/0003_pulls.sql")),
    (4, include_str!("../migrations/0004_quotas_labels.sql")),
    (5, include_str!("../migrations/0005_scan_reports.sql")),
    (6, include_str!("../migrations/0006_user_groups.sql")),
    (7, include_str!("../migrations/0007_oidc_subjects.sql")),
    (8, include_str!("../migrations/0008_listing.sql")),
    (9, include_str!("../migrations/0009_jobs_by_kind.sql")),
    (10, include_str!("../migrations/0010_finished_jobs_by_kind.sql")),
];

/// The advisory lock the migrations are applied under.
const LOCK: i64 = 0x7265_6769_7374_7279; // "registry"

/// The newest schema version this program knows.
pub(crate) const CURRENT: i32 = 10;

/// Applies every migration the database lacks.
pub(crate) async fn apply(store: &PgStore) -> Result<(), BackendError> {
    let mut client = store.client().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(|e| pg_err("waiting for the migration lock", e))?;
    let result = apply_locked(&mut client).await;
    // The lock goes with the session otherwise; release it for the next replica either way.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await;
    result?;
    unlocked.map_err(|e| pg_err("releasing the migration lock", e))?;
    Ok(())
}

async fn apply_locked(client: &mut crate::lease::Lease) -> Result<(), BackendError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(|e| pg_err("creating the migrations table", e))?;
    let newest: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(|e| pg_err("reading the schema version", e))?
        .get(0);
    if let Some(v) = newest.filter(|v| *v > CURRENT) {
        return Err(BackendError::message(
            format!("the database has schema version {v}, newer than this program's {CURRENT}: upgrade the program"),
            false,
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| newest.is_none_or(|n| *v > n)) {
        let txn = client.transaction().await.map_err(|e| pg_err("starting a migration", e))?;
        txn.batch_execute(sql).await.map_err(|e| pg_err("applying a migration", e))?;
        txn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &(registry_core::time::now_secs() as i64)],
        )
        .await
        .map_err(|e| pg_err("recording a migration", e))?;
        txn.commit().await.map_err(|e| pg_err("committing a migration", e))?;
        tracing::info!(version, "applied a PostgreSQL migration");
    }
    Ok(())
}

impl PgStore {
    /// The schema versions applied to the database, in order.
    pub async fn schema_versions(&self) -> Result<Vec<i32>, BackendError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT version FROM schema_migrations ORDER BY version", &[])
            .await
            .map_err(|e| pg_err("reading the schema versions", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
