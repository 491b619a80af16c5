//! Scans as jobs: [`Scanning`] asks for scans (one job each, its report record `Pending` at
//! once) and stops them; [`ScanHandler`] runs one against the project's scanner and keeps the
//! report; [`ScanAllHandler`] asks for a scan of every artifact (on request or on the cron
//! schedule of `/system/scanAll/schedule`); [`AutoScan`] reads the event stream and scans what
//! is pushed to projects with `auto_scan` on.
//!
//! A scan that fails (an adapter down, slow or answering garbage) ends its job with the reason
//! and its report `Error` with the same reason; pushes and pulls never wait for scans.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use registry_auth::{Accounts, SecretKey, TokenService};
use registry_core::event::{Event, EventAction, Operator, Resource};
use registry_core::{Digest, Reference, RepositoryName, Scope};
use registry_storage::jobs::{JobFilter, NewJob};
use registry_storage::policies::{PolicyRecord, SYSTEM};
use registry_storage::reports::ScanReport;
use registry_storage::{
    Job, JobContext, JobFailure, JobHandler, JobRunner, JobStatus, ManifestRecord, MetadataStore, Registry,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::adapter::{Adapter, Poll};
use super::cache::ScanCache;
use super::registration::{self, Registration};
use super::report::{self, Summary};
use super::{REPORT_TYPES, VULNERABILITY_REPORT};
use crate::cron::Cron;

/// The job kind of one scan.
pub const JOB_KIND: &str = "scan";
/// The job kind of a scan of everything.
pub const ALL_KIND: &str = "scan_all";
/// The policy kind of the scan-all schedule.
pub const SCHEDULE_KIND: &str = "scan_all_schedule";
/// The project metadata turning on scans of what is pushed.
pub const AUTO_SCAN: &str = "auto_scan";
/// The auto-scan consumer's cursor.
pub const CURSOR: &str = "auto_scan";
/// Pushes older than this are not scanned on push (a consumer catching up after a long stop).
const AUTO_SCAN_HORIZON_MS: u64 = 24 * 3600 * 1000;
/// The statuses of a report.
pub const PENDING: &str = "Pending";
/// A scan under way.
pub const RUNNING: &str = "Running";
/// A scan that produced a report.
pub const SUCCESS: &str = "Success";
/// A scan that failed.
pub const ERROR: &str = "Error";
/// A scan stopped on request.
pub const STOPPED: &str = "Stopped";

/// What scans need.
#[derive(Clone)]
pub struct ScanningOptions {
    /// The accounts (projects' metadata and ids).
    pub accounts: Accounts,
    /// The key scanners' credentials are sealed with.
    pub key: SecretKey,
    /// The token service delegated credentials come from (none: scanners cannot pull).
    pub tokens: Option<Arc<TokenService>>,
    /// The registry's URL as scanners reach it.
    pub registry_url: String,
    /// How long a scan may take, and its credential lasts.
    pub timeout: Duration,
}

impl std::fmt::Debug for ScanningOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanningOptions")
            .field("registry_url", &self.registry_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a scan cannot be asked for.
#[derive(Debug)]
pub enum RequestError {
    /// The project has no scanner and there is no default.
    NoScanner(String),
    /// Its scanner is disabled.
    Disabled(String),
    /// The artifact is not something scanners scan.
    NotScannable(String),
    /// The store failed.
    Store(registry_storage::Error),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::NoScanner(m) | RequestError::Disabled(m) | RequestError::NotScannable(m) => f.write_str(m),
            RequestError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<registry_storage::Error> for RequestError {
    fn from(e: registry_storage::Error) -> Self {
        RequestError::Store(e)
    }
}

/// What a manifest is to a scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scannable {
    /// An image: scanned itself.
    Image,
    /// An index: its children are scanned.
    Index(Vec<Digest>),
    /// Not scanned (signatures, SBOMs, charts…): why.
    No(String),
}

/// Image config media types (an image's `artifact_type` when it declares none of its own).
const IMAGE_CONFIGS: [&str; 2] =
    [registry_core::media_type::OCI_CONFIG, "application/vnd.docker.container.image.v1+json"];

/// What `record` is to a scanner.
pub fn scannable(record: &ManifestRecord) -> Scannable {
    use registry_core::media_type as mt;
    let media = record.media_type.as_str();
    if media == mt::OCI_INDEX || media == mt::DOCKER_MANIFEST_LIST {
        return Scannable::Index(record.references.clone());
    }
    if record.subject.is_some() {
        return Scannable::No("an accessory (a signature, attestation or SBOM) is not scanned".into());
    }
    let image_manifest = media == mt::OCI_MANIFEST || media == mt::DOCKER_MANIFEST;
    let image_config = record.artifact_type.as_deref().is_none_or(|t| IMAGE_CONFIGS.contains(&t));
    if image_manifest && image_config {
        Scannable::Image
    } else {
        Scannable::No(format!(
            "a {} artifact is not an image; scanners scan images",
            record.artifact_type.as_deref().unwrap_or(media)
        ))
    }
}

/// What a scan makes (Harbor's `scan_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScanKind {
    /// A vulnerability report.
    #[default]
    Vulnerability,
    /// An SBOM, kept as an accessory of the image.
    Sbom,
}

impl ScanKind {
    /// Harbor's `scan_type` (an absent one is a vulnerability scan).
    pub fn parse(text: Option<&str>) -> Option<ScanKind> {
        match text {
            None | Some("vulnerability") => Some(ScanKind::Vulnerability),
            Some("sbom") => Some(ScanKind::Sbom),
            Some(_) => None,
        }
    }

    /// Whether `report` is of this kind.
    pub fn made(self, report: &ScanReport) -> bool {
        match self {
            ScanKind::Vulnerability => REPORT_TYPES.contains(&report.mime_type.as_str()),
            ScanKind::Sbom => report.mime_type == super::sbom::SBOM_REPORT,
        }
    }

    fn word(self) -> &'static str {
        match self {
            ScanKind::Vulnerability => "scan",
            ScanKind::Sbom => "SBOM generation",
        }
    }
}

/// The project metadata turning on SBOM generation for what is pushed.
pub const AUTO_SBOM: &str = "auto_sbom_generation";

/// One scan's job payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScanJob {
    #[serde(default)]
    kind: ScanKind,
    project: String,
    repository: String,
    digest: Digest,
    #[serde(default)]
    tag: Option<String>,
    media_type: String,
    scanner: String,
    report_id: String,
}

/// Asks for scans and runs them.
pub struct Scanning {
    registry: Registry,
    options: ScanningOptions,
    cache: Arc<ScanCache>,
    /// The runner that runs scans (weak: the runner holds the scan handlers, which hold this).
    runner: OnceLock<Weak<JobRunner>>,
}

impl std::fmt::Debug for Scanning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanning").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Scanning {
    /// Scanning over `registry`, reading through `cache` (the one the prevention policy reads,
    /// so that what a scan writes is seen by the next pull).
    pub fn new(registry: &Registry, cache: Arc<ScanCache>, options: ScanningOptions) -> Arc<Scanning> {
        Arc::new(Scanning { cache, registry: registry.clone(), options, runner: OnceLock::new() })
    }

    /// The cached reads (reports, scanners, allowlists).
    pub fn cache(&self) -> &Arc<ScanCache> {
        &self.cache
    }

    /// The accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.options.accounts
    }

    /// The key credentials are sealed with.
    pub fn key(&self) -> &SecretKey {
        &self.options.key
    }

    /// Enqueues through `runner` from now on (it wakes its workers at once).
    pub fn attach(&self, runner: &Arc<JobRunner>) {
        let _ = self.runner.set(Arc::downgrade(runner));
    }

    fn meta(&self) -> &Arc<dyn MetadataStore> {
        self.registry.metadata_store()
    }

    /// The metadata store (reports, registrations, the queue).
    pub fn meta_store(&self) -> Arc<dyn MetadataStore> {
        self.registry.metadata_store().clone()
    }

    fn now_ms(&self) -> u64 {
        self.registry.clock().now_millis()
    }

    async fn enqueue(&self, job: &NewJob) -> registry_storage::Result<(u64, bool)> {
        match self.runner.get().and_then(Weak::upgrade) {
            Some(runner) => runner.enqueue(job).await,
            None => self.meta().enqueue(job, self.now_ms()).await,
        }
    }

    /// The report of `digest` by `scanner` (without its body), if any. A scan whose job ended
    /// without a result (a worker lost for good, a record left behind by a crash) shows as
    /// failed, saying so.
    pub async fn report_of(&self, digest: &Digest, scanner: &str) -> registry_storage::Result<Option<ScanReport>> {
        self.made_by(digest, scanner, ScanKind::Vulnerability).await
    }

    /// The report of `kind` of `digest` by `scanner` (see [`Scanning::report_of`]).
    pub async fn made_by(
        &self,
        digest: &Digest,
        scanner: &str,
        kind: ScanKind,
    ) -> registry_storage::Result<Option<ScanReport>> {
        let found = self.cache.reports(digest).await?.iter().find(|r| r.scanner == scanner && kind.made(r)).cloned();
        let Some(report) = found.clone().filter(|r| r.status == PENDING || r.status == RUNNING) else {
            return Ok(found);
        };
        let ended = match report.job_id {
            0 => (self.now_ms().saturating_sub(report.started_ms) > self.options.timeout.as_millis() as u64 + 60_000)
                .then(|| "its job was never started".to_owned()),
            id => match self.meta().job(id).await? {
                None => Some(format!("its job {id} is gone")),
                Some(job) if job.status.is_final() => Some(format!(
                    "its job {id} ended ({}) without a result{}",
                    job.status.as_str(),
                    if job.error.is_empty() { String::new() } else { format!(": {}", job.error) }
                )),
                Some(_) => None,
            },
        };
        if ended.is_some() {
            // The cache may be behind the store: the store has the last word.
            self.cache.forget_reports(digest);
            let fresh = self.cache.reports(digest).await?.iter().find(|r| r.id == report.id).cloned();
            if let Some(done) = fresh.filter(|r| r.status != PENDING && r.status != RUNNING) {
                return Ok(Some(done));
            }
        }
        Ok(Some(match ended {
            Some(why) => ScanReport {
                status: ERROR.into(),
                summary: serde_json::to_string(&Summary { error: Some(why), ..Summary::default() }).unwrap_or_default(),
                ..report
            },
            None => report,
        }))
    }

    /// The report of `digest` by `scanner` with its body.
    pub async fn full_report(&self, digest: &Digest, scanner: &str) -> registry_storage::Result<Option<ScanReport>> {
        Ok(self
            .meta()
            .reports(digest)
            .await?
            .into_iter()
            .find(|r| r.scanner == scanner && ScanKind::Vulnerability.made(r)))
    }

    /// The scanner of the project `project_id`.
    pub async fn scanner_of(&self, project_id: u64) -> registry_storage::Result<Option<Arc<Registration>>> {
        self.cache.scanner_of(project_id).await
    }

    /// Asks for a scan of `kind` of `record` (an image; an index's children) in `repository`
    /// of `project`; the reports now pending (or already under way).
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        kind: ScanKind,
        project: &registry_auth::Project,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&str>,
        trigger: &str,
        key: Option<&str>,
    ) -> Result<Vec<ScanReport>, RequestError> {
        let registration = self.usable_scanner(project).await?;
        let images = self.images(repository, record).await?;
        let mut out = Vec::new();
        for (image, tag) in images.iter().map(|r| (r, if r.digest == record.digest { tag } else { None })) {
            let asked = Asked { kind, project, repository, record: image, tag, trigger, key };
            out.push(self.request_one(&registration, asked).await?);
        }
        Ok(out)
    }

    async fn usable_scanner(&self, project: &registry_auth::Project) -> Result<Arc<Registration>, RequestError> {
        let registration = self.cache.scanner_of(project.id).await?.ok_or_else(|| {
            RequestError::NoScanner(format!(
                "project {} has no scanner and no default scanner is set; a system admin registers one \
                 (/api/v2.0/scanners) and makes it the default",
                project.name
            ))
        })?;
        if registration.disabled {
            return Err(RequestError::Disabled(format!(
                "scanner {:?} of project {} is disabled; a system admin enables it or sets another",
                registration.name, project.name
            )));
        }
        Ok(registration)
    }

    /// The images `record` stands for: itself, or an index's image children.
    async fn images(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
    ) -> Result<Vec<ManifestRecord>, RequestError> {
        match scannable(record) {
            Scannable::Image => Ok(vec![record.clone()]),
            Scannable::No(why) => Err(RequestError::NotScannable(why)),
            Scannable::Index(children) => {
                let mut out = Vec::new();
                for child in children {
                    let Ok(found) = self.registry.stat_manifest(repository, &Reference::Digest(child)).await else {
                        continue;
                    };
                    if scannable(&found) == Scannable::Image {
                        out.push(found);
                    }
                }
                if out.is_empty() {
                    return Err(RequestError::NotScannable("the index lists no image to scan".into()));
                }
                Ok(out)
            }
        }
    }

    async fn request_one(&self, registration: &Registration, asked: Asked<'_>) -> Result<ScanReport, RequestError> {
        let Asked { kind, project, repository, record, tag, trigger, key } = asked;
        let existing = self.made_by(&record.digest, &registration.uuid, kind).await?;
        if let Some(e) = existing.as_ref().filter(|e| e.status == PENDING || e.status == RUNNING) {
            return Ok(e.clone());
        }
        let report_id = registration::new_uuid();
        let job_key = match (key, kind) {
            (Some(k), ScanKind::Vulnerability) => format!("{k}:{}", record.digest),
            (Some(k), ScanKind::Sbom) => format!("{k}:sbom:{}", record.digest),
            (None, _) => format!("scan:{report_id}"),
        };
        // Asked for already (a stream pass read twice, a retried scan of everything): that scan
        // stands.
        let same_key = JobFilter { key_prefix: Some(job_key.clone()), ..JobFilter::kind(JOB_KIND) };
        if key.is_some()
            && self.meta().jobs(&same_key, 0, 1).await?.1 > 0
            && let Some(found) = self.made_by(&record.digest, &registration.uuid, kind).await?
        {
            return Ok(found);
        }
        let payload = ScanJob {
            kind,
            project: project.name.clone(),
            repository: repository.to_string(),
            digest: record.digest.clone(),
            tag: tag.map(str::to_owned),
            media_type: record.media_type.clone(),
            scanner: registration.uuid.clone(),
            report_id: report_id.clone(),
        };
        // The record first, the job second: a worker that takes the job at once finds its
        // record. The record learns its job's id after (a worker already running it has set the
        // same id).
        let mut report = ScanReport {
            digest: record.digest.clone(),
            scanner: registration.uuid.clone(),
            mime_type: match kind {
                ScanKind::Vulnerability => VULNERABILITY_REPORT.into(),
                ScanKind::Sbom => super::sbom::SBOM_REPORT.into(),
            },
            id: report_id.clone(),
            status: PENDING.into(),
            job_id: 0,
            started_ms: self.now_ms(),
            ended_ms: 0,
            summary: "{}".into(),
            body: String::new(),
        };
        if !self.cache.put(&report, existing.as_ref().map(|e| e.id.as_str()), &[]).await? {
            // Another request won the race: its scan stands.
            return Ok(self.made_by(&record.digest, &registration.uuid, kind).await?.unwrap_or(report));
        }
        let job = NewJob::new(JOB_KIND, serde_json::to_string(&payload).unwrap_or_default(), trigger)
            .key(job_key)
            .attempts(1);
        let (job_id, new) = self.enqueue(&job).await?;
        if !new {
            // Another replica asked for the same scan at the same moment: its job stands.
            let lost = ScanReport {
                status: ERROR.into(),
                ended_ms: self.now_ms(),
                summary: serde_json::to_string(&Summary {
                    error: Some("another request for the same scan was taken instead".into()),
                    ..Summary::default()
                })
                .unwrap_or_default(),
                ..report.clone()
            };
            self.cache.put(&lost, Some(&report_id), &[]).await?;
            return Ok(lost);
        }
        report.job_id = job_id;
        let stored = self.meta().reports(&record.digest).await?;
        if let Some(now) = stored.into_iter().find(|r| r.id == report_id && r.job_id == 0) {
            self.cache.put(&ScanReport { job_id, ..now }, Some(&report_id), &[]).await?;
        }
        Ok(report)
    }

    /// Stops the scans of `kind` under way of `record` (an image, an index's children); how
    /// many.
    pub async fn stop(
        &self,
        kind: ScanKind,
        project: &registry_auth::Project,
        repository: &RepositoryName,
        record: &ManifestRecord,
        operator: &Operator,
    ) -> Result<usize, RequestError> {
        let Some(registration) = self.cache.scanner_of(project.id).await? else { return Ok(0) };
        let mut stopped = 0;
        for image in self.images(repository, record).await? {
            let Some(report) = self.made_by(&image.digest, &registration.uuid, kind).await? else { continue };
            if report.status != PENDING && report.status != RUNNING {
                continue;
            }
            if self.stop_report(report, project, repository, operator).await? {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    async fn stop_report(
        &self,
        report: ScanReport,
        project: &registry_auth::Project,
        repository: &RepositoryName,
        operator: &Operator,
    ) -> registry_storage::Result<bool> {
        let now = self.now_ms();
        self.meta().cancel_job(report.job_id, now).await?;
        let id = report.id.clone();
        let stopped = ScanReport { status: STOPPED.into(), ended_ms: now, ..report };
        let event = scan_event(
            now,
            operator.clone(),
            EventAction::ScanningStopped,
            &project.name,
            repository.as_str(),
            &stopped,
            None,
        );
        self.cache.put(&stopped, Some(&id), &[event]).await
    }

    /// Stops a scan of everything: the `scan_all` jobs under way and the scans they asked
    /// for that have not started; how many scans were stopped.
    pub async fn stop_all(&self, operator: &Operator) -> registry_storage::Result<usize> {
        let now = self.now_ms();
        let queue = self.meta();
        let mut stopped = 0;
        for status in [JobStatus::Pending, JobStatus::Running] {
            let filter = JobFilter { status: Some(status), ..JobFilter::kind(ALL_KIND) };
            for job in queue.jobs(&filter, 0, 1000).await?.0 {
                queue.cancel_job(job.id, now).await?;
                let filter = JobFilter {
                    status: Some(JobStatus::Pending),
                    key_prefix: Some(format!("scanall:{}:", job.id)),
                    ..JobFilter::kind(JOB_KIND)
                };
                loop {
                    let (pending, _) = queue.jobs(&filter, 0, 500).await?;
                    if pending.is_empty() {
                        break;
                    }
                    for scan in pending {
                        let Ok(payload) = serde_json::from_str::<ScanJob>(&scan.payload) else {
                            queue.cancel_job(scan.id, now).await?;
                            continue;
                        };
                        let report = self.made_by(&payload.digest, &payload.scanner, payload.kind).await?;
                        match (
                            report.filter(|r| r.id == payload.report_id),
                            self.options.accounts.project(&payload.project).await,
                        ) {
                            (Some(report), Ok(Some(project))) => {
                                let repo = RepositoryName::parse(&payload.repository)
                                    .map_err(|e| registry_storage::Error::corrupt("a scan job's repository", e))?;
                                self.stop_report(report, &project, &repo, operator).await?;
                            }
                            _ => {
                                queue.cancel_job(scan.id, now).await?;
                            }
                        }
                        stopped += 1;
                    }
                }
            }
        }
        Ok(stopped)
    }

    /// Runs one scan: the registration, the adapter's metadata, the request with a delegated
    /// credential, the report polled until ready or the timeout; the checked report.
    async fn scan(&self, job: &ScanJob, ctx: &JobContext) -> Result<Made, String> {
        let registration = registration::by_uuid(&**self.meta(), &job.scanner)
            .await
            .map_err(|e| e.to_string())?
            .map(|s| s.doc)
            .ok_or_else(|| format!("scanner {} was removed", job.scanner))?;
        if registration.disabled {
            return Err(format!("scanner {:?} is disabled", registration.name));
        }
        let adapter = Adapter::of(&registration, &self.options.key).map_err(|e| e.0)?;
        let metadata = adapter.metadata().await.map_err(|e| e.0)?;
        ctx.log(format!(
            "scanner {:?}: {} {} by {}",
            registration.name, metadata.scanner.name, metadata.scanner.version, metadata.scanner.vendor
        ));
        let report_type = match job.kind {
            ScanKind::Vulnerability => metadata.vulnerability_report(&job.media_type).ok_or_else(|| {
                format!(
                    "scanner {:?} does not report vulnerabilities of {} artifacts in a format the registry reads ({})",
                    registration.name,
                    job.media_type,
                    REPORT_TYPES.join(" or ")
                )
            })?,
            ScanKind::Sbom => metadata.sbom_report(&job.media_type).ok_or_else(|| {
                format!(
                    "scanner {:?} does not generate SBOMs of {} artifacts (its metadata lists no `sbom` \
                     capability producing {})",
                    registration.name,
                    job.media_type,
                    super::sbom::SBOM_REPORT
                )
            })?,
        };
        let tokens = self
            .options
            .tokens
            .as_ref()
            .ok_or("this registry issues no tokens, so a scanner cannot be given a credential to pull with")?;
        let scope = Scope::parse(&format!("repository:{}:pull", job.repository)).map_err(|e| e.to_string())?;
        let subject = crate::delegates::scanner_subject(&job.report_id);
        let timeout = self.options.timeout;
        let authorization = if metadata.wants_bearer() {
            format!("Bearer {}", tokens.access_token(&subject, &[scope], timeout).map_err(|e| e.to_string())?)
        } else {
            let credential = tokens.delegate(&subject, &[scope], timeout).map_err(|e| e.to_string())?;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{subject}:{credential}")))
        };
        let request = json!({
            "registry": {"url": self.options.registry_url, "authorization": authorization},
            "artifact": {"repository": job.repository, "digest": job.digest.to_string(), "tag": job.tag, "mime_type": job.media_type},
            "enabled_capabilities": [match job.kind {
                ScanKind::Vulnerability => json!({"type": "vulnerability", "produces_mime_types": [report_type]}),
                ScanKind::Sbom => json!({"type": "sbom", "produces_mime_types": [report_type],
                    "parameters": {"sbom_media_types": [super::sbom::SPDX]}}),
            }],
        });
        let id = adapter.scan(&request).await.map_err(|e| e.0)?;
        ctx.log(format!("scan {id} accepted; waiting for its report ({report_type})"));
        let deadline = tokio::time::Instant::now() + timeout;
        let bytes = loop {
            let query = (job.kind == ScanKind::Sbom).then_some(("sbom_media_type", super::sbom::SPDX));
            match adapter.report(&id, report_type, query).await.map_err(|e| e.0)? {
                Poll::Ready(bytes) => break bytes,
                Poll::Later(after) => {
                    let after = after.max(Duration::from_millis(100));
                    if tokio::time::Instant::now() + after > deadline {
                        return Err(format!(
                            "scanner {:?} had no report for scan {id} within {}s",
                            registration.name,
                            timeout.as_secs()
                        ));
                    }
                    tokio::time::sleep(after).await;
                }
            }
        };
        let named = |e: String| format!("scanner {:?}: {e}", registration.name);
        match job.kind {
            ScanKind::Vulnerability => report::parse(&bytes).map(Made::Report).map_err(named),
            ScanKind::Sbom => self.keep_sbom(job, super::sbom::parse(&bytes).map_err(named)?, ctx).await,
        }
    }

    /// Stores a generated SBOM as an accessory of the scanned image, replacing the one an
    /// earlier generation left.
    async fn keep_sbom(&self, job: &ScanJob, sbom: super::sbom::SbomReport, ctx: &JobContext) -> Result<Made, String> {
        let repository = RepositoryName::parse(&job.repository).map_err(|e| e.to_string())?;
        let subject = self
            .registry
            .stat_manifest(&repository, &Reference::Digest(job.digest.clone()))
            .await
            .map_err(|e| format!("the scanned artifact: {e}"))?;
        let created = registry_core::time::rfc3339(self.now_ms() / 1000);
        let operator = Operator::named(&crate::delegates::scanner_subject(&job.report_id), None);
        let digest = super::sbom::store(&self.registry, &repository, &subject, &sbom, &created, &operator).await?;
        ctx.log(format!("SBOM ({}) kept as {repository}@{digest}", sbom.media_type));
        let earlier: Vec<Digest> = self
            .registry
            .metadata_store()
            .referrers(&repository, &job.digest)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(super::sbom::ARTIFACT_TYPE) && r.digest != digest)
            .map(|r| r.digest)
            .collect();
        for old in earlier {
            match self.registry.delete_manifest(&repository, &Reference::Digest(old.clone()), &operator).await {
                Ok(()) => ctx.log(format!("the earlier SBOM {old} deleted")),
                Err(e) => ctx.log(format!("the earlier SBOM {old} stays: {e}")),
            }
        }
        Ok(Made::Sbom { digest, scanner: sbom.scanner })
    }
}

/// What a scan made.
enum Made {
    /// A vulnerability report.
    Report(report::Report),
    /// An SBOM, stored as the accessory `digest`.
    Sbom {
        /// The accessory.
        digest: Digest,
        /// Who made it.
        scanner: super::adapter::ScannerInfo,
    },
}

/// A scan asked for.
struct Asked<'a> {
    kind: ScanKind,
    project: &'a registry_auth::Project,
    repository: &'a RepositoryName,
    record: &'a ManifestRecord,
    tag: Option<&'a str>,
    trigger: &'a str,
    key: Option<&'a str>,
}

/// Harbor's `NativeReportSummary` of `report` (its counts less `allowed`, when it succeeded).
pub fn native_summary(report: &ScanReport) -> Value {
    let summary: Summary = serde_json::from_str(&report.summary).unwrap_or_default();
    let time = |ms: u64| (ms > 0).then(|| registry_core::time::rfc3339(ms / 1000));
    let duration = if report.ended_ms > report.started_ms { (report.ended_ms - report.started_ms) / 1000 } else { 0 };
    let mut out = json!({
        "report_id": report.id,
        "scan_status": report.status,
        "severity": if report.status == SUCCESS { summary.severity.clone() } else { String::new() },
        "duration": duration,
        "start_time": time(report.started_ms),
        "end_time": time(report.ended_ms),
        "complete_percent": if report.status == SUCCESS { 100 } else { 0 },
        "scanner": summary.scanner,
    });
    if report.status == SUCCESS {
        out["summary"] = summary.vulnerability_summary();
    }
    if let Some(error) = summary.error {
        out["error"] = json!(error);
    }
    out
}

/// An event of a scan of `report`.
fn scan_event(
    now: u64,
    operator: Operator,
    action: EventAction,
    project: &str,
    repository: &str,
    report: &ScanReport,
    tag: Option<&str>,
) -> Event {
    let overview = if ScanKind::Sbom.made(report) {
        json!({ "sbom_overview": super::sbom::overview(report) })
    } else {
        json!({ VULNERABILITY_REPORT: native_summary(report) })
    };
    let resource = Resource {
        project: Some(project.to_owned()),
        repository: Some(repository.to_owned()),
        digest: Some(report.digest.to_string()),
        tag: tag.map(str::to_owned),
        detail: Some(overview.to_string()),
        ..Resource::default()
    };
    Event::new(now, operator, action, resource)
}

/// Runs scan jobs.
pub struct ScanHandler {
    scanning: Arc<Scanning>,
}

impl ScanHandler {
    /// Runs the scans `scanning` asks for.
    pub fn new(scanning: Arc<Scanning>) -> Arc<ScanHandler> {
        Arc::new(ScanHandler { scanning })
    }
}

#[async_trait]
impl JobHandler for ScanHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let s = &self.scanning;
        let payload: ScanJob = serde_json::from_str(&job.payload)
            .map_err(|e| JobFailure::fatal(format!("the scan does not parse: {e}")))?;
        let stored = s.meta().reports(&payload.digest).await.map_err(JobFailure::retrying)?;
        let Some(pending) = stored.into_iter().find(|r| r.scanner == payload.scanner && r.id == payload.report_id)
        else {
            return Ok("superseded by a newer scan".into());
        };
        if pending.status != PENDING && pending.status != RUNNING {
            return Ok(format!("the scan is {}", pending.status.to_lowercase()));
        }
        let running = ScanReport { status: RUNNING.into(), job_id: job.id, ..pending.clone() };
        if !s.cache.put(&running, Some(&pending.id), &[]).await.map_err(JobFailure::retrying)? {
            return Ok("superseded by a newer scan".into());
        }
        ctx.log(format!(
            "{} of {}@{} of project {}",
            payload.kind.word(),
            payload.repository,
            payload.digest,
            payload.project
        ));
        let outcome = s.scan(&payload, ctx).await;
        let now = s.now_ms();
        let (status, summary, body, failure) = match outcome {
            Ok(Made::Report(report)) => {
                let summary = Summary::of(&report.findings, &report.scanner, &Default::default());
                ctx.log(format!(
                    "{} vulnerabilities, {} fixable, worst {}",
                    summary.total, summary.fixable, summary.severity
                ));
                (SUCCESS, summary, report.document.to_string(), None)
            }
            Ok(Made::Sbom { digest, scanner }) => {
                let summary = Summary { scanner, sbom_digest: Some(digest.to_string()), ..Summary::default() };
                (SUCCESS, summary, String::new(), None)
            }
            Err(why) => {
                ctx.log(format!("failed: {why}"));
                (ERROR, Summary { error: Some(why.clone()), ..Summary::default() }, String::new(), Some(why))
            }
        };
        let done = ScanReport {
            status: status.into(),
            ended_ms: now,
            summary: serde_json::to_string(&summary).unwrap_or_default(),
            body,
            ..running
        };
        let action = if failure.is_none() { EventAction::ScanningCompleted } else { EventAction::ScanningFailed };
        let event = scan_event(
            now,
            Operator::system(),
            action,
            &payload.project,
            &payload.repository,
            &done,
            payload.tag.as_deref(),
        );
        s.cache.put(&done, Some(&done.id), &[event]).await.map_err(JobFailure::retrying)?;
        match (failure, summary.sbom_digest) {
            (None, Some(sbom)) => Ok(format!("SBOM {sbom}")),
            (None, None) => Ok(format!("{} vulnerabilities, worst {}", summary.total, summary.severity)),
            (Some(why), _) => Err(JobFailure::fatal(why)),
        }
    }
}

/// Runs scans of everything.
pub struct ScanAllHandler {
    scanning: Arc<Scanning>,
}

impl ScanAllHandler {
    /// Scans of everything through `scanning`.
    pub fn new(scanning: Arc<Scanning>) -> Arc<ScanAllHandler> {
        Arc::new(ScanAllHandler { scanning })
    }
}

/// A scan of everything's counts.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ScanAllReport {
    /// Artifacts a scan was asked for (or found under way).
    pub requested: u64,
    /// Artifacts not scanned (not images, or no scanner for their project).
    pub skipped: u64,
}

#[async_trait]
impl JobHandler for ScanAllHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let s = &self.scanning;
        let retry = |e: registry_storage::Error| JobFailure::retry(e.to_string());
        let mut report = ScanAllReport::default();
        let mut projects: HashMap<String, Option<registry_auth::Project>> = HashMap::new();
        let mut last: Option<String> = None;
        let key = format!("scanall:{}", job.id);
        loop {
            let page = s.registry.catalog(last.as_deref(), Some(500)).await.map_err(retry)?;
            for name in &page.entries {
                let Ok(repository) = RepositoryName::parse(name) else { continue };
                let project_name = registry_storage::quota::project_of(name).to_owned();
                if !projects.contains_key(&project_name) {
                    let found = s.options.accounts.project(&project_name).await.ok().flatten();
                    projects.insert(project_name.clone(), found);
                }
                let Some(Some(project)) = projects.get(&project_name) else { continue };
                for entry in crate::artifacts::all_manifests(&s.registry, &repository).await.map_err(retry)? {
                    if crate::artifacts::place(&entry) != crate::artifacts::Place::Artifact {
                        continue;
                    }
                    let tag = entry.tags.first().map(String::as_str);
                    let kind = ScanKind::Vulnerability;
                    match s.request(kind, project, &repository, &entry.record, tag, "scan_all", Some(&key)).await {
                        Ok(asked) => report.requested += asked.len() as u64,
                        Err(RequestError::Store(e)) => return Err(retry(e)),
                        Err(_) => report.skipped += 1,
                    }
                }
                ctx.progress(serde_json::to_string(&report).unwrap_or_default());
            }
            last = page.entries.last().cloned();
            if !page.more {
                break;
            }
        }
        ctx.log(format!("asked for {} scans; {} artifacts skipped", report.requested, report.skipped));
        Ok(serde_json::to_string(&report).unwrap_or_default())
    }
}

/// Harbor's `Schedule` of the scan of everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScheduleDoc {
    /// `None`, `Hourly`, `Daily`, `Weekly`, `Custom` (or `Manual`, which runs once).
    #[serde(rename = "type")]
    pub kind: String,
    /// The cron expression (six fields).
    #[serde(default)]
    pub cron: String,
}

impl ScheduleDoc {
    /// Checks a schedule: its type and, for `Custom` and the named ones, its cron.
    pub fn checked(mut self) -> Result<ScheduleDoc, crate::selectors::Invalid> {
        let cron = match self.kind.as_str() {
            "None" | "" => {
                self.kind = "None".into();
                self.cron.clear();
                return Ok(self);
            }
            "Hourly" => "0 0 * * * *",
            "Daily" => "0 0 0 * * *",
            "Weekly" => "0 0 0 * * 0",
            "Custom" | "Schedule" => self.cron.as_str(),
            other => {
                return Err(crate::selectors::Invalid(format!(
                    "schedule.type {other:?} is unknown; use None, Hourly, Daily, Weekly or Custom"
                )));
            }
        }
        .to_owned();
        Cron::parse(&cron).map_err(|e| crate::selectors::Invalid(format!("schedule.cron: {e}")))?;
        self.cron = cron;
        Ok(self)
    }

    /// The cron of a schedule that fires.
    pub fn cron(&self) -> Option<Cron> {
        (self.kind != "None").then(|| Cron::parse(&self.cron).ok()).flatten()
    }
}

async fn schedule_record(meta: &dyn MetadataStore) -> registry_storage::Result<Option<PolicyRecord>> {
    Ok(meta.policies(SCHEDULE_KIND, Some(SYSTEM)).await?.into_iter().next())
}

/// The scan-all schedule and its record.
pub async fn schedule_of(meta: &dyn MetadataStore) -> registry_storage::Result<(ScheduleDoc, Option<PolicyRecord>)> {
    let record = schedule_record(meta).await?;
    let doc = record.as_ref().and_then(|r| serde_json::from_str(&r.body).ok()).unwrap_or_default();
    Ok((doc, record))
}

/// Stores the scan-all schedule with `events`.
pub async fn set_schedule(
    meta: &dyn MetadataStore,
    doc: &ScheduleDoc,
    events: &[Event],
) -> registry_storage::Result<()> {
    let existing = schedule_record(meta).await?;
    let record = PolicyRecord {
        id: existing.map_or(0, |r| r.id),
        kind: SCHEDULE_KIND.into(),
        project_id: SYSTEM,
        name: "schedule".into(),
        body: serde_json::to_string(doc).unwrap_or_default(),
        created_ms: 0,
        updated_ms: 0,
    };
    meta.put_policy(&record, events).await.map(|_| ())
}

/// Enqueues a scan of everything; its job's id.
pub async fn start_all(jobs: &JobRunner, trigger: &str, key: String) -> registry_storage::Result<u64> {
    Ok(jobs.enqueue(&NewJob::new(ALL_KIND, "{}".into(), trigger).key(key)).await?.0)
}

/// Every `every`, enqueues the scan of everything when its schedule fired since the last look
/// (each fire time once across replicas, by key), until the task is aborted.
pub fn schedule(jobs: Arc<JobRunner>, meta: Arc<dyn MetadataStore>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut checked = jobs.clock().now_secs();
        loop {
            tokio::time::sleep(every).await;
            let now = jobs.clock().now_secs();
            match schedule_of(&*meta).await {
                Ok((doc, _)) => {
                    if let Some(cron) = doc.cron() {
                        let mut fire = None;
                        let mut at = checked;
                        while let Some(next) = cron.next_after(at).filter(|t| *t <= now) {
                            fire = Some(next);
                            at = next;
                        }
                        if let Some(fire) = fire
                            && let Err(e) = start_all(&jobs, "schedule", format!("scanall:schedule:{fire}")).await
                        {
                            tracing::warn!(error = %e, "enqueueing the scheduled scan of everything failed");
                        }
                    }
                    checked = now;
                }
                Err(e) => tracing::warn!(error = %e, "reading the scan-all schedule failed; trying again"),
            }
        }
    })
}

/// Scans what is pushed to projects with `auto_scan` on, reading the event stream.
pub struct AutoScan {
    /// The scans.
    pub scanning: Arc<Scanning>,
    /// How often the stream is read when nothing waits.
    pub poll: Duration,
}

impl AutoScan {
    /// Reads the stream until the task is aborted.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let poll = self.poll;
        crate::consumer::start(self, poll)
    }

    /// One pass over the events after the cursor; whether more may follow at once.
    pub async fn pass_once(&self) -> registry_storage::Result<bool> {
        const BATCH: usize = 256;
        let s = &self.scanning;
        let meta = s.meta();
        let from = meta.cursor(CURSOR).await?;
        let events = meta.events_after(from, BATCH).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let horizon = s.now_ms().saturating_sub(AUTO_SCAN_HORIZON_MS);
        let mut projects: HashMap<String, Option<registry_auth::Project>> = HashMap::new();
        for event in events.iter().filter(|e| e.action == EventAction::PushArtifact && e.time_ms >= horizon) {
            let (Some(project_name), Some(repository), Some(digest)) =
                (&event.resource.project, &event.resource.repository, &event.resource.digest)
            else {
                continue;
            };
            if !projects.contains_key(project_name) {
                let found = s.options.accounts.project(project_name).await.ok().flatten();
                projects.insert(project_name.clone(), found);
            }
            let Some(Some(project)) = projects.get(project_name) else { continue };
            let on = |key: &str| project.metadata.get(key).is_some_and(|v| v == "true");
            let kinds: Vec<ScanKind> = [(AUTO_SCAN, ScanKind::Vulnerability), (AUTO_SBOM, ScanKind::Sbom)]
                .into_iter()
                .filter(|(key, _)| on(key))
                .map(|(_, kind)| kind)
                .collect();
            if kinds.is_empty() {
                continue;
            }
            let (Ok(repository), Ok(digest)) = (RepositoryName::parse(repository), Digest::parse(digest)) else {
                continue;
            };
            // Gone since, or an index (its children were pushed, and scanned, on their own).
            let Ok(record) = s.registry.stat_manifest(&repository, &Reference::Digest(digest)).await else { continue };
            if scannable(&record) != Scannable::Image
                || event.resource.tag.as_deref().is_some_and(|t| crate::artifacts::cosign_tag(t).is_some())
            {
                continue;
            }
            let key = format!("autoscan:{}", event.id);
            let tag = event.resource.tag.as_deref();
            for kind in kinds {
                match s.request(kind, project, &repository, &record, tag, "auto_scan", Some(&key)).await {
                    Ok(_) => {}
                    Err(RequestError::Store(e)) => return Err(e),
                    Err(e) => tracing::info!(project = %project.name, reason = %e, "not scanned on push"),
                }
            }
        }
        meta.advance_cursor(CURSOR, from, last).await?;
        Ok(events.len() == BATCH)
    }
}

impl crate::consumer::Consumer for AutoScan {
    const NAME: &'static str = "auto_scan";

    async fn pass(&self) -> Result<bool, String> {
        self.pass_once().await.map_err(|e| e.to_string())
    }
}
