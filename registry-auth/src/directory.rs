//! Signing in through a directory (Harbor's `ldap_auth` mode): [`Directory`] checks a name and
//! password with the directory and says who the person is; [`Accounts`](crate::Accounts) then
//! keeps them as a user of origin [`LDAP`], made at their first sign-in and brought up to date at
//! each. The system admins made here keep signing in with their own passwords (Harbor's `admin`
//! stays a database user), and robots are never the directory's.

use async_trait::async_trait;

use crate::error::AuthError;

/// The origin of users the directory signs in.
pub const LDAP: &str = "ldap";

/// What a directory says of a person who signed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The name they sign in with (the directory's spelling).
    pub username: String,
    /// Their entry (a distinguished name).
    pub dn: String,
    /// E-mail address (may be empty).
    pub email: String,
    /// Full name (may be empty).
    pub realname: String,
    /// Whether they belong to the directory's admin group (system admins here).
    pub admin: bool,
    /// The directory's groups they belong to (DNs): those that are user groups here give them
    /// the groups' memberships.
    pub groups: Vec<String>,
}

/// A directory users sign in through.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Whether users sign in through it now (the configured authentication mode).
    async fn active(&self) -> bool;

    /// Checks `username` and `password` with the directory: their profile when they are right,
    /// `None` when they are not (or the person is not found, or may not sign in). A directory
    /// that cannot be asked is [`AuthError::Unavailable`] naming it (503), never "invalid
    /// credentials".
    async fn verify(&self, username: &str, password: &str) -> Result<Option<Profile>, AuthError>;
}
