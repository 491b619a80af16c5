//! Serving: a [`RegistryService`](crate::RegistryService) on a TCP listener (plain or TLS) or on a
//! Unix socket, with hyper, connection limits and graceful shutdown.
//!
//! | module | what it holds |
//! |---|---|
//! | [`timeouts`] | inactivity limits on each connection: request bodies, idle keep-alive, response writes |
//! | `head_errors` | hyper's own 400/431 answers rewritten with the spec's JSON body |
//! | [`tls`] | rustls server configuration from PEM |

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use crate::request::ClientAddress;
use crate::response::ResponseBody;
use crate::service::RegistryService;

mod head_errors;
pub mod timeouts;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_disabled.rs"]
pub mod tls;

use head_errors::HeadErrors;
use timeouts::{DeadlineIo, InFlight, Timeouts};

/// Connection-level settings.
#[derive(Clone)]
pub struct ServerOptions {
    /// Serve HTTPS with this configuration; plain HTTP when `None`.
    pub tls: Option<tls::TlsConfig>,
    /// Time a client has to send a request's headers (slow-header clients are cut off).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes (431 beyond).
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

/// The service of one connection: marks the connection as inside a request while it handles
/// one (see [`timeouts`]).
#[derive(Clone)]
struct Tracked {
    inner: RegistryService,
    in_flight: InFlight,
    peer: Option<ClientAddress>,
    /// The limit of a request head ([`ServerOptions::max_header_bytes`]).
    max_header_bytes: usize,
}

/// The size of a request's head as it came: the request line and every header line.
fn head_size<B>(req: &Request<B>) -> usize {
    // The request target as sent (origin form; an absolute one with its scheme and authority),
    // measured without formatting it: this runs on every request.
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + "  HTTP/1.1\r\n".len();
    let headers: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    line + headers + 2
}

/// The answer to a head over the limit: 431 with the spec's JSON body; the connection closes.
fn head_too_large(limit: usize) -> Response<ResponseBody> {
    let message = format!("the request's head is larger than the limit of {limit} bytes");
    let mut response = crate::error::ApiError::new(registry_core::ErrorCode::SizeInvalid, message)
        .with_status(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        .into_response(false);
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    response
}

impl tower::Service<Request<Incoming>> for Tracked {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        // hyper holds a head to its buffer's limit only while it is incomplete: a head that
        // arrives whole may be larger. The limit is the documented one either way.
        if head_size(&req) > self.max_header_bytes {
            return Box::pin(std::future::ready(Ok(head_too_large(self.max_header_bytes))));
        }
        let guard = self.in_flight.enter();
        let service = self.inner.clone();
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(peer.clone());
        }
        Box::pin(async move {
            let r = service.handle(req).await;
            drop(guard);
            Ok(r)
        })
    }
}

/// How far hyper's read buffer may grow: it bounds each body frame, so a push of a large blob
/// is read, hashed, handed to the writer and written in frames up to this size (64 KiB frames
/// cost a quarter more CPU per GiB and a quarter of the rate, measured by `load push-cpu`). The
/// buffer grows only while a connection sends that much, and the request-head limit is enforced
/// on its own (`head_size`, before any service runs), so a head past `max_header_bytes` is refused whatever this is.
const READ_BUFFER: usize = 1 << 20;

fn http1_builder(options: &ServerOptions) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192).max(READ_BUFFER))
        .keep_alive(true);
    builder
}

fn connection<I>(
    io: I,
    peer: Option<std::net::SocketAddr>,
    service: &RegistryService,
    options: &ServerOptions,
    builder: &http1::Builder,
    graceful: hyper_util::server::graceful::Watcher,
) -> impl Future<Output = ()> + Send + 'static + use<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = InFlight::default();
    let io = HeadErrors::new(DeadlineIo::new(io, options.timeouts, in_flight.clone()), options.max_header_bytes);
    let peer = peer.map(ClientAddress::new);
    let hyper_service = TowerToHyperService::new(Tracked {
        inner: service.clone(),
        in_flight,
        peer,
        max_header_bytes: options.max_header_bytes,
    });
    let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), hyper_service));
    async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish (up to [`ServerOptions::shutdown_grace`]); returns once every
/// connection's task has ended (those still open after the grace are aborted), so that nothing
/// it served holds the stores any more.
pub async fn serve(
    listener: TcpListener,
    service: RegistryService,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = http1_builder(&options);
    #[cfg(feature = "tls")]
    let tls = options.tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.rustls()));
    #[cfg(not(feature = "tls"))]
    let tls = options.tls.as_ref();
    let mut connections = JoinSet::new();
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
                match &tls {
                    None => {
                        connections.spawn(connection(stream, Some(peer), &service, &options, &builder, graceful.watcher()));
                    }
                    #[cfg(not(feature = "tls"))]
                    Some(never) => match **never {},
                    #[cfg(feature = "tls")]
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded like a request head.
                        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                        let (service, options) = (service.clone(), options.clone());
                        connections.spawn(async move {
                            let stream = match tokio::time::timeout(options.header_read_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => return tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                                Err(_) => return tracing::debug!(peer = %peer, "TLS handshake timed out"),
                            };
                            connection(stream, Some(peer), &service, &options, &builder, watcher).await;
                        });
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    end_all(connections).await;
    Ok(())
}

/// Serves `service` on a Unix socket until `shutdown` completes (the local admin socket).
#[cfg(unix)]
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    service: RegistryService,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = http1_builder(&options);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, None, &service, &options, &builder, graceful.watcher()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("admin socket: shutdown grace period over");
    }
    end_all(connections).await;
    Ok(())
}

/// Aborts the connections still open and waits until each task has ended: a task's future (and
/// the service it holds, the stores with it) is dropped before its end is reported.
async fn end_all(mut connections: JoinSet<()>) {
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
