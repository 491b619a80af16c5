//! Scans: an artifact's scan (`…/artifacts/{reference}/scan`, `…/scan/stop`, `…/scan/{report_id}/log`),
//! its report (`…/additions/vulnerabilities`) and overview (`scan_overview` of the artifacts
//! listing with `with_scan_overview=true`), the scan of everything (`/system/scanAll/schedule`,
//! `/system/scanAll/stop`, `/scans/all/metrics`, `/scans/schedule/metrics`) and the system's CVE
//! allowlist (`/system/CVEAllowlist`); in Harbor's shapes. Scans are jobs: asking answers 202 at
//! once, and the report's status says how the scan goes.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::event::{Event, EventAction, Resource};
use registry_core::scope::Action;
use registry_platform::scan::VULNERABILITY_REPORT;
use registry_platform::scan::allowlist::{self, Allowlist};
use registry_platform::scan::jobs::{
    self as scan_jobs, RequestError, ScanKind, Scannable, ScheduleDoc, native_summary, scannable,
};
use registry_platform::scan::report::{Severity, Summary};
use registry_storage::jobs::JobFilter;
use registry_storage::policies::SYSTEM;
use registry_storage::{JobStatus, ManifestRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::artifacts::{repository_of, require};
use super::context::bad_request;
use super::scanners::scanning;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, status_only, text};

/// Harbor's `ScanType`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ScanType {
    scan_type: Option<String>,
}

/// The kind of scan the body asks for (none: a vulnerability scan).
fn scan_kind(call: &ApiCall) -> Result<ScanKind, ApiError> {
    if call.body.is_empty() {
        return Ok(ScanKind::Vulnerability);
    }
    let kind: ScanType = call.json()?;
    ScanKind::parse(kind.scan_type.as_deref()).ok_or_else(|| {
        bad_request(format!(
            "scan_type {:?} is unknown; use \"vulnerability\" or \"sbom\"",
            kind.scan_type.unwrap_or_default()
        ))
    })
}

fn request_error(e: RequestError) -> ApiError {
    match e {
        RequestError::NoScanner(m) | RequestError::Disabled(m) => ApiError::harbor(StatusCode::PRECONDITION_FAILED, m),
        RequestError::NotScannable(m) => ApiError::harbor(StatusCode::UNPROCESSABLE_ENTITY, m),
        RequestError::Store(e) => e.into(),
    }
}

/// `POST …/artifacts/{reference}/scan` (`{"scan_type": "vulnerability" | "sbom"}`): 202; an
/// index's image children are scanned. 412 when the project has no usable scanner, 422 when the
/// artifact is not an image.
pub(crate) async fn scan(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    api.require_permission(&call, &project, "scan", "create").await?;
    let kind = scan_kind(&call)?;
    let scanning = scanning(&api)?;
    let (record, tag) = super::artifacts::record_of(&api, &call, &name).await?;
    scanning.request(kind, &project, &name, &record, tag.as_deref(), "manual", None).await.map_err(request_error)?;
    Ok(status_only(StatusCode::ACCEPTED))
}

/// `POST …/artifacts/{reference}/scan/stop`: 202 when a scan was under way.
pub(crate) async fn stop(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    api.require_permission(&call, &project, "scan", "stop").await?;
    let kind = scan_kind(&call)?;
    let scanning = scanning(&api)?;
    let (record, _) = super::artifacts::record_of(&api, &call, &name).await?;
    let stopped = scanning.stop(kind, &project, &name, &record, &call.operator).await.map_err(request_error)?;
    if stopped == 0 {
        return Err(bad_request(format!("no scan of {name}@{} is under way", record.digest)));
    }
    Ok(status_only(StatusCode::ACCEPTED))
}

/// `GET …/artifacts/{reference}/scan/{report_id}/log`: the scan job's log.
pub(crate) async fn log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    scanning(&api)?;
    let (record, _) = super::artifacts::record_of(&api, &call, &name).await?;
    let report_id = call.params.get("report_id")?;
    let meta = api.registry.metadata_store();
    let mut digests = vec![record.digest.clone()];
    if let Scannable::Index(children) = scannable(&record) {
        digests.extend(children);
    }
    for digest in digests {
        if let Some(report) = meta.reports(&digest).await?.into_iter().find(|r| r.id == report_id) {
            let job = meta.job(report.job_id).await?;
            let mut log = job.as_ref().map(|j| j.log.clone()).unwrap_or_default();
            // The report records a failed scan's error before the job's end is written: until
            // then the report's error is the log's last line.
            let error = job
                .map(|j| j.error)
                .filter(|e| !e.is_empty())
                .or_else(|| native_summary(&report)["error"].as_str().filter(|e| !e.is_empty()).map(str::to_owned));
            if let Some(error) = error {
                log.push_str(&format!("error: {error}\n"));
            }
            return Ok(text(StatusCode::OK, log));
        }
    }
    Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("report {report_id} of {name}@{} not found", record.digest)))
}

/// `GET …/artifacts/{reference}/additions/vulnerabilities`: `{"<report type>": report}` of the
/// project's scanner, `{}` when there is none yet.
pub(crate) async fn vulnerabilities(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let scanning = scanning(&api)?;
    let (record, _) = super::artifacts::record_of(&api, &call, &name).await?;
    let Some(scanner) = scanning.scanner_of(project.id).await? else {
        return Ok(json_response(StatusCode::OK, &json!({})));
    };
    let report = scanning.full_report(&record.digest, &scanner.uuid).await?;
    let body = match report.filter(|r| r.status == scan_jobs::SUCCESS) {
        Some(r) => {
            let document: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            json!({ VULNERABILITY_REPORT: document })
        }
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET …/artifacts/{reference}/additions/sbom`: the SBOM the project's scanner made of the
/// artifact (the document kept in its SBOM accessory); 404 when there is none.
pub(crate) async fn sbom(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let (record, _) = super::artifacts::record_of(&api, &call, &name).await?;
    let missing = || ApiError::harbor(StatusCode::NOT_FOUND, format!("{name}@{} has no SBOM", record.digest));
    let overview = sbom_overview(&api, &project, &record).await?.ok_or_else(missing)?;
    let digest = overview["sbom_digest"].as_str().and_then(|d| registry_core::Digest::parse(d).ok());
    let digest = digest.ok_or_else(missing)?;
    let limit = registry_platform::scan::adapter::MAX_REPORT as u64;
    let document =
        registry_platform::scan::sbom::document(&api.registry, &name, &digest, limit).await?.ok_or_else(missing)?;
    let value: Value = serde_json::from_slice(&document).map_err(|_| missing())?;
    Ok(json_response(StatusCode::OK, &value))
}

/// The `scan_overview` of `record` for `project` (an index's: its children's together), if it
/// was scanned by the project's scanner.
pub(crate) async fn overview(api: &Api, project: &Project, record: &ManifestRecord) -> Result<Option<Value>, ApiError> {
    let Some(scanning) = api.scanning.as_ref() else { return Ok(None) };
    let Some(scanner) = scanning.scanner_of(project.id).await? else { return Ok(None) };
    let digests = match scannable(record) {
        Scannable::Image => vec![record.digest.clone()],
        Scannable::Index(children) => children,
        Scannable::No(_) => return Ok(None),
    };
    let mut reports = Vec::new();
    for digest in &digests {
        if let Some(r) = scanning.report_of(digest, &scanner.uuid).await? {
            reports.push(r);
        }
    }
    if reports.is_empty() {
        return Ok(None);
    }
    if digests.len() == 1 && digests[0] == record.digest {
        return Ok(Some(json!({ VULNERABILITY_REPORT: native_summary(&reports[0]) })));
    }
    Ok(Some(json!({ VULNERABILITY_REPORT: index_summary(&reports, digests.len()) })))
}

/// The `sbom_overview` of `record` for `project`, if the project's scanner made an SBOM of it.
pub(crate) async fn sbom_overview(
    api: &Api,
    project: &Project,
    record: &ManifestRecord,
) -> Result<Option<Value>, ApiError> {
    let Some(scanning) = api.scanning.as_ref() else { return Ok(None) };
    let Some(scanner) = scanning.scanner_of(project.id).await? else { return Ok(None) };
    if scannable(record) != Scannable::Image {
        return Ok(None);
    }
    let made = scanning.made_by(&record.digest, &scanner.uuid, ScanKind::Sbom).await?;
    Ok(made.as_ref().map(registry_platform::scan::sbom::overview))
}

/// An index's overview: its children's reports together (the worst severity, the counts summed,
/// running while any runs).
fn index_summary(reports: &[registry_storage::ScanReport], children: usize) -> Value {
    let status = |s: &str| reports.iter().any(|r| r.status == s);
    let done = reports.iter().filter(|r| r.status == scan_jobs::SUCCESS).count();
    let overall = if status(scan_jobs::RUNNING) || status(scan_jobs::PENDING) {
        scan_jobs::RUNNING
    } else if status(scan_jobs::ERROR) {
        scan_jobs::ERROR
    } else if status(scan_jobs::STOPPED) {
        scan_jobs::STOPPED
    } else {
        scan_jobs::SUCCESS
    };
    let mut total = Summary::default();
    let mut worst = Severity::None;
    for r in reports.iter().filter(|r| r.status == scan_jobs::SUCCESS) {
        let s: Summary = serde_json::from_str(&r.summary).unwrap_or_default();
        total.total += s.total;
        total.fixable += s.fixable;
        for (k, n) in s.summary {
            *total.summary.entry(k).or_default() += n;
        }
        worst = worst.max(Severity::parse(&s.severity).unwrap_or_default());
        total.scanner = s.scanner;
    }
    let start = reports.iter().map(|r| r.started_ms).min().unwrap_or(0);
    let end = reports.iter().map(|r| r.ended_ms).max().unwrap_or(0);
    json!({
        "report_id": "",
        "scan_status": overall,
        "severity": if done > 0 { worst.as_str() } else { "" },
        "duration": end.saturating_sub(start) / 1000,
        "start_time": registry_core::time::rfc3339(start / 1000),
        "end_time": (end > 0).then(|| registry_core::time::rfc3339(end / 1000)),
        "complete_percent": done * 100 / children.max(1),
        "summary": total.vulnerability_summary(),
        "scanner": total.scanner,
    })
}

/// Harbor's `Schedule` of the scan of everything.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ScheduleReq {
    schedule: Option<ScheduleDoc>,
}

async fn scan_all_under_way(api: &Api) -> Result<Option<registry_storage::Job>, ApiError> {
    let queue = api.registry.metadata_store();
    for status in [JobStatus::Running, JobStatus::Pending] {
        let filter = JobFilter { status: Some(status), ..JobFilter::kind(scan_jobs::ALL_KIND) };
        if let Some(job) = queue.jobs(&filter, 0, 1).await?.0.into_iter().next() {
            return Ok(Some(job));
        }
    }
    Ok(None)
}

/// `GET /system/scanAll/schedule`.
pub(crate) async fn get_schedule(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let (doc, record) = scan_jobs::schedule_of(&**api.registry.metadata_store()).await?;
    let kind = if doc.kind.is_empty() { "None".to_owned() } else { doc.kind.clone() };
    let next = doc.cron().and_then(|c| c.next_after(api.registry.clock().now_secs()));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": record.as_ref().map_or(0, |r| r.id),
            "status": if kind == "None" { "" } else { "Scheduled" },
            "creation_time": record.as_ref().map(|r| registry_core::time::rfc3339(r.created_ms / 1000)),
            "update_time": record.as_ref().map(|r| registry_core::time::rfc3339(r.updated_ms / 1000)),
            "schedule": {"type": kind, "cron": doc.cron, "next_scheduled_time": next.map(registry_core::time::rfc3339)},
        }),
    ))
}

/// `POST /system/scanAll/schedule` (201) and `PUT` (200): type `Manual` scans everything now
/// (409 while a scan of everything runs); the other types set the schedule.
pub(crate) async fn set_schedule(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let req: ScheduleReq = call.json()?;
    let doc = req.schedule.ok_or_else(|| bad_request("schedule is required: {\"schedule\": {\"type\": …}}"))?;
    if doc.kind == "Manual" {
        if let Some(job) = scan_all_under_way(&api).await? {
            return Err(ApiError::harbor(
                StatusCode::CONFLICT,
                format!("a scan of everything is under way (job {}); stop it or wait", job.id),
            ));
        }
        let jobs = api.jobs.as_ref().ok_or_else(|| bad_request("this registry runs no jobs"))?;
        let nonce = registry_platform::scan::registration::new_uuid();
        scan_jobs::start_all(jobs, "manual", format!("scanall:manual:{nonce}")).await?;
        return Ok(status_only(StatusCode::CREATED));
    }
    let doc = doc.checked().map_err(|e| bad_request(e.0))?;
    let resource = Resource {
        name: Some("scan all schedule".into()),
        detail: Some(format!("{} {}", doc.kind, doc.cron)),
        ..Resource::default()
    };
    let event =
        Event::new(api.registry.clock().now_millis(), call.operator.clone(), EventAction::UpdateSettings, resource);
    scan_jobs::set_schedule(&**api.registry.metadata_store(), &doc, &[event]).await?;
    Ok(status_only(StatusCode::CREATED))
}

/// `PUT /system/scanAll/schedule`.
pub(crate) async fn put_schedule(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let mut response = set_schedule(api, call).await?;
    if response.status() == StatusCode::CREATED {
        *response.status_mut() = StatusCode::OK;
    }
    Ok(response)
}

/// `POST /system/scanAll/stop`: 202 when a scan of everything was under way.
pub(crate) async fn stop_all(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?;
    if scan_all_under_way(&api).await?.is_none() {
        return Err(bad_request("no scan of everything is under way"));
    }
    scanning.stop_all(&call.operator).await?;
    Ok(status_only(StatusCode::ACCEPTED))
}

/// `GET /scans/all/metrics` and `/scans/schedule/metrics`: the latest scan of everything's scans
/// by status (Harbor's `Stats`).
pub(crate) async fn metrics(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let queue = api.registry.metadata_store();
    let Some(latest) = queue.jobs(&JobFilter::kind(scan_jobs::ALL_KIND), 0, 1).await?.0.into_iter().next() else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"total": 0, "completed": 0, "metrics": {}, "ongoing": false}),
        ));
    };
    let prefix = format!("scanall:{}:", latest.id);
    let mut metrics = serde_json::Map::new();
    let (mut total, mut completed) = (0, 0);
    for (status, name) in [
        (JobStatus::Pending, "Pending"),
        (JobStatus::Running, "Running"),
        (JobStatus::Succeeded, "Success"),
        (JobStatus::Failed, "Error"),
        (JobStatus::Cancelled, "Stopped"),
    ] {
        let filter = JobFilter {
            status: Some(status),
            key_prefix: Some(prefix.clone()),
            ..JobFilter::kind(scan_jobs::JOB_KIND)
        };
        let (_, n) = queue.jobs(&filter, 0, 0).await?;
        if n > 0 {
            metrics.insert(name.into(), json!(n));
        }
        total += n;
        if status.is_final() {
            completed += n;
        }
    }
    let ongoing = !latest.status.is_final() || completed < total;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total": total,
            "completed": completed,
            "metrics": metrics,
            "ongoing": ongoing,
            "trigger": if latest.trigger == "schedule" { "Schedule" } else { "Manual" },
        }),
    ))
}

/// `GET /system/CVEAllowlist` (anyone signed in).
pub(crate) async fn get_system_allowlist(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.signed_in()?;
    scanning(&api)?;
    let (list, record) = allowlist::load(&**api.registry.metadata_store(), SYSTEM).await?;
    Ok(json_response(StatusCode::OK, &list.to_json(SYSTEM, record.as_ref())))
}

/// `PUT /system/CVEAllowlist` (system admins): replaces the system's allowlist.
pub(crate) async fn put_system_allowlist(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let list: Allowlist = call.json()?;
    let list = list.checked().map_err(|e| bad_request(e.0))?;
    save_allowlist(&api, &call, SYSTEM, "system", &list).await?;
    scanning.cache().forget_settings();
    Ok(status_only(StatusCode::OK))
}

/// Stores the allowlist of `project_id` (named `whose` in the audit log).
pub(crate) async fn save_allowlist(
    api: &Api,
    call: &ApiCall,
    project_id: u64,
    whose: &str,
    list: &Allowlist,
) -> Result<(), ApiError> {
    let resource = Resource {
        project: (project_id != SYSTEM).then(|| whose.to_owned()),
        name: Some("CVE allowlist".into()),
        detail: Some(format!("{} CVEs allowed in {whose}", list.items.len())),
        ..Resource::default()
    };
    let event =
        Event::new(api.registry.clock().now_millis(), call.operator.clone(), EventAction::UpdatePolicy, resource);
    allowlist::save(&**api.registry.metadata_store(), project_id, list, &[event]).await?;
    if let Some(s) = &api.scanning {
        s.cache().forget_settings();
    }
    Ok(())
}
