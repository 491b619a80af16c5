//! What the server's data lives on, from the `[database]` and `[storage]` tables:
//!
//! | `[database] url` | `[storage] type` | shape |
//! |---|---|---|
//! | empty | `filesystem` | the embedded default: `metadata.redb` and files under the data directory |
//! | `postgres://…` | `s3` | replicas: any number of identical servers on one database and one bucket |
//! | `postgres://…` | `filesystem` | replicas on a shared filesystem (the data directory on NFS) |
//! | empty | `s3` | one server, its blobs in a bucket |
//!
//! `[storage] cache_mib` puts a bounded copy of pulled blobs on the replica's own disk in front of
//! either store (`cache_dir` should be local, not on the shared filesystem).
//!
//! With PostgreSQL, what every replica must share lives in the database too: the token signing
//! key and its certificate. A store that does not answer at start is an error naming it (the
//! server refuses to start); once running, outages are 503s and the stores recover on their own.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use registry_auth::SecretKey;
use registry_auth::{AccountStore, AuthError, TokenKey};
use registry_object_store::ObjectBlobStore;
use registry_postgres::{PgOptions, PgStore};
use registry_redb::RedbStore;
use registry_storage::blob::cache::CachedBlobStore;
use registry_storage::{BlobStore, FsBlobStore, MetadataStore, Registry};

use crate::config::{Config, StorageType};

/// The opened stores.
pub(crate) struct Stores {
    /// The engine over them.
    pub(crate) registry: Registry,
    /// The accounts (in the same database as the metadata).
    pub(crate) accounts: Arc<dyn AccountStore>,
    /// PostgreSQL, when replicas share it.
    pub(crate) database: Option<PgStore>,
    /// What they are, for the serving log line.
    pub(crate) describe: String,
}

/// Opens the configured stores; an unreachable or misconfigured one is an error naming it.
pub(crate) async fn open(config: &Config) -> anyhow::Result<Stores> {
    // Always there: the admin socket lives in it, whatever the stores are.
    registry_storage::durable::create_dirs(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let (blobs, blobs_describe): (Arc<dyn BlobStore>, String) = match config.storage.kind {
        StorageType::Filesystem => {
            let store = FsBlobStore::open(&config.data_dir)
                .with_context(|| format!("opening the blob store in {}", config.data_dir.display()))?
                .with_buffered_writes(config.storage.buffered_writes);
            (Arc::new(store), format!("files in {}", config.data_dir.display()))
        }
        StorageType::S3 => {
            let store = ObjectBlobStore::s3(config.storage.s3()).await.context(
                "the [storage] bucket does not answer as configured (bucket, endpoint, region, credentials); \
                 not starting",
            )?;
            let describe = store.describe().to_owned();
            (Arc::new(store), describe)
        }
    };
    let (blobs, blobs_describe) = match config.storage.cache(&config.data_dir) {
        Some((dir, bound)) => {
            let cached = CachedBlobStore::open(blobs, &dir, bound)
                .await
                .with_context(|| format!("opening the [storage] blob cache in {}", dir.display()))?;
            let describe =
                format!("{blobs_describe}, pulled blobs cached in {} (up to {} MiB)", dir.display(), bound >> 20);
            (Arc::new(cached) as Arc<dyn BlobStore>, describe)
        }
        None => (blobs, blobs_describe),
    };
    let (meta, accounts, database, meta_describe): (Arc<dyn MetadataStore>, Arc<dyn AccountStore>, _, String) =
        if config.database.url.is_empty() {
            let store = open_redb(&config.data_dir).await?;
            let describe = format!("{}", config.data_dir.join("metadata.redb").display());
            (Arc::new(store.clone()), Arc::new(store), None, describe)
        } else {
            let options = PgOptions {
                pool_size: config.database.pool_size.max(1),
                ca_file: config.database.ca_file.clone(),
                idle_transaction_timeout: std::time::Duration::from_secs(
                    config.database.idle_transaction_timeout_secs.max(1),
                ),
                ..PgOptions::default()
            };
            let store = PgStore::connect(&config.database.url, options)
                .await
                .context("the [database] does not answer as configured; not starting")?;
            let describe = format!("PostgreSQL at {}", store.target());
            (Arc::new(store.clone()), Arc::new(store.clone()), Some(store), describe)
        };
    let registry = Registry::new(blobs, meta, config.engine_limits()).with_pull_events(config.events.record_pulls);
    Ok(Stores { registry, accounts, database, describe: format!("metadata: {meta_describe}; blobs: {blobs_describe}") })
}

/// Opens `metadata.redb`; a locked database means a server runs on it.
async fn open_redb(data_dir: &Path) -> anyhow::Result<RedbStore> {
    registry_storage::durable::create_dirs(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = match RedbStore::open(data_dir.join("metadata.redb")) {
        Ok(store) => store,
        Err(e) if e.is_locked() => anyhow::bail!(
            "{} is in use by a running server; account and gc commands reach it through its admin socket",
            data_dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening data directory {}", data_dir.display())),
    };
    import_legacy_accounts(data_dir, &store).await?;
    Ok(store)
}

/// Moves the accounts of `accounts.redb` (layouts before version 3) into the one database, once.
async fn import_legacy_accounts(data_dir: &Path, store: &RedbStore) -> anyhow::Result<()> {
    let legacy = data_dir.join("accounts.redb");
    if !legacy.exists() {
        return Ok(());
    }
    let report = store.import_legacy_accounts(&legacy).await.context("moving accounts.redb into metadata.redb")?;
    std::fs::rename(&legacy, data_dir.join("accounts.redb.imported")).context("renaming accounts.redb")?;
    registry_storage::durable::sync_dir(data_dir).context("syncing the data directory")?;
    tracing::info!(
        users = report.users,
        projects = report.projects,
        members = report.members,
        robots = report.robots,
        "moved the accounts of accounts.redb into metadata.redb (the old file is kept as accounts.redb.imported)"
    );
    Ok(())
}

/// The token signing key and its certificate (DER): in the shared database when there is one
/// (made by the first replica that needs it), else in the data directory.
pub(crate) async fn token_key(config: &Config, database: Option<&PgStore>) -> anyhow::Result<(TokenKey, Vec<u8>)> {
    let rs256 = config.auth.algorithm == crate::config::AlgorithmConfig::RS256;
    let Some(db) = database else {
        let key = crate::data_dir::token_key(&config.data_dir, rs256)?;
        let (_, der) = crate::data_dir::token_certificate(&config.data_dir, &key)?;
        return Ok((key, der));
    };
    let fault = |e: AuthError| registry_core::BackendError::permanent("making the token key", e);
    let pem = db
        .shared_secret("token-key.pem", || {
            let key = if rs256 { TokenKey::generate_rs256() } else { TokenKey::generate() }.map_err(fault)?;
            Ok(key.to_pem().map_err(fault)?.into_bytes())
        })
        .await
        .context("reading the token key from the database")?;
    let key = TokenKey::from_pem(&String::from_utf8_lossy(&pem))?;
    let der = db
        .shared_secret(&format!("token-cert.der:{}", key.kid()), || {
            Ok(key.certificate(registry_http::token::ISSUER).map_err(fault)?.1)
        })
        .await
        .context("reading the token certificate from the database")?;
    Ok((key, der))
}

/// The key secrets at rest are sealed with (webhooks' headers and signing secrets): the file
/// `REGISTRY_SECRET_KEY_FILE` names (made when absent; replicas share one copy of it), else
/// `secret.key` in the data directory; replicas on a database without that file share a key kept
/// in the database, which protects the secrets less (a dump holds both): a warning says so.
pub(crate) async fn secret_key(config: &Config, database: Option<&PgStore>) -> anyhow::Result<SecretKey> {
    if let Some(path) = std::env::var_os("REGISTRY_SECRET_KEY_FILE").filter(|p| !p.is_empty()) {
        let path = std::path::PathBuf::from(path);
        return SecretKey::load_or_create(&path).with_context(|| format!("the secret key file {}", path.display()));
    }
    let Some(db) = database else {
        let path = config.data_dir.join("secret.key");
        return SecretKey::load_or_create(&path).with_context(|| format!("the secret key file {}", path.display()));
    };
    tracing::warn!(
        "no REGISTRY_SECRET_KEY_FILE: webhook secrets are sealed with a key kept in the database; give the replicas a \
         key file of their own to keep the two apart"
    );
    let fault = |e: registry_auth::SealError| registry_core::BackendError::permanent("making the secret key", e);
    let bytes = db
        .shared_secret("secret.key", || Ok(SecretKey::generate().map_err(fault)?.to_bytes().to_vec()))
        .await
        .context("reading the secret key from the database")?;
    Ok(SecretKey::from_bytes(&bytes)?)
}
