//! Replication for system admins, in Harbor's shapes: policies (`/replication/policies`: list,
//! create, get, update, delete), executions (`/replication/executions`: start, list, get, stop)
//! and their tasks with logs (`…/executions/{id}/tasks`, `…/tasks/{task_id}/log`). A policy's
//! `src_registry` or `dest_registry` is a registry endpoint by `id` (the other side is this
//! registry); an execution is a job of the queue, so any replica runs it and a restart resumes
//! the queue.

use registry_platform::documents::Document;
use std::sync::Arc;

use http::StatusCode;
use registry_core::event::{Event, EventAction, Resource};
use registry_platform::replication::run::{self, IN_PROGRESS, Report};
use registry_platform::replication::{self, KIND, Policy, Stored};
use registry_storage::jobs::JobFilter;
use registry_storage::{Job, JobStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only, text};

fn time(ms: u64) -> Value {
    if ms == 0 { Value::Null } else { registry_core::time::rfc3339(ms / 1000).into() }
}

/// A side of a policy as Harbor shows it: the endpoint, or this registry (id 0).
async fn side(api: &Api, id: u64) -> Result<Value, ApiError> {
    if id == 0 {
        return Ok(json!({"id": 0, "name": "Local", "type": "harbor", "url": "", "status": "healthy"}));
    }
    let found = registry_platform::remote::by_id(&**api.registry.metadata_store(), id).await?;
    Ok(match found {
        Some(stored) => super::registries::endpoint_json(&stored, None),
        None => json!({"id": id, "name": "(deleted)", "status": "unhealthy"}),
    })
}

/// Harbor's `ReplicationPolicy`.
async fn policy_json(api: &Api, stored: &Stored) -> Result<Value, ApiError> {
    let p = &stored.doc;
    Ok(json!({
        "id": stored.record.id,
        "name": p.name,
        "description": p.description,
        "src_registry": side(api, p.src_registry).await?,
        "dest_registry": side(api, p.dest_registry).await?,
        "dest_namespace": p.dest_namespace,
        "dest_namespace_replace_count": p.dest_namespace_replace_count,
        "trigger": {"type": p.trigger.kind, "trigger_settings": {"cron": p.trigger.trigger_settings.cron}},
        "filters": p.filters,
        "replicate_deletion": p.replicate_deletion,
        "override": p.overwrite,
        "enabled": p.enabled,
        "speed": p.speed,
        "copy_by_chunk": p.copy_by_chunk,
        "creation_time": time(stored.record.created_ms),
        "update_time": time(stored.record.updated_ms),
    }))
}

/// A policy in a request: Harbor's `ReplicationPolicy` with registries by id.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyReq {
    name: Option<String>,
    description: Option<String>,
    src_registry: Option<Value>,
    dest_registry: Option<Value>,
    dest_namespace: Option<String>,
    dest_namespace_replace_count: Option<i64>,
    trigger: Option<replication::Trigger>,
    filters: Option<Vec<replication::Filter>>,
    #[serde(rename = "override")]
    overwrite: Option<bool>,
    enabled: Option<bool>,
    replicate_deletion: Option<bool>,
    speed: Option<i64>,
    copy_by_chunk: Option<bool>,
}

/// The endpoint id a side of a request names (absent, null or id 0: this registry).
async fn side_id(api: &Api, value: Option<Value>, which: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let id = match &value {
        Value::Null => 0,
        Value::Object(o) => o.get("id").and_then(Value::as_u64).unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => return Err(bad_request(format!("{which} is a registry ({{\"id\": …}}) or null"))),
    };
    if id != 0 && registry_platform::remote::by_id(&**api.registry.metadata_store(), id).await?.is_none() {
        return Err(bad_request(format!("{which}: registry {id} does not exist; create it under /registries first")));
    }
    Ok(Some(id))
}

impl PolicyReq {
    async fn apply(self, api: &Api, policy: &mut Policy) -> Result<(), ApiError> {
        if let Some(v) = self.replicate_deletion {
            policy.replicate_deletion = v;
        }
        if let Some(v) = self.speed {
            policy.speed = v;
        }
        if let Some(v) = self.copy_by_chunk {
            policy.copy_by_chunk = v;
        }
        if let Some(v) = self.name {
            policy.name = v;
        }
        if let Some(v) = self.description {
            policy.description = v;
        }
        if let Some(id) = side_id(api, self.src_registry, "src_registry").await? {
            policy.src_registry = id;
        }
        if let Some(id) = side_id(api, self.dest_registry, "dest_registry").await? {
            policy.dest_registry = id;
        }
        if let Some(v) = self.dest_namespace {
            policy.dest_namespace = v;
        }
        if let Some(v) = self.dest_namespace_replace_count {
            policy.dest_namespace_replace_count = v;
        }
        if let Some(v) = self.trigger {
            policy.trigger = v;
        }
        if let Some(v) = self.filters {
            policy.filters = v;
        }
        if let Some(v) = self.overwrite {
            policy.overwrite = v;
        }
        if let Some(v) = self.enabled {
            policy.enabled = v;
        }
        *policy = std::mem::take(policy).checked().map_err(|e| bad_request(e.0))?;
        Ok(())
    }
}

fn event(api: &Api, call: &ApiCall, action: EventAction, name: &str, detail: &str) -> Event {
    let resource = Resource {
        name: Some(format!("replication policy {name}")),
        detail: Some(detail.to_owned()),
        ..Resource::default()
    };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}

fn taken(e: registry_storage::Error, name: &str) -> ApiError {
    match e {
        registry_storage::Error::Conflict { .. } => {
            ApiError::harbor(StatusCode::CONFLICT, format!("a replication policy named {name:?} exists already"))
        }
        other => other.into(),
    }
}

fn number(call: &ApiCall, param: &str) -> Result<u64, ApiError> {
    let text = call.params.get(param)?;
    text.parse().map_err(|_| bad_request(format!("{param} {text:?} is not a number")))
}

async fn existing(api: &Api, id: u64) -> Result<Stored, ApiError> {
    replication::by_id(&**api.registry.metadata_store(), id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("replication policy {id} not found")))
}

/// `GET /replication/policies` (`q=name=~…`).
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let q = Q::parse(call.query.get("q"), &["name"])?;
    let mut all = Vec::new();
    for stored in replication::all(&**api.registry.metadata_store()).await? {
        if q.accepts("name", &stored.doc.name) {
            all.push(policy_json(&api, &stored).await?);
        }
    }
    page_of(&call, "/replication/policies", all, |v| v)
}

/// `POST /replication/policies`: 201 with its `Location`.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: PolicyReq = call.json()?;
    let mut policy = Policy { enabled: true, dest_namespace_replace_count: 1, ..Policy::default() };
    req.apply(&api, &mut policy).await?;
    let e = event(&api, &call, EventAction::CreatePolicy, &policy.name, "created");
    let id =
        api.registry.metadata_store().put_policy(&policy.record(0), &[e]).await.map_err(|e| taken(e, &policy.name))?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/replication/policies/{id}")));
    Ok(r)
}

/// `GET /replication/policies/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, number(&call, "id")?).await?;
    Ok(json_response(StatusCode::OK, &policy_json(&api, &stored).await?))
}

/// `PUT /replication/policies/{id}`: what the body gives replaces what is stored.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, number(&call, "id")?).await?;
    let req: PolicyReq = call.json()?;
    let mut policy = stored.doc.clone();
    req.apply(&api, &mut policy).await?;
    let e = event(&api, &call, EventAction::UpdatePolicy, &policy.name, "changed");
    api.registry
        .metadata_store()
        .put_policy(&policy.record(stored.record.id), &[e])
        .await
        .map_err(|e| taken(e, &policy.name))?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /replication/policies/{id}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, number(&call, "id")?).await?;
    let e = event(&api, &call, EventAction::DeletePolicy, &stored.doc.name, "deleted");
    api.registry.metadata_store().delete_policy(KIND, stored.record.id, &[e]).await?;
    Ok(status_only(StatusCode::OK))
}

/// The policy an execution runs.
fn policy_of(job: &Job) -> u64 {
    serde_json::from_str::<run::ExecutionJob>(&job.payload).map_or(0, |p| p.policy_id)
}

/// Harbor's execution status of a job.
fn status_of(job: &Job) -> &'static str {
    match job.status {
        JobStatus::Pending | JobStatus::Running => IN_PROGRESS,
        JobStatus::Succeeded => run::SUCCEED,
        JobStatus::Cancelled => "Stopped",
        _ => run::FAILED,
    }
}

/// Harbor's `ReplicationExecution`.
fn execution_json(job: &Job) -> Value {
    let report = Report::of(job);
    let count = |s: &str| report.tasks.iter().filter(|t| t.status == s).count();
    let ended = job.status.is_final();
    json!({
        "id": job.id,
        "policy_id": policy_of(job),
        "status": status_of(job),
        "status_text": job.error,
        "trigger": job.trigger,
        "start_time": time(job.created_ms),
        "end_time": if ended { time(job.updated_ms) } else { Value::Null },
        "total": report.tasks.len(),
        "succeed": count(run::SUCCEED),
        "failed": count(run::FAILED),
        "in_progress": count(IN_PROGRESS),
        "stopped": 0,
    })
}

#[derive(Deserialize)]
struct StartReq {
    policy_id: u64,
}

fn jobs(api: &Api) -> Result<&Arc<registry_storage::JobRunner>, ApiError> {
    api.jobs.as_ref().ok_or_else(|| {
        ApiError::harbor(StatusCode::NOT_IMPLEMENTED, "this registry runs no jobs, so it cannot replicate")
    })
}

/// `POST /replication/executions` `{"policy_id": …}`: 201 with its `Location`; a disabled
/// policy does not run.
pub(crate) async fn start(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: StartReq = call.json()?;
    let stored = existing(&api, req.policy_id).await?;
    if !stored.doc.enabled {
        return Err(bad_request(format!("replication policy {:?} is disabled; enable it first", stored.doc.name)));
    }
    let key = format!("replication:{}:{}", stored.record.id, registry_platform::new_uuid());
    let id = run::start(jobs(&api)?, stored.record.id, "manual", key).await?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/replication/executions/{id}")));
    Ok(r)
}

async fn execution(api: &Api, call: &ApiCall) -> Result<Job, ApiError> {
    let id = number(call, "id")?;
    api.registry
        .metadata_store()
        .job(id)
        .await?
        .filter(|j| j.kind == run::JOB_KIND)
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("replication execution {id} not found")))
}

/// `GET /replication/executions` (`policy_id=`), newest first.
pub(crate) async fn executions(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let filter = match call.query.get("policy_id") {
        Some(id) => JobFilter {
            key_prefix: Some(format!(
                "replication:{}:",
                id.parse::<u64>().map_err(|_| bad_request("policy_id is a number"))?
            )),
            ..JobFilter::kind(run::JOB_KIND)
        },
        None => JobFilter::kind(run::JOB_KIND),
    };
    let (found, _) = api.registry.metadata_store().jobs(&filter, 0, 1000).await?;
    let mut all: Vec<Value> = found.iter().map(execution_json).collect();
    all.sort_by_key(|v| std::cmp::Reverse(v["id"].as_u64().unwrap_or(0)));
    page_of(&call, "/replication/executions", all, |v| v)
}

/// `GET /replication/executions/{id}`.
pub(crate) async fn get_execution(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    Ok(json_response(StatusCode::OK, &execution_json(&execution(&api, &call).await?)))
}

/// `PUT /replication/executions/{id}`: stops it.
pub(crate) async fn stop(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let job = execution(&api, &call).await?;
    if job.status.is_final() {
        return Err(bad_request(format!("replication execution {} has ended", job.id)));
    }
    api.registry.metadata_store().cancel_job(job.id, api.registry.clock().now_millis()).await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET /replication/executions/{id}/tasks`.
pub(crate) async fn tasks(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let job = execution(&api, &call).await?;
    let all: Vec<Value> = Report::of(&job)
        .tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "execution_id": job.id,
                "resource_type": "artifact",
                "src_resource": t.src_resource,
                "dst_resource": t.dst_resource,
                "operation": "copy",
                "job_id": job.id.to_string(),
                "status": t.status,
                "start_time": time(t.start_ms),
                "end_time": time(t.end_ms),
                "bytes": t.bytes,
            })
        })
        .collect();
    page_of(&call, &format!("/replication/executions/{}/tasks", job.id), all, |v| v)
}

/// `GET /replication/executions/{id}/tasks/{task_id}/log`.
pub(crate) async fn task_log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let job = execution(&api, &call).await?;
    let task_id = number(&call, "task_id")?;
    let task = Report::of(&job).tasks.into_iter().find(|t| t.id == task_id).ok_or_else(|| {
        ApiError::harbor(StatusCode::NOT_FOUND, format!("task {task_id} of execution {} not found", job.id))
    })?;
    Ok(text(StatusCode::OK, task.log))
}
