//! Registry endpoints (Harbor's `/registries`): other registries this one talks to — any v2
//! registry (`docker-registry`: distribution, zot, Docker Hub-compatible) or another instance of
//! this registry or Harbor (`harbor`) — with their URL, credential (sealed at rest with the
//! registry's key, never shown), TLS verification on or off and an optional CA certificate. Kept
//! as system policy documents of kind [`KIND`], named by the endpoint's name; the document's id is
//! the endpoint's id. [`client`] checks their health; a [`session`] reads and writes their
//! content (what replication and the proxy cache copy with).

pub mod client;
pub mod session;

use registry_auth::SecretKey;

use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};

use crate::selectors::Invalid;
use crate::ssrf::{self, Reach};

/// The policy kind of endpoints.
pub const KIND: &str = "registry";
/// The endpoint types (Harbor's adapter names).
pub const TYPES: [&str; 2] = ["docker-registry", "harbor"];

/// A registry endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Endpoint {
    /// Its name, unique.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// One of [`TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Its base URL (`https://host[:port]`), without a trailing slash.
    pub url: String,
    /// The user name (empty: anonymous).
    pub access_key: String,
    /// The password or token, sealed.
    pub access_secret: Option<String>,
    /// Accept its certificate without verifying it.
    pub insecure: bool,
    /// A CA certificate (PEM) its certificate is verified against, besides the system's.
    pub ca_certificate: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("type", &self.kind)
            .field("url", &self.url)
            .field("access_key", &self.access_key)
            .field("access_secret", &self.access_secret.as_ref().map(|_| "<sealed>"))
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// Harbor's `Registry` (create) and `RegistryUpdate` in one: what a request may set.
#[derive(Clone, Deserialize, Default)]
#[serde(default)]
pub struct EndpointInput {
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its URL.
    pub url: Option<String>,
    /// Harbor's `credential` object of a create.
    pub credential: Option<CredentialInput>,
    /// `RegistryUpdate`'s `credential_type`.
    pub credential_type: Option<String>,
    /// `RegistryUpdate`'s `access_key`.
    pub access_key: Option<String>,
    /// `RegistryUpdate`'s `access_secret` (in clear; sealed before it is kept).
    pub access_secret: Option<String>,
    /// Skip verifying its certificate.
    pub insecure: Option<bool>,
    /// A CA certificate (PEM).
    pub ca_certificate: Option<String>,
}

impl std::fmt::Debug for EndpointInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointInput").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

/// Harbor's `RegistryCredential`.
#[derive(Clone, Deserialize, Default)]
#[serde(default)]
pub struct CredentialInput {
    /// `basic` (or empty: none).
    #[serde(rename = "type")]
    pub kind: String,
    /// The user name.
    pub access_key: String,
    /// The password or token.
    pub access_secret: String,
}

/// A checked endpoint URL: `http(s)`, a host the endpoint reach allows (public, private and
/// loopback addresses, not link-local ones), no path beyond `/`, query or fragment.
pub fn check_url(url: &str) -> std::result::Result<String, Invalid> {
    let parsed = ssrf::check_address(url.trim(), Reach::Internal).map_err(|e| match e {
        ssrf::Refusal::Unreachable(host) => Invalid(format!(
            "url: {host} is a link-local or unroutable address; registries may be at public, private or \
             loopback addresses"
        )),
        other => Invalid(format!("url: {other}")),
    })?;
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.path().trim_matches('/').is_empty() {
        return Err(Invalid(format!("url {url:?} must be the registry's base URL (scheme, host and port only)")));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

impl Endpoint {
    /// Applies `input` (a create when `self` is new), sealing a secret with `key`.
    pub fn apply(&mut self, input: EndpointInput, key: &SecretKey) -> std::result::Result<(), Invalid> {
        if let Some(name) = input.name {
            self.name = crate::selectors::checked_name(&name)?;
        }
        if self.name.is_empty() {
            return Err(Invalid("a registry endpoint needs a name".into()));
        }
        if let Some(d) = input.description {
            self.description = crate::selectors::checked_description(d)?;
        }
        if let Some(kind) = input.kind {
            if !TYPES.contains(&kind.as_str()) {
                return Err(Invalid(format!("type {kind:?} is unknown; use \"docker-registry\" or \"harbor\"")));
            }
            self.kind = kind;
        }
        if self.kind.is_empty() {
            return Err(Invalid("a registry endpoint needs a type: \"docker-registry\" or \"harbor\"".into()));
        }
        if let Some(url) = input.url {
            self.url = check_url(&url)?;
        }
        if self.url.is_empty() {
            return Err(Invalid("a registry endpoint needs its url (https://host[:port])".into()));
        }
        let (kind, user, secret) = match input.credential {
            Some(c) => (Some(c.kind), Some(c.access_key), Some(c.access_secret)),
            None => (input.credential_type, input.access_key, input.access_secret),
        };
        match kind.as_deref() {
            None | Some("basic") | Some("") => {}
            Some(other) => return Err(Invalid(format!("credential type {other:?} is unknown; use \"basic\""))),
        }
        if let Some(user) = user {
            if user.len() > 255 || user.chars().any(char::is_control) || user.contains(':') {
                return Err(Invalid("access_key must be up to 255 printable characters without ':'".into()));
            }
            if user != self.access_key {
                self.access_secret = None;
            }
            self.access_key = user;
        }
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            if secret.len() > 4096 || secret.chars().any(char::is_control) {
                return Err(Invalid("access_secret must be up to 4096 printable characters".into()));
            }
            self.access_secret = Some(key.seal(&secret).map_err(|e| Invalid(format!("sealing the secret: {e}")))?);
        }
        if self.access_key.is_empty() {
            self.access_secret = None;
        } else if self.access_secret.is_none() {
            return Err(Invalid(format!("access_key {:?} needs its access_secret", self.access_key)));
        }
        if let Some(v) = input.insecure {
            self.insecure = v;
        }
        if let Some(ca) = input.ca_certificate {
            if !ca.trim().is_empty() {
                use rustls_pki_types::pem::PemObject as _;
                let certs: std::result::Result<Vec<_>, _> =
                    rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()).collect();
                if certs.map_or(true, |c| c.is_empty()) || reqwest::Certificate::from_pem(ca.as_bytes()).is_err() {
                    return Err(Invalid(
                        "ca_certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                    ));
                }
            }
            self.ca_certificate = ca.trim().to_owned();
        }
        Ok(())
    }

    /// Its credential in clear: user and secret, when it has one.
    pub fn credential(&self, key: &SecretKey) -> std::result::Result<Option<(String, String)>, String> {
        let Some(sealed) = &self.access_secret else { return Ok(None) };
        let secret = key.open(sealed).map_err(|e| format!("opening the credential of {:?}: {e}", self.name))?;
        Ok(Some((self.access_key.clone(), secret)))
    }
}

impl crate::documents::Document for Endpoint {
    const KIND: &'static str = KIND;

    fn name(&self) -> &str {
        &self.name
    }
}

/// A stored endpoint with its record.
pub type Stored = crate::documents::Stored<Endpoint>;

/// Every endpoint, in the order they were made.
pub async fn all(meta: &dyn MetadataStore) -> Result<Vec<Stored>> {
    crate::documents::all(meta).await
}

/// The endpoint `id`.
pub async fn by_id(meta: &dyn MetadataStore, id: u64) -> Result<Option<Stored>> {
    crate::documents::by_id(meta, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> EndpointInput {
        serde_json::from_value(json).expect("input")
    }

    #[test]
    fn endpoints_are_checked_and_their_secrets_sealed() {
        let key = SecretKey::generate().expect("key");
        let refused = |json| Endpoint::default().apply(input(json), &key).expect_err("refused").0;
        assert!(refused(serde_json::json!({"type": "harbor", "url": "http://a:1"})).contains("name"));
        assert!(refused(serde_json::json!({"name": "n", "url": "http://a:1"})).contains("type"));
        assert!(refused(serde_json::json!({"name": "n", "type": "quay", "url": "http://a:1"})).contains("quay"));
        assert!(refused(serde_json::json!({"name": "n", "type": "harbor"})).contains("url"));
        assert!(
            refused(serde_json::json!({"name": "n", "type": "harbor", "url": "http://169.254.169.254"}))
                .contains("link-local")
        );
        assert!(
            refused(serde_json::json!({"name": "n", "type": "harbor", "url": "http://a:1/v2/x"})).contains("base URL")
        );
        assert!(
            refused(serde_json::json!({"name": "n", "type": "harbor", "url": "http://a:1",
                "credential": {"type": "basic", "access_key": "u", "access_secret": ""}}))
            .contains("access_secret")
        );
        assert!(
            refused(serde_json::json!({"name": "n", "type": "harbor", "url": "http://a:1", "ca_certificate": "nope"}))
                .contains("PEM")
        );
        let mut e = Endpoint::default();
        e.apply(
            input(serde_json::json!({"name": "hub", "type": "docker-registry", "url": "http://127.0.0.1:5000/",
                "credential": {"type": "basic", "access_key": "u", "access_secret": "p4ss"}})),
            &key,
        )
        .expect("applied");
        assert_eq!(e.url, "http://127.0.0.1:5000");
        let sealed = e.access_secret.clone().expect("sealed");
        assert!(!sealed.contains("p4ss") && !format!("{e:?}").contains(&sealed));
        assert_eq!(e.credential(&key).expect("open"), Some(("u".into(), "p4ss".into())));
        // An update without a secret keeps it; another user needs a new one; no user, none.
        e.apply(input(serde_json::json!({"description": "d"})), &key).expect("kept");
        assert_eq!(e.access_secret.as_deref(), Some(sealed.as_str()));
        assert!(e.clone().apply(input(serde_json::json!({"access_key": "v"})), &key).is_err());
        e.apply(input(serde_json::json!({"access_key": ""})), &key).expect("anonymous");
        assert_eq!(e.credential(&key).expect("none"), None);
    }
}
