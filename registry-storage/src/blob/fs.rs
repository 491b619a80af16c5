//! The filesystem [`BlobStore`], the reference server's default. (One store's whole contract, with
//! its fsync order and garbage collection's side, in one file: the parts only make sense together.)
//!
//! # Layout on disk
//!
//! ```text
//! <root>/blobs/<algorithm>/<first two hex>/<hex>   a published blob's bytes, e.g.
//!                                                  blobs/sha256/e3/e3b0c442…b855
//! <root>/uploads/<upload id>                       an upload in progress (a UUID)
//! <root>/tmp/<uuid>                                a small put (manifest) being written
//! ```
//!
//! Only digests' lowercase hex and canonical UUIDs ever form a path: repository names and tags
//! never touch the filesystem (they live in the metadata store), so no request can reach outside
//! `<root>`. The layout is stable; operators may back it up with any file tool (copy the metadata
//! database in the same snapshot).
//!
//! # Durability and the fsync order
//!
//! An append writes the bytes, then `fsync`s the upload file, and only then returns the new
//! length, which the engine records in the metadata store: data first, then the metadata that
//! points at it. If the process dies between the two, the upload file is longer than its recorded
//! offset; the next append truncates it back to the offset, so the recorded verifier state and the
//! bytes always agree. A failed body is undone the same way (truncate, fsync) before the error
//! returns, and publishing cuts the file to the verified size before the rename, so bytes that
//! were never acknowledged can never become part of a blob. Publishing renames the upload to its
//! content address (replacing an existing copy of the same bytes atomically) and then `fsync`s the
//! target directory (data, then the directory entry); the engine links the blob to the repository
//! in the metadata store only after that (then the metadata). A crash at any instant leaves the
//! old state or the new one; an orphan file at worst, which garbage collection removes.
//!
//! An append writes whole aligned blocks with `O_DIRECT`, past the page cache, and only the
//! misaligned head and tail through it (the `append` module says why and how; turned off by
//! [`FsBlobStore::with_buffered_writes`]); the `fsync` that acknowledges it covers both.
//!
//! # Garbage collection's side
//!
//! A published blob's modification time is its publication (set just before the rename), which
//! the grace period counts from. [`FsBlobStore::delete_if_older`] first renames the blob aside
//! (`tmp/gc-<uuid>`), so a publish of the same digest from then on creates a new file, then
//! deletes the aside copy if it is old or renames it back if a publish had just refreshed it.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::Digest;
use tokio::sync::mpsc;

mod append;

use append::{Frame, write_frames};

use super::{BlobStore, BodyStream, ByteStream, StoredObject, UploadId, body_error};
use crate::durable::{create_dirs, sync_dir};
use crate::error::{Error, Result};
use registry_core::time::epoch_millis;

/// Size of each read when streaming a blob out (one chunk is read ahead while one is sent).
const READ_CHUNK: usize = 1 << 20;
/// Frames in flight between the hashing task and the writing thread (backpressure bound).
const CHANNEL_DEPTH: usize = 64;

/// Blobs and uploads in a directory tree (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Uploads written through the page cache rather than past it (see [`Self::with_buffered_writes`]).
    buffered_writes: bool,
}

impl FsBlobStore {
    /// Opens (creating when needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsBlobStore> {
        let root = root.into();
        for dir in ["blobs", "uploads", "tmp"] {
            create_dirs(&root.join(dir))?;
        }
        Ok(FsBlobStore { root, buffered_writes: false })
    }

    /// Writes uploads through the page cache (`true`) instead of past it with `O_DIRECT` (the
    /// default). Buffered writes cost about 0.5 CPU-seconds more per GiB pushed and fill the page
    /// cache with what was pushed, so a pull right after a push reads from memory; direct writes
    /// leave the cache to what is pulled.
    pub fn with_buffered_writes(mut self, buffered: bool) -> FsBlobStore {
        self.buffered_writes = buffered;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a published blob's file is (also for the blob cache, which keeps this layout).
    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs").join(digest.algorithm().as_str()).join(&hex[..2]).join(hex)
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(id.as_str())
    }

    /// Number of uploads in progress on disk (for tests and operators).
    pub fn upload_count(&self) -> Result<usize> {
        Ok(std::fs::read_dir(self.root.join("uploads"))?.count())
    }
}

/// Moves `from` to `to` atomically, creating `to`'s directory, and makes the entry durable.
pub(super) fn publish_file(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
    // `blobs/<algorithm>/<xx>/` may be new, and so may `blobs/<algorithm>/`: each name durable.
    create_dirs(dir)?;
    // An existing copy (same digest, same bytes) is replaced atomically: one copy stays, and
    // it is the fresh one, which garbage collection's `delete_if_older` will not take.
    std::fs::rename(from, to)?;
    sync_dir(dir)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Opens a file with its size; `None` when it does not exist.
async fn open_sized(path: PathBuf) -> Result<Option<(File, u64)>> {
    blocking(move || match File::open(&path) {
        Ok(f) => {
            let size = f.metadata()?.len();
            Ok(Some((f, size)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

/// `len` bytes of `file` from `offset`, into a buffer never zeroed.
fn read_chunk(file: &mut File, offset: u64, len: u64) -> io::Result<Bytes> {
    use std::io::Read;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than recorded"));
    }
    Ok(Bytes::from(buf))
}

/// A blob opened for reading: its first chunk read, and the file while more is to come.
enum Opened {
    /// The range lies outside a blob of this size.
    Unsatisfiable(u64),
    /// The first chunk of the range, and the file with where the rest begins and ends.
    Read { first: Bytes, rest: Option<(File, Range<u64>)> },
}

/// Opens `path`, checks `range` against its size and reads the first chunk, in one blocking
/// call: a blob of one chunk (configs, manifests' small layers) is open only during that call, so
/// however many requests wait for the blocking pool, open files stay bounded by its threads.
async fn open_and_read(path: PathBuf, range: Option<Range<u64>>) -> Result<Option<Opened>> {
    blocking(move || {
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata()?.len();
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Ok(Some(Opened::Unsatisfiable(size)));
        }
        let len = (READ_CHUNK as u64).min(range.end - range.start);
        let first = read_chunk(&mut file, range.start, len)?;
        let next = range.start + len;
        Ok(Some(Opened::Read { first, rest: (next < range.end).then_some((file, next..range.end)) }))
    })
    .await
}

/// Streams `range` of `file` in [`READ_CHUNK`] reads on blocking threads, the next read running
/// while the previous chunk is sent. No thread waits on a slow client: a read starts only when the
/// consumer takes the chunk before it. Reads go into fresh, uninitialized-then-filled buffers
/// (`read_to_end` into reserved capacity), so no byte is zeroed or copied twice.
fn read_ahead(file: File, range: Range<u64>) -> ByteStream {
    type Pending = tokio::task::JoinHandle<(File, io::Result<Bytes>)>;
    fn start(mut file: File, offset: u64, len: u64) -> Pending {
        tokio::task::spawn_blocking(move || {
            let read = read_chunk(&mut file, offset, len);
            (file, read)
        })
    }
    let end = range.end;
    let chunk = move |offset: u64| (READ_CHUNK as u64).min(end - offset);
    let first = (range.start < end).then(|| start(file, range.start, chunk(range.start)));
    Box::pin(futures::stream::unfold((first, range.start), move |(pending, offset)| async move {
        let (file, read) = match pending?.await {
            Ok(done) => done,
            Err(e) => return Some((Err(io::Error::other(e)), (None, end))),
        };
        let bytes = match read {
            Ok(b) => b,
            Err(e) => return Some((Err(e), (None, end))),
        };
        let next = offset + bytes.len() as u64;
        let pending = (next < end).then(|| start(file, next, chunk(next)));
        Some((Ok(bytes), (pending, next)))
    }))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        match open_and_read(self.blob_path(digest), range).await? {
            None => Err(Error::BlobUnknown { digest: digest.clone() }),
            Some(Opened::Unsatisfiable(size)) => Err(Error::RangeNotSatisfiable { size }),
            Some(Opened::Read { first, rest }) => {
                let first = (!first.is_empty()).then_some(Ok(first));
                let head = futures::stream::iter(first);
                Ok(match rest {
                    Some((file, range)) => Box::pin(head.chain(read_ahead(file, range))),
                    None => Box::pin(head),
                })
            }
        }
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let tmp = self.root.join("tmp").join(UploadId::new_random().as_str());
        let target = self.blob_path(digest);
        blocking(move || {
            let write = || -> io::Result<()> {
                let mut f = File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_data()?;
                publish_file(&tmp, &target)
            };
            let result = write();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the blob aside atomically (so a publish of the same digest from now on creates a new
    /// file), then deletes it if it is old; a fresh one (published just before) is put back.
    async fn delete_if_older(&self, digest: &Digest, cutoff: u64) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        let aside = self.root.join("tmp").join(format!("gc-{}", UploadId::new_random()));
        blocking(move || {
            match std::fs::rename(&path, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
            let meta = std::fs::metadata(&aside)?;
            if modified_ms(&meta) > cutoff {
                // Same bytes as anything published there meanwhile: putting it back is harmless.
                std::fs::rename(&aside, &path)?;
                // Durably: a publish into the same directory may have synced it while the blob
                // was aside, and `tmp/` never is, so a cut would lose a blob still in use.
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                return Ok(None);
            }
            std::fs::remove_file(&aside)?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(Some(meta.len()))
        })
        .await
    }

    async fn upload_create(&self, id: &UploadId, _: Option<&Digest>) -> Result<Vec<u8>> {
        let path = self.upload_path(id);
        let dir = self.root.join("uploads");
        blocking(move || {
            File::create_new(&path)?.sync_all()?;
            sync_dir(&dir)
        })
        .await?;
        Ok(Vec::new())
    }

    async fn upload_append(
        &self,
        id: &UploadId,
        _: &[u8],
        offset: u64,
        body: &mut BodyStream<'_>,
    ) -> Result<(u64, Vec<u8>)> {
        let path = self.upload_path(id);
        if !tokio::fs::try_exists(&path).await? {
            return Err(Error::UploadUnknown);
        }
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let direct = !self.buffered_writes;
        let writer = tokio::task::spawn_blocking(move || write_frames(&path, offset, direct, rx));
        let mut body_failure = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) => {
                    if tx.send(Frame::Data(bytes)).await.is_err() {
                        break; // the writer failed; its error is below
                    }
                }
                Err(e) => {
                    body_failure = Some(body_error(e));
                    let _ = tx.send(Frame::Abort).await;
                    break;
                }
            }
        }
        drop(tx);
        let written = writer.await??;
        match (body_failure, written) {
            (Some(e), _) => Err(e),
            (None, Ok(n)) => Ok((n, Vec::new())),
            (None, Err(len)) => Err(Error::RangeInvalid { offset: len }),
        }
    }

    async fn upload_read(&self, id: &UploadId, _: &[u8], len: u64) -> Result<ByteStream> {
        let path = self.upload_path(id);
        let opened = open_sized(path).await?;
        let Some((file, size)) = opened else { return Err(Error::UploadUnknown) };
        Ok(read_ahead(file, 0..size.min(len)))
    }

    async fn upload_publish(&self, id: &UploadId, _: &[u8], digest: &Digest, size: u64) -> Result<()> {
        let from = self.upload_path(id);
        let to = self.blob_path(digest);
        blocking(move || {
            // Exactly the verified bytes: cut off anything past them, durably, before the rename.
            let file = match OpenOptions::new().write(true).open(&from) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(io::Error::new(io::ErrorKind::NotFound, "upload unknown"));
                }
                Err(e) => return Err(e),
            };
            let len = file.metadata()?.len();
            if len < size {
                return Err(io::Error::other(format!("upload holds {len} bytes, fewer than the {size} verified")));
            }
            if len > size {
                file.set_len(size)?;
                file.sync_all()?;
            }
            // Written now, as far as garbage collection is concerned (the last chunk may be old).
            // Not synced: after a power cut the time may be the last chunk's, which only shortens
            // the grace of a blob the metadata does not link yet (the push was not acknowledged).
            file.set_modified(std::time::SystemTime::now())?;
            drop(file);
            publish_file(&from, &to)
        })
        .await
    }

    async fn upload_delete(&self, id: &UploadId, _: Option<&[u8]>) -> Result<()> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn blob_info(&self, digest: &Digest) -> Result<Option<StoredObject<Digest>>> {
        stored(self.blob_path(digest), digest.clone()).await
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<StoredObject<UploadId>>> {
        stored(self.upload_path(id), id.clone()).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<StoredObject<Digest>>> {
        let root = self.root.join("blobs");
        let after = after.map(|d| d.to_string());
        blocking(move || list_blob_files(&root, after.as_deref(), limit)).await
    }

    async fn list_uploads(&self, after: Option<&UploadId>, limit: usize) -> Result<Vec<StoredObject<UploadId>>> {
        let dir = self.root.join("uploads");
        let after = after.map(|id| id.to_string());
        blocking(move || {
            let mut names = sorted_names(&dir)?;
            names.retain(|n| after.as_deref().is_none_or(|a| n.as_str() > a));
            let mut out = Vec::new();
            for name in names {
                if out.len() == limit {
                    break;
                }
                // Anything else in the directory is not ours to judge.
                let Ok(id) = UploadId::parse(&name) else { continue };
                match std::fs::metadata(dir.join(&name)) {
                    Ok(m) => out.push(StoredObject { key: id, size: m.len(), modified: modified_ms(&m) }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }
}

/// The size and modification time of the file at `path`, as the object `key`.
async fn stored<K: Send + 'static>(path: PathBuf, key: K) -> Result<Option<StoredObject<K>>> {
    blocking(move || match std::fs::metadata(&path) {
        Ok(m) => Ok(Some(StoredObject { key, size: m.len(), modified: modified_ms(&m) })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

fn modified_ms(m: &std::fs::Metadata) -> u64 {
    m.modified().map(epoch_millis).unwrap_or(0)
}

/// The entry names of `dir`, sorted; none when it does not exist.
fn sorted_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    Ok(names)
}

/// Up to `limit` blobs under `root` (`<algorithm>/<2 hex>/<hex>`) whose digest text comes after
/// `after`. Reads only the directories at or after `after`'s, so a page costs what it returns.
fn list_blob_files(root: &Path, after: Option<&str>, limit: usize) -> io::Result<Vec<StoredObject<Digest>>> {
    let mut out = Vec::new();
    for algorithm in sorted_names(root)? {
        if after.is_some_and(|a| a.split(':').next().is_some_and(|alg| algorithm.as_str() < alg)) {
            continue;
        }
        for prefix in sorted_names(&root.join(&algorithm))? {
            let floor = format!("{algorithm}:{prefix}");
            if after.is_some_and(|a| floor.as_str() < a && !a.starts_with(&floor)) {
                continue;
            }
            for hex in sorted_names(&root.join(&algorithm).join(&prefix))? {
                let text = format!("{algorithm}:{hex}");
                if after.is_some_and(|a| text.as_str() <= a) {
                    continue;
                }
                // Only names that are digests (a stray file is left alone).
                let Ok(digest) = Digest::parse(&text) else { continue };
                match std::fs::metadata(root.join(&algorithm).join(&prefix).join(&hex)) {
                    Ok(m) => out.push(StoredObject { key: digest, size: m.len(), modified: modified_ms(&m) }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}
