//! The metrics kept with prometheus-client (feature `metrics`).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as Exposition;
use registry_core::cache_stats::CacheStatsSource;
use registry_storage::{JobRunner, MetadataStore};

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
struct KindLabels {
    kind: String,
}

/// Seconds summed since start, shown as a gauge (like the caches' hits: set at each scrape).
type Seconds = Gauge<f64, AtomicU64>;

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
    cache_entries: Family<CacheLabels, Gauge>,
    cache_bytes: Family<CacheLabels, Gauge>,
    tasks: Gauge,
    /// Weak: the runner's handlers hold these metrics (the collector's observer).
    runner: OnceLock<Weak<JobRunner>>,
    allocator: OnceLock<super::AllocatorStatsSource>,
    /// The caches kept beside the engine's (accounts, tokens, the platform's).
    caches: Mutex<Vec<CacheStatsSource>>,
    allocated: Gauge,
    resident: Gauge,
    job_attempts: Family<KindLabels, Gauge>,
    job_waited: Family<KindLabels, Seconds>,
    job_claimed: Family<KindLabels, Seconds>,
    job_ran: Family<KindLabels, Seconds>,
    job_recorded: Family<KindLabels, Seconds>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A count as a gauge's value (saturating: a gauge holds an `i64`).
fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
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
        let (cache_entries, cache_bytes) =
            (Family::<CacheLabels, Gauge>::default(), Family::<CacheLabels, Gauge>::default());
        exposition.register("cache_entries", "Entries a read cache holds now", cache_entries.clone());
        exposition.register(
            "cache_bytes",
            "Bytes a read cache bounded by bytes holds now (its entries' sizes)",
            cache_bytes.clone(),
        );
        let tasks = Gauge::default();
        exposition.register(
            "runtime_tasks",
            "Tasks alive in the process's async runtime (connections, requests, background loops)",
            tasks.clone(),
        );
        let (allocated, resident) = (Gauge::default(), Gauge::default());
        exposition.register(
            "allocator_allocated_bytes",
            "Bytes the process has allocated, as its allocator counts them (when the program gives its allocator's figures)",
            allocated.clone(),
        );
        exposition.register(
            "allocator_resident_bytes",
            "Bytes of physical memory in the allocator's pages: allocated, freed but kept, and its own bookkeeping",
            resident.clone(),
        );
        let job_attempts = Family::<KindLabels, Gauge>::default();
        let (job_waited, job_claimed) = (Family::default(), Family::default());
        let (job_ran, job_recorded) = (Family::default(), Family::default());
        exposition.register(
            "job_attempts",
            "Job attempts this process ran to their end since start, by kind",
            job_attempts.clone(),
        );
        exposition.register(
            "job_wait_seconds",
            "Time the attempts of job_attempts waited in the queue once due, summed, by kind",
            job_waited.clone(),
        );
        exposition.register(
            "job_claim_seconds",
            "Time the claims of those attempts took (the queue's transaction), summed, by kind",
            job_claimed.clone(),
        );
        exposition.register("job_run_seconds", "Time those attempts ran, summed, by kind", job_ran.clone());
        exposition.register(
            "job_record_seconds",
            "Time recording those attempts' ends took, summed, by kind",
            job_recorded.clone(),
        );
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
            cache_entries,
            cache_bytes,
            tasks,
            runner: OnceLock::new(),
            allocator: OnceLock::new(),
            caches: Mutex::default(),
            allocated,
            resident,
            job_attempts,
            job_waited,
            job_claimed,
            job_ran,
            job_recorded,
        })
    }

    /// Shows where `runner`'s attempts spend their time (the first runner given; one per server).
    pub fn watch_jobs(&self, runner: &Arc<JobRunner>) {
        let _ = self.runner.set(Arc::downgrade(runner));
    }

    /// Shows the allocator's figures, read from `source` at each scrape (the first source given).
    pub fn watch_allocator(&self, source: super::AllocatorStatsSource) {
        let _ = self.allocator.set(source);
    }

    /// Shows the figures of the caches `source` reads, beside the engine's, at each scrape.
    pub fn watch_caches(&self, source: CacheStatsSource) {
        self.caches.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(source);
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
        let sources = self.caches.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for stat in registry.cache_stats().into_iter().chain(sources.iter().flat_map(|read| read())) {
            let labels = CacheLabels { cache: stat.cache };
            self.cache_hits.get_or_create(&labels).set(gauge(stat.hits));
            self.cache_misses.get_or_create(&labels).set(gauge(stat.misses));
            self.cache_entries.get_or_create(&labels).set(gauge(stat.entries));
            if let Some(bytes) = stat.bytes {
                self.cache_bytes.get_or_create(&labels).set(gauge(bytes));
            }
        }
        if let Some(stats) = self.allocator.get().and_then(|read| read()) {
            self.allocated.set(gauge(stats.allocated));
            self.resident.set(gauge(stats.resident));
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(gauge(runtime.metrics().num_alive_tasks()));
        }
        for times in self.runner.get().and_then(Weak::upgrade).map(|r| r.times()).unwrap_or_default() {
            let labels = KindLabels { kind: times.kind };
            self.job_attempts.get_or_create(&labels).set(gauge(times.runs));
            self.job_waited.get_or_create(&labels).set(times.waited.as_secs_f64());
            self.job_claimed.get_or_create(&labels).set(times.claimed.as_secs_f64());
            self.job_ran.get_or_create(&labels).set(times.ran.as_secs_f64());
            self.job_recorded.get_or_create(&labels).set(times.recorded.as_secs_f64());
        }
        let store: &dyn MetadataStore = &**registry.metadata_store();
        match store.job_counts().await {
            Ok(counts) => {
                self.jobs.clear();
                for c in counts {
                    let labels = JobLabels { kind: c.kind, status: c.status.as_str() };
                    self.jobs.get_or_create(&labels).set(gauge(c.count));
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
