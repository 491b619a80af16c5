//! System endpoints: `/ping`, `/health`, `/systeminfo`, `/statistics` and garbage collection
//! (`/system/gc…`, system administrators only).

use std::sync::Arc;

use http::StatusCode;
use registry_core::time::rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::{Paging, page_response};
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, text};
use registry_platform::gc::{GarbageCollector, GcRun, RunError, Trigger};
use registry_storage::jobs::JobStatus;

/// The version this server reports as `harbor_version`: the Harbor API it follows, and its own.
pub const HARBOR_VERSION: &str = concat!("v2.11.0-registry-", env!("CARGO_PKG_VERSION"));

/// What `/systeminfo` tells about the server.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// `scheme://host:port` of the server.
    pub external_url: String,
    /// `host:port`, what clients use in image names.
    pub registry_url: String,
    /// The blob storage (`filesystem`, `memory`, `s3`, …).
    pub storage: String,
    /// `db_auth` with Harbor's accounts; `custom` with an embedder's authenticator.
    pub auth_mode: String,
}

/// `GET /ping`: `Pong`.
pub(crate) async fn ping(_: Arc<Api>, _: ApiCall) -> ApiResult {
    Ok(text(StatusCode::OK, "Pong"))
}

/// `GET /health`: each component checked now.
pub(crate) async fn health(api: Arc<Api>, _: ApiCall) -> ApiResult {
    let mut components = Vec::new();
    let mut check = |name: &str, result: Result<(), String>| {
        let mut c = json!({"name": name, "status": if result.is_ok() { "healthy" } else { "unhealthy" }});
        if let Err(e) = result {
            c["error"] = e.into();
        }
        components.push(c);
    };
    check("core", Ok(()));
    let meta = api.registry.metadata_store().list_repositories(None, 1).await;
    check("database", meta.map(drop).map_err(|e| e.to_string()));
    let blobs = api.registry.blob_store().list_blobs(None, 1).await;
    check("registry", blobs.map(drop).map_err(|e| e.to_string()));
    if let Some(accounts) = &api.accounts {
        check("accounts", accounts.projects().await.map(drop).map_err(|e| e.to_string()));
    }
    let healthy = components.iter().all(|c| c["status"] == "healthy");
    let status = if healthy { "healthy" } else { "unhealthy" };
    Ok(json_response(StatusCode::OK, &json!({"status": status, "components": components})))
}

/// `GET /systeminfo` (`GeneralInfo`).
pub(crate) async fn info(api: Arc<Api>, call: ApiCall) -> ApiResult {
    // With Harbor's accounts, the mode the settings choose (db_auth or ldap_auth).
    let auth_mode = match &api.accounts {
        Some(_) => registry_platform::settings::SystemSettings::load(&**api.registry.metadata_store()).await?.auth_mode,
        None => api.info.auth_mode.clone(),
    };
    let mut info = json!({
        "auth_mode": auth_mode,
        "primary_auth_mode": false,
        "self_registration": false,
        "harbor_version": HARBOR_VERSION,
        "current_time": rfc3339(registry_core::time::now_secs()),
    });
    if !matches!(call.caller(), registry_auth::Identity::Anonymous) {
        let details = json!({
            "external_url": api.info.external_url,
            "registry_url": api.info.registry_url,
            "project_creation_restriction": "everyone",
            "has_ca_root": false,
            "read_only": false,
            "notification_enable": false,
            "registry_storage_provider_name": api.info.storage,
        });
        if let (Some(obj), Value::Object(more)) = (info.as_object_mut(), details) {
            obj.extend(more);
        }
    }
    Ok(json_response(StatusCode::OK, &info))
}

/// `GET /statistics`: projects and repositories the caller can see.
pub(crate) async fn statistics(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let who = call.signed_in()?.clone();
    let accounts = api.accounts()?;
    let (mut public_projects, mut private_projects, mut public_repos, mut private_repos) = (0u64, 0u64, 0u64, 0u64);
    for p in accounts.projects().await? {
        if !api.may_see(&who, &p).await? {
            continue;
        }
        let repos = super::projects::repository_count(&api, &p.name).await?;
        if p.public {
            public_projects += 1;
            public_repos += repos;
        } else {
            private_projects += 1;
            private_repos += repos;
        }
    }
    let mut stats = json!({
            "public_project_count": public_projects,
            "private_project_count": private_projects,
            "total_project_count": public_projects + private_projects,
            "public_repo_count": public_repos,
            "private_repo_count": private_repos,
            "total_repo_count": public_repos + private_repos,
    });
    if who.is_admin() {
        // Harbor's figure for system administrators: what every project holds, from the quotas.
        let total: u64 = api.registry.metadata_store().quotas().await?.iter().map(|q| q.used).sum();
        stats["total_storage_consumption"] = json!(total);
    }
    Ok(json_response(StatusCode::OK, &stats))
}

fn collector(api: &Api, call: &ApiCall) -> Result<Arc<GarbageCollector>, ApiError> {
    call.require_admin()?;
    api.gc
        .clone()
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, "garbage collection is not run by this server"))
}

/// Harbor's `job_status` of a job's status.
pub(crate) fn harbor_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "Pending",
        JobStatus::Running => "Running",
        JobStatus::Succeeded => "Success",
        JobStatus::Failed => "Error",
        JobStatus::Cancelled => "Stopped",
    }
}

/// A run in Harbor's `GCHistory` shape, with our report.
fn run_json(run: &GcRun) -> Value {
    let kind = match run.trigger {
        Trigger::Manual => "MANUAL",
        Trigger::Schedule => "SCHEDULE",
    };
    let parameters = json!({"delete_untagged": run.options.delete_untagged, "dry_run": run.options.dry_run});
    json!({
        "id": run.id,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": kind,
        "job_parameters": parameters.to_string(),
        "job_status": harbor_status(run.status),
        "deleted": false,
        "creation_time": rfc3339(run.created),
        "update_time": rfc3339(run.updated),
        "report": run.report,
        "error": run.error,
    })
}

async fn find_run(gc: &GarbageCollector, call: &ApiCall) -> Result<GcRun, ApiError> {
    let id = call.params.id("gc_id")?;
    let missing = || ApiError::harbor(StatusCode::NOT_FOUND, format!("garbage collection {id} not found"));
    gc.get(id).await?.ok_or_else(missing)
}

/// `GET /system/gc`: runs, newest first.
pub(crate) async fn gc_history(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    let paging = Paging::of(&call)?;
    let offset = ((paging.page - 1) * paging.page_size) as usize;
    let (runs, total) = gc.runs(offset, paging.page_size as usize).await?;
    page_response(&call, "/system/gc", paging, runs.iter().map(run_json).collect(), total)
}

/// `GET /system/gc/{id}`.
pub(crate) async fn gc_run(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    Ok(json_response(StatusCode::OK, &run_json(&find_run(&gc, &call).await?)))
}

/// `PUT /system/gc/{id}`: stops a run.
pub(crate) async fn gc_stop(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    let id = find_run(&gc, &call).await?.id;
    match gc.stop(id).await? {
        Some(run) if run.status.is_final() && run.status != JobStatus::Cancelled => Err(ApiError::harbor(
            StatusCode::CONFLICT,
            format!("garbage collection {id} has already ended ({})", harbor_status(run.status)),
        )),
        _ => Ok(json_response(StatusCode::OK, &json!({}))),
    }
}

/// `GET /system/gc/{id}/log`: the run's log, as text.
pub(crate) async fn gc_log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    let run = find_run(&gc, &call).await?;
    let mut log = format!("{} garbage collection {} ({})\n", rfc3339(run.created), run.id, harbor_status(run.status));
    log.push_str(&run.log);
    if let Some(e) = &run.error {
        log.push_str(&format!("error: {e}\n"));
    }
    Ok(text(StatusCode::OK, log))
}

/// `GET /system/gc/schedule`.
pub(crate) async fn gc_schedule(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    let schedule = match gc.interval().filter(|i| !i.is_zero()) {
        Some(i) => json!({"type": "Custom", "cron": "", "interval_secs": i.as_secs()}),
        None => json!({"type": "None", "cron": ""}),
    };
    let d = gc.defaults();
    let parameters = json!({"delete_untagged": d.delete_untagged, "dry_run": false});
    Ok(json_response(StatusCode::OK, &json!({"schedule": schedule, "parameters": parameters})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Schedule {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    delete_untagged: bool,
    dry_run: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcRequest {
    schedule: Schedule,
    parameters: Parameters,
}

/// `POST` (and `PUT`) `/system/gc/schedule` with `{"schedule":{"type":"Manual"}}`: a run now.
pub(crate) async fn gc_start(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let gc = collector(&api, &call)?;
    let request: GcRequest = if call.body.is_empty() { GcRequest::default() } else { call.json()? };
    if request.schedule.kind.as_deref().is_some_and(|k| k != "Manual") {
        return Err(bad_request(
            "only Manual runs are started here; the periodic schedule is the server's [gc] interval_secs",
        ));
    }
    let options = registry_storage::GcOptions {
        delete_untagged: request.parameters.delete_untagged,
        dry_run: request.parameters.dry_run,
        ..gc.defaults().clone()
    };
    let id = gc.start(options, Trigger::Manual).await.map_err(|e| match e {
        RunError::AlreadyRunning(e) => ApiError::harbor(StatusCode::CONFLICT, format!("{e}; wait for it to finish")),
        RunError::Store(e) => e.into(),
        e => ApiError::harbor(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    let mut reply = json_response(StatusCode::CREATED, &json!({"id": id}));
    set(reply.headers_mut(), http::header::LOCATION, &call.location(&format!("/system/gc/{id}")));
    Ok(reply)
}
