//! # registry-redb
//!
//! The embedded backend: one [redb](https://docs.rs/redb) database file (an embedded, ACID,
//! crash-safe B-tree store in pure Rust) holding everything a registry knows besides blob bytes.
//!
//! | piece | what it is |
//! |---|---|
//! | [`RedbStore`] | the database: [`MetadataStore`](registry_storage::MetadataStore) (blob links, manifests, tags, referrers, uploads, GC indexes) and [`AccountStore`](registry_auth::AccountStore) (users, projects, members, robots, login failures) in one file, so that a change and what it implies commit together |
//! | [`open_embedded`] | the reference server's default: [`FsBlobStore`] blobs and a `metadata.redb` in one directory |
//! | `testing` (feature) | a redb file backend that fails like a full disk, for fault tests |
//!
//! The table layouts are documented where they are defined (`meta.rs`, `accounts.rs`). The
//! layout's version is kept in the `schema` table: 1 had metadata only, 2 added garbage
//! collection's indexes (built on open from 1), 3 added the account tables (accounts lived in a
//! separate `accounts.redb` before; [`RedbStore::import_legacy_accounts`] moves them in), 4 added
//! quotas and labels (every project's usage is counted on open from 3), 5 the listing index and
//! counts (`listing.rs`; built on open from 4), 6 the job queue's indexes and counts (`queue.rs`;
//! built on open from 5), 7 the finished jobs indexed by kind (rebuilt on open from 6).
//!
//! Each trait method is one read or write transaction; writes commit durably (fsync) before they
//! return, except upload-session creation and login-failure counts, which may be lost in a crash
//! at no cost. After an I/O failure the database is reopened on the next request (see
//! `handle.rs`), so a full disk clears without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use registry_core::{BackendError, SharedClock};
use registry_storage::FsBlobStore;

mod accounts;
mod events;
mod handle;
mod legacy;
mod listing;
mod meta;
mod queue;
mod quota;
mod reports;
mod tables;
#[cfg(feature = "testing")]
pub mod testing;

pub use legacy::LegacyImport;

const SCHEMA: TableDefinition<&str, u64> = TableDefinition::new("schema");
/// The layout version this code writes.
pub const SCHEMA_VERSION: u64 = 7;

/// The default page cache of the database file: the hot part of a large registry's metadata, and
/// a bound on the memory it takes (redb's own default, 1 GiB, would let the server's memory grow
/// with the database).
pub const PAGE_CACHE_BYTES: usize = 64 << 20;

/// The embedded database: metadata and accounts in one redb file (or in memory). Cheap to clone;
/// clones share the database.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<handle::Db>,
    hot: Arc<meta::HotReads>,
    projects: Arc<accounts::ProjectCache>,
    /// Digests held for a write (see `MetadataStore::hold_digest`): in memory, as the database
    /// belongs to one process and a hold lasts no longer than it.
    held: Arc<meta::Held>,
    clock: SharedClock,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

/// A database that cannot be opened or prepared.
#[derive(Debug, thiserror::Error)]
#[error("opening the embedded database {path}: {source}")]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: BackendError,
}

impl OpenError {
    /// Whether another process holds the database (a running server).
    pub fn is_locked(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&self.source);
        while let Some(c) = cause {
            if let Some(redb::DatabaseError::DatabaseAlreadyOpen) = c.downcast_ref::<redb::DatabaseError>() {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

impl RedbStore {
    /// Opens (creating when needed) the database file at `path`, with a page cache of
    /// [`PAGE_CACHE_BYTES`]. The file is locked while open: one process at a time.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, OpenError> {
        Self::open_with_cache(path, PAGE_CACHE_BYTES)
    }

    /// Opens the database file at `path` with a page cache of `cache_bytes`.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<RedbStore, OpenError> {
        let path = path.as_ref().to_owned();
        let file = path.clone();
        Self::open_with(&path, Box::new(move || Database::builder().set_cache_size(cache_bytes).create(&file)))
    }

    fn open_with(path: &Path, open: handle::Open) -> Result<RedbStore, OpenError> {
        let fail = |source: BackendError| OpenError { path: path.to_owned(), source };
        let db = open().map_err(|e| fail(BackendError::permanent("open", e)))?;
        // The file's name is durable only once its directory is synced: redb syncs the file at
        // each commit, never the directory, so a power cut after the first start could otherwise
        // drop the whole database (every commit in it acknowledged).
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        registry_storage::durable::sync_dir(dir)
            .map_err(|e| fail(BackendError::io("syncing the database's directory", e)))?;
        Self::init(db, Some(open)).map_err(fail)
    }

    /// A database in memory, for tests: the same code as the file store.
    pub fn in_memory() -> RedbStore {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new());
        // An in-memory database cannot fail to be created or prepared short of a bug.
        match db.map_err(|e| BackendError::permanent("in-memory database", e)).and_then(|db| Self::init(db, None)) {
            Ok(store) => store,
            Err(e) => panic!("in-memory redb database: {e}"),
        }
    }

    fn init(db: Database, open: Option<handle::Open>) -> Result<RedbStore, BackendError> {
        let hot = Arc::new(meta::HotReads::default());
        let projects = Arc::new(accounts::ProjectCache::default());
        let (h, p) = (hot.clone(), projects.clone());
        let prepare: handle::Prepare = Box::new(move |db| prepare(db, &h, &p));
        let db = handle::Db::new(db, open, prepare)?;
        Ok(RedbStore {
            db: Arc::new(db),
            hot,
            projects,
            held: Arc::default(),
            clock: registry_core::time::system_clock(),
        })
    }

    /// The same store dating links, marks and the like by `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> RedbStore {
        self.clock = clock;
        self
    }
}

/// Creates every table and brings the layout to [`SCHEMA_VERSION`]; refills the caches.
fn prepare(db: &Database, hot: &meta::HotReads, projects: &accounts::ProjectCache) -> Result<(), BackendError> {
    let txn = db.begin_write().map_err(handle::io_failure)?;
    let version = {
        let table = txn.open_table(SCHEMA).map_err(handle::io_failure)?;
        let v = table.get("version").map_err(handle::io_failure)?.map(|v| v.value());
        v.unwrap_or(1)
    };
    if version > SCHEMA_VERSION {
        return Err(BackendError::message(
            format!("the database has layout version {version}, newer than this program's {SCHEMA_VERSION}"),
            false,
        ));
    }
    meta::prepare(&txn, version).map_err(|e| BackendError::permanent("preparing the metadata tables", e))?;
    accounts::prepare(&txn, projects).map_err(|e| BackendError::permanent("preparing the account tables", e))?;
    txn.open_table(SCHEMA)
        .map_err(handle::io_failure)?
        .insert("version", SCHEMA_VERSION)
        .map_err(handle::io_failure)?;
    txn.commit().map_err(handle::io_failure)?;
    hot.clear();
    Ok(())
}

/// The embedded default's stores in one directory.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Blobs and uploads on the filesystem (`blobs/`, `uploads/`, `tmp/`).
    pub blobs: FsBlobStore,
    /// Metadata and accounts (`metadata.redb`).
    pub store: RedbStore,
}

/// Opens the embedded default in `dir` (created when needed): [`FsBlobStore`] at its root and
/// [`RedbStore`] in `metadata.redb`.
pub fn open_embedded(dir: &Path) -> Result<Embedded, OpenError> {
    let fail = |e: std::io::Error| OpenError { path: dir.to_owned(), source: BackendError::io("creating", e) };
    registry_storage::durable::create_dirs(dir).map_err(fail)?;
    let blobs = FsBlobStore::open(dir).map_err(|e| OpenError {
        path: dir.to_owned(),
        source: BackendError::permanent("opening the blob store", e),
    })?;
    let store = RedbStore::open(dir.join("metadata.redb"))?;
    Ok(Embedded { blobs, store })
}
