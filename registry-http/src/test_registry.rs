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
    registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    data_dir: Option<PathBuf>,
    accounts: Option<Accounts>,
    _temp: Option<tempfile::TempDir>,
}

impl TestRegistry {
    /// Starts a registry on memory stores.
    pub async fn start() -> std::io::Result<TestRegistry> {
        let registry = Registry::in_memory().map_err(std::io::Error::other)?;
        Self::start_with(registry, None, None, None).await
    }

    /// Starts a registry on memory stores with token authentication on: it issues tokens at
    /// `/auth/token` from `accounts` (users, projects, members, robots) and requires them on every
    /// request, exactly as the reference server does.
    pub async fn start_with_auth(accounts: Accounts) -> std::io::Result<TestRegistry> {
        let registry = Registry::in_memory().map_err(std::io::Error::other)?;
        Self::start_with(registry, None, None, Some(accounts)).await
    }

    /// Starts a registry on the filesystem and embedded-database stores in a fresh temporary
    /// directory, removed when the registry is dropped.
    pub async fn start_on_disk() -> std::io::Result<TestRegistry> {
        let temp = tempfile::tempdir()?;
        let path = temp.path().to_owned();
        let registry = open_data_dir(&path, Limits::default()).map_err(std::io::Error::other)?;
        Self::start_with(registry, Some(path), Some(temp), None).await
    }

    /// Starts a registry on the stores of `data_dir` (kept when the registry stops), e.g. to test
    /// a restart.
    pub async fn start_in(data_dir: &Path) -> std::io::Result<TestRegistry> {
        let registry = open_data_dir(data_dir, Limits::default()).map_err(std::io::Error::other)?;
        Self::start_with(registry, Some(data_dir.to_owned()), None, None).await
    }

    /// Starts a server for an engine the caller assembled.
    pub async fn start_with_registry(registry: Registry) -> std::io::Result<TestRegistry> {
        Self::start_with(registry, None, None, None).await
    }

    async fn start_with(
        registry: Registry,
        data_dir: Option<PathBuf>,
        temp: Option<tempfile::TempDir>,
        accounts: Option<Accounts>,
    ) -> std::io::Result<TestRegistry> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let mut service = RegistryService::new(registry.clone());
        if let Some(accounts) = &accounts {
            let key = TokenKey::generate().map_err(std::io::Error::other)?;
            let realm = format!("http://{addr}{}", crate::auth::TOKEN_PATH);
            let lifetime = std::time::Duration::from_secs(300);
            service =
                service.with_auth(crate::auth::built_in(accounts.clone(), key, realm, addr.to_string(), lifetime));
        }
        let options = ServerOptions { shutdown_grace: std::time::Duration::from_secs(5), ..ServerOptions::default() };
        let task = tokio::spawn(serve(listener, service, options, async {
            let _ = rx.await;
        }));
        Ok(TestRegistry { addr, registry, shutdown: Some(tx), task: Some(task), data_dir, accounts, _temp: temp })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, the form clients take as a registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The engine, for assertions on what was stored.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The accounts, when authentication is on.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.accounts.as_ref()
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
