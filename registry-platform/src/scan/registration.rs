//! Scanner registrations (Harbor's `/scanners`): an adapter's URL, how the registry
//! authenticates to it (its credential sealed at rest), whether it is disabled; kept as system
//! policy documents of kind `scanner`, named by their registration name. Which scanner scans a
//! project's artifacts is a binding: the project's own (`/projects/{p}/scanner`), else the
//! system's default; both are documents of kind `scanner_binding`, so setting the default is one
//! write.

use registry_auth::SecretKey;
use registry_core::event::Event;
use registry_storage::policies::{PolicyRecord, SYSTEM};
use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};

use crate::selectors::Invalid;
use crate::ssrf::{self, Reach};

/// The policy kind of registrations.
pub const KIND: &str = "scanner";
/// The policy kind of bindings (system: the default; a project: its scanner).
pub const BINDING: &str = "scanner_binding";
/// The name of a binding document.
const BINDING_NAME: &str = "scanner";
/// How the registry may authenticate to an adapter.
pub const AUTH_TYPES: [&str; 4] = ["", "Basic", "Bearer", "X-ScannerAdapter-API-Key"];

/// A registered scanner.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Registration {
    /// Its identifier (Harbor's `uuid`, the `registration_id` of the API's paths).
    pub uuid: String,
    /// Its name, unique.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// The adapter's base URL (the API is under `<url>/api/v1`).
    pub url: String,
    /// How the registry authenticates: one of [`AUTH_TYPES`].
    pub auth: String,
    /// The credential, sealed: `user:password` for Basic, the token for Bearer, the key for
    /// the API key header.
    pub access_credential: Option<String>,
    /// Accept the adapter's certificate without verifying it.
    pub skip_cert_verify: bool,
    /// Hand the adapter the registry's internal address (kept for Harbor's shape; the registry
    /// has one address).
    pub use_internal_addr: bool,
    /// Disabled scanners scan nothing.
    pub disabled: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("access_credential", &self.access_credential.as_ref().map(|_| "<sealed>"))
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Harbor's `ScannerRegistrationReq`: what a create or update may change.
#[derive(Clone, Deserialize, Default)]
#[serde(default)]
pub struct RegistrationInput {
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// The adapter's URL.
    pub url: Option<String>,
    /// The authentication type.
    pub auth: Option<String>,
    /// The credential in clear (sealed before it is kept; empty or absent keeps the stored one).
    pub access_credential: Option<String>,
    /// Skip verifying the adapter's certificate.
    #[serde(rename = "skip_certVerify", alias = "skip_cert_verify")]
    pub skip_cert_verify: Option<bool>,
    /// Harbor's internal-address flag.
    pub use_internal_addr: Option<bool>,
    /// Disabled.
    pub disabled: Option<bool>,
}

impl std::fmt::Debug for RegistrationInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationInput").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

/// A checked adapter URL: `http(s)`, a host the adapter reach allows (private and loopback
/// addresses, not link-local ones), no query or fragment; without a trailing slash.
pub fn check_url(url: &str) -> std::result::Result<String, Invalid> {
    let parsed = ssrf::check_address(url.trim(), Reach::Internal).map_err(|e| match e {
        ssrf::Refusal::Unreachable(host) => Invalid(format!(
            "url: {host} is a link-local or unroutable address; scanners may be at public, private or loopback \
             addresses"
        )),
        other => Invalid(format!("url: {other}")),
    })?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Invalid(format!("url {url:?} may not have a query or fragment")));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

impl Registration {
    /// Applies `input` (a create when `self` is new), sealing a credential with `key`.
    pub fn apply(&mut self, input: RegistrationInput, key: &SecretKey) -> std::result::Result<(), Invalid> {
        if let Some(name) = input.name {
            self.name = crate::selectors::checked_name(&name)?;
        }
        if self.name.is_empty() {
            return Err(Invalid("a scanner needs a name".into()));
        }
        if let Some(d) = input.description {
            self.description = crate::selectors::checked_description(d)?;
        }
        if let Some(url) = input.url {
            self.url = check_url(&url)?;
        }
        if self.url.is_empty() {
            return Err(Invalid("a scanner needs its adapter's url (http://host:port)".into()));
        }
        if let Some(auth) = input.auth {
            if !AUTH_TYPES.contains(&auth.as_str()) {
                return Err(Invalid(format!(
                    "auth {auth:?} is unknown; use \"\" (none), \"Basic\", \"Bearer\" or \"X-ScannerAdapter-API-Key\""
                )));
            }
            if auth != self.auth {
                self.access_credential = None;
            }
            self.auth = auth;
        }
        match input.access_credential.filter(|c| !c.is_empty()) {
            Some(credential) if !self.auth.is_empty() => {
                if self.auth == "Basic" && !credential.contains(':') {
                    return Err(Invalid("a Basic access_credential is user:password".into()));
                }
                if !credential.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    return Err(Invalid("access_credential must be printable ASCII".into()));
                }
                self.access_credential =
                    Some(key.seal(&credential).map_err(|e| Invalid(format!("sealing the credential: {e}")))?);
            }
            Some(_) => {}
            None => {}
        }
        if self.auth.is_empty() {
            self.access_credential = None;
        } else if self.access_credential.is_none() {
            return Err(Invalid(format!("auth {:?} needs an access_credential", self.auth)));
        }
        if let Some(v) = input.skip_cert_verify {
            self.skip_cert_verify = v;
        }
        if let Some(v) = input.use_internal_addr {
            self.use_internal_addr = v;
        }
        if let Some(v) = input.disabled {
            self.disabled = v;
        }
        Ok(())
    }

    /// The `Authorization` (or API key) header to send the adapter: its name and value.
    pub fn header(&self, key: &SecretKey) -> std::result::Result<Option<(String, String)>, String> {
        let Some(sealed) = &self.access_credential else { return Ok(None) };
        let credential = key.open(sealed).map_err(|e| format!("opening the scanner's credential: {e}"))?;
        use base64::Engine as _;
        Ok(Some(match self.auth.as_str() {
            "Basic" => (
                "authorization".into(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credential)),
            ),
            "Bearer" => ("authorization".into(), format!("Bearer {credential}")),
            "X-ScannerAdapter-API-Key" => ("x-scanneradapter-api-key".into(), credential),
            _ => return Ok(None),
        }))
    }
}

impl crate::documents::Document for Registration {
    const KIND: &'static str = KIND;

    fn name(&self) -> &str {
        &self.name
    }
}

/// A new registration identifier (a random UUID).
pub fn new_uuid() -> String {
    crate::new_uuid()
}

/// A stored registration with its record (times, id).
pub type Stored = crate::documents::Stored<Registration>;

/// Every registration, in the order they were made.
pub async fn all(meta: &dyn MetadataStore) -> Result<Vec<Stored>> {
    crate::documents::all(meta).await
}

/// The registration `uuid`.
pub async fn by_uuid(meta: &dyn MetadataStore, uuid: &str) -> Result<Option<Stored>> {
    Ok(all(meta).await?.into_iter().find(|s| s.doc.uuid == uuid))
}

async fn binding_record(meta: &dyn MetadataStore, project_id: u64) -> Result<Option<PolicyRecord>> {
    Ok(meta.policies(BINDING, Some(project_id)).await?.into_iter().find(|p| p.name == BINDING_NAME))
}

#[derive(Serialize, Deserialize)]
struct Binding {
    uuid: String,
}

/// The uuid bound to `project_id` ([`SYSTEM`]: the default), if any.
pub async fn bound(meta: &dyn MetadataStore, project_id: u64) -> Result<Option<String>> {
    Ok(binding_record(meta, project_id)
        .await?
        .and_then(|r| serde_json::from_str::<Binding>(&r.body).ok())
        .map(|b| b.uuid))
}

/// Binds `uuid` to `project_id` ([`SYSTEM`]: makes it the default), with `events`.
pub async fn bind(meta: &dyn MetadataStore, project_id: u64, uuid: &str, events: &[Event]) -> Result<()> {
    let existing = binding_record(meta, project_id).await?;
    let record = PolicyRecord {
        id: existing.map_or(0, |r| r.id),
        kind: BINDING.into(),
        project_id,
        name: BINDING_NAME.into(),
        body: serde_json::to_string(&Binding { uuid: uuid.to_owned() }).unwrap_or_default(),
        created_ms: 0,
        updated_ms: 0,
    };
    meta.put_policy(&record, events).await.map(|_| ())
}

/// Removes the bindings to `uuid` (a registration going away); how many there were.
pub async fn unbind(meta: &dyn MetadataStore, uuid: &str) -> Result<usize> {
    let mut n = 0;
    for record in meta.policies(BINDING, None).await? {
        if serde_json::from_str::<Binding>(&record.body).is_ok_and(|b| b.uuid == uuid) {
            meta.delete_policy(BINDING, record.id, &[]).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Removes a project's binding (the project going away).
pub async fn unbind_project(meta: &dyn MetadataStore, project_id: u64) -> Result<()> {
    if let Some(record) = binding_record(meta, project_id).await? {
        meta.delete_policy(BINDING, record.id, &[]).await?;
    }
    Ok(())
}

/// The scanner of `project_id`: its own binding, else the default; `None` when neither names
/// a registration.
pub async fn of_project(meta: &dyn MetadataStore, project_id: u64) -> Result<Option<Registration>> {
    let uuid = match bound(meta, project_id).await? {
        Some(uuid) => Some(uuid),
        None => bound(meta, SYSTEM).await?,
    };
    let Some(uuid) = uuid else { return Ok(None) };
    Ok(by_uuid(meta, &uuid).await?.map(|s| s.doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> RegistrationInput {
        serde_json::from_value(json).expect("input")
    }

    #[test]
    fn registrations_are_checked_and_their_credentials_sealed() {
        let key = SecretKey::generate().expect("key");
        let mut r = Registration::default();
        let bad = |r: &mut Registration, json| r.clone().apply(input(json), &key).expect_err("refused").0;
        assert!(bad(&mut r, serde_json::json!({"url": "http://a:1"})).contains("name"));
        assert!(bad(&mut r, serde_json::json!({"name": "t"})).contains("url"));
        assert!(bad(&mut r, serde_json::json!({"name": "t", "url": "http://169.254.169.254/"})).contains("link-local"));
        assert!(bad(&mut r, serde_json::json!({"name": "t", "url": "ftp://a/"})).contains("http"));
        assert!(
            bad(&mut r, serde_json::json!({"name": "t", "url": "http://a:1", "auth": "Digest"})).contains("Digest")
        );
        assert!(
            bad(&mut r, serde_json::json!({"name": "t", "url": "http://a:1", "auth": "Bearer"}))
                .contains("access_credential")
        );
        assert!(
            bad(
                &mut r,
                serde_json::json!({"name": "t", "url": "http://a:1", "auth": "Basic", "access_credential": "nocolon"})
            )
            .contains("user:password")
        );
        r.apply(
            input(serde_json::json!({"name": "trivy", "url": "http://127.0.0.1:8080/", "auth": "Basic", "access_credential": "u:p"})),
            &key,
        )
        .expect("applied");
        assert_eq!(r.url, "http://127.0.0.1:8080");
        let sealed = r.access_credential.clone().expect("sealed");
        assert!(!sealed.contains("u:p"), "sealed at rest");
        assert!(!format!("{r:?}").contains(&sealed), "never in Debug");
        assert_eq!(r.header(&key).expect("header"), Some(("authorization".into(), "Basic dTpw".into())));
        // An update without a credential keeps it; a new auth type needs a new one.
        r.apply(input(serde_json::json!({"description": "d"})), &key).expect("kept");
        assert_eq!(r.access_credential.as_deref(), Some(sealed.as_str()));
        assert!(r.clone().apply(input(serde_json::json!({"auth": "Bearer"})), &key).is_err());
        r.apply(input(serde_json::json!({"auth": ""})), &key).expect("none");
        assert_eq!(r.access_credential, None);
        assert_eq!(new_uuid().len(), 36);
    }
}
