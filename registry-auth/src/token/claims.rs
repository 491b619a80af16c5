//! What a token says: its claims and the header that names its key.

use registry_core::Scope;
use serde::{Deserialize, Serialize};

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Resource type, e.g. `repository`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource name, e.g. `library/app`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl AccessEntry {
    /// The entry of a granted scope (its class, if any, is kept in the type as `type(class)`).
    pub fn from_scope(scope: &Scope) -> AccessEntry {
        let resource_type = match &scope.resource_class {
            Some(class) => format!("{}({class})", scope.resource_type),
            None => scope.resource_type.clone(),
        };
        AccessEntry {
            resource_type,
            name: scope.name.clone(),
            actions: scope.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }
}

/// The claims of a registry token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the token service's name.
    pub iss: String,
    /// Subject: the account the token was issued to (empty for anonymous).
    pub sub: String,
    /// Audience: the registry service the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// What the token grants.
    #[serde(default)]
    pub access: Vec<AccessEntry>,
}

/// The JOSE header of a token.
#[derive(Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) typ: Option<String>,
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    /// The signing key's certificate chain (base64 DER), for registries that verify tokens
    /// against a root bundle (distribution 2.8 and 3.x).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) x5c: Vec<String>,
}
