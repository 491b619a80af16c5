//! Vulnerability prevention (Harbor's project metadata `prevent_vul` and `severity`): an image
//! is pulled only when its project's scanner reported on it and found nothing at the threshold
//! or worse that the project's allowlist does not allow. Unscanned images, and images whose scan
//! failed or is under way, are refused too (Harbor's behaviour), each refusal saying why; the
//! scanner's own pulls pass. Indexes pass (each child is checked when pulled), as do artifacts
//! that are not images (signatures, SBOMs, charts).

use registry_core::cache_stats::CacheStats;
use std::sync::Arc;

use async_trait::async_trait;
use registry_core::RepositoryName;
use registry_core::event::Operator;
use registry_storage::{Error, ManifestRecord, PullPolicies, Result};

use super::jobs::{SUCCESS, Scannable, scannable};
use super::report::{Severity, Summary};
use super::{REPORT_TYPES, allowlist};
use crate::scan::cache::ScanCache;

/// The project metadata turning prevention on.
pub const PREVENT: &str = "prevent_vul";
/// The project metadata naming the threshold (`low`, `medium`, `high`, `critical`; `none`:
/// anything found).
pub const SEVERITY: &str = "severity";

/// The pull policy.
pub struct Prevention {
    cache: Arc<ScanCache>,
    accounts: registry_auth::Accounts,
    clock: registry_core::SharedClock,
    /// (report id, allowlist) -> the summary less the allowlist.
    allowed_summaries: quick_cache::sync::Cache<(String, u64), Arc<Summary>>,
}

impl Prevention {
    /// The policy over the cached reads of scanning.
    pub fn new(
        cache: Arc<ScanCache>,
        accounts: registry_auth::Accounts,
        clock: registry_core::SharedClock,
    ) -> Arc<Prevention> {
        Arc::new(Prevention { cache, accounts, clock, allowed_summaries: quick_cache::sync::Cache::new(4096) })
    }

    /// Its cache's figures, for metrics.
    pub fn cache_stats(&self) -> CacheStats {
        let s = &self.allowed_summaries;
        CacheStats::counted("allowed_summaries", s.hits(), s.misses(), s.len())
    }

    /// The threshold a project's metadata sets, if prevention is on.
    pub fn threshold(metadata: &std::collections::BTreeMap<String, String>) -> Option<Severity> {
        if metadata.get(PREVENT).is_none_or(|v| v != "true") {
            return None;
        }
        Some(match metadata.get(SEVERITY).map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("none") => Severity::None,
            Some(s) => Severity::parse(s).unwrap_or(Severity::Low),
            None => Severity::Low,
        })
    }

    /// The summary of the report `report_id` less the allowed CVEs, parsing the report once per
    /// allowlist.
    async fn allowed_summary(
        &self,
        record: &ManifestRecord,
        scanner: &str,
        report_id: &str,
        allowed: &std::collections::HashSet<String>,
    ) -> Result<Option<Arc<Summary>>> {
        let mut ids: Vec<&String> = allowed.iter().collect();
        ids.sort();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&ids, &mut hasher);
        let key = (report_id.to_owned(), std::hash::Hasher::finish(&hasher));
        if let Some(found) = self.allowed_summaries.get(&key) {
            return Ok(Some(found));
        }
        let full = self.cache.meta().reports(&record.digest).await?;
        let Some(report) = full.into_iter().find(|r| r.scanner == scanner && r.id == report_id) else {
            return Ok(None);
        };
        let Ok(parsed) = super::report::parse(report.body.as_bytes()) else { return Ok(None) };
        let summary = Arc::new(Summary::of(&parsed.findings, &parsed.scanner, allowed));
        self.allowed_summaries.insert(key, summary.clone());
        Ok(Some(summary))
    }
}

fn denied(message: String) -> Error {
    Error::PullDenied { reason: message }
}

#[async_trait]
impl PullPolicies for Prevention {
    async fn admit(&self, repository: &RepositoryName, record: &ManifestRecord, puller: &Operator) -> Result<()> {
        if crate::delegates::is_scanner(puller) || scannable(record) != Scannable::Image {
            return Ok(());
        }
        let Some(project) = crate::artifacts::project_of_repository(&self.accounts, repository).await? else {
            return Ok(());
        };
        let Some(threshold) = Prevention::threshold(&project.metadata) else { return Ok(()) };
        // Written only for a refusal: an admitted pull formats nothing.
        let policy = || {
            format!(
                "project {} prevents pulling images with vulnerabilities of severity {} or higher",
                project.name,
                threshold.as_str()
            )
        };
        let Some(scanner) = self.cache.scanner_of(project.id).await? else {
            return Err(denied(format!("{}, and it has no scanner to scan {}: set one", policy(), record.digest)));
        };
        let reports = self.cache.reports(&record.digest).await?;
        let Some(report) =
            reports.iter().find(|r| r.scanner == scanner.uuid && REPORT_TYPES.contains(&r.mime_type.as_str()))
        else {
            return Err(denied(format!("{}; {} was not scanned: scan it first", policy(), record.digest)));
        };
        if report.status != SUCCESS {
            return Err(denied(format!(
                "{}; the scan of {} is {} (report {}): scan it again once it is done",
                policy(),
                record.digest,
                report.status.to_lowercase(),
                report.id
            )));
        }
        let own = project.metadata.get(allowlist::REUSE).is_some_and(|v| v == "false");
        let allowed = self.cache.allowed(project.id, own, self.clock.now_secs()).await?;
        let summary = if allowed.is_empty() {
            // A report's summary does not change once it succeeded: parsed once.
            let key = (report.id.clone(), 0);
            match self.allowed_summaries.get(&key) {
                Some(summary) => summary,
                None => {
                    let parsed = Arc::new(serde_json::from_str::<Summary>(&report.summary).unwrap_or_default());
                    self.allowed_summaries.insert(key, parsed.clone());
                    parsed
                }
            }
        } else {
            match self.allowed_summary(record, &scanner.uuid, &report.id, &allowed).await? {
                Some(s) => s,
                None => Arc::new(serde_json::from_str::<Summary>(&report.summary).unwrap_or_default()),
            }
        };
        let found = summary.at_least(threshold);
        if found > 0 {
            return Err(denied(format!(
                "{}; {} has {found} such vulnerabilities ({}) not in the CVE allowlist: fix them, allowlist \
                 them or change the threshold",
                policy(),
                record.digest,
                summary.breakdown(threshold)
            )));
        }
        Ok(())
    }
}
