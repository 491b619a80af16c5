//! The in-process test registry: one call starts a registry on an ephemeral port of 127.0.0.1;
//! dropping it (or [`TestRegistry::stop`]) stops it. It is assembled by the same
//! [`RegistryBuilder`] as every server.
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
use std::path::Path;

use registry_auth::{Accounts, TokenKey};
use registry_storage::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::builder::RegistryBuilder;

/// A registry serving on `127.0.0.1:<ephemeral port>` for the life of the value.
pub struct TestRegistry {
    addr: SocketAddr,
    url: String,
    registry: Registry,
    accounts: Option<Accounts>,
    token_key: Option<TokenKey>,
    token_certificate: Option<String>,
    data_dir: Option<std::path::PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// Starts the server on an ephemeral port of 127.0.0.1 in this runtime. The listener is bound
    /// before this returns: clients may connect at once.
    pub async fn start(mut self) -> std::io::Result<TestRegistry> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        if self.service_name.is_none() {
            self.service_name = Some(listener.local_addr()?.to_string());
        }
        let server = self.with_listener(listener).await.map_err(std::io::Error::other)?;
        let built = &server.built;
        let (registry, accounts) = (built.registry.clone(), built.accounts.clone());
        let (token_key, token_certificate) = (built.token_key.clone(), built.certificate_pem.clone());
        let data_dir = built.data_dir.clone();
        let (addr, url) = (server.local_addr(), server.url());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        Ok(TestRegistry {
            addr,
            url,
            registry,
            accounts,
            token_key,
            token_certificate,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

impl TestRegistry {
    /// The builder tests start from: memory stores, no authentication, a 5 s shutdown grace.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new().server_options(crate::ServerOptions {
            shutdown_grace: std::time::Duration::from_secs(5),
            ..crate::ServerOptions::default()
        })
    }

    /// Starts a registry on memory stores.
    pub async fn start() -> std::io::Result<TestRegistry> {
        Self::builder().start().await
    }

    /// Starts a registry on memory stores with Harbor's accounts and token authentication.
    pub async fn start_with_auth(accounts: Accounts) -> std::io::Result<TestRegistry> {
        Self::builder().accounts(accounts).start().await
    }

    /// Starts a registry on the embedded default in a fresh temporary directory, removed when
    /// the registry is dropped. (Feature `embedded`.)
    #[cfg(feature = "embedded")]
    pub async fn start_on_disk() -> std::io::Result<TestRegistry> {
        Self::builder().temp_dir().start().await
    }

    /// Starts a registry on the embedded default in `data_dir` (kept when the registry stops),
    /// e.g. to test a restart. (Feature `embedded`.)
    #[cfg(feature = "embedded")]
    pub async fn start_in(data_dir: &Path) -> std::io::Result<TestRegistry> {
        Self::builder().embedded(data_dir).start().await
    }

    /// Starts a server for an engine the caller assembled.
    pub async fn start_with_registry(registry: Registry) -> std::io::Result<TestRegistry> {
        Self::builder().registry(registry).start().await
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
        self.url.clone()
    }

    /// The engine, for assertions on what was stored.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Harbor's accounts, when it keeps them.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.accounts.as_ref()
    }

    /// The token signing key's certificate (PEM), when it issues tokens: the root bundle for
    /// other registries that trust this token service.
    pub fn token_certificate_pem(&self) -> Option<&str> {
        self.token_certificate.as_deref()
    }

    /// The token signing key, when it issues tokens: tests mint tokens with chosen claims.
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
