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

pub mod accounts;
pub mod directory;
pub mod error;
pub mod htpasswd;
pub mod identity;
pub mod memory;
pub mod model;
pub mod policy;
pub mod sealed;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub use accounts::{Accounts, NewRobot, NewUser, ProjectMember};
pub use directory::{Directory, Profile, SignInMode};
pub use error::AuthError;
pub use htpasswd::Htpasswd;
pub use identity::{Credentials, Identity};
pub use memory::MemoryAccountStore;
pub use model::{
    Entity, GroupKind, Id, Member, OidcLink, Project, Robot, RobotAccess, RobotLevel, RobotPermission, Role, User,
    UserGroup,
};
pub use policy::{AccessPolicy, AccessPolicyExt, Authenticator, ProjectState};
pub use sealed::{SealError, SecretKey};
pub use service::{Grant, TokenRequest, TokenResponse, TokenService};
pub use store::AccountStore;
pub use token::{
    AccessEntry, Claims, KidFormat, PublicKey, TokenError, TokenIssuer, TokenKey, TokenVerifier, VerifiedToken,
};
