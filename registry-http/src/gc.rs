//! Garbage collection in the server: runs on a schedule (the `[gc]` configuration) or on request
//! through the management API, one at a time, and keeps the reports of recent runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_storage::{GcOptions, GcReport, Registry};
use serde::Serialize;

/// Runs kept in the history.
const HISTORY: usize = 50;

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Through the management API.
    Manual,
    /// By the server's schedule.
    Schedule,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// In progress.
    Running,
    /// Finished.
    Success,
    /// Failed (see the error).
    Error,
}

/// One run, as the management API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GcRun {
    /// The run's number.
    pub id: u64,
    /// How it was started.
    pub trigger: Trigger,
    /// Where it is.
    pub status: Status,
    /// What it was asked to do.
    pub options: GcOptions,
    /// What it freed: so far while it runs, in total once finished.
    pub report: Option<GcReport>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started, in seconds since the Unix epoch.
    pub created: u64,
}

/// A collection is already running.
#[derive(Debug, thiserror::Error)]
#[error("a garbage collection is already running")]
pub struct AlreadyRunning;

#[derive(Default)]
struct State {
    next_id: u64,
    running: bool,
    runs: VecDeque<GcRun>,
}

/// Runs garbage collection for a server and remembers the results.
pub struct GarbageCollector {
    registry: Registry,
    defaults: GcOptions,
    interval: Option<Duration>,
    state: Mutex<State>,
}

impl std::fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector").field("defaults", &self.defaults).finish_non_exhaustive()
    }
}

impl GarbageCollector {
    /// A collector for `registry`; `defaults` give the grace period and upload expiry of runs.
    pub fn new(registry: Registry, defaults: GcOptions) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector { registry, defaults, interval: None, state: Mutex::default() })
    }

    /// A collector that will run every `interval` once [`GarbageCollector::schedule`]d.
    pub fn with_interval(registry: Registry, defaults: GcOptions, interval: Duration) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector { registry, defaults, interval: Some(interval), state: Mutex::default() })
    }

    /// The interval of scheduled runs, if any.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The options runs use unless told otherwise.
    pub fn defaults(&self) -> &GcOptions {
        &self.defaults
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn begin(&self, options: &GcOptions, trigger: Trigger) -> Result<u64, AlreadyRunning> {
        let mut state = self.state();
        if state.running {
            return Err(AlreadyRunning);
        }
        state.running = true;
        state.next_id += 1;
        let id = state.next_id;
        let created = registry_core::time::now_secs();
        state.runs.push_front(GcRun {
            id,
            trigger,
            status: Status::Running,
            options: options.clone(),
            report: None,
            error: None,
            created,
        });
        state.runs.truncate(HISTORY);
        Ok(id)
    }

    /// Runs the collection `id`, its report visible as it progresses.
    async fn collect(&self, id: u64, options: &GcOptions) -> registry_storage::Result<GcReport> {
        let progress = |report: &GcReport| {
            if let Some(run) = self.state().runs.iter_mut().find(|r| r.id == id) {
                run.report = Some(report.clone());
            }
        };
        let result = self.registry.collect_garbage_with_progress(options, &progress).await;
        match &result {
            Err(registry_storage::Error::JobRunning { .. }) => {
                tracing::info!("garbage collection skipped: another replica is collecting")
            }
            Err(e) => tracing::error!(error = %e, "garbage collection failed"),
            Ok(_) => {}
        }
        self.end(id, &result);
        result
    }

    fn end(&self, id: u64, result: &registry_storage::Result<GcReport>) {
        let mut state = self.state();
        state.running = false;
        // A scheduled run another replica was already doing is not this replica's history.
        if let Err(registry_storage::Error::JobRunning { .. }) = result
            && state.runs.iter().any(|r| r.id == id && r.trigger == Trigger::Schedule)
        {
            state.runs.retain(|r| r.id != id);
            return;
        }
        if let Some(run) = state.runs.iter_mut().find(|r| r.id == id) {
            match result {
                Ok(report) => {
                    run.status = Status::Success;
                    run.report = Some(report.clone());
                }
                Err(e) => {
                    run.status = Status::Error;
                    run.error = Some(e.to_string());
                }
            }
        }
    }

    /// Runs a collection now and waits for it.
    pub async fn run(&self, options: &GcOptions, trigger: Trigger) -> Result<GcReport, RunError> {
        let id = self.begin(options, trigger)?;
        Ok(self.collect(id, options).await?)
    }

    /// Starts a collection in the background; its id.
    pub fn start(self: &Arc<Self>, options: GcOptions, trigger: Trigger) -> Result<u64, AlreadyRunning> {
        let id = self.begin(&options, trigger)?;
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.collect(id, &options).await;
        });
        Ok(id)
    }

    /// The recent runs, newest first.
    pub fn runs(&self) -> Vec<GcRun> {
        self.state().runs.iter().cloned().collect()
    }

    /// Runs a collection every [`GarbageCollector::interval`] with the default options, until
    /// the returned task is aborted (the server does at shutdown); `None` without an interval. A
    /// run still in progress when the next is due is not doubled.
    pub fn schedule(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.interval.filter(|i| !i.is_zero())?;
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match this.run(&this.defaults, Trigger::Schedule).await {
                    Ok(_) | Err(RunError::AlreadyRunning(_)) => {}
                    Err(RunError::Failed(_)) => {} // logged by `run`
                }
            }
        }))
    }
}

/// Why [`GarbageCollector::run`] returned no report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run was in progress.
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    /// The run failed.
    #[error(transparent)]
    Failed(#[from] registry_storage::Error),
}
