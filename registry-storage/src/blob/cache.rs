//! A bounded copy of a remote blob store's pulled blobs on a replica's local disk.
//!
//! Replicas on object storage read every pulled byte from the bucket: one stream per pull, at the
//! object store's single-stream rate, with the bucket's server, the replica and the client sharing
//! the machine. Blobs are immutable and addressed by their digest, so a copy kept on local disk is
//! never stale: [`CachedBlobStore`] wraps the shared store and serves a blob it holds from its own
//! files (the filesystem store's layout and read path), and everything else from the shared store.
//!
//! # Filling
//!
//! A whole-blob read that misses is streamed to the client as before and, beside it, handed to a
//! blocking thread that hashes each chunk and writes it to a temporary file. The copy is published
//! (fsync, then an atomic rename to its content address) only when the bytes hash to the digest,
//! so a pull cut short, a failing bucket or a corrupted read never leaves a copy. The bytes handed
//! to writers and not yet written are bounded ([`BEHIND`], over all copies): a pull whose copy
//! would pass the bound reads its next chunk only once the writers have caught up (on a machine
//! short of CPU the copy's hashing and writing set the pace of a first pull, so that the copy is
//! made), and a writer that takes nothing for [`STALL`] (a stuck disk) gives its copy up, so that
//! the pull goes on at the bucket's pace. One copy of a digest is made at a time. Ranged reads pass through and fill nothing.
//! With redirects on, a miss still sends the client to the bucket, and the replica makes its copy
//! in the background, so the next pull of the blob is served locally.
//!
//! # Bound and eviction
//!
//! The copies' total size stays under the configured bound: after each new copy, the least recently
//! read copies are removed until it fits (a blob larger than the bound is never copied). An open
//! read keeps its file's bytes though the name is gone (POSIX semantics), so eviction never cuts a
//! pull. At start the directory is scanned: leftovers of copies cut by a crash are removed, and the
//! copies found are indexed (least recently written first), then trimmed to the bound.
//!
//! # Deletion
//!
//! Deleting a blob through this store deletes it from the shared store and then the local copy.
//! Another replica's copy outlives a garbage collection until it is evicted; it is never served
//! for a blob the registry no longer has, because the engine reads a blob only after the metadata
//! store has linked it to the repository, and a digest pushed again has the same bytes.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use registry_core::cache_stats::CacheStats;
use registry_core::{Digest, DigestVerifier};
use tokio::sync::{Notify, mpsc, watch};

use super::fs::{FsBlobStore, publish_file};
use super::{BlobStore, BodyStream, ByteStream, StoredObject, UploadId};
use crate::error::{Error, Result};

/// Bytes handed to the copies' writers and not yet written, over all copies: the memory copies
/// may hold while the disk is behind the pulls.
pub const BEHIND: u64 = 64 << 20;

/// How long a pull waits for the writers to take its chunk before its copy is given up, unless
/// [`CachedBlobStore::set_stall`] says otherwise.
pub const STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// A blob store that keeps a bounded local copy of another store's pulled blobs (see the module
/// docs).
#[derive(Clone)]
pub struct CachedBlobStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// The store of record (the bucket all replicas share).
    remote: Arc<dyn BlobStore>,
    /// The copies, in the filesystem store's layout.
    files: FsBlobStore,
    /// The bound on the copies' total size, in bytes.
    bound: u64,
    index: Mutex<Index>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// How many copies are being written now.
    writing: watch::Sender<usize>,
    /// Bytes handed to writers and not yet written (at most [`BEHIND`]).
    behind: AtomicU64,
    /// Told when writers have written some.
    written: Notify,
    /// How long a pull waits for the writers, in milliseconds ([`STALL`] by default).
    stall_ms: AtomicU64,
}

#[derive(Default)]
struct Index {
    /// Each copy's size and when it was last read or written (a tick of `clock`).
    copies: HashMap<Digest, Held>,
    /// Counts reads and writes of copies: the order of use, which eviction follows.
    clock: u64,
    /// The sum of the copies' sizes.
    total: u64,
    /// Digests being copied now.
    filling: HashSet<Digest>,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

#[derive(Clone, Copy)]
struct Held {
    size: u64,
    used: u64,
}

impl std::fmt::Debug for CachedBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBlobStore")
            .field("dir", &self.shared.files.root())
            .field("bound", &self.shared.bound)
            .finish_non_exhaustive()
    }
}

impl CachedBlobStore {
    /// Keeps copies of `remote`'s pulled blobs in `dir` (created when needed), at most `bound`
    /// bytes of them. Copies a crash left half-written are removed; whole ones are kept.
    pub async fn open(remote: Arc<dyn BlobStore>, dir: impl Into<PathBuf>, bound: u64) -> Result<CachedBlobStore> {
        let files = FsBlobStore::open(dir)?;
        let root = files.root().to_owned();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            for leftovers in ["tmp", "uploads"] {
                for entry in std::fs::read_dir(root.join(leftovers))? {
                    let path = entry?.path();
                    match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
            }
            Ok(())
        })
        .await??;
        let mut found = Vec::new();
        let mut after: Option<Digest> = None;
        loop {
            let page = files.list_blobs(after.as_ref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            found.extend(page);
        }
        // Least recently written first: what a restart knows of the order of use.
        found.sort_by_key(|copy| copy.modified);
        let mut index = Index::default();
        for copy in found {
            let used = index.tick();
            index.total += copy.size;
            index.copies.insert(copy.key, Held { size: copy.size, used });
        }
        let store = CachedBlobStore {
            shared: Arc::new(Shared {
                remote,
                files,
                bound,
                index: Mutex::new(index),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                writing: watch::Sender::new(0),
                behind: AtomicU64::new(0),
                written: Notify::new(),
                stall_ms: AtomicU64::new(STALL.as_millis() as u64),
            }),
        };
        store.shared.trim(None).await;
        Ok(store)
    }

    /// The copies held now: how many, and their total size in bytes.
    pub fn held(&self) -> (usize, u64) {
        let index = self.shared.index();
        (index.copies.len(), index.total)
    }

    /// Waits until no copy is being written (each kept or given up): for tests, and for a
    /// graceful shutdown that should not leave half-written copies behind.
    pub async fn settled(&self) {
        let mut writing = self.shared.writing.subscribe();
        // The sender lives in `self`, so the wait ends only by the count reaching zero.
        let _ = writing.wait_for(|n| *n == 0).await;
    }

    /// Sets how long a pull waits for the copies' writers to take its next chunk before its copy
    /// is given up ([`STALL`] by default).
    pub fn set_stall(&self, stall: std::time::Duration) {
        self.shared.stall_ms.store(stall.as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether a copy of `digest` is held.
    pub fn holds(&self, digest: &Digest) -> bool {
        self.shared.index().copies.contains_key(digest)
    }
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // The index holds no invariant a panicking holder could break halfway.
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks a copy read now; whether there is one.
    fn touch(&self, digest: &Digest) -> bool {
        let mut index = self.index();
        let used = index.tick();
        match index.copies.get_mut(digest) {
            Some(copy) => {
                copy.used = used;
                true
            }
            None => false,
        }
    }

    /// Forgets a copy and removes its file.
    async fn forget(&self, digest: &Digest) {
        {
            let mut index = self.index();
            if let Some(copy) = index.copies.remove(digest) {
                index.total -= copy.size;
            }
        }
        if let Err(e) = self.files.delete(digest).await {
            tracing::warn!(%digest, error = %e, "the blob cache could not remove a copy");
        }
    }

    /// Removes the least recently read copies until the rest fit the bound, never `keep`.
    async fn trim(&self, keep: Option<&Digest>) {
        loop {
            let victim = {
                let index = self.index();
                if index.total <= self.bound {
                    return;
                }
                index
                    .copies
                    .iter()
                    .filter(|(digest, _)| Some(*digest) != keep)
                    .min_by_key(|(_, copy)| copy.used)
                    .map(|(digest, _)| digest.clone())
            };
            match victim {
                Some(digest) => self.forget(&digest).await,
                None => return,
            }
        }
    }

    /// Starts a copy of `digest` unless one is held or being made; the sender to feed it.
    fn begin_fill(self: &Arc<Self>, digest: &Digest) -> Option<Filler> {
        if self.bound == 0 {
            return None;
        }
        {
            let mut index = self.index();
            if index.copies.contains_key(digest) || !index.filling.insert(digest.clone()) {
                return None;
            }
            self.writing.send_modify(|n| *n += 1);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.clone();
        let digest = digest.clone();
        tokio::spawn(async move {
            let tmp = shared.files.root().join("tmp").join(UploadId::new_random().as_str());
            let target = shared.files.blob_path(&digest);
            let (written, bound) = (tmp.clone(), shared.bound);
            let expected = digest.clone();
            let writer = shared.clone();
            let copied =
                tokio::task::spawn_blocking(move || write_copy(rx, &writer, &written, &target, &expected, bound)).await;
            let size = match copied {
                Ok(Ok(size)) => size,
                Ok(Err(reason)) => {
                    tracing::debug!(%digest, %reason, "the blob cache gave up a copy");
                    None
                }
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "the blob cache's writer failed");
                    None
                }
            };
            if size.is_none() {
                // What was written so far (a published copy has been renamed away).
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            {
                let mut index = shared.index();
                index.filling.remove(&digest);
                if let Some(size) = size {
                    index.total += size;
                    let used = index.tick();
                    if let Some(old) = index.copies.insert(digest.clone(), Held { size, used }) {
                        index.total -= old.size;
                    }
                }
            }
            if size.is_some() {
                shared.trim(Some(&digest)).await;
            }
            shared.writing.send_modify(|n| *n -= 1);
        });
        Some(Filler { shared: self.clone(), chunks: tx })
    }
}

/// The sending end of a copy being written.
#[derive(Clone)]
struct Filler {
    shared: Arc<Shared>,
    chunks: mpsc::UnboundedSender<Bytes>,
}

impl Filler {
    /// Hands a chunk to the writer unless that would put the writers more than [`BEHIND`] bytes
    /// behind.
    fn offer(&self, chunk: Bytes) -> Offer {
        let len = chunk.len() as u64;
        let reserved = self
            .shared
            .behind
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| (b + len <= BEHIND).then_some(b + len))
            .is_ok();
        if !reserved {
            return Offer::Full(chunk);
        }
        if self.chunks.send(chunk).is_err() {
            self.shared.wrote(len);
            return Offer::Gone;
        }
        Offer::Taken
    }

    /// Hands a chunk to the writer, waiting while the writers are [`BEHIND`]; `false` when the
    /// writer has stopped.
    async fn give(self, chunk: Bytes) -> bool {
        loop {
            let written = self.shared.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let len = chunk.len() as u64;
            // A chunk larger than the whole bound goes when nothing else is behind.
            let fits = |b: u64| (b == 0 || b + len <= BEHIND).then_some(b + len);
            if self.shared.behind.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_ok() {
                if self.chunks.send(chunk).is_err() {
                    self.shared.wrote(len);
                    return false;
                }
                return true;
            }
            written.await;
        }
    }
}

/// Why a copy was not kept.
#[derive(Debug, thiserror::Error)]
enum Abandoned {
    #[error("the pull ended before the blob did or its bytes do not hash to the digest: {0}")]
    Unverified(registry_core::Error),
    #[error("writing the copy failed: {0}")]
    Io(#[from] io::Error),
}

impl Shared {
    /// `len` bytes handed to a writer were written (or dropped).
    fn wrote(&self, len: u64) {
        self.behind.fetch_sub(len, Ordering::AcqRel);
        self.written.notify_waiters();
    }
}

/// Writes what arrives on `rx` to `tmp`, hashing it; when the sender is gone, publishes it at
/// `target` if it is `digest`'s bytes. The copy's size, or `None` when it outgrew `bound`.
fn write_copy(
    rx: mpsc::UnboundedReceiver<Bytes>,
    shared: &Shared,
    tmp: &std::path::Path,
    target: &std::path::Path,
    digest: &Digest,
    bound: u64,
) -> std::result::Result<Option<u64>, Abandoned> {
    // Whatever way this ends, every chunk handed over counts as written once it is taken.
    struct Drain<'a> {
        rx: mpsc::UnboundedReceiver<Bytes>,
        shared: &'a Shared,
    }
    impl Drop for Drain<'_> {
        fn drop(&mut self) {
            self.rx.close();
            while let Ok(chunk) = self.rx.try_recv() {
                self.shared.wrote(chunk.len() as u64);
            }
        }
    }
    let mut drain = Drain { rx, shared };
    let mut file = File::create(tmp)?;
    let mut verifier = DigestVerifier::expecting(digest, None).with_limit(bound);
    while let Some(chunk) = drain.rx.blocking_recv() {
        let written = if verifier.update(&chunk).is_err() { Ok(false) } else { file.write_all(&chunk).map(|()| true) };
        drain.shared.wrote(chunk.len() as u64);
        if !written? {
            return Ok(None);
        }
    }
    drop(drain);
    let verified = verifier.finish().map_err(Abandoned::Unverified)?;
    file.sync_data()?;
    drop(file);
    publish_file(tmp, target)?;
    Ok(Some(verified.size))
}

/// What became of a chunk offered to a copy.
enum Offer {
    /// The writer has it.
    Taken,
    /// The writers are [`BEHIND`]: the chunk back, to give when they have caught up.
    Full(Bytes),
    /// The writer has stopped (it found the copy too large, or failed).
    Gone,
}

/// A pull's stream that hands each chunk to the copy being written beside it.
struct Tee {
    inner: ByteStream,
    copy: Option<Filler>,
    /// A chunk the writers were too far behind to take: it goes to the client once they have
    /// taken it (or given the copy up). Not after: the client may stop polling once it has the
    /// blob's last byte, and a copy short of its last chunk would be lost.
    waiting: Option<(Taking, Bytes)>,
}

/// The writers taking a chunk: `false` when they stalled or stopped.
type Taking = Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

impl Stream for Tee {
    type Item = std::result::Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some((taking, _)) = &mut self.waiting {
            let taken = std::task::ready!(taking.as_mut().poll(cx));
            if !taken {
                // Stalled or stopped: the copy is given up, and the writer, seeing the sender gone
                // before the digest's last byte, keeps nothing.
                self.copy = None;
            }
            if let Some((_, chunk)) = self.waiting.take() {
                return Poll::Ready(Some(Ok(chunk)));
            }
        }
        let item = std::task::ready!(self.inner.poll_next_unpin(cx));
        let Some(Ok(chunk)) = item else {
            // The end: the writer checks what it got. A failure: what it got is short.
            self.copy = None;
            return Poll::Ready(item);
        };
        let Some(copy) = &self.copy else { return Poll::Ready(Some(Ok(chunk))) };
        match copy.offer(chunk.clone()) {
            Offer::Taken => Poll::Ready(Some(Ok(chunk))),
            Offer::Gone => {
                self.copy = None;
                Poll::Ready(Some(Ok(chunk)))
            }
            Offer::Full(copied) => {
                let copy = copy.clone();
                let stall = std::time::Duration::from_millis(copy.shared.stall_ms.load(Ordering::Relaxed));
                let taking = async move { tokio::time::timeout(stall, copy.give(copied)).await.unwrap_or(false) };
                self.waiting = Some((Box::pin(taking), chunk));
                self.poll_next(cx)
            }
        }
    }
}

#[async_trait]
impl BlobStore for CachedBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.shared.remote.stat(digest).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let shared = &self.shared;
        if shared.touch(digest) {
            match shared.files.read(digest, range.clone()).await {
                Ok(stream) => {
                    shared.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(stream);
                }
                Err(Error::RangeNotSatisfiable { size }) => return Err(Error::RangeNotSatisfiable { size }),
                // Removed under us (evicted, or by hand): the shared store has it.
                Err(e) => {
                    if !matches!(e, Error::BlobUnknown { .. }) {
                        tracing::warn!(%digest, error = %e, "the blob cache could not read a copy; reading the store");
                    }
                    shared.forget(digest).await;
                }
            }
        }
        shared.misses.fetch_add(1, Ordering::Relaxed);
        let stream = shared.remote.read(digest, range.clone()).await?;
        let copy = if range.is_none() { shared.begin_fill(digest) } else { None };
        Ok(match copy {
            Some(copy) => Box::pin(Tee { inner: stream, copy: Some(copy), waiting: None }),
            None => stream,
        })
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.shared.remote.put(digest, bytes).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let deleted = self.shared.remote.delete(digest).await?;
        self.shared.forget(digest).await;
        Ok(deleted)
    }

    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        let deleted = self.shared.remote.delete_if_older(digest, cutoff).await?;
        if deleted.is_some() {
            self.shared.forget(digest).await;
        }
        Ok(deleted)
    }

    async fn upload_create(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>> {
        self.shared.remote.upload_create(id, digest).await
    }

    async fn upload_append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        self.shared.remote.upload_append(id, state, offset, body).await
    }

    async fn upload_read(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream> {
        self.shared.remote.upload_read(id, state, len).await
    }

    async fn upload_publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()> {
        self.shared.remote.upload_publish(id, state, digest, size).await
    }

    async fn upload_delete(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()> {
        self.shared.remote.upload_delete(id, state).await
    }

    fn redirects(&self) -> bool {
        self.shared.remote.redirects()
    }

    /// `None` for a blob held here (the local copy is nearer than the bucket); otherwise the
    /// shared store's URL, and a copy made in the background for the next pull.
    async fn download_url(&self, digest: &Digest) -> Result<Option<String>> {
        let shared = &self.shared;
        if shared.index().copies.contains_key(digest) {
            return Ok(None);
        }
        let Some(url) = shared.remote.download_url(digest).await? else { return Ok(None) };
        if let Some(copy) = shared.begin_fill(digest) {
            let remote = shared.remote.clone();
            let digest = digest.clone();
            tokio::spawn(async move {
                match remote.read(&digest, None).await {
                    Ok(mut stream) => {
                        while let Some(Ok(chunk)) = stream.next().await {
                            // Waits for the writer: nobody is waiting for these bytes.
                            if !copy.clone().give(chunk).await {
                                break;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(%digest, error = %e, "the blob cache could not read a blob to copy"),
                }
            });
        }
        Ok(Some(url))
    }

    fn cache_stats(&self) -> Vec<CacheStats> {
        let shared = &self.shared;
        let (entries, bytes) = self.held();
        let mut stats = vec![CacheStats::weighed(
            "blob_files",
            shared.hits.load(Ordering::Relaxed),
            shared.misses.load(Ordering::Relaxed),
            entries,
            bytes,
        )];
        stats.extend(shared.remote.cache_stats());
        stats
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        self.shared.remote.blob_info(digest).await
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        self.shared.remote.upload_info(id).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        self.shared.remote.list_blobs(after, limit).await
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        self.shared.remote.list_uploads(after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBlobStore;

    async fn store_with(content: &Bytes) -> (tempfile::TempDir, CachedBlobStore, Digest) {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = Arc::new(MemoryBlobStore::new());
        let digest = Digest::sha256_of(content);
        remote.put(&digest, content.clone()).await.expect("put");
        let cache = CachedBlobStore::open(remote, dir.path(), 1 << 30).await.expect("open");
        (dir, cache, digest)
    }

    /// A pull of `content` in chunks of `chunk` bytes through a copy of it; the bytes the client
    /// got. The client stops at the last byte, as an HTTP server does with a known length: it
    /// never asks for the end of the stream.
    async fn pull_through(cache: &CachedBlobStore, digest: &Digest, content: &Bytes, chunk: usize) -> Vec<u8> {
        let chunks: Vec<std::result::Result<Bytes, io::Error>> =
            content.chunks(chunk).map(|c| Ok(content.slice_ref(c))).collect();
        let copy = cache.shared.begin_fill(digest).expect("a copy begins");
        assert!(cache.shared.begin_fill(digest).is_none(), "one copy of a digest at a time");
        let mut tee = Tee { inner: Box::pin(futures::stream::iter(chunks)), copy: Some(copy), waiting: None };
        let mut got = Vec::with_capacity(content.len());
        while got.len() < content.len() {
            got.extend_from_slice(&tee.next().await.expect("a chunk").expect("bytes"));
        }
        got
    }

    /// Chunks larger than the writers may be behind each wait until the writers have taken every
    /// byte before them; the last one too, though the client stops at its last byte.
    #[tokio::test]
    async fn every_chunk_reaches_the_copy_before_the_client_even_the_last() {
        let content = Bytes::from((0..2 * (BEHIND as usize + 1)).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let (_dir, cache, digest) = store_with(&content).await;
        let got = pull_through(&cache, &digest, &content, BEHIND as usize + 1).await;
        assert!(got == content.as_ref(), "the client's bytes");
        cache.settled().await;
        assert!(cache.holds(&digest), "the copy has the last chunk too");
    }

    /// With the writers [`BEHIND`], a pull reads its next chunk only once they have caught up,
    /// and the copy is made; the budget comes back as they write.
    #[tokio::test]
    async fn a_pull_waits_for_the_writers_to_catch_up_and_its_copy_is_made() {
        let content = Bytes::from(vec![5u8; 150]);
        let (_dir, cache, digest) = store_with(&content).await;
        // Other copies' bytes waiting: room for 60 bytes more, so the second chunk waits.
        cache.shared.behind.store(BEHIND - 60, Ordering::SeqCst);
        assert_eq!(pull_through(&cache, &digest, &content, 50).await, content);
        cache.settled().await;
        assert!(cache.holds(&digest), "the copy was made");
        assert_eq!(cache.shared.behind.load(Ordering::SeqCst), BEHIND - 60, "what it held is given back");
    }

    /// Writers that take nothing for the stall time (a stuck disk): the copy is given up and the
    /// pull goes on.
    #[tokio::test]
    async fn a_stalled_copy_is_given_up_and_the_pull_goes_on() {
        let content = Bytes::from(vec![6u8; 150]);
        let (dir, cache, digest) = store_with(&content).await;
        // (Time cannot be paused here: tokio does not advance a paused clock while a blocking
        // thread, the writer, runs.)
        cache.set_stall(std::time::Duration::from_millis(50));
        cache.shared.behind.store(BEHIND, Ordering::SeqCst);
        assert_eq!(pull_through(&cache, &digest, &content, 50).await, content, "the client gets every byte");
        cache.settled().await;
        assert!(!cache.holds(&digest), "a copy given up is not kept");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
        assert_eq!(cache.shared.behind.load(Ordering::SeqCst), BEHIND);
    }
}
