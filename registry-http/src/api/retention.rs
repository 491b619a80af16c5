//! Tag retention in Harbor's shapes: `/retentions/metadatas`, `/retentions` (create: the
//! project's `retention_id` is set), `/retentions/{id}` (get, update, delete),
//! `…/executions` (list, start `{"dry_run": …}`), `…/executions/{eid}` (`{"action": "stop"}`),
//! `…/executions/{eid}/tasks` and `…/tasks/{tid}` (a repository's log). Who may: Harbor's
//! `tag-retention` permission (project admins, maintainers, developers; robots holding it).

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::event::{Event, EventAction, Resource};
use registry_core::time::rfc3339;
use registry_platform::retention::{self, KIND, METADATA, RetentionPolicy};
use registry_storage::{Job, JobStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::Paging;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only, text};

const RESOURCE: &str = "tag-retention";

fn jobs(api: &Api) -> Result<&Arc<registry_storage::JobRunner>, ApiError> {
    api.jobs.as_ref().ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, "this registry runs no jobs"))
}

fn event(api: &Api, call: &ApiCall, project: &Project, action: EventAction, what: &str) -> Event {
    let resource = Resource {
        project: Some(project.name.clone()),
        name: Some("tag retention policy".into()),
        detail: Some(what.to_owned()),
        ..Resource::default()
    };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}

async fn project_by_id(api: &Api, id: u64) -> Result<Project, ApiError> {
    api.accounts()?
        .project_by_id(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("project {id} not found")))
}

/// The policy of the path's `{id}` with its project, after checking `action` is allowed.
async fn policy(api: &Api, call: &ApiCall, action: &str) -> Result<(RetentionPolicy, Project), ApiError> {
    let id = call.params.id("id")?;
    let missing = || ApiError::harbor(StatusCode::NOT_FOUND, format!("retention policy {id} not found"));
    let record = api.registry.metadata_store().policy(KIND, id).await?.ok_or_else(missing)?;
    let policy = RetentionPolicy::of(&record).ok_or_else(missing)?;
    let project = project_by_id(api, policy.scope.reference).await?;
    api.require_permission(call, &project, RESOURCE, action).await?;
    Ok((policy, project))
}

fn parse(call: &ApiCall) -> Result<RetentionPolicy, ApiError> {
    let policy: RetentionPolicy = call.json()?;
    policy.checked().map_err(|e| bad_request(e.0))
}

/// `GET /retentions/metadatas`.
pub(crate) async fn metadatas(_: Arc<Api>, call: ApiCall) -> ApiResult {
    call.signed_in()?;
    Ok(json_response(StatusCode::OK, &retention::metadata()))
}

/// `POST /retentions`: 201 with `Location`; the project's `retention_id` names it. 409 when
/// the project has one already.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let policy = parse(&call)?;
    let project = project_by_id(&api, policy.scope.reference).await?;
    api.require_permission(&call, &project, RESOURCE, "create").await?;
    let event = event(&api, &call, &project, EventAction::CreatePolicy, &format!("{} rules", policy.rules.len()));
    let id =
        match api.registry.metadata_store().put_policy(&RetentionPolicy { id: 0, ..policy }.record(), &[event]).await {
            Ok(id) => id,
            Err(registry_storage::Error::Conflict { .. }) => {
                return Err(ApiError::harbor(
                    StatusCode::CONFLICT,
                    format!("project {} has a retention policy already: change it instead", project.name),
                ));
            }
            Err(e) => return Err(e.into()),
        };
    let metadata = [(METADATA.to_owned(), id.to_string())].into_iter().collect();
    api.accounts_for(&call)?.update_project(&project.name, None, metadata).await?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/retentions/{id}")));
    Ok(r)
}

/// `GET /retentions/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "read").await?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(&policy).unwrap_or(Value::Null)))
}

/// `PUT /retentions/{id}`: the whole policy (its project stays).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (old, project) = policy(&api, &call, "update").await?;
    let mut sent: RetentionPolicy = call.json()?;
    if sent.scope.reference == 0 {
        sent.scope = old.scope.clone();
    }
    if sent.scope.reference != old.scope.reference {
        return Err(bad_request("a retention policy cannot move to another project"));
    }
    let new = RetentionPolicy { id: old.id, ..sent.checked().map_err(|e| bad_request(e.0))? };
    let event = event(&api, &call, &project, EventAction::UpdatePolicy, &format!("{} rules", new.rules.len()));
    api.registry.metadata_store().put_policy(&new.record(), &[event]).await?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /retentions/{id}`: the project's `retention_id` goes too.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (old, project) = policy(&api, &call, "delete").await?;
    let event = event(&api, &call, &project, EventAction::DeletePolicy, "deleted");
    api.registry.metadata_store().delete_policy(KIND, old.id, &[event]).await?;
    api.accounts_for(&call)?.remove_project_metadata(&project.name, METADATA).await?;
    Ok(status_only(StatusCode::OK))
}

/// Harbor's status of a run or task.
fn status_of(job: &Job) -> &'static str {
    match job.status {
        JobStatus::Pending => "Pending",
        JobStatus::Running => "Running",
        JobStatus::Succeeded => "Success",
        JobStatus::Failed => "Error",
        JobStatus::Cancelled => "Stopped",
    }
}

fn time_ms(ms: u64) -> Value {
    if ms == 0 { Value::Null } else { rfc3339(ms / 1000).into() }
}

/// A run as Harbor's `RetentionExecution`.
fn execution_json(policy_id: u64, job: &Job) -> Value {
    let report = retention::report_of(job);
    let done = !matches!(job.status, JobStatus::Pending | JobStatus::Running);
    json!({
        "id": job.id,
        "policy_id": policy_id,
        "start_time": time_ms(job.created_ms),
        "end_time": if done { time_ms(job.updated_ms) } else { Value::Null },
        "status": status_of(job),
        "trigger": if job.trigger == "schedule" { "SCHEDULE" } else { "MANUAL" },
        "dry_run": report.dry_run || job.payload.contains("\"dry_run\":true"),
    })
}

/// `{"dry_run": …}` of a run's start.
#[derive(Deserialize, Default)]
#[serde(default)]
struct StartReq {
    dry_run: bool,
}

/// `POST /retentions/{id}/executions`: 201 with the run's `Location`.
pub(crate) async fn start(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "operate").await?;
    let req: StartReq = if call.body.is_empty() { StartReq::default() } else { call.json()? };
    let nonce =
        format!("{}manual:{}:{}", retention::key_prefix(policy.id), api.registry.clock().now_millis(), rand_suffix());
    let id = retention::start(jobs(&api)?, policy.id, req.dry_run, "manual", nonce).await?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/retentions/{}/executions/{id}", policy.id)));
    Ok(r)
}

/// A few random hex digits (two manual runs in one millisecond are two runs).
fn rand_suffix() -> String {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    hex::encode(bytes)
}

/// `GET /retentions/{id}/executions`: newest first, paged.
pub(crate) async fn executions(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "list").await?;
    let paging = Paging::of(&call)?;
    let offset = ((paging.page - 1) * paging.page_size) as usize;
    let (jobs, total) = retention::runs(jobs(&api)?, policy.id, offset, paging.page_size as usize).await?;
    let page: Vec<Value> = jobs.iter().map(|j| execution_json(policy.id, j)).collect();
    super::pages::page_response(&call, &format!("/retentions/{}/executions", policy.id), paging, page, total)
}

/// The run of the path's `{eid}`, of this policy.
async fn run_of(api: &Api, call: &ApiCall, policy: &RetentionPolicy) -> Result<Job, ApiError> {
    let id = call.params.id("eid")?;
    jobs(api)?
        .queue()
        .job(id)
        .await?
        .filter(|j| {
            j.kind == retention::JOB_KIND
                && j.key.as_deref().is_some_and(|k| k.starts_with(&retention::key_prefix(policy.id)))
        })
        .ok_or_else(|| {
            ApiError::harbor(
                StatusCode::NOT_FOUND,
                format!("execution {id} of retention policy {} not found", policy.id),
            )
        })
}

/// `{"action": "stop"}`.
#[derive(Deserialize)]
struct StopReq {
    action: String,
}

/// `PATCH /retentions/{id}/executions/{eid}` with `{"action": "stop"}`.
pub(crate) async fn stop(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "operate").await?;
    let run = run_of(&api, &call, &policy).await?;
    let req: StopReq = call.json()?;
    if req.action != "stop" {
        return Err(bad_request(format!("action {:?} is unknown; use \"stop\"", req.action)));
    }
    let now = api.registry.clock().now_millis();
    jobs(&api)?.queue().cancel_job(run.id, now).await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET /retentions/{id}/executions/{eid}/tasks`: one per repository a rule applies to.
pub(crate) async fn tasks(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "list").await?;
    let run = run_of(&api, &call, &policy).await?;
    let report = retention::report_of(&run);
    let tasks: Vec<Value> = report
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "id": i + 1,
                "execution_id": run.id,
                "repository": t.repository,
                "job_id": run.id.to_string(),
                "status": t.status,
                "status_code": if t.status == "Success" { 3 } else { 4 },
                "status_revision": t.end_ms,
                "start_time": time_ms(t.start_ms),
                "end_time": time_ms(t.end_ms),
                "total": t.total,
                "retained": t.retained,
                "deleted": t.deleted.len(),
                "freed_bytes": t.freed_bytes,
            })
        })
        .collect();
    super::pages::page_of(&call, &format!("/retentions/{}/executions/{}/tasks", policy.id, run.id), tasks, |v| v)
}

/// `GET /retentions/{id}/executions/{eid}/tasks/{tid}`: the task's log (text).
pub(crate) async fn task_log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (policy, _) = policy(&api, &call, "read").await?;
    let run = run_of(&api, &call, &policy).await?;
    let tid = call.params.id("tid")?;
    let report = retention::report_of(&run);
    let task = report.tasks.get((tid as usize).wrapping_sub(1)).ok_or_else(|| {
        ApiError::harbor(StatusCode::NOT_FOUND, format!("task {tid} of execution {} not found", run.id))
    })?;
    Ok(text(StatusCode::OK, task.log.clone()))
}
