//! Accounts, projects, memberships and robots in an embedded redb database, and the
//! [`Authenticator`](crate::Authenticator) and [`AccessPolicy`](crate::AccessPolicy) over them:
//! Harbor's model.
//!
//! - A **project** is the first path component of a repository name (`library` in
//!   `library/app`). It is public (anonymous pull) or private; private by default.
//! - A **member** of a project holds one [`Role`]; a membership may be narrowed to a repository
//!   pattern inside the project (`app-*`, `team/*`).
//! - A **robot** (`robot$<project>+<name>`) holds explicit permissions (repository pattern and
//!   actions), a secret shown once and stored hashed, and an expiry (30 days by default, or never).
//! - A **system admin** may do everything.
//!
//! Passwords and secrets are stored as bcrypt hashes only. A failed login costs the same time
//! whether or not the account exists. After [`MAX_FAILURES`] failed logins in a row an account is
//! locked for [`LOCKOUT`] (the limiter is in memory, per process; a restart clears it).
//!
//! A disabled user or a removed robot can no longer log in or refresh a token at once; tokens it
//! already holds stay valid until they expire (the token lifetime, 5 minutes by default).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use registry_core::{Action, RepositoryName, Scope};
use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::identity::Identity;
use crate::token::{now_secs, random_id};
use crate::{AccessPolicy, Authenticator};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const ROBOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("robots");

/// Failed logins in a row before an account is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// bcrypt cost for stored hashes.
const BCRYPT_COST: u32 = 10;
/// Default robot lifetime.
pub const DEFAULT_ROBOT_DAYS: u64 = 30;

/// A role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Pull, push, delete, manage members and robots.
    ProjectAdmin,
    /// Pull, push, delete.
    Maintainer,
    /// Pull, push.
    Developer,
    /// Pull.
    Guest,
    /// Pull.
    LimitedGuest,
}

impl Role {
    /// Parses `project_admin`, `maintainer`, `developer`, `guest`, `limited_guest`.
    pub fn parse(s: &str) -> Result<Role, AuthError> {
        Ok(match s.replace('-', "_").as_str() {
            "project_admin" | "admin" => Role::ProjectAdmin,
            "maintainer" => Role::Maintainer,
            "developer" => Role::Developer,
            "guest" => Role::Guest,
            "limited_guest" => Role::LimitedGuest,
            _ => return Err(AuthError::Invalid(format!("unknown role {s:?}"))),
        })
    }

    /// The repository actions the role grants.
    pub fn actions(self) -> &'static [Action] {
        match self {
            Role::ProjectAdmin | Role::Maintainer => &[Action::Pull, Action::Push, Action::Delete],
            Role::Developer => &[Action::Pull, Action::Push],
            Role::Guest | Role::LimitedGuest => &[Action::Pull],
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name.
    pub name: String,
    #[serde(rename = "password_hash")]
    hash: String,
    /// System administrator.
    pub admin: bool,
    /// Whether it may log in.
    pub enabled: bool,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// The name (a repository name's first component).
    pub name: String,
    /// Anonymous pull allowed.
    pub public: bool,
    /// When it was created (seconds since the epoch).
    pub created_at: u64,
}

/// A membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user: String,
    /// The project.
    pub project: String,
    /// The role.
    pub role: Role,
    /// Optional repository pattern inside the project narrowing the membership.
    pub repositories: Option<String>,
}

/// One permission of a robot: actions on the repositories matching a pattern inside its project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotPermission {
    /// Pattern on the repository path inside the project (`*` for all).
    pub repositories: String,
    /// Granted actions (`pull`, `push`, `delete`).
    pub actions: Vec<String>,
}

impl RobotPermission {
    /// Parses `pattern:action,action`, e.g. `*:pull,push` or `app-*:pull`.
    pub fn parse(s: &str) -> Result<RobotPermission, AuthError> {
        let (pattern, actions) = s
            .rsplit_once(':')
            .ok_or_else(|| AuthError::Invalid(format!("permission {s:?}: expected pattern:actions")))?;
        let actions: Vec<String> = actions.split(',').map(str::to_owned).collect();
        for a in &actions {
            if !matches!(a.as_str(), "pull" | "push" | "delete") {
                return Err(AuthError::Invalid(format!("permission {s:?}: unknown action {a:?}")));
            }
        }
        Ok(RobotPermission { repositories: pattern.to_owned(), actions })
    }
}

/// A robot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Robot {
    /// Full name, `robot$<project>+<name>`.
    pub name: String,
    /// Its project.
    pub project: String,
    #[serde(rename = "secret_hash")]
    hash: String,
    /// What it may do.
    pub permissions: Vec<RobotPermission>,
    /// Expiry (seconds since the epoch), or never.
    pub expires_at: Option<u64>,
}

/// Matches `pattern` (with `*` for any run of characters) against `text`.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// How the message of an I/O failure of the database starts.
const IO_FAILURE: &str = "accounts database I/O failure";

fn db_err(e: impl Into<redb::Error>) -> AuthError {
    match e.into() {
        e @ (redb::Error::Io(_) | redb::Error::PreviousIo) => AuthError::Backend(format!("{IO_FAILURE}: {e}")),
        e => AuthError::Backend(format!("accounts database: {e}")),
    }
}

/// Opens the database again (after an I/O failure).
type Reopen = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The database handle. After an I/O error on its file redb refuses every operation until the
/// database is reopened: the handle is then dropped, and the next request reopens the file
/// (failing, retryably, until the disk works again).
struct Handle {
    current: std::sync::RwLock<Option<Arc<Database>>>,
    reopen: Option<Reopen>,
    reopening: Mutex<()>,
}

impl Handle {
    fn get(&self) -> Result<Arc<Database>, AuthError> {
        if let Some(db) = self.current.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let unavailable = || AuthError::Backend(format!("{IO_FAILURE}: reopening the database; retry"));
        let (Ok(_one), Some(reopen)) = (self.reopening.try_lock(), &self.reopen) else { return Err(unavailable()) };
        let db = Arc::new(reopen().map_err(|e| AuthError::Backend(format!("{IO_FAILURE}: reopening: {e}")))?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(db.clone());
        tracing::warn!("accounts database reopened after an I/O failure");
        Ok(db)
    }

    fn failed(&self, failed: &Arc<Database>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if self.reopen.is_some() && current.as_ref().is_some_and(|db| Arc::ptr_eq(db, failed)) {
            tracing::error!("accounts database I/O failure: it will be reopened");
            *current = None;
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(b).map_err(|e| AuthError::Backend(format!("corrupt account record: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, AuthError> {
    serde_json::to_vec(v).map_err(|e| AuthError::Backend(e.to_string()))
}

fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// The accounts database.
#[derive(Clone)]
pub struct Accounts {
    db: Arc<Handle>,
    failures: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
    /// A hash to verify against when the account does not exist, so both cost the same.
    dummy_hash: Arc<String>,
    /// All projects in memory (the registry looks one up on every request); replaced after
    /// each project write, which `project_writes` serializes. Exact, because this process alone
    /// writes the database (redb locks the file).
    projects: Arc<std::sync::RwLock<Arc<BTreeMap<String, Project>>>>,
    project_writes: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Opens (creating when needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Accounts, AuthError> {
        let path = path.as_ref().to_owned();
        // Users, projects and robots are small: a small page cache (redb's default is 1 GiB).
        Self::open_with(move || Database::builder().set_cache_size(8 << 20).create(&path))
    }

    /// A database `open` creates or opens (a custom redb storage backend, say); `open` is called
    /// again to reopen it after an I/O failure.
    pub fn open_with(
        open: impl Fn() -> Result<Database, redb::DatabaseError> + Send + Sync + 'static,
    ) -> Result<Accounts, AuthError> {
        let db = open().map_err(db_err)?;
        Self::init(db, Some(Box::new(open)))
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Accounts, AuthError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(db_err)?;
        Self::init(db, None)
    }

    fn init(db: Database, reopen: Option<Reopen>) -> Result<Accounts, AuthError> {
        let txn = db.begin_write().map_err(db_err)?;
        for t in [USERS, PROJECTS, MEMBERS, ROBOTS] {
            txn.open_table(t).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let dummy_hash = bcrypt::hash("not a password", BCRYPT_COST).map_err(|e| AuthError::Backend(e.to_string()))?;
        let projects = Self::list::<Project>(&db, PROJECTS)?.into_iter().map(|p| (p.name.clone(), p)).collect();
        let handle = Handle { current: std::sync::RwLock::new(Some(Arc::new(db))), reopen, reopening: Mutex::new(()) };
        Ok(Accounts {
            db: Arc::new(handle),
            failures: Default::default(),
            dummy_hash: Arc::new(dummy_hash),
            projects: Arc::new(std::sync::RwLock::new(Arc::new(projects))),
            project_writes: Default::default(),
        })
    }

    fn project_snapshot(&self) -> Arc<BTreeMap<String, Project>> {
        self.projects.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Applies `change` to the in-memory projects (under `project_writes`, after the commit).
    fn update_projects(&self, change: impl FnOnce(&mut BTreeMap<String, Project>)) {
        let mut guard = self.projects.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = BTreeMap::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let db = self.db.get()?;
        let held = db.clone();
        let result =
            tokio::task::spawn_blocking(move || f(&held)).await.map_err(|e| AuthError::Backend(e.to_string()))?;
        if matches!(&result, Err(AuthError::Backend(m)) if m.starts_with(IO_FAILURE)) {
            self.db.failed(&db);
        }
        result
    }

    fn get<T: serde::de::DeserializeOwned>(
        db: &Database,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, AuthError> {
        let txn = db.begin_read().map_err(db_err)?;
        let t = txn.open_table(table).map_err(db_err)?;
        let v = t.get(key).map_err(db_err)?;
        v.map(|v| decode(v.value())).transpose()
    }

    fn list<T: serde::de::DeserializeOwned>(
        db: &Database,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, AuthError> {
        let txn = db.begin_read().map_err(db_err)?;
        let t = txn.open_table(table).map_err(db_err)?;
        t.iter().map_err(db_err)?.map(|item| item.map_err(db_err).and_then(|(_, v)| decode(v.value()))).collect()
    }

    /// Inserts `value` at `key`; with `create_only`, fails if the key exists.
    fn put<T: Serialize>(
        db: &Database,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
        create_only: bool,
    ) -> Result<(), AuthError> {
        let bytes = encode(value)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(table).map_err(db_err)?;
            if create_only && t.get(key).map_err(db_err)?.is_some() {
                return Err(AuthError::Invalid(format!("{key:?} already exists")));
            }
            t.insert(key, bytes.as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    fn remove(db: &Database, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<bool, AuthError> {
        let txn = db.begin_write().map_err(db_err)?;
        let removed = txn.open_table(table).map_err(db_err)?.remove(key).map_err(db_err)?.is_some();
        txn.commit().map_err(db_err)?;
        Ok(removed)
    }

    // ---- users ----

    /// Adds a user (password hashed with bcrypt).
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) -> Result<User, AuthError> {
        if !valid_account_name(name) || name.starts_with("robot$") {
            return Err(AuthError::Invalid(format!("invalid user name {name:?}")));
        }
        if password.len() < 8 {
            return Err(AuthError::Invalid("passwords have at least 8 characters".into()));
        }
        let (name, password) = (name.to_owned(), password.to_owned());
        self.blocking(move |db| {
            let hash = bcrypt::hash(&password, BCRYPT_COST).map_err(|e| AuthError::Backend(e.to_string()))?;
            let user = User { name: name.clone(), hash, admin, enabled: true };
            Self::put(db, USERS, &name, &user, true)?;
            Ok(user)
        })
        .await
    }

    /// A user.
    pub async fn user(&self, name: &str) -> Result<Option<User>, AuthError> {
        let name = name.to_owned();
        self.blocking(move |db| Self::get(db, USERS, &name)).await
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        self.blocking(|db| Self::list(db, USERS)).await
    }

    /// Enables or disables a user.
    pub async fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<(), AuthError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let mut user: User =
                Self::get(db, USERS, &name)?.ok_or_else(|| AuthError::NotFound(format!("user {name}")))?;
            user.enabled = enabled;
            Self::put(db, USERS, &name, &user, false)
        })
        .await
    }

    /// Removes a user and their memberships.
    pub async fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            if !Self::remove(db, USERS, &name)? {
                return Err(AuthError::NotFound(format!("user {name}")));
            }
            for m in Self::list::<Member>(db, MEMBERS)? {
                if m.user == name {
                    Self::remove(db, MEMBERS, &format!("{}\0{}", m.project, m.user))?;
                }
            }
            Ok(())
        })
        .await
    }

    // ---- projects ----

    /// Creates a project (private unless `public`).
    pub async fn create_project(&self, name: &str, public: bool) -> Result<Project, AuthError> {
        self.import_project(name, public, now_secs()).await
    }

    /// Creates a project with its original creation time (seconds since the epoch), as when
    /// migrating projects from another registry: tokens issued before that time never open it.
    pub async fn import_project(&self, name: &str, public: bool, created_at: u64) -> Result<Project, AuthError> {
        let valid = RepositoryName::parse(name).is_ok_and(|n| n.components().count() == 1);
        if !valid {
            return Err(AuthError::Invalid(format!("invalid project name {name:?}")));
        }
        let project = Project { name: name.to_owned(), public, created_at };
        let p = project.clone();
        let _writing = self.project_writes.lock().await;
        self.blocking(move |db| Self::put(db, PROJECTS, &p.name, &p, true)).await?;
        self.update_projects(|all| {
            all.insert(project.name.clone(), project.clone());
        });
        Ok(project)
    }

    /// A project (from memory).
    pub async fn project(&self, name: &str) -> Result<Option<Project>, AuthError> {
        Ok(self.project_snapshot().get(name).cloned())
    }

    /// All projects, by name.
    pub async fn projects(&self) -> Result<Vec<Project>, AuthError> {
        Ok(self.project_snapshot().values().cloned().collect())
    }

    /// Removes a project with its members and robots (its repositories' content stays until
    /// deleted or collected).
    pub async fn remove_project(&self, name: &str) -> Result<(), AuthError> {
        let name = name.to_owned();
        let _writing = self.project_writes.lock().await;
        let removed = name.clone();
        let result = self
            .blocking(move |db| {
                if !Self::remove(db, PROJECTS, &name)? {
                    return Err(AuthError::NotFound(format!("project {name}")));
                }
                for m in Self::list::<Member>(db, MEMBERS)? {
                    if m.project == name {
                        Self::remove(db, MEMBERS, &format!("{}\0{}", m.project, m.user))?;
                    }
                }
                for r in Self::list::<Robot>(db, ROBOTS)? {
                    if r.project == name {
                        Self::remove(db, ROBOTS, &r.name)?;
                    }
                }
                Ok(())
            })
            .await;
        // The project's row went in the first transaction: memory follows the database whatever
        // happened after it.
        let key = removed.clone();
        let now = self.blocking(move |db| Self::get::<Project>(db, PROJECTS, &key)).await?;
        self.update_projects(|all| match now {
            Some(p) => {
                all.insert(removed, p);
            }
            None => {
                all.remove(&removed);
            }
        });
        result
    }

    // ---- members ----

    /// Makes `user` a member of `project` with `role`, optionally narrowed to a repository pattern.
    pub async fn add_member(
        &self,
        project: &str,
        user: &str,
        role: Role,
        repositories: Option<&str>,
    ) -> Result<Member, AuthError> {
        if self.project(project).await?.is_none() {
            return Err(AuthError::NotFound(format!("project {project}")));
        }
        if self.user(user).await?.is_none() {
            return Err(AuthError::NotFound(format!("user {user}")));
        }
        let member = Member {
            user: user.to_owned(),
            project: project.to_owned(),
            role,
            repositories: repositories.map(str::to_owned),
        };
        let m = member.clone();
        self.blocking(move |db| Self::put(db, MEMBERS, &format!("{}\0{}", m.project, m.user), &m, false)).await?;
        Ok(member)
    }

    /// The members of a project.
    pub async fn members(&self, project: &str) -> Result<Vec<Member>, AuthError> {
        let project = project.to_owned();
        let all: Vec<Member> = self.blocking(|db| Self::list(db, MEMBERS)).await?;
        Ok(all.into_iter().filter(|m| m.project == project).collect())
    }

    /// Removes a membership.
    pub async fn remove_member(&self, project: &str, user: &str) -> Result<(), AuthError> {
        let key = format!("{project}\0{user}");
        let (project, user) = (project.to_owned(), user.to_owned());
        self.blocking(move |db| {
            if Self::remove(db, MEMBERS, &key)? {
                Ok(())
            } else {
                Err(AuthError::NotFound(format!("member {user} of {project}")))
            }
        })
        .await
    }

    /// The membership of `user` in `project`, if any.
    pub async fn membership(&self, project: &str, user: &str) -> Result<Option<Member>, AuthError> {
        let key = format!("{project}\0{user}");
        self.blocking(move |db| Self::get(db, MEMBERS, &key)).await
    }

    // ---- robots ----

    /// Creates a robot `robot$<project>+<name>`; returns it with its secret, shown this once.
    pub async fn create_robot(
        &self,
        project: &str,
        name: &str,
        permissions: Vec<RobotPermission>,
        expires_in_days: Option<u64>,
    ) -> Result<(Robot, String), AuthError> {
        if self.project(project).await?.is_none() {
            return Err(AuthError::NotFound(format!("project {project}")));
        }
        if !valid_account_name(name) {
            return Err(AuthError::Invalid(format!("invalid robot name {name:?}")));
        }
        let secret = random_id(24)?;
        let full = format!("robot${project}+{name}");
        let expires_at = expires_in_days.map(|d| now_secs() + d * 86_400);
        let s = secret.clone();
        let (project, robot_name) = (project.to_owned(), full.clone());
        let robot = self
            .blocking(move |db| {
                let hash = bcrypt::hash(&s, BCRYPT_COST).map_err(|e| AuthError::Backend(e.to_string()))?;
                let robot = Robot { name: robot_name.clone(), project, hash, permissions, expires_at };
                Self::put(db, ROBOTS, &robot_name, &robot, true)?;
                Ok(robot)
            })
            .await?;
        Ok((robot, secret))
    }

    /// All robots (of one project, when given).
    pub async fn robots(&self, project: Option<&str>) -> Result<Vec<Robot>, AuthError> {
        let all: Vec<Robot> = self.blocking(|db| Self::list(db, ROBOTS)).await?;
        Ok(all.into_iter().filter(|r| project.is_none_or(|p| r.project == p)).collect())
    }

    /// Removes a robot.
    pub async fn remove_robot(&self, full_name: &str) -> Result<(), AuthError> {
        let name = full_name.to_owned();
        self.blocking(move |db| {
            if Self::remove(db, ROBOTS, &name)? { Ok(()) } else { Err(AuthError::NotFound(format!("robot {name}"))) }
        })
        .await
    }

    // ---- login ----

    fn check_lockout(&self, name: &str) -> Result<(), AuthError> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((count, since)) = failures.get(name)
            && *count >= MAX_FAILURES
        {
            let elapsed = since.elapsed();
            if elapsed < LOCKOUT {
                return Err(AuthError::RateLimited { retry_after_secs: (LOCKOUT - elapsed).as_secs().max(1) });
            }
        }
        Ok(())
    }

    fn record(&self, name: &str, ok: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            failures.remove(name);
        } else {
            let entry = failures.entry(name.to_owned()).or_insert((0, Instant::now()));
            if entry.0 >= MAX_FAILURES {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
    }

    /// Checks `password` against `hash` (constant time inside bcrypt) on a blocking thread.
    async fn verify_hash(&self, password: &str, hash: Option<String>) -> bool {
        let (password, real) = (password.to_owned(), hash.is_some());
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        ok && real
    }

    /// The identity of an account by name, if it may still log in (used for refresh tokens).
    pub async fn active_identity(&self, name: &str) -> Result<Identity, AuthError> {
        if let Some(robot) = name.strip_prefix("robot$").and(self.robot(name).await?) {
            if robot.expires_at.is_some_and(|e| e <= now_secs()) {
                return Err(AuthError::InvalidCredentials);
            }
            return Ok(Identity::Robot { name: robot.name, project: robot.project, permissions: robot.permissions });
        }
        match self.user(name).await? {
            Some(u) if u.enabled => Ok(Identity::User { name: u.name, admin: u.admin }),
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    async fn robot(&self, name: &str) -> Result<Option<Robot>, AuthError> {
        let name = name.to_owned();
        self.blocking(move |db| Self::get(db, ROBOTS, &name)).await
    }
}

#[async_trait]
impl Authenticator for Accounts {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        self.check_lockout(username)?;
        let hash = if username.starts_with("robot$") {
            self.robot(username).await?.map(|r| r.hash)
        } else {
            self.user(username).await?.map(|u| u.hash)
        };
        let ok = self.verify_hash(password, hash).await;
        self.record(username, ok);
        if !ok {
            return Err(AuthError::InvalidCredentials);
        }
        self.active_identity(username).await
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        self.active_identity(username).await
    }
}

#[async_trait]
impl AccessPolicy for Accounts {
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError> {
        let nothing = Scope { actions: Default::default(), ..requested.clone() };
        match (requested.resource_type.as_str(), requested.resource_class.as_deref()) {
            ("registry", None) if requested.name == "catalog" => {
                // Any account may list; the registry then shows it only what it may pull.
                let granted = Scope { actions: [Action::All].into_iter().collect(), ..requested.clone() };
                return Ok(if who == &Identity::Anonymous { nothing } else { requested.intersection(&granted) });
            }
            ("repository", None) => {}
            _ => return Ok(nothing),
        }
        let Ok(name) = RepositoryName::parse(&requested.name) else { return Ok(nothing) };
        let project_name = name.first_component();
        let Some(project) = self.project(project_name).await? else { return Ok(nothing) };
        let inside = name.as_str().strip_prefix(project_name).map(|r| r.trim_start_matches('/')).unwrap_or("");
        let mut granted: Vec<Action> = Vec::new();
        if project.public {
            granted.push(Action::Pull);
        }
        match who {
            Identity::Anonymous => {}
            Identity::User { admin: true, .. } => granted.extend([Action::Pull, Action::Push, Action::Delete]),
            Identity::User { name: user, .. } => {
                if let Some(m) = self.membership(project_name, user).await?
                    && m.repositories.as_deref().is_none_or(|p| pattern_matches(p, inside))
                {
                    granted.extend(m.role.actions().iter().cloned());
                }
            }
            Identity::Robot { project: robot_project, permissions, .. } => {
                if robot_project == project_name {
                    for p in permissions.iter().filter(|p| pattern_matches(&p.repositories, inside)) {
                        granted.extend(p.actions.iter().filter_map(|a| Action::parse(a).ok()));
                    }
                }
            }
        }
        let granted = Scope { actions: granted.into_iter().collect(), ..requested.clone() };
        Ok(requested.intersection(&granted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "anything/at/all"));
        assert!(pattern_matches("app-*", "app-web"));
        assert!(!pattern_matches("app-*", "web-app"));
        assert!(pattern_matches("team/*/svc", "team/a/b/svc"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
        assert!(!pattern_matches("a*a", "a"));
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).expect("scope")
    }

    #[tokio::test]
    async fn harbor_roles() {
        let a = Accounts::in_memory().expect("db");
        a.create_project("library", true).await.expect("project");
        a.create_project("team", false).await.expect("project");
        a.add_user("root", "rootpassword", true).await.expect("user");
        for (user, role) in [
            ("pa", Role::ProjectAdmin),
            ("ma", Role::Maintainer),
            ("dev", Role::Developer),
            ("guest", Role::Guest),
            ("lg", Role::LimitedGuest),
        ] {
            a.add_user(user, "password1", false).await.expect("user");
            a.add_member("team", user, role, None).await.expect("member");
        }
        a.add_user("outsider", "password1", false).await.expect("user");
        a.add_user("narrow", "password1", false).await.expect("user");
        a.add_member("team", "narrow", Role::Developer, Some("app-*")).await.expect("member");

        let all = scope("repository:team/app:pull,push,delete");
        let grant = |who: Identity, s: Scope| {
            let a = a.clone();
            async move { a.grant(&who, &s).await.expect("grant").to_string() }
        };
        let user = |n: &'static str| a.authenticate(n, "password1");
        assert_eq!(grant(user("pa").await.expect("login"), all.clone()).await, "repository:team/app:pull,push,delete");
        assert_eq!(grant(user("ma").await.expect("login"), all.clone()).await, "repository:team/app:pull,push,delete");
        assert_eq!(grant(user("dev").await.expect("login"), all.clone()).await, "repository:team/app:pull,push");
        assert_eq!(grant(user("guest").await.expect("login"), all.clone()).await, "repository:team/app:pull");
        assert_eq!(grant(user("lg").await.expect("login"), all.clone()).await, "repository:team/app:pull");
        assert_eq!(grant(user("outsider").await.expect("login"), all.clone()).await, "repository:team/app:");
        assert_eq!(grant(Identity::Anonymous, all.clone()).await, "repository:team/app:");
        assert_eq!(
            grant(Identity::Anonymous, scope("repository:library/x:pull,push")).await,
            "repository:library/x:pull"
        );
        assert_eq!(
            grant(user("narrow").await.expect("login"), scope("repository:team/app-web:pull,push")).await,
            "repository:team/app-web:pull,push"
        );
        assert_eq!(grant(user("narrow").await.expect("login"), all.clone()).await, "repository:team/app:");
        let root = a.authenticate("root", "rootpassword").await.expect("login");
        assert_eq!(
            grant(root.clone(), scope("repository:nope/x:pull")).await,
            "repository:nope/x:",
            "no project, nothing"
        );
        assert_eq!(grant(root.clone(), scope("registry:catalog:*")).await, "registry:catalog:*");
        assert_eq!(grant(user("dev").await.expect("login"), scope("registry:catalog:*")).await, "registry:catalog:*");
        assert_eq!(grant(Identity::Anonymous, scope("registry:catalog:*")).await, "registry:catalog:");
        // Names that try to leave the project get nothing.
        assert_eq!(
            grant(user("pa").await.expect("login"), scope("repository:team/../library/x:push")).await,
            "repository:team/../library/x:"
        );
    }

    #[tokio::test]
    async fn robots_and_logins() {
        let a = Accounts::in_memory().expect("db");
        a.create_project("team", false).await.expect("project");
        let (robot, secret) = a
            .create_robot("team", "ci", vec![RobotPermission::parse("app:pull,push").expect("perm")], Some(30))
            .await
            .expect("robot");
        assert_eq!(robot.name, "robot$team+ci");
        let id = a.authenticate("robot$team+ci", &secret).await.expect("robot login");
        assert_eq!(
            a.grant(&id, &scope("repository:team/app:pull,push,delete")).await.expect("grant").to_string(),
            "repository:team/app:pull,push"
        );
        assert!(a.grant(&id, &scope("repository:team/other:pull")).await.expect("grant").actions.is_empty());
        assert!(matches!(a.authenticate("robot$team+ci", "wrong").await, Err(AuthError::InvalidCredentials)));
        a.remove_robot("robot$team+ci").await.expect("remove");
        assert!(a.authenticate("robot$team+ci", &secret).await.is_err(), "removed robots cannot log in");

        a.add_user("bob", "password1", false).await.expect("user");
        assert!(a.add_user("bob", "password2", false).await.is_err(), "names are unique");
        assert!(a.add_user("short", "pw", false).await.is_err());
        a.set_user_enabled("bob", false).await.expect("disable");
        assert!(a.authenticate("bob", "password1").await.is_err(), "disabled users cannot log in");
        assert!(a.lookup("bob").await.is_err(), "nor refresh");
        assert!(matches!(a.authenticate("nobody", "password1").await, Err(AuthError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn repeated_wrong_passwords_lock_the_account() {
        let a = Accounts::in_memory().expect("db");
        a.add_user("carol", "password1", false).await.expect("user");
        for _ in 0..MAX_FAILURES {
            assert!(matches!(a.authenticate("carol", "wrong").await, Err(AuthError::InvalidCredentials)));
        }
        assert!(
            matches!(a.authenticate("carol", "password1").await, Err(AuthError::RateLimited { .. })),
            "locked even with the right password"
        );
    }
}
