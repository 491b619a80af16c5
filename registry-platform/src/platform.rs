//! [`Platform`]: the job kinds and stream consumers of one process, assembled over an engine,
//! and [`Running`], the handle that stops them.

use std::sync::Arc;
use std::time::Duration;

use registry_storage::{GcOptions, JobRunner, Registry, RunnerHandle};

use crate::gc::{GC_KIND, GarbageCollector, GcHandler, GcObserver};
use crate::housekeeping::{self, Housekeeper, Retention};

/// What the platform does and how often.
#[derive(Clone)]
pub struct PlatformOptions {
    /// Garbage collection's options (grace period, upload expiry).
    pub gc: GcOptions,
    /// How often a collection is enqueued (`None`: only on request).
    pub gc_interval: Option<Duration>,
    /// Told of every finished collection.
    pub gc_observer: Option<GcObserver>,
    /// How long a job's claim lasts without a heartbeat.
    pub job_lease: Duration,
    /// How often the queue and the stream are read for work other replicas added.
    pub job_poll: Duration,
    /// How long events and finished jobs are kept.
    pub retention: Retention,
    /// This worker's name in job records (a host and process).
    pub worker: String,
    /// Forward audit records to the syslog endpoint of the settings.
    pub syslog: bool,
    /// Harbor's accounts, when the registry keeps them: tag retention runs over their projects.
    pub accounts: Option<registry_auth::Accounts>,
    /// Deliver webhooks.
    #[cfg(feature = "webhooks")]
    pub webhooks: Option<Webhooks>,
    /// Scan artifacts (the scans' jobs, the scan of everything and its schedule, scans on push).
    #[cfg(feature = "scanning")]
    pub scanning: Option<Arc<crate::scan::jobs::Scanning>>,
    /// Run replication executions, opening registry endpoints' credentials with this key
    /// (needs `accounts`).
    #[cfg(feature = "replication")]
    pub replication: Option<registry_auth::SecretKey>,
}

impl std::fmt::Debug for PlatformOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformOptions")
            .field("gc", &self.gc)
            .field("gc_interval", &self.gc_interval)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Default for PlatformOptions {
    fn default() -> Self {
        PlatformOptions {
            gc: GcOptions::default(),
            gc_interval: None,
            gc_observer: None,
            job_lease: Duration::from_secs(30),
            job_poll: Duration::from_secs(1),
            retention: Retention::default(),
            worker: default_worker(),
            syslog: true,
            accounts: None,
            #[cfg(feature = "webhooks")]
            webhooks: None,
            #[cfg(feature = "scanning")]
            scanning: None,
            #[cfg(feature = "replication")]
            replication: None,
        }
    }
}

/// Webhook delivery's settings.
#[cfg(feature = "webhooks")]
#[derive(Clone)]
pub struct Webhooks {
    /// The accounts (projects' ids and publicity for the payloads).
    pub accounts: registry_auth::Accounts,
    /// The key policies' secrets are sealed with.
    pub key: registry_auth::SecretKey,
    /// The registry's host, as payloads name it.
    pub registry_host: String,
    /// Attempts per delivery.
    pub attempts: u32,
    /// The wait after the first failure, doubled at each further one.
    pub backoff: Duration,
}

/// The name of this process's job worker: host and process id.
pub fn default_worker() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "registry".into());
    format!("{host}:{}", std::process::id())
}

/// The platform of one process: its job runner with every kind's handler, the garbage
/// collector, and the stream consumers, ready to [`start`](Platform::start).
pub struct Platform {
    jobs: Arc<JobRunner>,
    /// Tag retention's schedule reads the policies here (when there are accounts).
    retention: Option<Arc<dyn registry_storage::MetadataStore>>,
    poll: Duration,
    /// How often the stream consumers read the stream when nothing waits.
    #[cfg_attr(not(feature = "scanning"), allow(dead_code))]
    stream_poll: Duration,
    gc: Arc<GarbageCollector>,
    #[cfg(feature = "webhooks")]
    dispatcher: Option<Arc<crate::webhook::dispatch::Dispatcher>>,
    forwarder: Option<Arc<crate::syslog::Forwarder>>,
    #[cfg(feature = "scanning")]
    scanning: Option<Arc<crate::scan::jobs::Scanning>>,
    /// Replication's schedules and event trigger read the store here (when it replicates).
    #[cfg(feature = "replication")]
    replication: Option<Arc<dyn registry_storage::MetadataStore>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("jobs", &self.jobs).finish_non_exhaustive()
    }
}

impl Platform {
    /// Assembles the platform over `registry` (whose metadata store holds the queue, the
    /// policies and the stream). Nothing runs until [`Platform::start`].
    pub fn new(registry: &Registry, options: PlatformOptions) -> Platform {
        let meta = registry.metadata_store().clone();
        let clock = registry.clock().clone();
        let queue: Arc<dyn registry_storage::JobQueue> = meta.clone();
        let runner = JobRunner::new(queue, clock.clone(), options.worker.clone())
            .with_lease(options.job_lease)
            .with_poll(options.job_poll)
            .handle(GC_KIND, 1, Duration::from_secs(60), GcHandler::new(registry.clone(), options.gc_observer.clone()))
            .handle(
                housekeeping::KIND,
                1,
                Duration::from_secs(60),
                Arc::new(Housekeeper { meta: meta.clone(), retention: options.retention, clock }),
            );
        let runner = match &options.accounts {
            Some(accounts) => runner.handle(
                crate::retention::JOB_KIND,
                1,
                Duration::from_secs(60),
                crate::retention::RetentionHandler::new(registry.clone(), accounts.clone()),
            ),
            None => runner,
        };
        #[cfg(feature = "webhooks")]
        let runner = match &options.webhooks {
            Some(w) => runner.handle(
                crate::webhook::deliver::DELIVERY_KIND,
                8,
                w.backoff,
                crate::webhook::deliver::Deliverer::new(meta.clone(), w.key.clone()),
            ),
            None => runner,
        };
        #[cfg(feature = "scanning")]
        let runner = match &options.scanning {
            Some(scanning) => runner
                .handle(
                    crate::scan::jobs::JOB_KIND,
                    4,
                    Duration::from_secs(30),
                    crate::scan::jobs::ScanHandler::new(scanning.clone()),
                )
                .handle(
                    crate::scan::jobs::ALL_KIND,
                    1,
                    Duration::from_secs(60),
                    crate::scan::jobs::ScanAllHandler::new(scanning.clone()),
                ),
            None => runner,
        };
        #[cfg(feature = "replication")]
        let runner = match (&options.replication, &options.accounts) {
            // A failed execution is retried after thirty polls of the queue (30 s by default).
            (Some(key), Some(accounts)) => runner.handle(
                crate::replication::run::JOB_KIND,
                2,
                options.job_poll * 30,
                crate::replication::run::Replicator::new(registry.clone(), accounts.clone(), key.clone()),
            ),
            _ => runner,
        };
        let jobs = Arc::new(runner);
        #[cfg(feature = "scanning")]
        if let Some(scanning) = &options.scanning {
            scanning.attach(&jobs);
        }
        #[cfg(feature = "webhooks")]
        let dispatcher = options.webhooks.as_ref().map(|w| {
            Arc::new(crate::webhook::dispatch::Dispatcher {
                meta: meta.clone(),
                accounts: w.accounts.clone(),
                jobs: jobs.clone(),
                registry_host: w.registry_host.clone(),
                attempts: w.attempts,
                poll: options.job_poll,
            })
        });
        let forwarder =
            options.syslog.then(|| Arc::new(crate::syslog::Forwarder { meta: meta.clone(), poll: options.job_poll }));
        let gc = GarbageCollector::new(jobs.clone(), options.gc.clone(), options.gc_interval);
        Platform {
            jobs,
            retention: options.accounts.is_some().then(|| meta.clone()),
            poll: (options.job_poll * 60).min(Duration::from_secs(60)),
            stream_poll: options.job_poll,
            gc,
            #[cfg(feature = "webhooks")]
            dispatcher,
            forwarder,
            #[cfg(feature = "scanning")]
            scanning: options.scanning.clone(),
            #[cfg(feature = "replication")]
            replication: (options.replication.is_some() && options.accounts.is_some()).then(|| meta.clone()),
        }
    }

    /// The job runner (the queue, enqueueing, waiting for a job).
    pub fn jobs(&self) -> &Arc<JobRunner> {
        &self.jobs
    }

    /// The garbage collector.
    pub fn gc(&self) -> &Arc<GarbageCollector> {
        &self.gc
    }

    /// Starts the workers, the schedules (garbage collection, housekeeping) and the stream's
    /// consumers; they run until [`Running::stop`].
    pub fn start(&self) -> Running {
        let mut periodic = Vec::new();
        periodic.extend(self.gc.schedule());
        periodic.push(housekeeping::schedule(&self.jobs));
        if let Some(meta) = &self.retention {
            periodic.push(crate::retention::schedule(self.jobs.clone(), meta.clone(), self.poll));
        }
        #[cfg(feature = "webhooks")]
        periodic.extend(self.dispatcher.clone().map(|d| d.start()));
        periodic.extend(self.forwarder.clone().map(|f| f.start()));
        #[cfg(feature = "scanning")]
        if let Some(scanning) = &self.scanning {
            periodic.push(crate::scan::jobs::schedule(self.jobs.clone(), scanning.meta_store(), self.poll));
            let auto = crate::scan::jobs::AutoScan { scanning: scanning.clone(), poll: self.stream_poll };
            periodic.push(Arc::new(auto).start());
        }
        #[cfg(feature = "replication")]
        if let Some(meta) = &self.replication {
            periodic.push(crate::replication::triggers::schedule(self.jobs.clone(), meta.clone(), self.poll));
            let on_push = crate::replication::triggers::OnPush {
                meta: meta.clone(),
                jobs: self.jobs.clone(),
                poll: self.stream_poll,
            };
            periodic.push(Arc::new(on_push).start());
        }
        Running { workers: self.jobs.clone().start(), periodic }
    }

    /// Starts only the workers (no schedules, no consumers): what a short-lived process that
    /// asks for a job and waits for it needs.
    pub fn start_workers(&self) -> RunnerHandle {
        self.jobs.clone().start()
    }
}

/// The platform running: [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    workers: RunnerHandle,
    periodic: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the schedules and consumers (awaited, so that nothing holds the stores when this
    /// returns), then the workers: running jobs go back to the queue for the next start or
    /// another replica.
    pub async fn stop(self) {
        for task in self.periodic {
            task.abort();
            let _ = task.await;
        }
        self.workers.stop().await;
    }
}
