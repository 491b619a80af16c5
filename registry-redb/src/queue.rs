//! The job queue and the policies in the database. redb has one writer at a time, so a claim
//! (read the candidates, apply `registry_storage::jobs::claim_among`, write back) is atomic
//! without further locking.
//!
//! ```text
//! jobs           u64 id -> JSON job
//! jobs_due       (kind, run at ms, id) -> ()   pending jobs, by kind in the order they are due
//! jobs_running   u64 id -> ()                  running jobs (leases live or passed)
//! jobs_finished_by_kind  (kind, updated ms, id) -> ()  succeeded, failed and cancelled jobs,
//!                                                     by kind, oldest first
//! job_counts     (kind, status) -> jobs        what `/metrics` shows
//! job_keys       idempotency key -> id
//! policies       u64 id -> JSON policy
//! sequences      "jobs" | "policies" -> last id given
//! ```
//!
//! Every job's write moves its entries in the three indexes and the counts in the same
//! transaction (`save`), so nothing here reads more than it returns: a claim reads the running
//! jobs (at most the kinds' limits, plus leases that passed) and the first due job of each
//! kind under its limit, whatever the backlog; the counts are one row per kind and status; a
//! trim reads only what it removes. (Until layout version 6 a claim decoded every pending job,
//! and `/metrics` and the trim every job kept: under a webhook backlog and a month of finished
//! deliveries, each took longer than the last. Until version 7 the finished jobs were indexed
//! by time alone, so the newest of a kind could not be kept without reading every kind's.)

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_core::BackendError;
use registry_core::event::Event;
use registry_storage::jobs::{
    Heartbeat, Job, JobCount, JobFilter, JobOutcome, JobQueue, JobStatus, JobUpdate, KindLimit, NewJob, claim_among,
    running_counts,
};
use registry_storage::policies::{PolicyRecord, PolicyStore, not_found};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RedbStore;
use crate::handle::db_err;

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// The index of layout versions before 6 (pending and running ids), replaced by the three below.
const ACTIVE: TableDefinition<u64, ()> = TableDefinition::new("jobs_active");
const DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("jobs_due");
const RUNNING: TableDefinition<u64, ()> = TableDefinition::new("jobs_running");
/// The index of layout versions before 7 (finished jobs by time), replaced by [`FINISHED`].
const FINISHED_BY_TIME: TableDefinition<(u64, u64), ()> = TableDefinition::new("jobs_finished");
const FINISHED: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("jobs_finished_by_kind");
const COUNTS: TableDefinition<(&str, &str), u64> = TableDefinition::new("job_counts");
const KEYS: TableDefinition<&str, u64> = TableDefinition::new("job_keys");
const POLICIES: TableDefinition<u64, &[u8]> = TableDefinition::new("policies");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");

type Result<T, E = registry_storage::Error> = std::result::Result<T, E>;

fn err(e: impl Into<redb::Error>) -> registry_storage::Error {
    db_err(e)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| registry_storage::Error::Backend(BackendError::permanent("encoding a queue record", e)))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| registry_storage::Error::Corrupt {
        what: "a job or policy record".into(),
        source: Some(Box::new(e)),
    })
}

/// Creates the tables; from a layout before version 6, indexes the jobs kept (and drops the
/// old index).
pub(crate) fn prepare(txn: &redb::WriteTransaction, version: u64) -> Result<()> {
    txn.open_table(JOBS).map_err(err)?;
    txn.open_table(DUE).map_err(err)?;
    txn.open_table(RUNNING).map_err(err)?;
    txn.open_table(FINISHED).map_err(err)?;
    txn.open_table(COUNTS).map_err(err)?;
    txn.open_table(KEYS).map_err(err)?;
    txn.open_table(POLICIES).map_err(err)?;
    txn.open_table(SEQUENCES).map_err(err)?;
    if version < 6 {
        let jobs: Vec<Job> = {
            let table = txn.open_table(JOBS).map_err(err)?;
            let rows = table.iter().map_err(err)?.map(|item| decode(item.map_err(err)?.1.value()));
            rows.collect::<Result<_>>()?
        };
        for job in &jobs {
            index(txn, job)?;
        }
        txn.delete_table(ACTIVE).map_err(err)?;
    }
    if version < 7 {
        let ids: Vec<u64> = {
            let table = txn.open_table(FINISHED_BY_TIME).map_err(err)?;
            let rows = table.iter().map_err(err)?;
            rows.map(|item| Ok(item.map_err(err)?.0.value().1)).collect::<Result<_>>()?
        };
        let mut finished = txn.open_table(FINISHED).map_err(err)?;
        for id in ids {
            if let Some(job) = load(txn, id)? {
                finished.insert((job.kind.as_str(), job.updated_ms, job.id), ()).map_err(err)?;
            }
        }
        drop(finished);
        txn.delete_table(FINISHED_BY_TIME).map_err(err)?;
    }
    Ok(())
}

fn next_id(txn: &redb::WriteTransaction, sequence: &str) -> Result<u64> {
    let mut table = txn.open_table(SEQUENCES).map_err(err)?;
    let next = table.get(sequence).map_err(err)?.map_or(0, |v| v.value()) + 1;
    table.insert(sequence, next).map_err(err)?;
    Ok(next)
}

fn load(txn: &redb::WriteTransaction, id: u64) -> Result<Option<Job>> {
    let table = txn.open_table(JOBS).map_err(err)?;
    let job = table.get(id).map_err(err)?;
    job.map(|v| decode(v.value())).transpose()
}

/// The ids of the jobs `filter` can match, newest first, when it asks for pending or running
/// ones (read from their indexes); `None` when every job must be read.
fn unfinished_ids(txn: &redb::ReadTransaction, filter: &JobFilter) -> Result<Option<Vec<u64>>> {
    let mut ids: Vec<u64> = match filter.status {
        Some(JobStatus::Pending) => {
            let due = txn.open_table(DUE).map_err(err)?;
            let rows = match &filter.kind {
                Some(kind) => due.range((kind.as_str(), 0, 0)..=(kind.as_str(), u64::MAX, u64::MAX)).map_err(err)?,
                None => due.iter().map_err(err)?,
            };
            rows.map(|item| Ok(item.map_err(err)?.0.value().2)).collect::<Result<_>>()?
        }
        Some(JobStatus::Running) => {
            let running = txn.open_table(RUNNING).map_err(err)?;
            let rows = running.iter().map_err(err)?;
            rows.map(|item| Ok(item.map_err(err)?.0.value())).collect::<Result<_>>()?
        }
        _ => return Ok(None),
    };
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Some(ids))
}

/// Writes `job`, moving its index entries and counts from what `was` (its stored version, if
/// any) had.
fn save(txn: &redb::WriteTransaction, was: Option<&Job>, job: &Job) -> Result<()> {
    txn.open_table(JOBS).map_err(err)?.insert(job.id, encode(job)?.as_slice()).map_err(err)?;
    if let Some(was) = was {
        unindex(txn, was)?;
    }
    index(txn, job)
}

/// Adds `job`'s entry to the index of its status, and to the counts.
fn index(txn: &redb::WriteTransaction, job: &Job) -> Result<()> {
    match job.status {
        JobStatus::Pending => {
            txn.open_table(DUE).map_err(err)?.insert((job.kind.as_str(), job.run_at_ms, job.id), ()).map_err(err)?;
        }
        JobStatus::Running => {
            txn.open_table(RUNNING).map_err(err)?.insert(job.id, ()).map_err(err)?;
        }
        _ => {
            txn.open_table(FINISHED)
                .map_err(err)?
                .insert((job.kind.as_str(), job.updated_ms, job.id), ())
                .map_err(err)?;
        }
    }
    count(txn, job, 1)
}

/// Removes `job`'s entry from the index of its status, and from the counts.
fn unindex(txn: &redb::WriteTransaction, job: &Job) -> Result<()> {
    match job.status {
        JobStatus::Pending => {
            txn.open_table(DUE).map_err(err)?.remove((job.kind.as_str(), job.run_at_ms, job.id)).map_err(err)?;
        }
        JobStatus::Running => {
            txn.open_table(RUNNING).map_err(err)?.remove(job.id).map_err(err)?;
        }
        _ => {
            txn.open_table(FINISHED).map_err(err)?.remove((job.kind.as_str(), job.updated_ms, job.id)).map_err(err)?;
        }
    }
    count(txn, job, -1)
}

/// Moves the count of `job`'s kind and status by `by` (a row at zero is removed).
fn count(txn: &redb::WriteTransaction, job: &Job, by: i64) -> Result<()> {
    let mut counts = txn.open_table(COUNTS).map_err(err)?;
    let key = (job.kind.as_str(), job.status.as_str());
    let now = counts.get(key).map_err(err)?.map_or(0, |v| v.value());
    match now.saturating_add_signed(by) {
        0 => counts.remove(key).map_err(err)?,
        n => counts.insert(key, n).map_err(err)?,
    };
    Ok(())
}

impl RedbStore {
    /// Changes job `id` with `change` in one transaction; `None` when there is no such job.
    async fn change_job<T: Send + 'static>(
        &self,
        id: u64,
        change: impl FnOnce(&mut Job) -> T + Send + 'static,
    ) -> Result<Option<(T, Job)>> {
        self.db
            .write(move |txn| {
                let Some(mut job) = load(txn, id)? else { return Ok(None) };
                let was = job.clone();
                let out = change(&mut job);
                save(txn, Some(&was), &job)?;
                Ok(Some((out, job)))
            })
            .await
    }
}

/// Enqueues `new` in `txn`: its id, and whether it is new (a job with its key may exist).
fn enqueue_in(txn: &redb::WriteTransaction, new: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
    if let Some(key) = &new.key
        && let Some(id) = txn.open_table(KEYS).map_err(err)?.get(key.as_str()).map_err(err)?
    {
        return Ok((id.value(), false));
    }
    let job = Job::from_new(next_id(txn, "jobs")?, new, now_ms);
    if let Some(key) = &job.key {
        txn.open_table(KEYS).map_err(err)?.insert(key.as_str(), job.id).map_err(err)?;
    }
    save(txn, None, &job)?;
    Ok((job.id, true))
}

/// Claims a job in `txn` (see `registry_storage::jobs::claim_among`).
fn claim_in(
    txn: &redb::WriteTransaction,
    kinds: &[KindLimit],
    worker: &str,
    now_ms: u64,
    lease_ms: u64,
) -> Result<Option<Job>> {
    // The running jobs (few: the kinds' limits, and leases that passed), then the
    // first due job of each kind under its limit: among those the oldest due wins,
    // as among all of them.
    let ids: Vec<u64> = {
        let running = txn.open_table(RUNNING).map_err(err)?;
        let rows = running.iter().map_err(err)?.map(|item| Ok(item.map_err(err)?.0.value()));
        rows.collect::<Result<_>>()?
    };
    let mut running_jobs = Vec::with_capacity(ids.len());
    for id in ids {
        running_jobs.extend(load(txn, id)?);
    }
    let running = running_counts(&running_jobs, now_ms);
    let mut candidates: Vec<Job> =
        running_jobs.into_iter().filter(|j| kinds.iter().any(|k| k.kind == j.kind)).collect();
    for kind in kinds {
        if running.get(&kind.kind).copied().unwrap_or(0) >= kind.limit {
            continue;
        }
        let first = {
            let due = txn.open_table(DUE).map_err(err)?;
            let mut range =
                due.range((kind.kind.as_str(), 0, 0)..=(kind.kind.as_str(), now_ms, u64::MAX)).map_err(err)?;
            range.next().transpose().map_err(err)?.map(|(k, _)| k.value().2)
        };
        if let Some(id) = first {
            candidates.extend(load(txn, id)?);
        }
    }
    let before = candidates.clone();
    let (chosen, changed) = claim_among(&mut candidates, &running, kinds, worker, now_ms, lease_ms);
    for i in changed {
        save(txn, Some(&before[i]), &candidates[i])?;
    }
    Ok(chosen.map(|i| candidates[i].clone()))
}

#[async_trait]
impl JobQueue for RedbStore {
    async fn enqueue(&self, new: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
        let new = new.clone();
        self.db.write(move |txn| enqueue_in(txn, &new, now_ms)).await
    }

    async fn enqueue_all(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<(u64, bool)>> {
        let jobs = jobs.to_vec();
        self.db.write(move |txn| jobs.iter().map(|new| enqueue_in(txn, new, now_ms)).collect()).await
    }

    async fn claim(&self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Result<Option<Job>> {
        let (kinds, worker) = (kinds.to_vec(), worker.to_owned());
        self.db.write(move |txn| claim_in(txn, &kinds, &worker, now_ms, lease_ms)).await
    }

    async fn claim_up_to(
        &self,
        kinds: &[KindLimit],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Job>> {
        let (kinds, worker) = (kinds.to_vec(), worker.to_owned());
        self.db
            .write(move |txn| {
                let mut claimed = Vec::new();
                while claimed.len() < max {
                    match claim_in(txn, &kinds, &worker, now_ms, lease_ms)? {
                        Some(job) => claimed.push(job),
                        None => break,
                    }
                }
                Ok(claimed)
            })
            .await
    }

    async fn heartbeat(
        &self,
        id: u64,
        claim: u64,
        lease_until_ms: u64,
        now_ms: u64,
        update: &JobUpdate,
    ) -> Result<Heartbeat> {
        let update = update.clone();
        let beat = self.change_job(id, move |job| job.beat(claim, lease_until_ms, now_ms, &update)).await?;
        Ok(beat.map_or(Heartbeat::Lost, |(beat, _)| beat))
    }

    async fn finish(&self, id: u64, claim: u64, outcome: &JobOutcome, now_ms: u64) -> Result<bool> {
        let outcome = outcome.clone();
        Ok(self.change_job(id, move |job| job.finish(claim, &outcome, now_ms)).await?.is_some_and(|(done, _)| done))
    }

    async fn cancel_job(&self, id: u64, now_ms: u64) -> Result<Option<Job>> {
        Ok(self.change_job(id, move |job| job.cancel(now_ms)).await?.map(|(_, job)| job))
    }

    async fn job(&self, id: u64) -> Result<Option<Job>> {
        self.db
            .read(move |txn| {
                let table = txn.open_table(JOBS).map_err(err)?;
                let job = table.get(id).map_err(err)?;
                job.map(|v| decode(v.value())).transpose()
            })
            .await
    }

    async fn jobs(&self, filter: &JobFilter, offset: usize, limit: usize) -> Result<(Vec<Job>, u64)> {
        let filter = filter.clone();
        self.db
            .read(move |txn| {
                let (mut page, mut total) = (Vec::new(), 0u64);
                let mut take = |job: Job| {
                    if filter.matches(&job) {
                        if total >= offset as u64 && page.len() < limit {
                            page.push(job);
                        }
                        total += 1;
                    }
                };
                // Pending and running jobs are read through their indexes (a few, or a backlog),
                // never through every job kept: a scheduled job asks whether its last run is
                // pending or running, and under an hour's soak the full read of a million
                // finished deliveries took a third of the server's CPU.
                let table = txn.open_table(JOBS).map_err(err)?;
                if let Some(ids) = unfinished_ids(txn, &filter)? {
                    for id in ids {
                        if let Some(job) = table.get(id).map_err(err)? {
                            take(decode(job.value())?);
                        }
                    }
                } else {
                    for item in table.iter().map_err(err)?.rev() {
                        take(decode(item.map_err(err)?.1.value())?);
                    }
                }
                Ok((page, total))
            })
            .await
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>> {
        self.db
            .read(move |txn| {
                let table = txn.open_table(COUNTS).map_err(err)?;
                let mut counts = Vec::new();
                for item in table.iter().map_err(err)? {
                    let (key, count) = item.map_err(err)?;
                    let (kind, status) = key.value();
                    let status = JobStatus::parse(status).ok_or_else(|| registry_storage::Error::Corrupt {
                        what: format!("a job count of status {status:?}"),
                        source: None,
                    })?;
                    counts.push(JobCount { kind: kind.to_owned(), status, count: count.value() });
                }
                Ok(counts)
            })
            .await
    }

    async fn trim_jobs(&self, before_ms: u64) -> Result<u64> {
        self.db
            .write(move |txn| {
                let mut removed = 0;
                for kind in kinds(txn)? {
                    let ids: Vec<u64> = {
                        let finished = txn.open_table(FINISHED).map_err(err)?;
                        let rows = finished.range((kind.as_str(), 0, 0)..(kind.as_str(), before_ms, 0)).map_err(err)?;
                        rows.map(|item| Ok(item.map_err(err)?.0.value().2)).collect::<Result<_>>()?
                    };
                    removed += remove_jobs(txn, &ids)?;
                }
                Ok(removed)
            })
            .await
    }

    async fn trim_jobs_beyond(&self, kind: &str, keep: u64, at_most: u64) -> Result<u64> {
        let kind = kind.to_owned();
        self.db
            .write(move |txn| {
                let finished_count: u64 = {
                    let counts = txn.open_table(COUNTS).map_err(err)?;
                    let mut sum = 0;
                    for status in JobStatus::ALL.into_iter().filter(|s| s.is_final()) {
                        sum += counts.get((kind.as_str(), status.as_str())).map_err(err)?.map_or(0, |v| v.value());
                    }
                    sum
                };
                let excess = finished_count.saturating_sub(keep).min(at_most);
                let ids: Vec<u64> = {
                    let finished = txn.open_table(FINISHED).map_err(err)?;
                    let rows =
                        finished.range((kind.as_str(), 0, 0)..=(kind.as_str(), u64::MAX, u64::MAX)).map_err(err)?;
                    let ids = rows.take(usize::try_from(excess).unwrap_or(usize::MAX));
                    ids.map(|item| Ok(item.map_err(err)?.0.value().2)).collect::<Result<_>>()?
                };
                remove_jobs(txn, &ids)
            })
            .await
    }
}

/// The kinds that have any job (from the counts).
fn kinds(txn: &redb::WriteTransaction) -> Result<Vec<String>> {
    let counts = txn.open_table(COUNTS).map_err(err)?;
    let mut kinds: Vec<String> = Vec::new();
    for item in counts.iter().map_err(err)? {
        let (key, _) = item.map_err(err)?;
        let kind = key.value().0;
        if kinds.last().map(String::as_str) != Some(kind) {
            kinds.push(kind.to_owned());
        }
    }
    Ok(kinds)
}

/// Removes the jobs `ids` with their index entries, counts and keys; how many there were.
fn remove_jobs(txn: &redb::WriteTransaction, ids: &[u64]) -> Result<u64> {
    let mut removed = 0;
    for id in ids {
        let Some(job) = load(txn, *id)? else { continue };
        unindex(txn, &job)?;
        txn.open_table(JOBS).map_err(err)?.remove(*id).map_err(err)?;
        if let Some(key) = &job.key {
            txn.open_table(KEYS).map_err(err)?.remove(key.as_str()).map_err(err)?;
        }
        removed += 1;
    }
    Ok(removed)
}

fn all_policies(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<PolicyRecord>> {
    let mut out = Vec::new();
    for item in table.iter().map_err(err)? {
        out.push(decode(item.map_err(err)?.1.value())?);
    }
    Ok(out)
}

#[async_trait]
impl PolicyStore for RedbStore {
    async fn put_policy(&self, policy: &PolicyRecord, events: &[Event]) -> Result<u64> {
        let (policy, events) = (policy.clone(), events.to_vec());
        let now = self.clock.now_millis();
        self.db
            .write(move |txn| {
                let existing = all_policies(&txn.open_table(POLICIES).map_err(err)?)?;
                let mut record = policy.clone();
                if policy.id == 0 {
                    record.id = next_id(txn, "policies")?;
                    record.created_ms = now;
                } else {
                    let old = existing
                        .iter()
                        .find(|p| p.id == policy.id && p.kind == policy.kind)
                        .ok_or_else(|| not_found(&policy.kind, policy.id))?;
                    record.created_ms = old.created_ms;
                }
                if existing.iter().any(|p| {
                    p.kind == record.kind
                        && p.project_id == record.project_id
                        && p.name == record.name
                        && p.id != record.id
                }) {
                    return Err(registry_storage::Error::Conflict {
                        what: format!("a {} policy named {:?}", record.kind, record.name),
                    });
                }
                record.updated_ms = now;
                txn.open_table(POLICIES).map_err(err)?.insert(record.id, encode(&record)?.as_slice()).map_err(err)?;
                crate::events::record::<registry_storage::Error>(txn, &events)?;
                Ok(record.id)
            })
            .await
    }

    async fn policy(&self, kind: &str, id: u64) -> Result<Option<PolicyRecord>> {
        let kind = kind.to_owned();
        self.db
            .read(move |txn| {
                let table = txn.open_table(POLICIES).map_err(err)?;
                let record = table.get(id).map_err(err)?;
                let record: Option<PolicyRecord> = record.map(|v| decode(v.value())).transpose()?;
                Ok(record.filter(|p| p.kind == kind))
            })
            .await
    }

    async fn policies(&self, kind: &str, project_id: Option<u64>) -> Result<Vec<PolicyRecord>> {
        let kind = kind.to_owned();
        self.db
            .read(move |txn| {
                let all = all_policies(&txn.open_table(POLICIES).map_err(err)?)?;
                Ok(all
                    .into_iter()
                    .filter(|p| p.kind == kind && project_id.is_none_or(|id| id == p.project_id))
                    .collect())
            })
            .await
    }

    async fn delete_policy(&self, kind: &str, id: u64, events: &[Event]) -> Result<bool> {
        let (kind, events) = (kind.to_owned(), events.to_vec());
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(POLICIES).map_err(err)?;
                let found: Option<PolicyRecord> = table.get(id).map_err(err)?.map(|v| decode(v.value())).transpose()?;
                if found.is_none_or(|p| p.kind != kind) {
                    return Ok(false);
                }
                table.remove(id).map_err(err)?;
                drop(table);
                crate::events::record::<registry_storage::Error>(txn, &events)?;
                Ok(true)
            })
            .await
    }

    async fn all_policies(&self) -> Result<Vec<PolicyRecord>> {
        self.db.read(move |txn| all_policies(&txn.open_table(POLICIES).map_err(err)?)).await
    }

    async fn import_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let policy = policy.clone();
        self.db
            .write(move |txn| {
                txn.open_table(POLICIES).map_err(err)?.insert(policy.id, encode(&policy)?.as_slice()).map_err(err)?;
                let mut sequences = txn.open_table(SEQUENCES).map_err(err)?;
                let last = sequences.get("policies").map_err(err)?.map_or(0, |v| v.value());
                sequences.insert("policies", last.max(policy.id)).map_err(err)?;
                Ok(())
            })
            .await
    }
}
