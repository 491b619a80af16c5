//! Embedding the registry with a custom blob store: a wrapper that counts the bytes stored and
//! served, around the in-memory store. Any `BlobStore` (an embedder's object storage, say) plugs in
//! the same way.
//!
//! `cargo run -p registry-examples --example counting_store`

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::Digest;
use registry_examples::send;
use registry_storage::blob::StoredObject;
use registry_storage::{
    BlobStore, BodyStream, ByteStream, Limits, MemoryBlobStore, MemoryMetadataStore, Registry, Result, UploadId,
};

/// Counts bytes written into uploads and read out of blobs.
#[derive(Default)]
struct CountingStore {
    inner: MemoryBlobStore,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

#[async_trait]
impl BlobStore for CountingStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.inner.stat(digest).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let counter = self.read.clone();
        let stream = self.inner.read(digest, range).await?;
        Ok(Box::pin(stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        })))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.put(digest, bytes).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.inner.delete(digest).await
    }

    async fn upload_create(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>> {
        self.inner.upload_create(id, digest).await
    }

    async fn upload_append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        let (new_len, state) = self.inner.upload_append(id, state, offset, body).await?;
        self.written.fetch_add(new_len - offset, Ordering::Relaxed);
        Ok((new_len, state))
    }

    async fn upload_read(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream> {
        self.inner.upload_read(id, state, len).await
    }

    async fn upload_publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()> {
        self.inner.upload_publish(id, state, digest, size).await
    }

    async fn upload_delete(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()> {
        self.inner.upload_delete(id, state).await
    }

    // What garbage collection needs: listings and a deletion that spares fresh copies.

    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        self.inner.delete_if_older(digest, cutoff).await
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        self.inner.blob_info(digest).await
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        self.inner.upload_info(id).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        self.inner.list_blobs(after, limit).await
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        self.inner.list_uploads(after, limit).await
    }
}

async fn run() -> std::result::Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
    let store = Arc::new(CountingStore::default());
    let (written, read) = (store.written.clone(), store.read.clone());
    let registry = Registry::new(store, Arc::new(MemoryMetadataStore::new()), Limits::default());
    let server = registry_http::TestRegistry::start_with_registry(registry).await?;

    let blob = vec![42u8; 10_000];
    let digest = Digest::sha256_of(&blob);
    let (status, _, _) =
        send(server.addr(), "POST", &format!("/v2/counted/blobs/uploads/?digest={digest}"), blob).await?;
    assert_eq!(status, 201);
    let (status, _, body) = send(server.addr(), "GET", &format!("/v2/counted/blobs/{digest}"), "").await?;
    assert_eq!((status.as_u16(), body.len()), (200, 10_000));
    let counts = (written.load(Ordering::Relaxed), read.load(Ordering::Relaxed));
    println!("bytes written: {}, bytes read: {}", counts.0, counts.1);
    Ok(counts)
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn counts_what_passes_through() {
        assert_eq!(super::run().await.expect("example runs"), (10_000, 10_000));
    }
}
