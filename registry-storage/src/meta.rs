//! The metadata store: what the registry knows about repositories. Blob links, manifests, tags,
//! referrers and upload sessions, each change one transaction.
//!
//! Implementations: [`MemoryMetadataStore`](memory::MemoryMetadataStore) here; the embedded redb
//! store (`registry-redb`, the reference server's default) and PostgreSQL in their crates. Every one
//! passes `registry_storage::testing::metadata_store_suite` and the garbage-collection suite.

use std::collections::BTreeMap;

use async_trait::async_trait;
use registry_core::event::{Event, EventFilter};
use registry_core::{Digest, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

use crate::blob::UploadId;
use crate::error::Result;
use crate::immutable::Protection;

pub mod cache;
pub mod memory;

/// An upload session, saved after every acknowledged chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The repository the upload was started in.
    pub repository: RepositoryName,
    /// Bytes received and durable: where the next chunk must start.
    pub offset: u64,
    /// The digest verifier's saved state ([`registry_core::VerifierState::to_bytes`]), covering
    /// exactly `offset` bytes.
    #[serde(with = "hex_bytes")]
    pub verifier_state: Vec<u8>,
    /// When the session started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// The blob store's state of the upload, saved with the offset it belongs to (see
    /// [`BlobStore`](crate::BlobStore)'s module docs); empty for stores that keep none.
    #[serde(default, with = "hex_bytes")]
    pub store_state: Vec<u8>,
}

/// A held job lock ([`MetadataStore::lock_job`]). [`JobLock::release`] lets it go and returns
/// once another process can take it; dropped without that (a panic, a cancelled run), it is let
/// go as the store can (a database session closed).
#[derive(Default)]
pub struct JobLock {
    release: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl JobLock {
    /// A lock let go by running `release` (which also runs, or is dropped, when the lock is).
    pub fn new(release: impl std::future::Future<Output = ()> + Send + 'static) -> JobLock {
        JobLock { release: Some(Box::pin(release)) }
    }

    /// Lets the lock go.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.await;
        }
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobLock")
    }
}

/// What the registry keeps of a manifest, besides its bytes (which are in the blob store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type (what GET answers as Content-Type).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The artifact type the referrers API reports (artifactType, else the config's media type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest's annotations (reported by the referrers API).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The subject's digest, when the manifest has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// Every blob and child manifest it references (for garbage collection).
    #[serde(default)]
    pub references: Vec<Digest>,
    /// When it was pushed, in seconds since the Unix epoch (garbage collection's grace period).
    #[serde(default)]
    pub pushed_at: u64,
}

/// How often, and when last, a manifest was pulled: counted by the store from the pull events
/// it records (so batched pulls count when their batch is stored), dropped with the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pulls {
    /// Pulls recorded.
    pub count: u64,
    /// When the newest was, in milliseconds since the Unix epoch (0: never).
    pub last_ms: u64,
}

impl Pulls {
    /// The (repository, digest) an event counts a pull of, if it is a pull event.
    pub fn of_event(event: &registry_core::event::Event) -> Option<(&str, &str)> {
        if event.action != registry_core::event::EventAction::PullArtifact {
            return None;
        }
        Some((event.resource.repository.as_deref()?, event.resource.digest.as_deref()?))
    }

    /// These pulls with `count` more, the newest at `time_ms`.
    pub fn add(self, count: u64, time_ms: u64) -> Pulls {
        Pulls { count: self.count.saturating_add(count), last_ms: self.last_ms.max(time_ms) }
    }
}

/// A manifest of a repository with what points at it: its tags, the manifests listing it, its
/// pulls. Both the artifacts listing and garbage collection read manifests this way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Its record.
    pub record: ManifestRecord,
    /// The tags pointing at it, in text order.
    pub tags: Vec<String>,
    /// The manifests of the same repository that reference it (an index listing it).
    pub referenced_by: Vec<Digest>,
    /// Its pulls.
    pub pulls: Pulls,
    /// The labels on it (their ids), in id order.
    pub labels: Vec<u64>,
}

/// A blob link as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcLink {
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// When it was linked into the repository, in seconds since the Unix epoch.
    pub linked_at: u64,
    /// The manifests of the same repository that reference it.
    pub referenced_by: Vec<Digest>,
}

/// A repository that holds a digest, as a linked blob or as a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The repository.
    pub repository: String,
    /// Whether it holds the digest as a manifest (else as a blob link).
    pub manifest: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, in lexical order.
    pub entries: Vec<String>,
    /// Whether entries follow the last one of this page.
    pub more: bool,
}

/// Storage for the registry's metadata. Every method is one transaction. The same database
/// keeps the registry's job queue ([`JobQueue`](crate::jobs::JobQueue)), policies
/// ([`PolicyStore`](crate::policies::PolicyStore)) and quotas
/// ([`QuotaStore`](crate::quota::QuotaStore)).
///
/// Every write that adds or removes a holder of a digest (a blob link, a manifest) keeps its
/// project's usage in the same transaction, by the rules of [`crate::quota`]: a write that would
/// take a project past its limit fails with [`Error::QuotaExceeded`](crate::Error::QuotaExceeded)
/// and changes nothing. Writes that move or remove tags apply the [`Protection`] they are given
/// in the same transaction ([`Error::TagImmutable`](crate::Error::TagImmutable)).
#[async_trait]
pub trait MetadataStore:
    crate::jobs::JobQueue
    + crate::policies::PolicyStore
    + crate::quota::QuotaStore
    + crate::reports::ReportStore
    + Send
    + Sync
    + 'static
{
    /// Creates an upload session.
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()>;

    /// Replaces an upload session if it is still at `expected_offset` (compare and swap); `false`
    /// when another request moved it first, or it is gone.
    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool>;

    /// An upload session.
    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>>;

    /// Removes an upload session; `false` if it was absent.
    async fn delete_upload(&self, id: &UploadId) -> Result<bool>;

    /// Whether this store is shared by several processes, so that appends to one upload need a
    /// lease ([`MetadataStore::lease_upload`]) beside the in-process lock (default: no).
    fn shared(&self) -> bool {
        false
    }

    /// Leases the upload to the caller (`token`) until `until_millis`, so that one process at a
    /// time appends to it: `false` while another holds an unexpired lease. A holder may renew its
    /// lease. Stores used by one process (the in-process lock serializes appends already) need not
    /// implement it; a store shared by replicas must. An unknown upload is not refused here (the
    /// caller finds it unknown).
    async fn lease_upload(&self, id: &UploadId, token: u64, until_millis: u64, now_millis: u64) -> Result<bool> {
        let _ = (id, token, until_millis, now_millis);
        Ok(true)
    }

    /// Ends the caller's lease early.
    async fn release_upload(&self, id: &UploadId, token: u64) -> Result<()> {
        let _ = (id, token);
        Ok(())
    }

    /// Holds `digest` while the engine writes its bytes and links it (a publication, a manifest):
    /// until the hold is released, or `until_millis` passes (its process died),
    /// [`MetadataStore::gc_mark`] does not mark the digest, so garbage collection never deletes
    /// bytes that a write is about to link. [`Error::Collecting`] when it is marked now. A holder
    /// may renew its hold by holding again. A store of one process may keep holds in memory (they
    /// last no longer than the process).
    ///
    /// [`Error::Collecting`]: crate::Error::Collecting
    async fn hold_digest(&self, digest: &Digest, holder: u64, until_millis: u64) -> Result<()>;

    /// Ends a hold.
    async fn release_digest(&self, digest: &Digest, holder: u64) -> Result<()>;

    /// Takes the lock named `job` (garbage collection, a proxied blob's fetch), which one process
    /// at a time may hold: a guard while this process holds it, `None` while another does. A
    /// store of one process always grants it (callers serialize work within the process).
    async fn lock_job(&self, job: &str) -> Result<Option<JobLock>> {
        let _ = job;
        Ok(Some(JobLock::default()))
    }

    /// Links a published blob into a repository.
    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()>;

    /// Completes an upload: links its published blob into `repository` and removes the session,
    /// in one transaction where the store can (the default does the two steps in that order).
    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.link_blob(repository, digest, size).await?;
        self.delete_upload(id).await?;
        Ok(())
    }

    /// Links into `repository` a blob that `from` holds, checking in the same transaction that
    /// `from` still holds it (so garbage collection cannot have taken it); its size, or `None`
    /// when `from` does not hold it.
    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>>;

    /// The size of a blob linked into a repository, or `None`.
    async fn blob_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;

    /// Removes a blob's link from a repository; `false` if it was absent.
    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// Stores a manifest record and its referrer entry, and points `tag` at it, in one transaction
    /// with `events` (which get their ids in commit order: see [`MetadataStore::events_after`]).
    /// A tag that `protection` protects is not moved from another manifest.
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        protection: &Protection,
        events: &[Event],
    ) -> Result<()>;

    /// A manifest of a repository.
    async fn get_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>>;

    /// Removes a manifest with its tags, labels and referrer entry, recording `events` in the
    /// same transaction if it was there; `false` (and no event) if it was absent. Refused when
    /// `protection` protects one of its tags.
    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool>;

    /// The digest a tag points at.
    async fn resolve_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>>;

    /// The record of the manifest `tag` names: [`MetadataStore::resolve_tag`] then
    /// [`MetadataStore::get_manifest`], which a database store answers in one query.
    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        match self.resolve_tag(repository, tag).await? {
            Some(digest) => self.get_manifest(repository, &digest).await,
            None => Ok(None),
        }
    }

    /// Removes a tag (never the manifest), recording `events` in the same transaction if it was
    /// there; `false` (and no event) if it was absent. Refused when `protection` protects it.
    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool>;

    // ---- labels ----

    /// Puts label `label` on the manifest (`on`) or takes it off, with `events`; whether that
    /// changed anything. [`Error::ManifestUnknown`](crate::Error::ManifestUnknown) when the
    /// repository has no such manifest.
    async fn set_label(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        label: u64,
        on: bool,
        events: &[Event],
    ) -> Result<bool>;

    /// Takes label `label` off every manifest (the label was deleted); how many it was on.
    async fn drop_label(&self, label: u64) -> Result<u64>;

    // ---- the event stream ----
    //
    // Events written with the changes above, and appended on their own (pulls, in batches;
    // logins). Ids grow in commit order: a consumer that has read up to an id never later finds
    // a smaller one committed.

    /// Appends events on their own (no change to record with them).
    async fn append_events(&self, events: &[Event]) -> Result<()>;

    /// Up to `limit` events with ids above `after`, in id order.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>>;

    /// The events `filter` matches, newest first: `limit` of them after skipping `offset`, and
    /// how many match in all.
    async fn query_events(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)>;

    /// Removes the events older than `before_ms`; how many.
    async fn trim_events(&self, before_ms: u64) -> Result<u64>;

    /// Where a consumer of the stream (`name`) is: the id of the last event it finished with.
    async fn cursor(&self, name: &str) -> Result<u64>;

    /// Moves a consumer's cursor from `from` to `to`; `false` (nothing changed) when it is not at
    /// `from` any more (another replica advanced it).
    async fn advance_cursor(&self, name: &str, from: u64, to: u64) -> Result<bool>;

    /// Up to `limit` tags after `last`, in lexical order; `None` if the repository is unknown.
    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>>;

    /// Up to `limit` repositories after `last`, in lexical order.
    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Page>;

    /// The manifests of a repository that reference `digest` (indexes listing it).
    async fn referencing(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let mut after: Option<Digest> = None;
        loop {
            let page = self.manifests(repository, after.as_ref(), 1000).await?;
            let done = page.len() < 1000;
            after = page.last().map(|m| m.record.digest.clone());
            out.extend(page.into_iter().filter(|m| m.record.references.contains(digest)).map(|m| m.record.digest));
            if done {
                return Ok(out);
            }
        }
    }

    /// The manifests of a repository whose subject is `subject`.
    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>>;

    /// Up to `limit` manifests of a repository after `after` (digest text order), with their
    /// tags, the manifests referencing them, their pulls and labels.
    async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestEntry>>;

    // ---- listings (see [`crate::listing`]) ----

    /// Up to `limit` of a repository's artifacts ([`crate::listing::is_artifact`]), newest push
    /// first (digest order among equal times), after skipping `offset`; and how many it holds.
    /// Read from the store's index: the cost grows with `offset + limit`, not the repository.
    async fn artifacts(
        &self,
        repository: &RepositoryName,
        offset: usize,
        limit: usize,
    ) -> Result<crate::listing::ArtifactPage>;

    /// One manifest of a repository with its tags, the manifests referencing it, its pulls and
    /// labels (as [`MetadataStore::manifests`] lists them).
    async fn manifest_entry(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestEntry>>;

    /// A repository's counts; `None` when it holds no manifest.
    async fn repository_stats(&self, repository: &RepositoryName) -> Result<Option<crate::listing::RepositoryStats>>;

    /// Up to `limit` of the repositories of `project` that hold an artifact (the repository
    /// named `project` and those under `project/`), newest push first (name order among equal
    /// times), after skipping `offset`; and how many there are.
    async fn project_repositories(
        &self,
        project: &str,
        offset: usize,
        limit: usize,
    ) -> Result<crate::listing::RepositoryPage>;

    // ---- garbage collection ----
    //
    // The rules that make collection safe while the registry serves live in the store's
    // transactions: `put_manifest` refuses references the repository does not hold, linking
    // refuses a digest marked for deletion, and every removal below re-checks its condition in
    // the transaction that removes.

    /// Up to `limit` blob links of a repository after `after` (digest text order).
    async fn gc_links(&self, repository: &RepositoryName, after: Option<&Digest>, limit: usize) -> Result<Vec<GcLink>>;

    /// The holders of each digest.
    async fn gc_holders(&self, digests: &[Digest]) -> Result<Vec<Vec<Holder>>>;

    /// Deletes those of `digests` that are still untagged, referenced by no manifest of the
    /// repository, without a subject in it, and pushed at or before `pushed_before`; returns them.
    async fn gc_delete_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        pushed_before: u64,
    ) -> Result<Vec<Digest>>;

    /// Unlinks those of `digests` that no manifest of the repository references and that were
    /// linked at or before `linked_before`; returns them with their sizes.
    async fn gc_unlink(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        linked_before: u64,
    ) -> Result<Vec<(Digest, u64)>>;

    /// Marks for deletion those of `digests` that no repository holds; returns them. While
    /// marked, a digest cannot be linked or pushed as a manifest ([`crate::Error::Collecting`]).
    ///
    /// A digest with an unexpired hold ([`MetadataStore::hold_digest`]) is not marked either.
    async fn gc_mark(&self, digests: &[Digest]) -> Result<Vec<Digest>>;

    /// Removes the marks (after the blobs are deleted, or when a deletion is called off).
    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()>;

    /// Up to `limit` digests still marked (a collection that stopped half-way).
    async fn gc_marked(&self, limit: usize) -> Result<Vec<Digest>>;

    /// The hits and misses of the store's read caches (none for a store without).
    fn cache_stats(&self) -> Vec<cache::CacheStats> {
        Vec::new()
    }

    /// Up to `limit` upload sessions started at or before `started_before`.
    async fn expired_uploads(&self, started_before: u64, limit: usize) -> Result<Vec<UploadId>>;
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
