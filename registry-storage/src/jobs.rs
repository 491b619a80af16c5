//! The durable job queue: work that outlives a request (garbage collection, webhook deliveries,
//! and later retention, scans and replication) kept in the metadata store, so that it survives a
//! restart and is shared by every replica of one database.
//!
//! A job is claimed with a lease: the worker renews it while the job runs (its heartbeat also
//! carries progress and log lines, and learns of a cancel); a worker that dies stops renewing, and
//! once the lease has passed another worker takes the job over (an attempt of its own). Each claim
//! has a number, and a worker whose claim was taken over is told so ([`Heartbeat::Lost`]) and its
//! result is refused: a job never has two workers at once. Failed attempts are retried with
//! exponential backoff up to the job's attempts; each kind has a limit of jobs running at once
//! across all workers.
//!
//! The rules live here as plain functions over [`Job`] ([`claim_among`], [`Job::beat`],
//! [`Job::finish`], [`Job::cancel`]); each store applies them inside its own transaction (a
//! PostgreSQL store with `FOR UPDATE SKIP LOCKED`), so every store decides alike.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub mod runner;

/// The most log text kept per job; older lines are dropped first.
pub const LOG_LIMIT: usize = 256 * 1024;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to run (first time, or for a retry at its `run_at_ms`).
    Pending,
    /// Claimed by a worker whose lease has not passed.
    Running,
    /// Finished well.
    Succeeded,
    /// Failed on its last attempt, or failed for good.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in a job's order of life.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Pending, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

    /// The status as stored and shown (`pending`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What it is (`gc`, `webhook`, …): the handler that runs it.
    pub kind: String,
    /// Its input, as JSON.
    pub payload: String,
    /// A key unique among all jobs kept: enqueueing a job whose key exists returns the existing
    /// job (a schedule's slot, an event's delivery), so enqueueing is idempotent.
    pub key: Option<String>,
    /// What started it (`manual`, `schedule`, `event`).
    pub trigger: String,
    /// Attempts before it fails for good (at least 1).
    pub max_attempts: u32,
    /// Not before this time (milliseconds since the Unix epoch; 0 for now).
    pub run_at_ms: u64,
}

impl NewJob {
    /// A job of `kind` with `payload`, run once, now.
    pub fn new(kind: &str, payload: String, trigger: &str) -> NewJob {
        NewJob { kind: kind.into(), payload, key: None, trigger: trigger.into(), max_attempts: 1, run_at_ms: 0 }
    }

    /// With this idempotency key.
    pub fn key(mut self, key: impl Into<String>) -> NewJob {
        self.key = Some(key.into());
        self
    }

    /// With this many attempts.
    pub fn attempts(mut self, attempts: u32) -> NewJob {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its number, in order of enqueueing.
    pub id: u64,
    /// What it is.
    pub kind: String,
    /// Its input, as JSON.
    pub payload: String,
    /// Its idempotency key.
    pub key: Option<String>,
    /// What started it.
    pub trigger: String,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When it was enqueued (milliseconds since the Unix epoch).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// When it may next run.
    pub run_at_ms: u64,
    /// Until when its worker holds it (while running).
    pub lease_until_ms: u64,
    /// The worker of its latest claim.
    pub worker: String,
    /// The number of its latest claim (see the module docs).
    pub claim: u64,
    /// What its handler last said of its progress (free text or JSON).
    pub progress: String,
    /// Why its latest attempt failed.
    pub error: String,
    /// Its result, when it succeeded (JSON, or empty).
    pub result: String,
    /// A cancel was asked for while it ran.
    pub cancel: bool,
    /// Its log: lines of all attempts, the newest [`LOG_LIMIT`] bytes.
    pub log: String,
}

impl Job {
    /// The stored job of `new`, numbered `id`, at `now_ms`.
    pub fn from_new(id: u64, new: &NewJob, now_ms: u64) -> Job {
        Job {
            id,
            kind: new.kind.clone(),
            payload: new.payload.clone(),
            key: new.key.clone(),
            trigger: new.trigger.clone(),
            status: JobStatus::Pending,
            attempts: 0,
            max_attempts: new.max_attempts.max(1),
            created_ms: now_ms,
            updated_ms: now_ms,
            run_at_ms: new.run_at_ms.max(now_ms),
            lease_until_ms: 0,
            worker: String::new(),
            claim: 0,
            progress: String::new(),
            error: String::new(),
            result: String::new(),
            cancel: false,
            log: String::new(),
        }
    }

    fn append_log(&mut self, lines: &[String]) {
        for line in lines {
            self.log.push_str(line.trim_end());
            self.log.push('\n');
        }
        if self.log.len() > LOG_LIMIT {
            let mut cut = self.log.len() - LOG_LIMIT;
            while !self.log.is_char_boundary(cut) {
                cut += 1;
            }
            let cut = self.log[cut..].find('\n').map_or(cut, |n| cut + n + 1);
            self.log.drain(..cut);
        }
    }

    fn is_running_at(&self, now_ms: u64) -> bool {
        self.status == JobStatus::Running && self.lease_until_ms > now_ms
    }

    /// A worker's heartbeat for claim `claim`: renews the lease to `lease_until_ms`, records
    /// progress and log lines. Changes nothing when the claim is not the job's current one.
    pub fn beat(&mut self, claim: u64, lease_until_ms: u64, now_ms: u64, update: &JobUpdate) -> Heartbeat {
        if self.status != JobStatus::Running || self.claim != claim {
            return Heartbeat::Lost;
        }
        self.lease_until_ms = lease_until_ms;
        self.updated_ms = now_ms;
        if let Some(progress) = &update.progress {
            self.progress.clone_from(progress);
        }
        self.append_log(&update.log);
        if self.cancel { Heartbeat::Cancel } else { Heartbeat::Continue }
    }

    /// The end of claim `claim`'s attempt; `false` (nothing changed) when the claim is not the
    /// job's current one (it was taken over).
    pub fn finish(&mut self, claim: u64, outcome: &JobOutcome, now_ms: u64) -> bool {
        if self.status != JobStatus::Running || self.claim != claim {
            return false;
        }
        self.updated_ms = now_ms;
        self.lease_until_ms = 0;
        self.append_log(&outcome.update.log);
        if let Some(progress) = &outcome.update.progress {
            self.progress.clone_from(progress);
        }
        match &outcome.end {
            JobEnd::Succeeded { result } => {
                self.status = JobStatus::Succeeded;
                self.result.clone_from(result);
                self.error.clear();
            }
            JobEnd::Cancelled => self.status = JobStatus::Cancelled,
            JobEnd::Failed { error, retry_at_ms } => {
                self.error.clone_from(error);
                match retry_at_ms {
                    Some(at) if self.attempts < self.max_attempts && !self.cancel => {
                        self.status = JobStatus::Pending;
                        self.run_at_ms = *at;
                    }
                    _ => self.status = JobStatus::Failed,
                }
            }
            JobEnd::Interrupted => {
                // Given back (the worker shuts down): the attempt does not count.
                self.status = JobStatus::Pending;
                self.attempts = self.attempts.saturating_sub(1);
                self.run_at_ms = now_ms;
            }
        }
        true
    }

    /// Cancels the job: a pending one at once, a running one at its worker's next heartbeat.
    /// `false` when it had already finished.
    pub fn cancel(&mut self, now_ms: u64) -> bool {
        match self.status {
            JobStatus::Pending => {
                self.status = JobStatus::Cancelled;
                self.updated_ms = now_ms;
                true
            }
            JobStatus::Running => {
                self.cancel = true;
                self.updated_ms = now_ms;
                true
            }
            _ => false,
        }
    }
}

/// A kind of job a worker runs, and how many of it may run at once across all workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindLimit {
    /// The kind.
    pub kind: String,
    /// Jobs of the kind running at once, at most.
    pub limit: usize,
}

/// Progress and log lines a worker reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// The progress now, if it changed.
    pub progress: Option<String>,
    /// Log lines since the last report.
    pub log: Vec<String>,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Go on.
    Continue,
    /// A cancel was asked for: stop and report [`JobEnd::Cancelled`].
    Cancel,
    /// The job is no longer this claim's (its lease passed and another worker took it, or it was
    /// removed): stop, and report nothing.
    Lost,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Done; its result (JSON, or empty).
    Succeeded {
        /// The result.
        result: String,
    },
    /// Failed; retried at `retry_at_ms` if attempts are left (and a retry was asked for).
    Failed {
        /// Why.
        error: String,
        /// When to retry; `None` for a failure no retry would mend.
        retry_at_ms: Option<u64>,
    },
    /// Stopped on a cancel.
    Cancelled,
    /// Given back unfinished (the worker is shutting down): pending again at once, the attempt
    /// not counted.
    Interrupted,
}

/// An attempt's end with its last progress and log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// How it ended.
    pub end: JobEnd,
    /// Its last report.
    pub update: JobUpdate,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Of this kind.
    pub kind: Option<String>,
    /// In this status.
    pub status: Option<JobStatus>,
    /// With a key starting so (a webhook policy's deliveries).
    pub key_prefix: Option<String>,
}

impl JobFilter {
    /// Jobs of `kind`.
    pub fn kind(kind: &str) -> JobFilter {
        JobFilter { kind: Some(kind.into()), ..JobFilter::default() }
    }

    /// Whether `job` is listed.
    pub fn matches(&self, job: &Job) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == job.kind)
            && self.status.is_none_or(|s| s == job.status)
            && self.key_prefix.as_ref().is_none_or(|p| job.key.as_ref().is_some_and(|k| k.starts_with(p.as_str())))
    }
}

/// How many jobs of a kind are in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCount {
    /// The kind.
    pub kind: String,
    /// The status.
    pub status: JobStatus,
    /// How many.
    pub count: u64,
}

/// Claims one job among `candidates` (jobs of the worker's kinds that are pending and due, or
/// running with a passed lease), given how many of each kind run now under live leases: among
/// the kinds under their limit, one with the smallest share of its limit in use, and of its due
/// jobs the one that has waited longest. (Oldest-first across kinds let a backlog of one kind
/// hold every other back: under a soak's webhook backlog, no collection was claimed while
/// deliveries kept one slot free.) Jobs whose lease passed after
/// their last attempt fail instead ("its worker stopped"). Returns the index of the claimed job
/// and the indices of every job changed.
pub fn claim_among(
    candidates: &mut [Job],
    running: &HashMap<String, usize>,
    kinds: &[KindLimit],
    worker: &str,
    now_ms: u64,
    lease_ms: u64,
) -> (Option<usize>, Vec<usize>) {
    let mut changed = Vec::new();
    for (i, job) in candidates.iter_mut().enumerate() {
        if job.status == JobStatus::Running && job.lease_until_ms <= now_ms && job.attempts >= job.max_attempts {
            job.status = JobStatus::Failed;
            job.error = format!("its worker ({}) stopped and no attempts are left", job.worker);
            job.updated_ms = now_ms;
            job.lease_until_ms = 0;
            changed.push(i);
        }
    }
    let limit_of = |kind: &str| kinds.iter().find(|k| k.kind == kind).map(|k| k.limit);
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            let job = &candidates[i];
            let due = (job.status == JobStatus::Pending && job.run_at_ms <= now_ms)
                || (job.status == JobStatus::Running && job.lease_until_ms <= now_ms);
            due && limit_of(&job.kind).is_some_and(|limit| running.get(&job.kind).copied().unwrap_or(0) < limit)
        })
        .collect();
    // The share of a kind's limit in use, compared as fractions (running_a / limit_a against
    // running_b / limit_b), then the oldest due.
    let share = |i: usize| {
        let kind = &candidates[i].kind;
        (running.get(kind).copied().unwrap_or(0) as u128, limit_of(kind).unwrap_or(1).max(1) as u128)
    };
    order.sort_by(|&a, &b| {
        let ((ra, la), (rb, lb)) = (share(a), share(b));
        (ra * lb)
            .cmp(&(rb * la))
            .then((candidates[a].run_at_ms, candidates[a].id).cmp(&(candidates[b].run_at_ms, candidates[b].id)))
    });
    let Some(&chosen) = order.first() else { return (None, changed) };
    let job = &mut candidates[chosen];
    job.status = JobStatus::Running;
    job.attempts += 1;
    job.claim += 1;
    job.worker = worker.to_owned();
    job.lease_until_ms = now_ms + lease_ms;
    job.updated_ms = now_ms;
    job.cancel = false;
    if !changed.contains(&chosen) {
        changed.push(chosen);
    }
    (Some(chosen), changed)
}

/// How many jobs of each kind run under live leases among `jobs`.
pub fn running_counts<'a>(jobs: impl IntoIterator<Item = &'a Job>, now_ms: u64) -> HashMap<String, usize> {
    let mut running = HashMap::new();
    for job in jobs {
        if job.is_running_at(now_ms) {
            *running.entry(job.kind.clone()).or_insert(0) += 1;
        }
    }
    running
}

/// The job queue of a metadata store (see the module docs).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job at `now_ms`: its id, and whether it is new (`false` when a job with its key
    /// exists, whose id is returned).
    async fn enqueue(&self, job: &NewJob, now_ms: u64) -> Result<(u64, bool)>;

    /// Enqueues `jobs` at `now_ms`, as [`JobQueue::enqueue`] each; stores that can write them in
    /// one transaction do (a stream consumer's batch of deliveries costs one commit, not one
    /// each). A failure may leave the first ones enqueued: keys make a retry enqueue nothing twice.
    async fn enqueue_all(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<(u64, bool)>> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(self.enqueue(job, now_ms).await?);
        }
        Ok(out)
    }

    /// Claims a job of `kinds` for `worker` until `now_ms + lease_ms` (see [`claim_among`]).
    async fn claim(&self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Result<Option<Job>>;

    /// Claims up to `max` jobs, as [`JobQueue::claim`] one after another would; stores that can
    /// claim them in one transaction do (a worker filling its free slots costs one commit, not
    /// one each). After a failure, the jobs already claimed are returned (an error only when
    /// none was).
    async fn claim_up_to(
        &self,
        kinds: &[KindLimit],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Job>> {
        let mut claimed = Vec::new();
        while claimed.len() < max {
            match self.claim(kinds, worker, now_ms, lease_ms).await {
                Ok(Some(job)) => claimed.push(job),
                Ok(None) => break,
                Err(e) if claimed.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(claimed)
    }

    /// A heartbeat of `claim` on job `id` (see [`Job::beat`]).
    async fn heartbeat(
        &self,
        id: u64,
        claim: u64,
        lease_until_ms: u64,
        now_ms: u64,
        update: &JobUpdate,
    ) -> Result<Heartbeat>;

    /// The end of an attempt (see [`Job::finish`]).
    async fn finish(&self, id: u64, claim: u64, outcome: &JobOutcome, now_ms: u64) -> Result<bool>;

    /// Cancels a job (see [`Job::cancel`]): the job after, or `None` if there is no such job.
    async fn cancel_job(&self, id: u64, now_ms: u64) -> Result<Option<Job>>;

    /// One job.
    async fn job(&self, id: u64) -> Result<Option<Job>>;

    /// The jobs `filter` matches, newest first: `limit` after skipping `offset`, and the total.
    async fn jobs(&self, filter: &JobFilter, offset: usize, limit: usize) -> Result<(Vec<Job>, u64)>;

    /// How many jobs of each kind are in each status.
    async fn job_counts(&self) -> Result<Vec<JobCount>>;

    /// Removes finished jobs last changed before `before_ms` (their keys become free); how many.
    async fn trim_jobs(&self, before_ms: u64) -> Result<u64>;

    /// Removes the oldest finished jobs of `kind` beyond its newest `keep`, at most `at_most` of
    /// them in one call (their keys become free); how many. Called until it removes fewer than
    /// `at_most`, it leaves the newest `keep`.
    async fn trim_jobs_beyond(&self, kind: &str, keep: u64, at_most: u64) -> Result<u64>;
}

/// A job queue's state held in memory: what the memory store keeps under its lock, the rules
/// applied as every store applies them.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: std::collections::BTreeMap<u64, Job>,
    keys: HashMap<String, u64>,
    last: u64,
}

impl JobTable {
    /// See [`JobQueue::enqueue`].
    pub fn enqueue(&mut self, new: &NewJob, now_ms: u64) -> (u64, bool) {
        if let Some(id) = new.key.as_ref().and_then(|k| self.keys.get(k)) {
            return (*id, false);
        }
        self.last += 1;
        let job = Job::from_new(self.last, new, now_ms);
        if let Some(key) = &job.key {
            self.keys.insert(key.clone(), job.id);
        }
        self.jobs.insert(job.id, job);
        (self.last, true)
    }

    /// See [`JobQueue::claim`].
    pub fn claim(&mut self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Option<Job> {
        let running = running_counts(self.jobs.values(), now_ms);
        let mut candidates: Vec<Job> = self
            .jobs
            .values()
            .filter(|j| matches!(j.status, JobStatus::Pending | JobStatus::Running))
            .filter(|j| kinds.iter().any(|k| k.kind == j.kind))
            .cloned()
            .collect();
        let (chosen, changed) = claim_among(&mut candidates, &running, kinds, worker, now_ms, lease_ms);
        for i in changed {
            self.jobs.insert(candidates[i].id, candidates[i].clone());
        }
        chosen.map(|i| candidates[i].clone())
    }

    /// The job `id`, to change.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    /// The job `id`.
    pub fn get(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// See [`JobQueue::jobs`].
    pub fn list(&self, filter: &JobFilter, offset: usize, limit: usize) -> (Vec<Job>, u64) {
        let matching: Vec<&Job> = self.jobs.values().rev().filter(|j| filter.matches(j)).collect();
        let total = matching.len() as u64;
        (matching.into_iter().skip(offset).take(limit).cloned().collect(), total)
    }

    /// See [`JobQueue::job_counts`].
    pub fn counts(&self) -> Vec<JobCount> {
        count_jobs(self.jobs.values().map(|j| (j.kind.as_str(), j.status)))
    }

    /// See [`JobQueue::trim_jobs`].
    pub fn trim(&mut self, before_ms: u64) -> u64 {
        let old: Vec<u64> =
            self.jobs.values().filter(|j| j.status.is_final() && j.updated_ms < before_ms).map(|j| j.id).collect();
        self.remove_all(&old)
    }

    /// See [`JobQueue::trim_jobs_beyond`].
    pub fn trim_beyond(&mut self, kind: &str, keep: u64, at_most: u64) -> u64 {
        let mut finished: Vec<(u64, u64)> = self
            .jobs
            .values()
            .filter(|j| j.kind == kind && j.status.is_final())
            .map(|j| (j.updated_ms, j.id))
            .collect();
        finished.sort_unstable();
        let excess = (finished.len() as u64).saturating_sub(keep).min(at_most) as usize;
        let old: Vec<u64> = finished[..excess].iter().map(|(_, id)| *id).collect();
        self.remove_all(&old)
    }

    fn remove_all(&mut self, ids: &[u64]) -> u64 {
        for id in ids {
            if let Some(key) = self.jobs.remove(id).and_then(|j| j.key) {
                self.keys.remove(&key);
            }
        }
        ids.len() as u64
    }
}

/// Counts of (kind, status) pairs, sorted.
pub fn count_jobs<'a>(pairs: impl IntoIterator<Item = (&'a str, JobStatus)>) -> Vec<JobCount> {
    let mut counts: std::collections::BTreeMap<(String, &'static str), (JobStatus, u64)> = Default::default();
    for (kind, status) in pairs {
        counts.entry((kind.to_owned(), status.as_str())).or_insert((status, 0)).1 += 1;
    }
    counts.into_iter().map(|((kind, _), (status, count))| JobCount { kind, status, count }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, kind: &str) -> Job {
        Job::from_new(id, &NewJob::new(kind, "{}".into(), "manual"), 1000)
    }

    fn kinds(limit: usize) -> Vec<KindLimit> {
        vec![KindLimit { kind: "gc".into(), limit }]
    }

    #[test]
    fn the_oldest_due_job_of_a_kind_under_its_limit_is_claimed() {
        let mut jobs = vec![job(2, "gc"), job(1, "gc"), job(3, "other")];
        let (chosen, changed) = claim_among(&mut jobs, &HashMap::new(), &kinds(1), "w", 1000, 500);
        assert_eq!(chosen, Some(1));
        assert_eq!(changed, vec![1]);
        assert_eq!((jobs[1].status, jobs[1].attempts, jobs[1].lease_until_ms), (JobStatus::Running, 1, 1500));
        let running = running_counts(&jobs, 1000);
        let (chosen, _) = claim_among(&mut jobs, &running, &kinds(1), "w", 1000, 500);
        assert_eq!(chosen, None, "the kind is at its limit");
    }

    #[test]
    fn a_passed_lease_is_taken_over_and_the_old_claim_is_refused() {
        let mut jobs = vec![job(1, "gc").tap_attempts(3)];
        let (chosen, _) = claim_among(&mut jobs, &HashMap::new(), &kinds(1), "a", 1000, 500);
        assert_eq!(chosen, Some(0));
        let first = jobs[0].claim;
        let running = running_counts(&jobs, 1400);
        let (chosen, _) = claim_among(&mut jobs, &running, &kinds(1), "b", 1400, 500);
        assert_eq!(chosen, None, "the lease is live");
        let running = running_counts(&jobs, 1600);
        let (chosen, _) = claim_among(&mut jobs, &running, &kinds(1), "b", 1600, 500);
        assert_eq!(chosen, Some(0));
        assert_eq!((jobs[0].worker.as_str(), jobs[0].attempts), ("b", 2));
        assert_eq!(jobs[0].beat(first, 3000, 1700, &JobUpdate::default()), Heartbeat::Lost);
        let done = JobOutcome { end: JobEnd::Succeeded { result: String::new() }, update: JobUpdate::default() };
        assert!(!jobs[0].finish(first, &done, 1700));
        let claim = jobs[0].claim;
        assert!(jobs[0].finish(claim, &done, 1700));
        assert_eq!(jobs[0].status, JobStatus::Succeeded);
    }

    #[test]
    fn failures_retry_until_the_attempts_run_out() {
        let mut j = job(1, "gc").tap_attempts(2);
        let mut jobs = vec![j.clone()];
        claim_among(&mut jobs, &HashMap::new(), &kinds(1), "a", 1000, 500);
        j = jobs[0].clone();
        let fail = |at| JobOutcome {
            end: JobEnd::Failed { error: "boom".into(), retry_at_ms: Some(at) },
            update: JobUpdate { progress: None, log: vec!["tried".into()] },
        };
        assert!(j.finish(j.claim, &fail(2000), 1100));
        assert_eq!((j.status, j.run_at_ms), (JobStatus::Pending, 2000));
        let mut jobs = vec![j];
        assert_eq!(claim_among(&mut jobs, &HashMap::new(), &kinds(1), "a", 1500, 500).0, None, "not due yet");
        assert_eq!(claim_among(&mut jobs, &HashMap::new(), &kinds(1), "a", 2000, 500).0, Some(0));
        let j = &mut jobs[0];
        assert!(j.finish(j.claim, &fail(3000), 2100));
        assert_eq!((j.status, j.error.as_str(), j.log.as_str()), (JobStatus::Failed, "boom", "tried\ntried\n"));
    }

    #[test]
    fn a_lost_worker_on_the_last_attempt_fails_the_job() {
        let mut jobs = vec![job(1, "gc")];
        claim_among(&mut jobs, &HashMap::new(), &kinds(1), "a", 1000, 500);
        let (chosen, changed) = claim_among(&mut jobs, &HashMap::new(), &kinds(1), "b", 2000, 500);
        assert_eq!((chosen, changed), (None, vec![0]));
        assert_eq!(jobs[0].status, JobStatus::Failed);
        assert!(jobs[0].error.contains("(a) stopped"), "{}", jobs[0].error);
    }

    #[test]
    fn the_log_keeps_its_newest_lines() {
        let mut j = job(1, "gc");
        let line = "x".repeat(1000);
        j.append_log(&vec![line; 300]);
        assert!(j.log.len() <= LOG_LIMIT && j.log.len() > LOG_LIMIT - 1100);
        assert!(j.log.starts_with('x'));
    }

    trait TapAttempts {
        fn tap_attempts(self, n: u32) -> Self;
    }
    impl TapAttempts for Job {
        fn tap_attempts(mut self, n: u32) -> Job {
            self.max_attempts = n;
            self
        }
    }
}
