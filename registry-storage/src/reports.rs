//! Scan reports: what a scanner found in an artifact, kept by the artifact's digest (the same
//! content scanned once, wherever it is pushed), the scanner and the report's media type, with
//! the scan's state while it runs. The store keeps the text; `registry-platform`'s scanning
//! parses it.
//!
//! Writes compare and set by the report's id: a scan started later replaces the record with a
//! new id, and a slower, older scan's result then finds another id and is dropped instead of
//! overwriting the newer one.

use async_trait::async_trait;
use registry_core::Digest;
use registry_core::event::Event;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One scan of one artifact by one scanner, in one report format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// The scanned artifact's digest.
    pub digest: Digest,
    /// The scanner registration's id.
    pub scanner: String,
    /// The report's media type.
    pub mime_type: String,
    /// This scan's id (Harbor's `report_id`), new for each scan.
    pub id: String,
    /// `Pending`, `Running`, `Success`, `Error` or `Stopped`.
    pub status: String,
    /// The job running the scan (its log is the scan's log).
    pub job_id: u64,
    /// When the scan was asked for (milliseconds since the Unix epoch).
    pub started_ms: u64,
    /// When it ended (0 while it runs).
    pub ended_ms: u64,
    /// The report's summary (JSON, small: what listings and pull policies read).
    pub summary: String,
    /// The report itself (JSON; empty until the scan succeeds).
    pub body: String,
}

impl ScanReport {
    /// The record's key within its digest.
    pub fn key(&self) -> (String, String) {
        (self.scanner.clone(), self.mime_type.clone())
    }
}

/// The scan reports of a metadata store.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores `report` with `events` if the stored report of its digest, scanner and media type
    /// has the id `replaces` (`None`: there is none, or any may be replaced); whether it was stored.
    async fn put_report(&self, report: &ScanReport, replaces: Option<&str>, events: &[Event]) -> Result<bool>;

    /// The reports of `digest`, by scanner and media type.
    async fn reports(&self, digest: &Digest) -> Result<Vec<ScanReport>>;

    /// Removes the reports of `digest`; how many there were.
    async fn delete_reports(&self, digest: &Digest) -> Result<u64>;

    /// Up to `limit` reports after (`digest`, `scanner`, `mime_type`) in that order (copying a
    /// registry into other stores, pruning reports of deleted content).
    async fn reports_after(&self, after: Option<&(Digest, String, String)>, limit: usize) -> Result<Vec<ScanReport>>;
}

/// Whether a report stored as `stored` may be replaced by a write expecting `replaces`.
pub fn replaceable(stored: Option<&ScanReport>, replaces: Option<&str>) -> bool {
    match (stored, replaces) {
        (_, None) => true,
        (Some(s), Some(id)) => s.id == id,
        (None, Some(_)) => false,
    }
}

/// Reports held in memory: what the memory store keeps under its lock.
#[derive(Debug, Default)]
pub struct ReportTable {
    reports: std::collections::BTreeMap<(String, String, String), ScanReport>,
}

impl ReportTable {
    fn key(report: &ScanReport) -> (String, String, String) {
        (report.digest.to_string(), report.scanner.clone(), report.mime_type.clone())
    }

    /// See [`ReportStore::put_report`].
    pub fn put(&mut self, report: &ScanReport, replaces: Option<&str>) -> bool {
        let key = ReportTable::key(report);
        if !replaceable(self.reports.get(&key), replaces) {
            return false;
        }
        self.reports.insert(key, report.clone());
        true
    }

    /// See [`ReportStore::reports`].
    pub fn of(&self, digest: &Digest) -> Vec<ScanReport> {
        let d = digest.to_string();
        self.reports
            .range((d.clone(), String::new(), String::new())..)
            .take_while(|((k, _, _), _)| *k == d)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// See [`ReportStore::delete_reports`].
    pub fn delete(&mut self, digest: &Digest) -> u64 {
        let keys: Vec<_> = self.of(digest).iter().map(ReportTable::key).collect();
        for key in &keys {
            self.reports.remove(key);
        }
        keys.len() as u64
    }

    /// See [`ReportStore::reports_after`].
    pub fn after(&self, after: Option<&(Digest, String, String)>, limit: usize) -> Vec<ScanReport> {
        use std::ops::Bound;
        let start = match after {
            Some((d, s, m)) => Bound::Excluded((d.to_string(), s.clone(), m.clone())),
            None => Bound::Unbounded,
        };
        self.reports.range((start, Bound::Unbounded)).take(limit).map(|(_, r)| r.clone()).collect()
    }
}
