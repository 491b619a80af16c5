//! Prometheus metrics, exposed as text at `/metrics` when the builder turns them on: requests by
//! route class, method and status; latency histograms; bytes in and out; requests in flight by
//! class (uploads among them); backend faults (5xx answers); garbage collection runs and bytes
//! freed; read-cache hits and misses; the job queue by kind and status (webhook deliveries among them), read from the store at
//! each scrape so that every replica reports the shared queue.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as Exposition;
use registry_storage::MetadataStore;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    status: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    exposition: Exposition,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<RouteLabels, Gauge>,
    faults: Family<RouteLabels, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    gc_runs: Counter,
    gc_bytes_freed: Counter,
    jobs: Family<JobLabels, Gauge>,
    cache_hits: Family<CacheLabels, Gauge>,
    cache_misses: Family<CacheLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
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

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Arc<Metrics> {
        let mut exposition = Exposition::with_prefix("registry");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let in_flight = Family::<RouteLabels, Gauge>::default();
        let faults = Family::<RouteLabels, Counter>::default();
        let (bytes_in, bytes_out, gc_runs, gc_bytes_freed) =
            (Counter::default(), Counter::default(), Counter::default(), Counter::default());
        let jobs = Family::<JobLabels, Gauge>::default();
        let (cache_hits, cache_misses) =
            (Family::<CacheLabels, Gauge>::default(), Family::<CacheLabels, Gauge>::default());
        exposition.register("http_requests", "Requests answered, by route class, method and status", requests.clone());
        exposition.register(
            "http_request_duration_seconds",
            "Time to the response head, by route class",
            latency.clone(),
        );
        exposition.register("http_requests_in_flight", "Requests being answered, by route class", in_flight.clone());
        exposition.register(
            "backend_faults",
            "Answers of 500 or 503 (storage or database faults), by route class",
            faults.clone(),
        );
        exposition.register("http_request_bytes", "Request body bytes announced by Content-Length", bytes_in.clone());
        exposition.register(
            "http_response_bytes",
            "Response body bytes announced by Content-Length",
            bytes_out.clone(),
        );
        exposition.register("gc_runs", "Garbage collections finished by this process", gc_runs.clone());
        exposition.register(
            "gc_freed_bytes",
            "Bytes freed by garbage collections of this process",
            gc_bytes_freed.clone(),
        );
        exposition.register(
            "jobs",
            "Jobs of the shared queue, by kind and status (webhook deliveries are kind webhook)",
            jobs.clone(),
        );
        exposition.register(
            "cache_hits",
            "Look-ups answered from a read cache since start (hit ratio: hits / (hits + misses))",
            cache_hits.clone(),
        );
        exposition.register("cache_misses", "Look-ups a read cache could not answer since start", cache_misses.clone());
        Arc::new(Metrics {
            exposition,
            requests,
            latency,
            in_flight,
            faults,
            bytes_in,
            bytes_out,
            gc_runs,
            gc_bytes_freed,
            jobs,
            cache_hits,
            cache_misses,
        })
    }

    /// A request begins: counts it in flight until the guard is dropped.
    pub fn begin(&self, route: &'static str, request_bytes: u64) -> InFlight {
        self.bytes_in.inc_by(request_bytes);
        let gauge = self.in_flight.get_or_create(&RouteLabels { route }).clone();
        gauge.inc();
        InFlight { gauge }
    }

    /// A request was answered.
    pub fn answered(&self, route: &'static str, method: &Method, status: StatusCode, took: Duration, bytes: u64) {
        let method = method.as_str().to_owned();
        self.requests.get_or_create(&RequestLabels { route, method, status: status.as_u16() }).inc();
        self.latency.get_or_create(&RouteLabels { route }).observe(took.as_secs_f64());
        self.bytes_out.inc_by(bytes);
        if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE {
            self.faults.get_or_create(&RouteLabels { route }).inc();
        }
    }

    /// A garbage collection finished, freeing `bytes`.
    pub fn collected(&self, bytes: u64) {
        self.gc_runs.inc();
        self.gc_bytes_freed.inc_by(bytes);
    }

    /// The exposition text, the queue's figures read from the store and the caches' from the
    /// engine now.
    pub async fn render(&self, registry: &registry_storage::Registry) -> String {
        for stat in registry.cache_stats() {
            let labels = CacheLabels { cache: stat.cache };
            self.cache_hits.get_or_create(&labels).set(i64::try_from(stat.hits).unwrap_or(i64::MAX));
            self.cache_misses.get_or_create(&labels).set(i64::try_from(stat.misses).unwrap_or(i64::MAX));
        }
        let store: &dyn MetadataStore = &**registry.metadata_store();
        match store.job_counts().await {
            Ok(counts) => {
                self.jobs.clear();
                for c in counts {
                    let labels = JobLabels { kind: c.kind, status: c.status.as_str() };
                    self.jobs.get_or_create(&labels).set(i64::try_from(c.count).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the job queue for /metrics failed"),
        }
        let mut text = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.exposition);
        text
    }
}

/// A request counted in flight.
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Serves `/metrics` alone on `listener` (HTTP/1.1) until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, registry: registry_storage::Registry) {
    use http_body_util::Full;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: let them free up rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, registry) = (metrics.clone(), registry.clone());
        tokio::spawn(async move {
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
}
