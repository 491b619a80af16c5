//! Members: a user's role in a project, optionally narrowed to a repository pattern.

use registry_core::event::{EventAction, Resource};

use super::Accounts;
use crate::error::AuthError;
use crate::model::{Id, Member, Role};

/// A membership with the names of its project and user, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectMember {
    /// The membership.
    pub member: Member,
    /// The project's name.
    pub project: String,
    /// The user's name.
    pub user: String,
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
        if let Some(pattern) = repositories
            && (pattern.is_empty() || pattern.len() > 255)
        {
            return Err(AuthError::Invalid("a repository pattern has 1 to 255 characters".into()));
        }
        let member = Member {
            id: 0,
            project_id: p.id,
            user_id: u.id,
            role,
            repositories: repositories.filter(|r| *r != "*").map(str::to_owned),
            created_at: self.now(),
        };
        let event = self.event(EventAction::CreateMember, member_resource(&p.name, &u.name));
        let member = self.store.create_member(member, &event).await?;
        Ok(ProjectMember { member, project: p.name, user: u.name })
    }

    /// The members of a project, by membership id.
    pub async fn members(&self, project: &str) -> Result<Vec<ProjectMember>, AuthError> {
        let p = self.existing_project(project).await?;
        let mut out = Vec::new();
        for member in self.store.members(p.id).await? {
            // A user deleted meanwhile takes their membership with them.
            if let Some(user) = self.store.user(member.user_id).await? {
                out.push(ProjectMember { member, project: p.name.clone(), user: user.name });
            }
        }
        Ok(out)
    }

    /// One membership of a project by its id.
    pub async fn member(&self, project: &str, id: Id) -> Result<ProjectMember, AuthError> {
        let missing = || AuthError::not_found(format!("member {id} of project {project}"));
        self.members(project).await?.into_iter().find(|m| m.member.id == id).ok_or_else(missing)
    }

    /// The membership of `user` in `project`, if any.
    pub async fn membership(&self, project: &str, user: &str) -> Result<Option<Member>, AuthError> {
        let (Some(p), Some(u)) = (self.project(project).await?, self.user(user).await?) else { return Ok(None) };
        self.store.member(p.id, u.id).await
    }

    /// Changes a member's role.
    pub async fn set_member_role(&self, project: &str, id: Id, role: Role) -> Result<ProjectMember, AuthError> {
        let mut m = self.member(project, id).await?;
        m.member.role = role;
        self.store
            .update_member(&m.member, &self.event(EventAction::UpdateMember, member_resource(project, &m.user)))
            .await?;
        Ok(m)
    }

    /// Removes a membership by its id.
    pub async fn remove_member_by_id(&self, project: &str, id: Id) -> Result<(), AuthError> {
        let m = self.member(project, id).await?;
        let event = self.event(EventAction::DeleteMember, member_resource(project, &m.user));
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
