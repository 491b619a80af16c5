//! The management REST API under `/api/v2.0`, in Harbor's shapes, over the built-in accounts.
//!
//! Requests authenticate with Basic credentials (as Harbor's API does) and are authorized by the
//! same model as pulls and pushes:
//!
//! | endpoint | who |
//! |---|---|
//! | `GET /api/v2.0/projects` | anyone: public projects, plus the caller's (all for admins) |
//! | `POST /api/v2.0/projects` `{"project_name","metadata":{"public":"true"}}` | any user; the creator becomes its project admin |
//! | `GET`/`DELETE /api/v2.0/projects/{name}` | readers / admins and project admins |
//! | `GET`/`POST /api/v2.0/projects/{name}/members` `{"role_id","member_user":{"username"}}` | project admins |
//! | `DELETE /api/v2.0/projects/{name}/members/{user}` | project admins |
//! | `GET`/`POST /api/v2.0/projects/{name}/robots` `{"name","duration","permissions":[{"repositories","actions"}]}` | project admins |
//! | `DELETE /api/v2.0/projects/{name}/robots/{robot name}` | project admins |
//! | `GET`/`POST /api/v2.0/users` `{"username","password","sysadmin_flag"}`, `DELETE /api/v2.0/users/{name}` | system admins |
//! | `POST /api/v2.0/system/gc/schedule` `{"schedule":{"type":"Manual"},"parameters":{"delete_untagged","dry_run"}}` | system admins: starts a garbage collection (201, `Location` of the run; 409 while one runs) |
//! | `GET /api/v2.0/system/gc`, `GET /api/v2.0/system/gc/{id}` | system admins: recent runs with their reports (objects and bytes freed, duration; so far, while a run is in progress) |
//!
//! Role ids are Harbor's: 1 project admin, 2 developer, 3 guest, 4 maintainer, 5 limited guest.
//! A robot's `duration` is in days, `-1` for never. Its secret is in the creation response only.

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use registry_auth::{Accounts, AuthError, Authenticator, Credentials, Identity, RobotPermission, Role};
use registry_core::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::response::{ApiError, ResponseBody, full};

/// Path prefix of the management API.
pub const API_PREFIX: &str = "/api/v2.0/";

fn role_from_id(id: u64) -> Option<Role> {
    Some(match id {
        1 => Role::ProjectAdmin,
        2 => Role::Developer,
        3 => Role::Guest,
        4 => Role::Maintainer,
        5 => Role::LimitedGuest,
        _ => return None,
    })
}

fn role_id(role: Role) -> u64 {
    match role {
        Role::ProjectAdmin => 1,
        Role::Developer => 2,
        Role::Guest => 3,
        Role::Maintainer => 4,
        Role::LimitedGuest => 5,
    }
}

fn json_reply(status: StatusCode, body: Value) -> Response<ResponseBody> {
    let text = body.to_string();
    let len = text.len();
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r
}

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message).with_status(status)
}

fn forbidden() -> ApiError {
    error(StatusCode::FORBIDDEN, ErrorCode::Denied, "requested access to the resource is denied")
}

fn from_auth(e: AuthError) -> ApiError {
    match e {
        AuthError::NotFound(m) => error(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, format!("{m} not found")),
        AuthError::Invalid(m) => error(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, m),
        AuthError::RateLimited { retry_after_secs } => {
            error(StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests, "too many failed logins")
                .with_header(http::header::RETRY_AFTER, retry_after_secs.to_string())
        }
        AuthError::Backend(m) | AuthError::Config(m) => {
            tracing::error!(error = %m, "accounts fault");
            error(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Unknown, "internal error; retry later")
        }
        _ => error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "invalid credentials")
            .with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"registry\""),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, format!("invalid JSON: {e}")))
}

#[derive(Deserialize)]
struct NewProject {
    project_name: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    public: Option<bool>,
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    sysadmin_flag: bool,
}

#[derive(Deserialize)]
struct MemberUser {
    username: String,
}

#[derive(Deserialize)]
struct NewMember {
    role_id: u64,
    member_user: MemberUser,
    #[serde(default)]
    repositories: Option<String>,
}

#[derive(Deserialize)]
struct NewPermission {
    repositories: String,
    actions: Vec<String>,
}

#[derive(Deserialize)]
struct NewRobot {
    name: String,
    #[serde(default)]
    duration: Option<i64>,
    permissions: Vec<NewPermission>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcSchedule {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcParameters {
    delete_untagged: bool,
    dry_run: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcRequest {
    schedule: GcSchedule,
    parameters: GcParameters,
}

/// A garbage collection run in Harbor's shape, with the report.
fn gc_run_json(run: &crate::gc::GcRun) -> Value {
    let status = match run.status {
        crate::gc::Status::Running => "Running",
        crate::gc::Status::Success => "Success",
        crate::gc::Status::Error => "Error",
    };
    let kind = match run.trigger {
        crate::gc::Trigger::Manual => "MANUAL",
        crate::gc::Trigger::Schedule => "SCHEDULE",
    };
    let parameters = json!({"delete_untagged": run.options.delete_untagged, "dry_run": run.options.dry_run});
    json!({
        "id": run.id,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": kind,
        "job_parameters": parameters.to_string(),
        "job_status": status,
        "creation_time": registry_auth::service::rfc3339(run.created),
        "report": run.report,
        "error": run.error,
    })
}

/// The garbage collection endpoints (system admins only, checked by the caller).
fn gc_endpoint(
    gc: &std::sync::Arc<crate::gc::GarbageCollector>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response<ResponseBody>, ApiError> {
    match (method, rest) {
        (&Method::GET, []) => Ok(json_reply(StatusCode::OK, Value::Array(gc.runs().iter().map(gc_run_json).collect()))),
        (&Method::GET, [id]) => {
            let id: u64 =
                id.parse().map_err(|_| error(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, "no such run"))?;
            let run = gc.runs().into_iter().find(|r| r.id == id);
            let run = run.ok_or_else(|| error(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, "no such run"))?;
            Ok(json_reply(StatusCode::OK, gc_run_json(&run)))
        }
        (&Method::POST, ["schedule"]) => {
            let request: GcRequest = if body.is_empty() { GcRequest::default() } else { parse_body(body)? };
            if request.schedule.kind.as_deref().is_some_and(|k| k != "Manual") {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    "only Manual runs are started here; the periodic schedule is the server's [gc] configuration",
                ));
            }
            let options = registry_storage::GcOptions {
                delete_untagged: request.parameters.delete_untagged,
                dry_run: request.parameters.dry_run,
                ..gc.defaults().clone()
            };
            let id = gc
                .start(options, crate::gc::Trigger::Manual)
                .map_err(|e| error(StatusCode::CONFLICT, ErrorCode::Denied, e.to_string()))?;
            let mut reply = json_reply(StatusCode::CREATED, json!({"id": id}));
            if let Ok(location) = http::HeaderValue::from_str(&format!("{API_PREFIX}system/gc/{id}")) {
                reply.headers_mut().insert(http::header::LOCATION, location);
            }
            Ok(reply)
        }
        _ => Err(error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, "not allowed here")),
    }
}

/// Handles a request under [`API_PREFIX`].
pub(crate) async fn handle(
    accounts: &Accounts,
    gc: Option<&std::sync::Arc<crate::gc::GarbageCollector>>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<ResponseBody>, ApiError> {
    let header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let who = match Credentials::from_authorization(header) {
        Credentials::Basic { username, password } => {
            accounts.authenticate(&username, &password).await.map_err(from_auth)?
        }
        _ => Identity::Anonymous,
    };
    let is_admin = matches!(who, Identity::User { admin: true, .. });
    let user_name = match &who {
        Identity::User { name, .. } => Some(name.clone()),
        _ => None,
    };
    let rest = path.strip_prefix(API_PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let require_user = || {
        user_name.clone().ok_or_else(|| {
            error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "authentication required")
                .with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"registry\"")
        })
    };
    // Admins of the system, or of the project.
    let manages = |project: String| {
        let (who_name, accounts) = (user_name.clone(), accounts.clone());
        async move {
            if is_admin {
                return Ok(true);
            }
            let Some(name) = who_name else { return Ok(false) };
            Ok::<_, ApiError>(
                accounts
                    .membership(&project, &name)
                    .await
                    .map_err(from_auth)?
                    .is_some_and(|m| m.role == Role::ProjectAdmin),
            )
        }
    };
    let project_json = |p: &registry_auth::accounts::Project| json!({"name": p.name, "metadata": {"public": p.public.to_string()}, "creation_time": registry_auth::service::rfc3339(p.created_at)});
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["projects"]) => {
            let mut visible = Vec::new();
            for p in accounts.projects().await.map_err(from_auth)? {
                let member = match &user_name {
                    Some(u) => accounts.membership(&p.name, u).await.map_err(from_auth)?.is_some(),
                    None => false,
                };
                if p.public || is_admin || member {
                    visible.push(project_json(&p));
                }
            }
            Ok(json_reply(StatusCode::OK, Value::Array(visible)))
        }
        (Method::POST, ["projects"]) => {
            let creator = require_user()?;
            let new: NewProject = parse_body(&body)?;
            let public = new.public.unwrap_or_else(|| new.metadata.get("public").is_some_and(|v| v == "true"));
            let project = accounts.create_project(&new.project_name, public).await.map_err(from_auth)?;
            accounts.add_member(&project.name, &creator, Role::ProjectAdmin, None).await.map_err(from_auth)?;
            Ok(json_reply(StatusCode::CREATED, project_json(&project)))
        }
        (Method::GET, ["projects", name]) => {
            let p = accounts
                .project(name)
                .await
                .map_err(from_auth)?
                .ok_or_else(|| from_auth(AuthError::NotFound(format!("project {name}"))))?;
            let member = match &user_name {
                Some(u) => accounts.membership(name, u).await.map_err(from_auth)?.is_some(),
                None => false,
            };
            if !(p.public || is_admin || member) {
                return Err(from_auth(AuthError::NotFound(format!("project {name}"))));
            }
            Ok(json_reply(StatusCode::OK, project_json(&p)))
        }
        (Method::DELETE, ["projects", name]) => {
            require_user()?;
            if !manages(name.to_string()).await? {
                return Err(forbidden());
            }
            accounts.remove_project(name).await.map_err(from_auth)?;
            Ok(json_reply(StatusCode::OK, json!({})))
        }
        (m, ["projects", name, "members", rest @ ..]) => {
            require_user()?;
            if !manages(name.to_string()).await? {
                return Err(forbidden());
            }
            match (m, rest) {
                (Method::GET, []) => {
                    let members = accounts.members(name).await.map_err(from_auth)?;
                    let list: Vec<Value> = members
                        .iter()
                        .map(|m| json!({"entity_name": m.user, "role_id": role_id(m.role), "repositories": m.repositories}))
                        .collect();
                    Ok(json_reply(StatusCode::OK, Value::Array(list)))
                }
                (Method::POST, []) => {
                    let new: NewMember = parse_body(&body)?;
                    let role = role_from_id(new.role_id)
                        .ok_or_else(|| error(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, "role_id is 1 to 5"))?;
                    accounts
                        .add_member(name, &new.member_user.username, role, new.repositories.as_deref())
                        .await
                        .map_err(from_auth)?;
                    Ok(json_reply(
                        StatusCode::CREATED,
                        json!({"entity_name": new.member_user.username, "role_id": new.role_id}),
                    ))
                }
                (Method::DELETE, [user]) => {
                    accounts.remove_member(name, user).await.map_err(from_auth)?;
                    Ok(json_reply(StatusCode::OK, json!({})))
                }
                _ => Err(error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, "not allowed here")),
            }
        }
        (m, ["projects", name, "robots", rest @ ..]) => {
            require_user()?;
            if !manages(name.to_string()).await? {
                return Err(forbidden());
            }
            match (m, rest) {
                (Method::GET, []) => {
                    let robots = accounts.robots(Some(name)).await.map_err(from_auth)?;
                    let list: Vec<Value> = robots
                        .iter()
                        .map(|r| {
                            json!({
                                "name": r.name,
                                "expires_at": r.expires_at.map(registry_auth::service::rfc3339),
                                "permissions": r.permissions.iter().map(|p| json!({"repositories": p.repositories, "actions": p.actions})).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    Ok(json_reply(StatusCode::OK, Value::Array(list)))
                }
                (Method::POST, []) => {
                    let new: NewRobot = parse_body(&body)?;
                    let permissions = new
                        .permissions
                        .iter()
                        .map(|p| RobotPermission::parse(&format!("{}:{}", p.repositories, p.actions.join(","))))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(from_auth)?;
                    let days = match new.duration {
                        Some(-1) => None,
                        Some(d) if d > 0 => Some(d as u64),
                        None => Some(registry_auth::accounts::DEFAULT_ROBOT_DAYS),
                        Some(_) => {
                            return Err(error(
                                StatusCode::BAD_REQUEST,
                                ErrorCode::Unsupported,
                                "duration is days > 0, or -1",
                            ));
                        }
                    };
                    let (robot, secret) =
                        accounts.create_robot(name, &new.name, permissions, days).await.map_err(from_auth)?;
                    Ok(json_reply(
                        StatusCode::CREATED,
                        json!({"name": robot.name, "secret": secret, "expires_at": robot.expires_at.map(registry_auth::service::rfc3339)}),
                    ))
                }
                (Method::DELETE, [robot]) => {
                    let robot = robot.to_string();
                    let owned = accounts.robots(Some(name)).await.map_err(from_auth)?.iter().any(|r| r.name == robot);
                    if !owned {
                        return Err(from_auth(AuthError::NotFound(format!("robot {robot}"))));
                    }
                    accounts.remove_robot(&robot).await.map_err(from_auth)?;
                    Ok(json_reply(StatusCode::OK, json!({})))
                }
                _ => Err(error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, "not allowed here")),
            }
        }
        (m, ["users", rest @ ..]) => {
            require_user()?;
            if !is_admin {
                return Err(forbidden());
            }
            match (m, rest) {
                (Method::GET, []) => {
                    let users = accounts.users().await.map_err(from_auth)?;
                    let list: Vec<Value> = users
                        .iter()
                        .map(|u| json!({"username": u.name, "sysadmin_flag": u.admin, "enabled": u.enabled}))
                        .collect();
                    Ok(json_reply(StatusCode::OK, Value::Array(list)))
                }
                (Method::POST, []) => {
                    let new: NewUser = parse_body(&body)?;
                    let user =
                        accounts.add_user(&new.username, &new.password, new.sysadmin_flag).await.map_err(from_auth)?;
                    Ok(json_reply(StatusCode::CREATED, json!({"username": user.name, "sysadmin_flag": user.admin})))
                }
                (Method::DELETE, [user]) => {
                    accounts.remove_user(user).await.map_err(from_auth)?;
                    Ok(json_reply(StatusCode::OK, json!({})))
                }
                _ => Err(error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, "not allowed here")),
            }
        }
        (m, ["system", "gc", rest @ ..]) if gc.is_some() => {
            require_user()?;
            if !is_admin {
                return Err(forbidden());
            }
            match gc {
                Some(gc) => gc_endpoint(gc, &m, rest, &body),
                None => Err(error(StatusCode::NOT_FOUND, ErrorCode::Unsupported, "no such endpoint")),
            }
        }
        _ => Err(error(StatusCode::NOT_FOUND, ErrorCode::Unsupported, "no such endpoint")),
    }
}
