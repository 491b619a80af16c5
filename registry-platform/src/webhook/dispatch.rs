//! The dispatcher: reads the event stream by its cursor and enqueues one delivery job per
//! (event, matching policy, target). Each delivery's job key names all three, so a batch read
//! twice (a crash before the cursor moved, two replicas reading at once) enqueues nothing twice;
//! then the cursor moves. Deliveries are jobs: the request that caused the event never waits
//! for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use registry_auth::Accounts;
use registry_storage::jobs::NewJob;
use registry_storage::{JobRunner, MetadataStore};

use super::deliver::{DELIVERY_KIND, Delivery};
use super::payload::{Context, event_type, render};
use super::policy::{KIND, Webhook};

/// The dispatcher's cursor on the event stream.
pub const CURSOR: &str = "webhooks";

/// Events read per pass.
const BATCH: usize = 256;

/// Turns events into delivery jobs.
pub struct Dispatcher {
    /// The store whose stream and policies it reads.
    pub meta: Arc<dyn MetadataStore>,
    /// The accounts (projects' ids and publicity).
    pub accounts: Accounts,
    /// Where deliveries are enqueued.
    pub jobs: Arc<JobRunner>,
    /// The registry's host, as payloads name it.
    pub registry_host: String,
    /// Attempts per delivery.
    pub attempts: u32,
    /// How often the stream is read when nothing waits.
    pub poll: Duration,
}

impl Dispatcher {
    /// Dispatches until the task is aborted.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let poll = self.poll;
        crate::consumer::start(self, poll)
    }
}

impl crate::consumer::Consumer for Dispatcher {
    const NAME: &'static str = "webhooks";

    async fn pass(&self) -> Result<bool, String> {
        self.dispatch().await.map_err(|e| e.to_string())
    }
}

impl Dispatcher {
    /// One pass over the events after the cursor; whether more may follow at once.
    pub async fn dispatch(&self) -> registry_storage::Result<bool> {
        let from = self.meta.cursor(CURSOR).await?;
        let events = self.meta.events_after(from, BATCH).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let policies: Vec<(registry_storage::PolicyRecord, Webhook)> = self
            .meta
            .policies(KIND, None)
            .await?
            .into_iter()
            .filter_map(|p| serde_json::from_str::<Webhook>(&p.body).ok().map(|w| (p, w)))
            .filter(|(_, w)| w.enabled)
            .collect();
        let mut projects: HashMap<String, Option<(u64, bool)>> = HashMap::new();
        let mut deliveries = Vec::new();
        for event in &events {
            let (Some(kind), Some(project)) = (event_type(event.action), event.resource.project.as_deref()) else {
                continue;
            };
            let matching: Vec<_> = policies
                .iter()
                .filter(|(p, w)| {
                    w.project == project && w.event_types.iter().any(|t| t == kind) && event.time_ms >= p.created_ms
                })
                .collect();
            if matching.is_empty() {
                continue;
            }
            if !projects.contains_key(project) {
                let found = self.accounts.project(project).await.ok().flatten().map(|p| (p.id, p.public));
                projects.insert(project.to_owned(), found);
            }
            let Some(Some((project_id, public))) = projects.get(project).copied() else { continue };
            for (policy, webhook) in matching {
                for (i, target) in webhook.targets.iter().enumerate() {
                    let ctx = Context { registry_host: &self.registry_host, public, project_id, policy_id: policy.id };
                    let (body, content_type) = render(event, kind, &target.payload_format, &ctx);
                    let delivery = Delivery {
                        policy_id: policy.id,
                        target: i,
                        event_id: event.id,
                        event_type: kind.to_owned(),
                        body,
                        content_type: content_type.to_owned(),
                    };
                    let job = NewJob::new(DELIVERY_KIND, serde_json::to_string(&delivery).unwrap_or_default(), "event")
                        .key(format!("webhook:{}:{i}:{}", policy.id, event.id))
                        .attempts(self.attempts);
                    deliveries.push(job);
                }
            }
        }
        // The batch's deliveries in one transaction, then the cursor.
        self.jobs.enqueue_all(&deliveries).await?;
        self.meta.advance_cursor(CURSOR, from, last).await?;
        Ok(events.len() == BATCH)
    }
}
