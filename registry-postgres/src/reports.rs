//! Scan reports: the `scan_reports` table (migration 5). A write locks the report's row (or
//! finds none) and compares its id in the same transaction as the events it records.

use async_trait::async_trait;
use registry_core::Digest;
use registry_core::event::Event;
use registry_storage::reports::{ReportStore, ScanReport, replaceable};
use registry_storage::{Error, Result};

use crate::{Cached, PgStore, pg_err};

const COLUMNS: &str = "digest, scanner, mime_type, id, status, job_id, started_ms, ended_ms, summary, body";

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn small(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn decode(row: &tokio_postgres::Row) -> Result<ScanReport> {
    let digest: &str = row.get("digest");
    Ok(ScanReport {
        digest: Digest::parse(digest).map_err(|e| Error::corrupt("a scan report's digest", e))?,
        scanner: row.get("scanner"),
        mime_type: row.get("mime_type"),
        id: row.get("id"),
        status: row.get("status"),
        job_id: small(row.get("job_id")),
        started_ms: small(row.get("started_ms")),
        ended_ms: small(row.get("ended_ms")),
        summary: row.get("summary"),
        body: row.get("body"),
    })
}

#[async_trait]
impl ReportStore for PgStore {
    async fn put_report(&self, report: &ScanReport, replaces: Option<&str>, events: &[Event]) -> Result<bool> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let digest = report.digest.to_string();
        let stored = txn
            .cached_opt(
                &format!("SELECT {COLUMNS} FROM scan_reports WHERE digest = $1 AND scanner = $2 AND mime_type = $3 FOR UPDATE"),
                &[&digest, &report.scanner, &report.mime_type],
            )
            .await
            .map_err(db("reading a scan report"))?
            .map(|row| decode(&row))
            .transpose()?;
        if !replaceable(stored.as_ref(), replaces) {
            return Ok(false);
        }
        txn.cached_execute(
            "INSERT INTO scan_reports (digest, scanner, mime_type, id, status, job_id, started_ms, ended_ms, summary, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (digest, scanner, mime_type) DO UPDATE SET id = $4, status = $5, job_id = $6,
                 started_ms = $7, ended_ms = $8, summary = $9, body = $10",
            &[
                &digest,
                &report.scanner,
                &report.mime_type,
                &report.id,
                &report.status,
                &big(report.job_id),
                &big(report.started_ms),
                &big(report.ended_ms),
                &report.summary,
                &report.body,
            ],
        )
        .await
        .map_err(db("storing a scan report"))?;
        crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        txn.commit().await.map_err(db("committing a scan report"))?;
        Ok(true)
    }

    async fn reports(&self, digest: &Digest) -> Result<Vec<ScanReport>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                &format!("SELECT {COLUMNS} FROM scan_reports WHERE digest = $1 ORDER BY scanner, mime_type"),
                &[&digest.to_string()],
            )
            .await
            .map_err(db("reading scan reports"))?;
        rows.iter().map(decode).collect()
    }

    async fn delete_reports(&self, digest: &Digest) -> Result<u64> {
        let client = self.client().await?;
        client
            .cached_execute("DELETE FROM scan_reports WHERE digest = $1", &[&digest.to_string()])
            .await
            .map_err(db("deleting scan reports"))
    }

    async fn reports_after(&self, after: Option<&(Digest, String, String)>, limit: usize) -> Result<Vec<ScanReport>> {
        let client = self.client().await?;
        let limit = big(limit as u64);
        let rows = match after {
            Some((d, s, m)) => {
                client
                    .cached_query(
                        &format!(
                            "SELECT {COLUMNS} FROM scan_reports WHERE (digest, scanner, mime_type) > ($1, $2, $3)
                             ORDER BY digest, scanner, mime_type LIMIT $4"
                        ),
                        &[&d.to_string(), s, m, &limit],
                    )
                    .await
            }
            None => {
                client
                    .cached_query(
                        &format!("SELECT {COLUMNS} FROM scan_reports ORDER BY digest, scanner, mime_type LIMIT $1"),
                        &[&limit],
                    )
                    .await
            }
        }
        .map_err(db("listing scan reports"))?;
        rows.iter().map(decode).collect()
    }
}
