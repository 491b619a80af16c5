//! The [`BlobStore`] implementation: each method in `published` or `upload`; errors mapped here.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use registry_core::{BackendError, Digest};
use registry_storage::blob::StoredObject;
use registry_storage::{BlobStore, BodyStream, ByteStream, Error, Result, UploadId};

use crate::ObjectBlobStore;

/// An object-store failure as a backend fault: retryable when the server or the network is the
/// trouble (the client's own retries are spent), permanent when the request itself is refused.
pub(crate) fn backend(context: &'static str, e: object_store::Error) -> BackendError {
    use object_store::Error as E;
    match e {
        E::Generic { .. } | E::JoinError { .. } => BackendError::retryable(context, e),
        _ => BackendError::permanent(context, e),
    }
}

/// [`backend`] as a storage error.
pub(crate) fn fault(context: &'static str) -> impl Fn(object_store::Error) -> Error {
    move |e| Error::Backend(backend(context, e))
}

/// Milliseconds since the epoch of an object's modification time.
pub(crate) fn millis(meta: &object_store::ObjectMeta) -> u64 {
    u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0)
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.head_blob(digest).await?.map(|m| m.size))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.read_blob(digest, range).await
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.put_blob(digest, bytes).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        Ok(self.delete_blob(digest, None).await?.is_some())
    }

    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        self.delete_blob(digest, Some(cutoff)).await
    }

    async fn upload_create(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>> {
        self.create_upload(id, digest).await
    }

    async fn upload_append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        self.append(id, state, offset, body).await
    }

    async fn upload_read(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream> {
        self.read_upload(id, state, len).await
    }

    async fn upload_publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()> {
        self.publish(id, state, digest, size).await
    }

    async fn upload_delete(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()> {
        self.remove_upload(id, state).await
    }

    fn redirects(&self) -> bool {
        self.signer.is_some()
    }

    async fn download_url(&self, digest: &Digest) -> Result<Option<String>> {
        self.presigned(digest).await
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        Ok(self.head_blob(digest).await?.map(|m| StoredObject {
            key: digest.clone(),
            size: m.size,
            modified: millis(&m),
        }))
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        self.upload_objects(id).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        self.list_published(after, limit).await
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        self.list_upload_ids(after, limit).await
    }
}
