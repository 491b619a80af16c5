//! Fault injection for the embedded store (feature `testing`): a database file whose writes
//! fail like a full disk while a flag is set.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::{OpenError, RedbStore};

impl RedbStore {
    /// Opens the database file at `path` over a backend whose writes fail with `ENOSPC` while
    /// `failing` is set (reopening after a failure goes through the same backend).
    pub fn open_failing(path: &Path, failing: Arc<AtomicBool>) -> Result<RedbStore, OpenError> {
        let file = path.to_owned();
        Self::open_with(path, Box::new(move || FaultyRedbFile::open(&file, failing.clone())))
    }
}

/// A redb file backend whose writes fail with `ENOSPC` while `failing` is set, as a full disk: redb
/// then refuses every operation until the database is reopened, which the store does by itself.
#[derive(Debug)]
struct FaultyRedbFile {
    inner: redb::backends::FileBackend,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyRedbFile {
    /// Opens (creating when needed) the database at `path` over this backend.
    fn open(
        path: &std::path::Path,
        failing: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::result::Result<redb::Database, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let inner = redb::backends::FileBackend::new(file)?;
        redb::Database::builder().create_with_backend(FaultyRedbFile { inner, failing })
    }

    fn check(&self) -> std::io::Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

type Bound = std::ops::Bound<u64>;

impl redb::StorageBackend for FaultyRedbFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound, e: Bound) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound, e: Bound) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound, e: Bound) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound, e: Bound) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound, e: Bound) -> std::result::Result<(), redb::BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound, e: Bound) -> std::result::Result<bool, redb::BackendError> {
        self.inner.query_lock_range(s, e)
    }
}
