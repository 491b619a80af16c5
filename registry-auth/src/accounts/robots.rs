//! Robots: project robots (`robot$<project>+<name>`) and system robots (`robot$<name>`), their
//! permissions, expiry and secret.

use registry_core::event::{EventAction, Resource};

use super::{Accounts, DEFAULT_ROBOT_DAYS, check_password, hash_secret, valid_account_name};
use crate::error::AuthError;
use crate::model::{Id, Robot, RobotLevel, RobotPermission};
use crate::token::random_id;

/// A robot to create.
#[derive(Clone)]
pub struct NewRobot {
    /// The short name (`ci` of `robot$team+ci`).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Project or system.
    pub level: RobotLevel,
    /// The project of a project robot.
    pub project: Option<String>,
    /// What it may do.
    pub permissions: Vec<RobotPermission>,
    /// Days until it expires; `None` for never.
    pub duration_days: Option<u64>,
    /// Created disabled.
    pub disabled: bool,
    /// A chosen secret (else a random one is made).
    pub secret: Option<String>,
    /// Who creates it.
    pub creator: String,
}

impl std::fmt::Debug for NewRobot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRobot").field("name", &self.name).field("level", &self.level).finish_non_exhaustive()
    }
}

impl NewRobot {
    /// A project robot with `permissions`, expiring after the default 30 days.
    pub fn for_project(project: &str, name: &str, permissions: Vec<RobotPermission>) -> NewRobot {
        NewRobot {
            name: name.to_owned(),
            description: String::new(),
            level: RobotLevel::Project,
            project: Some(project.to_owned()),
            permissions,
            duration_days: Some(DEFAULT_ROBOT_DAYS),
            disabled: false,
            secret: None,
            creator: String::new(),
        }
    }
}

impl Accounts {
    /// Creates a robot; returns it with its secret, shown this once.
    pub async fn create_robot(&self, new: NewRobot) -> Result<(Robot, String), AuthError> {
        if !valid_account_name(&new.name) || new.name.contains('+') || new.name.contains('$') {
            return Err(AuthError::Invalid(format!(
                "invalid robot name {:?}: use letters, digits, '.', '_', '-' (at most 255)",
                new.name
            )));
        }
        let (full_name, project_id) = match (new.level, &new.project) {
            (RobotLevel::Project, Some(project)) => {
                let p = self.existing_project(project).await?;
                if let Some(other) =
                    new.permissions.iter().find(|perm| perm.kind != "project" || perm.namespace != p.name)
                {
                    return Err(AuthError::Invalid(format!(
                        "a robot of project {} has permissions in that project only, not {}:{}",
                        p.name, other.kind, other.namespace
                    )));
                }
                (format!("robot${}+{}", p.name, new.name), Some(p.id))
            }
            (RobotLevel::Project, None) => {
                return Err(AuthError::Invalid("a project robot names its project".into()));
            }
            (RobotLevel::System, _) => (format!("robot${}", new.name), None),
        };
        self.check_permissions(&new.permissions).await?;
        let secret = match new.secret {
            Some(s) => {
                check_password(&s)?;
                s
            }
            None => random_id(24)?,
        };
        let now = self.now();
        let robot = Robot {
            id: 0,
            name: full_name,
            description: new.description,
            level: new.level,
            project_id,
            secret_hash: hash_secret(&secret).await?,
            permissions: new.permissions,
            disabled: new.disabled,
            expires_at: new.duration_days.map(|d| now + d * 86_400),
            creator: new.creator,
            created_at: now,
            updated_at: now,
        };
        let event = self.event(EventAction::CreateRobot, robot_resource(&robot.name));
        Ok((self.store.create_robot(robot, &event).await?, secret))
    }

    /// Every namespace a permission names must exist (or be `*`), every access be named.
    async fn check_permissions(&self, permissions: &[RobotPermission]) -> Result<(), AuthError> {
        if permissions.is_empty() {
            return Err(AuthError::Invalid("a robot needs at least one permission".into()));
        }
        for p in permissions {
            if !matches!(p.kind.as_str(), "project" | "system") {
                return Err(AuthError::Invalid(format!("unknown permission kind {:?} (project, system)", p.kind)));
            }
            if p.kind == "project" && p.namespace != "*" && self.project(&p.namespace).await?.is_none() {
                return Err(AuthError::not_found(format!("project {}", p.namespace)));
            }
            if p.access.is_empty() || p.access.iter().any(|a| a.resource.is_empty() || a.action.is_empty()) {
                return Err(AuthError::Invalid(format!(
                    "the permission in {} needs accesses with a resource and an action",
                    p.namespace
                )));
            }
        }
        Ok(())
    }

    /// All robots (of one project, when given), by id.
    pub async fn robots(&self, project: Option<&str>) -> Result<Vec<Robot>, AuthError> {
        let project_id = match project {
            Some(name) => Some(self.existing_project(name).await?.id),
            None => None,
        };
        let all = self.store.robots().await?;
        Ok(all.into_iter().filter(|r| project_id.is_none_or(|id| r.project_id == Some(id))).collect())
    }

    /// A robot by full name.
    pub async fn robot(&self, name: &str) -> Result<Option<Robot>, AuthError> {
        self.store.robot_by_name(name).await
    }

    /// A robot by id.
    pub async fn robot_by_id(&self, id: Id) -> Result<Option<Robot>, AuthError> {
        self.store.robot(id).await
    }

    async fn existing_robot(&self, id: Id) -> Result<Robot, AuthError> {
        self.robot_by_id(id).await?.ok_or_else(|| AuthError::not_found(format!("robot {id}")))
    }

    /// Changes a robot's description, state, permissions and lifetime (days from its creation;
    /// `Some(None)` for never).
    pub async fn update_robot(
        &self,
        id: Id,
        description: Option<String>,
        disabled: Option<bool>,
        permissions: Option<Vec<RobotPermission>>,
        duration_days: Option<Option<u64>>,
    ) -> Result<Robot, AuthError> {
        let mut robot = self.existing_robot(id).await?;
        if let Some(d) = description {
            robot.description = d;
        }
        if let Some(d) = disabled {
            robot.disabled = d;
        }
        if let Some(permissions) = permissions {
            self.check_permissions(&permissions).await?;
            if let Some(project_id) = robot.project_id {
                let project = self.project_by_id(project_id).await?.map(|p| p.name).unwrap_or_default();
                if permissions.iter().any(|p| p.kind != "project" || p.namespace != project) {
                    return Err(AuthError::Invalid(format!(
                        "a robot of project {project} has permissions in that project only"
                    )));
                }
            }
            robot.permissions = permissions;
        }
        if let Some(days) = duration_days {
            robot.expires_at = days.map(|d| robot.created_at + d * 86_400);
        }
        robot.updated_at = self.now();
        self.store.update_robot(&robot, &self.event(EventAction::UpdateRobot, robot_resource(&robot.name))).await?;
        Ok(robot)
    }

    /// Gives a robot a new secret (`secret`, or a random one); returns it, shown this once.
    pub async fn refresh_robot_secret(&self, id: Id, secret: Option<String>) -> Result<String, AuthError> {
        let mut robot = self.existing_robot(id).await?;
        let secret = match secret {
            Some(s) => {
                check_password(&s)?;
                s
            }
            None => random_id(24)?,
        };
        robot.secret_hash = hash_secret(&secret).await?;
        robot.updated_at = self.now();
        self.store.update_robot(&robot, &self.event(EventAction::UpdateRobot, robot_resource(&robot.name))).await?;
        Ok(secret)
    }

    /// Removes a robot by full name.
    pub async fn remove_robot(&self, name: &str) -> Result<(), AuthError> {
        let robot = self.robot(name).await?.ok_or_else(|| AuthError::not_found(format!("robot {name}")))?;
        self.remove_robot_by_id(robot.id).await
    }

    /// Removes a robot by id.
    pub async fn remove_robot_by_id(&self, id: Id) -> Result<(), AuthError> {
        let robot = self.existing_robot(id).await?;
        let event = self.event(EventAction::DeleteRobot, robot_resource(&robot.name));
        if self.store.delete_robot(id, &event).await? {
            Ok(())
        } else {
            Err(AuthError::not_found(format!("robot {id}")))
        }
    }
}

/// The resource of an event on a robot: its name, and the project of a project robot
/// (`robot$<project>+<name>`).
fn robot_resource(name: &str) -> Resource {
    let project = name.strip_prefix("robot$").and_then(|rest| rest.split_once('+')).map(|(p, _)| p.to_owned());
    Resource { project, name: Some(name.to_owned()), ..Resource::default() }
}
