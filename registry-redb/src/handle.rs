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

use std::sync::{Arc, Mutex, RwLock};

use redb::Database;
use registry_core::BackendError;

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
    current: RwLock<Option<Arc<Database>>>,
    open: Option<Open>,
    prepare: Prepare,
    reopening: Mutex<()>,
}

impl Db {
    /// A handle on `db`, prepared; `open` reopens it after an I/O failure (none for a database in
    /// memory, which has no file to fail).
    pub(crate) fn new(db: Database, open: Option<Open>, prepare: Prepare) -> Result<Db, BackendError> {
        prepare(&db)?;
        Ok(Db { current: RwLock::new(Some(Arc::new(db))), open, prepare, reopening: Mutex::new(()) })
    }

    /// The database, reopening it first if an I/O failure dropped it.
    fn get(&self) -> Result<Arc<Database>, BackendError> {
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
        let db = Arc::new(db);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(db.clone());
        tracing::warn!("embedded database reopened after an I/O failure");
        Ok(db)
    }

    /// After an I/O failure on `failed`: drops the handle so that the next request reopens.
    fn failed(&self, failed: &Arc<Database>) {
        if self.open.is_none() {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|db| Arc::ptr_eq(db, failed)) {
            tracing::error!("embedded database I/O failure: it will be reopened");
            *current = None;
        }
    }

    async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&Database) -> Result<T, E> + Send + 'static,
    {
        let db = self.get().map_err(E::backend)?;
        let held = db.clone();
        let result = match tokio::task::spawn_blocking(move || f(&held)).await {
            Ok(result) => result,
            Err(e) => Err(E::backend(BackendError::permanent("an embedded database task failed", e))),
        };
        if let Err(e) = &result
            && e.as_backend().is_some_and(BackendError::is_retryable)
        {
            self.failed(&db);
        }
        result
    }

    /// Runs `f` in a read transaction.
    pub(crate) async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Fault,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, E> + Send + 'static,
    {
        self.run(move |db| {
            use redb::ReadableDatabase;
            let txn = db.begin_read().map_err(db_err::<E>)?;
            f(&txn)
        })
        .await
    }

    /// Runs `f` in a write transaction committed durably (fsync before it returns).
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
        self.run(move |db| {
            let mut txn = db.begin_write().map_err(db_err::<E>)?;
            txn.set_durability(durability).map_err(db_err::<E>)?;
            let out = f(&txn)?;
            txn.commit().map_err(db_err::<E>)?;
            Ok(out)
        })
        .await
    }
}
