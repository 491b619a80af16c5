//! Policies: the documents that govern content after the push (webhook policies now; retention,
//! immutability, replication and scanner settings as they come), and system settings, kept in
//! the metadata store as JSON under a kind, a project and a name unique within both. Each change
//! is one transaction with the events that record it.
//!
//! The store keeps the text; the feature that owns a kind parses it (and seals what must stay
//! secret before it is stored).

use async_trait::async_trait;
use registry_core::event::Event;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The project of system-wide documents (settings).
pub const SYSTEM: u64 = 0;

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Its number (0 for a policy not yet stored).
    pub id: u64,
    /// What it governs (`webhook`, `settings`, …).
    pub kind: String,
    /// Its project's id ([`SYSTEM`] for system-wide documents).
    pub project_id: u64,
    /// Its name, unique within the kind and project.
    pub name: String,
    /// The document (JSON).
    pub body: String,
    /// When it was created (milliseconds since the Unix epoch).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
}

/// The policies of a metadata store.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Stores a policy with `events`: a new one when its id is 0, else replaces that policy
    /// (keeping its creation time). Its id; [`crate::Error::Conflict`] when another policy of the
    /// kind and project has its name, [`crate::Error::NotFound`] when the id is unknown.
    async fn put_policy(&self, policy: &PolicyRecord, events: &[Event]) -> Result<u64>;

    /// One policy of `kind`.
    async fn policy(&self, kind: &str, id: u64) -> Result<Option<PolicyRecord>>;

    /// The policies of `kind` (of one project, or of all), in id order.
    async fn policies(&self, kind: &str, project_id: Option<u64>) -> Result<Vec<PolicyRecord>>;

    /// Removes a policy with `events`; `false` (and no event) if it was absent.
    async fn delete_policy(&self, kind: &str, id: u64, events: &[Event]) -> Result<bool>;

    /// Every policy of every kind, in id order (copying a registry into other stores).
    async fn all_policies(&self) -> Result<Vec<PolicyRecord>>;

    /// Stores `policy` as it is, id and times included, replacing one of that id (copying a
    /// registry into other stores: ids are kept, as other records name them); later new
    /// policies get ids above it.
    async fn import_policy(&self, policy: &PolicyRecord) -> Result<()>;
}

/// Policies held in memory: what the memory store keeps under its lock.
#[derive(Debug, Default)]
pub struct PolicyTable {
    policies: std::collections::BTreeMap<u64, PolicyRecord>,
    last: u64,
}

impl PolicyTable {
    /// See [`PolicyStore::put_policy`].
    pub fn put(&mut self, policy: &PolicyRecord, now_ms: u64) -> Result<u64> {
        let old = match policy.id {
            0 => None,
            id => Some(self.policy(&policy.kind, id).ok_or_else(|| not_found(&policy.kind, id))?),
        };
        let taken = self.policies.values().any(|p| {
            p.kind == policy.kind && p.project_id == policy.project_id && p.name == policy.name && p.id != policy.id
        });
        if taken {
            return Err(crate::Error::Conflict { what: format!("a {} policy named {:?}", policy.kind, policy.name) });
        }
        let mut record = policy.clone();
        match old {
            None => {
                self.last += 1;
                record.id = self.last;
                record.created_ms = now_ms;
            }
            Some(old) => record.created_ms = old.created_ms,
        }
        record.updated_ms = now_ms;
        self.policies.insert(record.id, record.clone());
        Ok(record.id)
    }

    /// See [`PolicyStore::policy`].
    pub fn policy(&self, kind: &str, id: u64) -> Option<PolicyRecord> {
        self.policies.get(&id).filter(|p| p.kind == kind).cloned()
    }

    /// See [`PolicyStore::policies`].
    pub fn list(&self, kind: &str, project_id: Option<u64>) -> Vec<PolicyRecord> {
        self.policies
            .values()
            .filter(|p| p.kind == kind && project_id.is_none_or(|id| id == p.project_id))
            .cloned()
            .collect()
    }

    /// See [`PolicyStore::all_policies`].
    pub fn all(&self) -> Vec<PolicyRecord> {
        self.policies.values().cloned().collect()
    }

    /// See [`PolicyStore::import_policy`].
    pub fn import(&mut self, policy: &PolicyRecord) {
        self.last = self.last.max(policy.id);
        self.policies.insert(policy.id, policy.clone());
    }

    /// See [`PolicyStore::delete_policy`].
    pub fn delete(&mut self, kind: &str, id: u64) -> bool {
        if self.policy(kind, id).is_none() {
            return false;
        }
        self.policies.remove(&id).is_some()
    }
}

/// The error of an unknown policy.
pub fn not_found(kind: &str, id: u64) -> crate::Error {
    crate::Error::NotFound { what: format!("{kind} policy {id}") }
}
