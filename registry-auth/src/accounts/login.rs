//! Logging in: checking a password or robot secret, the lockout after repeated failures, and the
//! identity of an account that may still log in.

use async_trait::async_trait;

use super::{Accounts, LOCKOUT, MAX_FAILURES, NewUser, verify_secret};
use crate::directory::{LDAP, Profile};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::model::{LoginFailures, User};
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
        if username.starts_with("robot$") {
            let hash = self.robot(username).await?.map(|r| r.secret_hash);
            return self.checked(username, verify_secret(password, hash.as_ref()).await).await;
        }
        let user = self.user(username).await?;
        if let Some(directory) = &self.directory
            && directory.active().await
            && !user.as_ref().is_some_and(|u| u.admin && u.origin.is_empty())
        {
            // The directory's: the system admins made here keep their own passwords.
            let profile = match directory.verify(username, password).await {
                Ok(profile) => profile,
                Err(e) => {
                    tracing::warn!(user = username, error = %e, "the directory could not check a sign-in");
                    return Err(e);
                }
            };
            let Some(profile) = profile else { return self.checked(username, false).await };
            self.record_login(username, true).await?;
            let user = self.onboard(user, &profile).await?;
            return self.active_identity(&user.name).await;
        }
        let hash = user.filter(|u| u.origin.is_empty()).map(|u| u.password_hash);
        self.checked(username, verify_secret(password, hash.as_ref()).await).await
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        self.active_identity(username).await
    }
}

impl Accounts {
    /// Makes the user a directory person signs in as before their first sign-in (Harbor's LDAP
    /// import), or brings it up to date.
    pub async fn import_directory_user(&self, profile: &Profile) -> Result<User, AuthError> {
        let existing = self.user(&profile.username).await?;
        self.onboard(existing, profile).await
    }

    /// Records the outcome of a password check; the identity when it succeeded.
    async fn checked(&self, username: &str, ok: bool) -> Result<Identity, AuthError> {
        self.record_login(username, ok).await?;
        if !ok {
            return Err(AuthError::InvalidCredentials);
        }
        self.active_identity(username).await
    }

    /// The user the directory signed in as `profile`: made at the first sign-in (with a password
    /// that matches nothing), its e-mail, name and admin flag brought up to date at the others.
    async fn onboard(&self, existing: Option<User>, profile: &Profile) -> Result<User, AuthError> {
        let Some(mut user) = existing else {
            let mut made = self
                .create_user(NewUser {
                    name: profile.username.clone(),
                    password: crate::token::random_id(48)?,
                    admin: profile.admin,
                    email: profile.email.clone(),
                    realname: profile.realname.clone(),
                    comment: format!("signed in through the directory as {}", profile.dn),
                })
                .await?;
            made.origin = LDAP.into();
            self.store.update_user(&made, &[]).await?;
            return Ok(made);
        };
        let (email, realname) = (&profile.email, &profile.realname);
        let changed = user.origin != LDAP
            || (!email.is_empty() && &user.email != email)
            || (!realname.is_empty() && &user.realname != realname)
            || user.admin != profile.admin;
        if changed {
            user.origin = LDAP.into();
            if !email.is_empty() {
                user.email.clone_from(email);
            }
            if !realname.is_empty() {
                user.realname.clone_from(realname);
            }
            user.admin = profile.admin;
            user.updated_at = self.now();
            self.store.update_user(&user, &self.user_event(&user.name)).await?;
        }
        Ok(user)
    }
}
