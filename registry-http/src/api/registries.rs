//! Registry endpoints for system admins: `/registries` (list, create, get, update, delete,
//! ping, `/registries/{id}/info`) and `/replication/adapters`, in Harbor's `Registry` shapes.
//! Secrets are sealed at rest and never shown; `status` is the endpoint's health, checked when it
//! is shown (`GET /registries/{id}`, and the list, concurrently, with a short cache), with the
//! reason in `status_message` when it is unhealthy.

use registry_platform::documents::Document;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use registry_core::event::{Event, EventAction, Resource};
use registry_platform::remote::client::Remote;
use registry_platform::remote::{self, Endpoint, EndpointInput, KIND, Stored, TYPES};
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// How long a health check is shown before it is made again.
const HEALTH_TTL: Duration = Duration::from_secs(30);

/// The health of endpoints, by id: when checked, and the failure if any.
pub(crate) type Health = quick_cache::sync::Cache<u64, (Instant, Option<String>)>;

fn key(api: &Api) -> Result<&registry_auth::SecretKey, ApiError> {
    api.secret_key.as_ref().ok_or_else(|| {
        ApiError::harbor(StatusCode::NOT_IMPLEMENTED, "this registry keeps no secret key to seal credentials with")
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::harbor(StatusCode::NOT_FOUND, format!("registry {id} not found"))
}

fn time(ms: u64) -> Value {
    registry_core::time::rfc3339(ms / 1000).into()
}

/// Harbor's `Registry` (the secret never), with its health when known.
pub(crate) fn endpoint_json(stored: &Stored, health: Option<&Option<String>>) -> Value {
    let e = &stored.doc;
    let mut v = json!({
        "id": stored.record.id,
        "name": e.name,
        "description": e.description,
        "type": e.kind,
        "url": e.url,
        "insecure": e.insecure,
        "credential": {
            "type": if e.access_key.is_empty() { "" } else { "basic" },
            "access_key": e.access_key,
            "access_secret": if e.access_secret.is_some() { "*****" } else { "" },
        },
        "ca_certificate": e.ca_certificate,
        "creation_time": time(stored.record.created_ms),
        "update_time": time(stored.record.updated_ms),
        "status": "unknown",
    });
    match health {
        Some(None) => v["status"] = json!("healthy"),
        Some(Some(why)) => {
            v["status"] = json!("unhealthy");
            v["status_message"] = json!(why);
        }
        None => {}
    }
    v
}

/// Pings `endpoint`: `None` when healthy, else why not.
async fn check(api: &Api, endpoint: &Endpoint) -> Result<Option<String>, ApiError> {
    let remote = Remote::of(endpoint, key(api)?);
    Ok(match remote {
        Ok(remote) => remote.ping().await.err().map(|e| e.0),
        Err(e) => Some(e.0),
    })
}

/// The health of `stored`, from the cache when fresh.
async fn health_of(api: &Api, stored: &Stored, fresh: bool) -> Result<Option<String>, ApiError> {
    if !fresh
        && let Some((at, health)) = api.registry_health.get(&stored.record.id)
        && at.elapsed() < HEALTH_TTL
    {
        return Ok(health);
    }
    let health = check(api, &stored.doc).await?;
    api.registry_health.insert(stored.record.id, (Instant::now(), health.clone()));
    Ok(health)
}

fn event(api: &Api, call: &ApiCall, action: EventAction, name: &str, detail: String) -> Event {
    let resource = Resource { name: Some(format!("registry {name}")), detail: Some(detail), ..Resource::default() };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource)
}

async fn existing(api: &Api, call: &ApiCall) -> Result<Stored, ApiError> {
    let text = call.params.get("id")?;
    let id: u64 = text.parse().map_err(|_| bad_request(format!("registry id {text:?} is not a number")))?;
    remote::by_id(&**api.registry.metadata_store(), id).await?.ok_or_else(|| not_found(text))
}

fn taken(e: registry_storage::Error, name: &str) -> ApiError {
    match e {
        registry_storage::Error::Conflict { .. } => {
            ApiError::harbor(StatusCode::CONFLICT, format!("a registry named {name:?} exists already"))
        }
        other => other.into(),
    }
}

/// `GET /registries`: `q=name=~…`, `q=type=…`, `q=url=~…`, paged, each with its health.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    key(&api)?;
    let q = Q::parse(call.query.get("q"), &["name", "type", "url", "description"])?;
    let found: Vec<Stored> = remote::all(&**api.registry.metadata_store())
        .await?
        .into_iter()
        .filter(|s| {
            q.accepts("name", &s.doc.name)
                && q.accepts("type", &s.doc.kind)
                && q.accepts("url", &s.doc.url)
                && q.accepts("description", &s.doc.description)
        })
        .collect();
    let healths = futures::future::join_all(found.iter().map(|s| health_of(&api, s, false))).await;
    let mut all = Vec::with_capacity(found.len());
    for (stored, health) in found.iter().zip(healths) {
        all.push(endpoint_json(stored, Some(&health?)));
    }
    page_of(&call, "/registries", all, |v| v)
}

/// `POST /registries`: 201 with `Location: …/registries/{id}`. Kept whether or not the remote
/// answers now (its status says so), as Harbor does; a bad URL or credential shape is refused.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let input: EndpointInput = call.json()?;
    let mut endpoint = Endpoint::default();
    endpoint.apply(input, key(&api)?).map_err(|e| bad_request(e.0))?;
    let e = event(&api, &call, EventAction::CreatePolicy, &endpoint.name, format!("at {}", endpoint.url));
    let id = api
        .registry
        .metadata_store()
        .put_policy(&endpoint.record(0), &[e])
        .await
        .map_err(|e| taken(e, &endpoint.name))?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/registries/{id}")));
    Ok(r)
}

/// `GET /registries/{id}`: with its health checked now.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, &call).await?;
    let health = health_of(&api, &stored, true).await?;
    Ok(json_response(StatusCode::OK, &endpoint_json(&stored, Some(&health))))
}

/// `PUT /registries/{id}` (`RegistryUpdate`): an omitted or empty `access_secret` keeps the
/// stored one.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, &call).await?;
    let input: EndpointInput = call.json()?;
    let mut endpoint = stored.doc.clone();
    endpoint.apply(input, key(&api)?).map_err(|e| bad_request(e.0))?;
    let e = event(&api, &call, EventAction::UpdatePolicy, &endpoint.name, "changed".into());
    api.registry
        .metadata_store()
        .put_policy(&endpoint.record(stored.record.id), &[e])
        .await
        .map_err(|e| taken(e, &endpoint.name))?;
    api.registry_health.remove(&stored.record.id);
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /registries/{id}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, &call).await?;
    let id = stored.record.id.to_string();
    let fronting: Vec<String> = api
        .accounts()?
        .projects()
        .await?
        .into_iter()
        .filter(|p| p.metadata.get(registry_platform::proxy::REGISTRY_ID) == Some(&id))
        .map(|p| p.name)
        .collect();
    if !fronting.is_empty() {
        return Err(ApiError::harbor(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "registry {:?} is the upstream of proxy-cache projects {}: delete them first",
                stored.doc.name,
                fronting.join(", ")
            ),
        ));
    }
    let e = event(&api, &call, EventAction::DeletePolicy, &stored.doc.name, "removed".into());
    api.registry.metadata_store().delete_policy(KIND, stored.record.id, &[e]).await?;
    api.registry_health.remove(&stored.record.id);
    Ok(status_only(StatusCode::OK))
}

/// `POST /registries/ping` (`RegistryPing`: a stored endpoint by `id`, changed by what else is
/// given, or settings alone): 200 when it answers as a registry accepting the credential, 400
/// saying why not.
pub(crate) async fn ping(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let body: Value = call.json()?;
    let mut endpoint = match body.get("id").and_then(Value::as_u64) {
        Some(id) => {
            remote::by_id(&**api.registry.metadata_store(), id).await?.ok_or_else(|| not_found(&id.to_string()))?.doc
        }
        None => Endpoint { name: "ping".into(), ..Endpoint::default() },
    };
    let input: EndpointInput = serde_json::from_value(body).map_err(|e| bad_request(format!("the body: {e}")))?;
    endpoint.apply(input, key(&api)?).map_err(|e| bad_request(e.0))?;
    match check(&api, &endpoint).await? {
        None => Ok(status_only(StatusCode::OK)),
        Some(why) => Err(bad_request(format!("the registry cannot be used: {why}"))),
    }
}

/// The filters and triggers replication offers for every endpoint type (Harbor's `RegistryInfo`).
fn info_of(kind: &str) -> Value {
    json!({
        "type": kind,
        "description": match kind {
            "harbor" => "another instance of this registry, or Harbor",
            _ => "any registry speaking the distribution API (distribution, zot, Docker Hub-compatible)",
        },
        "supported_resource_filters": [
            {"type": "name", "style": "input"},
            {"type": "tag", "style": "input"},
            {"type": "label", "style": "input"},
            {"type": "resource", "style": "radio", "values": ["image", "artifact"]},
        ],
        "supported_triggers": ["manual", "scheduled", "event_based"],
    })
}

/// `GET /registries/{id}/info`.
pub(crate) async fn info(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let stored = existing(&api, &call).await?;
    Ok(json_response(StatusCode::OK, &info_of(&stored.doc.kind)))
}

/// `GET /replication/adapters`: the endpoint types.
pub(crate) async fn adapters(_api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    Ok(json_response(StatusCode::OK, &json!(TYPES)))
}

/// `GET /replication/adapterinfos`: each endpoint type's `RegistryProviderInfo` (any URL, Basic
/// credentials).
pub(crate) async fn adapter_infos(_api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let info = json!({
        "endpoint_pattern": {"endpoint_type": "EndpointPatternTypeStandard"},
        "credential_pattern": {"access_key_type": "AccessKeyTypeStandard", "access_secret_type": "AccessSecretTypePassword"},
    });
    let all: serde_json::Map<String, Value> = TYPES.iter().map(|t| ((*t).to_owned(), info.clone())).collect();
    Ok(json_response(StatusCode::OK, &Value::Object(all)))
}
