//! Quotas: `/quotas` (list, `reference=project&reference_id=`, `sort`), `/quotas/{id}` (get,
//! update `hard.storage`), system administrators only, as Harbor. A quota's id is its project's,
//! and its `ref` names the project. Usage comes from the counters the stores keep.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::time::rfc3339;
use registry_platform::quotas::{harbor_limit, limit_of};
use registry_platform::settings::SystemSettings;
use registry_storage::Quota;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, status_only};

/// A project's quota in Harbor's `Quota` shape (a project that holds nothing and never had a
/// limit: no limit, nothing used).
pub(crate) fn quota_json(project: &Project, owner_name: &str, quota: Option<&Quota>) -> Value {
    let (limit, used) = quota.map_or((None, 0), |q| (q.limit, q.used));
    let created = quota.map_or(project.created_at, |q| q.created_ms / 1000);
    let updated = quota.map_or(project.updated_at, |q| q.updated_ms / 1000);
    json!({
        "id": project.id,
        "ref": {"id": project.id, "name": project.name, "owner_name": owner_name},
        "hard": {"storage": harbor_limit(limit)},
        "used": {"storage": used},
        "creation_time": rfc3339(created),
        "update_time": rfc3339(updated),
    })
}

async fn owner_name(api: &Api, project: &Project) -> Result<String, ApiError> {
    Ok(match project.owner_id {
        Some(id) => api.accounts()?.user_by_id(id).await?.map(|u| u.name).unwrap_or_default(),
        None => String::new(),
    })
}

/// `GET /quotas`: every project's quota; `reference=project` with `reference_id`, `sort` by
/// `hard.storage` or `used.storage` (`-` for descending).
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    if call.query.get("reference").is_some_and(|r| r != "project") {
        return Err(bad_request("reference is \"project\" (the only kind of quota)"));
    }
    let only: Option<u64> = match call.query.get("reference_id") {
        Some(id) => Some(id.parse().map_err(|_| bad_request(format!("reference_id {id:?} is not a number")))?),
        None => None,
    };
    let quotas = api.registry.metadata_store().quotas().await?;
    let mut out = Vec::new();
    for project in api.accounts()?.projects().await? {
        if only.is_some_and(|id| id != project.id) {
            continue;
        }
        let quota = quotas.iter().find(|q| q.project == project.name);
        out.push(quota_json(&project, &owner_name(&api, &project).await?, quota));
    }
    if let Some(sort) = call.query.get("sort").filter(|s| !s.is_empty()) {
        let (descending, key) = match sort.strip_prefix('-') {
            Some(key) => (true, key),
            None => (false, sort),
        };
        let path: [&str; 2] = match key {
            "hard.storage" => ["hard", "storage"],
            "used.storage" => ["used", "storage"],
            other => return Err(bad_request(format!("sort {other:?} is unknown; use hard.storage or used.storage"))),
        };
        out.sort_by_key(|q| q[path[0]][path[1]].as_i64().unwrap_or(0));
        if descending {
            out.reverse();
        }
    }
    page_of(&call, "/quotas", out, |v| v)
}

async fn project_of_quota(api: &Api, call: &ApiCall) -> Result<Project, ApiError> {
    let id = call.params.id("id")?;
    api.accounts()?
        .project_by_id(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("quota {id} not found")))
}

/// `GET /quotas/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let project = project_of_quota(&api, &call).await?;
    let quota = api.registry.quota(&project.name).await?;
    Ok(json_response(StatusCode::OK, &quota_json(&project, &owner_name(&api, &project).await?, quota.as_ref())))
}

/// `QuotaUpdateReq`.
#[derive(Deserialize)]
struct UpdateReq {
    hard: Option<serde_json::Map<String, Value>>,
}

/// `PUT /quotas/{id}` with `{"hard": {"storage": N}}` (-1: no limit).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let project = project_of_quota(&api, &call).await?;
    let req: UpdateReq = call.json()?;
    let hard = req.hard.filter(|h| !h.is_empty()).ok_or_else(|| bad_request("hard required in body"))?;
    if let Some(other) = hard.keys().find(|k| *k != "storage") {
        return Err(bad_request(format!("hard.{other} is not a quota of this registry; only storage is")));
    }
    let storage = hard["storage"]
        .as_i64()
        .ok_or_else(|| bad_request(format!("hard.storage is a whole number of bytes, not {}", hard["storage"])))?;
    set_limit(&api, &call, &project.name, storage).await?;
    Ok(status_only(StatusCode::OK))
}

/// Sets a project's limit from Harbor's number (`-1`: none), with the warning percentage of
/// the settings, recorded for the caller.
pub(crate) async fn set_limit(api: &Api, call: &ApiCall, project: &str, harbor: i64) -> Result<Quota, ApiError> {
    let limit = limit_of(harbor).map_err(|e| bad_request(e.0))?;
    let settings = SystemSettings::load(&**api.registry.metadata_store()).await?;
    Ok(api.registry.set_quota(project, limit, settings.quota_warning_percent, &call.operator).await?)
}

/// `GET /system/quotas/verify` (beyond Harbor; system administrators): every project's usage
/// recomputed from what its repositories hold, against the counter the stores keep. `drift`
/// lists the projects whose counter differs (there should be none). Reads every link and
/// manifest: a check for operators (`registry quota verify`), not for dashboards.
pub(crate) async fn verify(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let drift = api.registry.verify_quotas().await?;
    let checked = api.registry.metadata_store().quotas().await?.len();
    Ok(json_response(StatusCode::OK, &json!({"projects_checked": checked, "drift": drift})))
}
