//! Serving a [`RegistryService`] on a TCP listener with hyper, with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::deadline::{DeadlineIo, InFlight, Timeouts};
use crate::response::ResponseBody;

/// Connection-level settings.
#[derive(Clone)]
pub struct ServerOptions {
    /// Serve HTTPS with this rustls configuration (see [`crate::tls`]); plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Time a client has to send a request's headers (slow-header clients are cut off).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests before closing their connections.
    pub shutdown_grace: Duration,
    /// Inactivity limits: request bodies, idle keep-alive connections, response writes.
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: None,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(30),
            timeouts: Timeouts::default(),
        }
    }
}

/// A service that marks its connection as inside a request while it handles one (see
/// [`crate::deadline`]).
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S> tower_service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let guard = self.in_flight.enter();
        let response = self.inner.call(req);
        Box::pin(async move {
            let r = response.await;
            drop(guard);
            r
        })
    }
}

/// Serves `service` (a [`RegistryService`](crate::RegistryService), a
/// [`TokenServer`](crate::auth::TokenServer), or any infallible tower service of ours) on
/// `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish (up to [`ServerOptions::shutdown_grace`]).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let in_flight = InFlight::default();
                let stream = DeadlineIo::new(stream, options.timeouts, in_flight.clone());
                let hyper_service = TowerToHyperService::new(Tracked { inner: service.clone(), in_flight });
                match &tls {
                    None => {
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), hyper_service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded like a request head.
                        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                        let timeout = options.header_read_timeout;
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => return tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                                Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
                            };
                            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), hyper_service));
                            if let Err(e) = conn.await {
                                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    Ok(())
}
