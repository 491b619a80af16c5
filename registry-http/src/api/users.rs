//! Users: `/users` (list, create: system admins), `/users/current` and its permissions,
//! `/users/search`, `/users/{id}` (get, update, delete), `…/password`, `…/sysadmin`.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::{NewUser, Role, User};
use serde::Deserialize;
use serde_json::json;

use super::context::{bad_request, forbidden};
use super::pages::page_of;
use super::q::Q;
use super::{Api, ApiCall, ApiResult, shapes};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// `GET /users` (system admins), filtered by `q` (`username`, `email`).
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let q = Q::parse(call.query.get("q"), &["username", "email"])?;
    let users: Vec<User> = api
        .accounts_for(&call)?
        .users()
        .await?
        .into_iter()
        .filter(|u| q.accepts("username", &u.name) && q.accepts("email", &u.email))
        .collect();
    page_of(&call, "/users", users, |u| shapes::user(&u))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserCreationReq {
    username: String,
    password: String,
    email: String,
    realname: String,
    comment: String,
    sysadmin_flag: bool,
}

/// `POST /users` (system admins).
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.require_admin()?;
    let req: UserCreationReq = call.json()?;
    let user = api
        .accounts_for(&call)?
        .create_user(NewUser {
            name: req.username,
            password: req.password,
            admin: req.sysadmin_flag,
            email: req.email,
            realname: req.realname,
            comment: req.comment,
        })
        .await?;
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/users/{}", user.id)));
    Ok(r)
}

async fn calling_user(api: &Api, call: &ApiCall) -> Result<User, ApiError> {
    let name = call.user_name()?;
    api.accounts_for(call)?
        .user(name)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::UNAUTHORIZED, "the account is gone"))
}

/// `GET /users/current`: a provider's user with their `oidc_user_meta` (subject and CLI secret,
/// Harbor's), shown to themselves only.
pub(crate) async fn current(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = calling_user(&api, &call).await?;
    let mut shape = shapes::user(&user);
    if let Some(link) = &user.oidc {
        let secret = match &api.secret_key {
            Some(key) => key.open(&link.secret).unwrap_or_default(),
            None => String::new(),
        };
        shape["oidc_user_meta"] = json!({
            "id": user.id,
            "user_id": user.id,
            "subiss": format!("{}{}", link.subject, link.issuer),
            "secret": secret,
            "creation_time": registry_core::time::rfc3339(user.created_at),
            "update_time": registry_core::time::rfc3339(user.password_changed_at),
        });
    }
    let mut response = json_response(StatusCode::OK, &shape);
    set(response.headers_mut(), http::header::CACHE_CONTROL, "no-store");
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CliSecretReq {
    secret: String,
}

/// `PUT /users/{id}/cli_secret` (`{secret}`): a provider's user sets their CLI secret (a system
/// admin may set anyone's); at least 8 characters. The old one stops working at once.
pub(crate) async fn cli_secret(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, false).await?;
    let req: CliSecretReq = call.json()?;
    let key =
        api.secret_key.as_ref().ok_or_else(|| bad_request("this registry has no key to seal CLI secrets with"))?;
    let sealed = key.seal(&req.secret).map_err(|e| bad_request(format!("sealing the secret: {e}")))?;
    api.accounts_for(&call)?.set_cli_secret(&user.name, &req.secret, &sealed).await?;
    Ok(status_only(StatusCode::OK))
}

/// What a role may do in a project, as Harbor's `{resource, action}` pairs.
fn role_permissions(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("repository", "pull"),
        ("repository", "list"),
        ("repository", "read"),
        ("artifact", "read"),
        ("artifact", "list"),
        ("tag", "list"),
    ];
    if role != Role::LimitedGuest {
        out.extend([("member", "list"), ("robot", "list"), ("project", "read")]);
    }
    if matches!(role, Role::ProjectAdmin | Role::Maintainer | Role::Developer) {
        out.extend([("repository", "push"), ("tag", "create"), ("artifact", "create")]);
    }
    if matches!(role, Role::ProjectAdmin | Role::Maintainer) {
        out.extend([("repository", "delete"), ("artifact", "delete"), ("tag", "delete"), ("repository", "update")]);
    }
    if role == Role::ProjectAdmin {
        out.extend([
            ("member", "create"),
            ("member", "update"),
            ("member", "delete"),
            ("robot", "create"),
            ("robot", "update"),
            ("robot", "delete"),
            ("project", "update"),
            ("project", "delete"),
            ("metadata", "create"),
            ("metadata", "update"),
        ]);
    }
    out
}

/// `GET /users/current/permissions?scope=/project/{id}&relative=`.
pub(crate) async fn current_permissions(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let who = call.signed_in()?.clone();
    let scope = call.query.get("scope").unwrap_or("");
    let relative = call.query.get("relative") == Some("true");
    let mut out = Vec::new();
    if let Some(project) = scope.strip_prefix("/project/") {
        let project = project.split('/').next().unwrap_or_default();
        let accounts = api.accounts_for(&call)?;
        let found = match project.parse::<u64>() {
            Ok(id) => accounts.project_by_id(id).await?,
            Err(_) => accounts.project(project).await?,
        };
        if let Some(p) = found
            && let Some(role) = api.role(&who, &p).await?
        {
            for (resource, action) in role_permissions(role) {
                let resource = if relative { resource.to_owned() } else { format!("/project/{}/{resource}", p.id) };
                out.push(json!({"resource": resource, "action": action}));
            }
        }
    } else if who.is_admin() {
        for resource in ["user", "project", "robot", "garbage-collection", "audit-log"] {
            out.push(json!({"resource": if relative { resource.to_owned() } else { format!("/system/{resource}") }, "action": "*"}));
        }
    }
    Ok(json_response(StatusCode::OK, &serde_json::Value::Array(out)))
}

/// `GET /users/search?username=` (any signed-in user: to add members).
pub(crate) async fn search(api: Arc<Api>, call: ApiCall) -> ApiResult {
    call.signed_in()?;
    let needle = call.query.get("username").ok_or_else(|| bad_request("username is required"))?.to_owned();
    let found: Vec<User> =
        api.accounts_for(&call)?.users().await?.into_iter().filter(|u| u.name.contains(&needle)).collect();
    page_of(&call, "/users/search", found, |u| json!({"user_id": u.id, "username": u.name}))
}

/// The user of the path, visible to system admins and to themselves.
async fn path_user(api: &Api, call: &ApiCall, admin_only: bool) -> Result<User, ApiError> {
    let who = call.signed_in()?;
    let id = call.params.id("user_id")?;
    let user = api
        .accounts_for(call)?
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("user {id} not found")))?;
    let own = matches!(who, registry_auth::Identity::User { name, .. } if *name == user.name);
    if who.is_admin() || (own && !admin_only) {
        Ok(user)
    } else {
        Err(forbidden("only system administrators and the user themselves"))
    }
}

/// `GET /users/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, false).await?;
    Ok(json_response(StatusCode::OK, &shapes::user(&user)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserProfile {
    email: Option<String>,
    realname: Option<String>,
    comment: Option<String>,
    /// Our extension: system admins enable and disable accounts (a disabled user cannot log in).
    enabled: Option<bool>,
}

/// `PUT /users/{id}`: e-mail, full name, comment (and `enabled`, for system admins).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, false).await?;
    let req: UserProfile = call.json()?;
    let accounts = api.accounts_for(&call)?;
    if let Some(enabled) = req.enabled {
        call.require_admin()?;
        if !enabled && call.user_name()? == user.name {
            return Err(forbidden("you cannot disable yourself"));
        }
        accounts.set_user_enabled(&user.name, enabled).await?;
    }
    accounts.update_profile(&user.name, req.email, req.realname, req.comment).await?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /users/{id}` (system admins; not themselves).
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, true).await?;
    if call.user_name()? == user.name {
        return Err(forbidden("you cannot delete yourself"));
    }
    api.accounts_for(&call)?.remove_user(&user.name).await?;
    Ok(status_only(StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordReq {
    old_password: Option<String>,
    new_password: String,
}

/// `PUT /users/{id}/password`: the old password is required, except from a system
/// administrator setting another user's.
pub(crate) async fn password(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, false).await?;
    let req: PasswordReq = call.json()?;
    let own = call.user_name()? == user.name;
    let old = match (own, req.old_password.as_deref().filter(|p| !p.is_empty())) {
        (true, None) => return Err(bad_request("old_password is required to change your own password")),
        (true, Some(old)) => Some(old),
        (false, _) => None,
    };
    api.accounts_for(&call)?.change_password(&user.name, old, &req.new_password).await?;
    Ok(status_only(StatusCode::OK))
}

#[derive(Deserialize)]
struct SysAdminFlag {
    sysadmin_flag: bool,
}

/// `PUT /users/{id}/sysadmin` (system admins; never the last one).
pub(crate) async fn sysadmin(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let user = path_user(&api, &call, true).await?;
    let req: SysAdminFlag = call.json()?;
    api.accounts_for(&call)?.set_admin(&user.name, req.sysadmin_flag).await?;
    Ok(status_only(StatusCode::OK))
}
