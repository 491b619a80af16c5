//! The two decisions an embedder may replace: [`Authenticator`] (who is asking) and
//! [`AccessPolicy`] (what they may do), with the project questions the registry asks a policy.

use async_trait::async_trait;
use registry_core::{Action, Scope};

use crate::error::AuthError;
use crate::identity::Identity;

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

    /// Whether `who` may pull every repository of `project`, whatever its name: then a listing
    /// of the project's repositories need not ask [`AccessPolicy::grant`] repository by
    /// repository, and costs a page (default: no, so listings ask for each).
    async fn may_pull_everywhere(&self, who: &Identity, project: &str) -> Result<bool, AuthError> {
        let _ = (who, project);
        Ok(false)
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
