//! Housekeeping, as an hourly job of the shared queue (one per hour across replicas, by key):
//! trims the event stream to its retention and removes finished jobs older than theirs.

use std::sync::Arc;
use std::time::Duration;

use registry_storage::jobs::NewJob;
use registry_storage::{Job, JobContext, JobFailure, JobHandler, JobRunner, MetadataStore};

/// The job kind.
pub const KIND: &str = "housekeeping";

/// How often it runs.
const EVERY: Duration = Duration::from_secs(3600);

/// How long the records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events (the audit log) older than this are trimmed.
    pub events: Duration,
    /// Finished jobs (GC history, webhook executions) older than this are removed.
    pub jobs: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { events: Duration::from_secs(90 * 86400), jobs: Duration::from_secs(30 * 86400) }
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
        let events =
            self.meta.trim_events(before(self.retention.events)).await.map_err(|e| JobFailure::retry(e.to_string()))?;
        let jobs =
            self.meta.trim_jobs(before(self.retention.jobs)).await.map_err(|e| JobFailure::retry(e.to_string()))?;
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
