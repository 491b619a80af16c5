//! Uploads: creating, appending (parts and a tail), reading back, publishing and removing. The
//! design is in the crate docs; the state is `state::UploadState`.

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use registry_core::{Algorithm, Digest};
use registry_storage::blob::{StoredObject, body_error};
use registry_storage::{BodyStream, ByteStream, Error, Result, UploadId};

use crate::state::{Tail, UploadState};
use crate::store::{fault, millis};
use crate::{MAX_COPY, ObjectBlobStore, PARTS_IN_FLIGHT};

/// The marker every upload has, for listing.
const STARTED: &str = "started";
/// The object naming the multipart upload (target and id), to abort it without the state.
const MULTIPART: &str = "multipart";
/// A chunked upload's multipart target.
const DATA: &str = "data";
/// An upload completed early to be read back.
const SEALED: &str = "sealed";

/// A random suffix, so that no two appends ever write the same tail object.
fn nonce() -> String {
    UploadId::new_random().as_str().replace('-', "")
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Bytes gathered until a part is full.
struct PartBuffer {
    chunks: Vec<Bytes>,
    len: u64,
}

impl PartBuffer {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len() as u64;
        self.chunks.push(bytes);
    }

    /// The first `n` bytes (the caller checked there are that many).
    fn take(&mut self, n: u64) -> PutPayload {
        let mut taken = Vec::new();
        let mut missing = n;
        let mut rest = Vec::new();
        for mut chunk in self.chunks.drain(..) {
            if missing == 0 {
                rest.push(chunk);
            } else if (chunk.len() as u64) <= missing {
                missing -= chunk.len() as u64;
                taken.push(chunk);
            } else {
                let head = chunk.split_to(missing as usize);
                missing = 0;
                taken.push(head);
                rest.push(chunk);
            }
        }
        self.chunks = rest;
        self.len -= n;
        taken.into_iter().collect()
    }

    fn rest(self) -> PutPayload {
        self.chunks.into_iter().collect()
    }
}

impl ObjectBlobStore {
    pub(crate) async fn create_upload(&self, id: &UploadId, digest: Option<&Digest>) -> Result<Vec<u8>> {
        self.objects
            .put(&self.layout.upload_object(id, STARTED), PutPayload::new())
            .await
            .map_err(fault("starting an upload"))?;
        // With a sha256 digest announced, the engine verifies while the bytes stream in and never
        // reads them back: the parts can go to the blob's own key, and completing the multipart
        // upload is the publication (nothing is visible before it).
        let target = match digest {
            Some(d) if d.algorithm() == Algorithm::Sha256 => self.layout.blob(d),
            _ => self.layout.upload_object(id, DATA),
        };
        Ok(UploadState::new(self.part_size, self.layout.name(&target).to_owned()).encode())
    }

    pub(crate) async fn append(
        &self,
        id: &UploadId,
        state: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        let mut state = UploadState::decode(state)?;
        if offset != state.len() {
            return Err(Error::RangeInvalid { offset: state.len() });
        }
        // The caller appends from a saved state: its predecessor's tail is garbage now.
        if let Some(old) = state.superseded.take() {
            self.remove_quietly(&self.layout.key(&old)).await;
        }
        let mut buffer = PartBuffer { chunks: Vec::new(), len: 0 };
        if let Some(tail) = &state.tail {
            let bytes = self.read_tail(id, tail).await?;
            buffer.push(bytes);
        }
        let mut sending = FuturesOrdered::new();
        let mut failure = None;
        while let Some(item) = body.next().await {
            let bytes = match item {
                Ok(bytes) => bytes,
                Err(e) => {
                    failure = Some(body_error(e));
                    break;
                }
            };
            buffer.push(bytes);
            while buffer.len >= state.part_size {
                let payload = buffer.take(state.part_size);
                let multipart = self.multipart_id(id, &mut state).await?;
                let index = state.parts.len() + sending.len();
                let (store, target) = (self.multipart.clone(), self.layout.key(&state.target));
                sending.push_back(async move { store.put_part(&target, &multipart, index, payload).await });
                if sending.len() >= PARTS_IN_FLIGHT
                    && let Some(sent) = sending.next().await
                {
                    state.parts.push(sent.map_err(fault("sending a part"))?.content_id);
                }
            }
        }
        if let Some(e) = failure {
            // Parts already sent are rewritten at the same numbers by the next append.
            return Err(e);
        }
        while let Some(sent) = sending.next().await {
            state.parts.push(sent.map_err(fault("sending a part"))?.content_id);
        }
        let tail_len = buffer.len;
        let name = self.layout.upload_object(id, &format!("tail-{}", nonce()));
        self.objects.put(&name, buffer.rest()).await.map_err(fault("writing an upload's tail"))?;
        state.superseded = state.tail.take().map(|t| t.name);
        state.tail = Some(Tail { name: self.layout.name(&name).to_owned(), len: tail_len });
        Ok((state.len(), state.encode()))
    }

    /// The multipart upload's id, started (and recorded beside the upload) on first use.
    async fn multipart_id(&self, id: &UploadId, state: &mut UploadState) -> Result<String> {
        if let Some(multipart) = &state.multipart {
            return Ok(multipart.clone());
        }
        let target = self.layout.key(&state.target);
        let multipart = self.multipart.create_multipart(&target).await.map_err(fault("starting a multipart upload"))?;
        let record = format!("{}\n{multipart}", state.target);
        self.objects
            .put(&self.layout.upload_object(id, MULTIPART), PutPayload::from(record))
            .await
            .map_err(fault("recording a multipart upload"))?;
        state.multipart = Some(multipart.clone());
        Ok(multipart)
    }

    async fn read_tail(&self, id: &UploadId, tail: &Tail) -> Result<Bytes> {
        match self.objects.get(&self.layout.key(&tail.name)).await {
            Ok(result) => {
                let bytes = result.bytes().await.map_err(fault("reading an upload's tail"))?;
                if bytes.len() as u64 != tail.len {
                    return Err(Error::corrupt(
                        format!("upload {id}"),
                        std::io::Error::other(format!("its tail holds {} bytes, not {}", bytes.len(), tail.len)),
                    ));
                }
                Ok(bytes)
            }
            Err(e) if is_not_found(&e) => Err(Error::UploadUnknown),
            Err(e) => Err(fault("reading an upload's tail")(e)),
        }
    }

    /// Completes the multipart upload at its target: the parts, and the tail as the last part.
    async fn complete(&self, id: &UploadId, state: &UploadState) -> Result<()> {
        let Some(multipart) = &state.multipart else { return Ok(()) };
        let target = self.layout.key(&state.target);
        let mut parts: Vec<PartId> = state.parts.iter().map(|p| PartId { content_id: p.clone() }).collect();
        if let Some(tail) = state.tail.as_ref().filter(|t| t.len > 0) {
            let bytes = self.read_tail(id, tail).await?;
            let last = self
                .multipart
                .put_part(&target, multipart, parts.len(), PutPayload::from_bytes(bytes))
                .await
                .map_err(fault("sending the last part"))?;
            parts.push(last);
        }
        self.multipart.complete_multipart(&target, multipart, parts).await.map_err(fault("completing an upload"))?;
        Ok(())
    }

    /// The upload's first `len` bytes. With parts, the multipart upload is completed first (into
    /// the upload's own key): after that, the upload can only be published or removed, which is
    /// all the engine does after reading one back.
    pub(crate) async fn read_upload(&self, id: &UploadId, state: &[u8], len: u64) -> Result<ByteStream> {
        let state = UploadState::decode(state)?;
        if len > state.len() {
            return Err(Error::invariant("reading past the end of an upload"));
        }
        let source = if state.multipart.is_none() {
            let Some(tail) = &state.tail else { return Ok(Box::pin(futures::stream::empty())) };
            self.layout.key(&tail.name)
        } else {
            self.sealed(id, &state).await?
        };
        if len == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let options =
            object_store::GetOptions { range: Some(object_store::GetRange::Bounded(0..len)), ..Default::default() };
        match self.objects.get_opts(&source, options).await {
            Ok(result) => Ok(Box::pin(result.into_stream().map_err(std::io::Error::other))),
            Err(e) if is_not_found(&e) => Err(Error::UploadUnknown),
            Err(e) => Err(fault("reading an upload")(e)),
        }
    }

    /// The key holding the completed upload, completing it on first use.
    async fn sealed(&self, id: &UploadId, state: &UploadState) -> Result<Path> {
        let sealed = self.layout.upload_object(id, SEALED);
        if self.layout.key(&state.target) != self.layout.upload_object(id, DATA) {
            return Err(Error::invariant("an upload announced with its digest is never read back"));
        }
        match self.objects.head(&sealed).await {
            Ok(meta) if meta.size == state.len() => return Ok(sealed),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(fault("reading an upload")(e)),
        }
        self.complete(id, state).await?;
        let data = self.layout.upload_object(id, DATA);
        self.objects.rename(&data, &sealed).await.map_err(fault("sealing an upload"))?;
        Ok(sealed)
    }

    pub(crate) async fn publish(&self, id: &UploadId, state: &[u8], digest: &Digest, size: u64) -> Result<()> {
        let state = UploadState::decode(state)?;
        if state.len() != size {
            return Err(Error::invariant(format!("publishing {size} bytes of an upload holding {}", state.len())));
        }
        let blob = self.layout.blob(digest);
        let sealed = self.layout.upload_object(id, SEALED);
        let source = match (&state.multipart, &state.tail) {
            (None, None) => None,
            (None, Some(tail)) => Some(self.layout.key(&tail.name)),
            (Some(_), _) => match self.objects.head(&sealed).await {
                Ok(meta) if meta.size == size => Some(sealed),
                _ => {
                    self.complete(id, &state).await?;
                    let target = self.layout.key(&state.target);
                    (target != blob).then_some(target)
                }
            },
        };
        match source {
            None if state.multipart.is_none() => {
                self.objects.put(&blob, PutPayload::new()).await.map_err(fault("publishing a blob"))?;
            }
            None => {}
            Some(source) => self.copy(&source, &blob, size).await?,
        }
        self.remove_objects(id).await
    }

    /// Copies an object: one request up to S3's copy limit, streamed through a multipart upload
    /// beyond it.
    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<()> {
        if size <= MAX_COPY {
            return self.objects.copy(from, to).await.map_err(fault("publishing a blob"));
        }
        let mut source = self.objects.get(from).await.map_err(fault("reading an upload"))?.into_stream();
        let multipart = self.multipart.create_multipart(to).await.map_err(fault("starting a copy"))?;
        let mut buffer = PartBuffer { chunks: Vec::new(), len: 0 };
        let mut parts = Vec::new();
        let result: Result<()> = async {
            while let Some(chunk) = source.next().await {
                buffer.push(chunk.map_err(fault("reading an upload"))?);
                while buffer.len >= self.part_size {
                    let payload = buffer.take(self.part_size);
                    let part = self.multipart.put_part(to, &multipart, parts.len(), payload).await;
                    parts.push(part.map_err(fault("copying a part"))?);
                }
            }
            if buffer.len > 0 {
                let part = self.multipart.put_part(to, &multipart, parts.len(), buffer.rest()).await;
                parts.push(part.map_err(fault("copying a part"))?);
            }
            self.multipart.complete_multipart(to, &multipart, parts).await.map_err(fault("completing a copy"))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.multipart.abort_multipart(to, &multipart).await;
        }
        result
    }

    pub(crate) async fn remove_upload(&self, id: &UploadId, state: Option<&[u8]>) -> Result<()> {
        let multipart = match state {
            Some(state) => {
                let state = UploadState::decode(state)?;
                state.multipart.map(|m| (self.layout.key(&state.target), m))
            }
            None => self.recorded_multipart(id).await?,
        };
        if let Some((target, multipart)) = multipart {
            match self.multipart.abort_multipart(&target, &multipart).await {
                // Gone already (completed, aborted, or expired by a lifecycle rule).
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(upload = %id, error = %e, "could not abort a multipart upload"),
            }
        }
        self.remove_objects(id).await
    }

    async fn recorded_multipart(&self, id: &UploadId) -> Result<Option<(Path, String)>> {
        match self.objects.get(&self.layout.upload_object(id, MULTIPART)).await {
            Ok(result) => {
                let bytes = result.bytes().await.map_err(fault("reading an upload"))?;
                let text = String::from_utf8_lossy(&bytes);
                Ok(text.split_once('\n').map(|(target, m)| (self.layout.key(target), m.to_owned())))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(fault("reading an upload")(e)),
        }
    }

    /// Removes every object of the upload, its marker last (so a failure midway leaves it listed
    /// for garbage collection).
    async fn remove_objects(&self, id: &UploadId) -> Result<()> {
        let marker = self.layout.upload_object(id, STARTED);
        let keys: Vec<Path> = self
            .objects
            .list(Some(&self.layout.upload_dir(id)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(fault("listing an upload"))?;
        for key in keys.iter().filter(|k| **k != marker) {
            self.remove(key).await?;
        }
        self.remove(&marker).await
    }

    async fn remove(&self, key: &Path) -> Result<()> {
        match self.objects.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(fault("removing an upload")(e)),
        }
    }

    async fn remove_quietly(&self, key: &Path) {
        if let Err(e) = self.remove(key).await {
            tracing::warn!(key = %key, error = %e, "could not remove an upload's old tail (removed with the upload)");
        }
    }

    /// An upload's size (what its objects hold) and last write, or `None`.
    pub(crate) async fn upload_objects(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        let mut listing = self.objects.list(Some(&self.layout.upload_dir(id)));
        let mut found: Option<StoredObject<UploadId>> = None;
        while let Some(item) = listing.next().await {
            let meta = item.map_err(fault("listing an upload"))?;
            let entry = found.get_or_insert(StoredObject { key: id.clone(), size: 0, modified: 0 });
            entry.size += meta.size;
            entry.modified = entry.modified.max(millis(&meta));
        }
        Ok(found)
    }

    pub(crate) async fn list_upload_ids(
        &self,
        after: Option<&UploadId>,
        limit: usize,
    ) -> Result<Vec<StoredObject<UploadId>>> {
        let prefix = self.layout.uploads();
        let mut listing = match after {
            Some(after) => self.objects.list_with_offset(Some(&prefix), &self.layout.after_upload(after)),
            None => self.objects.list(Some(&prefix)),
        };
        let mut found: Vec<StoredObject<UploadId>> = Vec::new();
        while let Some(item) = listing.next().await {
            let meta = item.map_err(fault("listing uploads"))?;
            let Some(id) = self.layout.upload_of(&meta.location) else { continue };
            let full = found.len() == limit;
            match found.last_mut() {
                Some(last) if last.key == id => {
                    last.size += meta.size;
                    last.modified = last.modified.max(millis(&meta));
                }
                _ if full => break,
                _ => found.push(StoredObject { key: id, size: meta.size, modified: millis(&meta) }),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_buffer_cuts_exactly() {
        let mut buffer = PartBuffer { chunks: Vec::new(), len: 0 };
        for chunk in [&b"abc"[..], b"defg", b"h"] {
            buffer.push(Bytes::copy_from_slice(chunk));
        }
        let part: Bytes = buffer.take(5).into();
        assert_eq!(&part[..], b"abcde");
        assert_eq!(buffer.len, 3);
        let rest: Bytes = buffer.rest().into();
        assert_eq!(&rest[..], b"fgh");
    }
}
