//! What every pull under the prevention policy reads, cached briefly: an artifact's reports
//! (without their bodies), a project's scanner and allowlist. Writes through this process forget
//! what they change at once; other replicas see changes within [`TTL`].

use registry_core::cache_stats::CacheStats;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_core::Digest;
use registry_core::event::Event;
use registry_storage::reports::ScanReport;
use registry_storage::{MetadataStore, Result};

use super::registration::{self, Registration};

/// How long a cached read is trusted.
pub const TTL: Duration = Duration::from_secs(2);

/// A value and when it was read.
type Timed<V> = (Instant, V);

/// The cached reads of scanning.
pub struct ScanCache {
    meta: Arc<dyn MetadataStore>,
    reports: quick_cache::sync::Cache<Digest, Timed<Arc<Vec<ScanReport>>>>,
    scanners: quick_cache::sync::Cache<u64, Timed<Option<Arc<Registration>>>>,
    allowed: quick_cache::sync::Cache<(u64, bool), Timed<Arc<super::allowlist::Allowlist>>>,
}

impl std::fmt::Debug for ScanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanCache").finish_non_exhaustive()
    }
}

fn fresh<V: Clone>(found: Option<Timed<V>>) -> Option<V> {
    found.filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v)
}

impl ScanCache {
    /// A cache over `meta`.
    pub fn new(meta: Arc<dyn MetadataStore>) -> Arc<ScanCache> {
        Arc::new(ScanCache {
            meta,
            reports: quick_cache::sync::Cache::new(64 * 1024),
            scanners: quick_cache::sync::Cache::new(4 * 1024),
            allowed: quick_cache::sync::Cache::new(4 * 1024),
        })
    }

    /// The caches' figures, for metrics.
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        let (r, s, a) = (&self.reports, &self.scanners, &self.allowed);
        vec![
            CacheStats::counted("scan_reports", r.hits(), r.misses(), r.len()),
            CacheStats::counted("scanners", s.hits(), s.misses(), s.len()),
            CacheStats::counted("allowlists", a.hits(), a.misses(), a.len()),
        ]
    }

    /// The store.
    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    /// The reports of `digest`, their bodies left out.
    pub async fn reports(&self, digest: &Digest) -> Result<Arc<Vec<ScanReport>>> {
        if let Some(found) = fresh(self.reports.get(digest)) {
            return Ok(found);
        }
        let mut found = self.meta.reports(digest).await?;
        for r in &mut found {
            r.body = String::new();
        }
        let found = Arc::new(found);
        self.reports.insert(digest.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Stores a report (compare and set, see [`registry_storage::ReportStore::put_report`]) and
    /// forgets the cached reports of its digest.
    pub async fn put(&self, report: &ScanReport, replaces: Option<&str>, events: &[Event]) -> Result<bool> {
        let stored = self.meta.put_report(report, replaces, events).await;
        self.reports.remove(&report.digest);
        stored
    }

    /// Forgets the cached reports of `digest` (deleted elsewhere).
    pub fn forget_reports(&self, digest: &Digest) {
        self.reports.remove(digest);
    }

    /// The scanner of `project_id` (its own, else the default).
    pub async fn scanner_of(&self, project_id: u64) -> Result<Option<Arc<Registration>>> {
        if let Some(found) = fresh(self.scanners.get(&project_id)) {
            return Ok(found);
        }
        let found = registration::of_project(&*self.meta, project_id).await?.map(Arc::new);
        self.scanners.insert(project_id, (Instant::now(), found.clone()));
        Ok(found)
    }

    /// The CVEs allowed in `project_id` (its own list when `own`, else the system's) at `now`.
    pub async fn allowed(&self, project_id: u64, own: bool, now_secs: u64) -> Result<HashSet<String>> {
        let key = (if own { project_id } else { registry_storage::policies::SYSTEM }, own);
        let list = match fresh(self.allowed.get(&key)) {
            Some(list) => list,
            None => {
                let list = Arc::new(super::allowlist::load(&*self.meta, key.0).await?.0);
                self.allowed.insert(key, (Instant::now(), list.clone()));
                list
            }
        };
        Ok(list.allowed(now_secs))
    }

    /// Forgets the cached scanners and allowlists (a registration, binding or allowlist changed).
    pub fn forget_settings(&self) {
        self.scanners.clear();
        self.allowed.clear();
    }
}
