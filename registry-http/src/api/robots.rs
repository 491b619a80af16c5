//! Robots (Harbor's v2 robot accounts): `/robots` (list, create) and `/robots/{id}` (get,
//! update, refresh the secret, delete). System robots are the system administrators'; a project
//! robot belongs to its project's admins.

use std::sync::Arc;

use http::StatusCode;
use registry_auth::{NewRobot, Robot, RobotLevel, RobotPermission};
use serde::Deserialize;
use serde_json::json;

use super::context::{bad_request, forbidden};
use super::pages::page_of;
use super::q::{Condition, Q};
use super::{Api, ApiCall, ApiResult, shapes};
use crate::error::ApiError;
use crate::response::{json as json_response, set, status_only};

fn level(text: &str) -> Result<RobotLevel, ApiError> {
    match text {
        "system" => Ok(RobotLevel::System),
        "project" => Ok(RobotLevel::Project),
        other => Err(bad_request(format!("level {other:?}: use system or project"))),
    }
}

/// Days from a Harbor `duration`: -1 (or absent: the default) never… or positive days.
fn duration(days: Option<i64>) -> Result<Option<u64>, ApiError> {
    match days {
        None => Ok(Some(registry_auth::accounts::DEFAULT_ROBOT_DAYS)),
        Some(-1) => Ok(None),
        Some(d) if d > 0 => Ok(Some(d as u64)),
        Some(d) => Err(bad_request(format!("duration {d}: use -1 (never) or a positive number of days"))),
    }
}

/// Refuses who may not manage `robot`.
async fn require_owner(api: &Api, call: &ApiCall, robot: &Robot) -> Result<(), ApiError> {
    match robot.project_id {
        Some(id) if !call.signed_in()?.is_admin() => {
            let project = api
                .accounts_for(call)?
                .project_by_id(id)
                .await?
                .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("project {id} not found")))?;
            api.require_manage(call, &project).await
        }
        _ => call.require_admin(),
    }
}

async fn path_robot(api: &Api, call: &ApiCall) -> Result<Robot, ApiError> {
    let id = call.params.id("robot_id")?;
    let robot = api
        .accounts_for(call)?
        .robot_by_id(id)
        .await?
        .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("robot {id} not found")))?;
    require_owner(api, call, &robot).await?;
    Ok(robot)
}

/// `GET /robots`: system admins see all; a project admin lists `q=Level=project,ProjectID=<id>`.
pub(crate) async fn list(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let who = call.signed_in()?.clone();
    let q = Q::parse(call.query.get("q"), &["level", "projectid", "name"])?;
    let accounts = api.accounts_for(&call)?;
    if !who.is_admin() {
        let Some(Condition::Exact(id)) = q.get("projectid") else {
            return Err(forbidden("list a project's robots with q=Level=project,ProjectID=<id>"));
        };
        let id: u64 = id.parse().map_err(|_| bad_request("ProjectID is a number"))?;
        let project = accounts
            .project_by_id(id)
            .await?
            .ok_or_else(|| ApiError::harbor(StatusCode::NOT_FOUND, format!("project {id} not found")))?;
        api.require_manage(&call, &project).await?;
    }
    let robots: Vec<Robot> = accounts
        .robots(None)
        .await?
        .into_iter()
        .filter(|r| {
            let lvl = if r.level == RobotLevel::System { "system" } else { "project" };
            q.accepts("level", lvl)
                && q.accepts("projectid", &r.project_id.map(|p| p.to_string()).unwrap_or_default())
                && q.accepts("name", &r.name)
        })
        .collect();
    page_of(&call, "/robots", robots, |r| shapes::robot(&r))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RobotCreate {
    name: String,
    description: String,
    secret: Option<String>,
    level: String,
    disable: bool,
    duration: Option<i64>,
    permissions: Vec<RobotPermission>,
}

/// `POST /robots`: the secret is in the answer, this once.
pub(crate) async fn create(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let creator = call.user_name()?.to_owned();
    let req: RobotCreate = call.json()?;
    let level = level(&req.level)?;
    let project = match level {
        RobotLevel::Project => {
            let namespace = req
                .permissions
                .first()
                .map(|p| p.namespace.clone())
                .ok_or_else(|| bad_request("a project robot needs a permission naming its project"))?;
            let project = api.accounts_for(&call)?.existing_project(&namespace).await?;
            api.require_manage(&call, &project).await?;
            Some(project.name)
        }
        RobotLevel::System => {
            call.require_admin()?;
            None
        }
    };
    let new = NewRobot {
        name: req.name,
        description: req.description,
        level,
        project,
        permissions: req.permissions,
        duration_days: duration(req.duration)?,
        disabled: req.disable,
        secret: req.secret,
        creator,
    };
    let (robot, secret) = api.accounts_for(&call)?.create_robot(new).await?;
    let body = json!({
        "id": robot.id,
        "name": robot.name,
        "secret": secret,
        "creation_time": registry_core::time::rfc3339(robot.created_at),
        "expires_at": robot.expires_at.map(|e| e as i64).unwrap_or(-1),
    });
    let mut r = json_response(StatusCode::CREATED, &body);
    set(r.headers_mut(), http::header::LOCATION, &call.location(&format!("/robots/{}", robot.id)));
    Ok(r)
}

/// `GET /robots/{id}`.
pub(crate) async fn get(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let robot = path_robot(&api, &call).await?;
    Ok(json_response(StatusCode::OK, &shapes::robot(&robot)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RobotUpdate {
    name: Option<String>,
    level: Option<String>,
    description: Option<String>,
    disable: Option<bool>,
    duration: Option<i64>,
    permissions: Option<Vec<RobotPermission>>,
}

/// `PUT /robots/{id}`: description, state, lifetime, permissions (not the name or level).
pub(crate) async fn update(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let robot = path_robot(&api, &call).await?;
    let req: RobotUpdate = call.json()?;
    if req.name.as_deref().is_some_and(|n| n != robot.name) {
        return Err(bad_request("a robot cannot be renamed"));
    }
    if let Some(l) = &req.level
        && level(l)? != robot.level
    {
        return Err(bad_request("a robot's level cannot change"));
    }
    let days = match req.duration {
        Some(d) => Some(duration(Some(d))?),
        None => None,
    };
    api.accounts_for(&call)?.update_robot(robot.id, req.description, req.disable, req.permissions, days).await?;
    Ok(status_only(StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RobotSec {
    secret: Option<String>,
}

/// `PATCH /robots/{id}` with `{"secret"}` (or none for a random one): a new secret, shown once.
pub(crate) async fn refresh(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let robot = path_robot(&api, &call).await?;
    let req: RobotSec = if call.body.is_empty() { RobotSec::default() } else { call.json()? };
    let secret = api.accounts_for(&call)?.refresh_robot_secret(robot.id, req.secret.filter(|s| !s.is_empty())).await?;
    Ok(json_response(StatusCode::OK, &json!({"secret": secret})))
}

/// `DELETE /robots/{id}`.
pub(crate) async fn delete(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let robot = path_robot(&api, &call).await?;
    api.accounts_for(&call)?.remove_robot_by_id(robot.id).await?;
    Ok(status_only(StatusCode::OK))
}
