//! Housekeeping, as an hourly job of the shared queue (one per hour across replicas, by key):
//! trims the event stream to its retention, removes finished jobs older than theirs, and keeps
//! each kind's newest finished jobs up to a count (as Harbor keeps a bounded number of executions:
//! an hour of a million webhook deliveries would otherwise be kept for a month).

use std::sync::Arc;
use std::time::Duration;

use registry_storage::jobs::NewJob;
use registry_storage::{Job, JobContext, JobFailure, JobHandler, JobRunner, MetadataStore};

/// The job kind.
pub const KIND: &str = "housekeeping";

/// How often it runs.
const EVERY: Duration = Duration::from_secs(3600);

/// Finished jobs removed per transaction when a kind is over its count (a shorter turn at the
/// embedded store's one writer for the writes around it).
const BATCH: u64 = 5_000;

/// How long the records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events (the audit log) older than this are trimmed.
    pub events: Duration,
    /// Finished jobs (GC history, webhook executions) older than this are removed.
    pub jobs: Duration,
    /// Of each kind of job, at most this many finished ones are kept, the newest.
    pub jobs_per_kind: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events: Duration::from_secs(90 * 86400),
            jobs: Duration::from_secs(30 * 86400),
            jobs_per_kind: 10_000,
        }
    }
}

/// Runs housekeeping jobs.
pub struct Housekeeper {
    /// The store it trims.
    pub meta: Arc<dyn MetadataStore>,
    /// How long records are kept.
    pub retention: Retention,
    /// Its clock.
    pub clock: registry_core::SharedClock,
}

#[async_trait::async_trait]
impl JobHandler for Housekeeper {
    async fn run(&self, _: &Job, ctx: &JobContext) -> Result<String, JobFailure> {
        let now = self.clock.now_millis();
        let before = |keep: Duration| now.saturating_sub(keep.as_millis() as u64);
        let events = self.meta.trim_events(before(self.retention.events)).await.map_err(JobFailure::retrying)?;
        // Each kind down to its count first, in batches, so that the trim by age, one
        // transaction, has at most that many of each kind to remove.
        let mut jobs = 0;
        let counts = self.meta.job_counts().await.map_err(JobFailure::retrying)?;
        let mut finished: std::collections::BTreeMap<&str, u64> = Default::default();
        for count in counts.iter().filter(|c| c.status.is_final()) {
            *finished.entry(count.kind.as_str()).or_default() += count.count;
        }
        let keep = self.retention.jobs_per_kind;
        for (kind, _) in finished.into_iter().filter(|(_, n)| *n > keep) {
            loop {
                let removed = self.meta.trim_jobs_beyond(kind, keep, BATCH).await.map_err(JobFailure::retrying)?;
                jobs += removed;
                if removed < BATCH {
                    break;
                }
            }
        }
        jobs += self.meta.trim_jobs(before(self.retention.jobs)).await.map_err(JobFailure::retrying)?;
        ctx.log(format!("trimmed {events} events and {jobs} finished jobs"));
        Ok(serde_json::json!({"events_trimmed": events, "jobs_trimmed": jobs}).to_string())
    }
}

/// Enqueues housekeeping every hour (the first at once) until the task is aborted.
pub fn schedule(jobs: &Arc<JobRunner>) -> tokio::task::JoinHandle<()> {
    jobs.schedule(EVERY, Duration::ZERO, |hour| {
        NewJob::new(KIND, "{}".into(), "schedule").key(format!("housekeeping:{hour}"))
    })
}
