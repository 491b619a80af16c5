//! Webhook policies in Harbor's `WebhookPolicy` shape, stored as policy documents of kind
//! [`KIND`] with their secrets sealed.

use crate::ssrf;
use registry_auth::SecretKey;
use serde::{Deserialize, Serialize};

/// The policy kind of webhook policies.
pub const KIND: &str = "webhook";

/// The event types a policy may name: those raised now, and those later features raise.
pub const EVENT_TYPES: [&str; 10] = [
    "PUSH_ARTIFACT",
    "PULL_ARTIFACT",
    "DELETE_ARTIFACT",
    "QUOTA_EXCEED",
    "QUOTA_WARNING",
    "SCANNING_COMPLETED",
    "SCANNING_FAILED",
    "SCANNING_STOPPED",
    "REPLICATION",
    "TAG_RETENTION",
];

/// The payload formats of an `http` target.
pub const FORMATS: [&str; 2] = ["Default", "CloudEvents"];

/// A target: where and how to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `http` (the only notify type this registry sends).
    #[serde(rename = "type", default = "http")]
    pub kind: String,
    /// The receiver's URL.
    pub address: String,
    /// The `Authorization` header sent, sealed (`None` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<String>,
    /// Accept any certificate of an `https` receiver.
    #[serde(default)]
    pub skip_cert_verify: bool,
    /// `Default` (Harbor's JSON) or `CloudEvents`.
    #[serde(default = "default_format")]
    pub payload_format: String,
}

fn http() -> String {
    "http".into()
}

fn default_format() -> String {
    "Default".into()
}

/// A webhook policy as stored (secrets sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Its project's name.
    pub project: String,
    /// Where to deliver.
    pub targets: Vec<Target>,
    /// The event types it is for.
    pub event_types: Vec<String>,
    /// Whether it delivers.
    pub enabled: bool,
    /// Who created it.
    #[serde(default)]
    pub creator: String,
    /// The HMAC-SHA256 signing secret, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A policy as a client sends it (secrets in the clear; `Debug` shows none of them).
#[derive(Deserialize)]
pub struct PolicyInput {
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Where to deliver (auth headers in the clear).
    #[serde(default)]
    pub targets: Option<Vec<Target>>,
    /// The event types it is for.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Whether it delivers.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Our addition: the signing secret (write-only; `""` removes it).
    #[serde(default)]
    pub secret: Option<String>,
}

impl std::fmt::Debug for PolicyInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyInput").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The client's input is wrong (the message says how).
    #[error("{0}")]
    Invalid(String),
    /// A secret could not be sealed.
    #[error(transparent)]
    Seal(#[from] registry_auth::SealError),
}

fn bad(message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(message.into())
}

/// Checks a policy's name, targets and event types, sealing the secrets of `input` into
/// `webhook`. `allow_private` is the admin setting that lets targets be private addresses.
pub fn apply(
    webhook: &mut Webhook,
    input: PolicyInput,
    key: &SecretKey,
    allow_private: bool,
) -> Result<(), PolicyError> {
    if let Some(description) = input.description {
        webhook.description = description;
    }
    if let Some(enabled) = input.enabled {
        webhook.enabled = enabled;
    }
    if let Some(types) = input.event_types {
        if types.is_empty() {
            return Err(bad("event_types names no event type; choose among ".to_owned() + &EVENT_TYPES.join(", ")));
        }
        if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
            return Err(bad(format!("event type {unknown:?} is unknown; choose among {}", EVENT_TYPES.join(", "))));
        }
        webhook.event_types = types;
    }
    if let Some(targets) = input.targets {
        if targets.is_empty() {
            return Err(bad("a webhook policy needs a target (targets[].address)"));
        }
        let mut sealed = Vec::new();
        for (i, mut target) in targets.into_iter().enumerate() {
            if target.kind != "http" {
                return Err(bad(format!("targets[{i}].type {:?} is not supported; use \"http\"", target.kind)));
            }
            if !FORMATS.contains(&target.payload_format.as_str()) {
                return Err(bad(format!(
                    "targets[{i}].payload_format {:?} is unknown; use {}",
                    target.payload_format,
                    FORMATS.join(" or ")
                )));
            }
            ssrf::check_address(&target.address, super::reach(allow_private))
                .map_err(|e| bad(format!("targets[{i}]: {}", super::refusal_text(&e))))?;
            target.auth_header = match target.auth_header.filter(|h| !h.is_empty()) {
                Some(header) => {
                    if !header.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                        return Err(bad(format!("targets[{i}].auth_header is not a valid header value")));
                    }
                    Some(key.seal(&header)?)
                }
                None => None,
            };
            sealed.push(target);
        }
        webhook.targets = sealed;
    }
    match input.secret.as_deref() {
        Some("") => webhook.secret = None,
        Some(secret) => webhook.secret = Some(key.seal(secret)?),
        None => {}
    }
    if webhook.targets.is_empty() {
        return Err(bad("a webhook policy needs a target (targets[].address)"));
    }
    if webhook.event_types.is_empty() {
        return Err(bad("a webhook policy needs event_types; choose among ".to_owned() + &EVENT_TYPES.join(", ")));
    }
    Ok(())
}
