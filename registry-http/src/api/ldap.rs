//! The LDAP directory for system admins, in Harbor's shapes: `POST /ldap/ping` (the saved
//! settings, or changes to them, tried against the server: `{success, message}`), `GET
//! /ldap/users/search?username=` (people whose sign-in name contains it) and `POST
//! /ldap/users/import` (`{ldap_uid_list}`: users made for people before their first sign-in; 404
//! with the ones that failed, as Harbor), `GET /ldap/groups/search?groupname=&groupdn=`.

use std::sync::Arc;

use http::StatusCode;
use registry_platform::ldap::LdapConfig;
use registry_platform::settings::SystemSettings;
use serde_json::{Value, json};

use super::context::bad_request;
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::json as json_response;

/// The directory could not be used: 503 saying why.
fn unavailable(why: String) -> ApiError {
    ApiError::harbor(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// The directory of the saved settings, with `changes` (Harbor's `LdapConf` keys) applied.
async fn config(api: &Api, changes: Option<&serde_json::Map<String, Value>>) -> Result<LdapConfig, ApiError> {
    let mut settings = SystemSettings::load(&**api.registry.metadata_store()).await?;
    for (name, value) in changes.into_iter().flatten() {
        if !super::configurations::apply_ldap(api, &mut settings, name, value)? {
            return Err(bad_request(format!("{name} is not an LDAP setting")));
        }
    }
    let config = LdapConfig::of(&settings, api.secret_key.as_ref()).map_err(|e| bad_request(e.0))?;
    config.checked().map_err(|e| bad_request(e.0))?;
    Ok(config)
}

/// `POST /ldap/ping`: `{"success": true}`, or `false` with what went wrong.
pub(crate) async fn ping(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let changes: Option<serde_json::Map<String, Value>> = if call.body.is_empty() { None } else { Some(call.json()?) };
    let answer = match config(&api, changes.as_ref()).await {
        Ok(config) => match config.ping().await {
            Ok(()) => json!({"success": true}),
            Err(e) => json!({"success": false, "message": e.0}),
        },
        Err(e) if e.status() == StatusCode::BAD_REQUEST => json!({"success": false, "message": e.message()}),
        Err(e) => return Err(e),
    };
    Ok(json_response(StatusCode::OK, &answer))
}

/// `GET /ldap/users/search?username=`: Harbor's `LdapUser`s.
pub(crate) async fn search_users(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let name = call.query.get("username").unwrap_or_default().to_owned();
    let config = config(&api, None).await?;
    let people = config.search(&name).await.map_err(|e| unavailable(e.0))?;
    let users: Vec<Value> =
        people.iter().map(|p| json!({"username": p.username, "realname": p.realname, "email": p.email})).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(users)))
}

/// `GET /ldap/groups/search?groupname=&groupdn=`: Harbor's `UserGroup`s of the directory (the
/// groups under the group base DN whose name contains `groupname`, or the one at `groupdn`).
pub(crate) async fn search_groups(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let name = call.query.get("groupname").unwrap_or_default().to_owned();
    let dn = call.query.get("groupdn").unwrap_or_default().to_owned();
    let config = config(&api, None).await?;
    let groups = config.search_groups(&name, &dn).await.map_err(|e| unavailable(e.0))?;
    let out: Vec<Value> =
        groups.iter().map(|g| json!({"group_name": g.name, "group_type": 1, "ldap_group_dn": g.dn})).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// `POST /ldap/users/import` `{"ldap_uid_list": [...]}`: 200, or 404 listing the names that
/// could not be imported and why (Harbor's `LdapFailedImportUser`).
pub(crate) async fn import_users(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let body: Value = call.json()?;
    let names: Vec<String> = body["ldap_uid_list"]
        .as_array()
        .ok_or_else(|| bad_request("ldap_uid_list is a list of names to import"))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let accounts = api.accounts_for(&call)?;
    let config = config(&api, None).await?;
    let mut failed = Vec::new();
    for name in names {
        let found = config.search(&name).await.map_err(|e| unavailable(e.0))?;
        let Some(person) = found.into_iter().find(|p| p.username == name) else {
            failed.push(json!({"uid": name, "error": "not found in the directory"}));
            continue;
        };
        if accounts.user(&name).await?.is_some() {
            failed.push(json!({"uid": name, "error": "the user exists already"}));
            continue;
        }
        let profile = registry_auth::Profile {
            username: person.username,
            dn: person.dn,
            email: person.email,
            realname: person.realname,
            admin: false,
            groups: Vec::new(),
            oidc: None,
        };
        if let Err(e) = accounts.import_directory_user(&profile).await {
            failed.push(json!({"uid": name, "error": e.to_string()}));
        }
    }
    if failed.is_empty() {
        return Ok(json_response(StatusCode::OK, &json!({})));
    }
    Ok(json_response(StatusCode::NOT_FOUND, &Value::Array(failed)))
}
