//! [`UploadLease`]: one process at a time appends to an upload, when replicas share the metadata
//! store. The in-process lock of the engine serializes requests within a process; across
//! processes the metadata store leases the upload to one of them ([`MetadataStore::lease_upload`]).
//!
//! A lease lasts [`LEASE`] and is renewed every third of it while the append streams, so a long
//! upload keeps it and a replica that dies mid-append frees it within [`LEASE`]. Stores used by one
//! process (not [`MetadataStore::shared`]) are not asked at all.

use std::sync::Arc;
use std::time::Duration;

use crate::blob::UploadId;
use crate::engine::Registry;
use crate::error::{Error, Result};
use crate::meta::MetadataStore;

/// How long a lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// How often a busy lease is asked for again.
const RETRY: Duration = Duration::from_millis(200);

/// A held lease (or, with a store of one process, nothing).
pub(crate) struct UploadLease {
    held: Option<Held>,
}

struct Held {
    meta: Arc<dyn MetadataStore>,
    id: UploadId,
    token: u64,
    renewer: tokio::task::JoinHandle<()>,
}

impl UploadLease {
    /// Takes the lease of `id`, waiting up to [`LEASE`] for another process to finish with it
    /// (or for the lease of one that died to run out); then [`Error::UploadBusy`].
    pub(crate) async fn take(registry: &Registry, id: &UploadId) -> Result<UploadLease> {
        let meta = registry.metadata_store().clone();
        if !meta.shared() {
            return Ok(UploadLease { held: None });
        }
        let clock = registry.clock().clone();
        let token = uuid::Uuid::new_v4().as_u64_pair().0 & (i64::MAX as u64);
        let lease_ms = LEASE.as_millis() as u64;
        let give_up = tokio::time::Instant::now() + LEASE + RETRY;
        loop {
            let now = clock.now_millis();
            if meta.lease_upload(id, token, now + lease_ms, now).await? {
                break;
            }
            if tokio::time::Instant::now() + RETRY > give_up {
                return Err(Error::UploadBusy);
            }
            tokio::time::sleep(RETRY).await;
        }
        let (m, i) = (meta.clone(), id.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let now = clock.now_millis();
                if let Err(e) = m.lease_upload(&i, token, now + lease_ms, now).await {
                    tracing::warn!(upload = %i, error = %e, "could not renew an upload's lease");
                }
            }
        });
        Ok(UploadLease { held: Some(Held { meta, id: id.clone(), token, renewer }) })
    }

    /// Gives the lease back.
    pub(crate) async fn release(mut self) {
        if let Some(held) = self.held.take() {
            held.renewer.abort();
            if let Err(e) = held.meta.release_upload(&held.id, held.token).await {
                tracing::warn!(upload = %held.id, error = %e, "could not release an upload's lease (it runs out)");
            }
        }
    }
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        // A request that ended early (its client went away): stop renewing; the lease runs out.
        if let Some(held) = self.held.take() {
            held.renewer.abort();
        }
    }
}
