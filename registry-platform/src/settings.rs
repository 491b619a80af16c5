//! System settings an admin changes at run time (`/configurations`), kept as the system policy
//! document `settings/system` of the metadata store, so every replica reads the same.

use registry_core::event::Event;
use registry_storage::MetadataStore;
use registry_storage::policies::{PolicyRecord, SYSTEM};
use serde::{Deserialize, Serialize};

/// The policy kind and name of the settings document.
const KIND: &str = "settings";
const NAME: &str = "system";

/// The settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemSettings {
    /// Webhook targets may be private or loopback addresses (off: the SSRF guard refuses them).
    pub webhook_allow_private_targets: bool,
    /// Where audit records are forwarded as syslog (`tcp://host:port`, `udp://host:port`);
    /// empty for nowhere.
    pub audit_log_forward_endpoint: String,
    /// The storage limit of new projects in bytes (Harbor's `storage_per_project`; -1: none).
    pub storage_per_project: i64,
    /// The percentage of a quota at which `QUOTA_WARNING` is raised, for quotas set from now on.
    pub quota_warning_percent: u8,
}

impl Default for SystemSettings {
    fn default() -> Self {
        SystemSettings {
            webhook_allow_private_targets: false,
            audit_log_forward_endpoint: String::new(),
            storage_per_project: -1,
            quota_warning_percent: registry_storage::quota::DEFAULT_WARN_PERCENT,
        }
    }
}

impl SystemSettings {
    /// The settings now (the defaults when never changed).
    pub async fn load(store: &dyn MetadataStore) -> registry_storage::Result<SystemSettings> {
        let found = store.policies(KIND, Some(SYSTEM)).await?.into_iter().find(|p| p.name == NAME);
        Ok(found.and_then(|p| serde_json::from_str(&p.body).ok()).unwrap_or_default())
    }

    /// Saves the settings with the event recording the change.
    pub async fn save(&self, store: &dyn MetadataStore, events: &[Event]) -> registry_storage::Result<()> {
        let existing = store.policies(KIND, Some(SYSTEM)).await?.into_iter().find(|p| p.name == NAME);
        let record = PolicyRecord {
            id: existing.map_or(0, |p| p.id),
            kind: KIND.into(),
            project_id: SYSTEM,
            name: NAME.into(),
            body: serde_json::to_string(self).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        };
        store.put_policy(&record, events).await.map(|_| ())
    }
}
