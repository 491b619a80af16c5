//! CVE allowlists (Harbor's `CVEAllowlist`): the system's (`/system/CVEAllowlist`) and each
//! project's (`cve_allowlist` of the project), with an optional expiry. A project uses the
//! system's unless its metadata `reuse_sys_cve_allowlist` is `"false"`. Allowlisted CVEs do not
//! count against the vulnerability prevention policy; an expired allowlist allows nothing.

use std::collections::HashSet;

use registry_core::event::Event;
use registry_storage::policies::{PolicyRecord, SYSTEM};
use registry_storage::{MetadataStore, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::selectors::Invalid;

/// The policy kind of allowlists.
pub const KIND: &str = "cve_allowlist";
const NAME: &str = "allowlist";
/// The project metadata choosing the system's allowlist (default `"true"`).
pub const REUSE: &str = "reuse_sys_cve_allowlist";
/// Most CVEs one allowlist holds.
pub const MAX_ITEMS: usize = 10_000;

/// One allowlisted CVE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Item {
    /// Its identifier (`CVE-2019-10164`).
    pub cve_id: String,
}

/// An allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Allowlist {
    /// When it stops applying (seconds since the Unix epoch); `None`: never.
    pub expires_at: Option<u64>,
    /// The CVEs.
    pub items: Vec<Item>,
}

impl Allowlist {
    /// Checks an allowlist as the API received it: identifiers non-empty and at most 64
    /// characters, duplicates dropped, at most [`MAX_ITEMS`].
    pub fn checked(mut self) -> std::result::Result<Allowlist, Invalid> {
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (i, item) in self.items.into_iter().enumerate() {
            let id = item.cve_id.trim().to_owned();
            if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Invalid(format!("items[{i}].cve_id {:?} is not a CVE identifier", item.cve_id)));
            }
            if seen.insert(id.clone()) {
                items.push(Item { cve_id: id });
            }
        }
        if items.len() > MAX_ITEMS {
            return Err(Invalid(format!("an allowlist holds at most {MAX_ITEMS} CVEs")));
        }
        if self.expires_at == Some(0) {
            self.expires_at = None;
        }
        self.items = items;
        Ok(self)
    }

    /// The CVEs it allows at `now` (seconds): none once expired.
    pub fn allowed(&self, now_secs: u64) -> HashSet<String> {
        if self.expires_at.is_some_and(|at| at <= now_secs) {
            return HashSet::new();
        }
        self.items.iter().map(|i| i.cve_id.clone()).collect()
    }

    /// Harbor's JSON of the allowlist of `project_id` as stored in `record`.
    pub fn to_json(&self, project_id: u64, record: Option<&PolicyRecord>) -> Value {
        let time = |ms: u64| registry_core::time::rfc3339(ms / 1000);
        json!({
            "id": record.map_or(0, |r| r.id),
            "project_id": project_id,
            "expires_at": self.expires_at,
            "items": self.items,
            "creation_time": record.map(|r| time(r.created_ms)),
            "update_time": record.map(|r| time(r.updated_ms)),
        })
    }
}

async fn record_of(meta: &dyn MetadataStore, project_id: u64) -> Result<Option<PolicyRecord>> {
    Ok(meta.policies(KIND, Some(project_id)).await?.into_iter().find(|p| p.name == NAME))
}

/// The allowlist of `project_id` ([`SYSTEM`]: the system's) and its record.
pub async fn load(meta: &dyn MetadataStore, project_id: u64) -> Result<(Allowlist, Option<PolicyRecord>)> {
    let record = record_of(meta, project_id).await?;
    let list = record.as_ref().and_then(|r| serde_json::from_str(&r.body).ok()).unwrap_or_default();
    Ok((list, record))
}

/// Stores the allowlist of `project_id` with `events`.
pub async fn save(meta: &dyn MetadataStore, project_id: u64, list: &Allowlist, events: &[Event]) -> Result<()> {
    let existing = record_of(meta, project_id).await?;
    let record = PolicyRecord {
        id: existing.map_or(0, |r| r.id),
        kind: KIND.into(),
        project_id,
        name: NAME.into(),
        body: serde_json::to_string(list).unwrap_or_default(),
        created_ms: 0,
        updated_ms: 0,
    };
    meta.put_policy(&record, events).await.map(|_| ())
}

/// Removes a project's allowlist (the project going away).
pub async fn remove(meta: &dyn MetadataStore, project_id: u64) -> Result<()> {
    if let Some(record) = record_of(meta, project_id).await? {
        meta.delete_policy(KIND, record.id, &[]).await?;
    }
    Ok(())
}

/// The CVEs allowed in a project with `metadata` at `now_secs`.
pub async fn effective(
    meta: &dyn MetadataStore,
    project_id: u64,
    metadata: &std::collections::BTreeMap<String, String>,
    now_secs: u64,
) -> Result<HashSet<String>> {
    let own = metadata.get(REUSE).is_some_and(|v| v == "false");
    let (list, _) = load(meta, if own { project_id } else { SYSTEM }).await?;
    Ok(list.allowed(now_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_are_checked_and_expire() {
        let list: Allowlist = serde_json::from_value(
            json!({"items": [{"cve_id": " CVE-1 "}, {"cve_id": "CVE-1"}, {"cve_id": "CVE-2"}], "expires_at": 100}),
        )
        .expect("list");
        let list = list.checked().expect("checked");
        assert_eq!(list.items.len(), 2, "duplicates dropped");
        assert_eq!(list.allowed(99).len(), 2);
        assert!(list.allowed(100).is_empty(), "expired");
        let bad: Allowlist = serde_json::from_value(json!({"items": [{"cve_id": ""}]})).expect("list");
        assert!(bad.checked().expect_err("empty").0.contains("items[0]"));
    }
}
