//! [`Server`]: a bound listener, serving until shutdown with the admin socket and the garbage
//! collection schedule.

use std::net::SocketAddr;
use std::path::Path;

use registry_auth::Accounts;
use registry_storage::Registry;
use tokio::net::TcpListener;

use std::sync::Arc;

use super::Built;
use crate::metrics::Metrics;
use crate::server::ServerOptions;
use crate::service::RegistryService;

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    scheme: &'static str,
    pub(crate) built: Built,
    metrics: Option<(Arc<Metrics>, TcpListener)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Server {
    pub(super) fn new(
        listener: TcpListener,
        addr: SocketAddr,
        scheme: &'static str,
        built: Built,
        metrics: Option<(Arc<Metrics>, TcpListener)>,
    ) -> Server {
        Server { listener, addr, scheme, built, metrics }
    }

    /// The address of the metrics' own listener, if they have one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(_, l)| l.local_addr().ok())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://<address>`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The token endpoint clients are sent to, when token authentication is on.
    pub fn realm(&self) -> Option<&str> {
        self.built.token.as_ref().map(|t| t.realm())
    }

    /// The service it serves.
    pub fn service(&self) -> &RegistryService {
        &self.built.service
    }

    /// The engine.
    pub fn registry(&self) -> &Registry {
        &self.built.registry
    }

    /// Harbor's accounts, when it keeps them.
    pub fn accounts(&self) -> Option<&Accounts> {
        self.built.accounts.as_ref()
    }

    /// Serves until `shutdown` completes: the listener, the admin socket if any, and the
    /// garbage collection schedule; then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        let Server { listener, built, metrics, .. } = self;
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
        let metrics = metrics.map(|(metrics, listener)| {
            let mut stopped = metrics_stopped.clone();
            let stopped = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            tokio::spawn(crate::metrics::serve(listener, metrics, built.registry.clone(), stopped))
        });
        let platform = built.platform.start();
        let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
        let admin = match &built.admin {
            Some((path, service)) => Some(spawn_admin(path, service.clone(), built.server.clone(), admin_stopped)?),
            None => None,
        };
        let served = crate::server::serve(listener, built.service.clone(), built.server.clone(), shutdown).await;
        let _ = stop_admin.send(true);
        if let Some(task) = admin {
            let _ = task.await;
        }
        if let Some((path, _)) = &built.admin {
            let _ = std::fs::remove_file(path);
        }
        // The metrics listener's connections and the periodic tasks hold the stores: each is
        // ended and awaited, so that it is gone (and the stores with it) when this returns and the
        // data can be opened again.
        let _ = stop_metrics.send(true);
        if let Some(task) = metrics {
            let _ = task.await;
        }
        // Running jobs go back to the queue for the next start (or another replica).
        platform.stop().await;
        // The pull and login events of the last second.
        built.registry.flush_events().await;
        drop(built);
        served
    }
}

#[cfg(unix)]
fn spawn_admin(
    path: &Path,
    service: RegistryService,
    options: ServerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    use std::os::unix::fs::PermissionsExt;
    // A socket left by a server that was killed: nobody listens on it any more.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let options = ServerOptions { tls: None, ..options };
    Ok(tokio::spawn(crate::server::serve_unix(listener, service, options, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    })))
}

#[cfg(not(unix))]
fn spawn_admin(
    _: &Path,
    _: RegistryService,
    _: ServerOptions,
    _: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    Err(std::io::Error::other("the admin socket needs Unix domain sockets"))
}
