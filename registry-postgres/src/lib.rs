//! # registry-postgres
//!
//! The distributed backend's database: the registry's metadata and accounts on PostgreSQL, so
//! that any number of identical replicas share them.
//!
//! | piece | what it is |
//! |---|---|
//! | [`PgStore`] | [`MetadataStore`](registry_storage::MetadataStore) and [`AccountStore`](registry_auth::AccountStore) on one database, with a connection pool |
//! | [`PgStore::connect`] | connects, and applies the embedded migrations once however many replicas start at once (under an advisory lock) |
//! | [`PgStore::shared_secret`] | a secret every replica finds (the token signing key), made by the first that needs it |
//! | `testing` (feature) | a throwaway database per test |
//!
//! # Why it is safe with many writers
//!
//! Each trait method is one transaction (READ COMMITTED). The garbage-collection contract of the
//! metadata store is kept with row locks and per-digest advisory locks, not with isolation
//! levels: a manifest push locks the links it references (`FOR SHARE`) while a collection locks
//! a link (`FOR UPDATE`) before checking, in a new statement (a new snapshot), that nothing
//! references it; linking a digest and marking it for deletion take the same advisory lock on the
//! digest, so a mark never misses a link committed meanwhile. Upload sessions carry a lease, so
//! one upload's chunks are appended by one replica at a time; a replica that dies frees its lease
//! when it runs out.
//!
//! Nothing mutable is cached: what one replica writes, the next request at any other replica
//! reads. (Immutable things are cached above the store: manifest bytes by digest in the engine,
//! verified tokens by their text.)
//!
//! Connection failures are retryable faults (503 with `Retry-After`); the pool reconnects on the
//! next request, so the registry recovers without a restart when the database comes back.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use registry_core::{BackendError, SharedClock};

mod accounts;
mod events;
pub use accounts::AccountsImport;
mod lease;
mod listing;
mod meta;
mod migrations;
mod queue;
mod quota;
mod reports;
mod secrets;
#[cfg(feature = "testing")]
pub mod testing;

/// The metadata and accounts on PostgreSQL. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    clock: SharedClock,
    /// Where the database is, for messages (no password).
    target: Arc<str>,
    /// How long [`PgStore::ping`] waits for an answer, and how long a call may hold a connection
    /// before it is presumed stalled (see `lease.rs`).
    ping_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.target).finish_non_exhaustive()
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool (default 16).
    pub pool_size: usize,
    /// How long a request waits for a connection, and a connection for the server (default 5 s).
    pub connect_timeout: Duration,
    /// A PEM file of certificate authorities to trust beside the system's, for `sslmode=require`
    /// (a private CA; libpq's `sslrootcert`).
    pub ca_file: Option<std::path::PathBuf>,
    /// How long the server keeps a session that sits in an open transaction without a statement
    /// (`idle_in_transaction_session_timeout`; default 15 s). A replica whose connection stalls
    /// mid-transaction (a half-open connection, a hung process) holds that transaction's row and
    /// advisory locks, and the per-repository and event-counter rows every push takes: the whole
    /// cluster's writes would wait for it. The server ends such a session after this long and
    /// its locks go with it; the stalled request fails (retryable), and the others go on.
    pub idle_transaction_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            idle_transaction_timeout: Duration::from_secs(15),
        }
    }
}

/// Why the store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The database does not answer, refuses the credentials, or the migrations fail.
    #[error("PostgreSQL at {target}: {source}")]
    Database {
        /// Where (host, port, database; no password).
        target: String,
        /// Why.
        #[source]
        source: BackendError,
    },
}

/// A PostgreSQL error as a backend failure: retryable when the connection or the server is the
/// trouble (or a transaction lost a race), permanent otherwise.
pub(crate) fn pg_err(context: &'static str, e: tokio_postgres::Error) -> BackendError {
    let retryable = match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "40001" || c == "40P01"
        }
        // No SQLSTATE: the connection broke, or could not be made.
        None => true,
    };
    if retryable { BackendError::retryable(context, e) } else { BackendError::permanent(context, e) }
}

/// A pool failure (no connection in time, or none can be made): retryable.
pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> BackendError {
    BackendError::retryable("no connection to PostgreSQL", e)
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), checks that the
    /// database answers, and applies the migrations this version needs.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, ConnectError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| ConnectError::Url(e.to_string()))?;
        let target = describe(&config);
        let mut config = config;
        config.connect_timeout(options.connect_timeout);
        // The server's notices ("relation already exists, skipping") are not the operator's news.
        // A session stalled in a transaction is ended (see `idle_transaction_timeout`), and one
        // whose client vanished is found by the server's keepalives within about 30 s (a
        // session-level job lock goes with it) instead of the system's two hours.
        config.options(format!(
            "-c client_min_messages=warning -c idle_in_transaction_session_timeout={} \
             -c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
            options.idle_transaction_timeout.as_millis().max(1)
        ));
        // The client's side of the same: an idle pooled connection whose server vanished is found
        // by keepalives (15 s, then 3 probes 5 s apart), and a request sent into a connection
        // whose peer stopped acknowledging (a cut link, a dropped route) fails after 30 s of
        // unacknowledged data (`TCP_USER_TIMEOUT`) instead of the system's retransmission
        // limit of about 15 minutes. Either way the request is a retryable 503 and the pool
        // opens a new connection for the next one.
        config.keepalives_idle(Duration::from_secs(15));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(30));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            let tls = tls_connector(options.ca_file.as_deref())
                .map_err(|source| ConnectError::Database { target: target.clone(), source })?;
            Manager::from_config(config, tls, manager_config)
        } else {
            // `prefer` (the default) and `disable`: plain TCP (a server's self-signed certificate,
            // such as Debian's default one, could not be verified anyway).
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| ConnectError::Database {
                target: target.clone(),
                source: BackendError::permanent("pool", e),
            })?;
        let store = PgStore {
            pool,
            clock: registry_core::time::system_clock(),
            target: target.clone().into(),
            ping_timeout: options.connect_timeout,
        };
        migrations::apply(&store).await.map_err(|source| ConnectError::Database { target, source })?;
        Ok(store)
    }

    /// The same store dating links, marks and leases by `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> PgStore {
        self.clock = clock;
        self
    }

    /// Where the database is (host, port, database).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the database answers now, within the connect timeout (a stalled connection is a
    /// no, not a hang: readiness probes ask this).
    pub async fn ping(&self) -> Result<(), BackendError> {
        let ping = async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(|e| pg_err("pinging PostgreSQL", e))?;
            Ok(())
        };
        match tokio::time::timeout(self.ping_timeout, ping).await {
            Ok(answer) => answer,
            Err(_) => Err(BackendError::retryable(
                "pinging PostgreSQL",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} ms", self.ping_timeout.as_millis()),
                ),
            )),
        }
    }

    /// A connection for one call (see `lease.rs`: one held past the connect timeout is closed,
    /// not pooled again).
    pub(crate) async fn client(&self) -> Result<lease::Lease, BackendError> {
        let object = self.pool.get().await.map_err(pool_err)?;
        Ok(lease::Lease::new(object, self.ping_timeout / 2))
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

/// TLS for `sslmode=require`: the server's certificate verified against the system's roots, plus
/// the authorities of `ca_file`.
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, BackendError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| BackendError::permanent("reading the database's CA file", e))?;
        for cert in certs {
            roots.add(cert).map_err(|e| BackendError::permanent("a certificate of the database's CA file", e))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::permanent("TLS settings", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `host:port/database` of a configuration.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// Queries through the connection's statement cache: each statement is parsed and planned once
/// per connection, and each query is then one round trip instead of two (prepare, execute).
pub(crate) trait Cached {
    /// Rows of `sql`.
    fn cached_query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send;

    /// The one row of `sql`.
    fn cached_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Row, tokio_postgres::Error>> + Send;

    /// The row of `sql`, if any.
    fn cached_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Option<tokio_postgres::Row>, tokio_postgres::Error>> + Send;

    /// Rows changed by `sql`.
    fn cached_execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send;
}

macro_rules! cached_for {
    ($t:ty) => {
        impl Cached for $t {
            async fn cached_query(
                &self,
                sql: &str,
                params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
            ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query(&statement, params).await
            }

            async fn cached_one(
                &self,
                sql: &str,
                params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
            ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_one(&statement, params).await
            }

            async fn cached_opt(
                &self,
                sql: &str,
                params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
            ) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_opt(&statement, params).await
            }

            async fn cached_execute(
                &self,
                sql: &str,
                params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
            ) -> Result<u64, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.execute(&statement, params).await
            }
        }
    };
}

cached_for!(deadpool_postgres::ClientWrapper);
cached_for!(deadpool_postgres::Transaction<'_>);

impl PgStore {
    /// Whether this store's connections are encrypted (asks the server about one of them).
    pub async fn connection_uses_tls(&self) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .map_err(|e| pg_err("asking about TLS", e))?;
        Ok(row.get(0))
    }
}
