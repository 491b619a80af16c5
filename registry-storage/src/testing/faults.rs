//! Fault injection: wrappers around a [`BlobStore`] and a [`MetadataStore`] that fail chosen
//! operations with `EIO` or `ENOSPC` until the fault is cleared, as a failing or full disk does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use registry_storage::testing::faults::{FaultKind, FaultPoint, Faults, FaultyBlobStore};
//! let faults = Faults::default();
//! let store = FaultyBlobStore::new(registry_storage::MemoryBlobStore::new(), faults.clone());
//! faults.fail(FaultPoint::BlobWrite, FaultKind::NoSpace);
//! // ... every write now fails with ENOSPC, until:
//! faults.clear();
//! # }
//! ```

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::event::{Event, EventFilter};
use registry_core::{Digest, RepositoryName, Tag};

use crate::blob::{BlobStore, BodyStream, ByteStream, StoredObject, UploadId};
use crate::error::{Error, Result};
use crate::immutable::Protection;
use crate::meta::{GcLink, Holder, ManifestEntry, ManifestRecord, MetadataStore, Page, UploadRecord};
use crate::quota::{Quota, QuotaStore};

/// Where a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Opening or streaming a blob or an upload.
    BlobRead,
    /// Writing: a small put, or an upload's append (after part of the chunk reached the store,
    /// as a disk filling up mid-write).
    BlobWrite,
    /// Publishing an upload at its digest.
    BlobPublish,
    /// Deleting blobs or uploads.
    BlobDelete,
    /// Every metadata read.
    MetaRead,
    /// Every metadata write.
    MetaWrite,
}

/// The error a fault raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`: the device failed.
    Io,
    /// `ENOSPC`: the device is full.
    NoSpace,
}

impl FaultKind {
    fn error(self) -> Error {
        let code = match self {
            FaultKind::Io => 5,
            FaultKind::NoSpace => 28,
        };
        Error::from(std::io::Error::from_raw_os_error(code))
    }
}

/// The faults in force, shared by the wrappers (cheap to clone); also what the metadata
/// wrapper counts of the reads through it ([`Faults::manifests_read`]).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    points: Arc<Mutex<HashMap<FaultPoint, FaultKind>>>,
    manifests_read: Arc<std::sync::atomic::AtomicU64>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FaultPoint, FaultKind>> {
        self.points.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many manifest records the metadata store has returned so far (listed, paged, read
    /// one by one or as referrers): what a test of a listing's cost counts.
    pub fn manifests_read(&self) -> u64 {
        self.manifests_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self, n: usize) {
        self.manifests_read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// From now on, operations at `point` fail with `kind`.
    pub fn fail(&self, point: FaultPoint, kind: FaultKind) {
        self.lock().insert(point, kind);
    }

    /// Every fault cleared: the stores work again.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn check(&self, point: FaultPoint) -> Result<()> {
        match self.lock().get(&point) {
            Some(kind) => Err(kind.error()),
            None => Ok(()),
        }
    }
}

/// A [`BlobStore`] that fails where [`Faults`] say.
pub struct FaultyBlobStore<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyBlobStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: Faults) -> Self {
        FaultyBlobStore { inner, faults }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for FaultyBlobStore<S> {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.stat(digest).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.read(digest, range).await
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.faults.check(FaultPoint::BlobWrite)?;
        self.inner.put(digest, bytes).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.faults.check(FaultPoint::BlobDelete)?;
        self.inner.delete(digest).await
    }

    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        self.faults.check(FaultPoint::BlobDelete)?;
        self.inner.delete_if_older(digest, cutoff).await
    }

    async fn upload_create(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>> {
        self.faults.check(FaultPoint::BlobWrite)?;
        self.inner.upload_create(id, digest).await
    }

    /// Under a write fault, the chunk's first frame reaches the store, then the "disk" fails: the
    /// store must cut the upload back to `offset`, as it does after any failed append.
    async fn upload_append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        let Err(fault) = self.faults.check(FaultPoint::BlobWrite) else {
            return self.inner.upload_append(id, state, offset, body).await;
        };
        let first = body.next().await;
        let partial: Vec<std::result::Result<Bytes, crate::BodyError>> = first.into_iter().collect();
        let mut partial = futures::stream::iter(partial);
        self.inner.upload_append(id, state, offset, &mut partial).await?;
        let mut failing = futures::stream::iter([Err::<Bytes, crate::BodyError>(Box::new(fault))]);
        match self.inner.upload_append(id, state, offset, &mut failing).await {
            Err(e) => Err(e),
            Ok(_) => Err(Error::invariant("injected fault was swallowed")),
        }
    }

    async fn upload_read(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.upload_read(id, state, len).await
    }

    async fn upload_publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()> {
        self.faults.check(FaultPoint::BlobPublish)?;
        self.inner.upload_publish(id, state, digest, size).await
    }

    async fn upload_delete(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()> {
        self.faults.check(FaultPoint::BlobDelete)?;
        self.inner.upload_delete(id, state).await
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.blob_info(digest).await
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.upload_info(id).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.list_blobs(after, limit).await
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        self.faults.check(FaultPoint::BlobRead)?;
        self.inner.list_uploads(after, limit).await
    }
}

/// A [`MetadataStore`] that fails where [`Faults`] say.
pub struct FaultyMetadataStore<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyMetadataStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: Faults) -> Self {
        FaultyMetadataStore { inner, faults }
    }

    fn read(&self) -> Result<()> {
        self.faults.check(FaultPoint::MetaRead)
    }

    fn write(&self) -> Result<()> {
        self.faults.check(FaultPoint::MetaWrite)
    }
}

#[async_trait]
impl<S: MetadataStore> MetadataStore for FaultyMetadataStore<S> {
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        self.write()?;
        self.inner.create_upload(id, record).await
    }

    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool> {
        self.write()?;
        self.inner.update_upload(id, expected_offset, record).await
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        self.read()?;
        self.inner.get_upload(id).await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool> {
        self.write()?;
        self.inner.delete_upload(id).await
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    async fn lease_upload(&self, id: &UploadId, token: u64, until_millis: u64, now_millis: u64) -> Result<bool> {
        self.faults.check(FaultPoint::MetaWrite)?;
        self.inner.lease_upload(id, token, until_millis, now_millis).await
    }

    async fn release_upload(&self, id: &UploadId, token: u64) -> Result<()> {
        self.faults.check(FaultPoint::MetaWrite)?;
        self.inner.release_upload(id, token).await
    }

    async fn lock_job(&self, job: &str) -> Result<Option<crate::JobLock>> {
        self.inner.lock_job(job).await
    }

    async fn hold_digest(&self, digest: &Digest, holder: u64, until_millis: u64) -> Result<()> {
        self.faults.check(FaultPoint::MetaWrite)?;
        self.inner.hold_digest(digest, holder, until_millis).await
    }

    async fn release_digest(&self, digest: &Digest, holder: u64) -> Result<()> {
        self.faults.check(FaultPoint::MetaWrite)?;
        self.inner.release_digest(digest, holder).await
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        self.write()?;
        self.inner.link_blob(repository, digest, size).await
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.write()?;
        self.inner.complete_upload(id, repository, digest, size).await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        self.write()?;
        self.inner.mount_blob(repository, from, digest).await
    }

    async fn blob_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        self.read()?;
        self.inner.blob_link(repository, digest).await
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        self.write()?;
        self.inner.unlink_blob(repository, digest).await
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        protection: &Protection,
        events: &[Event],
    ) -> Result<()> {
        self.write()?;
        self.inner.put_manifest(repository, record, tag, protection, events).await
    }

    async fn get_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.read()?;
        let found = self.inner.get_manifest(repository, digest).await?;
        self.faults.count(usize::from(found.is_some()));
        Ok(found)
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        self.write()?;
        self.inner.delete_manifest(repository, digest, protection, events).await
    }

    async fn resolve_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        self.read()?;
        self.inner.resolve_tag(repository, tag).await
    }

    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        self.faults.check(FaultPoint::MetaRead)?;
        let found = self.inner.tagged_manifest(repository, tag).await?;
        self.faults.count(usize::from(found.is_some()));
        Ok(found)
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        self.write()?;
        self.inner.delete_tag(repository, tag, protection, events).await
    }

    async fn set_label(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        label: u64,
        on: bool,
        events: &[Event],
    ) -> Result<bool> {
        self.write()?;
        self.inner.set_label(repository, digest, label, on, events).await
    }

    async fn drop_label(&self, label: u64) -> Result<u64> {
        self.write()?;
        self.inner.drop_label(label).await
    }

    async fn append_events(&self, events: &[Event]) -> Result<()> {
        self.write()?;
        self.inner.append_events(events).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read()?;
        self.inner.events_after(after, limit).await
    }

    async fn query_events(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)> {
        self.read()?;
        self.inner.query_events(filter, offset, limit).await
    }

    async fn trim_events(&self, before_ms: u64) -> Result<u64> {
        self.write()?;
        self.inner.trim_events(before_ms).await
    }

    async fn cursor(&self, name: &str) -> Result<u64> {
        self.read()?;
        self.inner.cursor(name).await
    }

    async fn advance_cursor(&self, name: &str, from: u64, to: u64) -> Result<bool> {
        self.write()?;
        self.inner.advance_cursor(name, from, to).await
    }

    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>> {
        self.read()?;
        self.inner.list_tags(repository, last, limit).await
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Page> {
        self.read()?;
        self.inner.list_repositories(last, limit).await
    }

    async fn referencing(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Digest>> {
        self.read()?;
        self.inner.referencing(repository, digest).await
    }

    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>> {
        self.read()?;
        let found = self.inner.referrers(repository, subject).await?;
        self.faults.count(found.len());
        Ok(found)
    }

    async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestEntry>> {
        self.read()?;
        let found = self.inner.manifests(repository, after, limit).await?;
        self.faults.count(found.len());
        Ok(found)
    }

    async fn artifacts(
        &self,
        repository: &RepositoryName,
        offset: usize,
        limit: usize,
    ) -> Result<crate::listing::ArtifactPage> {
        self.read()?;
        let page = self.inner.artifacts(repository, offset, limit).await?;
        self.faults.count(page.entries.len());
        Ok(page)
    }

    async fn manifest_entry(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestEntry>> {
        self.read()?;
        let found = self.inner.manifest_entry(repository, digest).await?;
        self.faults.count(usize::from(found.is_some()));
        Ok(found)
    }

    async fn repository_stats(&self, repository: &RepositoryName) -> Result<Option<crate::listing::RepositoryStats>> {
        self.read()?;
        self.inner.repository_stats(repository).await
    }

    async fn project_repositories(
        &self,
        project: &str,
        offset: usize,
        limit: usize,
    ) -> Result<crate::listing::RepositoryPage> {
        self.read()?;
        self.inner.project_repositories(project, offset, limit).await
    }

    async fn gc_links(&self, repository: &RepositoryName, after: Option<&Digest>, limit: usize) -> Result<Vec<GcLink>> {
        self.read()?;
        self.inner.gc_links(repository, after, limit).await
    }

    async fn gc_holders(&self, digests: &[Digest]) -> Result<Vec<Vec<Holder>>> {
        self.read()?;
        self.inner.gc_holders(digests).await
    }

    async fn gc_delete_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        pushed_before: u64,
    ) -> Result<Vec<Digest>> {
        self.write()?;
        self.inner.gc_delete_manifests(repository, digests, pushed_before).await
    }

    async fn gc_unlink(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        linked_before: u64,
    ) -> Result<Vec<(Digest, u64)>> {
        self.write()?;
        self.inner.gc_unlink(repository, digests, linked_before).await
    }

    async fn gc_mark(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        self.write()?;
        self.inner.gc_mark(digests).await
    }

    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()> {
        self.write()?;
        self.inner.gc_unmark(digests).await
    }

    async fn gc_marked(&self, limit: usize) -> Result<Vec<Digest>> {
        self.read()?;
        self.inner.gc_marked(limit).await
    }

    async fn expired_uploads(&self, started_before: u64, limit: usize) -> Result<Vec<UploadId>> {
        self.read()?;
        self.inner.expired_uploads(started_before, limit).await
    }
}

#[async_trait]
impl<S: MetadataStore> crate::jobs::JobQueue for FaultyMetadataStore<S> {
    async fn enqueue(&self, job: &crate::jobs::NewJob, now_ms: u64) -> Result<(u64, bool)> {
        self.write()?;
        self.inner.enqueue(job, now_ms).await
    }

    async fn claim(
        &self,
        kinds: &[crate::jobs::KindLimit],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<crate::jobs::Job>> {
        self.write()?;
        self.inner.claim(kinds, worker, now_ms, lease_ms).await
    }

    async fn heartbeat(
        &self,
        id: u64,
        claim: u64,
        lease_until_ms: u64,
        now_ms: u64,
        update: &crate::jobs::JobUpdate,
    ) -> Result<crate::jobs::Heartbeat> {
        self.write()?;
        self.inner.heartbeat(id, claim, lease_until_ms, now_ms, update).await
    }

    async fn finish(&self, id: u64, claim: u64, outcome: &crate::jobs::JobOutcome, now_ms: u64) -> Result<bool> {
        self.write()?;
        self.inner.finish(id, claim, outcome, now_ms).await
    }

    async fn cancel_job(&self, id: u64, now_ms: u64) -> Result<Option<crate::jobs::Job>> {
        self.write()?;
        self.inner.cancel_job(id, now_ms).await
    }

    async fn job(&self, id: u64) -> Result<Option<crate::jobs::Job>> {
        self.read()?;
        self.inner.job(id).await
    }

    async fn jobs(
        &self,
        filter: &crate::jobs::JobFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<crate::jobs::Job>, u64)> {
        self.read()?;
        self.inner.jobs(filter, offset, limit).await
    }

    async fn job_counts(&self) -> Result<Vec<crate::jobs::JobCount>> {
        self.read()?;
        self.inner.job_counts().await
    }

    async fn trim_jobs(&self, before_ms: u64) -> Result<u64> {
        self.write()?;
        self.inner.trim_jobs(before_ms).await
    }

    async fn trim_jobs_beyond(&self, kind: &str, keep: u64, at_most: u64) -> Result<u64> {
        self.write()?;
        self.inner.trim_jobs_beyond(kind, keep, at_most).await
    }
}

#[async_trait]
impl<S: MetadataStore> crate::policies::PolicyStore for FaultyMetadataStore<S> {
    async fn put_policy(&self, policy: &crate::policies::PolicyRecord, events: &[Event]) -> Result<u64> {
        self.write()?;
        self.inner.put_policy(policy, events).await
    }

    async fn policy(&self, kind: &str, id: u64) -> Result<Option<crate::policies::PolicyRecord>> {
        self.read()?;
        self.inner.policy(kind, id).await
    }

    async fn policies(&self, kind: &str, project_id: Option<u64>) -> Result<Vec<crate::policies::PolicyRecord>> {
        self.read()?;
        self.inner.policies(kind, project_id).await
    }

    async fn delete_policy(&self, kind: &str, id: u64, events: &[Event]) -> Result<bool> {
        self.write()?;
        self.inner.delete_policy(kind, id, events).await
    }

    async fn all_policies(&self) -> Result<Vec<crate::policies::PolicyRecord>> {
        self.read()?;
        self.inner.all_policies().await
    }

    async fn import_policy(&self, policy: &crate::policies::PolicyRecord) -> Result<()> {
        self.write()?;
        self.inner.import_policy(policy).await
    }
}

#[async_trait]
impl<S: MetadataStore> crate::reports::ReportStore for FaultyMetadataStore<S> {
    async fn put_report(
        &self,
        report: &crate::reports::ScanReport,
        replaces: Option<&str>,
        events: &[Event],
    ) -> Result<bool> {
        self.write()?;
        self.inner.put_report(report, replaces, events).await
    }

    async fn reports(&self, digest: &Digest) -> Result<Vec<crate::reports::ScanReport>> {
        self.read()?;
        self.inner.reports(digest).await
    }

    async fn delete_reports(&self, digest: &Digest) -> Result<u64> {
        self.write()?;
        self.inner.delete_reports(digest).await
    }

    async fn reports_after(
        &self,
        after: Option<&(Digest, String, String)>,
        limit: usize,
    ) -> Result<Vec<crate::reports::ScanReport>> {
        self.read()?;
        self.inner.reports_after(after, limit).await
    }
}

#[async_trait]
impl<S: MetadataStore> QuotaStore for FaultyMetadataStore<S> {
    async fn quota(&self, project: &str) -> Result<Option<Quota>> {
        self.read()?;
        self.inner.quota(project).await
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        self.read()?;
        self.inner.quotas().await
    }

    async fn set_quota(&self, project: &str, limit: Option<u64>, warn_percent: u8, events: &[Event]) -> Result<Quota> {
        self.write()?;
        self.inner.set_quota(project, limit, warn_percent, events).await
    }

    async fn remove_quota(&self, project: &str) -> Result<bool> {
        self.write()?;
        self.inner.remove_quota(project).await
    }
}
