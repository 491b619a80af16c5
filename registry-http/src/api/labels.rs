//! Labels: `/labels` (list by `scope` `g` or `p` with `project_id`, `name`, `q=name=~x`;
//! create), `/labels/{id}` (get, update, delete), and on artifacts
//! `…/artifacts/{reference}/labels` (add) and `…/labels/{label_id}` (remove), in Harbor's
//! shapes. Global labels are made by system administrators and seen by every signed-in user;
//! project labels by project admins and maintainers, seen by the project's members. Putting a
//! label on an artifact takes Harbor's `artifact-label` permission (developers and above).

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::event::{Event, EventAction, Resource};
use registry_core::time::rfc3339;
use registry_platform::labels::{self, KIND, Label};
use registry_storage::policies::SYSTEM;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{bad_request, forbidden};
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// A label in Harbor's `Label` shape.
pub(crate) fn label_json(label: &Label) -> Value {
    json!({
        "id": label.id,
        "name": label.name,
        "description": label.description,
        "color": label.color,
        "scope": label.scope(),
        "project_id": label.project_id,
        "creation_time": rfc3339(label.created_ms / 1000),
        "update_time": rfc3339(label.updated_ms / 1000),
    })
}

fn event(api: &Api, call: &ApiCall, label: &Label, project: Option<&str>, action: EventAction) -> Event {
    let resource = Resource {
        project: project.map(str::to_owned),
        name: Some(format!("label {}", label.name)),
        ..Resource::default()
    };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}

/// The project of a project label (404 when it is gone).
async fn project_of(api: &Api, id: u64) -> Result<Project, ApiError> {
    api.accounts()?
        .project_by_id(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("project {id} not found")))
}

/// Refuses who may not do `action` to `label`: global labels are read by anyone signed in and
/// changed by system administrators; project labels follow the project's `label` permission.
async fn require(api: &Api, call: &ApiCall, label: &Label, action: &str) -> Result<Option<Project>, ApiError> {
    if label.project_id == SYSTEM {
        call.signed_in()?;
        if !matches!(action, "read" | "list") {
            call.require_admin()?;
        }
        return Ok(None);
    }
    let project = project_of(api, label.project_id).await?;
    api.require_permission(call, &project, "label", action).await?;
    Ok(Some(project))
}

/// `LabelReq` as Harbor's `Label`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LabelReq {
    name: Option<String>,
    description: Option<String>,
    color: Option<String>,
    scope: Option<String>,
    project_id: Option<u64>,
}

/// A conflict said for a person: the name is taken in the label's scope.
fn taken(e: registry_storage::Error, label: &Label) -> ApiError {
    match e {
        registry_storage::Error::Conflict { .. } => {
            let scope = if label.project_id == SYSTEM {
                "among the global labels".to_owned()
            } else {
                "in its project".to_owned()
            };
            ApiError::harbor(StatusCode::CONFLICT, format!("a label named {} exists {scope} already", label.name))
        }
        other => other.into(),
    }
}

/// `GET /labels?scope=g|p&project_id=&name=`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let scope = call.query.get("scope").unwrap_or("g").to_owned();
    let q = Q::parse(call.query.get("q"), &["name"])?;
    let project_id = match (scope.as_str(), call.query.get("project_id")) {
        ("g", _) => SYSTEM,
        ("p", Some(id)) => id.parse().map_err(|_| bad_request(format!("project_id {id:?} is not a number")))?,
        ("p", None) => return Err(bad_request("scope p (project labels) needs project_id")),
        (other, _) => return Err(bad_request(format!("scope {other:?} is unknown; use g (global) or p (project)"))),
    };
    require(&api, &call, &Label { project_id, ..Label::default() }, "list").await?;
    let name = call.query.get("name").unwrap_or_default().to_owned();
    let found: Vec<Value> = labels::of_project(&**api.registry.metadata_store(), project_id)
        .await?
        .iter()
        .filter(|l| l.name.contains(&name) && q.accepts("name", &l.name))
        .map(label_json)
        .collect();
    page_of(&call, "/labels", found, |v| v)
}

/// `POST /labels`: 201 with `Location`; 409 when the name is taken in its scope.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let req: LabelReq = call.json()?;
    let project_id = match req.scope.as_deref().unwrap_or("g") {
        "g" => SYSTEM,
        "p" => req
            .project_id
            .filter(|id| *id != SYSTEM)
            .ok_or_else(|| bad_request("a project label (scope p) needs project_id"))?,
        other => return Err(bad_request(format!("scope {other:?} is unknown; use g (global) or p (project)"))),
    };
    let label = Label {
        name: req.name.unwrap_or_default(),
        description: req.description.unwrap_or_default(),
        color: req.color.unwrap_or_default(),
        project_id,
        ..Label::default()
    }
    .checked()
    .map_err(|e| bad_request(e.0))?;
    let project = require(&api, &call, &label, "create").await?;
    let event = event(&api, &call, &label, project.as_ref().map(|p| p.name.as_str()), EventAction::CreateLabel);
    let id = api.registry.metadata_store().put_policy(&label.record(), &[event]).await.map_err(|e| taken(e, &label))?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/labels/{id}")));
    Ok(r)
}

async fn find(api: &Api, call: &ApiCall) -> Result<Label, ApiError> {
    let id = call.params.id("label_id")?;
    labels::get(&**api.registry.metadata_store(), id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("label {id} not found")))
}

/// `GET /labels/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let label = find(&api, &call).await?;
    require(&api, &call, &label, "read").await?;
    Ok(json_response(StatusCode::OK, &label_json(&label)))
}

/// `PUT /labels/{id}`: name, description, color (the scope stays).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let old = find(&api, &call).await?;
    let project = require(&api, &call, &old, "update").await?;
    let req: LabelReq = call.json()?;
    if req.scope.as_deref().is_some_and(|s| s != old.scope()) || req.project_id.is_some_and(|p| p != old.project_id) {
        return Err(bad_request("a label's scope and project cannot change"));
    }
    let label = Label {
        name: req.name.unwrap_or_else(|| old.name.clone()),
        description: req.description.unwrap_or_else(|| old.description.clone()),
        color: req.color.unwrap_or_else(|| old.color.clone()),
        ..old.clone()
    }
    .checked()
    .map_err(|e| bad_request(e.0))?;
    let event = event(&api, &call, &label, project.as_ref().map(|p| p.name.as_str()), EventAction::UpdateLabel);
    api.registry.metadata_store().put_policy(&label.record(), &[event]).await.map_err(|e| taken(e, &label))?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /labels/{id}`: taken off every artifact too.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let label = find(&api, &call).await?;
    let project = require(&api, &call, &label, "delete").await?;
    let event = event(&api, &call, &label, project.as_ref().map(|p| p.name.as_str()), EventAction::DeleteLabel);
    let meta = api.registry.metadata_store();
    meta.delete_policy(KIND, label.id, &[event]).await?;
    meta.drop_label(label.id).await?;
    Ok(status_only(StatusCode::OK))
}

/// The labels with these ids (those still there), for an artifact's `labels`.
pub(crate) async fn labels_of(api: &Api, ids: &[u64]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(label) = labels::get(&**api.registry.metadata_store(), *id).await? {
            out.push(label_json(&label));
        }
    }
    Ok(out)
}

/// Checks that `label` may go on an artifact of `project`: a global label or one of the project.
pub(crate) fn usable_in(label: &Label, project: &Project) -> Result<(), ApiError> {
    if label.project_id == SYSTEM || label.project_id == project.id {
        Ok(())
    } else {
        Err(forbidden(format!("label {} belongs to another project than {}", label.name, project.name)))
    }
}

/// The label an artifact request names (its `id` in the body, or `{label_id}` in the path).
pub(crate) async fn named(api: &Api, id: u64) -> Result<Label, ApiError> {
    labels::get(&**api.registry.metadata_store(), id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("label {id} not found")))
}

/// The event of a label put on or taken off an artifact.
pub(crate) fn artifact_event(
    api: &Api,
    call: &ApiCall,
    label: &Label,
    repository: &str,
    digest: &str,
    on: bool,
) -> Event {
    let resource = Resource {
        project: Some(registry_storage::quota::project_of(repository).to_owned()),
        repository: Some(repository.to_owned()),
        digest: Some(digest.to_owned()),
        name: Some(format!("label {}", label.name)),
        ..Resource::default()
    };
    let action = if on { EventAction::AddLabel } else { EventAction::RemoveLabel };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}
