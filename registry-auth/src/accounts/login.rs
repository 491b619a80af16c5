//! Logging in: checking a password or robot secret, the lockout after repeated failures, and the
//! identity of an account that may still log in.

use async_trait::async_trait;

use super::{Accounts, LOCKOUT, MAX_FAILURES, verify_secret};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::model::LoginFailures;
use crate::policy::Authenticator;

impl Accounts {
    /// Refuses an account locked by repeated failures.
    async fn check_lockout(&self, name: &str) -> Result<(), AuthError> {
        if let Some(f) = self.store.login_failures(name).await?
            && f.count >= MAX_FAILURES
        {
            let elapsed = self.now().saturating_sub(f.last_at);
            if elapsed < LOCKOUT.as_secs() {
                return Err(AuthError::RateLimited { retry_after_secs: (LOCKOUT.as_secs() - elapsed).max(1) });
            }
        }
        Ok(())
    }

    /// Counts a failed login, or clears the count after a successful one.
    async fn record_login(&self, name: &str, ok: bool) -> Result<(), AuthError> {
        let current = self.store.login_failures(name).await?;
        if ok {
            if current.is_some() {
                self.store.set_login_failures(name, None, &[]).await?;
            }
            return Ok(());
        }
        let now = self.now();
        let count = match current {
            // A lock that has run out starts a new count.
            Some(f) if f.count < MAX_FAILURES || now.saturating_sub(f.last_at) < LOCKOUT.as_secs() => f.count + 1,
            _ => 1,
        };
        self.store.set_login_failures(name, Some(LoginFailures { count, last_at: now }), &[]).await
    }

    /// The identity of an account by name, if it may still log in (used for refresh tokens and to
    /// resolve a token's subject).
    pub async fn active_identity(&self, name: &str) -> Result<Identity, AuthError> {
        if name.starts_with("robot$") {
            let Some(robot) = self.robot(name).await? else { return Err(AuthError::InvalidCredentials) };
            if robot.disabled || robot.expires_at.is_some_and(|e| e <= self.now()) {
                return Err(AuthError::InvalidCredentials);
            }
            return Ok(Identity::Robot { name: robot.name, permissions: robot.permissions });
        }
        match self.user(name).await? {
            Some(u) if u.enabled => Ok(Identity::User { name: u.name, admin: u.admin }),
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

#[async_trait]
impl Authenticator for Accounts {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        self.check_lockout(username).await?;
        let hash = if username.starts_with("robot$") {
            self.robot(username).await?.map(|r| r.secret_hash)
        } else {
            self.user(username).await?.map(|u| u.password_hash)
        };
        let ok = verify_secret(password, hash.as_ref()).await;
        self.record_login(username, ok).await?;
        if !ok {
            return Err(AuthError::InvalidCredentials);
        }
        self.active_identity(username).await
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        self.active_identity(username).await
    }
}
