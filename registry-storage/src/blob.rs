//! The blob store: immutable content-addressed bytes, and the uploads that become them.
//!
//! A [`BlobStore`] knows nothing of repositories, names or manifests (the metadata store and the
//! engine do). It holds two kinds of object:
//!
//! - **blobs**, addressed by digest, immutable once published, read whole or by range;
//! - **uploads**, addressed by an opaque [`UploadId`], appendable, invisible to readers until
//!   [`BlobStore::upload_publish`] moves them to their content address in one atomic step.
//!
//! The store never verifies digests: the engine hashes every byte on its way in (one pass,
//! overlapped with the store's writes) and publishes only verified content. Implementations:
//! [`MemoryBlobStore`](memory::MemoryBlobStore) and [`FsBlobStore`](fs::FsBlobStore) here; object
//! storage (`registry-object-store`: append = multipart parts, publish = complete + copy) in its
//! crate. [`CachedBlobStore`](cache::CachedBlobStore) wraps any of them with a bounded copy of the
//! pulled blobs on local disk (replicas on object storage).
//!
//! # Upload state
//!
//! A store may keep state about an upload (an object store: the multipart upload's id and the
//! parts written so far). It returns that state from [`BlobStore::upload_create`] and
//! [`BlobStore::upload_append`] as opaque bytes; the engine saves them in the metadata store with
//! the upload's offset, in the same compare-and-swap, and passes them back on the next call. So
//! the state is exactly as durable, and as shared between replicas, as the acknowledged offset:
//! any replica continues any upload. Stores that need none return an empty state.

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use registry_core::Digest;

use crate::error::{Error, Result};

pub mod cache;
pub mod fs;
pub mod memory;

pub use crate::error::BodyError;

/// A request body being streamed into an upload.
pub type BodyStream<'a> = dyn Stream<Item = std::result::Result<Bytes, BodyError>> + Send + Unpin + 'a;

/// Bytes streamed out of the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send>>;

/// The id of an upload: a UUID in canonical lowercase form, checked before it reaches a store (so
/// it is safe as a path component or object key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id.
    pub fn new_random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Parses an id from a URL; anything but a canonical UUID is an unknown upload.
    pub fn parse(input: &str) -> Result<UploadId> {
        let ok = input.len() == 36
            && input.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if ok { Ok(UploadId(input.to_owned())) } else { Err(Error::UploadUnknown) }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored object as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject<K> {
    /// The blob's digest or the upload's id.
    pub key: K,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, in milliseconds since the Unix epoch.
    pub modified: u64,
}

/// Storage for content-addressed blobs and in-progress uploads.
///
/// Every method is safe to call concurrently; publishing the same digest twice stores one copy.
/// A conformance suite for implementations is in `registry_storage::testing` (feature `testing`).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The size of a published blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Streams a published blob, whole or the byte range `range` (which the caller has checked
    /// against the size). [`Error::BlobUnknown`] when absent.
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Stores small, already-verified content (manifests) at its digest, atomically and durably.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Removes a published blob; `false` if it was absent.
    async fn delete(&self, digest: &Digest) -> Result<bool>;

    /// Removes a published blob unless it was written after `cutoff` (milliseconds since the
    /// epoch); its size if it was removed. Atomic with respect to a concurrent publish of the
    /// same digest: the publish's copy survives (garbage collection relies on this).
    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>>;

    /// Creates an empty upload; its state. `digest` is the digest the client announced, when it
    /// did (a monolithic push): a store may then write where the blob will be published.
    async fn upload_create(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>>;

    /// Appends `body` at `offset` and returns the new length once the bytes are durable.
    ///
    /// `offset` is the length the metadata store recorded for the upload, which is the truth:
    /// bytes the store holds past it were never acknowledged (the process died before recording
    /// them) and are discarded; an upload shorter than `offset` is [`Error::RangeInvalid`]. The
    /// caller serializes appends to one upload (the engine holds a per-upload lock and records
    /// offsets by compare-and-swap). If the body or the store fails, the upload is left at
    /// `offset` (nothing half-appended) and the error is returned: [`Error::Body`] for the body's
    /// own failures, [`Error::Core`] when the body carried a verifier error.
    /// With the new length comes the new state (see the module docs); `state` is the one saved
    /// with `offset`.
    async fn upload_append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)>;

    /// Streams the first `len` bytes of the upload (used to re-hash with another algorithm).
    async fn upload_read(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream>;

    /// Publishes the first `size` bytes of the upload at `digest` in one atomic step and removes
    /// the upload. The caller has verified exactly those bytes; anything the upload holds past
    /// `size` (a chunk that was never acknowledged) is cut off first and never published. The
    /// published blob counts as written now (replacing an existing copy, same bytes, is fine), so
    /// a concurrent [`BlobStore::delete_if_older`] leaves it.
    async fn upload_publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()>;

    /// Removes an upload (idempotent), with its state when the caller has it (garbage collection
    /// may find an upload without a session).
    async fn upload_delete(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()>;

    /// Whether [`BlobStore::download_url`] may answer with a URL at all (a store configured to
    /// redirect downloads); `false` (the default) spares the caller its checks before asking.
    fn redirects(&self) -> bool {
        false
    }

    /// A URL the client may download the published blob from directly (a presigned object-store
    /// URL), when the store offers one and is configured to; `None` (the default) to have the
    /// registry stream it.
    async fn download_url(&self, digest: &Digest) -> Result<Option<String>> {
        let _ = digest;
        Ok(None)
    }

    /// The figures of the caches the store keeps (a local copy of a remote store's blobs), for
    /// metrics; none by default.
    fn cache_stats(&self) -> Vec<registry_core::cache_stats::CacheStats> {
        Vec::new()
    }

    /// A published blob's size and modification time, or `None`.
    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>>;

    /// An upload's size and last write time, or `None`.
    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>>;

    /// Up to `limit` published blobs whose digest's text comes after `after`, in that order (for
    /// garbage collection, which pages through the store without holding it in memory).
    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>>;

    /// Up to `limit` uploads whose id comes after `after`, in id order (for garbage collection of
    /// abandoned uploads).
    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>>;
}

/// Turns a failed body item into a store error (for [`BlobStore`] implementations): a verifier
/// error stays typed, anything else is a body failure.
pub fn body_error(e: BodyError) -> Error {
    match e.downcast::<registry_core::Error>() {
        Ok(core) => Error::Core(*core),
        Err(other) => match other.downcast::<Error>() {
            Ok(err) => *err,
            Err(other) => Error::Body(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_canonical_uuids() {
        let id = UploadId::new_random();
        assert_eq!(UploadId::parse(id.as_str()).expect("round trip"), id);
        for bad in
            ["", "../../etc/passwd", "0000000000000000000000000000000000000", "ABCDEF00-0000-0000-0000-000000000000"]
        {
            assert!(matches!(UploadId::parse(bad), Err(Error::UploadUnknown)), "{bad}");
        }
    }

    #[test]
    fn body_errors_keep_verifier_errors_typed() {
        let e: BodyError = Box::new(registry_core::Error::SizeExceeded { limit: 3 });
        assert!(matches!(body_error(e), Error::Core(registry_core::Error::SizeExceeded { limit: 3 })));
        let e: BodyError = "connection reset".into();
        assert!(matches!(body_error(e), Error::Body(_)));
    }
}
