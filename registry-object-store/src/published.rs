//! Published blobs: reading (whole or a range), small verified puts, listing and deleting.

use std::ops::Range;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStoreExt, PutPayload};
use registry_core::Digest;
use registry_storage::blob::StoredObject;
use registry_storage::{ByteStream, Error, Result};

use crate::ObjectBlobStore;
use crate::store::{fault, millis};

impl ObjectBlobStore {
    /// A blob's metadata, or `None`.
    pub(crate) async fn head_blob(&self, digest: &Digest) -> Result<Option<ObjectMeta>> {
        match self.objects.head(&self.layout.blob(digest)).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(fault("reading a blob's size")(e)),
        }
    }

    pub(crate) async fn read_blob(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        match self.objects.get_opts(&self.layout.blob(digest), options).await {
            Ok(result) => Ok(Box::pin(result.into_stream().map_err(std::io::Error::other))),
            Err(object_store::Error::NotFound { .. }) => Err(Error::BlobUnknown { digest: digest.clone() }),
            Err(e) => Err(fault("reading a blob")(e)),
        }
    }

    pub(crate) async fn put_blob(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.objects
            .put(&self.layout.blob(digest), PutPayload::from_bytes(bytes))
            .await
            .map_err(fault("writing a blob"))?;
        Ok(())
    }

    /// Deletes a blob (with `cutoff`, only one last written at or before it); its size if it was
    /// deleted. See the crate docs for why a HEAD then a DELETE is safe for garbage collection.
    pub(crate) async fn delete_blob(&self, digest: &Digest, cutoff: Option<u64>) -> Result<Option<u64>> {
        let Some(meta) = self.head_blob(digest).await? else { return Ok(None) };
        if cutoff.is_some_and(|cutoff| millis(&meta) > cutoff) {
            return Ok(None);
        }
        match self.objects.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(Some(meta.size)),
            Err(e) => Err(fault("deleting a blob")(e)),
        }
    }

    /// A presigned GET URL for the blob, when redirects are on.
    pub(crate) async fn presigned(&self, digest: &Digest) -> Result<Option<String>> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let url = signer
            .signed_url(http::Method::GET, &self.layout.blob(digest), crate::REDIRECT_LIFETIME)
            .await
            .map_err(fault("signing a download URL"))?;
        Ok(Some(url.to_string()))
    }

    pub(crate) async fn list_published(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredObject<Digest>>> {
        let prefix = self.layout.blobs();
        let listing = match after {
            Some(after) => self.objects.list_with_offset(Some(&prefix), &self.layout.blob_offset(after)),
            None => self.objects.list(Some(&prefix)),
        };
        let mut listing = listing;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(item) = listing.next().await else { break };
            let meta = item.map_err(fault("listing blobs"))?;
            // Anything else under the prefix (written by hand) is not ours to collect.
            if let Some(digest) = self.layout.digest_of(&meta.location) {
                found.push(StoredObject { key: digest, size: meta.size, modified: millis(&meta) });
            }
        }
        Ok(found)
    }
}
