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
    /// How users sign in: `db_auth` (their passwords here), `ldap_auth` (the directory) or
    /// `oidc_auth` (an OpenID Connect provider).
    pub auth_mode: String,
    /// The directory's URL (`ldap://host:port`, `ldaps://host:port`).
    pub ldap_url: String,
    /// The DN searches bind as (empty: anonymous).
    pub ldap_search_dn: String,
    /// Its password, sealed with the registry's key.
    pub ldap_search_password: Option<String>,
    /// Where people are searched.
    pub ldap_base_dn: String,
    /// A filter people must match besides their name (empty: none).
    pub ldap_filter: String,
    /// The attribute holding the sign-in name.
    pub ldap_uid: String,
    /// The search scope: 0 base, 1 one level, 2 subtree.
    pub ldap_scope: i64,
    /// Seconds a connection to the directory may take.
    pub ldap_timeout: u64,
    /// Whether the directory's certificate is verified.
    pub ldap_verify_cert: bool,
    /// Whether an `ldap://` connection is upgraded with StartTLS.
    pub ldap_starttls: bool,
    /// A CA certificate (PEM) the directory's is verified against, besides the system's.
    pub ldap_ca_certificate: String,
    /// The DN of the group whose members are system admins.
    pub ldap_group_admin_dn: String,
    /// The attribute of a person's entry listing their groups.
    pub ldap_group_membership_attribute: String,
    /// Where groups are searched (empty: groups only by the membership attribute).
    pub ldap_group_base_dn: String,
    /// A filter groups must match (`(objectClass=groupOfNames)`; empty: none).
    pub ldap_group_search_filter: String,
    /// The attribute holding a group's name.
    pub ldap_group_attribute_name: String,
    /// The group search scope: 0 base, 1 one level, 2 subtree.
    pub ldap_group_search_scope: i64,
    /// The provider's name, shown on the sign-in button.
    pub oidc_name: String,
    /// The provider's issuer URL (its discovery document is under it).
    pub oidc_endpoint: String,
    /// The client id this registry signs in as.
    pub oidc_client_id: String,
    /// The client's secret, sealed with the registry's key.
    pub oidc_client_secret: Option<String>,
    /// The scopes asked for, comma-separated (`openid` is always asked).
    pub oidc_scope: String,
    /// The claim whose value is the user name here (empty: `preferred_username`, then `name`,
    /// then the e-mail's local part).
    pub oidc_user_claim: String,
    /// The claim listing a person's groups.
    pub oidc_groups_claim: String,
    /// Members of this provider group are system admins here (empty: none).
    pub oidc_admin_group: String,
    /// Whether the provider's certificate is verified.
    pub oidc_verify_cert: bool,
    /// Whether people are made users at their first sign-in with the user claim's name (off: they
    /// choose a name).
    pub oidc_auto_onboard: bool,
}

impl Default for SystemSettings {
    fn default() -> Self {
        SystemSettings {
            webhook_allow_private_targets: false,
            audit_log_forward_endpoint: String::new(),
            storage_per_project: -1,
            quota_warning_percent: registry_storage::quota::DEFAULT_WARN_PERCENT,
            auth_mode: "db_auth".into(),
            ldap_url: String::new(),
            ldap_search_dn: String::new(),
            ldap_search_password: None,
            ldap_base_dn: String::new(),
            ldap_filter: String::new(),
            ldap_uid: "uid".into(),
            ldap_scope: 2,
            ldap_timeout: 5,
            ldap_verify_cert: true,
            ldap_starttls: false,
            ldap_ca_certificate: String::new(),
            ldap_group_admin_dn: String::new(),
            ldap_group_membership_attribute: "memberof".into(),
            ldap_group_base_dn: String::new(),
            ldap_group_search_filter: String::new(),
            ldap_group_attribute_name: "cn".into(),
            ldap_group_search_scope: 2,
            oidc_name: String::new(),
            oidc_endpoint: String::new(),
            oidc_client_id: String::new(),
            oidc_client_secret: None,
            oidc_scope: "openid,profile,email,offline_access".into(),
            oidc_user_claim: String::new(),
            oidc_groups_claim: "groups".into(),
            oidc_admin_group: String::new(),
            oidc_verify_cert: true,
            oidc_auto_onboard: false,
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
