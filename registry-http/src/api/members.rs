//! Members: `/projects/{p}/members` (list, add a user or a user group) and
//! `/projects/{p}/members/{mid}` (get, change role, remove). Members with a role below limited
//! guest's see the list; project admins change it. A group is named by id, or by its DN (LDAP)
//! or name and type, and made when it does not exist yet (an LDAP group checked with the
//! directory), as Harbor.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Role;
use serde::Deserialize;

use super::context::bad_request;
use super::pages::page_of;
use super::{Api, ApiCall, ApiResult, shapes};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

/// The roles that may list members (Harbor's `project:member:list`).
const LISTERS: &[Role] = &[Role::ProjectAdmin, Role::Maintainer, Role::Developer, Role::Guest];

/// `GET /projects/{p}/members`, filtered by `entityname`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, LISTERS).await?;
    let mut members = api.accounts_for(&call)?.members(&project.name).await?;
    if let Some(name) = call.query.get("entityname") {
        members.retain(|m| m.name.contains(name));
    }
    page_of(&call, &format!("/projects/{}/members", project.id), members, |m| shapes::member(&m))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserEntity {
    user_id: Option<u64>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct NewMember {
    role_id: u64,
    #[serde(default)]
    member_user: Option<UserEntity>,
    #[serde(default)]
    member_group: Option<super::usergroups::GroupRef>,
    #[serde(default)]
    repositories: Option<String>,
}

fn role(id: u64) -> Result<Role, ApiError> {
    Role::from_id(id).ok_or_else(|| {
        bad_request(format!(
            "role_id {id} is not a role: 1 project admin, 2 developer, 3 guest, 4 maintainer, 5 limited guest"
        ))
    })
}

/// `POST /projects/{p}/members` with a user by name or id.
pub(crate) async fn add(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let new: NewMember = call.json()?;
    let role = role(new.role_id)?;
    let accounts = api.accounts_for(&call)?;
    if let Some(group) = new.member_group {
        if new.member_user.is_some() {
            return Err(bad_request("name either member_user or member_group, not both"));
        }
        let group = super::usergroups::resolve(&api, &call, group).await?;
        let member = accounts.add_group_member(&project.name, group.id, role, new.repositories.as_deref()).await?;
        return created(&call, project.id, member.member.id);
    }
    let entity = new.member_user.ok_or_else(|| bad_request("member_user or member_group is required"))?;
    let user = match (entity.username, entity.user_id) {
        (Some(name), _) => name,
        (None, Some(id)) => accounts
            .user_by_id(id)
            .await?
            .map(|u| u.name)
            .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("user {id} not found")))?,
        (None, None) => return Err(bad_request("member_user needs a username or a user_id")),
    };
    let member = accounts.add_member(&project.name, &user, role, new.repositories.as_deref()).await?;
    created(&call, project.id, member.member.id)
}

/// 201 with the membership's `Location`.
fn created(call: &ApiCall, project: u64, member: u64) -> ApiResult {
    let mut r = status_only(StatusCode::CREATED);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/projects/{project}/members/{member}")));
    Ok(r)
}

/// `GET /projects/{p}/members/{mid}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_role(&call, &project, LISTERS).await?;
    let member = api.accounts_for(&call)?.member(&project.name, call.params.id("mid")?).await?;
    Ok(json_response(StatusCode::OK, &shapes::member(&member)))
}

#[derive(Deserialize)]
struct RoleRequest {
    role_id: u64,
}

/// `PUT /projects/{p}/members/{mid}` with `{"role_id"}`.
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    let req: RoleRequest = call.json()?;
    api.accounts_for(&call)?.set_member_role(&project.name, call.params.id("mid")?, role(req.role_id)?).await?;
    Ok(status_only(StatusCode::OK))
}

/// `DELETE /projects/{p}/members/{mid}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let project = api.project(&call, "project").await?;
    api.require_manage(&call, &project).await?;
    api.accounts_for(&call)?.remove_member_by_id(&project.name, call.params.id("mid")?).await?;
    Ok(status_only(StatusCode::OK))
}
