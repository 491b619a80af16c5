//! Users: creation with a hashed password, profile, admin flag, enabling, password changes.

use registry_core::event::{EventAction, Resource};

use super::{Accounts, check_password, hash_secret, valid_account_name, verify_secret};
use crate::error::AuthError;
use crate::model::{Id, User};

/// A user to create.
#[derive(Clone, Default)]
pub struct NewUser {
    /// The login name.
    pub name: String,
    /// The password (hashed before it is stored).
    pub password: String,
    /// System administrator.
    pub admin: bool,
    /// E-mail address.
    pub email: String,
    /// Full name.
    pub realname: String,
    /// Free text.
    pub comment: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser").field("name", &self.name).field("admin", &self.admin).finish_non_exhaustive()
    }
}

impl Accounts {
    /// Adds a user with a password (hashed with bcrypt).
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) -> Result<User, AuthError> {
        self.create_user(NewUser { name: name.to_owned(), password: password.to_owned(), admin, ..Default::default() })
            .await
    }

    /// Creates a user.
    pub async fn create_user(&self, new: NewUser) -> Result<User, AuthError> {
        if !valid_account_name(&new.name) || new.name.starts_with("robot$") {
            return Err(AuthError::Invalid(format!(
                "invalid user name {:?}: use letters, digits, '.', '_', '-', '@' (at most 255)",
                new.name
            )));
        }
        check_password(&new.password)?;
        let now = self.now();
        let user = User {
            id: 0,
            name: new.name,
            password_hash: hash_secret(&new.password).await?,
            admin: new.admin,
            enabled: true,
            email: new.email,
            realname: new.realname,
            comment: new.comment,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            origin: String::new(),
            groups: Vec::new(),
            oidc: None,
        };
        let event =
            self.event(EventAction::CreateUser, Resource { name: Some(user.name.clone()), ..Resource::default() });
        self.store.create_user(user, &event).await
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> Result<Option<User>, AuthError> {
        self.store.user_by_name(name).await
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: Id) -> Result<Option<User>, AuthError> {
        self.store.user(id).await
    }

    /// All users, by id.
    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        self.store.users().await
    }

    async fn existing_user(&self, name: &str) -> Result<User, AuthError> {
        self.user(name).await?.ok_or_else(|| AuthError::not_found(format!("user {name}")))
    }

    /// Refuses a change that would leave no enabled system administrator.
    async fn keep_an_admin(&self, changing: &User) -> Result<(), AuthError> {
        if !(changing.admin && changing.enabled) {
            return Ok(());
        }
        let others = self.users().await?.into_iter().filter(|u| u.id != changing.id && u.admin && u.enabled).count();
        if others == 0 {
            return Err(AuthError::Precondition(format!(
                "{} is the last enabled system administrator; make another user one first",
                changing.name
            )));
        }
        Ok(())
    }

    /// Enables or disables a user.
    pub async fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<(), AuthError> {
        let mut user = self.existing_user(name).await?;
        if !enabled {
            self.keep_an_admin(&user).await?;
        }
        user.enabled = enabled;
        user.updated_at = self.now();
        self.store.update_user(&user, &self.user_event(&user.name)).await
    }

    /// Grants or revokes system administration.
    pub async fn set_admin(&self, name: &str, admin: bool) -> Result<User, AuthError> {
        let mut user = self.existing_user(name).await?;
        if !admin {
            self.keep_an_admin(&user).await?;
        }
        user.admin = admin;
        user.updated_at = self.now();
        self.store.update_user(&user, &self.user_event(&user.name)).await?;
        Ok(user)
    }

    /// Replaces a user's e-mail, full name and comment.
    pub async fn update_profile(
        &self,
        name: &str,
        email: Option<String>,
        realname: Option<String>,
        comment: Option<String>,
    ) -> Result<User, AuthError> {
        let mut user = self.existing_user(name).await?;
        if let Some(email) = email {
            user.email = email;
        }
        if let Some(realname) = realname {
            user.realname = realname;
        }
        if let Some(comment) = comment {
            user.comment = comment;
        }
        user.updated_at = self.now();
        self.store.update_user(&user, &self.user_event(&user.name)).await?;
        Ok(user)
    }

    /// Changes a user's password. `old` is required (and checked) unless the caller is a system
    /// administrator setting someone's password; the new one must differ from the old one. Clears
    /// the account's failed logins.
    pub async fn change_password(&self, name: &str, old: Option<&str>, new: &str) -> Result<(), AuthError> {
        let mut user = self.existing_user(name).await?;
        if user.origin == crate::directory::LDAP {
            return Err(AuthError::Precondition(format!(
                "{name} signs in through the LDAP directory: change the password there"
            )));
        }
        if user.origin == crate::directory::OIDC {
            return Err(AuthError::Precondition(format!(
                "{name} signs in through the OIDC provider: set a new CLI secret instead (PUT /users/{}/cli_secret)",
                user.id
            )));
        }
        if let Some(old) = old
            && !verify_secret(old, Some(&user.password_hash)).await
        {
            return Err(AuthError::Invalid("the old password is wrong".into()));
        }
        check_password(new)?;
        if verify_secret(new, Some(&user.password_hash)).await {
            return Err(AuthError::Invalid("the new password is the same as the old one".into()));
        }
        user.password_hash = hash_secret(new).await?;
        // Strictly after its creation, even within the same second: "the password printed at the
        // first start was changed" is then `password_changed_at > created_at`.
        user.password_changed_at = self.now().max(user.created_at + 1);
        user.updated_at = user.password_changed_at;
        self.store.update_user(&user, &self.user_event(&user.name)).await?;
        self.store.set_login_failures(name, None, &[]).await
    }

    /// Sets a password without the old one (an operator's reset from the command line).
    pub async fn reset_password(&self, name: &str, new: &str) -> Result<(), AuthError> {
        self.change_password(name, None, new).await
    }

    /// Removes a user and their memberships. The last enabled system administrator stays.
    pub async fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let user = self.existing_user(name).await?;
        self.keep_an_admin(&user).await?;
        let event =
            self.event(EventAction::DeleteUser, Resource { name: Some(user.name.clone()), ..Resource::default() });
        if self.store.delete_user(user.id, &event).await? {
            Ok(())
        } else {
            Err(AuthError::not_found(format!("user {name}")))
        }
    }

    /// Whether `user`'s password is `password` (for callers that confirm a password).
    pub async fn check_password(&self, user: &User, password: &str) -> bool {
        verify_secret(password, Some(&user.password_hash)).await
    }
}

impl Accounts {
    /// The event of a change to user `name`.
    pub(super) fn user_event(&self, name: &str) -> [registry_core::event::Event; 1] {
        self.event(EventAction::UpdateUser, Resource { name: Some(name.to_owned()), ..Resource::default() })
    }
}
