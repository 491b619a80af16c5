//! User groups in Harbor's shapes: `/usergroups` (list by `group_name`, `ldap_group_dn`; create),
//! `/usergroups/{id}` (get, rename, delete: system admins), `/usergroups/search?groupname=` (any
//! signed-in user, to add a group as a project member). An LDAP group (`group_type` 1) is made
//! only while users sign in through the directory, and only for a DN the directory has (its name
//! defaults to the directory's); OIDC groups (3) are also made at their members' first sign-in.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::{GroupKind, UserGroup};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::bad_request;
use super::pages::page_of;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// A group in Harbor's `UserGroup` shape.
pub(crate) fn group_json(g: &UserGroup) -> Value {
    json!({
        "id": g.id,
        "group_name": g.name,
        "group_type": g.kind.id(),
        "ldap_group_dn": g.ldap_dn,
    })
}

/// A group as a new member or a new group names it (Harbor's `UserGroup`).
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct GroupRef {
    pub(crate) id: Option<u64>,
    pub(crate) group_name: String,
    pub(crate) group_type: Option<i64>,
    pub(crate) ldap_group_dn: String,
}

impl GroupRef {
    /// The group it describes (not yet made: no id).
    fn group(&self) -> Result<UserGroup, ApiError> {
        Ok(UserGroup {
            id: 0,
            name: self.group_name.trim().to_owned(),
            kind: kind_of(self.group_type, &self.ldap_group_dn)?,
            ldap_dn: self.ldap_group_dn.trim().to_owned(),
            created_at: 0,
        })
    }
}

/// The kind of a `group_type`, refusing the ones this registry does not offer.
fn kind_of(group_type: Option<i64>, ldap_dn: &str) -> Result<GroupKind, ApiError> {
    let number = group_type.unwrap_or(if ldap_dn.is_empty() { 3 } else { 1 });
    match GroupKind::from_id(number) {
        Some(GroupKind::Http) => {
            Err(bad_request("group_type 2 (HTTP groups) needs http_auth, which this registry does not offer"))
        }
        Some(kind) => Ok(kind),
        None => Err(bad_request(format!("group_type {number} is not a group type: 1 LDAP, 3 OIDC"))),
    }
}

/// The directory's name for the group at `dn`, refusing a DN it does not have (400) or a
/// directory that cannot be asked (503).
#[cfg(feature = "ldap")]
async fn directory_group(api: &Api, dn: &str) -> Result<String, ApiError> {
    let settings = registry_platform::settings::SystemSettings::load(&**api.registry.metadata_store()).await?;
    if settings.auth_mode != registry_platform::signin::LDAP_AUTH {
        return Err(bad_request("LDAP groups (group_type 1) are made while auth_mode is ldap_auth"));
    }
    let config = registry_platform::ldap::LdapConfig::of(&settings, api.secret_key.as_ref())
        .map_err(|e| ApiError::harbor(StatusCode::SERVICE_UNAVAILABLE, e.0))?;
    match config.find_group(dn).await {
        Ok(Some(group)) => Ok(group.name),
        Ok(None) => Err(bad_request(format!("the LDAP directory has no group {dn}"))),
        Err(e) => Err(ApiError::harbor(StatusCode::SERVICE_UNAVAILABLE, e.0)),
    }
}

#[cfg(not(feature = "ldap"))]
async fn directory_group(_api: &Api, _dn: &str) -> Result<String, ApiError> {
    Err(bad_request("this registry is built without the ldap feature: it has no LDAP groups"))
}

/// The group `reference` names: by id, else the existing one of its kind and DN or name, else a
/// new one (an LDAP group checked with the directory first).
pub(crate) async fn resolve(api: &Api, call: &ApiCall, reference: GroupRef) -> Result<UserGroup, ApiError> {
    let accounts = api.accounts_for(call)?;
    if let Some(id) = reference.id.filter(|id| *id > 0) {
        return Ok(accounts.group(id).await?);
    }
    let probe = reference.group()?;
    if let Some(found) = accounts.groups().await?.into_iter().find(|g| g.kind == probe.kind && g.key() == probe.key()) {
        return Ok(found);
    }
    create_group(api, call, probe).await
}

/// Makes a group, checking an LDAP group's DN with the directory.
async fn create_group(api: &Api, call: &ApiCall, group: UserGroup) -> Result<UserGroup, ApiError> {
    let mut name = group.name;
    if group.kind == GroupKind::Ldap {
        if group.ldap_dn.is_empty() {
            return Err(bad_request("an LDAP group (group_type 1) needs its ldap_group_dn"));
        }
        let found = directory_group(api, &group.ldap_dn).await?;
        if name.is_empty() {
            name = found;
        }
    }
    Ok(api.accounts_for(call)?.create_group(&name, group.kind, &group.ldap_dn).await?)
}

/// `GET /usergroups` (system admins), filtered by `group_name` (contained) and `ldap_group_dn`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let name = call.query.get("group_name").unwrap_or_default().to_owned();
    let dn = call.query.get("ldap_group_dn").map(registry_auth::model::normalized_dn);
    let groups: Vec<UserGroup> = api
        .accounts_for(&call)?
        .groups()
        .await?
        .into_iter()
        .filter(|g| {
            g.name.contains(&name)
                && dn.as_ref().is_none_or(|dn| &registry_auth::model::normalized_dn(&g.ldap_dn) == dn)
        })
        .collect();
    page_of(&call, "/usergroups", groups, |g| group_json(&g))
}

/// `POST /usergroups` (system admins): 201 with its `Location`; 409 when it exists.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: GroupRef = call.json()?;
    let group = create_group(&api, &call, req.group()?).await?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/usergroups/{}", group.id)));
    Ok(r)
}

/// `GET /usergroups/{group_id}` (system admins).
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let group = api.accounts_for(&call)?.group(call.params.id("group_id")?).await?;
    Ok(json_response(StatusCode::OK, &group_json(&group)))
}

/// `PUT /usergroups/{group_id}` (system admins): only the name changes.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: GroupRef = call.json()?;
    let accounts = api.accounts_for(&call)?;
    let id = call.params.id("group_id")?;
    let current = accounts.group(id).await?;
    if req.group_type.is_some_and(|t| t != i64::from(current.kind.id())) {
        return Err(bad_request("a group's group_type cannot change"));
    }
    if !req.ldap_group_dn.is_empty()
        && registry_auth::model::normalized_dn(&req.ldap_group_dn)
            != registry_auth::model::normalized_dn(&current.ldap_dn)
    {
        return Err(bad_request("a group's ldap_group_dn cannot change: make a new group"));
    }
    accounts.rename_group(id, &req.group_name).await?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /usergroups/{group_id}` (system admins): with its memberships.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    api.accounts_for(&call)?.delete_group(call.params.id("group_id")?).await?;
    Ok(status_only(StatusCode::OK))
}

/// `GET /usergroups/search?groupname=` (signed in): Harbor's `UserGroupSearchItem`s.
pub(crate) async fn search(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.signed_in()?;
    let name = call.query.get("groupname").unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(bad_request("groupname is required"));
    }
    let groups: Vec<UserGroup> =
        api.accounts_for(&call)?.groups().await?.into_iter().filter(|g| g.name.contains(&name)).collect();
    page_of(
        &call,
        "/usergroups/search",
        groups,
        |g| json!({"id": g.id, "group_name": g.name, "group_type": g.kind.id()}),
    )
}
