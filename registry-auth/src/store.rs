//! [`AccountStore`]: where users, projects, members, robots and login state are kept.
//!
//! A store only keeps records; the rules (name grammar, password length, hashing, lockout, who may
//! do what) live in [`Accounts`](crate::Accounts) above it, so every backend enforces the same
//! ones. Implementations: [`MemoryAccountStore`](crate::MemoryAccountStore) here, the embedded
//! redb store and the PostgreSQL store in their crates. The conformance suite any implementation
//! must pass is `registry_auth::testing::account_store_suite` (feature `testing`).
//!
//! Every method is one transaction. Creating assigns the record's id (the one passed is
//! ignored) and fails with [`AuthError::Conflict`] when the name is taken; deleting a user or a
//! group takes their memberships, deleting a project its members and project robots, in the same
//! transaction.
//! Every change is given the events that record it (`registry_core::event`), which the store
//! writes in the same transaction, when the change happens (a deletion of nothing records
//! nothing): a store that is also the metadata store writes them to its event stream.

use async_trait::async_trait;

use registry_core::event::Event;

use crate::error::AuthError;
use crate::model::{Id, LoginFailures, Member, Project, Robot, User, UserGroup};

/// The result type of account stores.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Storage for accounts.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user; the stored record, with its id.
    async fn create_user(&self, user: User, events: &[Event]) -> Result<User>;
    /// A user by id.
    async fn user(&self, id: Id) -> Result<Option<User>>;
    /// A user by name.
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    /// All users, by id.
    async fn users(&self) -> Result<Vec<User>>;
    /// The user linked to an OpenID Connect provider's `subject` at `issuer` (asked when someone
    /// signs in in the browser). The default reads every user; a store with many should index it.
    async fn user_by_subject(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        Ok(self
            .users()
            .await?
            .into_iter()
            .find(|u| u.oidc.as_ref().is_some_and(|l| l.issuer == issuer && l.subject == subject)))
    }
    /// Replaces a user's record (same id and name); [`AuthError::NotFound`] if it is gone.
    async fn update_user(&self, user: &User, events: &[Event]) -> Result<()>;
    /// Deletes a user and their memberships; `false` if absent.
    async fn delete_user(&self, id: Id, events: &[Event]) -> Result<bool>;

    /// Creates a project; the stored record, with its id.
    async fn create_project(&self, project: Project, events: &[Event]) -> Result<Project>;
    /// A project by id.
    async fn project(&self, id: Id) -> Result<Option<Project>>;
    /// A project by name.
    async fn project_by_name(&self, name: &str) -> Result<Option<Project>>;
    /// When the project named `name` was created (seconds since the epoch), if it exists: asked
    /// on every authorized request, so stores answer it without building the whole record.
    async fn project_created_at(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.project_by_name(name).await?.map(|p| p.created_at))
    }
    /// All projects, by name.
    async fn projects(&self) -> Result<Vec<Project>>;
    /// Replaces a project's record (same id and name); [`AuthError::NotFound`] if it is gone.
    async fn update_project(&self, project: &Project, events: &[Event]) -> Result<()>;
    /// Deletes a project with its members and project robots; `false` if absent.
    async fn delete_project(&self, id: Id, events: &[Event]) -> Result<bool>;

    /// Creates a membership; [`AuthError::NotFound`] if the project, user or group is gone,
    /// [`AuthError::Conflict`] if the user or group is a member already.
    async fn create_member(&self, member: Member, events: &[Event]) -> Result<Member>;
    /// The members of a project (users and groups), by id.
    async fn members(&self, project_id: Id) -> Result<Vec<Member>>;
    /// The membership of a user (not of their groups) in a project.
    async fn member(&self, project_id: Id, user_id: Id) -> Result<Option<Member>>;
    /// The memberships of a user (not of their groups).
    async fn memberships(&self, user_id: Id) -> Result<Vec<Member>>;
    /// Replaces a membership (same id, project and entity); [`AuthError::NotFound`] if it is gone.
    async fn update_member(&self, member: &Member, events: &[Event]) -> Result<()>;
    /// Deletes a membership; `false` if absent.
    async fn delete_member(&self, id: Id, events: &[Event]) -> Result<bool>;

    /// Creates a user group; the stored record, with its id. [`AuthError::Conflict`] when a group
    /// of its kind has its [`key`](UserGroup::key) already.
    async fn create_group(&self, group: UserGroup, events: &[Event]) -> Result<UserGroup>;
    /// A user group by id.
    async fn group(&self, id: Id) -> Result<Option<UserGroup>>;
    /// All user groups, by id.
    async fn groups(&self) -> Result<Vec<UserGroup>>;
    /// Replaces a group's record (same id and kind; its key may change, [`AuthError::Conflict`]
    /// when another group has it); [`AuthError::NotFound`] if it is gone.
    async fn update_group(&self, group: &UserGroup, events: &[Event]) -> Result<()>;
    /// Deletes a user group and its memberships; `false` if absent.
    async fn delete_group(&self, id: Id, events: &[Event]) -> Result<bool>;

    /// Creates a robot; the stored record, with its id.
    async fn create_robot(&self, robot: Robot, events: &[Event]) -> Result<Robot>;
    /// A robot by id.
    async fn robot(&self, id: Id) -> Result<Option<Robot>>;
    /// A robot by its full name.
    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>>;
    /// All robots, by id.
    async fn robots(&self) -> Result<Vec<Robot>>;
    /// Replaces a robot's record (same id and name); [`AuthError::NotFound`] if it is gone.
    async fn update_robot(&self, robot: &Robot, events: &[Event]) -> Result<()>;
    /// Deletes a robot; `false` if absent.
    async fn delete_robot(&self, id: Id, events: &[Event]) -> Result<bool>;

    /// The failed logins in a row of an account name (shared by every replica on the store).
    async fn login_failures(&self, name: &str) -> Result<Option<LoginFailures>>;
    /// Sets or clears them.
    async fn set_login_failures(&self, name: &str, failures: Option<LoginFailures>, events: &[Event]) -> Result<()>;
}
