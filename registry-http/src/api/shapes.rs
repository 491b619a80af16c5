//! The JSON of each record, in Harbor's shapes (swagger definitions `Project`, `UserResp`,
//! `ProjectMemberEntity`, `Robot`). Times are RFC 3339; robot expiry is Unix seconds (-1: never),
//! as Harbor sends them.

use registry_auth::{Entity, Project, ProjectMember, Robot, RobotLevel, Role, User};
use registry_core::time::rfc3339;
use serde_json::{Value, json};

/// What a project listing adds to a project.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProjectExtras {
    /// Repositories in it.
    pub repo_count: u64,
    /// The owner's name.
    pub owner_name: String,
    /// The caller's role in it.
    pub role: Option<Role>,
}

/// A project (`Project`).
pub(crate) fn project(p: &Project, extras: &ProjectExtras) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("public".into(), p.public.to_string().into());
    // A proxy-cache project's endpoint is its own field, not metadata (Harbor's shape).
    const REGISTRY_ID: &str = "registry_id";
    for (k, v) in p.metadata.iter().filter(|(k, _)| k.as_str() != REGISTRY_ID) {
        metadata.insert(k.clone(), v.clone().into());
    }
    let registry_id: Option<u64> = p.metadata.get(REGISTRY_ID).and_then(|v| v.parse().ok());
    json!({
        "project_id": p.id,
        "owner_id": p.owner_id.unwrap_or(0),
        "owner_name": extras.owner_name,
        "name": p.name,
        "creation_time": rfc3339(p.created_at),
        "update_time": rfc3339(p.updated_at),
        "deleted": false,
        "togglable": true,
        "current_user_role_id": extras.role.map(Role::id).unwrap_or(0),
        "current_user_role_ids": extras.role.map(|r| vec![r.id()]).unwrap_or_default(),
        "repo_count": extras.repo_count,
        "registry_id": registry_id,
        "metadata": metadata,
    })
}

/// A user (`UserResp`).
pub(crate) fn user(u: &User) -> Value {
    json!({
        "user_id": u.id,
        "username": u.name,
        "email": u.email,
        "realname": u.realname,
        "comment": u.comment,
        "sysadmin_flag": u.admin,
        "admin_role_in_auth": false,
        "creation_time": rfc3339(u.created_at),
        "update_time": rfc3339(u.updated_at),
    })
}

/// A membership (`ProjectMemberEntity`), with our `repositories` narrowing.
pub(crate) fn member(m: &ProjectMember) -> Value {
    json!({
        "id": m.member.id,
        "project_id": m.member.project_id,
        "entity_name": m.name,
        "entity_id": match m.member.entity {
            Entity::User(id) | Entity::Group(id) => id,
        },
        "entity_type": if m.member.entity.group().is_some() { "g" } else { "u" },
        "role_id": m.member.role.id(),
        "role_name": m.member.role.harbor_name(),
        "repositories": m.member.repositories,
    })
}

/// A robot's lifetime in days (-1: never), from its creation to its expiry.
pub(crate) fn robot_duration(r: &Robot) -> i64 {
    r.expires_at.map(|e| (e.saturating_sub(r.created_at) / 86_400) as i64).unwrap_or(-1)
}

/// A robot (`Robot`); never its secret.
pub(crate) fn robot(r: &Robot) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "level": match r.level { RobotLevel::System => "system", RobotLevel::Project => "project" },
        "duration": robot_duration(r),
        "editable": true,
        "disable": r.disabled,
        "expires_at": r.expires_at.map(|e| e as i64).unwrap_or(-1),
        "permissions": r.permissions,
        "creator_type": "local",
        "creator_ref": 0,
        "creation_time": rfc3339(r.created_at),
        "update_time": rfc3339(r.updated_at),
    })
}
