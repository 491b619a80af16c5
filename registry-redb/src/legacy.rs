//! Moving accounts from the separate `accounts.redb` of layout versions 1 and 2 into the one
//! database. Old records were keyed by name; they get ids here, in name order.

use std::collections::HashMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use registry_auth::model::{Entity, Member, Project, Robot, RobotLevel, RobotPermission, Role, SecretHash, User};
use registry_auth::{AccountStore, AuthError};
use serde::Deserialize;

use crate::RedbStore;

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const ROBOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("robots");

#[derive(Deserialize)]
struct OldUser {
    name: String,
    password_hash: String,
    admin: bool,
    enabled: bool,
}

#[derive(Deserialize)]
struct OldProject {
    name: String,
    public: bool,
    created_at: u64,
}

#[derive(Deserialize)]
struct OldMember {
    user: String,
    project: String,
    role: Role,
    repositories: Option<String>,
}

#[derive(Deserialize)]
struct OldPermission {
    repositories: String,
    actions: Vec<String>,
}

#[derive(Deserialize)]
struct OldRobot {
    name: String,
    project: String,
    secret_hash: String,
    permissions: Vec<OldPermission>,
    expires_at: Option<u64>,
}

/// What [`RedbStore::import_legacy_accounts`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegacyImport {
    /// Users.
    pub users: usize,
    /// Projects.
    pub projects: usize,
    /// Memberships.
    pub members: usize,
    /// Robots.
    pub robots: usize,
}

fn fault(what: &'static str) -> impl Fn(redb::Error) -> AuthError {
    move |e| AuthError::Backend(registry_core::BackendError::permanent(what, e))
}

fn read_all<T: for<'de> Deserialize<'de>>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, AuthError> {
    let txn = db.begin_read().map_err(|e| fault("reading the old accounts")(e.into()))?;
    let table = match txn.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(fault("reading the old accounts")(e.into())),
    };
    let mut out = Vec::new();
    for item in table.iter().map_err(|e| fault("reading the old accounts")(e.into()))? {
        let (_, v) = item.map_err(|e| fault("reading the old accounts")(e.into()))?;
        out.push(serde_json::from_slice(v.value()).map_err(|e| {
            AuthError::Backend(registry_core::BackendError::permanent("an old account record does not decode", e))
        })?);
    }
    Ok(out)
}

impl RedbStore {
    /// Moves the accounts of a separate accounts database (layout before version 3) into this
    /// store: users with their password hashes, projects with their creation times, members and
    /// robots. Records whose name exists already are left as they are. The old file is only read.
    pub async fn import_legacy_accounts(&self, path: &Path) -> Result<LegacyImport, AuthError> {
        let path = path.to_owned();
        let (users, projects, members, robots) = tokio::task::spawn_blocking(move || {
            let db = Database::open(&path).map_err(|e| fault("opening the old accounts database")(e.into()))?;
            Ok::<_, AuthError>((
                read_all::<OldUser>(&db, USERS)?,
                read_all::<OldProject>(&db, PROJECTS)?,
                read_all::<OldMember>(&db, MEMBERS)?,
                read_all::<OldRobot>(&db, ROBOTS)?,
            ))
        })
        .await
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("importing accounts", e)))??;
        let now = self.clock.now_secs();
        let mut report = LegacyImport::default();
        let mut user_ids = HashMap::new();
        for u in users {
            let record = User {
                id: 0,
                name: u.name.clone(),
                password_hash: SecretHash::from_stored(u.password_hash),
                admin: u.admin,
                enabled: u.enabled,
                email: String::new(),
                realname: String::new(),
                comment: String::new(),
                created_at: now,
                updated_at: now,
                password_changed_at: now,
                origin: String::new(),
                groups: Vec::new(),
                oidc: None,
            };
            match self.create_user(record, &[]).await {
                Ok(created) => {
                    report.users += 1;
                    user_ids.insert(u.name, created.id);
                }
                Err(AuthError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut project_ids = HashMap::new();
        for p in projects {
            let record = Project {
                id: 0,
                name: p.name.clone(),
                public: p.public,
                owner_id: None,
                created_at: p.created_at,
                updated_at: p.created_at,
                metadata: Default::default(),
            };
            match self.create_project(record, &[]).await {
                Ok(created) => {
                    report.projects += 1;
                    project_ids.insert(p.name, created.id);
                }
                Err(AuthError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for m in members {
            let (Some(&project_id), Some(&user_id)) = (project_ids.get(&m.project), user_ids.get(&m.user)) else {
                continue;
            };
            let member = Member {
                id: 0,
                project_id,
                entity: Entity::User(user_id),
                role: m.role,
                repositories: m.repositories,
                created_at: now,
            };
            if self.create_member(member, &[]).await.is_ok() {
                report.members += 1;
            }
        }
        for r in robots {
            let Some(&project_id) = project_ids.get(&r.project) else { continue };
            let permissions = r
                .permissions
                .iter()
                .map(|p| {
                    let actions: Vec<&str> = p.actions.iter().map(String::as_str).collect();
                    RobotPermission::project(&r.project, Some(&p.repositories), &actions)
                })
                .collect();
            let robot = Robot {
                id: 0,
                name: r.name,
                description: String::new(),
                level: RobotLevel::Project,
                project_id: Some(project_id),
                secret_hash: SecretHash::from_stored(r.secret_hash),
                permissions,
                disabled: false,
                expires_at: r.expires_at,
                creator: String::new(),
                created_at: now,
                updated_at: now,
            };
            if self.create_robot(robot, &[]).await.is_ok() {
                report.robots += 1;
            }
        }
        Ok(report)
    }
}
