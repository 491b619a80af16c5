//! [`MemoryAccountStore`]: the [`AccountStore`] in memory, for tests, examples and embedders
//! that keep accounts elsewhere. One lock over the whole state makes each method atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use registry_core::event::Event;

use crate::error::AuthError;
use crate::model::{Entity, Id, LoginFailures, Member, Project, Robot, User, UserGroup};
use crate::store::{AccountStore, Result};

#[derive(Default)]
struct State {
    next_id: Id,
    users: BTreeMap<Id, User>,
    projects: BTreeMap<Id, Project>,
    members: BTreeMap<Id, Member>,
    groups: BTreeMap<Id, UserGroup>,
    robots: BTreeMap<Id, Robot>,
    failures: HashMap<String, LoginFailures>,
    events: Vec<Event>,
}

impl State {
    fn next(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    fn record(&mut self, events: &[Event]) {
        for event in events {
            let id = self.events.len() as u64 + 1;
            self.events.push(Event { id, ..event.clone() });
        }
    }
}

/// Accounts in memory. Clones share the data.
#[derive(Clone, Default)]
pub struct MemoryAccountStore {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryAccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAccountStore").finish_non_exhaustive()
    }
}

impl MemoryAccountStore {
    /// An empty store.
    pub fn new() -> MemoryAccountStore {
        MemoryAccountStore::default()
    }

    /// The events the changes recorded, in order (this store keeps its own: it is not a metadata
    /// store with an event stream).
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Replaces the record `id` of `map` if `same` holds of the stored one.
fn replace<T: Clone>(
    map: &mut BTreeMap<Id, T>,
    id: Id,
    value: &T,
    what: impl FnOnce() -> String,
    same: impl FnOnce(&T) -> bool,
) -> Result<()> {
    match map.get_mut(&id) {
        Some(current) if same(current) => {
            *current = value.clone();
            Ok(())
        }
        Some(_) => Err(AuthError::Invalid(format!("{} cannot be renamed or moved", what()))),
        None => Err(AuthError::not_found(what())),
    }
}

#[async_trait]
impl AccountStore for MemoryAccountStore {
    async fn create_user(&self, mut user: User, events: &[Event]) -> Result<User> {
        let mut state = self.lock();
        if state.users.values().any(|u| u.name == user.name) {
            return Err(AuthError::conflict(format!("user {}", user.name)));
        }
        user.id = state.next();
        state.users.insert(user.id, user.clone());
        state.record(events);
        Ok(user)
    }

    async fn user(&self, id: Id) -> Result<Option<User>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        Ok(self.lock().users.values().find(|u| u.name == name).cloned())
    }

    async fn users(&self) -> Result<Vec<User>> {
        Ok(self.lock().users.values().cloned().collect())
    }

    async fn update_user(&self, user: &User, events: &[Event]) -> Result<()> {
        let what = || format!("user {}", user.name);
        let mut state = self.lock();
        replace(&mut state.users, user.id, user, what, |u| u.name == user.name)?;
        state.record(events);
        Ok(())
    }

    async fn delete_user(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        if state.users.remove(&id).is_none() {
            return Ok(false);
        }
        state.members.retain(|_, m| m.entity != Entity::User(id));
        state.record(events);
        Ok(true)
    }

    async fn create_project(&self, mut project: Project, events: &[Event]) -> Result<Project> {
        let mut state = self.lock();
        if state.projects.values().any(|p| p.name == project.name) {
            return Err(AuthError::conflict(format!("project {}", project.name)));
        }
        project.id = state.next();
        state.projects.insert(project.id, project.clone());
        state.record(events);
        Ok(project)
    }

    async fn project(&self, id: Id) -> Result<Option<Project>> {
        Ok(self.lock().projects.get(&id).cloned())
    }

    async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        Ok(self.lock().projects.values().find(|p| p.name == name).cloned())
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        let mut all: Vec<Project> = self.lock().projects.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn update_project(&self, project: &Project, events: &[Event]) -> Result<()> {
        let what = || format!("project {}", project.name);
        let mut state = self.lock();
        replace(&mut state.projects, project.id, project, what, |p| p.name == project.name)?;
        state.record(events);
        Ok(())
    }

    async fn delete_project(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        if state.projects.remove(&id).is_none() {
            return Ok(false);
        }
        state.members.retain(|_, m| m.project_id != id);
        state.robots.retain(|_, r| r.project_id != Some(id));
        state.record(events);
        Ok(true)
    }

    async fn create_member(&self, mut member: Member, events: &[Event]) -> Result<Member> {
        let mut state = self.lock();
        let Some(project) = state.projects.get(&member.project_id) else {
            return Err(AuthError::not_found(format!("project {}", member.project_id)));
        };
        let project = project.name.clone();
        let who = match member.entity {
            Entity::User(id) => state.users.get(&id).map(|u| format!("user {}", u.name)),
            Entity::Group(id) => state.groups.get(&id).map(|g| format!("group {}", g.name)),
        };
        let Some(who) = who else {
            return Err(AuthError::not_found(format!("{:?}", member.entity)));
        };
        if state.members.values().any(|m| m.project_id == member.project_id && m.entity == member.entity) {
            return Err(AuthError::conflict(format!("membership of {who} in {project}")));
        }
        member.id = state.next();
        state.members.insert(member.id, member.clone());
        state.record(events);
        Ok(member)
    }

    async fn members(&self, project_id: Id) -> Result<Vec<Member>> {
        Ok(self.lock().members.values().filter(|m| m.project_id == project_id).cloned().collect())
    }

    async fn member(&self, project_id: Id, user_id: Id) -> Result<Option<Member>> {
        Ok(self
            .lock()
            .members
            .values()
            .find(|m| m.project_id == project_id && m.entity == Entity::User(user_id))
            .cloned())
    }

    async fn memberships(&self, user_id: Id) -> Result<Vec<Member>> {
        Ok(self.lock().members.values().filter(|m| m.entity == Entity::User(user_id)).cloned().collect())
    }

    async fn update_member(&self, member: &Member, events: &[Event]) -> Result<()> {
        let what = || format!("member {}", member.id);
        let mut state = self.lock();
        replace(&mut state.members, member.id, member, what, |m| {
            m.project_id == member.project_id && m.entity == member.entity
        })?;
        state.record(events);
        Ok(())
    }

    async fn delete_member(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        let removed = state.members.remove(&id).is_some();
        if removed {
            state.record(events);
        }
        Ok(removed)
    }

    async fn create_group(&self, mut group: UserGroup, events: &[Event]) -> Result<UserGroup> {
        let mut state = self.lock();
        let key = group.key();
        if state.groups.values().any(|g| g.kind == group.kind && g.key() == key) {
            return Err(AuthError::conflict(format!("group {}", group.name)));
        }
        group.id = state.next();
        state.groups.insert(group.id, group.clone());
        state.record(events);
        Ok(group)
    }

    async fn group(&self, id: Id) -> Result<Option<UserGroup>> {
        Ok(self.lock().groups.get(&id).cloned())
    }

    async fn groups(&self) -> Result<Vec<UserGroup>> {
        Ok(self.lock().groups.values().cloned().collect())
    }

    async fn update_group(&self, group: &UserGroup, events: &[Event]) -> Result<()> {
        let mut state = self.lock();
        let key = group.key();
        if state.groups.values().any(|g| g.id != group.id && g.kind == group.kind && g.key() == key) {
            return Err(AuthError::conflict(format!("group {}", group.name)));
        }
        let what = || format!("group {}", group.name);
        replace(&mut state.groups, group.id, group, what, |g| g.kind == group.kind)?;
        state.record(events);
        Ok(())
    }

    async fn delete_group(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        if state.groups.remove(&id).is_none() {
            return Ok(false);
        }
        state.members.retain(|_, m| m.entity != Entity::Group(id));
        state.record(events);
        Ok(true)
    }

    async fn create_robot(&self, mut robot: Robot, events: &[Event]) -> Result<Robot> {
        let mut state = self.lock();
        if state.robots.values().any(|r| r.name == robot.name) {
            return Err(AuthError::conflict(format!("robot {}", robot.name)));
        }
        if let Some(project) = robot.project_id
            && !state.projects.contains_key(&project)
        {
            return Err(AuthError::not_found(format!("project {project}")));
        }
        robot.id = state.next();
        state.robots.insert(robot.id, robot.clone());
        state.record(events);
        Ok(robot)
    }

    async fn robot(&self, id: Id) -> Result<Option<Robot>> {
        Ok(self.lock().robots.get(&id).cloned())
    }

    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>> {
        Ok(self.lock().robots.values().find(|r| r.name == name).cloned())
    }

    async fn robots(&self) -> Result<Vec<Robot>> {
        Ok(self.lock().robots.values().cloned().collect())
    }

    async fn update_robot(&self, robot: &Robot, events: &[Event]) -> Result<()> {
        let what = || format!("robot {}", robot.name);
        let mut state = self.lock();
        replace(&mut state.robots, robot.id, robot, what, |r| r.name == robot.name)?;
        state.record(events);
        Ok(())
    }

    async fn delete_robot(&self, id: Id, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        let removed = state.robots.remove(&id).is_some();
        if removed {
            state.record(events);
        }
        Ok(removed)
    }

    async fn login_failures(&self, name: &str) -> Result<Option<LoginFailures>> {
        Ok(self.lock().failures.get(name).copied())
    }

    async fn set_login_failures(&self, name: &str, failures: Option<LoginFailures>, events: &[Event]) -> Result<()> {
        let mut state = self.lock();
        match failures {
            Some(f) => state.failures.insert(name.to_owned(), f),
            None => state.failures.remove(name),
        };
        state.record(events);
        Ok(())
    }
}
