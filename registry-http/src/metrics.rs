//! Prometheus metrics, exposed as text at `/metrics` when the builder turns them on: requests by
//! route class, method and status; latency histograms; bytes in and out; requests in flight by
//! class (uploads among them); backend faults (5xx answers); garbage collection runs and bytes
//! freed; every in-memory cache's hits, misses and size (the engine's, the accounts', the
//! platform's); the job queue by kind and status (webhook deliveries among them), read from the
//! store at each scrape so that every replica reports the shared queue; and where this process's
//! job attempts spent their time (waiting once due, running, recording their end), by kind.

use std::sync::Arc;

use http::{Method, StatusCode};

#[cfg(not(feature = "metrics"))]
mod disabled;
#[cfg(feature = "metrics")]
mod prometheus;

#[cfg(not(feature = "metrics"))]
pub use disabled::{InFlight, Metrics};
#[cfg(feature = "metrics")]
pub use prometheus::{InFlight, Metrics};

/// What the process's allocator holds, shown at `/metrics` as `registry_allocator_allocated_bytes`
/// and `registry_allocator_resident_bytes`: the heap the program uses against the memory the
/// allocator keeps from the system for it. Resident memory that rises while the allocated figure
/// stays flat is the allocator keeping freed pages (fragmentation); both rising is the program
/// holding more (a cache filling, or a leak). Only the program that chose the global allocator can
/// read these: the `registry` binary passes jemalloc's to [`crate::RegistryBuilder::allocator_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes allocated by the program.
    pub allocated: u64,
    /// Bytes of physical memory in pages the allocator has mapped.
    pub resident: u64,
}

/// Reads [`AllocatorStats`] at each scrape; `None` when they cannot be read.
pub type AllocatorStatsSource = Arc<dyn Fn() -> Option<AllocatorStats> + Send + Sync>;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Fresh metrics; `None` in a build without the `metrics` feature.
pub fn fresh() -> Option<Arc<Metrics>> {
    #[cfg(feature = "metrics")]
    return Some(Metrics::new());
    #[cfg(not(feature = "metrics"))]
    None
}

/// The route class of a path (a bounded label set: never the repository or digest).
pub fn route_class(method: &Method, path: &str) -> &'static str {
    if path == "/v2" || path == "/v2/" {
        return "base";
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return if rest == "_catalog" {
            "catalog"
        } else if rest.contains("/blobs/uploads") {
            "upload"
        } else if rest.contains("/blobs/") {
            "blob"
        } else if rest.contains("/manifests/") {
            if method == Method::PUT || method == Method::DELETE { "manifest_write" } else { "manifest" }
        } else if rest.ends_with("/tags/list") {
            "tags"
        } else if rest.contains("/referrers/") {
            "referrers"
        } else {
            "other"
        };
    }
    if path.starts_with("/api/") {
        "api"
    } else if path.starts_with("/auth/") {
        "token"
    } else if path == "/healthz" || path == "/readyz" || path == "/metrics" {
        "health"
    } else {
        "other"
    }
}

/// Serves `/metrics` alone on `listener` (HTTP/1.1) until `shutdown` completes; then ends its
/// connections and returns once each is gone (and the registry handle it held with it).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    registry: registry_storage::Registry,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use http_body_util::Full;
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: let them free up rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, registry) = (metrics.clone(), registry.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, registry) = (metrics.clone(), registry.clone());
                async move {
                    let mut response = if req.uri().path() == "/metrics" {
                        let mut r = http::Response::new(Full::new(bytes::Bytes::from(metrics.render(&registry).await)));
                        r.headers_mut()
                            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(CONTENT_TYPE));
                        r
                    } else {
                        http::Response::new(Full::new(bytes::Bytes::from_static(b"only /metrics here\n")))
                    };
                    if req.uri().path() != "/metrics" {
                        *response.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
    // As the registry's own listener does: each connection's task ended and awaited, so that
    // none still holds the registry once this returns.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
