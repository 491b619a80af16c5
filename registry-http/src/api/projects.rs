//! Projects: `/projects` (list, exists, create), `/projects/{p}` (get, update, delete),
//! `_deletable`, `summary`, `metadatas`.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use registry_auth::{Identity, Project, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{bad_request, forbidden};
use super::pages::page_of;
use super::q::Q;
use super::shapes::{self, ProjectExtras};
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};
use registry_platform::settings::SystemSettings;

/// The repositories of a project: its single-component repository and those under `project/`,
/// in lexical order. Costs grow with the project's repositories, not the registry's.
pub(crate) async fn repositories(api: &Api, project: &str) -> Result<Vec<String>, ApiError> {
    let registry = &api.registry;
    let mut out = Vec::new();
    if let Ok(name) = registry_core::RepositoryName::parse(project)
        && registry.tags(&name, None, Some(0)).await.is_ok()
    {
        out.push(project.to_owned());
    }
    let prefix = format!("{project}/");
    let mut last = prefix.clone();
    loop {
        let page = registry.catalog(Some(&last), None).await?;
        let mut done = !page.more;
        for name in page.entries {
            if !name.starts_with(&prefix) {
                done = true;
                break;
            }
            last = name.clone();
            out.push(name);
        }
        if done {
            return Ok(out);
        }
    }
}

/// How many repositories a project holds (those holding an artifact: a deleted repository's
/// blobs wait for garbage collection, but the repository is gone, as the repositories API shows):
/// the store's count.
pub(crate) async fn repository_count(api: &Api, project: &str) -> Result<u64, ApiError> {
    Ok(api.registry.metadata_store().project_repositories(project, 0, 0).await?.total)
}

async fn extras(api: &Api, who: &Identity, p: &Project) -> Result<ProjectExtras, ApiError> {
    let owner_name = match p.owner_id {
        Some(id) => api.accounts()?.user_by_id(id).await?.map(|u| u.name).unwrap_or_default(),
        None => String::new(),
    };
    Ok(ProjectExtras { repo_count: repository_count(api, &p.name).await?, owner_name, role: api.role(who, p).await? })
}

/// `GET /projects`: the projects the caller can see, filtered by `name`, `public`, `owner`, `q`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let accounts = api.accounts_for(&call)?;
    let q = Q::parse(call.query.get("q"), &["name", "public", "owner"])?;
    let who = call.caller().clone();
    let mut visible = Vec::new();
    for p in accounts.projects().await? {
        if !api.may_see(&who, &p).await? {
            continue;
        }
        let extras = extras(&api, &who, &p).await?;
        if call.query.get("name").is_some_and(|n| !p.name.contains(n))
            || call.query.get("public").is_some_and(|v| v != p.public.to_string())
            || call.query.get("owner").is_some_and(|o| o != extras.owner_name)
            || !q.accepts("name", &p.name)
            || !q.accepts("public", &p.public.to_string())
            || !q.accepts("owner", &extras.owner_name)
        {
            continue;
        }
        visible.push(shapes::project(&p, &extras));
    }
    page_of(&call, "/projects", visible, |v| v)
}

/// `HEAD /projects?project_name=`: 200 when it exists, 404 otherwise.
pub(crate) async fn exists(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let name = call.query.get("project_name").ok_or_else(|| bad_request("project_name is required"))?;
    match api.accounts_for(&call)?.project(name).await? {
        Some(_) => Ok(status_only(StatusCode::OK)),
        None => Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("project {name} not found"))),
    }
}

/// `ProjectReq`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ProjectReq {
    project_name: Option<String>,
    public: Option<bool>,
    metadata: BTreeMap<String, Value>,
    storage_limit: Option<i64>,
    registry_id: Option<i64>,
    /// The project's own CVE allowlist (used when `reuse_sys_cve_allowlist` is `"false"`).
    #[cfg_attr(not(feature = "scanning"), allow(dead_code))]
    cve_allowlist: Option<Value>,
}

/// Project metadata whose values are `"true"` or `"false"`.
const FLAGS: [&str; 7] = [
    "public",
    "enable_content_trust",
    "enable_content_trust_cosign",
    "prevent_vul",
    "auto_scan",
    "auto_sbom_generation",
    "reuse_sys_cve_allowlist",
];
/// The values of `severity`.
const SEVERITIES: [&str; 5] = ["none", "low", "medium", "high", "critical"];

impl ProjectReq {
    /// Metadata as Harbor's strings, checked; `public` apart.
    fn metadata(&self) -> Result<(Option<bool>, BTreeMap<String, String>), ApiError> {
        let mut public = self.public;
        let mut out = BTreeMap::new();
        for (k, v) in &self.metadata {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if k == "registry_id" {
                return Err(bad_request(
                    "registry_id is not metadata: a project becomes a proxy cache when it is created with registry_id",
                ));
            }
            if FLAGS.contains(&k.as_str()) && text != "true" && text != "false" {
                return Err(bad_request(format!("metadata {k} must be \"true\" or \"false\", not {text:?}")));
            }
            if k == "severity" && !SEVERITIES.contains(&text.to_ascii_lowercase().as_str()) {
                return Err(bad_request(format!(
                    "metadata severity {text:?} is unknown; use {}",
                    SEVERITIES.join(", ")
                )));
            }
            if k == "public" {
                public = public.or(Some(text == "true"));
            } else {
                out.insert(k.clone(), if k == "severity" { text.to_ascii_lowercase() } else { text });
            }
        }
        Ok((public, out))
    }

    /// The project allowlist sent, checked.
    #[cfg(feature = "scanning")]
    fn allowlist(&self) -> Result<Option<registry_platform::scan::allowlist::Allowlist>, ApiError> {
        let Some(v) = &self.cve_allowlist else { return Ok(None) };
        let list: registry_platform::scan::allowlist::Allowlist =
            serde_json::from_value(v.clone()).map_err(|e| bad_request(format!("cve_allowlist: {e}")))?;
        Ok(Some(list.checked().map_err(|e| bad_request(format!("cve_allowlist: {}", e.0)))?))
    }
}

/// The registry endpoint a new project is a proxy cache of (Harbor's `registry_id`), checked.
async fn proxy_registry(api: &Api, registry_id: Option<i64>) -> Result<Option<u64>, ApiError> {
    match registry_id {
        None | Some(0) => Ok(None),
        #[cfg(feature = "replication")]
        Some(id) => {
            let id = u64::try_from(id).map_err(|_| bad_request(format!("registry_id {id} is not a registry's id")))?;
            if registry_platform::remote::by_id(&**api.registry.metadata_store(), id).await?.is_none() {
                return Err(bad_request(format!(
                    "registry_id {id}: no such registry; create it under /registries first"
                )));
            }
            Ok(Some(id))
        }
        #[cfg(not(feature = "replication"))]
        Some(_) => {
            let _ = api;
            Err(bad_request("this registry is built without proxy caches (feature replication)"))
        }
    }
}

/// `POST /projects`: the creator becomes its project admin.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = call.user_name()?.to_owned();
    let accounts = api.accounts_for(&call)?;
    let req: ProjectReq = call.json()?;
    let name = req.project_name.clone().ok_or_else(|| bad_request("project_name is required"))?;
    let proxy_of = proxy_registry(&api, req.registry_id).await?;
    // Harbor's rule: only system administrators choose a limit; others get the default.
    let settings = SystemSettings::load(&**api.registry.metadata_store()).await?;
    let limit = match req.storage_limit.filter(|l| *l != 0 && call.caller().is_admin()) {
        Some(l) => l,
        None => settings.storage_per_project,
    };
    // Checked before anything is made: a bad limit leaves no project behind.
    registry_platform::quotas::limit_of(limit).map_err(|e| bad_request(format!("storage_limit: {e}")))?;
    let (public, mut metadata) = req.metadata()?;
    if let Some(id) = proxy_of {
        metadata.insert("registry_id".into(), id.to_string());
    }
    #[cfg(feature = "scanning")]
    let allowlist = req.allowlist()?;
    let owner = accounts.user(&user).await?.map(|u| u.id);
    let project = accounts.create_project_with(&name, public.unwrap_or(false), owner, metadata).await?;
    super::quotas::set_limit(&api, &call, &project.name, limit).await?;
    #[cfg(feature = "scanning")]
    if let Some(list) = allowlist.filter(|l| !l.items.is_empty() || l.expires_at.is_some()) {
        super::scans::save_allowlist(&api, &call, project.id, &project.name, &list).await?;
    }
    // The admin socket's caller is no account: the project then has no first member.
    if owner.is_some() {
        accounts.add_member(&project.name, &user, Role::ProjectAdmin, None).await?;
    }
    let mut r = status_only(StatusCode::CREATED);
    let by_name = call.headers.get("x-resource-name-in-location").and_then(|v| v.to_str().ok()) == Some("true");
    let key = if by_name { project.name.clone() } else { project.id.to_string() };
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/projects/{key}")));
    Ok(r)
}

/// `GET /projects/{p}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_see(&call, &project).await?;
    let extras = extras(&api, call.caller(), &project).await?;
    #[cfg_attr(not(feature = "scanning"), allow(unused_mut))]
    let mut shown = shapes::project(&project, &extras);
    #[cfg(feature = "scanning")]
    {
        let (list, record) =
            registry_platform::scan::allowlist::load(&**api.registry.metadata_store(), project.id).await?;
        shown["cve_allowlist"] = list.to_json(project.id, record.as_ref());
    }
    Ok(json_response(StatusCode::OK, &shown))
}

/// `PUT /projects/{p}`: publicity and metadata (project admins).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let req: ProjectReq = call.json()?;
    if req.project_name.as_deref().is_some_and(|n| n != project.name) {
        return Err(bad_request("a project cannot be renamed"));
    }
    let (public, metadata) = req.metadata()?;
    #[cfg(feature = "scanning")]
    let allowlist = req.allowlist()?;
    api.accounts_for(&call)?.update_project(&project.name, public, metadata).await?;
    #[cfg(feature = "scanning")]
    if let Some(list) = allowlist {
        super::scans::save_allowlist(&api, &call, project.id, &project.name, &list).await?;
    }
    #[cfg(feature = "scanning")]
    if let Some(s) = &api.scanning {
        s.cache().forget_settings();
    }
    Ok(status_only(StatusCode::OK))
}

/// Why a project cannot be deleted, if it cannot.
async fn undeletable(api: &Api, project: &Project) -> Result<Option<String>, ApiError> {
    let repos = repository_count(api, &project.name).await?;
    Ok((repos > 0)
        .then(|| format!("project {} holds {repos} repositories: delete them before the project", project.name)))
}

/// `DELETE /projects/{p}`: refused (412) while it holds repositories.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    if let Some(why) = undeletable(&api, &project).await? {
        return Err(ApiError::harbor(StatusCode::PRECONDITION_FAILED, why));
    }
    api.accounts_for(&call)?.remove_project(&project.name).await?;
    // Its quota and policies go with it (it holds nothing: a project holding repositories is
    // not deleted).
    let meta = api.registry.metadata_store();
    meta.remove_quota(&project.name).await?;
    #[cfg_attr(not(any(feature = "webhooks", feature = "scanning")), allow(unused_mut))]
    let mut kinds = vec![
        registry_platform::immutability::KIND,
        registry_platform::labels::KIND,
        registry_platform::retention::KIND,
        registry_platform::trust::KIND,
    ];
    #[cfg(feature = "webhooks")]
    kinds.push(registry_platform::webhook::policy::KIND);
    #[cfg(feature = "scanning")]
    kinds.extend([registry_platform::scan::allowlist::KIND, registry_platform::scan::registration::BINDING]);
    for kind in kinds {
        for policy in meta.policies(kind, Some(project.id)).await? {
            meta.delete_policy(kind, policy.id, &[]).await?;
            if kind == registry_platform::labels::KIND {
                meta.drop_label(policy.id).await?;
            }
        }
    }
    Ok(status_only(StatusCode::OK))
}

/// `GET /projects/{p}/_deletable`.
pub(crate) async fn deletable(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let why = undeletable(&api, &project).await?;
    Ok(json_response(StatusCode::OK, &json!({"deletable": why.is_none(), "message": why.unwrap_or_default()})))
}

/// `GET /projects/{p}/summary`: repositories and members by role.
pub(crate) async fn summary(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_see(&call, &project).await?;
    let members = api.accounts_for(&call)?.members(&project.name).await?;
    let count = |role: Role| members.iter().filter(|m| m.member.role == role).count();
    let quota = api.registry.quota(&project.name).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "repo_count": repository_count(&api, &project.name).await?,
            "project_admin_count": count(Role::ProjectAdmin),
            "maintainer_count": count(Role::Maintainer),
            "developer_count": count(Role::Developer),
            "guest_count": count(Role::Guest),
            "limited_guest_count": count(Role::LimitedGuest),
            // The storage the project's repositories hold, each blob once, and its limit.
            "quota": {
                "hard": {"storage": registry_platform::quotas::harbor_limit(quota.as_ref().and_then(|q| q.limit))},
                "used": {"storage": quota.as_ref().map_or(0, |q| q.used)},
            },
        }),
    ))
}

fn metadata_map(project: &Project) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("public".into(), project.public.to_string().into());
    for (k, v) in &project.metadata {
        map.insert(k.clone(), v.clone().into());
    }
    map
}

/// `GET /projects/{p}/metadatas`.
pub(crate) async fn metadata_list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_see(&call, &project).await?;
    Ok(json_response(StatusCode::OK, &Value::Object(metadata_map(&project))))
}

/// `GET /projects/{p}/metadatas/{name}`.
pub(crate) async fn metadata_get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_see(&call, &project).await?;
    let name = call.params.get("name")?;
    let value = metadata_map(&project).remove(name).ok_or_else(|| {
        ApiError::harbor(StatusCode::NOT_FOUND, format!("project {} has no metadata {name}", project.name))
    })?;
    Ok(json_response(StatusCode::OK, &json!({ name: value })))
}

/// `POST /projects/{p}/metadatas` and `PUT …/metadatas/{name}`: sets keys.
pub(crate) async fn metadata_add(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let body: BTreeMap<String, Value> = call.json()?;
    if let Ok(name) = call.params.get("name")
        && body.keys().any(|k| k != name)
    {
        return Err(bad_request(format!("the body may set {name} only")));
    }
    let req = ProjectReq { metadata: body, ..ProjectReq::default() };
    let (public, metadata) = req.metadata()?;
    api.accounts_for(&call)?.update_project(&project.name, public, metadata).await?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /projects/{p}/metadatas/{name}`.
pub(crate) async fn metadata_delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let name = call.params.get("name")?;
    if name == "public" {
        return Err(forbidden("public cannot be deleted; set it to \"false\""));
    }
    if !api.accounts_for(&call)?.remove_project_metadata(&project.name, name).await? {
        return Err(ApiError::harbor(
            StatusCode::NOT_FOUND,
            format!("project {} has no metadata {name}", project.name),
        ));
    }
    Ok(status_only(StatusCode::OK))
}

/// `GET /projects/{p}/content-trust/keys` (beyond Harbor): the cosign public keys and notation
/// root certificates signatures must verify under when the project accepts only signed artifacts
/// (none: any signature of that kind counts).
pub(crate) async fn trusted_keys(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_see(&call, &project).await?;
    let (_, keys) = registry_platform::trust::keys_of(&**api.registry.metadata_store(), project.id).await?;
    Ok(json_response(StatusCode::OK, &json!({"cosign": keys.cosign, "notation": keys.notation})))
}

/// `PUT /projects/{p}/content-trust/keys` with `{"cosign": ["-----BEGIN PUBLIC KEY-----…"],
/// "notation": ["-----BEGIN CERTIFICATE-----…"]}` (project admins): ECDSA P-256 public keys and
/// X.509 root certificates in PEM, replacing both lists; `[]` trusts any signature again.
pub(crate) async fn set_trusted_keys(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let keys: registry_platform::trust::TrustedKeys = call.json()?;
    let keys = keys.checked().map_err(|e| bad_request(e.0))?;
    let meta = api.registry.metadata_store();
    let (id, _) = registry_platform::trust::keys_of(&**meta, project.id).await?;
    let resource = registry_core::event::Resource {
        project: Some(project.name.clone()),
        name: Some("content trust keys".into()),
        detail: Some(format!("{} cosign keys, {} notation roots", keys.cosign.len(), keys.notation.len())),
        ..registry_core::event::Resource::default()
    };
    let action = if id == 0 {
        registry_core::event::EventAction::CreatePolicy
    } else {
        registry_core::event::EventAction::UpdatePolicy
    };
    let event =
        registry_core::event::Event::new(api.registry.clock().now_millis(), call.operator.clone(), action, resource);
    meta.put_policy(&keys.record(id, project.id), &[event]).await?;
    if let Some(trust) = &api.trust {
        trust.forget_keys(project.id);
    }
    Ok(status_only(StatusCode::OK))
}
