//! Members: a user's or a user group's role in a project, optionally narrowed to a repository
//! pattern.

use registry_core::event::{EventAction, Resource};

use super::Accounts;
use crate::error::AuthError;
use crate::model::{Entity, Id, Member, Role};

/// A membership with the names of its project and its user or group, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectMember {
    /// The membership.
    pub member: Member,
    /// The project's name.
    pub project: String,
    /// The user's or the group's name.
    pub name: String,
}

impl Accounts {
    /// Makes `user` a member of `project` with `role`, optionally narrowed to a repository pattern.
    pub async fn add_member(
        &self,
        project: &str,
        user: &str,
        role: Role,
        repositories: Option<&str>,
    ) -> Result<ProjectMember, AuthError> {
        let p = self.existing_project(project).await?;
        let u = self.user(user).await?.ok_or_else(|| AuthError::not_found(format!("user {user}")))?;
        self.add_entity(p, Entity::User(u.id), u.name, role, repositories).await
    }

    /// Makes the user group `group` a member of `project` with `role`: its people get the role.
    pub async fn add_group_member(
        &self,
        project: &str,
        group: Id,
        role: Role,
        repositories: Option<&str>,
    ) -> Result<ProjectMember, AuthError> {
        let p = self.existing_project(project).await?;
        let g = self.group(group).await?;
        self.add_entity(p, Entity::Group(g.id), g.name, role, repositories).await
    }

    async fn add_entity(
        &self,
        p: crate::model::Project,
        entity: Entity,
        name: String,
        role: Role,
        repositories: Option<&str>,
    ) -> Result<ProjectMember, AuthError> {
        if let Some(pattern) = repositories
            && (pattern.is_empty() || pattern.len() > 255)
        {
            return Err(AuthError::Invalid("a repository pattern has 1 to 255 characters".into()));
        }
        let member = Member {
            id: 0,
            project_id: p.id,
            entity,
            role,
            repositories: repositories.filter(|r| *r != "*").map(str::to_owned),
            created_at: self.now(),
        };
        let event = self.event(EventAction::CreateMember, member_resource(&p.name, &name));
        let member = self.store.create_member(member, &event).await?;
        Ok(ProjectMember { member, project: p.name, name })
    }

    /// The members of a project, by membership id.
    pub async fn members(&self, project: &str) -> Result<Vec<ProjectMember>, AuthError> {
        let p = self.existing_project(project).await?;
        let mut out = Vec::new();
        let members = self.store.members(p.id).await?;
        let groups = match members.iter().any(|m| m.entity.group().is_some()) {
            true => self.store.groups().await?,
            false => Vec::new(),
        };
        for member in members {
            // A user or group deleted meanwhile takes their membership with them.
            let name = match member.entity {
                Entity::User(id) => self.store.user(id).await?.map(|u| u.name),
                Entity::Group(id) => groups.iter().find(|g| g.id == id).map(|g| g.name.clone()),
            };
            if let Some(name) = name {
                out.push(ProjectMember { member, project: p.name.clone(), name });
            }
        }
        Ok(out)
    }

    /// One membership of a project by its id.
    pub async fn member(&self, project: &str, id: Id) -> Result<ProjectMember, AuthError> {
        let missing = || AuthError::not_found(format!("member {id} of project {project}"));
        self.members(project).await?.into_iter().find(|m| m.member.id == id).ok_or_else(missing)
    }

    /// The membership of `user` in `project` (their own, not their groups'), if any.
    pub async fn membership(&self, project: &str, user: &str) -> Result<Option<Member>, AuthError> {
        let (Some(p), Some(u)) = (self.project(project).await?, self.user(user).await?) else { return Ok(None) };
        self.store.member(p.id, u.id).await
    }

    /// What `user` holds in `project`: their own membership and their groups', the strongest
    /// role first (Harbor takes the highest).
    pub async fn roles_in(&self, project: &str, user: &str) -> Result<Vec<Member>, AuthError> {
        let (Some(p), Some(u)) = (self.project(project).await?, self.user(user).await?) else { return Ok(Vec::new()) };
        let mut held = self.memberships_in(p.id, &u).await?;
        held.sort_by_key(|m| m.role);
        Ok(held)
    }

    /// The strongest role `user` holds in `project` through any membership, if any.
    pub async fn role_in(&self, project: &str, user: &str) -> Result<Option<Role>, AuthError> {
        Ok(self.roles_in(project, user).await?.first().map(|m| m.role))
    }

    /// Changes a member's role.
    pub async fn set_member_role(&self, project: &str, id: Id, role: Role) -> Result<ProjectMember, AuthError> {
        let mut m = self.member(project, id).await?;
        m.member.role = role;
        self.store
            .update_member(&m.member, &self.event(EventAction::UpdateMember, member_resource(project, &m.name)))
            .await?;
        Ok(m)
    }

    /// Removes a membership by its id.
    pub async fn remove_member_by_id(&self, project: &str, id: Id) -> Result<(), AuthError> {
        let m = self.member(project, id).await?;
        let event = self.event(EventAction::DeleteMember, member_resource(project, &m.name));
        if self.store.delete_member(m.member.id, &event).await? {
            Ok(())
        } else {
            Err(AuthError::not_found(format!("member {id} of project {project}")))
        }
    }

    /// Removes `user`'s membership of `project`.
    pub async fn remove_member(&self, project: &str, user: &str) -> Result<(), AuthError> {
        let missing = || AuthError::not_found(format!("member {user} of project {project}"));
        let m = self.membership(project, user).await?.ok_or_else(missing)?;
        let event = self.event(EventAction::DeleteMember, member_resource(project, user));
        if self.store.delete_member(m.id, &event).await? { Ok(()) } else { Err(missing()) }
    }
}

/// The resource of an event on a membership.
fn member_resource(project: &str, user: &str) -> Resource {
    Resource { project: Some(project.to_owned()), name: Some(user.to_owned()), ..Resource::default() }
}
