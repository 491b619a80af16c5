//! Tag immutability rules: `/projects/{p}/immutabletagrules` (list, create) and
//! `…/immutabletagrules/{id}` (update, enable or disable, delete), in Harbor's `ImmutableRule`
//! shape, for project admins and maintainers (and robots holding `immutable-tag` permissions).
//! The rules take effect at the next push or deletion on every replica: the engine reads them
//! each time a tag would move or go.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::event::{Event, EventAction, Resource};
use registry_platform::immutability::{self, ImmutableRule, KIND};
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{set, status_only};

const RESOURCE: &str = "immutable-tag";

fn rule_json(rule: &ImmutableRule) -> Value {
    let mut v = serde_json::to_value(rule).unwrap_or(Value::Null);
    v["id"] = json!(rule.id);
    v
}

fn event(api: &Api, call: &ApiCall, project: &Project, action: EventAction, what: String) -> Event {
    let resource = Resource {
        project: Some(project.name.clone()),
        name: Some("immutable tag rule".into()),
        detail: Some(what),
        ..Resource::default()
    };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}

/// A conflict said for a person: the project has a rule with these selectors.
fn same_rule(e: registry_storage::Error, project: &Project, rule: &ImmutableRule) -> ApiError {
    match e {
        registry_storage::Error::Conflict { .. } => ApiError::harbor(
            StatusCode::CONFLICT,
            format!("project {} has an immutable tag rule with these selectors already: {}", project.name, rule.key()),
        ),
        other => other.into(),
    }
}

fn parse(call: &ApiCall) -> Result<ImmutableRule, ApiError> {
    let rule: ImmutableRule = call.json()?;
    rule.checked().map_err(|e| bad_request(e.0))
}

/// `GET /projects/{p}/immutabletagrules`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, RESOURCE, "list").await?;
    let rules = immutability::rules(&**api.registry.metadata_store(), project.id).await?;
    let path = format!("/projects/{}/immutabletagrules", project.name);
    page_of(&call, &path, rules.iter().map(rule_json).collect(), |v| v)
}

/// `POST /projects/{p}/immutabletagrules`: 201 with the rule's `Location`; 409 when a rule
/// with the same selectors exists.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, RESOURCE, "create").await?;
    let rule = ImmutableRule { id: 0, ..parse(&call)? };
    let event = event(&api, &call, &project, EventAction::CreatePolicy, rule.key());
    let id = immutability::save(&**api.registry.metadata_store(), project.id, &rule, &[event])
        .await
        .map_err(|e| same_rule(e, &project, &rule))?;
    let mut r = status_only(StatusCode::CREATED);
    set(
        r.headers_mut(),
        http::header::LOCATION,
        &call.location(&format!("/projects/{}/immutabletagrules/{id}", project.id)),
    );
    Ok(r)
}

async fn existing(api: &Api, call: &ApiCall, project: &Project) -> Result<ImmutableRule, ApiError> {
    let id = call.params.id("immutable_rule_id")?;
    api.registry
        .metadata_store()
        .policy(KIND, id)
        .await?
        .filter(|p| p.project_id == project.id)
        .as_ref()
        .and_then(ImmutableRule::of)
        .ok_or_else(|| {
            ApiError::harbor(
                StatusCode::NOT_FOUND,
                format!("immutable tag rule {id} of project {} not found", project.name),
            )
        })
}

/// `PUT /projects/{p}/immutabletagrules/{id}`: a whole rule, or only `{"disabled": …}` to
/// enable or disable it.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, RESOURCE, "update").await?;
    let old = existing(&api, &call, &project).await?;
    let sent: ImmutableRule = call.json()?;
    let rule = if sent.tag_selectors.is_empty() && sent.scope_selectors.is_empty() {
        ImmutableRule { disabled: sent.disabled, ..old.clone() }
    } else {
        sent.checked().map_err(|e| bad_request(e.0))?
    };
    let rule = ImmutableRule { id: old.id, ..rule };
    let what = format!("{}{}", rule.key(), if rule.disabled { " (disabled)" } else { "" });
    let event = event(&api, &call, &project, EventAction::UpdatePolicy, what);
    immutability::save(&**api.registry.metadata_store(), project.id, &rule, &[event])
        .await
        .map_err(|e| same_rule(e, &project, &rule))?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /projects/{p}/immutabletagrules/{id}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, RESOURCE, "delete").await?;
    let old = existing(&api, &call, &project).await?;
    let event = event(&api, &call, &project, EventAction::DeletePolicy, old.key());
    api.registry.metadata_store().delete_policy(KIND, old.id, &[event]).await?;
    Ok(status_only(StatusCode::OK))
}
