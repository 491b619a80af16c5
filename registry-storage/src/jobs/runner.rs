//! The worker: claims jobs of the kinds it has handlers for, runs each with a heartbeat that
//! renews its lease, and records how it ended (retries with exponential backoff).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use registry_core::SharedClock;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{Heartbeat, Job, JobEnd, JobOutcome, JobQueue, JobUpdate, KindLimit, NewJob};
use crate::error::Result;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Runs the jobs of one kind.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs `job`; its result (JSON, or empty) when it succeeded. The future is dropped when
    /// the job is cancelled, taken over or the worker stops: a handler must leave nothing half
    /// done that a rerun would not mend.
    async fn run(&self, job: &Job, ctx: &JobContext) -> std::result::Result<String, JobFailure>;
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// What a person reads.
    pub message: String,
    /// Whether another attempt may succeed (a receiver down, a database restarting).
    pub retry: bool,
}

impl JobFailure {
    /// A failure another attempt may mend.
    pub fn retry(message: impl Into<String>) -> JobFailure {
        JobFailure { message: message.into(), retry: true }
    }

    /// [`JobFailure::retry`] for an error from a store or a peer, as in
    /// `.map_err(JobFailure::retrying)`.
    pub fn retrying(error: impl std::fmt::Display) -> JobFailure {
        JobFailure::retry(error.to_string())
    }

    /// A failure no retry would mend (bad input).
    pub fn fatal(message: impl Into<String>) -> JobFailure {
        JobFailure { message: message.into(), retry: false }
    }
}

/// What a running job reports through: progress and log lines, sent with the next heartbeat.
#[derive(Debug, Default)]
pub struct JobContext {
    update: Mutex<JobUpdate>,
}

impl JobContext {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobUpdate> {
        self.update.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's progress now (free text or JSON).
    pub fn progress(&self, progress: impl Into<String>) {
        self.lock().progress = Some(progress.into());
    }

    /// A line for the job's log.
    pub fn log(&self, line: impl Into<String>) {
        self.lock().log.push(line.into());
    }

    fn take(&self) -> JobUpdate {
        std::mem::take(&mut *self.lock())
    }
}

struct Kind {
    limit: KindLimit,
    handler: Arc<dyn JobHandler>,
    backoff: Duration,
    times: KindTimes,
}

/// Where the attempts of one kind spent their time, summed in microseconds.
#[derive(Default)]
struct KindTimes {
    runs: AtomicU64,
    waited: AtomicU64,
    claimed: AtomicU64,
    ran: AtomicU64,
    recorded: AtomicU64,
}

impl KindTimes {
    fn add(&self, claim: &Claimed, ran: Duration, recorded: Duration) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.waited.fetch_add(micros(claim.waited), Ordering::Relaxed);
        self.claimed.fetch_add(micros(claim.took), Ordering::Relaxed);
        self.ran.fetch_add(micros(ran), Ordering::Relaxed);
        self.recorded.fetch_add(micros(recorded), Ordering::Relaxed);
    }
}

/// A claimed job and what its claim cost.
struct Claimed {
    job: Job,
    /// From when it was due to its claim.
    waited: Duration,
    /// The claim's own time (the store's transaction).
    took: Duration,
}

/// Where the attempts of one kind that this runner ran spent their time, summed since it
/// started (`/metrics` shows them; a mean is a sum over `runs`). An attempt is counted once it
/// has ended and its end was recorded (or failed to be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTimes {
    /// The kind.
    pub kind: String,
    /// Attempts ended.
    pub runs: u64,
    /// From when each job was due to when this runner claimed it (by the runner's clock): time
    /// spent waiting in the queue.
    pub waited: Duration,
    /// In the claim itself (the store's transaction that took the job).
    pub claimed: Duration,
    /// In the handler (the work itself, with its heartbeats).
    pub ran: Duration,
    /// Recording the end in the queue.
    pub recorded: Duration,
}

/// Runs jobs from a queue (see the module docs). Build it with its handlers, then
/// [`JobRunner::start`] it.
pub struct JobRunner {
    queue: Arc<dyn JobQueue>,
    clock: SharedClock,
    worker: String,
    kinds: Vec<Kind>,
    lease: Duration,
    poll: Duration,
    wake: Notify,
    finished: Notify,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.limit.kind.as_str()).collect();
        f.debug_struct("JobRunner").field("worker", &self.worker).field("kinds", &kinds).finish_non_exhaustive()
    }
}

impl JobRunner {
    /// A runner of no kinds yet, named `worker` (shown in job records: a host and process).
    pub fn new(queue: Arc<dyn JobQueue>, clock: SharedClock, worker: impl Into<String>) -> JobRunner {
        JobRunner {
            queue,
            clock,
            worker: worker.into(),
            kinds: Vec::new(),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            wake: Notify::new(),
            finished: Notify::new(),
        }
    }

    /// Runs jobs of `kind` with `handler`, at most `limit` at once across all workers, retrying
    /// after `backoff`, doubled at each further attempt.
    pub fn handle(mut self, kind: &str, limit: usize, backoff: Duration, handler: Arc<dyn JobHandler>) -> JobRunner {
        let limit = KindLimit { kind: kind.into(), limit: limit.max(1) };
        self.kinds.push(Kind { limit, handler, backoff, times: KindTimes::default() });
        self
    }

    /// How long a claim lasts without a heartbeat (default 30 s; heartbeats come at a third).
    pub fn with_lease(mut self, lease: Duration) -> JobRunner {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How often the queue is polled for jobs enqueued elsewhere (default 1 s).
    pub fn with_poll(mut self, poll: Duration) -> JobRunner {
        self.poll = poll;
        self
    }

    /// Where the attempts of each kind spent their time (see [`JobTimes`]).
    pub fn times(&self) -> Vec<JobTimes> {
        let micros = |a: &AtomicU64| Duration::from_micros(a.load(Ordering::Relaxed));
        self.kinds
            .iter()
            .map(|k| JobTimes {
                kind: k.limit.kind.clone(),
                runs: k.times.runs.load(Ordering::Relaxed),
                waited: micros(&k.times.waited),
                claimed: micros(&k.times.claimed),
                ran: micros(&k.times.ran),
                recorded: micros(&k.times.recorded),
            })
            .collect()
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Enqueues a job and wakes the worker.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(u64, bool)> {
        let enqueued = self.queue.enqueue(job, self.clock.now_millis()).await?;
        self.wake.notify_one();
        Ok(enqueued)
    }

    /// Enqueues `jobs` (in one transaction where the store can) and wakes the workers.
    pub async fn enqueue_all(&self, jobs: &[NewJob]) -> Result<Vec<(u64, bool)>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let enqueued = self.queue.enqueue_all(jobs, self.clock.now_millis()).await?;
        self.wake.notify_one();
        Ok(enqueued)
    }

    /// Enqueues `job(period)` once per `every` (the first after `first_after`) until the returned
    /// task is aborted. The period number (the clock's time divided by `every`) belongs in the
    /// job's key: replicas sharing the queue then enqueue each period's job once. A period whose
    /// previous run of the kind is still pending or running is skipped: runs slower than the
    /// period would otherwise pile up without end (a soak found 78 collections waiting).
    pub fn schedule(
        self: &Arc<Self>,
        every: Duration,
        first_after: Duration,
        job: impl Fn(u64) -> NewJob + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first_after, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let period = this.clock.now_millis() / (every.as_millis().max(1) as u64);
                let job = job(period);
                match this.unfinished(&job.kind).await {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::info!(kind = %job.kind, "the previous scheduled run has not finished: this period's is skipped");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(kind = %job.kind, error = %e, "reading the queue before a scheduled job failed")
                    }
                }
                if let Err(e) = this.enqueue(&job).await {
                    tracing::warn!(kind = %job.kind, error = %e, "enqueueing a scheduled job failed");
                }
            }
        })
    }

    /// Whether a job of `kind` is pending or running.
    async fn unfinished(&self, kind: &str) -> Result<bool> {
        for status in [super::JobStatus::Pending, super::JobStatus::Running] {
            let filter = super::JobFilter { kind: Some(kind.into()), status: Some(status), key_prefix: None };
            if !self.queue.jobs(&filter, 0, 1).await?.0.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The job once it has finished (run here or by another worker).
    pub async fn wait(&self, id: u64) -> Result<Option<Job>> {
        loop {
            let finished = self.finished.notified();
            match self.queue.job(id).await? {
                Some(job) if !job.status.is_final() => {}
                other => return Ok(other),
            }
            let _ = tokio::time::timeout(self.poll, finished).await;
        }
    }

    /// Starts working until [`RunnerHandle::stop`].
    pub fn start(self: Arc<Self>) -> RunnerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.work(stopped));
        RunnerHandle { stop, task }
    }

    fn limits(&self) -> Vec<KindLimit> {
        self.kinds.iter().map(|k| k.limit.clone()).collect()
    }

    /// Claims up to `max` due jobs (one transaction where the store can).
    async fn claim(&self, limits: &[KindLimit], max: usize) -> Result<Vec<Claimed>> {
        let (now, began) = (self.clock.now_millis(), Instant::now());
        let jobs = self.queue.claim_up_to(limits, &self.worker, now, self.lease.as_millis() as u64, max).await?;
        let took = began.elapsed();
        Ok(jobs
            .into_iter()
            .map(|job| Claimed { waited: Duration::from_millis(now.saturating_sub(job.run_at_ms)), took, job })
            .collect())
    }

    async fn work(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let limits: Arc<[KindLimit]> = self.limits().into();
        let capacity: usize = limits.iter().map(|k| k.limit).sum();
        let mut running = JoinSet::new();
        loop {
            // The free slots are filled by one claim of as many jobs (one commit where the
            // store can), again while it filled them all.
            while running.len() < capacity {
                let free = capacity - running.len();
                match self.claim(&limits, free).await {
                    Ok(jobs) => {
                        let all = jobs.len() == free;
                        for claimed in jobs {
                            running.spawn(self.clone().slot(claimed, limits.clone(), stopped.clone()));
                        }
                        if !all {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                Some(()) = stop_asked(&mut stopped) => break,
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// One of the worker's slots: runs `claimed`, then claims the next due job itself while
    /// there is one, and ends when there is none (the worker's loop fills free slots again when
    /// woken). Why: with every claim made by the worker's one loop, slots freed one after another
    /// waited for each other's claims, a store round trip each; a soak's eight delivery slots ran
    /// 2 ms each and finished in 10 ms, yet completed only one delivery per 70 ms.
    async fn slot(self: Arc<Self>, mut claimed: Claimed, limits: Arc<[KindLimit]>, stopped: watch::Receiver<bool>) {
        loop {
            self.run_one(claimed, stopped.clone()).await;
            if *stopped.borrow() {
                return;
            }
            claimed = match self.claim(&limits, 1).await {
                Ok(mut jobs) => match jobs.pop() {
                    Some(next) => next,
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed");
                    return;
                }
            };
        }
    }

    async fn run_one(&self, claimed: Claimed, mut stopped: watch::Receiver<bool>) {
        let job = &claimed.job;
        let Some(kind) = self.kinds.iter().find(|k| k.limit.kind == job.kind) else { return };
        let ctx = JobContext::default();
        let beat_every = self.lease / 3;
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + beat_every, beat_every);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let run = kind.handler.run(job, &ctx);
        tokio::pin!(run);
        let end = loop {
            tokio::select! {
                out = &mut run => break Some(match out {
                    Ok(result) => JobEnd::Succeeded { result },
                    Err(failure) => {
                        let retry_at_ms = failure.retry.then(|| self.retry_at(kind.backoff, job.attempts));
                        JobEnd::Failed { error: failure.message, retry_at_ms }
                    }
                }),
                _ = beats.tick() => {
                    let now = self.clock.now_millis();
                    let lease_until = now + self.lease.as_millis() as u64;
                    match self.queue.heartbeat(job.id, job.claim, lease_until, now, &ctx.take()).await {
                        Ok(Heartbeat::Continue) => {}
                        Ok(Heartbeat::Cancel) => break Some(JobEnd::Cancelled),
                        Ok(Heartbeat::Lost) => break None,
                        Err(e) => tracing::warn!(job = job.id, error = %e, "a job's heartbeat failed"),
                    }
                }
                // (A dropped sender is an abort, not a stop: the job is left to its lease.)
                Some(()) = stop_asked(&mut stopped) => break Some(JobEnd::Interrupted),
            }
        };
        let ran = started.elapsed();
        if let Some(end) = end {
            let outcome = JobOutcome { end, update: ctx.take() };
            let recording = Instant::now();
            if let Err(e) = self.queue.finish(job.id, job.claim, &outcome, self.clock.now_millis()).await {
                tracing::warn!(job = job.id, error = %e, "recording a job's end failed; it is retried after its lease");
            }
            kind.times.add(&claimed, ran, recording.elapsed());
        } else {
            tracing::info!(job = job.id, "job taken over by another worker; this attempt stops");
        }
        self.finished.notify_waiters();
    }

    fn retry_at(&self, backoff: Duration, attempts: u32) -> u64 {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let wait = backoff.saturating_mul(factor).min(MAX_BACKOFF);
        self.clock.now_millis() + wait.as_millis() as u64
    }
}

/// Resolves once a stop is asked for; `None` when the handle was dropped without one (an abort).
async fn stop_asked(stopped: &mut watch::Receiver<bool>) -> Option<()> {
    stopped.wait_for(|stop| *stop).await.ok().map(|_| ())
}

/// A started [`JobRunner`].
#[derive(Debug)]
pub struct RunnerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunnerHandle {
    /// Stops claiming, gives running jobs back to the queue (pending again, the attempt not
    /// counted) and returns once they are.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops at once without giving jobs back (as a killed process would): their leases pass and
    /// other workers take them over. For tests of takeover.
    pub fn abort(self) {
        self.task.abort();
    }
}
