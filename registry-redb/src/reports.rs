//! Scan reports: one table keyed by digest, scanner and media type (`digest\0scanner\0type`),
//! the record as JSON; a digest's reports are one key range.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_core::event::Event;
use registry_core::{BackendError, Digest};
use registry_storage::reports::{ReportStore, ScanReport, replaceable};

use crate::RedbStore;
use crate::handle::db_err;

fn err(e: impl Into<redb::Error>) -> registry_storage::Error {
    db_err(e)
}

const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_reports");

type Result<T, E = registry_storage::Error> = std::result::Result<T, E>;

fn key(digest: &str, scanner: &str, mime_type: &str) -> String {
    format!("{digest}\0{scanner}\0{mime_type}")
}

fn decode(bytes: &[u8]) -> Result<ScanReport> {
    serde_json::from_slice(bytes)
        .map_err(|e| registry_storage::Error::Corrupt { what: "a scan report".into(), source: Some(Box::new(e)) })
}

fn encode(report: &ScanReport) -> Result<Vec<u8>> {
    serde_json::to_vec(report)
        .map_err(|e| registry_storage::Error::Backend(BackendError::permanent("encoding a scan report", e)))
}

/// Creates the table.
pub(crate) fn prepare(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(REPORTS).map_err(err)?;
    Ok(())
}

fn of(table: &impl ReadableTable<&'static str, &'static [u8]>, digest: &str) -> Result<Vec<ScanReport>> {
    let start = format!("{digest}\0");
    let end = format!("{digest}\u{1}");
    let mut out = Vec::new();
    for row in table.range(start.as_str()..end.as_str()).map_err(err)? {
        let (_, value) = row.map_err(err)?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}

#[async_trait]
impl ReportStore for RedbStore {
    async fn put_report(&self, report: &ScanReport, replaces: Option<&str>, events: &[Event]) -> Result<bool> {
        let (report, replaces, events) = (report.clone(), replaces.map(str::to_owned), events.to_vec());
        self.db
            .write(move |txn| {
                let k = key(&report.digest.to_string(), &report.scanner, &report.mime_type);
                let mut table = txn.open_table(REPORTS).map_err(err)?;
                let stored = table.get(k.as_str()).map_err(err)?.map(|v| decode(v.value())).transpose()?;
                if !replaceable(stored.as_ref(), replaces.as_deref()) {
                    return Ok(false);
                }
                table.insert(k.as_str(), encode(&report)?.as_slice()).map_err(err)?;
                drop(table);
                crate::events::record::<registry_storage::Error>(txn, &events)?;
                Ok(true)
            })
            .await
    }

    async fn reports(&self, digest: &Digest) -> Result<Vec<ScanReport>> {
        let digest = digest.to_string();
        self.db.read(move |txn| of(&txn.open_table(REPORTS).map_err(err)?, &digest)).await
    }

    async fn delete_reports(&self, digest: &Digest) -> Result<u64> {
        let digest = digest.to_string();
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(REPORTS).map_err(err)?;
                let found = of(&table, &digest)?;
                for r in &found {
                    table.remove(key(&digest, &r.scanner, &r.mime_type).as_str()).map_err(err)?;
                }
                Ok(found.len() as u64)
            })
            .await
    }

    async fn reports_after(&self, after: Option<&(Digest, String, String)>, limit: usize) -> Result<Vec<ScanReport>> {
        let after = after.map(|(d, s, m)| key(&d.to_string(), s, m));
        self.db
            .read(move |txn| {
                let table = txn.open_table(REPORTS).map_err(err)?;
                let rows = match &after {
                    Some(k) => table.range::<&str>((std::ops::Bound::Excluded(k.as_str()), std::ops::Bound::Unbounded)),
                    None => table.range::<&str>(..),
                }
                .map_err(err)?;
                let mut out = Vec::new();
                for row in rows.take(limit) {
                    let (_, value) = row.map_err(err)?;
                    out.push(decode(value.value())?);
                }
                Ok(out)
            })
            .await
    }
}
