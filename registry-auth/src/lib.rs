//! # registry-auth
//!
//! Who is asking and what may they do: Harbor's security layer as traits an embedder can replace.
//!
//! | piece | what it is |
//! |---|---|
//! | [`Authenticator`] | credentials -> [`Identity`]: [`Accounts`] (the built-in database), [`Htpasswd`] (bcrypt file) |
//! | [`AccessPolicy`] | identity + requested scope -> granted scope: [`Accounts`] implements Harbor's projects and roles |
//! | [`token`] | ES256 JWTs per Docker's token-auth spec: [`TokenIssuer`], [`TokenVerifier`], JWKS |
//! | [`TokenService`] | the token endpoint's logic: password, anonymous and refresh-token grants |
//! | [`accounts`] | users, projects, members, robots in redb |
//!
//! No HTTP here: `registry-http` maps the token endpoint and the 401 challenge onto these types.

use async_trait::async_trait;
use registry_core::Scope;

pub mod accounts;
pub mod error;
pub mod htpasswd;
pub mod identity;
pub mod service;
pub mod token;

pub use accounts::{Accounts, RobotPermission, Role};
pub use error::AuthError;
pub use htpasswd::Htpasswd;
pub use identity::{Credentials, Identity};
pub use service::{Grant, TokenRequest, TokenResponse, TokenService};
pub use token::{AccessEntry, Claims, KidFormat, PublicKey, TokenIssuer, TokenKey, TokenVerifier, VerifiedToken};

/// Turns credentials into an identity.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a name and password (or robot secret). Every failure is
    /// [`AuthError::InvalidCredentials`] (or [`AuthError::RateLimited`]), whatever the cause.
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError>;

    /// The identity of an account that may still log in, without a password (for refresh tokens).
    async fn lookup(&self, username: &str) -> Result<Identity, AuthError>;
}

/// Decides what an identity may do.
#[async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// The part of `requested` that `who` may do (the same resource, with a subset of its actions).
    async fn grant(&self, who: &Identity, requested: &Scope) -> Result<Scope, AuthError>;
}
