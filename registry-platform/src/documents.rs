//! System documents: a serde type kept whole as the body of a system [`PolicyRecord`] of its
//! own kind (registry endpoints, replication policies, scanner registrations), read back with
//! the record (its id and times). A body that no longer parses is left out of listings.

use registry_storage::policies::{PolicyRecord, SYSTEM};
use registry_storage::{MetadataStore, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A type kept as a system document.
pub trait Document: Serialize + DeserializeOwned {
    /// The policy kind its records carry.
    const KIND: &'static str;

    /// Its name, unique among its kind.
    fn name(&self) -> &str;

    /// The record to store as `id` (0: new).
    fn record(&self, id: u64) -> PolicyRecord {
        PolicyRecord {
            id,
            kind: Self::KIND.into(),
            project_id: SYSTEM,
            name: self.name().to_owned(),
            body: serde_json::to_string(self).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        }
    }
}

/// A document with its record.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    /// The record (id, times).
    pub record: PolicyRecord,
    /// The document.
    pub doc: T,
}

impl<T: Document> Stored<T> {
    fn of(record: PolicyRecord) -> Option<Stored<T>> {
        serde_json::from_str(&record.body).ok().map(|doc| Stored { record, doc })
    }
}

/// Every document of kind `T`, in the order they were made.
pub async fn all<T: Document>(meta: &dyn MetadataStore) -> Result<Vec<Stored<T>>> {
    Ok(meta.policies(T::KIND, Some(SYSTEM)).await?.into_iter().filter_map(Stored::of).collect())
}

/// The document `id` of kind `T`.
pub async fn by_id<T: Document>(meta: &dyn MetadataStore, id: u64) -> Result<Option<Stored<T>>> {
    Ok(meta.policy(T::KIND, id).await?.and_then(Stored::of))
}
