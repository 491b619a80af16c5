//! Garbage collection in the server, as jobs of the queue (kind [`GC_KIND`], one at a time across
//! all replicas): started on request through the management API or by the `[gc]` schedule, run
//! by whichever worker claims it, its progress and history in the queue where every replica
//! reads them.

use std::sync::Arc;
use std::time::Duration;

use registry_storage::jobs::{JobFilter, JobStatus, NewJob};
use registry_storage::{GcOptions, GcReport, Job, JobContext, JobFailure, JobHandler, JobRunner, Registry};
use serde::Serialize;

/// The kind of garbage-collection jobs.
pub const GC_KIND: &str = "gc";

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Through the management API.
    Manual,
    /// By the server's schedule.
    Schedule,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }
}

/// One run, as the management API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GcRun {
    /// The run's number (its job's).
    pub id: u64,
    /// How it was started.
    pub trigger: Trigger,
    /// Where it is.
    pub status: JobStatus,
    /// What it was asked to do.
    pub options: GcOptions,
    /// What it freed: so far while it runs, in total once finished.
    pub report: Option<GcReport>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was started, in seconds since the Unix epoch.
    pub created: u64,
    /// When it last changed.
    pub updated: u64,
    /// Its log.
    pub log: String,
}

impl GcRun {
    fn of(job: &Job) -> GcRun {
        let report = match job.status {
            JobStatus::Succeeded => serde_json::from_str(&job.result).ok(),
            _ => serde_json::from_str(&job.progress).ok(),
        };
        GcRun {
            id: job.id,
            trigger: if job.trigger == "schedule" { Trigger::Schedule } else { Trigger::Manual },
            status: job.status,
            options: serde_json::from_str(&job.payload).unwrap_or_default(),
            report,
            error: (!job.error.is_empty() && job.status != JobStatus::Succeeded).then(|| job.error.clone()),
            created: job.created_ms / 1000,
            updated: job.updated_ms / 1000,
            log: job.log.clone(),
        }
    }
}

/// A collection is already pending or running.
#[derive(Debug, thiserror::Error)]
#[error("garbage collection {0} is already pending or running")]
pub struct AlreadyRunning(pub u64);

/// Why a run could not be started or did not finish well.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run was pending or running.
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    /// The queue could not be reached.
    #[error(transparent)]
    Store(#[from] registry_storage::Error),
    /// The run failed or was stopped.
    #[error("garbage collection {id} ended {status}: {error}")]
    Failed {
        /// The run.
        id: u64,
        /// How it ended.
        status: &'static str,
        /// Why.
        error: String,
    },
}

/// Starts collections as jobs and reads their history from the queue.
pub struct GarbageCollector {
    defaults: GcOptions,
    interval: Option<Duration>,
    jobs: Arc<JobRunner>,
}

impl std::fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector").field("defaults", &self.defaults).finish_non_exhaustive()
    }
}

impl GarbageCollector {
    /// A collector enqueueing on `jobs`' queue; `defaults` give the grace period and upload
    /// expiry of runs, `interval` the schedule (see [`GarbageCollector::schedule`]).
    pub fn new(jobs: Arc<JobRunner>, defaults: GcOptions, interval: Option<Duration>) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector { defaults, interval, jobs })
    }

    /// The interval of scheduled runs, if any.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The options runs use unless told otherwise.
    pub fn defaults(&self) -> &GcOptions {
        &self.defaults
    }

    fn job(options: &GcOptions, trigger: Trigger) -> NewJob {
        NewJob::new(GC_KIND, serde_json::to_string(options).unwrap_or_default(), trigger.as_str())
    }

    async fn active(&self) -> Result<Option<u64>, registry_storage::Error> {
        for status in [JobStatus::Running, JobStatus::Pending] {
            let filter = JobFilter { kind: Some(GC_KIND.into()), status: Some(status), ..JobFilter::default() };
            if let Some(job) = self.jobs.queue().jobs(&filter, 0, 1).await?.0.first() {
                return Ok(Some(job.id));
            }
        }
        Ok(None)
    }

    /// Enqueues a collection; its id. [`AlreadyRunning`] while another is pending or running.
    pub async fn start(&self, options: GcOptions, trigger: Trigger) -> Result<u64, RunError> {
        if let Some(id) = self.active().await? {
            return Err(AlreadyRunning(id).into());
        }
        Ok(self.jobs.enqueue(&Self::job(&options, trigger)).await?.0)
    }

    /// Runs a collection and waits for its report.
    pub async fn run(&self, options: &GcOptions, trigger: Trigger) -> Result<GcReport, RunError> {
        let id = self.start(options.clone(), trigger).await?;
        let job = self.jobs.wait(id).await?;
        let run = job.as_ref().map(GcRun::of);
        match run {
            Some(GcRun { status: JobStatus::Succeeded, report: Some(report), .. }) => Ok(report),
            Some(run) => Err(RunError::Failed {
                id,
                status: run.status.as_str(),
                error: run.error.unwrap_or_else(|| "no report".into()),
            }),
            None => Err(RunError::Failed { id, status: "removed", error: "the job was trimmed".into() }),
        }
    }

    /// The runs `offset..offset + limit`, newest first, and how many there are.
    pub async fn runs(&self, offset: usize, limit: usize) -> Result<(Vec<GcRun>, u64), registry_storage::Error> {
        let filter = JobFilter { kind: Some(GC_KIND.into()), status: None, ..JobFilter::default() };
        let (jobs, total) = self.jobs.queue().jobs(&filter, offset, limit).await?;
        Ok((jobs.iter().map(GcRun::of).collect(), total))
    }

    /// One run.
    pub async fn get(&self, id: u64) -> Result<Option<GcRun>, registry_storage::Error> {
        Ok(self.jobs.queue().job(id).await?.filter(|j| j.kind == GC_KIND).map(|j| GcRun::of(&j)))
    }

    /// Stops a run (cancels its job); the run after, `None` if there is no such run.
    pub async fn stop(&self, id: u64) -> Result<Option<GcRun>, registry_storage::Error> {
        if self.get(id).await?.is_none() {
            return Ok(None);
        }
        let now = self.jobs.clock().now_millis();
        Ok(self.jobs.queue().cancel_job(id, now).await?.map(|j| GcRun::of(&j)))
    }

    /// Enqueues a collection every [`GarbageCollector::interval`] with the default options, until
    /// the returned task is aborted (the server does at shutdown); `None` without an interval.
    /// Each period's run has the period's key, so replicas sharing the queue enqueue it once.
    pub fn schedule(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.interval.filter(|i| !i.is_zero())?;
        let defaults = self.defaults.clone();
        Some(self.jobs.schedule(every, every, move |period| {
            Self::job(&defaults, Trigger::Schedule).key(format!("gc:schedule:{period}"))
        }))
    }
}

/// Runs garbage-collection jobs on an engine.
pub struct GcHandler {
    registry: Registry,
    observer: Option<GcObserver>,
}

/// Told of every finished collection (the server's metrics count them).
pub type GcObserver = Arc<dyn Fn(&GcReport) + Send + Sync>;

impl GcHandler {
    /// The handler of `registry`'s collections, telling `observer` of each one finished.
    pub fn new(registry: Registry, observer: Option<GcObserver>) -> Arc<GcHandler> {
        Arc::new(GcHandler { registry, observer })
    }
}

#[async_trait::async_trait]
impl JobHandler for GcHandler {
    async fn run(&self, job: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let options: GcOptions = serde_json::from_str(&job.payload)
            .map_err(|e| JobFailure::fatal(format!("the job's options do not parse: {e}")))?;
        ctx.log(format!("garbage collection {} started (attempt {})", job.id, job.attempts));
        let progress = |report: &GcReport| ctx.progress(serde_json::to_string(report).unwrap_or_default());
        match self.registry.collect_garbage_with_progress(&options, &progress).await {
            Ok(r) => {
                if let Some(observe) = &self.observer {
                    observe(&r);
                }
                ctx.log(format!(
                    "examined {} objects; {} blobs ({} bytes), {} links, {} manifests, {} uploads ({} bytes) {}; {} ms",
                    r.examined,
                    r.blobs_deleted,
                    r.bytes_freed,
                    r.links_removed,
                    r.manifests_deleted,
                    r.uploads_removed,
                    r.upload_bytes_freed,
                    if r.dry_run { "would be freed" } else { "freed" },
                    r.duration_ms
                ));
                Ok(serde_json::to_string(&r).unwrap_or_default())
            }
            Err(e @ registry_storage::Error::JobRunning { .. }) => {
                ctx.log(format!("{e}"));
                Err(JobFailure::retry(e.to_string()))
            }
            Err(e) => {
                tracing::error!(error = %e, "garbage collection failed");
                ctx.log(format!("error: {e}"));
                Err(JobFailure::retry(e.to_string()))
            }
        }
    }
}
