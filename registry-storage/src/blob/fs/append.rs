//! The writing half of an upload's append: the bytes of a request body, from the hashing task to
//! the upload file, on a blocking thread.
//!
//! # Past the page cache
//!
//! A buffered `write` copies every byte into the kernel's page cache, and that copy (with the
//! page cache's bookkeeping and the writeback after it) cost a push about as much CPU as hashing
//! the bytes. The writer therefore sends whole, aligned blocks of [`BLOCK`] bytes through a second
//! descriptor of the same file opened with `O_DIRECT`: the disk reads them from our buffer, and
//! the kernel copies nothing. Only what cannot be aligned goes through the page cache: the bytes
//! before the first [`ALIGN`] boundary when an append starts mid-block (a chunked upload's next
//! `PATCH`), and the tail after the last whole block. Both descriptors write disjoint ranges, in
//! order, from one thread; Linux writes back and drops cached pages in a direct write's range
//! before it, so the two paths never disagree.
//!
//! Durability is unchanged: a direct write may still sit in the disk's own cache, so an append
//! ends with `fdatasync` as before, and only then is the length acknowledged.
//!
//! Where `O_DIRECT` is refused (tmpfs and some FUSE filesystems refuse it at open, others fail the
//! first write with `EINVAL`), the writer falls back to buffered writes for the rest of the
//! append, with a helper thread flushing every [`EARLY_SYNC`] bytes so that the final
//! `fdatasync` finds little left to write.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The alignment `O_DIRECT` needs of offsets, lengths and buffer addresses: a page, which covers
/// disks of 512-byte and of 4 KiB sectors.
const ALIGN: usize = 4096;
/// Size of the writer's buffer and of each direct write: request bodies arrive in small frames;
/// disks want large writes.
const BLOCK: usize = 1 << 20;
/// How much buffered writing an append does before a helper thread starts flushing it to the
/// disk, so that the `fdatasync` which acknowledges the chunk finds little left to write (a 1 GiB
/// push otherwise waits for the whole GiB's writeback at its end). Direct writes need no help.
const EARLY_SYNC: u64 = 16 << 20;

/// What the hashing task sends the writing thread.
pub(super) enum Frame {
    /// The next bytes of the body.
    Data(Bytes),
    /// The body failed: undo the append.
    Abort,
}

/// Appends the frames to the upload file at `path` from `offset`, then makes them durable; run on
/// a blocking thread. `Ok(Ok(len))` is the file's new length; `Ok(Err(len))` when the file is
/// shorter than `offset` (nothing written). On a body failure or a write error, the file goes back
/// to `offset` before this returns.
/// `direct` chooses `O_DIRECT` for whole blocks (see the module docs).
pub(super) fn write_frames(
    path: &Path,
    offset: u64,
    direct: bool,
    mut frames: mpsc::Receiver<Frame>,
) -> io::Result<Result<u64, u64>> {
    let file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < offset {
        return Ok(Err(len));
    }
    // Bytes past the recorded offset were never acknowledged (a crash before the metadata
    // update): drop them so the file matches the saved verifier state.
    file.set_len(offset)?;
    let mut writer = Appender::new(file, direct.then(|| path.to_owned()), offset);
    let result = (|| {
        while let Some(frame) = frames.blocking_recv() {
            match frame {
                Frame::Data(bytes) => writer.write(&bytes)?,
                Frame::Abort => return Ok(None),
            }
        }
        writer.finish().map(Some)
    })();
    match result {
        Ok(Some(n)) => Ok(Ok(n)),
        other => {
            // Undo: the upload goes back to `offset`, whatever was written.
            let file = writer.into_file();
            file.set_len(offset)?;
            file.sync_data()?;
            other.map(|_| Ok(offset))
        }
    }
}

/// The direct descriptor's state: opened at the first whole block, and given up for good when the
/// filesystem refuses it.
enum Direct {
    NotTried(PathBuf),
    Open(File),
    /// Refused by the filesystem, or not asked for.
    Off,
}

/// Writes an append's bytes at increasing offsets: whole aligned blocks directly, the rest
/// buffered (see the module docs).
struct Appender {
    /// The buffered descriptor, also the one synced and cut back on failure.
    file: File,
    direct: Direct,
    /// `ALIGN` bytes more than a block, so that an aligned block fits at `start`; allocated at
    /// the first byte (an empty append allocates nothing).
    buf: Vec<u8>,
    start: usize,
    /// Bytes held in the block.
    fill: usize,
    /// The file offset of the block's first byte.
    pos: u64,
    /// Bytes written through the page cache since the last early sync.
    unsynced: u64,
    /// Started at the first nudge: most appends never write [`EARLY_SYNC`] bytes buffered.
    early: Option<EarlySync>,
    /// Bytes written through the direct descriptor (for the tests).
    direct_bytes: u64,
}

impl Appender {
    /// `path` is the file's, to open it again with `O_DIRECT`; `None` writes it all buffered.
    fn new(file: File, path: Option<PathBuf>, offset: u64) -> Appender {
        Appender {
            file,
            direct: path.map_or(Direct::Off, Direct::NotTried),
            buf: Vec::new(),
            start: 0,
            fill: 0,
            pos: offset,
            unsynced: 0,
            early: None,
            direct_bytes: 0,
        }
    }

    /// How many bytes the block takes before it is written: a whole block from an aligned
    /// offset; from a misaligned one, just enough to reach the next boundary.
    fn capacity(&self) -> usize {
        match (self.pos % ALIGN as u64) as usize {
            0 => BLOCK,
            misaligned => ALIGN - misaligned,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.buf.is_empty() && !bytes.is_empty() {
            self.buf = vec![0; BLOCK + ALIGN];
            self.start = self.buf.as_ptr().align_offset(ALIGN);
        }
        while !bytes.is_empty() {
            let capacity = self.capacity();
            let n = (capacity - self.fill).min(bytes.len());
            let at = self.start + self.fill;
            self.buf[at..at + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            bytes = &bytes[n..];
            if self.fill == capacity {
                self.flush(capacity)?;
            }
        }
        Ok(())
    }

    /// Writes the block's first `len` bytes at `pos` and moves the rest to the block's start.
    fn flush(&mut self, len: usize) -> io::Result<()> {
        let block = self.start..self.start + len;
        let direct =
            len.is_multiple_of(ALIGN) && self.pos.is_multiple_of(ALIGN as u64) && self.write_direct(block.clone())?;
        if !direct {
            self.file.write_all_at(&self.buf[block], self.pos)?;
            self.unsynced += len as u64;
            if self.unsynced >= EARLY_SYNC {
                if self.early.is_none() {
                    self.early = Some(EarlySync::start(&self.file)?);
                }
                if let Some(early) = &self.early {
                    early.nudge();
                }
                self.unsynced = 0;
            }
        }
        self.pos += len as u64;
        self.buf.copy_within(self.start + len..self.start + self.fill, self.start);
        self.fill -= len;
        Ok(())
    }

    /// Writes `block` of the buffer at `pos` through the direct descriptor; `false` when the
    /// filesystem does not take direct writes (the caller writes buffered instead).
    fn write_direct(&mut self, block: std::ops::Range<usize>) -> io::Result<bool> {
        if let Direct::NotTried(path) = &self.direct {
            self.direct = match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path) {
                Ok(file) => Direct::Open(file),
                Err(e) => {
                    tracing::debug!(error = %e, "O_DIRECT refused at open; writing through the page cache");
                    Direct::Off
                }
            };
        }
        let Direct::Open(direct) = &self.direct else { return Ok(false) };
        let len = block.len() as u64;
        match direct.write_all_at(&self.buf[block], self.pos) {
            Ok(()) => {
                self.direct_bytes += len;
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(error = %e, "O_DIRECT write refused; writing through the page cache");
                self.direct = Direct::Off;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes what the block holds (whole aligned pages directly, the tail buffered) and makes
    /// the append durable; returns the file's new length.
    fn finish(&mut self) -> io::Result<u64> {
        if self.fill > 0 {
            let aligned = if self.pos.is_multiple_of(ALIGN as u64) { self.fill - self.fill % ALIGN } else { 0 };
            if aligned > 0 {
                self.flush(aligned)?;
            }
            if self.fill > 0 {
                self.flush(self.fill)?;
            }
        }
        if let Some(mut early) = self.early.take() {
            early.stop();
        }
        self.file.sync_data()?;
        Ok(self.pos)
    }

    fn into_file(self) -> File {
        self.file
    }
}

/// A thread that runs `fdatasync` on a file while it is still being written, when nudged: the
/// writeback of what is written so far overlaps the rest of the upload. Durability still comes
/// from the writer's own last `fdatasync`; this only makes it short. Dropping it stops the thread.
struct EarlySync {
    nudges: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EarlySync {
    fn start(file: &File) -> io::Result<EarlySync> {
        let file = file.try_clone()?;
        // One nudge pending at most: nudges while a sync runs fold into the next one.
        let (nudges, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("upload-sync".into()).spawn(move || {
            while rx.recv().is_ok() {
                // An error here is the writer's to find at its own sync.
                let _ = file.sync_data();
            }
        })?;
        Ok(EarlySync { nudges: Some(nudges), thread: Some(thread) })
    }

    /// Asks for a sync of what is written (skipped when one is already asked for).
    fn nudge(&self) {
        if let Some(n) = &self.nudges {
            let _ = n.try_send(());
        }
    }

    /// Stops the thread after the sync under way.
    fn stop(&mut self) {
        self.nudges.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EarlySync {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Appends `body` in frames of `frames` sizes (cycled) to a file holding `offset` bytes, with
    /// `buffered` forcing the buffered path; returns the file's bytes and how many went direct.
    fn append(offset: usize, body: &[u8], frames: &[usize], buffered: bool) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("upload");
        std::fs::write(&path, pattern(offset, 7)).expect("write the upload's first bytes");
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        let mut writer = Appender::new(file, (!buffered).then(|| path.clone()), offset as u64);
        let mut rest = body;
        for size in frames.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).max(1).min(rest.len());
            writer.write(&rest[..n]).expect("write");
            rest = &rest[n..];
        }
        let len = writer.finish().expect("finish");
        assert_eq!(len, (offset + body.len()) as u64);
        (std::fs::read(&path).expect("read back"), writer.direct_bytes)
    }

    /// Whether the temp directory's filesystem takes `O_DIRECT` writes at all.
    fn direct_supported() -> bool {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("probe");
        std::fs::write(&path, b"").expect("create");
        let Ok(file) = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&path) else { return false };
        let mut buf = vec![0u8; 2 * ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        buf[start] = 1;
        file.write_all_at(&buf[start..start + ALIGN], 0).is_ok()
    }

    #[test]
    fn whole_blocks_go_direct_and_the_file_holds_every_byte() {
        let body = pattern(3 * BLOCK + 12_345, 1);
        let (file, direct) = append(0, &body, &[65_536, 17, 300_000], false);
        assert_eq!(file, body);
        if direct_supported() {
            // Three whole blocks and the tail's whole pages; only the last partial page buffered.
            assert_eq!(direct, (3 * BLOCK + 12_288) as u64);
        }
    }

    #[test]
    fn an_append_from_a_misaligned_offset_keeps_the_bytes_before_it() {
        let offset = 5_000;
        let body = pattern(2 * BLOCK, 2);
        let (file, direct) = append(offset, &body, &[1 << 20], false);
        assert_eq!(&file[..offset], &pattern(offset, 7)[..]);
        assert_eq!(&file[offset..], &body[..]);
        if direct_supported() {
            // The first 3,192 bytes reach the boundary buffered; all else but the last partial page
            // goes direct.
            let head = ALIGN * 2 - offset;
            let direct_expected = (body.len() - head) / ALIGN * ALIGN;
            assert_eq!(direct, direct_expected as u64);
        }
    }

    #[test]
    fn buffered_writes_get_every_byte_through_the_page_cache() {
        let body = pattern(BLOCK + 999, 3);
        let (file, direct) = append(100, &body, &[4_000, 70_000], true);
        assert_eq!(&file[100..], &body[..]);
        assert_eq!(direct, 0);
    }

    #[test]
    fn a_failed_body_leaves_the_file_at_its_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("upload");
        std::fs::write(&path, pattern(4_096, 7)).expect("write");
        let (tx, rx) = mpsc::channel(4);
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || write_frames(&path, 4_096, true, rx))
        };
        tx.blocking_send(Frame::Data(Bytes::from(pattern(3 * BLOCK, 4)))).expect("send");
        tx.blocking_send(Frame::Abort).expect("send");
        drop(tx);
        let result = writer.join().expect("writer thread").expect("write_frames");
        assert_eq!(result, Ok(4_096));
        assert_eq!(std::fs::read(&path).expect("read"), pattern(4_096, 7));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the offset, frame sizes and path, the file is its first bytes then the body.
        #[test]
        fn the_file_is_the_old_bytes_then_the_body(
            offset in 0usize..3 * ALIGN,
            len in 0usize..3 * BLOCK,
            frames in prop::collection::vec(1usize..BLOCK + 3, 1..5),
            buffered in any::<bool>(),
        ) {
            let body = pattern(len, 9);
            let (file, _) = append(offset, &body, &frames, buffered);
            prop_assert_eq!(&file[..offset], &pattern(offset, 7)[..]);
            prop_assert!(file[offset..] == body[..]);
        }
    }
}
