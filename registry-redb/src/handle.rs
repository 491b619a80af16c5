//! [`Db`]: the one redb database of a store, reopened after an I/O failure.
//!
//! After an I/O error on its file (a full or failing disk) redb refuses every later operation
//! until the database is reopened. So the handle drops the database when a transaction fails with
//! an I/O error, and the next request reopens the file (getting a retryable error until that
//! succeeds): the registry works again as soon as the fault clears, without a restart.
//!
//! Transactions run on tokio's blocking pool (redb is synchronous). Whether a failure was an I/O
//! failure is known from its type: [`io_failure`] is the only conversion that makes a retryable
//! [`BackendError`] from a redb error, and [`Fault`] reads it back from the store's error types.
//!
//! Durable writes share their fsyncs (group commit). Each write transaction commits without one
//! (`Durability::None`: visible at once, on disk with the next durable commit), then waits for a
//! durable commit that began after its own; one such commit, an empty transaction, makes every
//! commit before it durable, so the writers that wait at the same time share one. A write is
//! acknowledged only after that, so nothing acknowledged rests on an unsynced page, and a write
//! read by another request before it is durable can only be lost together with everything that
//! request wrote after it (redb commits in one order). Why: redb has one writer at a time, and a
//! commit that fsyncs holds it for the disk's flush; under sixteen pushers a webhook delivery's two
//! commits waited behind dozens of flushes. A failing write rolls back alone, as before (its own
//! transaction is dropped); a failed durable commit fails every write waiting on it, with the
//! database reopened (their outcome is unknown, as when a commit's fsync fails). A database in memory
//! (tests, benches) has nothing to flush: its writes commit as asked.

use std::sync::{Arc, Mutex, RwLock};

use redb::Database;
use registry_core::BackendError;
use tokio::sync::oneshot;

/// Opens the database (again).
pub(crate) type Open = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;
/// Prepares a freshly opened database (tables, schema, caches).
pub(crate) type Prepare = Box<dyn Fn(&Database) -> Result<(), BackendError> + Send + Sync>;

/// The error types of the two store traits, as the handle needs them.
pub(crate) trait Fault: Send + 'static {
    /// This error for a backend failure.
    fn backend(e: BackendError) -> Self;
    /// The backend failure inside, if it is one.
    fn as_backend(&self) -> Option<&BackendError>;
}

impl Fault for registry_storage::Error {
    fn backend(e: BackendError) -> Self {
        registry_storage::Error::Backend(e)
    }

    fn as_backend(&self) -> Option<&BackendError> {
        match self {
            registry_storage::Error::Backend(e) => Some(e),
            _ => None,
        }
    }
}

impl Fault for registry_auth::AuthError {
    fn backend(e: BackendError) -> Self {
        registry_auth::AuthError::Backend(e)
    }

    fn as_backend(&self) -> Option<&BackendError> {
        match self {
            registry_auth::AuthError::Backend(e) => Some(e),
            _ => None,
        }
    }
}

/// A redb error as a backend failure: retryable for I/O failures (the handle reopens the
/// database), permanent otherwise.
pub(crate) fn io_failure(e: impl Into<redb::Error>) -> BackendError {
    match e.into() {
        e @ (redb::Error::Io(_) | redb::Error::PreviousIo) => {
            BackendError::retryable("embedded database I/O failure (it will be reopened)", e)
        }
        e => BackendError::permanent("embedded database", e),
    }
}

/// A redb error as the store's error type.
pub(crate) fn db_err<E: Fault>(e: impl Into<redb::Error>) -> E {
    E::backend(io_failure(e))
}

/// The database handle.
pub(crate) struct Db {
    current: RwLock<Option<Arc<Opened>>>,
    open: Option<Open>,
    prepare: Prepare,
    reopening: Mutex<()>,
    alive: Arc<Alive>,
}

/// An opened database and the writers waiting for its next durable commit.
pub(crate) struct Opened {
    db: Database,
    sync: Mutex<Syncs>,
    /// Signalled when a writer joins the waiting ones (tests: see `Syncs::hold_for`).
    #[cfg(test)]
    joined: std::sync::Condvar,
    /// Declared after `db`, so dropped after it: counted out once the file is closed.
    _alive: AliveGuard,
}

/// How long dropping a handle waits for operations still running on the blocking pool.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The databases of a handle still open (the current one, and older ones after a reopen while
/// operations that began on them finish).
///
/// Why: an operation runs on tokio's blocking pool and holds the database until it ends, even
/// when the request that asked for it is gone (a task aborted at shutdown, a client that hung
/// up). Without waiting for those, a store could be dropped (a server stopped) and its file still
/// be locked for a moment, and opening the same data again at once (a restart in the same
/// process: an embedder's, a test's) failed with "database already open".
#[derive(Default)]
struct Alive {
    open: Mutex<usize>,
    closed: std::sync::Condvar,
}

/// One open database counted in [`Alive`].
struct AliveGuard(Arc<Alive>);

impl Alive {
    fn count(self: &Arc<Self>) -> AliveGuard {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        AliveGuard(self.clone())
    }

    /// Waits (up to `limit`) until every database counted here is closed; whether they are.
    fn wait_closed(&self, limit: std::time::Duration) -> bool {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (open, _) =
            self.closed.wait_timeout_while(open, limit, |open| *open > 0).unwrap_or_else(|p| p.into_inner());
        *open == 0
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        *self.0.open.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.closed.notify_all();
    }
}

/// The writers waiting for a durable commit, and whether a task is making them.
#[derive(Default)]
struct Syncs {
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
    running: bool,
    /// Durable commits made so far (for tests: writers that wait together share one).
    done: u64,
    /// For tests: the next durable commit waits until this many writers wait for it (bounded by
    /// [`HOLD_LIMIT`]), so that a test of writers arriving together does not depend on how the
    /// machine schedules them.
    #[cfg(test)]
    hold_for: usize,
}

/// How long a held durable commit waits for its writers at most (tests).
#[cfg(test)]
const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl std::ops::Deref for Opened {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}

impl Opened {
    fn new(db: Database, alive: &Arc<Alive>) -> Arc<Opened> {
        Arc::new(Opened {
            db,
            sync: Mutex::new(Syncs::default()),
            #[cfg(test)]
            joined: std::sync::Condvar::new(),
            _alive: alive.count(),
        })
    }

    fn syncs(&self) -> std::sync::MutexGuard<'_, Syncs> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the writers waiting for the next durable commit, whose end the receiver gets: a
    /// commit that begins after this call, so every commit made before it is then on disk. When no
    /// durable commit is being made, the caller makes one at once, on its own blocking thread (an
    /// uncontended write costs no hand-off), and writers that joined meanwhile get a task of their
    /// own.
    fn join_durable(self: &Arc<Self>) -> oneshot::Receiver<Result<(), String>> {
        let (done, wait) = oneshot::channel();
        let lead = {
            let mut syncs = self.syncs();
            syncs.waiting.push(done);
            !std::mem::replace(&mut syncs.running, true)
        };
        #[cfg(test)]
        self.joined.notify_all();
        if lead {
            let mut leader = Leader(Some(self.clone()));
            if !leader.round() {
                tokio::task::spawn_blocking(move || leader.sync_waiting());
            }
        }
        wait
    }

    /// What a writer that joined a durable commit hears of it.
    async fn durable(wait: oneshot::Receiver<Result<(), String>>) -> Result<(), BackendError> {
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(BackendError::message(
                format!("embedded database: a durable commit failed ({message}); the write's outcome is unknown"),
                true,
            )),
            Err(_) => Err(BackendError::message("embedded database: the durable commit was abandoned", true)),
        }
    }
}

/// The task making durable commits for the writers waiting on a database. Dropped before it
/// finished (a panic, or a runtime shutting down before it ran), it lets another writer lead and
/// its waiters hear that their commit was abandoned, rather than waiting for ever.
struct Leader(Option<Arc<Opened>>);

impl Leader {
    /// Makes durable commits until no writer waits.
    fn sync_waiting(mut self) {
        while !self.round() {}
    }

    /// One durable commit, for the writers waiting when it began; whether it was the last (no
    /// writer waits since, or it failed). The last lets go of the database before its writers
    /// hear of it, so a store whose last write has returned can be dropped and its file opened
    /// again at once (as after a failed commit, when the writers reopen the file).
    fn round(&mut self) -> bool {
        let Some(this) = self.0.as_ref() else { return true };
        #[cfg(test)]
        {
            let syncs = this.syncs();
            let (mut syncs, _) = this
                .joined
                .wait_timeout_while(syncs, HOLD_LIMIT, |s| s.waiting.len() < s.hold_for)
                .unwrap_or_else(|p| p.into_inner());
            syncs.hold_for = 0;
        }
        // The writers are taken once the write lock is held: each joined after its commit, so
        // every one waiting then is covered, and those that commit while this one waited for the
        // lock join the same flush.
        let mut batch = Vec::new();
        let result = (|| {
            let mut txn = this.db.begin_write()?;
            batch = std::mem::take(&mut this.syncs().waiting);
            if batch.is_empty() {
                return Ok(());
            }
            txn.set_durability(redb::Durability::Immediate)?;
            txn.commit()?;
            Ok::<_, redb::Error>(())
        })()
        .map_err(|e| e.to_string());
        if result.is_err() && batch.is_empty() {
            batch = std::mem::take(&mut this.syncs().waiting);
        }
        let (last, rest) = {
            let mut syncs = this.syncs();
            syncs.done += u64::from(!batch.is_empty());
            if result.is_err() || syncs.waiting.is_empty() {
                // (After a failure, the writers waiting since fail too: the database is about
                // to be reopened.)
                syncs.running = false;
                (true, if result.is_err() { std::mem::take(&mut syncs.waiting) } else { Vec::new() })
            } else {
                (false, Vec::new())
            }
        };
        if last {
            self.0 = None;
        }
        for waiter in batch.into_iter().chain(rest) {
            let _ = waiter.send(result.clone());
        }
        last
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(opened) = self.0.take() {
            let mut syncs = opened.syncs();
            syncs.running = false;
            syncs.waiting.clear();
        }
    }
}

impl Db {
    /// A handle on `db`, prepared; `open` reopens it after an I/O failure (none for a database in
    /// memory, which has no file to fail).
    pub(crate) fn new(db: Database, open: Option<Open>, prepare: Prepare) -> Result<Db, BackendError> {
        prepare(&db)?;
        let alive = Arc::new(Alive::default());
        let current = RwLock::new(Some(Opened::new(db, &alive)));
        Ok(Db { current, open, prepare, reopening: Mutex::new(()), alive })
    }

    /// The database, reopening it first if an I/O failure dropped it.
    fn get(&self) -> Result<Arc<Opened>, BackendError> {
        if let Some(db) = self.current.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let busy = || BackendError::message("embedded database is being reopened after an I/O failure; retry", true);
        let Ok(_one) = self.reopening.try_lock() else { return Err(busy()) };
        let Some(open) = &self.open else { return Err(busy()) };
        // Fails while requests still hold the old handle (the file is locked): a later request
        // tries again.
        let db = open().map_err(|e| BackendError::retryable("reopening the embedded database", e))?;
        (self.prepare)(&db).map_err(BackendError::into_retryable)?;
        let db = Opened::new(db, &self.alive);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(db.clone());
        tracing::warn!("embedded database reopened after an I/O failure");
        Ok(db)
    }

    /// After an I/O failure on `failed`: drops the handle so that the next request reopens.
    fn failed(&self, failed: &Arc<Opened>) {
        if self.open.is_none() {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|db| Arc::ptr_eq(db, failed)) {
            tracing::error!("embedded database I/O failure: it will be reopened");
            *current = None;
        }
    }

    /// Runs `f` on the blocking pool; a durable write then waits for its durable commit.
    async fn run<T, E, F>(&self, durable: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&Database) -> Result<T, E> + Send + 'static,
    {
        let db = self.get().map_err(E::backend)?;
        let held = db.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let result = f(&held);
            let durable = (durable && result.is_ok()).then(|| held.join_durable());
            (result, durable)
        })
        .await;
        let (mut result, durable) = match ran {
            Ok(ran) => ran,
            Err(e) => (Err(E::backend(BackendError::permanent("an embedded database task failed", e))), None),
        };
        if let Some(wait) = durable
            && let Err(e) = Opened::durable(wait).await
        {
            result = Err(E::backend(e));
        }
        if let Err(e) = &result
            && e.as_backend().is_some_and(BackendError::is_retryable)
        {
            self.failed(&db);
        }
        result
    }

    /// Durable commits made on the database open now (for tests).
    #[cfg(test)]
    pub(crate) fn durable_commits(&self) -> u64 {
        self.get().map_or(0, |db| db.syncs().done)
    }

    /// Holds the next durable commit until `writers` wait for it (for tests).
    #[cfg(test)]
    fn hold_next_commit_for(&self, writers: usize) {
        if let Ok(db) = self.get() {
            db.syncs().hold_for = writers;
        }
    }

    /// Runs `f` in a read transaction.
    pub(crate) async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, E> + Send + 'static,
    {
        self.run(false, move |db| {
            use redb::ReadableDatabase;
            let txn = db.begin_read().map_err(db_err::<E>)?;
            f(&txn)
        })
        .await
    }

    /// Runs `f` in a write transaction committed durably (on disk before it returns; the fsync
    /// shared with the writers waiting at the same time: see the module docs).
    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&redb::WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        self.write_with(redb::Durability::Immediate, f).await
    }

    /// Runs `f` in a write transaction committed with `durability`.
    pub(crate) async fn write_with<T, E, F>(&self, durability: redb::Durability, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&redb::WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        // Durable writes to a file commit without an fsync here and wait for a shared one in
        // `run`; a database in memory has nothing to flush, so its commits stay as asked.
        let shared = matches!(durability, redb::Durability::Immediate) && self.open.is_some();
        let own = if shared { redb::Durability::None } else { durability };
        self.run(shared, move |db| {
            let mut txn = db.begin_write().map_err(db_err::<E>)?;
            txn.set_durability(own).map_err(db_err::<E>)?;
            let out = f(&txn)?;
            txn.commit().map_err(db_err::<E>)?;
            Ok(out)
        })
        .await
    }
}

impl Drop for Db {
    /// Closes the file before returning: waits for operations still running on the blocking pool
    /// (each one transaction; see [`Alive`]), so that the same file can be opened again at once.
    fn drop(&mut self) {
        self.current.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if self.open.is_some() && !self.alive.wait_closed(CLOSE_WAIT) {
            tracing::warn!("embedded database: operations still running {CLOSE_WAIT:?} after its store was dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    use super::*;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn db(dir: &tempfile::TempDir) -> Db {
        let file = dir.path().join("db.redb");
        let open: Open = Box::new(move || Database::create(&file));
        let db = open().expect("create");
        Db::new(db, Some(open), Box::new(|_| Ok(()))).expect("db")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_waiting_together_share_a_durable_commit_and_fail_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Arc::new(db(&dir));
        let writes = 64u64;
        // The successful half wait together: the first durable commit is held until they all do
        // (else a loaded machine may run the writes one after another, each with its own).
        db.hold_next_commit_for((writes / 2) as usize);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..writes {
            let db = db.clone();
            tasks.spawn(async move {
                let out = db
                    .write(move |txn| {
                        let mut table = txn.open_table(T).map_err(db_err::<registry_storage::Error>)?;
                        table.insert(i, i).map_err(db_err::<registry_storage::Error>)?;
                        if i % 2 == 1 {
                            return Err(registry_storage::Error::Backend(BackendError::message("refused", false)));
                        }
                        Ok(())
                    })
                    .await;
                (i, out.is_ok())
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, ok) = done.expect("task");
            assert_eq!(ok, i % 2 == 0, "write {i}");
        }
        let commits = db.durable_commits();
        assert_eq!(commits, 1, "{commits} durable commits for {} writes waiting together", writes / 2);
        // Only the writes that succeeded are there: a failing one rolled back alone.
        type E = registry_storage::Error;
        let kept: Vec<u64> = db
            .read(|txn| {
                let table = txn.open_table(T).map_err(db_err::<E>)?;
                let rows = table.iter().map_err(db_err::<E>)?;
                rows.map(|r| Ok::<_, E>(r.map_err(db_err::<E>)?.0.value())).collect::<Result<Vec<u64>, E>>()
            })
            .await
            .expect("read");
        assert_eq!(kept, (0..writes).filter(|i| i % 2 == 0).collect::<Vec<_>>());
        // And they are on disk: the file opened anew (after the handle is gone) holds them.
        drop(db);
        let reopened = Database::create(dir.path().join("db.redb")).expect("reopen");
        let txn = reopened.begin_read().expect("read");
        assert_eq!(txn.open_table(T).expect("table").len().expect("len"), writes / 2);
    }

    /// A store whose last write has returned holds its file no more once dropped: the file opens
    /// again at once (the durable commit's task let go of it before the write returned).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_file_is_free_once_the_last_write_returned_and_the_store_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        for i in 0..50u64 {
            let db = db(&dir);
            db.write(move |txn| {
                let mut table = txn.open_table(T).map_err(db_err::<registry_storage::Error>)?;
                table.insert(i, i).map_err(db_err::<registry_storage::Error>)?;
                Ok::<_, registry_storage::Error>(())
            })
            .await
            .expect("write");
            drop(db);
        }
        let reopened = Database::create(dir.path().join("db.redb")).expect("reopen");
        assert_eq!(reopened.begin_read().expect("read").open_table(T).expect("table").len().expect("len"), 50);
    }

    /// An operation whose caller went away (a task aborted at shutdown) still runs on the
    /// blocking pool and holds the database: dropping the store waits for it, so the file opens
    /// again as soon as the drop returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_waits_for_operations_whose_callers_went_away() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Arc::new(db(&dir));
        let (started, running) = std::sync::mpsc::channel();
        let caller = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |txn| {
                    let _ = started.send(());
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    let mut table = txn.open_table(T).map_err(db_err::<registry_storage::Error>)?;
                    table.insert(1, 1).map_err(db_err::<registry_storage::Error>)?;
                    Ok::<_, registry_storage::Error>(())
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || running.recv()).await.expect("join").expect("the write began");
        caller.abort();
        let _ = caller.await;
        drop(db);
        let reopened = Database::create(dir.path().join("db.redb")).expect("the file is free");
        let txn = reopened.begin_read().expect("read");
        assert_eq!(txn.open_table(T).expect("table").len().expect("len"), 1, "the write ran to its end");
    }
}
