//! The [`AccountStore`] half of [`RedbStore`]: users, projects, members, robots, login failures.
//! (Its length is the trait's: 31 short transactions over the tables below.)
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `users`, `projects`, `members`, `robots` | id | JSON record ([`registry_auth::model`]) |
//! | `user_names`, `project_names`, `robot_names` | name | id |
//! | `members_by_project` | (project id, user id) | member id |
//! | `members_by_user` | (user id, project id) | member id |
//! | `groups` | id | JSON [`UserGroup`] |
//! | `group_keys` | `<kind>:<key>` ([`UserGroup::key`]) | group id |
//! | `group_members_by_project` | (project id, group id) | member id |
//! | `members_by_group` | (group id, project id) | member id |
//! | `login_failures` | account name | JSON [`LoginFailures`] |
//! | `sequences` | table name | the last id given |
//!
//! Every project is also held in memory (the registry looks one up on every request), replaced
//! after each project write: exact, because this process alone writes the file (redb locks it).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_auth::model::{Entity, Id, LoginFailures, Member, Project, Robot, User, UserGroup};
use registry_auth::{AccountStore, AuthError};
use registry_core::event::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RedbStore;

type Records = TableDefinition<'static, u64, &'static [u8]>;
type Names = TableDefinition<'static, &'static str, u64>;
type Pairs = TableDefinition<'static, (u64, u64), u64>;

const USERS: Records = TableDefinition::new("users");
const USER_NAMES: Names = TableDefinition::new("user_names");
const PROJECTS: Records = TableDefinition::new("projects");
const PROJECT_NAMES: Names = TableDefinition::new("project_names");
const MEMBERS: Records = TableDefinition::new("members");
const MEMBERS_BY_PROJECT: Pairs = TableDefinition::new("members_by_project");
const MEMBERS_BY_USER: Pairs = TableDefinition::new("members_by_user");
const GROUPS: Records = TableDefinition::new("groups");
const GROUP_KEYS: Names = TableDefinition::new("group_keys");
const GROUP_MEMBERS_BY_PROJECT: Pairs = TableDefinition::new("group_members_by_project");
const MEMBERS_BY_GROUP: Pairs = TableDefinition::new("members_by_group");
const ROBOTS: Records = TableDefinition::new("robots");
const ROBOT_NAMES: Names = TableDefinition::new("robot_names");
const LOGIN_FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("login_failures");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");

type Result<T, E = AuthError> = std::result::Result<T, E>;

fn db_err(e: impl Into<redb::Error>) -> AuthError {
    crate::handle::db_err(e)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("a corrupt account record", e)))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("encoding an account record", e)))
}

/// All projects by name, in memory.
#[derive(Default)]
pub(crate) struct ProjectCache {
    by_name: RwLock<Arc<BTreeMap<String, Project>>>,
    /// Serializes project writes, so the cache follows the commits in order.
    writes: tokio::sync::Mutex<()>,
}

impl ProjectCache {
    fn snapshot(&self) -> Arc<BTreeMap<String, Project>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, all: BTreeMap<String, Project>) {
        *self.by_name.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }
}

/// Creates the account tables and loads the projects into `cache`.
pub(crate) fn prepare(txn: &redb::WriteTransaction, cache: &ProjectCache) -> Result<()> {
    for t in [USERS, PROJECTS, MEMBERS, ROBOTS, GROUPS] {
        txn.open_table(t).map_err(db_err)?;
    }
    for t in [USER_NAMES, PROJECT_NAMES, ROBOT_NAMES, GROUP_KEYS] {
        txn.open_table(t).map_err(db_err)?;
    }
    for t in [MEMBERS_BY_PROJECT, MEMBERS_BY_USER, GROUP_MEMBERS_BY_PROJECT, MEMBERS_BY_GROUP] {
        txn.open_table(t).map_err(db_err)?;
    }
    txn.open_table(LOGIN_FAILURES).map_err(db_err)?;
    txn.open_table(SEQUENCES).map_err(db_err)?;
    cache.replace(all_projects(&txn.open_table(PROJECTS).map_err(db_err)?)?);
    Ok(())
}

fn all_projects(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<BTreeMap<String, Project>> {
    let mut all = BTreeMap::new();
    for item in table.iter().map_err(db_err)? {
        let (_, v) = item.map_err(db_err)?;
        let p: Project = decode(v.value())?;
        all.insert(p.name.clone(), p);
    }
    Ok(all)
}

/// The next id of `sequence`.
fn next_id(txn: &redb::WriteTransaction, sequence: &str) -> Result<Id> {
    let mut seq = txn.open_table(SEQUENCES).map_err(db_err)?;
    let next = seq.get(sequence).map_err(db_err)?.map(|v| v.value()).unwrap_or(0) + 1;
    seq.insert(sequence, next).map_err(db_err)?;
    Ok(next)
}

fn get<T: DeserializeOwned>(table: &impl ReadableTable<u64, &'static [u8]>, id: Id) -> Result<Option<T>> {
    table.get(id).map_err(db_err)?.map(|v| decode(v.value())).transpose()
}

fn list<T: DeserializeOwned>(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<T>> {
    table.iter().map_err(db_err)?.map(|item| item.map_err(db_err).and_then(|(_, v)| decode(v.value()))).collect()
}

fn by_name<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    names: Names,
    records: Records,
    name: &str,
) -> Result<Option<T>> {
    let Some(id) = txn.open_table(names).map_err(db_err)?.get(name).map_err(db_err)?.map(|v| v.value()) else {
        return Ok(None);
    };
    get(&txn.open_table(records).map_err(db_err)?, id)
}

/// Inserts a named record under a fresh id; the id, or a conflict when the name is taken.
fn create_named(
    txn: &redb::WriteTransaction,
    (records, names, sequence): (Records, Names, &str),
    name: &str,
    what: &str,
    encode_with_id: impl FnOnce(Id) -> Result<Vec<u8>>,
) -> Result<Id> {
    let mut names_table = txn.open_table(names).map_err(db_err)?;
    if names_table.get(name).map_err(db_err)?.is_some() {
        return Err(AuthError::conflict(format!("{what} {name}")));
    }
    let id = next_id(txn, sequence)?;
    let bytes = encode_with_id(id)?;
    names_table.insert(name, id).map_err(db_err)?;
    txn.open_table(records).map_err(db_err)?.insert(id, bytes.as_slice()).map_err(db_err)?;
    Ok(id)
}

/// Replaces the record `id` if its stored name is `name`.
fn replace_named<T: DeserializeOwned>(
    txn: &redb::WriteTransaction,
    records: Records,
    id: Id,
    name: &str,
    what: &str,
    name_of: impl Fn(&T) -> &str,
    bytes: &[u8],
) -> Result<()> {
    let mut table = txn.open_table(records).map_err(db_err)?;
    let current: Option<T> = get(&table, id)?;
    match current {
        Some(c) if name_of(&c) == name => {
            table.insert(id, bytes).map_err(db_err)?;
            Ok(())
        }
        Some(_) => Err(AuthError::Invalid(format!("{what} {name} cannot be renamed"))),
        None => Err(AuthError::not_found(format!("{what} {name}"))),
    }
}

/// The indexes of a membership of `entity`: by (project, entity), by (entity, project); and the
/// entity's id.
fn indexes(entity: Entity) -> (Pairs, Pairs, Id) {
    match entity {
        Entity::User(id) => (MEMBERS_BY_PROJECT, MEMBERS_BY_USER, id),
        Entity::Group(id) => (GROUP_MEMBERS_BY_PROJECT, MEMBERS_BY_GROUP, id),
    }
}

/// Deletes membership `id` with its index entries.
fn delete_member_in(txn: &redb::WriteTransaction, id: Id) -> Result<bool> {
    let removed = txn.open_table(MEMBERS).map_err(db_err)?.remove(id).map_err(db_err)?.map(|v| v.value().to_vec());
    let Some(bytes) = removed else { return Ok(false) };
    let m: Member = decode(&bytes)?;
    let (by_project, by_entity, entity) = indexes(m.entity);
    txn.open_table(by_project).map_err(db_err)?.remove((m.project_id, entity)).map_err(db_err)?;
    txn.open_table(by_entity).map_err(db_err)?.remove((entity, m.project_id)).map_err(db_err)?;
    Ok(true)
}

/// The key of `group` in `group_keys`.
fn group_key(group: &UserGroup) -> String {
    format!("{}:{}", group.kind.id(), group.key())
}

/// The member ids of `owner` in an index keyed by (owner, other).
fn member_ids(table: &impl ReadableTable<(u64, u64), u64>, owner: Id) -> Result<Vec<Id>> {
    table
        .range((owner, 0)..=(owner, u64::MAX))
        .map_err(db_err)?
        .map(|item| item.map(|(_, v)| v.value()).map_err(db_err))
        .collect()
}

fn members_in(txn: &redb::ReadTransaction, index: &[Pairs], owner: Id) -> Result<Vec<Member>> {
    let mut ids = Vec::new();
    for index in index {
        ids.extend(member_ids(&txn.open_table(*index).map_err(db_err)?, owner)?);
    }
    let members = txn.open_table(MEMBERS).map_err(db_err)?;
    let mut out: Vec<Member> = ids.into_iter().filter_map(|id| get(&members, id).transpose()).collect::<Result<_>>()?;
    out.sort_by_key(|m| m.id);
    Ok(out)
}

#[async_trait]
impl AccountStore for RedbStore {
    async fn create_user(&self, mut user: User, events: &[Event]) -> Result<User> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let name = user.name.clone();
                user.id = create_named(txn, (USERS, USER_NAMES, "users"), &name, "user", |id| {
                    user.id = id;
                    encode(&user)
                })?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(user)
            })
            .await
    }

    async fn user(&self, id: Id) -> Result<Option<User>> {
        self.db.read(move |txn| get(&txn.open_table(USERS).map_err(db_err)?, id)).await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let name = name.to_owned();
        self.db.read(move |txn| by_name(txn, USER_NAMES, USERS, &name)).await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.db.read(|txn| list(&txn.open_table(USERS).map_err(db_err)?)).await
    }

    async fn update_user(&self, user: &User, events: &[Event]) -> Result<()> {
        let (bytes, id, name, events) = (encode(user)?, user.id, user.name.clone(), events.to_vec());
        self.db
            .write(move |txn| {
                replace_named::<User>(txn, USERS, id, &name, "user", |u| &u.name, &bytes)?;
                crate::events::record::<AuthError>(txn, &events)
            })
            .await
    }

    async fn delete_user(&self, id: Id, events: &[Event]) -> Result<bool> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let removed =
                    txn.open_table(USERS).map_err(db_err)?.remove(id).map_err(db_err)?.map(|v| v.value().to_vec());
                let Some(bytes) = removed else { return Ok(false) };
                let user: User = decode(&bytes)?;
                txn.open_table(USER_NAMES).map_err(db_err)?.remove(user.name.as_str()).map_err(db_err)?;
                let ids = member_ids(&txn.open_table(MEMBERS_BY_USER).map_err(db_err)?, id)?;
                for m in ids {
                    delete_member_in(txn, m)?;
                }
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(true)
            })
            .await
    }

    async fn create_project(&self, mut project: Project, events: &[Event]) -> Result<Project> {
        let events = events.to_vec();
        let _writing = self.projects.writes.lock().await;
        let created = self
            .db
            .write(move |txn| {
                let name = project.name.clone();
                project.id = create_named(txn, (PROJECTS, PROJECT_NAMES, "projects"), &name, "project", |id| {
                    project.id = id;
                    encode(&project)
                })?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok::<_, AuthError>(project)
            })
            .await?;
        let mut all = BTreeMap::clone(&self.projects.snapshot());
        all.insert(created.name.clone(), created.clone());
        self.projects.replace(all);
        Ok(created)
    }

    async fn project(&self, id: Id) -> Result<Option<Project>> {
        Ok(self.projects.snapshot().values().find(|p| p.id == id).cloned())
    }

    async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        Ok(self.projects.snapshot().get(name).cloned())
    }

    async fn project_created_at(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.projects.snapshot().get(name).map(|p| p.created_at))
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        Ok(self.projects.snapshot().values().cloned().collect())
    }

    async fn update_project(&self, project: &Project, events: &[Event]) -> Result<()> {
        let _writing = self.projects.writes.lock().await;
        let (bytes, id, name, events) = (encode(project)?, project.id, project.name.clone(), events.to_vec());
        self.db
            .write(move |txn| {
                replace_named::<Project>(txn, PROJECTS, id, &name, "project", |p| &p.name, &bytes)?;
                crate::events::record::<AuthError>(txn, &events)
            })
            .await?;
        let mut all = BTreeMap::clone(&self.projects.snapshot());
        all.insert(project.name.clone(), project.clone());
        self.projects.replace(all);
        Ok(())
    }

    async fn delete_project(&self, id: Id, events: &[Event]) -> Result<bool> {
        let events = events.to_vec();
        let _writing = self.projects.writes.lock().await;
        let removed = self
            .db
            .write(move |txn| {
                let removed =
                    txn.open_table(PROJECTS).map_err(db_err)?.remove(id).map_err(db_err)?.map(|v| v.value().to_vec());
                let Some(bytes) = removed else { return Ok::<_, AuthError>(None) };
                let project: Project = decode(&bytes)?;
                txn.open_table(PROJECT_NAMES).map_err(db_err)?.remove(project.name.as_str()).map_err(db_err)?;
                let mut ids = member_ids(&txn.open_table(MEMBERS_BY_PROJECT).map_err(db_err)?, id)?;
                ids.extend(member_ids(&txn.open_table(GROUP_MEMBERS_BY_PROJECT).map_err(db_err)?, id)?);
                for m in ids {
                    delete_member_in(txn, m)?;
                }
                let robots: Vec<Robot> = list(&txn.open_table(ROBOTS).map_err(db_err)?)?;
                let mut table = txn.open_table(ROBOTS).map_err(db_err)?;
                let mut names = txn.open_table(ROBOT_NAMES).map_err(db_err)?;
                for r in robots.into_iter().filter(|r| r.project_id == Some(id)) {
                    table.remove(r.id).map_err(db_err)?;
                    names.remove(r.name.as_str()).map_err(db_err)?;
                }
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(Some(project.name))
            })
            .await?;
        let Some(name) = removed else { return Ok(false) };
        let mut all = BTreeMap::clone(&self.projects.snapshot());
        all.remove(&name);
        self.projects.replace(all);
        Ok(true)
    }

    async fn create_member(&self, mut member: Member, events: &[Event]) -> Result<Member> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let project: Option<Project> = get(&txn.open_table(PROJECTS).map_err(db_err)?, member.project_id)?;
                let project = project.ok_or_else(|| AuthError::not_found(format!("project {}", member.project_id)))?;
                let who = match member.entity {
                    Entity::User(id) => {
                        get::<User>(&txn.open_table(USERS).map_err(db_err)?, id)?.map(|u| format!("user {}", u.name))
                    }
                    Entity::Group(id) => get::<UserGroup>(&txn.open_table(GROUPS).map_err(db_err)?, id)?
                        .map(|g| format!("group {}", g.name)),
                };
                let who = who.ok_or_else(|| AuthError::not_found(format!("{:?}", member.entity)))?;
                let (by_project, by_entity, entity) = indexes(member.entity);
                let mut by_project = txn.open_table(by_project).map_err(db_err)?;
                if by_project.get((member.project_id, entity)).map_err(db_err)?.is_some() {
                    return Err(AuthError::conflict(format!("membership of {who} in {}", project.name)));
                }
                member.id = next_id(txn, "members")?;
                by_project.insert((member.project_id, entity), member.id).map_err(db_err)?;
                txn.open_table(by_entity)
                    .map_err(db_err)?
                    .insert((entity, member.project_id), member.id)
                    .map_err(db_err)?;
                txn.open_table(MEMBERS)
                    .map_err(db_err)?
                    .insert(member.id, encode(&member)?.as_slice())
                    .map_err(db_err)?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(member)
            })
            .await
    }

    async fn members(&self, project_id: Id) -> Result<Vec<Member>> {
        self.db.read(move |txn| members_in(txn, &[MEMBERS_BY_PROJECT, GROUP_MEMBERS_BY_PROJECT], project_id)).await
    }

    async fn member(&self, project_id: Id, user_id: Id) -> Result<Option<Member>> {
        self.db
            .read(move |txn| {
                let id =
                    txn.open_table(MEMBERS_BY_PROJECT).map_err(db_err)?.get((project_id, user_id)).map_err(db_err)?;
                match id.map(|v| v.value()) {
                    Some(id) => get(&txn.open_table(MEMBERS).map_err(db_err)?, id),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn memberships(&self, user_id: Id) -> Result<Vec<Member>> {
        self.db.read(move |txn| members_in(txn, &[MEMBERS_BY_USER], user_id)).await
    }

    async fn update_member(&self, member: &Member, events: &[Event]) -> Result<()> {
        let (bytes, m, events) = (encode(member)?, member.clone(), events.to_vec());
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(MEMBERS).map_err(db_err)?;
                let current: Option<Member> = get(&table, m.id)?;
                match current {
                    Some(c) if c.project_id == m.project_id && c.entity == m.entity => {
                        table.insert(m.id, bytes.as_slice()).map_err(db_err)?;
                        drop(table);
                        crate::events::record::<AuthError>(txn, &events)
                    }
                    Some(_) => Err(AuthError::Invalid(format!("member {} cannot be moved", m.id))),
                    None => Err(AuthError::not_found(format!("member {}", m.id))),
                }
            })
            .await
    }

    async fn delete_member(&self, id: Id, events: &[Event]) -> Result<bool> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let removed = delete_member_in(txn, id)?;
                if removed {
                    crate::events::record::<AuthError>(txn, &events)?;
                }
                Ok(removed)
            })
            .await
    }

    async fn create_group(&self, mut group: UserGroup, events: &[Event]) -> Result<UserGroup> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let key = group_key(&group);
                let name = group.name.clone();
                group.id = create_named(txn, (GROUPS, GROUP_KEYS, "groups"), &key, "group", |id| {
                    group.id = id;
                    encode(&group)
                })
                .map_err(|e| match e {
                    AuthError::Conflict { .. } => AuthError::conflict(format!("group {name}")),
                    e => e,
                })?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(group)
            })
            .await
    }

    async fn group(&self, id: Id) -> Result<Option<UserGroup>> {
        self.db.read(move |txn| get(&txn.open_table(GROUPS).map_err(db_err)?, id)).await
    }

    async fn groups(&self) -> Result<Vec<UserGroup>> {
        self.db.read(|txn| list(&txn.open_table(GROUPS).map_err(db_err)?)).await
    }

    async fn update_group(&self, group: &UserGroup, events: &[Event]) -> Result<()> {
        let (bytes, g, events) = (encode(group)?, group.clone(), events.to_vec());
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(GROUPS).map_err(db_err)?;
                let current: Option<UserGroup> = get(&table, g.id)?;
                let current = match current {
                    Some(c) if c.kind == g.kind => c,
                    Some(_) => return Err(AuthError::Invalid(format!("group {} cannot change its type", g.name))),
                    None => return Err(AuthError::not_found(format!("group {}", g.name))),
                };
                let (old, new) = (group_key(&current), group_key(&g));
                if old != new {
                    let mut keys = txn.open_table(GROUP_KEYS).map_err(db_err)?;
                    if keys.get(new.as_str()).map_err(db_err)?.is_some() {
                        return Err(AuthError::conflict(format!("group {}", g.name)));
                    }
                    keys.remove(old.as_str()).map_err(db_err)?;
                    keys.insert(new.as_str(), g.id).map_err(db_err)?;
                }
                table.insert(g.id, bytes.as_slice()).map_err(db_err)?;
                drop(table);
                crate::events::record::<AuthError>(txn, &events)
            })
            .await
    }

    async fn delete_group(&self, id: Id, events: &[Event]) -> Result<bool> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let removed =
                    txn.open_table(GROUPS).map_err(db_err)?.remove(id).map_err(db_err)?.map(|v| v.value().to_vec());
                let Some(bytes) = removed else { return Ok(false) };
                let group: UserGroup = decode(&bytes)?;
                txn.open_table(GROUP_KEYS).map_err(db_err)?.remove(group_key(&group).as_str()).map_err(db_err)?;
                let ids = member_ids(&txn.open_table(MEMBERS_BY_GROUP).map_err(db_err)?, id)?;
                for m in ids {
                    delete_member_in(txn, m)?;
                }
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(true)
            })
            .await
    }

    async fn create_robot(&self, mut robot: Robot, events: &[Event]) -> Result<Robot> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                if let Some(project) = robot.project_id {
                    let exists = txn.open_table(PROJECTS).map_err(db_err)?.get(project).map_err(db_err)?.is_some();
                    if !exists {
                        return Err(AuthError::not_found(format!("project {project}")));
                    }
                }
                let name = robot.name.clone();
                robot.id = create_named(txn, (ROBOTS, ROBOT_NAMES, "robots"), &name, "robot", |id| {
                    robot.id = id;
                    encode(&robot)
                })?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(robot)
            })
            .await
    }

    async fn robot(&self, id: Id) -> Result<Option<Robot>> {
        self.db.read(move |txn| get(&txn.open_table(ROBOTS).map_err(db_err)?, id)).await
    }

    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>> {
        let name = name.to_owned();
        self.db.read(move |txn| by_name(txn, ROBOT_NAMES, ROBOTS, &name)).await
    }

    async fn robots(&self) -> Result<Vec<Robot>> {
        self.db.read(|txn| list(&txn.open_table(ROBOTS).map_err(db_err)?)).await
    }

    async fn update_robot(&self, robot: &Robot, events: &[Event]) -> Result<()> {
        let (bytes, id, name, events) = (encode(robot)?, robot.id, robot.name.clone(), events.to_vec());
        self.db
            .write(move |txn| {
                replace_named::<Robot>(txn, ROBOTS, id, &name, "robot", |r| &r.name, &bytes)?;
                crate::events::record::<AuthError>(txn, &events)
            })
            .await
    }

    async fn delete_robot(&self, id: Id, events: &[Event]) -> Result<bool> {
        let events = events.to_vec();
        self.db
            .write(move |txn| {
                let removed =
                    txn.open_table(ROBOTS).map_err(db_err)?.remove(id).map_err(db_err)?.map(|v| v.value().to_vec());
                let Some(bytes) = removed else { return Ok(false) };
                let robot: Robot = decode(&bytes)?;
                txn.open_table(ROBOT_NAMES).map_err(db_err)?.remove(robot.name.as_str()).map_err(db_err)?;
                crate::events::record::<AuthError>(txn, &events)?;
                Ok(true)
            })
            .await
    }

    async fn login_failures(&self, name: &str) -> Result<Option<LoginFailures>> {
        let name = name.to_owned();
        self.db
            .read(move |txn| {
                let table = txn.open_table(LOGIN_FAILURES).map_err(db_err)?;
                let value = table.get(name.as_str()).map_err(db_err)?;
                value.map(|v| decode(v.value())).transpose()
            })
            .await
    }

    async fn set_login_failures(&self, name: &str, failures: Option<LoginFailures>, events: &[Event]) -> Result<()> {
        let name = name.to_owned();
        let events = events.to_vec();
        let bytes = failures.map(|f| encode(&f)).transpose()?;
        // Losing a count in a crash costs nothing: no fsync for it.
        self.db
            .write_with(redb::Durability::None, move |txn| {
                let mut table = txn.open_table(LOGIN_FAILURES).map_err(db_err)?;
                match bytes {
                    Some(b) => table.insert(name.as_str(), b.as_slice()).map(drop).map_err(db_err)?,
                    None => table.remove(name.as_str()).map(drop).map_err(db_err)?,
                }
                drop(table);
                crate::events::record::<AuthError>(txn, &events)
            })
            .await
    }
}
