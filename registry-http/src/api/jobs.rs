//! The job service (`/jobservice/…`, system administrators only): the queues by job type, the
//! jobs with their status, progress and log, and stopping them. Harbor's `queues` shapes, and
//! `jobs` listing every job of the shared queue.

use std::sync::Arc;

use http::StatusCode;
use registry_core::time::rfc3339;
use registry_storage::Job;
use registry_storage::jobs::{JobFilter, JobStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::{Paging, page_response};
use super::system::harbor_status;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, text};

/// A job in the API's shape.
fn job_json(job: &Job) -> Value {
    json!({
        "id": job.id,
        "job_type": job.kind,
        "trigger": job.trigger,
        "status": harbor_status(job.status),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "worker": job.worker,
        "progress": serde_json::from_str::<Value>(&job.progress).unwrap_or(Value::String(job.progress.clone())),
        "error": job.error,
        "creation_time": rfc3339(job.created_ms / 1000),
        "update_time": rfc3339(job.updated_ms / 1000),
        "run_at": rfc3339(job.run_at_ms / 1000),
    })
}

async fn find(api: &Api, call: &ApiCall) -> Result<Job, ApiError> {
    call.require_admin()?;
    let id = call.params.id("job_id")?;
    api.registry
        .metadata_store()
        .job(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("job {id} not found")))
}

/// `GET /jobservice/queues`: per job type, how many wait, run and failed, and how long the
/// oldest has waited (seconds).
pub(crate) async fn queues(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let store = api.registry.metadata_store();
    let counts = store.job_counts().await?;
    let mut kinds: Vec<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
    kinds.dedup();
    let now = api.registry.clock().now_millis();
    let mut out = Vec::new();
    for kind in kinds {
        let count = |status| counts.iter().find(|c| c.kind == kind && c.status == status).map_or(0, |c| c.count);
        let pending = JobFilter { kind: Some(kind.into()), status: Some(JobStatus::Pending), ..JobFilter::default() };
        let (_, waiting) = store.jobs(&pending, 0, 0).await?;
        let oldest = if waiting > 0 {
            store.jobs(&pending, waiting.saturating_sub(1) as usize, 1).await?.0.first().map(|j| j.created_ms)
        } else {
            None
        };
        out.push(json!({
            "job_type": kind,
            "count": count(JobStatus::Pending),
            "running": count(JobStatus::Running),
            "succeeded": count(JobStatus::Succeeded),
            "failed": count(JobStatus::Failed),
            "stopped": count(JobStatus::Cancelled),
            "latency": oldest.map_or(0, |created| now.saturating_sub(created) / 1000),
            "paused": false,
        }));
    }
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

#[derive(Deserialize)]
struct Action {
    action: String,
    #[serde(default)]
    job_type: Option<String>,
}

fn stop_only(action: &Action) -> Result<(), ApiError> {
    match action.action.as_str() {
        "stop" => Ok(()),
        other => Err(bad_request(format!("action {other:?} is not supported here; the only action is \"stop\""))),
    }
}

/// `PUT /jobservice/queues` with `{"action": "stop", "job_type": "…"}`: stops every pending and
/// running job of the type (`"all"` for every type).
pub(crate) async fn stop_queue(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let action: Action = call.json()?;
    stop_only(&action)?;
    let kind = action.job_type.ok_or_else(|| bad_request("job_type is required (a job type, or \"all\")"))?;
    let store = api.registry.metadata_store();
    let now = api.registry.clock().now_millis();
    let mut stopped = 0;
    for status in [JobStatus::Pending, JobStatus::Running] {
        let filter =
            JobFilter { kind: (kind != "all").then(|| kind.clone()), status: Some(status), ..JobFilter::default() };
        let (jobs, _) = store.jobs(&filter, 0, usize::MAX).await?;
        for job in jobs {
            store.cancel_job(job.id, now).await?;
            stopped += 1;
        }
    }
    Ok(json_response(StatusCode::OK, &json!({"stopped": stopped})))
}

/// `GET /jobservice/jobs?job_type=&status=`: jobs, newest first, paged.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let status = match call.query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobStatus::parse(s).or_else(|| harbor_status_named(s)).ok_or_else(|| {
            bad_request(format!("status {s:?} is none of pending, running, succeeded, failed, cancelled"))
        })?),
    };
    let filter = JobFilter {
        kind: call.query.get("job_type").filter(|k| !k.is_empty()).map(str::to_owned),
        status,
        ..JobFilter::default()
    };
    let paging = Paging::of(&call)?;
    let offset = ((paging.page - 1) * paging.page_size) as usize;
    let (jobs, total) = api.registry.metadata_store().jobs(&filter, offset, paging.page_size as usize).await?;
    page_response(&call, "/jobservice/jobs", paging, jobs.iter().map(job_json).collect(), total)
}

fn harbor_status_named(text: &str) -> Option<JobStatus> {
    [JobStatus::Pending, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled]
        .into_iter()
        .find(|s| harbor_status(*s).eq_ignore_ascii_case(text))
}

/// `GET /jobservice/jobs/{job_id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    Ok(json_response(StatusCode::OK, &job_json(&find(&api, &call).await?)))
}

/// `GET /jobservice/jobs/{job_id}/log`: the job's log, as text.
pub(crate) async fn log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let job = find(&api, &call).await?;
    let mut log = job.log.clone();
    if !job.error.is_empty() {
        log.push_str(&format!("error: {}\n", job.error));
    }
    Ok(text(StatusCode::OK, log))
}

/// `PUT /jobservice/jobs/{job_id}` with `{"action": "stop"}`.
pub(crate) async fn stop(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let job = find(&api, &call).await?;
    stop_only(&call.json()?)?;
    if job.status.is_final() {
        return Err(ApiError::harbor(
            StatusCode::CONFLICT,
            format!("job {} has already ended ({})", job.id, harbor_status(job.status)),
        ));
    }
    let now = api.registry.clock().now_millis();
    let job = api.registry.metadata_store().cancel_job(job.id, now).await?.unwrap_or(job);
    Ok(json_response(StatusCode::OK, &job_json(&job)))
}
