//! # registry-auth
//!
//! Who is asking and what may they do: Harbor's security layer as traits an embedder can replace.
//!
//! | piece | what it is |
//! |---|---|
//! | [`Authenticator`] | credentials -> [`Identity`]: [`Accounts`] (Harbor's accounts), [`Htpasswd`] (bcrypt file), or yours |
//! | [`AccessPolicy`] | identity + requested scope -> granted scope, and the project questions the registry asks; [`Accounts`] implements Harbor's projects and roles |
//! | [`AccountStore`] | where accounts are kept: [`MemoryAccountStore`] here, redb and PostgreSQL in their crates; [`Accounts`] puts Harbor's rules over any of them |
//! | [`model`] | the records: users, projects, members, robots, with Harbor's ids |
//! | [`token`] | ES256/RS256 JWTs per Docker's token-auth spec: [`TokenIssuer`], [`TokenVerifier`], JWKS |
//! | [`TokenService`] | the token endpoint's logic: password, anonymous and refresh-token grants |
//!
//! No HTTP here: `registry-http` maps the token endpoint, the 401 challenge and the management
//! API onto these types.

use async_trait::async_trait;
use registry_core::{Action, Scope};

pub mod accounts;
pub mod error;
pub mod htpasswd;
pub mod identity;
pub mod memory;
pub mod model;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub use accounts::{Accounts, NewRobot, NewUser, ProjectMember};
pub use error::AuthError;
pub use htpasswd::Htpasswd;
pub use identity::{Credentials, Identity};
pub use memory::MemoryAccountStore;
pub use model::{Id, Member, Project, Robot, RobotAccess, RobotLevel, RobotPermission, Role, User};
pub use service::{Grant, TokenRequest, TokenResponse, TokenService};
pub use store::AccountStore;
pub use token::{
    AccessEntry, Claims, KidFormat, PublicKey, TokenError, TokenIssuer, TokenKey, TokenVerifier, VerifiedToken,
};

/// Turns credentials into an identity.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a name and password (or robot secret). Every failure is
    /// [`AuthError::InvalidCredentials`] (or [`AuthError::RateLimited`]), whatever the cause.
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError>;

    /// The identity of an account that may still log in, without a password (for refresh tokens
    /// and for a token's subject). [`AuthError::InvalidCredentials`] when it may not.
    async fn lookup(&self, username: &str) -> Result<Identity, AuthError>;
}

/// What an access policy knows of the project a repository belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectState {
    /// The policy has no projects (a custom policy): nothing to check.
    Unmanaged,
    /// The repository's project does not exist.
    Missing {
        /// The project's name.
        project: String,
    },
    /// It exists, since `created_at` (seconds since the epoch): tokens issued before that never
    /// open it, so a deleted and re-created project is never opened by old tokens.
    Exists {
        /// The project's name.
        project: String,
        /// When it was created.
        created_at: u64,
    },
}

/// Decides what an identity may do. Only [`AccessPolicy::grant`] must be written; the other
/// questions have answers for policies without projects.
#[async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// The part of `requested` that `who` may do (the same resource, with a subset of its actions).
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError>;

    /// The project a repository belongs to (default: [`ProjectState::Unmanaged`]).
    async fn project_state(&self, repository: &str) -> Result<ProjectState, AuthError> {
        let _ = repository;
        Ok(ProjectState::Unmanaged)
    }

    /// Whether `who` may administer `project`: its members, robots and settings (default: system
    /// administrators only).
    async fn may_manage(&self, who: &Identity, project: &str) -> Result<bool, AuthError> {
        let _ = project;
        Ok(who.is_admin())
    }
}

/// Conveniences over any [`AccessPolicy`].
pub trait AccessPolicyExt: AccessPolicy {
    /// Whether `who` may do `action` on `repository`.
    fn may(
        &self,
        who: &Identity,
        repository: &str,
        action: Action,
    ) -> impl std::future::Future<Output = Result<bool, AuthError>> + Send {
        let scope = Scope::repository(repository.to_owned(), [action.clone()]);
        async move { Ok(self.grant(who, &scope).await?.actions.contains(&action)) }
    }
}

impl<P: AccessPolicy + ?Sized> AccessPolicyExt for P {}
