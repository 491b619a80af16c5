//! An in-memory [`BlobStore`] for tests and examples.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use registry_core::Digest;

use super::{BlobStore, BodyStream, ByteStream, UploadId, body_error};
use crate::error::{Error, Result};

/// Blobs and uploads held in memory. Cheap to create; everything is lost on drop.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<Digest, Bytes>>,
    uploads: Mutex<HashMap<UploadId, BytesMut>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
        lock(&self.blobs).entry(digest.clone()).or_insert(bytes);
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        Ok(lock(&self.blobs).remove(digest).is_some())
    }

    async fn upload_create(&self, id: &UploadId) -> Result<()> {
        lock(&self.uploads).insert(id.clone(), BytesMut::new());
        Ok(())
    }

    async fn upload_append(&self, id: &UploadId, offset: u64, body: &mut BodyStream<'_>) -> Result<u64> {
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
        Ok(upload.len() as u64)
    }

    async fn upload_read(&self, id: &UploadId) -> Result<ByteStream> {
        let bytes = lock(&self.uploads).get(id).map(|b| b.clone().freeze()).ok_or(Error::UploadUnknown)?;
        Ok(one_chunk(bytes))
    }

    async fn upload_publish(&self, id: &UploadId, digest: &Digest, size: u64) -> Result<()> {
        let mut bytes = lock(&self.uploads).remove(id).ok_or(Error::UploadUnknown)?;
        if (bytes.len() as u64) < size {
            return Err(Error::Backend(format!("upload holds {} bytes, fewer than the {size} verified", bytes.len())));
        }
        bytes.truncate(size as usize);
        lock(&self.blobs).entry(digest.clone()).or_insert_with(|| bytes.freeze());
        Ok(())
    }

    async fn upload_delete(&self, id: &UploadId) -> Result<()> {
        lock(&self.uploads).remove(id);
        Ok(())
    }
}
