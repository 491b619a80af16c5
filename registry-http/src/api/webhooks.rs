//! Webhook policies of a project (`/projects/{p}/webhook/…`, Harbor's shapes): project admins
//! manage them, maintainers read them; their deliveries as executions; and a test call.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::{Project, Role};
use registry_core::event::{Event, EventAction, Resource};
use registry_core::time::rfc3339;
use registry_storage::Job;
use registry_storage::jobs::JobFilter;
use registry_storage::policies::PolicyRecord;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::{Paging, page_response};
use super::system::harbor_status;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, text};
use registry_platform::settings::SystemSettings;
use registry_platform::webhook::deliver::{DELIVERY_KIND, Delivery, send};
use registry_platform::webhook::policy::{EVENT_TYPES, FORMATS, KIND, PolicyInput, Webhook, apply};

const READERS: [Role; 2] = [Role::ProjectAdmin, Role::Maintainer];

fn key(api: &Api) -> Result<&registry_auth::SecretKey, ApiError> {
    api.secret_key
        .as_ref()
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, "webhooks are not available on this server"))
}

async fn policy_of(api: &Api, call: &ApiCall, project: &Project) -> Result<(PolicyRecord, Webhook), ApiError> {
    let id = call.params.id("webhook_policy_id")?;
    let missing = || {
        ApiError::harbor(StatusCode::NOT_FOUND, format!("webhook policy {id} not found in project {}", project.name))
    };
    let record = api.registry.metadata_store().policy(KIND, id).await?.ok_or_else(missing)?;
    if record.project_id != project.id {
        return Err(missing());
    }
    let webhook = serde_json::from_str(&record.body)
        .map_err(|e| ApiError::from(registry_storage::Error::corrupt("a webhook policy", e)))?;
    Ok((record, webhook))
}

fn shown(record: &PolicyRecord, webhook: &Webhook) -> Value {
    to_json(record.id, record.project_id, &record.name, webhook, record.created_ms, record.updated_ms)
}

fn event(call: &ApiCall, action: EventAction, project: &Project, name: &str, time_ms: u64) -> Event {
    let resource = Resource { project: Some(project.name.clone()), name: Some(name.to_owned()), ..Resource::default() };
    Event::new(time_ms, call.operator.clone(), action, resource)
}

/// `GET /projects/{project}/webhook/policies`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &READERS).await?;
    let mut shown_policies = Vec::new();
    for record in api.registry.metadata_store().policies(KIND, Some(project.id)).await? {
        if let Ok(webhook) = serde_json::from_str::<Webhook>(&record.body) {
            shown_policies.push(shown(&record, &webhook));
        }
    }
    let paging = Paging::of(&call)?;
    let total = shown_policies.len() as u64;
    let path = format!("/projects/{}/webhook/policies", project.name);
    page_response(&call, &path, paging, paging.slice(shown_policies), total)
}

/// `POST /projects/{project}/webhook/policies`.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &[Role::ProjectAdmin]).await?;
    let input: PolicyInput = call.json()?;
    let name = input.name.clone().filter(|n| !n.trim().is_empty()).ok_or_else(|| bad_request("name is required"))?;
    let meta = api.registry.metadata_store();
    let settings = SystemSettings::load(&**meta).await?;
    let mut webhook = Webhook {
        description: String::new(),
        project: project.name.clone(),
        targets: Vec::new(),
        event_types: Vec::new(),
        enabled: true,
        creator: call.operator.display_name().to_owned(),
        secret: None,
    };
    apply(&mut webhook, input, key(&api)?, settings.webhook_allow_private_targets)?;
    let now = api.registry.clock().now_millis();
    let record = PolicyRecord {
        id: 0,
        kind: KIND.into(),
        project_id: project.id,
        name: name.clone(),
        body: serde_json::to_string(&webhook).unwrap_or_default(),
        created_ms: 0,
        updated_ms: 0,
    };
    let id = meta.put_policy(&record, &[event(&call, EventAction::CreateWebhook, &project, &name, now)]).await?;
    let mut reply = json_response(StatusCode::CREATED, &json!({"id": id}));
    set(
        reply.headers_mut(),
        http::header::LOCATION,
        &call.location(&format!("/projects/{}/webhook/policies/{id}", project.name)),
    );
    Ok(reply)
}

/// `GET /projects/{project}/webhook/policies/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &READERS).await?;
    let (record, webhook) = policy_of(&api, &call, &project).await?;
    Ok(json_response(StatusCode::OK, &shown(&record, &webhook)))
}

/// `PUT /projects/{project}/webhook/policies/{id}`: the fields given replace the policy's
/// (targets as a whole; an `auth_header` of `"***"` keeps the stored one).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &[Role::ProjectAdmin]).await?;
    let (mut record, mut webhook) = policy_of(&api, &call, &project).await?;
    let mut input: PolicyInput = call.json()?;
    // "***" is how the stored header is shown: sent back, it means "keep it".
    let kept: Vec<Option<String>> = webhook.targets.iter().map(|t| t.auth_header.clone()).collect();
    let mut keep = Vec::new();
    if let Some(targets) = input.targets.as_mut() {
        for (i, target) in targets.iter_mut().enumerate() {
            if target.auth_header.as_deref() == Some("***") {
                target.auth_header = None;
                keep.push(i);
            }
        }
    }
    let meta = api.registry.metadata_store();
    let settings = SystemSettings::load(&**meta).await?;
    if let Some(name) = input.name.clone().filter(|n| !n.trim().is_empty()) {
        record.name = name;
    }
    apply(&mut webhook, input, key(&api)?, settings.webhook_allow_private_targets)?;
    for i in keep {
        if let (Some(target), Some(Some(header))) = (webhook.targets.get_mut(i), kept.get(i)) {
            target.auth_header = Some(header.clone());
        }
    }
    record.body = serde_json::to_string(&webhook).unwrap_or_default();
    let now = api.registry.clock().now_millis();
    meta.put_policy(&record, &[event(&call, EventAction::UpdateWebhook, &project, &record.name, now)]).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// `DELETE /projects/{project}/webhook/policies/{id}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &[Role::ProjectAdmin]).await?;
    let (record, _) = policy_of(&api, &call, &project).await?;
    let now = api.registry.clock().now_millis();
    let events = [event(&call, EventAction::DeleteWebhook, &project, &record.name, now)];
    api.registry.metadata_store().delete_policy(KIND, record.id, &events).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// A delivery in Harbor's `Execution` shape.
fn execution(job: &Job) -> Value {
    let delivery: Option<Delivery> = serde_json::from_str(&job.payload).ok();
    let response: Value = serde_json::from_str(&job.progress).unwrap_or(Value::Null);
    json!({
        "id": job.id,
        "vendor_type": "WEBHOOK",
        "vendor_id": delivery.as_ref().map(|d| d.policy_id),
        "status": harbor_status(job.status),
        "status_message": job.error,
        "trigger": "EVENT",
        "start_time": rfc3339(job.created_ms / 1000),
        "end_time": if job.status.is_final() { Value::String(rfc3339(job.updated_ms / 1000)) } else { Value::Null },
        "extra_attrs": {
            "event_type": delivery.as_ref().map(|d| d.event_type.clone()),
            "event_id": delivery.as_ref().map(|d| d.event_id),
            "payload": delivery.as_ref().map(|d| d.body.clone()),
            "attempts": job.attempts,
            "response_code": response.get("response_code"),
        },
    })
}

/// `GET /projects/{project}/webhook/policies/{id}/executions`: its deliveries, newest first.
pub(crate) async fn executions(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &READERS).await?;
    let (record, _) = policy_of(&api, &call, &project).await?;
    let filter = JobFilter { key_prefix: Some(format!("webhook:{}:", record.id)), ..JobFilter::kind(DELIVERY_KIND) };
    let paging = Paging::of(&call)?;
    let offset = ((paging.page - 1) * paging.page_size) as usize;
    let (jobs, total) = api.registry.metadata_store().jobs(&filter, offset, paging.page_size as usize).await?;
    let path = format!("/projects/{}/webhook/policies/{}/executions", project.name, record.id);
    page_response(&call, &path, paging, jobs.iter().map(execution).collect(), total)
}

async fn delivery_of(api: &Api, call: &ApiCall) -> Result<Job, ApiError> {
    let project = api.project(call, "project").await?;
    api.require_role(call, &project, &READERS).await?;
    let (record, _) = policy_of(api, call, &project).await?;
    let id = call.params.id("execution_id")?;
    let missing = || ApiError::harbor(StatusCode::NOT_FOUND, format!("execution {id} not found"));
    let job = api.registry.metadata_store().job(id).await?.ok_or_else(missing)?;
    let prefix = format!("webhook:{}:", record.id);
    if job.kind != DELIVERY_KIND || !job.key.as_deref().is_some_and(|k| k.starts_with(&prefix)) {
        return Err(missing());
    }
    Ok(job)
}

/// `GET …/executions/{execution_id}/tasks`: the delivery's one task.
pub(crate) async fn tasks(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let job = delivery_of(&api, &call).await?;
    let task = json!({
        "id": job.id,
        "execution_id": job.id,
        "status": harbor_status(job.status),
        "status_message": job.error,
        "run_count": job.attempts,
        "creation_time": rfc3339(job.created_ms / 1000),
        "update_time": rfc3339(job.updated_ms / 1000),
    });
    Ok(json_response(StatusCode::OK, &json!([task])))
}

/// `GET …/executions/{execution_id}/tasks/{task_id}/log`: the attempts' log.
pub(crate) async fn task_log(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let job = delivery_of(&api, &call).await?;
    Ok(text(StatusCode::OK, job.log))
}

/// `GET /projects/{project}/webhook/events`: what a policy may name.
pub(crate) async fn events(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &READERS).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "event_type": EVENT_TYPES,
            "notify_type": ["http"],
            "payload_formats": [{"notify_type": "http", "formats": FORMATS}],
        }),
    ))
}

/// `POST /projects/{project}/webhook/policies/test`: sends a test event to each target of the
/// policy in the body now; 200 when every one answers 2xx, else 400 naming the one that did not.
pub(crate) async fn test(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, &[Role::ProjectAdmin]).await?;
    let input: PolicyInput = call.json()?;
    let meta = api.registry.metadata_store();
    let settings = SystemSettings::load(&**meta).await?;
    let secret = input.secret.clone();
    let mut webhook = Webhook {
        description: String::new(),
        project: project.name.clone(),
        targets: Vec::new(),
        event_types: vec!["PUSH_ARTIFACT".into()],
        enabled: true,
        creator: String::new(),
        secret: None,
    };
    let key = key(&api)?;
    apply(&mut webhook, PolicyInput { event_types: None, ..input }, key, settings.webhook_allow_private_targets)?;
    let now = api.registry.clock().now_millis();
    let resource = Resource {
        project: Some(project.name.clone()),
        repository: Some(format!("{}/webhook-test", project.name)),
        tag: Some("test".into()),
        ..Resource::default()
    };
    let probe = Event::new(now, call.operator.clone(), EventAction::PushArtifact, resource);
    for target in &webhook.targets {
        let ctx = registry_platform::webhook::payload::Context {
            registry_host: &api.info.registry_url,
            public: project.public,
            project_id: project.id,
            policy_id: 0,
        };
        let (body, content_type) =
            registry_platform::webhook::payload::render(&probe, "PUSH_ARTIFACT", &target.payload_format, &ctx);
        let sent = send(
            target,
            key,
            secret.as_deref().filter(|s| !s.is_empty()),
            settings.webhook_allow_private_targets,
            &body,
            content_type,
            0,
        )
        .await;
        match sent {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => return Err(bad_request(format!("{} answered {status}", target.address))),
            Err(failure) => return Err(bad_request(failure.message)),
        }
    }
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// The policy in Harbor's shape (secrets never shown: `auth_header` is `"***"` when set).
fn to_json(id: u64, project_id: u64, name: &str, webhook: &Webhook, created_ms: u64, updated_ms: u64) -> Value {
    let targets: Vec<Value> = webhook
        .targets
        .iter()
        .map(|t| {
            json!({
                "type": t.kind,
                "address": t.address,
                "auth_header": t.auth_header.as_ref().map(|_| "***"),
                "skip_cert_verify": t.skip_cert_verify,
                "payload_format": t.payload_format,
            })
        })
        .collect();
    json!({
        "id": id,
        "name": name,
        "description": webhook.description,
        "project_id": project_id,
        "targets": targets,
        "event_types": webhook.event_types,
        "creator": webhook.creator,
        "creation_time": registry_core::time::rfc3339(created_ms / 1000),
        "update_time": registry_core::time::rfc3339(updated_ms / 1000),
        "enabled": webhook.enabled,
        "signed": webhook.secret.is_some(),
    })
}
