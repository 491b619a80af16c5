//! The in-process test registry: one call starts a registry on an ephemeral port of 127.0.0.1;
//! dropping it (or [`TestRegistry::stop`]) stops it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let registry = registry_http::TestRegistry::start().await?;
//! // The listener is bound before `start` returns: connect right away, no waiting.
//! let stream = tokio::net::TcpStream::connect(registry.addr()).await?;
//! # drop(stream);
//! registry.stop().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_auth::{Accounts, TokenKey};
use registry_storage::{Limits, Registry};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::data_dir::open_data_dir;
use crate::server::{ServerOptions, serve};
use crate::service::RegistryService;

/// A registry serving on `127.0.0.1:<ephemeral port>` for the life of the value.
#[derive(Debug)]
pub struct TestRegistry {
    addr: SocketAddr,
    scheme: &'static str,
    registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    data_dir: Option<PathBuf>,
    accounts: Option<Accounts>,
    token_certificate: Option<String>,
    token_key: Option<TokenKey>,
    _temp: Option<tempfile::TempDir>,
}

/// Where a test registry keeps its data.
#[derive(Debug)]
enum Storage {
    Memory,
    TempDir,
    Dir(PathBuf),
    Engine(Registry),
}

/// Options for a [`TestRegistry`]: storage, authentication, TLS.
#[derive(Debug)]
pub struct TestRegistryBuilder {
    storage: Storage,
    accounts: Option<Accounts>,
    also_issue_for: Vec<String>,
    kid_format: registry_auth::KidFormat,
    tls: Option<Arc<rustls::ServerConfig>>,
    gc: registry_storage::GcOptions,
    timeouts: crate::Timeouts,
    header_read_timeout: std::time::Duration,
    upload_limit: usize,
}

impl TestRegistryBuilder {
    /// Connection inactivity limits (default [`crate::Timeouts::default`]).
    pub fn with_timeouts(mut self, timeouts: crate::Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Time a client has to send a request's headers (default 30 s).
    pub fn with_header_read_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// At most `limit` upload requests streaming at once (see
    /// [`RegistryService::with_upload_limit`]).
    pub fn with_upload_limit(mut self, limit: usize) -> Self {
        self.upload_limit = limit;
        self
    }

    /// The options garbage collection runs started through the management API use (default
    /// [`registry_storage::GcOptions::default`]; a test may set a zero grace period).
    pub fn with_gc_options(mut self, options: registry_storage::GcOptions) -> Self {
        self.gc = options;
        self
    }

    /// Filesystem and redb stores in a temporary directory removed on drop.
    pub fn on_disk(mut self) -> Self {
        self.storage = Storage::TempDir;
        self
    }

    /// Filesystem and redb stores in `dir`, kept when the registry stops (to test a restart).
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.storage = Storage::Dir(dir.to_owned());
        self
    }

    /// An engine the caller assembled.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.storage = Storage::Engine(registry);
        self
    }

    /// Token authentication on: tokens issued at `/auth/token` from `accounts` (users, projects,
    /// members, robots) and required on every request, exactly as the reference server does.
    pub fn with_auth(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// With auth on, its token service also issues tokens for another registry's service name.
    pub fn also_issue_for(mut self, service: impl Into<String>) -> Self {
        self.also_issue_for.push(service.into());
        self
    }

    /// With auth on, tokens name their key by its libtrust key id and carry no `x5c` chain (how
    /// older distribution setups find keys in their root bundle).
    pub fn with_libtrust_kid(mut self) -> Self {
        self.kid_format = registry_auth::KidFormat::Libtrust;
        self
    }

    /// Serve HTTPS with this rustls configuration (see [`crate::tls::server_config`]).
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Starts it. The listener is bound before this returns: clients may connect at once.
    pub async fn start(self) -> std::io::Result<TestRegistry> {
        let (registry, data_dir, temp) = match self.storage {
            Storage::Memory => (Registry::in_memory().map_err(std::io::Error::other)?, None, None),
            Storage::TempDir => {
                let temp = tempfile::tempdir()?;
                let path = temp.path().to_owned();
                (open_data_dir(&path, Limits::default()).map_err(std::io::Error::other)?, Some(path), Some(temp))
            }
            Storage::Dir(path) => {
                (open_data_dir(&path, Limits::default()).map_err(std::io::Error::other)?, Some(path), None)
            }
            Storage::Engine(registry) => (registry, None, None),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        // Garbage collection through the management API (no schedule: tests start runs).
        let mut service =
            RegistryService::new(registry.clone()).with_gc(crate::GarbageCollector::new(registry.clone(), self.gc));
        service = service.with_upload_limit(self.upload_limit);
        let mut token_certificate = None;
        let mut token_key = None;
        if let Some(accounts) = &self.accounts {
            let key = TokenKey::generate().map_err(std::io::Error::other)?;
            token_key = Some(key.clone());
            let (pem, der) = crate::auth::token_certificate(&key).map_err(std::io::Error::other)?;
            token_certificate = Some(pem);
            let built_in = crate::auth::BuiltInTokenService {
                accounts: accounts.clone(),
                key,
                certificate_der: (self.kid_format == registry_auth::KidFormat::Rfc7638).then_some(der),
                realm: format!("{scheme}://{addr}{}", crate::auth::TOKEN_PATH),
                service: addr.to_string(),
                also_issue_for: self.also_issue_for,
                token_lifetime: std::time::Duration::from_secs(300),
                kid_format: self.kid_format,
            };
            service = service.with_auth(built_in.into_settings());
        }
        let (tx, rx) = oneshot::channel();
        let options = ServerOptions {
            tls: self.tls,
            shutdown_grace: std::time::Duration::from_secs(5),
            timeouts: self.timeouts,
            header_read_timeout: self.header_read_timeout,
            ..ServerOptions::default()
        };
        let task = tokio::spawn(serve(listener, service, options, async {
            let _ = rx.await;
        }));
        Ok(TestRegistry {
            addr,
            scheme,
            registry,
            shutdown: Some(tx),
            task: Some(task),
            data_dir,
            accounts: self.accounts,
            token_certificate,
            token_key,
            _temp: temp,
        })
    }
}

impl TestRegistry {
    /// A builder: memory stores, no authentication, plain HTTP, unless told otherwise.
    pub fn builder() -> TestRegistryBuilder {
        TestRegistryBuilder {
            storage: Storage::Memory,
            accounts: None,
            also_issue_for: Vec::new(),
            kid_format: Default::default(),
            tls: None,
            gc: registry_storage::GcOptions::default(),
            timeouts: crate::Timeouts::default(),
            header_read_timeout: ServerOptions::default().header_read_timeout,
            upload_limit: crate::service::DEFAULT_MAX_CONCURRENT_UPLOADS,
        }
    }

    /// Starts a registry on memory stores.
    pub async fn start() -> std::io::Result<TestRegistry> {
        Self::builder().start().await
    }

    /// Starts a registry on memory stores with token authentication on (see
    /// [`TestRegistryBuilder::with_auth`]).
    pub async fn start_with_auth(accounts: Accounts) -> std::io::Result<TestRegistry> {
        Self::builder().with_auth(accounts).start().await
    }

    /// Starts a registry on the filesystem and embedded-database stores in a fresh temporary
    /// directory, removed when the registry is dropped.
    pub async fn start_on_disk() -> std::io::Result<TestRegistry> {
        Self::builder().on_disk().start().await
    }

    /// Starts a registry on the stores of `data_dir` (kept when the registry stops), e.g. to test
    /// a restart.
    pub async fn start_in(data_dir: &Path) -> std::io::Result<TestRegistry> {
        Self::builder().in_dir(data_dir).start().await
    }

    /// Starts a server for an engine the caller assembled.
    pub async fn start_with_registry(registry: Registry) -> std::io::Result<TestRegistry> {
        Self::builder().with_registry(registry).start().await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, the form clients take as a registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>` (`https` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The engine, for assertions on what was stored.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The accounts, when authentication is on.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.accounts.as_ref()
    }

    /// The token signing key's certificate (PEM), when auth is on: the root bundle for other
    /// registries that trust this token service.
    pub fn token_certificate_pem(&self) -> Option<&str> {
        self.token_certificate.as_deref()
    }

    /// The token signing key, when auth is on: tests mint tokens with chosen claims with it.
    pub fn token_key(&self) -> Option<&TokenKey> {
        self.token_key.as_ref()
    }

    /// The data directory, when on disk.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Stops the server and waits until it has released its stores (so the same data directory
    /// can be opened again).
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
