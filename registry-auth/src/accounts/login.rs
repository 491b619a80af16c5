//! Logging in: checking a password or robot secret, the lockout after repeated failures, and the
//! identity of an account that may still log in.

use async_trait::async_trait;

use super::{Accounts, LOCKOUT, MAX_FAILURES, NewUser, verify_secret};
use crate::directory::{Directory, LDAP, OIDC, Profile, SignInMode};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::model::{GroupKind, LoginFailures, User};
use crate::policy::Authenticator;

/// An account being signed in: its failures so far (read once) and its record.
struct Attempt<'a> {
    name: &'a str,
    failures: Option<LoginFailures>,
}

impl Accounts {
    /// Reads the failures of `name` and refuses an account locked by them.
    async fn attempt<'a>(&self, name: &'a str) -> Result<Attempt<'a>, AuthError> {
        let failures = self.store.login_failures(name).await?;
        if let Some(f) = &failures
            && f.count >= MAX_FAILURES
        {
            let elapsed = self.now().saturating_sub(f.last_at);
            if elapsed < LOCKOUT.as_secs() {
                return Err(AuthError::RateLimited { retry_after_secs: (LOCKOUT.as_secs() - elapsed).max(1) });
            }
        }
        Ok(Attempt { name, failures })
    }

    /// Clears the count of failures after a successful sign-in (a write only when there were).
    async fn succeeded(&self, attempt: &Attempt<'_>) -> Result<(), AuthError> {
        if attempt.failures.is_some() {
            self.store.set_login_failures(attempt.name, None, &[]).await?;
        }
        Ok(())
    }

    /// Counts a failed sign-in; always [`AuthError::InvalidCredentials`].
    async fn failed(&self, attempt: &Attempt<'_>) -> Result<Identity, AuthError> {
        let now = self.now();
        let count = match &attempt.failures {
            // A lock that has run out starts a new count.
            Some(f) if f.count < MAX_FAILURES || now.saturating_sub(f.last_at) < LOCKOUT.as_secs() => f.count + 1,
            _ => 1,
        };
        self.store.set_login_failures(attempt.name, Some(LoginFailures { count, last_at: now }), &[]).await?;
        Err(AuthError::InvalidCredentials)
    }

    /// The identity of a user record, if it may sign in.
    fn user_identity(user: &User) -> Result<Identity, AuthError> {
        match user.enabled {
            true => Ok(Identity::User { name: user.name.clone(), admin: user.admin }),
            false => Err(AuthError::InvalidCredentials),
        }
    }

    /// The identity of a robot record, if it may sign in.
    fn robot_identity(&self, robot: &crate::model::Robot) -> Result<Identity, AuthError> {
        if robot.disabled || robot.expires_at.is_some_and(|e| e <= self.now()) {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(Identity::Robot { name: robot.name.clone(), permissions: robot.permissions.clone() })
    }

    /// The identity of an account by name, if it may still log in (used for refresh tokens and to
    /// resolve a token's subject).
    pub async fn active_identity(&self, name: &str) -> Result<Identity, AuthError> {
        if name.starts_with("robot$") {
            let Some(robot) = self.robot(name).await? else { return Err(AuthError::InvalidCredentials) };
            return self.robot_identity(&robot);
        }
        match self.user(name).await? {
            Some(u) => Accounts::user_identity(&u),
            None => Err(AuthError::InvalidCredentials),
        }
    }
}

#[async_trait]
impl Authenticator for Accounts {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        let attempt = self.attempt(username).await?;
        if username.starts_with("robot$") {
            let robot = self.robot(username).await?;
            let hash = robot.as_ref().map(|r| r.secret_hash.as_str());
            if !self.password_matches(username, password, hash).await {
                return self.failed(&attempt).await;
            }
            self.succeeded(&attempt).await?;
            return robot.map_or(Err(AuthError::InvalidCredentials), |r| self.robot_identity(&r));
        }
        let user = self.user(username).await?;
        let local_admin = user.as_ref().is_some_and(|u| u.admin && u.origin.is_empty());
        // The directory's or the provider's: the system admins made here keep their passwords.
        let mode = match &self.directory {
            Some(directory) if !local_admin => Some((directory, directory.mode().await)),
            _ => None,
        };
        match mode {
            Some((directory, SignInMode::Directory)) => {
                return self.directory_sign_in(&attempt, directory.as_ref(), user, password).await;
            }
            Some((directory, SignInMode::Provider)) => {
                return self.provider_sign_in(&attempt, directory.as_ref(), user, password).await;
            }
            Some((_, SignInMode::Local)) | None => {}
        }
        let user = user.filter(|u| u.origin.is_empty());
        if !self.password_matches(username, password, user.as_ref().map(|u| u.password_hash.as_str())).await {
            return self.failed(&attempt).await;
        }
        self.succeeded(&attempt).await?;
        user.map_or(Err(AuthError::InvalidCredentials), |u| Accounts::user_identity(&u))
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        self.active_identity(username).await
    }
}

impl Accounts {
    /// Signs `user` in through the directory, which checks the password.
    async fn directory_sign_in(
        &self,
        attempt: &Attempt<'_>,
        directory: &dyn Directory,
        user: Option<User>,
        password: &str,
    ) -> Result<Identity, AuthError> {
        let username = attempt.name;
        if let Some(known) = user.as_ref().filter(|u| u.origin == LDAP)
            && self.verified.holds(username, password, known.password_hash.as_str())
        {
            self.succeeded(attempt).await?;
            return Accounts::user_identity(known);
        }
        let profile = match directory.verify(username, password).await {
            Ok(profile) => profile,
            Err(e) => {
                tracing::warn!(user = username, error = %e, "the directory could not check a sign-in");
                return Err(e);
            }
        };
        let Some(profile) = profile else { return self.failed(attempt).await };
        self.succeeded(attempt).await?;
        let user = self.onboard(user, &profile).await?;
        let identity = Accounts::user_identity(&user)?;
        self.verified.record(username, password, user.password_hash.as_str());
        Ok(identity)
    }

    /// Signs a provider's user in with their CLI secret; once the provider's last access token
    /// has expired, the provider is asked whether their session still holds (one sign-in at a
    /// time per user, so a rotating refresh token is used once).
    async fn provider_sign_in(
        &self,
        attempt: &Attempt<'_>,
        provider: &dyn Directory,
        user: Option<User>,
        secret: &str,
    ) -> Result<Identity, AuthError> {
        let user = user.filter(|u| u.origin == OIDC && u.oidc.is_some());
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        if !self.password_matches(attempt.name, secret, hash).await {
            return self.failed(attempt).await;
        }
        self.succeeded(attempt).await?;
        let Some(user) = user else { return Err(AuthError::InvalidCredentials) };
        Accounts::user_identity(&user)?;
        if user.oidc.as_ref().is_some_and(|l| l.checked_until > self.now()) {
            return Accounts::user_identity(&user);
        }
        let _turn = self.verified.turn(attempt.name, "\0provider session").await;
        // Another sign-in may have asked meanwhile.
        let Some(user) = self.user(attempt.name).await?.filter(|u| u.origin == OIDC) else {
            return Err(AuthError::InvalidCredentials);
        };
        if user.oidc.as_ref().is_some_and(|l| l.checked_until > self.now()) {
            return Accounts::user_identity(&user);
        }
        match provider.recheck(&user, self.now()).await {
            Ok(Some(profile)) => Accounts::user_identity(&self.onboard(Some(user), &profile).await?),
            Ok(None) => {
                tracing::info!(user = attempt.name, "the provider ended the session of a CLI sign-in");
                Err(AuthError::InvalidCredentials)
            }
            Err(e) => {
                tracing::warn!(user = attempt.name, error = %e, "the provider could not check a CLI sign-in");
                Err(e)
            }
        }
    }

    /// The user signed in through the provider whose link has `issuer` and `subject`, if any.
    pub async fn provider_user(&self, issuer: &str, subject: &str) -> Result<Option<User>, AuthError> {
        self.store.user_by_subject(issuer, subject).await
    }

    /// Makes the user a provider signed in as `profile` for the first time (Harbor's
    /// onboarding), named `profile.username`, with the CLI secret `secret` (its sealed copy is
    /// the link's): [`AuthError::Conflict`] when the name is taken.
    pub async fn onboard_provider_user(&self, profile: &Profile, secret: &str) -> Result<User, AuthError> {
        let Some(link) = &profile.oidc else {
            return Err(AuthError::Invalid("a provider's user needs its link to the provider".into()));
        };
        if self.provider_user(&link.issuer, &link.subject).await?.is_some() {
            return Err(AuthError::conflict(format!("a user for the provider's subject {}", link.subject)));
        }
        let groups = self.resolve_groups(GroupKind::Oidc, &profile.groups, true).await?;
        let mut made = self
            .create_user(NewUser {
                name: profile.username.clone(),
                password: secret.to_owned(),
                admin: profile.admin,
                email: profile.email.clone(),
                realname: profile.realname.clone(),
                comment: format!("signed in through {}", link.issuer),
            })
            .await?;
        made.origin = OIDC.into();
        made.groups = groups;
        made.oidc = Some(link.clone());
        self.store.update_user(&made, &[]).await?;
        Ok(made)
    }

    /// Brings a provider's user up to date after a sign-in in the browser (profile, groups,
    /// admin flag, session).
    pub async fn update_provider_user(&self, user: User, profile: &Profile) -> Result<User, AuthError> {
        self.onboard(Some(user), profile).await
    }

    /// Sets the CLI secret of a provider's user (`sealed` is its copy the portal shows).
    pub async fn set_cli_secret(&self, name: &str, secret: &str, sealed: &str) -> Result<User, AuthError> {
        super::check_password(secret)?;
        let mut user = self.user(name).await?.ok_or_else(|| AuthError::not_found(format!("user {name}")))?;
        let Some(link) = user.oidc.as_mut() else {
            return Err(AuthError::Precondition(format!(
                "{name} does not sign in through an OIDC provider: only those users have CLI secrets"
            )));
        };
        link.secret = sealed.to_owned();
        user.password_hash = super::hash_secret(secret).await?;
        user.password_changed_at = self.now();
        user.updated_at = self.now();
        self.store.update_user(&user, &self.user_event(&user.name)).await?;
        Ok(user)
    }

    /// Makes the user a directory person signs in as before their first sign-in (Harbor's LDAP
    /// import), or brings it up to date.
    pub async fn import_directory_user(&self, profile: &Profile) -> Result<User, AuthError> {
        let existing = self.user(&profile.username).await?;
        self.onboard(existing, profile).await
    }

    /// Whether `password` matches the account's stored `hash`: bcrypt (against a dummy hash
    /// when there is no account, so both cost the same), unless the same check succeeded moments
    /// ago ([`super::verified`]); a success is remembered, and the same credentials arriving
    /// together are verified once.
    async fn password_matches(&self, username: &str, password: &str, hash: Option<&str>) -> bool {
        let Some(hash) = hash else {
            return verify_secret(password, None).await;
        };
        if self.verified.holds(username, password, hash) {
            return true;
        }
        // The same credentials arriving together are verified once.
        let _turn = self.verified.turn(username, password).await;
        if self.verified.holds(username, password, hash) {
            return true;
        }
        self.verified.ran();
        let ok = verify_secret(password, Some(&crate::model::SecretHash::from_stored(hash))).await;
        if ok {
            self.verified.record(username, password, hash);
        }
        ok
    }

    /// The user the directory signed in as `profile`: made at the first sign-in (with a password
    /// that matches nothing), its e-mail, name, admin flag and groups brought up to date at the
    /// others.
    async fn onboard(&self, existing: Option<User>, profile: &Profile) -> Result<User, AuthError> {
        let (origin, kind) = match profile.oidc {
            Some(_) => (OIDC, GroupKind::Oidc),
            None => (LDAP, GroupKind::Ldap),
        };
        // A provider's groups are made here when they are first seen (Harbor's OIDC groups).
        let groups = self.resolve_groups(kind, &profile.groups, kind == GroupKind::Oidc).await?;
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
            made.origin = origin.into();
            made.groups = groups;
            self.store.update_user(&made, &[]).await?;
            return Ok(made);
        };
        let link = profile.oidc.clone().map(|mut link| {
            if link.secret.is_empty()
                && let Some(kept) = &user.oidc
            {
                link.secret.clone_from(&kept.secret);
            }
            link
        });
        let (email, realname) = (&profile.email, &profile.realname);
        let changed = user.origin != origin
            || (!email.is_empty() && &user.email != email)
            || (!realname.is_empty() && &user.realname != realname)
            || user.admin != profile.admin
            || user.groups != groups;
        if changed || (link.is_some() && user.oidc != link) {
            user.groups = groups;
            user.origin = origin.into();
            if !email.is_empty() {
                user.email.clone_from(email);
            }
            if !realname.is_empty() {
                user.realname.clone_from(realname);
            }
            user.admin = profile.admin;
            if link.is_some() {
                user.oidc = link;
            }
            // A session checked again alone changes nothing anyone sees: no event records it.
            let events = match changed {
                true => {
                    user.updated_at = self.now();
                    self.user_event(&user.name).to_vec()
                }
                false => Vec::new(),
            };
            self.store.update_user(&user, &events).await?;
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use crate::Authenticator;
    use crate::accounts::Accounts;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_credentials_arriving_together_are_verified_once() {
        let a = Accounts::in_memory();
        a.add_user("ci", "password1", false).await.expect("user");
        let before = a.verified.runs();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.authenticate("ci", "password1").await })
            })
            .collect();
        for call in calls {
            assert!(call.await.expect("task").is_ok());
        }
        assert_eq!(a.verified.runs() - before, 1, "one bcrypt for eight sign-ins");
        // Wrong passwords are never remembered: each is verified.
        for _ in 0..2 {
            assert!(a.authenticate("ci", "wrong-password").await.is_err());
        }
        assert_eq!(a.verified.runs() - before, 3);
    }
}
