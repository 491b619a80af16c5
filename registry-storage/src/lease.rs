//! Coordination between processes that share the metadata store (replicas):
//!
//! - [`UploadLease`]: one process at a time appends to an upload. The in-process lock of the
//!   engine serializes requests within a process; across processes the metadata store leases the
//!   upload to one of them ([`MetadataStore::lease_upload`]). Stores used by one process (not
//!   [`MetadataStore::shared`]) are not asked at all.
//! - [`DigestHold`]: garbage collection leaves a digest alone while a write publishes and links
//!   it. Without it, a whole collection could run between a push's publication and its link
//!   (seen with no grace period: mark, delete, unmark), or between an object store's HEAD and
//!   DELETE, and the push would then link a blob that is gone.
//!
//! Both last a fixed time and are renewed every third of it while their holder works (with a
//! store shared by processes), so long work keeps them and a process that dies frees them within
//! that time.

use std::sync::Arc;
use std::time::Duration;

use registry_core::{Digest, SharedClock};

use crate::blob::UploadId;
use crate::error::{Error, Result};
use crate::meta::MetadataStore;

/// How long an upload lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(10);

/// How long a digest hold lasts without renewal.
const HOLD: Duration = Duration::from_secs(300);

/// How often a busy lease is asked for again.
const RETRY: Duration = Duration::from_millis(200);

/// A random holder id (positive as a signed 64-bit integer, for SQL).
fn holder_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 & (i64::MAX as u64)
}

/// Renews something every third of `lifetime` until dropped.
struct Renewer(tokio::task::JoinHandle<()>);

impl Renewer {
    fn start<F, Fut>(clock: SharedClock, lifetime: Duration, renew: F) -> Renewer
    where
        F: Fn(u64, u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        Renewer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lifetime / 3).await;
                let now = clock.now_millis();
                if let Err(e) = renew(now + lifetime.as_millis() as u64, now).await {
                    tracing::warn!(error = %e, "could not renew a lease (it runs out unless a renewal succeeds)");
                }
            }
        }))
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A held lease (or, with a store of one process, nothing).
pub(crate) struct UploadLease {
    held: Option<(Arc<dyn MetadataStore>, UploadId, u64, Renewer)>,
}

impl UploadLease {
    /// Takes the lease of `id`, waiting up to [`LEASE`] for another process to finish with it
    /// (or for the lease of one that died to run out); then [`Error::UploadBusy`].
    pub(crate) async fn take(meta: &Arc<dyn MetadataStore>, clock: &SharedClock, id: &UploadId) -> Result<UploadLease> {
        if !meta.shared() {
            return Ok(UploadLease { held: None });
        }
        let (meta, clock) = (meta.clone(), clock.clone());
        let token = holder_id();
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
        let renewer = Renewer::start(clock, LEASE, move |until, now| {
            let (m, i) = (m.clone(), i.clone());
            async move { m.lease_upload(&i, token, until, now).await.map(drop) }
        });
        Ok(UploadLease { held: Some((meta, id.clone(), token, renewer)) })
    }

    /// Gives the lease back (dropped without this, it runs out).
    pub(crate) async fn release(mut self) {
        if let Some((meta, id, token, renewer)) = self.held.take() {
            drop(renewer);
            if let Err(e) = meta.release_upload(&id, token).await {
                tracing::warn!(upload = %id, error = %e, "could not release an upload's lease (it runs out)");
            }
        }
    }
}

/// A digest held against garbage collection while it is written and linked.
pub(crate) struct DigestHold {
    held: Option<Held>,
}

/// A hold taken: the store, the digest, the holder, and its renewal (with a shared store).
struct Held {
    meta: Arc<dyn MetadataStore>,
    digest: Digest,
    holder: u64,
    _renewer: Option<Renewer>,
}

impl DigestHold {
    /// Holds `digest`; [`Error::Collecting`] while a collection is deleting it.
    pub(crate) async fn take(
        meta: &Arc<dyn MetadataStore>,
        clock: &SharedClock,
        digest: &Digest,
    ) -> Result<DigestHold> {
        let (meta, clock) = (meta.clone(), clock.clone());
        let holder = holder_id();
        let hold_ms = HOLD.as_millis() as u64;
        meta.hold_digest(digest, holder, clock.now_millis() + hold_ms).await?;
        // A store of one process keeps holds for as long as the process: nothing to renew.
        let renewer = meta.shared().then(|| {
            let (m, d) = (meta.clone(), digest.clone());
            Renewer::start(clock, HOLD, move |until, _| {
                let (m, d) = (m.clone(), d.clone());
                async move { m.hold_digest(&d, holder, until).await }
            })
        });
        Ok(DigestHold { held: Some(Held { meta, digest: digest.clone(), holder, _renewer: renewer }) })
    }

    /// Ends the hold, once the digest is linked (or the write failed).
    pub(crate) async fn release(mut self) {
        if let Some(Held { meta, digest, holder, _renewer }) = self.held.take() {
            drop(_renewer);
            if let Err(e) = meta.release_digest(&digest, holder).await {
                tracing::warn!(digest = %digest, error = %e, "could not release a digest's hold (it runs out)");
            }
        }
    }
}
