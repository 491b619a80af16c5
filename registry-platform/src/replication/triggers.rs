//! What starts executions besides a request: a policy's cron schedule ([`schedule`]: each fire
//! time once across replicas, by the job's key) and pushes and deletions ([`OnPush`], a consumer
//! of the event stream: each push a push-based, event-based policy takes starts an execution of
//! just that artifact, and each deletion one that deletes the same at the destination where the
//! policy replicates deletions — once, by the event's id).

use std::sync::Arc;
use std::time::Duration;

use registry_core::event::EventAction;
use registry_storage::jobs::NewJob;
use registry_storage::{JobRunner, MetadataStore};

use super::run::{ExecutionJob, JOB_KIND};
use super::{Stored, all};

/// The stream cursor of event-based replication.
pub const CURSOR: &str = "replication";
/// Pushes older than this start nothing (a consumer catching up after a long stop).
const HORIZON_MS: u64 = 24 * 3600 * 1000;

/// Queues an execution (idempotent by `key`), waking the runner's workers.
async fn enqueue(jobs: &JobRunner, job: ExecutionJob, trigger: &str, key: String) -> registry_storage::Result<()> {
    let payload = serde_json::to_string(&job).unwrap_or_default();
    jobs.enqueue(&NewJob::new(JOB_KIND, payload, trigger).key(key).attempts(3)).await.map(|_| ())
}

/// Every `every`, starts the executions of scheduled policies whose cron fired since the last
/// look, until the task is aborted.
pub fn schedule(jobs: Arc<JobRunner>, meta: Arc<dyn MetadataStore>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut checked = jobs.clock().now_secs();
        loop {
            tokio::time::sleep(every).await;
            let now = jobs.clock().now_secs();
            match all(&*meta).await {
                Ok(policies) => {
                    for Stored { record, doc: policy } in policies {
                        let Some(cron) = policy.cron().filter(|_| policy.enabled) else { continue };
                        let mut fire = None;
                        let mut at = checked;
                        while let Some(next) = cron.next_after(at).filter(|t| *t <= now) {
                            fire = Some(next);
                            at = next;
                        }
                        let Some(fire) = fire else { continue };
                        let job = ExecutionJob { policy_id: record.id, only: None, deleted: None };
                        let key = format!("replication:{}:schedule:{fire}", record.id);
                        if let Err(e) = enqueue(&jobs, job, "scheduled", key).await {
                            tracing::warn!(policy = %policy.name, error = %e, "starting a scheduled replication failed");
                        }
                    }
                    checked = now;
                }
                Err(e) => tracing::warn!(error = %e, "reading the replication policies failed; trying again"),
            }
        }
    })
}

/// Starts event-based replication of what is pushed.
pub struct OnPush {
    /// The store (the stream, the policies, the queue).
    pub meta: Arc<dyn MetadataStore>,
    /// The runner executions are queued through.
    pub jobs: Arc<JobRunner>,
    /// How often the stream is read when nothing waits.
    pub poll: Duration,
}

impl OnPush {
    /// Reads the stream until the task is aborted.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let poll = self.poll;
        crate::consumer::start(self, poll)
    }

    /// One pass over the events after the cursor; whether more may follow at once.
    pub async fn pass_once(&self) -> registry_storage::Result<bool> {
        const BATCH: usize = 256;
        let from = self.meta.cursor(CURSOR).await?;
        let events = self.meta.events_after(from, BATCH).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let now = self.jobs.clock().now_millis();
        let relevant: Vec<_> = events
            .iter()
            .filter(|e| {
                matches!(e.action, EventAction::PushArtifact | EventAction::DeleteArtifact | EventAction::DeleteTag)
            })
            .filter(|e| e.time_ms + HORIZON_MS >= now && e.operator.display_name() != "replication")
            .collect();
        if !relevant.is_empty() {
            let policies: Vec<Stored> = all(&*self.meta)
                .await?
                .into_iter()
                .filter(|s| s.doc.enabled && s.doc.trigger.kind == "event_based" && s.doc.dest_registry != 0)
                .collect();
            for event in relevant {
                let Some(repository) = &event.resource.repository else { continue };
                let tag = event.resource.tag.as_deref();
                for Stored { record, doc: policy } in &policies {
                    let Ok(filters) = policy.filters() else { continue };
                    if !filters.repository(repository) {
                        continue;
                    }
                    // Cosign's tags go with their subject (and go when it goes): the tag
                    // filters are the subject's.
                    let cosign = tag.is_some_and(|t| crate::artifacts::cosign_tag(t).is_some());
                    let (only, deleted) = match event.action {
                        EventAction::PushArtifact => match tag {
                            Some(tag) if !cosign && filters.tag(tag) => {
                                (Some((repository.clone(), tag.to_owned())), None)
                            }
                            _ => continue,
                        },
                        _ if !policy.replicate_deletion => continue,
                        EventAction::DeleteTag => match tag {
                            Some(tag) if cosign || filters.tag(tag) => {
                                (None, Some((repository.clone(), tag.to_owned())))
                            }
                            _ => continue,
                        },
                        _ => match &event.resource.digest {
                            Some(digest) => (None, Some((repository.clone(), digest.clone()))),
                            None => continue,
                        },
                    };
                    let job = ExecutionJob { policy_id: record.id, only, deleted };
                    let key = format!("replication:{}:event:{}", record.id, event.id);
                    enqueue(&self.jobs, job, "event_based", key).await?;
                }
            }
        }
        self.meta.advance_cursor(CURSOR, from, last).await?;
        Ok(events.len() == BATCH)
    }
}

impl crate::consumer::Consumer for OnPush {
    const NAME: &'static str = "replication";

    async fn pass(&self) -> Result<bool, String> {
        self.pass_once().await.map_err(|e| e.to_string())
    }
}
