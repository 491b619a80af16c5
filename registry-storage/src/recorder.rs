//! The events the engine records: built here from what a request did, written by the metadata
//! store in the same transaction as the change (pushes, deletions), or, for pulls, gathered and
//! appended in batches: a busy registry pulls far more than it pushes, and a write per pull
//! would cost a fsync or a database round trip each. A crash loses at most the last second of
//! pull events, never an event of a change. Identical pulls gathered close together (the same
//! operator and address pulling the same artifact) are one event with their count.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use registry_core::event::{Event, EventAction, Operator, Resource};
use registry_core::{Digest, RepositoryName, Tag};

use crate::meta::{ManifestRecord, MetadataStore};

/// How often gathered pull events are appended.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Pull events gathered before an early append: at most one append (one fsync) per second
/// below ~16k pulls per second.
const BATCH: usize = 16 * 1024;

/// How many of the newest gathered events a new one is compared with to be counted on one of
/// them: bounded, so that gathering stays O(1) per pull.
const COALESCE_WINDOW: usize = 32;

/// Pull events kept while the store refuses them (an outage), at most.
const KEEP_AT_MOST: usize = 100_000;

/// The resource of an event on a manifest.
pub(crate) fn artifact(repository: &RepositoryName, record: &ManifestRecord, tag: Option<&Tag>) -> Resource {
    Resource {
        project: Some(project_of(repository)),
        repository: Some(repository.to_string()),
        digest: Some(record.digest.to_string()),
        tag: tag.map(ToString::to_string),
        media_type: Some(record.media_type.clone()),
        artifact_type: record.artifact_type.clone(),
        size: Some(record.size),
        ..Resource::default()
    }
}

/// The resource of a deletion by digest or tag (what is known before it).
pub(crate) fn deleted(repository: &RepositoryName, digest: Option<&Digest>, tag: Option<&Tag>) -> Resource {
    Resource {
        project: Some(project_of(repository)),
        repository: Some(repository.to_string()),
        digest: digest.map(ToString::to_string),
        tag: tag.map(ToString::to_string),
        ..Resource::default()
    }
}

fn project_of(repository: &RepositoryName) -> String {
    repository.first_component().to_owned()
}

/// Events of a push: the artifact, and the tag when one was set.
pub(crate) fn pushed(time_ms: u64, operator: &Operator, resource: Resource) -> Vec<Event> {
    let mut events = vec![Event::new(time_ms, operator.clone(), EventAction::PushArtifact, resource.clone())];
    if resource.tag.is_some() {
        events.push(Event::new(time_ms, operator.clone(), EventAction::CreateTag, resource));
    }
    events
}

/// Events waiting to be appended in a batch (pulls, logins).
pub(crate) struct BatchedEvents {
    meta: Arc<dyn MetadataStore>,
    pending: Mutex<Vec<Event>>,
    flusher: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

impl BatchedEvents {
    pub(crate) fn new(meta: Arc<dyn MetadataStore>) -> Arc<BatchedEvents> {
        Arc::new(BatchedEvents { meta, pending: Mutex::default(), flusher: std::sync::OnceLock::new() })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gathers one pull event; appends a full batch at once, else within [`FLUSH_EVERY`].
    pub(crate) fn record(self: &Arc<Self>, event: Event) {
        let full = {
            let mut pending = self.pending();
            // A pull like one already gathered (same operator, address, artifact) is counted on it:
            // a hot image pulled over and over costs one stored event per batch, not one per pull.
            match pending.iter_mut().rev().take(COALESCE_WINDOW).find(|e| e.same_as(&event)) {
                Some(gathered) => gathered.count += 1,
                None => pending.push(event),
            }
            pending.len() >= BATCH
        };
        if full {
            let this = self.clone();
            tokio::spawn(async move { this.flush().await });
        }
        self.flusher.get_or_init(|| {
            let weak: Weak<BatchedEvents> = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FLUSH_EVERY).await;
                    let Some(log) = weak.upgrade() else { return };
                    log.flush().await;
                }
            })
        });
    }

    /// Appends what is gathered (kept for the next try if the store fails).
    pub(crate) async fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.meta.append_events(&batch).await {
            tracing::warn!(error = %e, events = batch.len(), "could not append pull events; retrying");
            let mut pending = self.pending();
            let newer = std::mem::take(&mut *pending);
            *pending = batch;
            pending.extend(newer);
            if pending.len() > KEEP_AT_MOST {
                let excess = pending.len() - KEEP_AT_MOST;
                pending.drain(..excess);
                tracing::warn!(dropped = excess, "the store has refused pull events for long: dropped the oldest");
            }
        }
    }
}

impl Drop for BatchedEvents {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.get() {
            flusher.abort();
        }
    }
}
