//! The registry engine: the distribution spec's rules over a [`BlobStore`] and a [`MetadataStore`].
//!
//! (Longer than most files here on purpose: every rule of the spec lives in this one place, so that
//! handlers above only translate; split by endpoint, the rules would scatter.)
//!
//! - Every pushed byte passes once through a [`DigestVerifier`] on its way into the blob store;
//!   hashing runs in the request's task while the store writes, so the two overlap.
//! - A chunked upload's verifier state is saved in the metadata store after every acknowledged
//!   chunk, so an upload survives a restart and may continue on another replica.
//! - A blob becomes visible (linked into a repository) only after its digest and size are verified
//!   and it is published at its content address.
//! - A manifest is parsed and validated, all it references must be in the repository, and its
//!   record, referrer entry and tag move are one metadata transaction.
//! - Manifest bytes are cached in memory by digest (bounded by [`MANIFEST_CACHE_BYTES`]): content
//!   addressed bytes never change, so the cache needs no invalidation and is safe with any number
//!   of replicas. Whether a repository holds a manifest is always the metadata store's answer.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use registry_core::{
    Algorithm, Digest, DigestVerifier, Manifest, Reference, RepositoryName, SharedClock, VerifierState,
};

use crate::blob::{BlobStore, BodyStream, ByteStream, UploadId};
use crate::error::{Error, Result};
use crate::hashing::HashingStream;
use crate::immutable::Protection;
use crate::lease::{DigestHold, UploadLease};
use crate::meta::{ManifestRecord, MetadataStore, Page, UploadRecord};
use crate::recorder::{self, BatchedEvents};
use registry_core::event::{Event, EventAction, Operator};

/// Limits the engine enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted, in bytes (default 4 MiB, as distribution).
    pub max_manifest_bytes: usize,
    /// Largest page of tags or repositories (default 1000).
    pub max_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_bytes: 4 << 20, max_page: 1000 }
    }
}

/// Bytes of manifests kept in memory by digest.
pub const MANIFEST_CACHE_BYTES: u64 = 16 << 20;

#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<Digest, Bytes> for ByteWeight {
    fn weight(&self, _: &Digest, bytes: &Bytes) -> u64 {
        bytes.len() as u64 + 64
    }
}

/// Number of lock stripes serializing requests on the same upload within this process.
const UPLOAD_LOCK_STRIPES: usize = 64;

/// Where a chunk says it goes: `Content-Range: <start>-<end>` as `start` and `len = end - start + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// The offset the chunk starts at; must be the upload's current offset.
    pub start: u64,
    /// The number of bytes the chunk declares; the body must carry exactly these.
    pub len: u64,
}

/// The state of an upload session, as the HTTP layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session's id.
    pub id: UploadId,
    /// Bytes received so far.
    pub offset: u64,
}

/// A blob being read.
pub struct BlobRead {
    /// The blob's total size.
    pub size: u64,
    /// The bytes streamed: the whole blob, or the requested range.
    pub range: Range<u64>,
    /// The bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead").field("size", &self.size).field("range", &self.range).finish_non_exhaustive()
    }
}

/// The outcome of a manifest push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its subject, when it has one (the HTTP layer answers `OCI-Subject`).
    pub subject: Option<Digest>,
}

/// The registry engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    limits: Limits,
    upload_locks: Arc<[tokio::sync::Mutex<()>]>,
    manifest_bytes: Arc<quick_cache::sync::Cache<Digest, Bytes, ByteWeight>>,
    gc_lock: Arc<tokio::sync::Mutex<()>>,
    clock: SharedClock,
    /// Events gathered and appended in batches: pulls, logins.
    batched: Arc<BatchedEvents>,
    /// Whether pulls are recorded.
    record_pulls: bool,
    /// Where the immutability rules of a repository come from (none: no tag is protected).
    protections: Option<Arc<dyn crate::immutable::Protections>>,
    /// What a pull must satisfy (none: everything may be pulled).
    pull_policies: Vec<Arc<dyn crate::pull_policy::PullPolicies>>,
    /// Whether deleting a manifest deletes its accessories (Harbor's rule; off: distribution's).
    delete_accessories: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Registry {
    /// An engine over a blob store and a metadata store.
    pub fn new(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetadataStore>, limits: Limits) -> Registry {
        let upload_locks = (0..UPLOAD_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let manifest_bytes = Arc::new(quick_cache::sync::Cache::with_weighter(4096, MANIFEST_CACHE_BYTES, ByteWeight));
        Registry {
            batched: BatchedEvents::new(meta.clone()),
            record_pulls: true,
            blobs,
            meta,
            limits,
            upload_locks,
            manifest_bytes,
            gc_lock: Arc::default(),
            clock: registry_core::time::system_clock(),
            protections: None,
            pull_policies: Vec::new(),
            delete_accessories: false,
        }
    }

    /// The same engine deleting, with a manifest deleted by digest, its accessories: its
    /// referrers and the manifests tagged `sha256-<hex>.sig`, `.att` or `.sbom` after it
    /// (cosign's tag scheme), and theirs in turn — as Harbor does. Off by default (distribution
    /// keeps them).
    pub fn with_accessory_deletion(mut self, delete: bool) -> Registry {
        self.delete_accessories = delete;
        self
    }

    /// The same engine also asking `policies` before it serves a pulled manifest (see
    /// [`crate::pull_policy`]); policies are asked in the order they were added.
    pub fn with_pull_policies(mut self, policies: Arc<dyn crate::pull_policy::PullPolicies>) -> Registry {
        self.pull_policies.push(policies);
        self
    }

    /// The same engine asking `protections` which tags of a repository are immutable before a
    /// tag moves or goes (see [`crate::immutable`]).
    pub fn with_protections(mut self, protections: Arc<dyn crate::immutable::Protections>) -> Registry {
        self.protections = Some(protections);
        self
    }

    /// The immutability rules in force for `repository` now.
    pub async fn protection(&self, repository: &RepositoryName) -> Result<Protection> {
        match &self.protections {
            Some(p) => p.protection(repository).await,
            None => Ok(Protection::none()),
        }
    }

    /// Records a refusal by quota as a `QUOTA_EXCEED` event (gathered, appended within a
    /// second: the refused transaction recorded nothing), and returns the error.
    fn refused(&self, e: Error, repository: &RepositoryName, operator: &Operator) -> Error {
        if let Error::QuotaExceeded { project, .. } = &e {
            let event = crate::quota::quota_event(
                EventAction::QuotaExceed,
                operator.clone(),
                self.clock.now_millis(),
                project,
                repository.as_str(),
                e.to_string(),
            );
            self.batched.record(event);
        }
        e
    }

    /// The same engine recording pulls (`PULL_ARTIFACT` events; on by default) or not.
    pub fn with_pull_events(mut self, record: bool) -> Registry {
        self.record_pulls = record;
        self
    }

    /// Records an event that goes with no change (a login): gathered and appended within a
    /// second, as pulls are.
    pub fn record_event(&self, event: Event) {
        self.batched.record(event);
    }

    /// The hits and misses of the engine's manifest cache, the metadata store's caches and the blob
    /// store's.
    pub fn cache_stats(&self) -> Vec<crate::meta::cache::CacheStats> {
        let cache = &self.manifest_bytes;
        let mut stats = vec![crate::meta::cache::CacheStats::weighed(
            "manifest_bytes",
            cache.hits(),
            cache.misses(),
            cache.len(),
            cache.weight(),
        )];
        stats.extend(self.meta.cache_stats());
        stats.extend(self.blobs.cache_stats());
        stats
    }

    /// Appends the events gathered so far (at shutdown; they are appended every second
    /// otherwise).
    pub async fn flush_events(&self) {
        self.batched.flush().await;
    }

    /// The same engine reading time from `clock` (upload and push times, garbage collection's
    /// grace period). The filesystem blob store dates blobs by the system clock: inject another
    /// clock only over stores that date objects by it (the memory stores).
    pub fn with_clock(mut self, clock: SharedClock) -> Registry {
        self.clock = clock;
        self
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// An engine on memory stores, for tests and examples.
    pub fn in_memory() -> Registry {
        Registry::new(
            Arc::new(crate::MemoryBlobStore::new()),
            Arc::new(crate::MemoryMetadataStore::new()),
            Limits::default(),
        )
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The blob store.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The metadata store.
    pub fn metadata_store(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    pub(crate) fn gc_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.gc_lock
    }

    pub(crate) fn forget_manifest_bytes(&self, digest: &Digest) {
        self.manifest_bytes.remove(digest);
    }

    /// Removes an abandoned upload's bytes and session (garbage collection).
    pub(crate) async fn abandon_upload(&self, id: &UploadId) -> Result<()> {
        let _guard = self.upload_lock(id).lock().await;
        let lease = UploadLease::take(&self.meta, &self.clock, id).await?;
        let state = self.meta.get_upload(id).await?.map(|r| r.store_state);
        self.blobs.upload_delete(id, state.as_deref()).await?;
        self.meta.delete_upload(id).await?;
        lease.release().await;
        Ok(())
    }

    fn upload_lock(&self, id: &UploadId) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.upload_locks[(h.finish() as usize) % UPLOAD_LOCK_STRIPES]
    }

    // ---- uploads ----

    /// Opens an upload session (`POST /v2/<name>/blobs/uploads/`).
    pub async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        self.open_upload(repository, None).await
    }

    async fn open_upload(&self, repository: &RepositoryName, digest: Option<&Digest>) -> Result<UploadStatus> {
        let id = UploadId::new_random();
        let store_state = self.blobs.upload_create(&id, digest).await?;
        let record = UploadRecord {
            repository: repository.clone(),
            offset: 0,
            verifier_state: DigestVerifier::new(Algorithm::Sha256).save().to_bytes(),
            started_at: self.clock.now_secs(),
            store_state,
        };
        if let Err(e) = self.meta.create_upload(&id, &record).await {
            let _ = self.blobs.upload_delete(&id, Some(&record.store_state)).await;
            return Err(e);
        }
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn load_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadRecord> {
        match self.meta.get_upload(id).await? {
            Some(r) if &r.repository == repository => Ok(r),
            _ => Err(Error::UploadUnknown),
        }
    }

    /// The state of an upload session (`GET /v2/<name>/blobs/uploads/<id>`).
    pub async fn upload_status(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadStatus> {
        let record = self.load_upload(repository, id).await?;
        Ok(UploadStatus { id: id.clone(), offset: record.offset })
    }

    /// Appends a chunk (`PATCH`). `range` is the chunk's Content-Range when the client sent one:
    /// it must start at the current offset and the body must carry exactly its length
    /// ([`Error::RangeInvalid`] otherwise, and the upload stays where it was).
    pub async fn append_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        range: Option<ChunkRange>,
        body: &mut BodyStream<'_>,
    ) -> Result<UploadStatus> {
        let _guard = self.upload_lock(id).lock().await;
        let lease = UploadLease::take(&self.meta, &self.clock, id).await?;
        let record = self.load_upload(repository, id).await?;
        let record = self.append_locked(id, record, range, body, true).await;
        lease.release().await;
        Ok(UploadStatus { id: id.clone(), offset: record?.offset })
    }

    /// Appends `body` to the upload; with `save`, records the new offset and verifier state
    /// (a chunk the client is told about), else only returns them (the last bytes of an upload
    /// that completes in the same request: the session ends with it, so recording it would be a
    /// wasted commit; should the request fail, the next append cuts the file back to the record).
    async fn append_locked(
        &self,
        id: &UploadId,
        record: UploadRecord,
        range: Option<ChunkRange>,
        body: &mut BodyStream<'_>,
        save: bool,
    ) -> Result<UploadRecord> {
        if let Some(range) = range
            && range.start != record.offset
        {
            return Err(Error::RangeInvalid { offset: record.offset });
        }
        let state = VerifierState::from_bytes(&record.verifier_state)?;
        // More bytes than the range declares fail as soon as they arrive.
        let limit = range.map(|range| record.offset + range.len);
        let mut hashing = HashingStream::new(body, DigestVerifier::restore(&state)?, limit);
        let (new_len, new_state) =
            match self.blobs.upload_append(id, &record.store_state, record.offset, &mut hashing).await {
                Err(Error::Core(registry_core::Error::SizeExceeded { .. })) if range.is_some() => {
                    return Err(Error::RangeInvalid { offset: record.offset });
                }
                other => other?,
            };
        // Fewer bytes than declared: the chunk is refused and the recorded offset does not move
        // (the bytes past it are cut off by the next append, or at publication).
        if let Some(range) = range
            && new_len != record.offset + range.len
        {
            return Err(Error::RangeInvalid { offset: record.offset });
        }
        let verifier = hashing.into_verifier().await?;
        if verifier.size() != new_len {
            return Err(Error::invariant(format!(
                "upload store reports {new_len} bytes, the verifier saw {}",
                verifier.size()
            )));
        }
        let updated = UploadRecord {
            offset: new_len,
            verifier_state: verifier.save().to_bytes(),
            store_state: new_state,
            ..record.clone()
        };
        if save && !self.meta.update_upload(id, record.offset, &updated).await? {
            return Err(Error::UploadInvalid { reason: "the upload was changed by a concurrent request".into() });
        }
        Ok(updated)
    }

    /// Completes an upload (`PUT ?digest=`), with an optional last chunk: verifies digest and
    /// size, publishes the blob and links it into the repository. On a digest mismatch the upload
    /// is cancelled, so nothing of it remains.
    ///
    /// A blob that would take the repository's project past its quota is refused
    /// ([`Error::QuotaExceeded`], recorded as `QUOTA_EXCEED` for `operator`); the upload is
    /// cancelled with it.
    pub async fn finish_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: Option<&mut BodyStream<'_>>,
        operator: &Operator,
    ) -> Result<u64> {
        let _guard = self.upload_lock(id).lock().await;
        let lease = UploadLease::take(&self.meta, &self.clock, id).await?;
        let result = self.finish_leased(repository, id, digest, range, body).await;
        lease.release().await;
        result.map_err(|e| self.refused(e, repository, operator))
    }

    async fn finish_leased(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        range: Option<ChunkRange>,
        body: Option<&mut BodyStream<'_>>,
    ) -> Result<u64> {
        let mut record = match self.load_upload(repository, id).await {
            Ok(record) => record,
            // A completion answered by a replica that died before answering, retried here (a
            // proxy retries a PUT): the blob landed, so the completion succeeded.
            Err(Error::UploadUnknown) => match self.meta.blob_link(repository, digest).await? {
                Some(size) => return Ok(size),
                None => return Err(Error::UploadUnknown),
            },
            Err(e) => return Err(e),
        };
        if let Some(body) = body {
            record = self.append_locked(id, record, range, body, false).await?;
        }
        let verified = match self.verify_upload(id, &record, digest).await {
            Ok(size) => size,
            Err(e) => {
                if matches!(e, Error::Core(_)) {
                    self.discard_upload(id, &record.store_state).await;
                }
                return Err(e);
            }
        };
        let hold = DigestHold::take(&self.meta, &self.clock, digest).await?;
        let published = match self.blobs.upload_publish(id, &record.store_state, digest, verified).await {
            Ok(()) => self.meta.complete_upload(id, repository, digest, verified).await,
            Err(e) => Err(e),
        };
        hold.release().await;
        if let Err(e @ Error::QuotaExceeded { .. }) = published {
            // Nothing of it is kept: the session goes (its bytes were published under their
            // digest, unlinked: garbage collection takes them unless another push links them).
            self.discard_upload(id, &record.store_state).await;
            return Err(e);
        }
        published?;
        Ok(verified)
    }

    /// Checks the upload's bytes against `digest`: from the saved state when the algorithm is the
    /// one computed while streaming, else by reading the upload once more.
    async fn verify_upload(&self, id: &UploadId, record: &UploadRecord, digest: &Digest) -> Result<u64> {
        let state = VerifierState::from_bytes(&record.verifier_state)?;
        if state.algorithm == digest.algorithm() {
            let mut verifier = DigestVerifier::restore(&state)?;
            verifier.expect(digest, None)?;
            return Ok(verifier.finish()?.size);
        }
        let mut verifier = DigestVerifier::expecting(digest, Some(record.offset));
        let mut stream = self.blobs.upload_read(id, &record.store_state, record.offset).await?;
        while let Some(chunk) = stream.next().await {
            verifier.update(&chunk?)?;
        }
        Ok(verifier.finish()?.size)
    }

    async fn discard_upload(&self, id: &UploadId, state: &[u8]) {
        if let Err(e) = self.blobs.upload_delete(id, Some(state)).await {
            tracing::warn!(upload = %id, error = %e, "could not remove a failed upload's bytes");
        }
        if let Err(e) = self.meta.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "could not remove a failed upload's session");
        }
    }

    /// Pushes a whole blob in one request (`POST ?digest=`, or `PUT` after an empty `POST`).
    pub async fn push_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        body: &mut BodyStream<'_>,
        operator: &Operator,
    ) -> Result<u64> {
        let status = self.open_upload(repository, Some(digest)).await?;
        let result = self.finish_upload(repository, &status.id, digest, None, Some(body), operator).await;
        if result.is_err() {
            let state = self.meta.get_upload(&status.id).await.ok().flatten().map(|r| r.store_state);
            self.discard_upload(&status.id, state.as_deref().unwrap_or_default()).await;
        }
        result
    }

    /// Cancels an upload (`DELETE /v2/<name>/blobs/uploads/<id>`).
    pub async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<()> {
        let _guard = self.upload_lock(id).lock().await;
        let lease = UploadLease::take(&self.meta, &self.clock, id).await?;
        let record = self.load_upload(repository, id).await;
        let result = match record {
            Ok(record) => match self.blobs.upload_delete(id, Some(&record.store_state)).await {
                Ok(()) => self.meta.delete_upload(id).await.map(drop),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        lease.release().await;
        result
    }

    // ---- blobs ----

    /// Links a blob of `from` into `repository` (`POST ?mount=&from=`). `None` when `from` does not
    /// hold it: the caller then opens an upload session instead, as the spec says. Refused
    /// ([`Error::QuotaExceeded`]) when the blob would take the project past its quota.
    pub async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
        operator: &Operator,
    ) -> Result<Option<u64>> {
        match self.meta.mount_blob(repository, from, digest).await {
            Ok(size) => Ok(size),
            // Being garbage-collected: the client uploads it instead.
            Err(Error::Collecting { .. }) => Ok(None),
            Err(e) => Err(self.refused(e, repository, operator)),
        }
    }

    /// The size of a blob in a repository (`HEAD /v2/<name>/blobs/<digest>`).
    pub async fn stat_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.meta.blob_link(repository, digest).await?.ok_or_else(|| Error::BlobUnknown { digest: digest.clone() })
    }

    /// Reads a blob, whole or a byte range given as `(start, inclusive end)` of which the end may be
    /// open (`GET /v2/<name>/blobs/<digest>`, with `Range: bytes=start-end`).
    pub async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead> {
        let size = self.stat_blob(repository, digest).await?;
        let range = match range {
            None => 0..size,
            Some((start, end)) => {
                let end = end.map(|e| e.saturating_add(1)).unwrap_or(size).min(size);
                if start >= size || start >= end {
                    return Err(Error::RangeNotSatisfiable { size });
                }
                start..end
            }
        };
        let whole = range.start == 0 && range.end == size;
        let body = self.blobs.read(digest, (!whole).then(|| range.clone())).await?;
        Ok(BlobRead { size, range, body })
    }

    /// Where the client may fetch a blob of the repository directly (a presigned URL), when the
    /// blob store redirects downloads.
    pub async fn blob_redirect(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<String>> {
        if !self.blobs.redirects() {
            // Streamed: `read_blob` checks the repository's link (one look-up per GET).
            return Ok(None);
        }
        // The link first: a store may act on the request (the blob cache starts a copy), and
        // must only for a blob the caller may read.
        self.stat_blob(repository, digest).await?;
        self.blobs.download_url(digest).await
    }

    /// Removes a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`). The bytes stay until
    /// garbage collection finds no repository or manifest using them.
    pub async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.meta.unlink_blob(repository, digest).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown { digest: digest.clone() })
        }
    }

    // ---- manifests ----

    /// Stores a manifest (`PUT /v2/<name>/manifests/<reference>`).
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        operator: &Operator,
    ) -> Result<PushedManifest> {
        if bytes.len() > self.limits.max_manifest_bytes {
            return Err(Error::TooLarge { what: "manifest", limit: self.limits.max_manifest_bytes as u64 });
        }
        let manifest = Manifest::parse(&bytes, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::compute(expected.algorithm(), &bytes);
                if &actual != expected {
                    return Err(Error::ManifestDigestMismatch { expected: expected.clone(), actual });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&bytes),
        };
        for blob in manifest.blobs() {
            if self.meta.blob_link(repository, &blob.digest).await?.is_none() {
                return Err(Error::ManifestBlobUnknown { digest: blob.digest.clone() });
            }
        }
        for child in &manifest.manifests {
            if self.meta.get_manifest(repository, &child.digest).await?.is_none() {
                return Err(Error::ManifestBlobUnknown { digest: child.digest.clone() });
            }
        }
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: manifest.media_type().to_owned(),
            size: bytes.len() as u64,
            artifact_type: manifest.effective_artifact_type().map(str::to_owned),
            annotations: manifest.annotations.clone(),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            references: manifest.blobs().chain(manifest.manifests.iter()).map(|d| d.digest.clone()).collect(),
            pushed_at: self.clock.now_secs(),
        };
        let events = recorder::pushed(
            self.clock.now_millis(),
            operator,
            recorder::artifact(repository, &record, reference.as_tag()),
        );
        let protection = match reference.as_tag() {
            Some(_) => self.protection(repository).await?,
            None => Protection::none(),
        };
        let hold = DigestHold::take(&self.meta, &self.clock, &digest).await?;
        let stored = match self.blobs.put(&digest, bytes.clone()).await {
            Ok(()) => self.meta.put_manifest(repository, &record, reference.as_tag(), &protection, &events).await,
            Err(e) => Err(e),
        };
        hold.release().await;
        stored.map_err(|e| self.refused(e, repository, operator))?;
        self.manifest_bytes.insert(digest.clone(), bytes);
        Ok(PushedManifest { digest, subject: record.subject })
    }

    /// The record of a manifest by tag or digest (`HEAD /v2/<name>/manifests/<reference>`).
    pub async fn stat_manifest(&self, repository: &RepositoryName, reference: &Reference) -> Result<ManifestRecord> {
        let unknown = || Error::ManifestUnknown { reference: reference.to_string() };
        let record = match reference {
            Reference::Digest(d) => self.meta.get_manifest(repository, d).await?,
            Reference::Tag(t) => self.meta.tagged_manifest(repository, t).await?,
        };
        record.ok_or_else(unknown)
    }

    /// A manifest's record and bytes (`GET /v2/<name>/manifests/<reference>`).
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<(ManifestRecord, Bytes)> {
        let record = self.stat_manifest(repository, reference).await?;
        if let Some(bytes) = self.manifest_bytes.get(&record.digest) {
            return Ok((record, bytes));
        }
        let mut stream = self.blobs.read(&record.digest, None).await?;
        let mut bytes = BytesMut::with_capacity(record.size as usize);
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let bytes = bytes.freeze();
        if bytes.len() as u64 != record.size {
            return Err(Error::Corrupt {
                what: format!("manifest {} has {} bytes, not {}", record.digest, bytes.len(), record.size),
                source: None,
            });
        }
        self.manifest_bytes.insert(record.digest.clone(), bytes.clone());
        Ok((record, bytes))
    }

    /// [`Registry::get_manifest`] for a client that pulls it: records a `PULL_ARTIFACT` event
    /// (gathered, appended within a second) unless pulls are not recorded.
    pub async fn pull_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        operator: &Operator,
    ) -> Result<(ManifestRecord, Bytes)> {
        let pulled = self.get_manifest(repository, reference).await?;
        for policy in &self.pull_policies {
            policy.admit(repository, &pulled.0, operator).await?;
        }
        if self.record_pulls {
            let resource = recorder::artifact(repository, &pulled.0, reference.as_tag());
            self.batched.record(Event::new(
                self.clock.now_millis(),
                operator.clone(),
                EventAction::PullArtifact,
                resource,
            ));
        }
        Ok(pulled)
    }

    /// Deletes a manifest by digest (with its tags and referrer entry), or only a tag
    /// (`DELETE /v2/<name>/manifests/<reference>`).
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        operator: &Operator,
    ) -> Result<()> {
        let now = self.clock.now_millis();
        let protection = self.protection(repository).await?;
        let deleted = match reference {
            Reference::Digest(d) => {
                let resource = recorder::deleted(repository, Some(d), None);
                let event = Event::new(now, operator.clone(), EventAction::DeleteArtifact, resource);
                let deleted = self.meta.delete_manifest(repository, d, &protection, &[event]).await?;
                if deleted && self.delete_accessories {
                    self.delete_accessories_of(repository, d, &protection, operator).await;
                }
                deleted
            }
            Reference::Tag(t) => {
                let resource = recorder::deleted(repository, None, Some(t));
                let event = Event::new(now, operator.clone(), EventAction::DeleteTag, resource);
                self.meta.delete_tag(repository, t, &protection, &[event]).await?
            }
        };
        if deleted { Ok(()) } else { Err(Error::ManifestUnknown { reference: reference.to_string() }) }
    }

    /// Deletes what belonged to the deleted manifest `subject` (see
    /// [`Registry::with_accessory_deletion`]), depth first. The subject is gone already: an
    /// accessory that cannot go (an immutable tag, a store failure) is logged and left to garbage
    /// collection, which deletes referrers whose subject is gone.
    async fn delete_accessories_of(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        protection: &Protection,
        operator: &Operator,
    ) {
        /// Accessories of accessories (a signature of an SBOM) are followed this deep.
        const DEPTH: usize = 4;
        let mut todo = vec![(subject.clone(), 0)];
        while let Some((subject, depth)) = todo.pop() {
            let found = match self.accessories(repository, &subject).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(%repository, %subject, error = %e, "listing a deleted manifest's accessories");
                    continue;
                }
            };
            for accessory in found {
                let resource = recorder::deleted(repository, Some(&accessory), None);
                let event =
                    Event::new(self.clock.now_millis(), operator.clone(), EventAction::DeleteArtifact, resource);
                match self.meta.delete_manifest(repository, &accessory, protection, &[event]).await {
                    Ok(true) if depth + 1 < DEPTH => todo.push((accessory, depth + 1)),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%repository, %subject, %accessory, error = %e, "deleting an accessory")
                    }
                }
            }
        }
    }

    /// The digests of `subject`'s accessories: its referrers and what cosign's tags name.
    async fn accessories(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<Digest>> {
        let mut found: Vec<Digest> =
            self.meta.referrers(repository, subject).await?.into_iter().map(|r| r.digest).collect();
        for suffix in ["sig", "att", "sbom"] {
            let Ok(tag) = registry_core::Tag::parse(&format!("{}-{}.{suffix}", subject.algorithm(), subject.hex()))
            else {
                continue;
            };
            if let Some(digest) = self.meta.resolve_tag(repository, &tag).await?
                && !found.contains(&digest)
                && &digest != subject
            {
                found.push(digest);
            }
        }
        Ok(found)
    }

    /// Points `tag` at the manifest `digest` of the repository (the management API's "add tag"),
    /// recording a `CREATE_TAG` event in the same transaction.
    pub async fn tag_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        tag: &registry_core::Tag,
        operator: &Operator,
    ) -> Result<()> {
        let record = self.stat_manifest(repository, &Reference::Digest(digest.clone())).await?;
        let resource = recorder::artifact(repository, &record, Some(tag));
        let event = Event::new(self.clock.now_millis(), operator.clone(), EventAction::CreateTag, resource);
        // Held like a push, so that collection cannot take the manifest between the look-up and
        // the tag.
        let protection = self.protection(repository).await?;
        let hold = DigestHold::take(&self.meta, &self.clock, digest).await?;
        let tagged = self.meta.put_manifest(repository, &record, Some(tag), &protection, &[event]).await;
        hold.release().await;
        tagged
    }

    // ---- listings ----

    /// A page of a repository's tags (`GET /v2/<name>/tags/list?n=&last=`); `n` is capped by the
    /// page limit.
    pub async fn tags(&self, repository: &RepositoryName, last: Option<&str>, n: Option<usize>) -> Result<Page> {
        let limit = n.unwrap_or(self.limits.max_page).min(self.limits.max_page);
        self.meta
            .list_tags(repository, last, limit)
            .await?
            .ok_or_else(|| Error::NameUnknown { name: repository.to_string() })
    }

    /// Up to `limit` manifests of a repository after `after` (digest order), with their tags,
    /// the manifests listing them and their pulls (the management API's artifacts).
    pub async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<crate::meta::ManifestEntry>> {
        self.meta.manifests(repository, after, limit).await
    }

    // ---- quotas ----

    /// The quota of `project` (usage and limit); a project that never held anything and was
    /// never given a limit has none.
    pub async fn quota(&self, project: &str) -> Result<Option<crate::quota::Quota>> {
        self.meta.quota(project).await
    }

    /// Sets `project`'s limit (`None`: none) and warning percentage, recording an
    /// `UPDATE_QUOTA` event for `operator`.
    pub async fn set_quota(
        &self,
        project: &str,
        limit: Option<u64>,
        warn_percent: u8,
        operator: &Operator,
    ) -> Result<crate::quota::Quota> {
        let detail = match limit {
            Some(l) => format!("limit {}", crate::quota::bytes(l)),
            None => "no limit".to_owned(),
        };
        let resource = registry_core::event::Resource {
            project: Some(project.to_owned()),
            name: Some(project.to_owned()),
            detail: Some(detail),
            ..registry_core::event::Resource::default()
        };
        let event = Event::new(self.clock.now_millis(), operator.clone(), EventAction::UpdateQuota, resource);
        self.meta.set_quota(project, limit, warn_percent, &[event]).await
    }

    /// Recomputes every project's usage from its repositories' links and manifests (each
    /// digest once per project) and compares it with the counters the stores keep: the
    /// projects whose counter differs. Reads every link and manifest: a check, not a listing.
    pub async fn verify_quotas(&self) -> Result<Vec<crate::quota::Drift>> {
        use std::collections::{BTreeMap, HashMap};
        const PAGE: usize = 1000;
        let mut actual: BTreeMap<String, HashMap<Digest, u64>> = BTreeMap::new();
        let mut last: Option<String> = None;
        loop {
            let page = self.meta.list_repositories(last.as_deref(), PAGE).await?;
            for name in &page.entries {
                let Ok(repository) = RepositoryName::parse(name) else { continue };
                let held = actual.entry(crate::quota::project_of(name).to_owned()).or_default();
                let mut after: Option<Digest> = None;
                loop {
                    let links = self.meta.gc_links(&repository, after.as_ref(), PAGE).await?;
                    after = links.last().map(|l| l.digest.clone());
                    let done = links.len() < PAGE;
                    held.extend(links.into_iter().map(|l| (l.digest, l.size)));
                    if done {
                        break;
                    }
                }
                let mut after: Option<Digest> = None;
                loop {
                    let manifests = self.meta.manifests(&repository, after.as_ref(), PAGE).await?;
                    after = manifests.last().map(|m| m.record.digest.clone());
                    let done = manifests.len() < PAGE;
                    held.extend(manifests.into_iter().map(|m| (m.record.digest, m.record.size)));
                    if done {
                        break;
                    }
                }
            }
            if !page.more {
                break;
            }
            last = page.entries.last().cloned();
        }
        let counted: BTreeMap<String, u64> =
            self.meta.quotas().await?.into_iter().map(|q| (q.project, q.used)).collect();
        let projects: std::collections::BTreeSet<&String> = actual.keys().chain(counted.keys()).collect();
        Ok(projects
            .into_iter()
            .filter_map(|p| {
                let actual = actual.get(p).map_or(0, |d| d.values().sum());
                let counted = counted.get(p).copied().unwrap_or(0);
                (actual != counted).then(|| crate::quota::Drift { project: p.clone(), counted, actual })
            })
            .collect())
    }

    /// A page of the catalog (`GET /v2/_catalog?n=&last=`).
    pub async fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Page> {
        let limit = n.unwrap_or(self.limits.max_page).min(self.limits.max_page);
        self.meta.list_repositories(last, limit).await
    }

    /// The manifests whose subject is `subject`, optionally only those of one artifact type
    /// (`GET /v2/<name>/referrers/<digest>?artifactType=`).
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestRecord>> {
        let mut all = self.meta.referrers(repository, subject).await?;
        if let Some(filter) = artifact_type {
            all.retain(|m| m.artifact_type.as_deref() == Some(filter));
        }
        Ok(all)
    }
}
