//! Scanners: `/scanners` (list, register, get, update, delete, make default, ping, metadata) for
//! system admins, and `/projects/{p}/scanner` (the project's scanner: read by its members, set by
//! its admins) with `…/scanner/candidates`, in Harbor's `ScannerRegistration` shape. Credentials
//! are sealed at rest and never shown; a registration is checked against its adapter (its
//! metadata fetched) before it is kept, so an unreachable or wrong URL is refused at once.

use registry_platform::documents::Document;
use std::sync::Arc;

use http::StatusCode;
use registry_core::event::{Event, EventAction, Resource};
use registry_platform::scan::adapter::{Adapter, AdapterMetadata};
use registry_platform::scan::jobs::Scanning;
use registry_platform::scan::registration::{self, KIND, Registration, RegistrationInput, Stored};
use registry_storage::policies::SYSTEM;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// The scanning of this server, or why there is none.
pub(crate) fn scanning(api: &Api) -> Result<&Arc<Scanning>, ApiError> {
    api.scanning.as_ref().ok_or_else(|| {
        ApiError::harbor(
            StatusCode::NOT_IMPLEMENTED,
            "this registry does not scan: it runs without Harbor's accounts or without the scanning feature",
        )
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::harbor(StatusCode::NOT_FOUND, format!("scanner registration {id} not found"))
}

fn time(ms: u64) -> Value {
    registry_core::time::rfc3339(ms / 1000).into()
}

/// Harbor's `ScannerRegistration` (never the credential), with what its metadata says when
/// known.
fn registration_json(
    stored: &Stored,
    default: Option<&str>,
    metadata: Option<&Result<AdapterMetadata, String>>,
) -> Value {
    let r = &stored.doc;
    let mut v = json!({
        "uuid": r.uuid,
        "name": r.name,
        "description": r.description,
        "url": r.url,
        "disabled": r.disabled,
        "is_default": default == Some(r.uuid.as_str()),
        "auth": r.auth,
        "access_credential": if r.access_credential.is_some() { "***" } else { "" },
        "skip_certVerify": r.skip_cert_verify,
        "use_internal_addr": r.use_internal_addr,
        "create_time": time(stored.record.created_ms),
        "update_time": time(stored.record.updated_ms),
        "adapter": "",
        "vendor": "",
        "version": "",
        "health": "",
    });
    match metadata {
        Some(Ok(m)) => {
            v["adapter"] = json!(m.scanner.name);
            v["vendor"] = json!(m.scanner.vendor);
            v["version"] = json!(m.scanner.version);
            v["health"] = json!("healthy");
            let capabilities: serde_json::Map<String, Value> = m
                .capabilities
                .iter()
                .map(|c| (c.kind.clone().unwrap_or_else(|| "vulnerability".into()), json!(true)))
                .collect();
            v["capabilities"] = Value::Object(capabilities);
        }
        Some(Err(why)) => {
            v["health"] = json!("unhealthy");
            v["error"] = json!(why);
        }
        None => {}
    }
    v
}

async fn default_uuid(api: &Api) -> Result<Option<String>, ApiError> {
    Ok(registration::bound(&**api.registry.metadata_store(), SYSTEM).await?)
}

fn event(api: &Api, call: &ApiCall, name: &str, detail: String) -> Event {
    let resource = Resource { name: Some(name.to_owned()), detail: Some(detail), ..Resource::default() };
    Event::new(api.registry.clock().now_millis(), call.operator.clone(), EventAction::UpdateScanner, resource)
}

async fn existing(api: &Api, call: &ApiCall) -> Result<Stored, ApiError> {
    let id = call.params.get("registration_id")?;
    registration::by_uuid(&**api.registry.metadata_store(), id).await?.ok_or_else(|| not_found(id))
}

/// The metadata of `registration`'s adapter, or why it could not be read.
async fn metadata_of(api: &Api, registration: &Registration) -> Result<AdapterMetadata, String> {
    let Some(scanning) = api.scanning.as_ref() else { return Err("this registry does not scan".into()) };
    let adapter = Adapter::of(registration, scanning.key()).map_err(|e| e.0)?;
    adapter.metadata().await.map_err(|e| e.0)
}

/// A scanner that cannot be reached or answers wrongly, told to the person registering it.
fn unusable(why: String) -> ApiError {
    bad_request(format!("the scanner cannot be used: {why}"))
}

/// `GET /scanners`: `q=name=~…`, `q=description=~…`, `q=url=~…`, paged.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let q = Q::parse(call.query.get("q"), &["name", "description", "url"])?;
    let default = default_uuid(&api).await?;
    let all: Vec<Value> = registration::all(&**api.registry.metadata_store())
        .await?
        .iter()
        .filter(|s| {
            q.accepts("name", &s.doc.name)
                && q.accepts("description", &s.doc.description)
                && q.accepts("url", &s.doc.url)
        })
        .map(|s| registration_json(s, default.as_deref(), None))
        .collect();
    page_of(&call, "/scanners", all, |v| v)
}

/// `POST /scanners`: 201 with `Location: …/scanners/{uuid}`; the first registration becomes the
/// default. Refused (400) when its adapter cannot be reached or answers wrongly.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let input: RegistrationInput = call.json()?;
    let mut registration = Registration { uuid: registration::new_uuid(), ..Registration::default() };
    registration.apply(input, scanning.key()).map_err(|e| bad_request(e.0))?;
    metadata_of(&api, &registration).await.map_err(unusable)?;
    let meta = api.registry.metadata_store();
    let e = event(&api, &call, &registration.name, format!("registered at {}", registration.url));
    meta.put_policy(&registration.record(0), &[e]).await.map_err(|e| taken(e, &registration.name))?;
    if default_uuid(&api).await?.is_none() {
        registration::bind(&**meta, SYSTEM, &registration.uuid, &[]).await?;
    }
    scanning.cache().forget_settings();
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/scanners/{}", registration.uuid)));
    Ok(r)
}

fn taken(e: registry_storage::Error, name: &str) -> ApiError {
    match e {
        registry_storage::Error::Conflict { .. } => {
            ApiError::harbor(StatusCode::CONFLICT, format!("a scanner named {name:?} is registered already"))
        }
        other => other.into(),
    }
}

/// `GET /scanners/{id}`: with its adapter's health and version.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let stored = existing(&api, &call).await?;
    let metadata = metadata_of(&api, &stored.doc).await;
    let default = default_uuid(&api).await?;
    Ok(json_response(StatusCode::OK, &registration_json(&stored, default.as_deref(), Some(&metadata))))
}

/// `PUT /scanners/{id}`: an omitted or empty `access_credential` keeps the stored one.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let stored = existing(&api, &call).await?;
    let input: RegistrationInput = call.json()?;
    let checks_adapter = input.url.is_some() || input.auth.is_some() || input.access_credential.is_some();
    let mut registration = stored.doc.clone();
    registration.apply(input, scanning.key()).map_err(|e| bad_request(e.0))?;
    if checks_adapter && !registration.disabled {
        metadata_of(&api, &registration).await.map_err(unusable)?;
    }
    let e = event(&api, &call, &registration.name, "changed".into());
    api.registry
        .metadata_store()
        .put_policy(&registration.record(stored.record.id), &[e])
        .await
        .map_err(|e| taken(e, &registration.name))?;
    scanning.cache().forget_settings();
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /scanners/{id}`: the deleted registration; the default cannot be deleted while others
/// remain (make another the default first). Projects bound to it fall back to the default.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let stored = existing(&api, &call).await?;
    let meta = api.registry.metadata_store();
    let default = default_uuid(&api).await?;
    let others = registration::all(&**meta).await?.len() > 1;
    if default.as_deref() == Some(stored.doc.uuid.as_str()) && others {
        return Err(ApiError::harbor(
            StatusCode::CONFLICT,
            format!(
                "scanner {:?} is the default; make another scanner the default before deleting it",
                stored.doc.name
            ),
        ));
    }
    let shown = registration_json(&stored, default.as_deref(), None);
    let e = event(&api, &call, &stored.doc.name, "removed".into());
    meta.delete_policy(KIND, stored.record.id, &[e]).await?;
    registration::unbind(&**meta, &stored.doc.uuid).await?;
    scanning.cache().forget_settings();
    Ok(json_response(StatusCode::OK, &shown))
}

#[derive(Deserialize)]
struct IsDefault {
    is_default: bool,
}

/// `PATCH /scanners/{id}` with `{"is_default": true}`: makes it the default.
pub(crate) async fn set_default(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let stored = existing(&api, &call).await?;
    let body: IsDefault = call.json()?;
    if !body.is_default {
        return Err(bad_request("is_default must be true: make another scanner the default instead"));
    }
    let e = event(&api, &call, &stored.doc.name, "made the default".into());
    registration::bind(&**api.registry.metadata_store(), SYSTEM, &stored.doc.uuid, &[e]).await?;
    scanning.cache().forget_settings();
    Ok(status_only(StatusCode::OK))
}

/// `POST /scanners/ping` with `ScannerRegistrationSettings`: 200 when its adapter answers with
/// metadata, 400 saying why not.
pub(crate) async fn ping(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let scanning = scanning(&api)?.clone();
    let input: RegistrationInput = call.json()?;
    let mut registration = Registration::default();
    let input = RegistrationInput { name: input.name.or_else(|| Some("ping".into())), ..input };
    registration.apply(input, scanning.key()).map_err(|e| bad_request(e.0))?;
    let metadata = metadata_of(&api, &registration).await.map_err(unusable)?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(&metadata).unwrap_or(Value::Null)))
}

/// `GET /scanners/{id}/metadata`: the adapter's `ScannerAdapterMetadata`.
pub(crate) async fn metadata(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    scanning(&api)?;
    let stored = existing(&api, &call).await?;
    let metadata =
        metadata_of(&api, &stored.doc).await.map_err(|why| ApiError::harbor(StatusCode::BAD_GATEWAY, why))?;
    Ok(json_response(StatusCode::OK, &serde_json::to_value(&metadata).unwrap_or(Value::Null)))
}

/// `GET /projects/{p}/scanner`: the project's scanner (its own, else the default); 404 when
/// there is none.
pub(crate) async fn project_scanner(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, "scanner", "read").await?;
    scanning(&api)?;
    let meta = api.registry.metadata_store();
    let uuid = match registration::bound(&**meta, project.id).await? {
        Some(uuid) => Some(uuid),
        None => default_uuid(&api).await?,
    };
    let stored = match uuid {
        Some(uuid) => registration::by_uuid(&**meta, &uuid).await?,
        None => None,
    };
    let stored = stored.ok_or_else(|| {
        ApiError::harbor(
            StatusCode::NOT_FOUND,
            format!("project {} has no scanner and no default scanner is set", project.name),
        )
    })?;
    let default = default_uuid(&api).await?;
    Ok(json_response(StatusCode::OK, &registration_json(&stored, default.as_deref(), None)))
}

#[derive(Deserialize)]
struct ProjectScanner {
    uuid: String,
}

/// `PUT /projects/{p}/scanner` with `{"uuid": …}` (project admins).
pub(crate) async fn set_project_scanner(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, "scanner", "create").await?;
    let scanning = scanning(&api)?.clone();
    let body: ProjectScanner = call.json()?;
    let meta = api.registry.metadata_store();
    let stored = registration::by_uuid(&**meta, &body.uuid).await?.ok_or_else(|| {
        bad_request(format!(
            "uuid {:?} names no scanner registration; see GET /projects/{}/scanner/candidates",
            body.uuid, project.id
        ))
    })?;
    let resource = Resource {
        project: Some(project.name.clone()),
        name: Some(stored.doc.name.clone()),
        detail: Some(format!("the scanner of project {}", project.name)),
        ..Resource::default()
    };
    let e = Event::new(api.registry.clock().now_millis(), call.operator.clone(), EventAction::UpdateScanner, resource);
    registration::bind(&**meta, project.id, &body.uuid, &[e]).await?;
    scanning.cache().forget_settings();
    Ok(status_only(StatusCode::OK))
}

/// `GET /projects/{p}/scanner/candidates` (project admins): the registrations it may choose.
pub(crate) async fn candidates(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project_name_or_id").await?;
    api.require_permission(&call, &project, "scanner", "create").await?;
    scanning(&api)?;
    let q = Q::parse(call.query.get("q"), &["name", "description", "url"])?;
    let default = default_uuid(&api).await?;
    let all: Vec<Value> = registration::all(&**api.registry.metadata_store())
        .await?
        .iter()
        .filter(|s| q.accepts("name", &s.doc.name) && q.accepts("url", &s.doc.url))
        .map(|s| registration_json(s, default.as_deref(), None))
        .collect();
    page_of(&call, &format!("/projects/{}/scanner/candidates", project.name), all, |v| v)
}
