//! An in-memory [`BlobStore`] for tests and examples.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use registry_core::Digest;

use super::{BlobStore, BodyStream, ByteStream, StoredObject, UploadId, body_error};
use crate::error::{Error, Result};
use registry_core::time::epoch_millis;

/// Blobs and uploads held in memory. Cheap to create; everything is lost on drop.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<Digest, Bytes>>,
    uploads: Mutex<HashMap<UploadId, BytesMut>>,
    /// When each blob or upload was last written.
    modified: Mutex<HashMap<String, u64>>,
    /// Where blobs are said to be downloadable from (`<prefix><digest>`), as a redirecting store.
    download_prefix: Option<String>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers [`BlobStore::download_url`] with `<prefix><digest>` for the blobs it holds, as an
    /// object store configured to redirect does (for tests of what redirects change).
    pub fn with_download_urls(mut self, prefix: &str) -> Self {
        self.download_prefix = Some(prefix.to_owned());
        self
    }

    /// Number of published blobs (for tests).
    pub fn blob_count(&self) -> usize {
        lock(&self.blobs).len()
    }

    /// Number of uploads in progress (for tests).
    pub fn upload_count(&self) -> usize {
        lock(&self.uploads).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated (each update is one
    // insert or remove), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryBlobStore {
    fn touch(&self, key: String) {
        lock(&self.modified).insert(key, epoch_millis(std::time::SystemTime::now()));
    }

    fn modified(&self, key: &str) -> u64 {
        lock(&self.modified).get(key).copied().unwrap_or(0)
    }

    /// Sets an object's modification time in milliseconds since the epoch (tests of garbage
    /// collection's grace period).
    pub fn set_modified(&self, key: &str, millis: u64) {
        lock(&self.modified).insert(key.to_owned(), millis);
    }
}

/// A page of `keys` (sorted here) after `after`.
fn page_after<K: Clone>(mut keys: Vec<(String, K, u64)>, after: Option<&str>, limit: usize) -> Vec<(String, K, u64)> {
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.into_iter().filter(|(k, _, _)| after.is_none_or(|a| k.as_str() > a)).take(limit).collect()
}

fn one_chunk(bytes: Bytes) -> ByteStream {
    Box::pin(futures::stream::iter([Ok(bytes)]))
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(lock(&self.blobs).get(digest).map(|b| b.len() as u64))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let bytes =
            lock(&self.blobs).get(digest).cloned().ok_or_else(|| Error::BlobUnknown { digest: digest.clone() })?;
        let size = bytes.len() as u64;
        match range {
            None => Ok(one_chunk(bytes)),
            Some(r) if r.start <= r.end && r.end <= size => {
                Ok(one_chunk(bytes.slice(r.start as usize..r.end as usize)))
            }
            Some(_) => Err(Error::RangeNotSatisfiable { size }),
        }
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let mut blobs = lock(&self.blobs);
        blobs.entry(digest.clone()).or_insert(bytes);
        self.touch(digest.to_string());
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        lock(&self.modified).remove(&digest.to_string());
        Ok(lock(&self.blobs).remove(digest).is_some())
    }

    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        let mut blobs = lock(&self.blobs);
        let key = digest.to_string();
        if self.modified(&key) > cutoff {
            return Ok(None);
        }
        let removed = blobs.remove(digest).map(|b| b.len() as u64);
        lock(&self.modified).remove(&key);
        Ok(removed)
    }

    async fn upload_create(&self, id: &UploadId, _: Option<&Digest>) -> Result<Vec<u8>> {
        lock(&self.uploads).insert(id.clone(), BytesMut::new());
        self.touch(id.to_string());
        Ok(Vec::new())
    }

    fn redirects(&self) -> bool {
        self.download_prefix.is_some()
    }

    async fn download_url(&self, digest: &Digest) -> Result<Option<String>> {
        let held = lock(&self.blobs).contains_key(digest);
        Ok(self.download_prefix.as_ref().filter(|_| held).map(|prefix| format!("{prefix}{digest}")))
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        let size = lock(&self.blobs).get(digest).map(|b| b.len() as u64);
        Ok(size.map(|size| StoredObject { key: digest.clone(), size, modified: self.modified(&digest.to_string()) }))
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        let size = lock(&self.uploads).get(id).map(|b| b.len() as u64);
        Ok(size.map(|size| StoredObject { key: id.clone(), size, modified: self.modified(id.as_str()) }))
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        let all: Vec<_> = lock(&self.blobs).iter().map(|(d, b)| (d.to_string(), d.clone(), b.len() as u64)).collect();
        let after = after.map(|d| d.to_string());
        Ok(page_after(all, after.as_deref(), limit)
            .into_iter()
            .map(|(k, key, size)| StoredObject { key, size, modified: self.modified(&k) })
            .collect())
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        let all: Vec<_> =
            lock(&self.uploads).iter().map(|(id, b)| (id.to_string(), id.clone(), b.len() as u64)).collect();
        Ok(page_after(all, after.map(UploadId::as_str), limit)
            .into_iter()
            .map(|(k, key, size)| StoredObject { key, size, modified: self.modified(&k) })
            .collect())
    }

    async fn upload_append(
        &self,
        id: &UploadId,
        _: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        match lock(&self.uploads).get(id) {
            None => return Err(Error::UploadUnknown),
            Some(b) if (b.len() as u64) < offset => return Err(Error::RangeInvalid { offset: b.len() as u64 }),
            Some(_) => {}
        }
        // Collect first, append after: a failed body leaves the upload as it was.
        let mut chunk = BytesMut::new();
        while let Some(item) = body.next().await {
            chunk.extend_from_slice(&item.map_err(body_error)?);
        }
        let mut uploads = lock(&self.uploads);
        let upload = uploads.get_mut(id).ok_or(Error::UploadUnknown)?;
        if (upload.len() as u64) < offset {
            return Err(Error::RangeInvalid { offset: upload.len() as u64 });
        }
        upload.truncate(offset as usize);
        upload.extend_from_slice(&chunk);
        let len = upload.len() as u64;
        drop(uploads);
        self.touch(id.to_string());
        Ok((len, Vec::new()))
    }

    async fn upload_read(&self, id: &UploadId, _: &[u8], len: u64) -> Result<ByteStream> {
        let bytes = lock(&self.uploads).get(id).map(|b| b.clone().freeze()).ok_or(Error::UploadUnknown)?;
        let len = (len as usize).min(bytes.len());
        Ok(one_chunk(bytes.slice(..len)))
    }

    async fn upload_publish(&self, id: &UploadId, _: &[u8], digest: &Digest, size: u64) -> Result<()> {
        let mut bytes = lock(&self.uploads).remove(id).ok_or(Error::UploadUnknown)?;
        if (bytes.len() as u64) < size {
            return Err(Error::invariant(format!(
                "upload holds {} bytes, fewer than the {size} verified",
                bytes.len()
            )));
        }
        bytes.truncate(size as usize);
        let mut blobs = lock(&self.blobs);
        blobs.entry(digest.clone()).or_insert_with(|| bytes.freeze());
        lock(&self.modified).remove(id.as_str());
        self.touch(digest.to_string());
        drop(blobs);
        Ok(())
    }

    async fn upload_delete(&self, id: &UploadId, _: Option<&[u8]>) -> Result<()> {
        lock(&self.uploads).remove(id);
        lock(&self.modified).remove(id.as_str());
        Ok(())
    }
}
