//! Signing in through someone else: a directory (Harbor's `ldap_auth`) or an OpenID Connect
//! provider (`oidc_auth`). [`Directory`] says which one users sign in through now
//! ([`SignInMode`]) and asks it.
//!
//! - A **directory** checks a name and password and says who the person is;
//!   [`Accounts`](crate::Accounts) then keeps them as a user of origin [`LDAP`], made at their
//!   first sign-in and brought up to date at each.
//! - A **provider** signs people in in their browser (the portal runs that flow and makes them
//!   users of origin [`OIDC`] with a CLI secret, see [`crate::model::OidcLink`]). Command-line
//!   clients sign in with the CLI secret as the password; once the provider's access token has
//!   expired, the provider is asked again ([`Directory::recheck`], its refresh token): a person
//!   it no longer knows loses access here within one access-token lifetime.
//!
//! The system admins made here keep signing in with their own passwords (Harbor's `admin` stays a
//! database user); other local users cannot sign in while a provider is the mode (Harbor's rule);
//! robots are never the directory's nor the provider's.

use async_trait::async_trait;

use crate::error::AuthError;

/// The origin of users the directory signs in.
pub const LDAP: &str = "ldap";
/// The origin of users an OpenID Connect provider signs in.
pub const OIDC: &str = "oidc";

/// Whom users sign in through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMode {
    /// Their passwords here (Harbor's `db_auth`).
    Local,
    /// A directory checks their passwords (`ldap_auth`).
    Directory,
    /// An OpenID Connect provider, in the browser; CLI secrets here (`oidc_auth`).
    Provider,
}

/// What a directory says of a person who signed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The name they sign in with (the directory's spelling).
    pub username: String,
    /// Their entry (a distinguished name; for a provider, their subject).
    pub dn: String,
    /// E-mail address (may be empty).
    pub email: String,
    /// Full name (may be empty).
    pub realname: String,
    /// Whether they belong to the directory's admin group (system admins here).
    pub admin: bool,
    /// The directory's groups they belong to (DNs; for a provider, the groups claim's names):
    /// those that are user groups here give them the groups' memberships.
    pub groups: Vec<String>,
    /// For a provider's user: their link to it as it is to be kept (subject, session). Its
    /// `secret` may be left empty to keep the one the user has.
    pub oidc: Option<crate::model::OidcLink>,
}

/// A directory or provider users sign in through.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Whom users sign in through now (the configured authentication mode; [`SignInMode::Local`]
    /// when it cannot be read).
    async fn mode(&self) -> SignInMode;

    /// Checks `username` and `password` with the directory: their profile when they are right,
    /// `None` when they are not (or the person is not found, or may not sign in). A directory
    /// that cannot be asked is [`AuthError::Unavailable`] naming it (503), never "invalid
    /// credentials".
    async fn verify(&self, username: &str, password: &str) -> Result<Option<Profile>, AuthError>;

    /// Asks the provider whether `user`'s session there still holds (their refresh token) at `now`
    /// (seconds since the epoch, the accounts' clock; the new link's `checked_until` counts from it): their
    /// profile as it says now, with the link to keep, or `None` when it has ended (the person was
    /// removed, the grant revoked). A provider that cannot be asked is
    /// [`AuthError::Unavailable`] naming it (503).
    async fn recheck(&self, user: &crate::model::User, now: u64) -> Result<Option<Profile>, AuthError>;
}
