//! The job queue and the policies in the database. redb has one writer at a time, so a claim
//! (read the active jobs, apply `registry_storage::jobs::claim_among`, write back) is atomic
//! without further locking.
//!
//! ```text
//! jobs        u64 id -> JSON job
//! jobs_active u64 id -> ()            (pending and running jobs: what a claim reads)
//! job_keys    idempotency key -> id
//! policies    u64 id -> JSON policy
//! sequences   "jobs" | "policies" -> last id given
//! ```

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_core::BackendError;
use registry_core::event::Event;
use registry_storage::jobs::{
    Heartbeat, Job, JobCount, JobFilter, JobOutcome, JobQueue, JobStatus, JobUpdate, KindLimit, NewJob, claim_among,
    count_jobs, running_counts,
};
use registry_storage::policies::{PolicyRecord, PolicyStore, not_found};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RedbStore;
use crate::handle::db_err;

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const ACTIVE: TableDefinition<u64, ()> = TableDefinition::new("jobs_active");
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

/// Creates the tables.
pub(crate) fn prepare(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(JOBS).map_err(err)?;
    txn.open_table(ACTIVE).map_err(err)?;
    txn.open_table(KEYS).map_err(err)?;
    txn.open_table(POLICIES).map_err(err)?;
    txn.open_table(SEQUENCES).map_err(err)?;
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

fn save(txn: &redb::WriteTransaction, job: &Job) -> Result<()> {
    txn.open_table(JOBS).map_err(err)?.insert(job.id, encode(job)?.as_slice()).map_err(err)?;
    let mut active = txn.open_table(ACTIVE).map_err(err)?;
    if job.status.is_final() {
        active.remove(job.id).map_err(err)?;
    } else {
        active.insert(job.id, ()).map_err(err)?;
    }
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
                let out = change(&mut job);
                save(txn, &job)?;
                Ok(Some((out, job)))
            })
            .await
    }
}

#[async_trait]
impl JobQueue for RedbStore {
    async fn enqueue(&self, new: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
        let new = new.clone();
        self.db
            .write(move |txn| {
                if let Some(key) = &new.key
                    && let Some(id) = txn.open_table(KEYS).map_err(err)?.get(key.as_str()).map_err(err)?
                {
                    return Ok((id.value(), false));
                }
                let job = Job::from_new(next_id(txn, "jobs")?, &new, now_ms);
                if let Some(key) = &job.key {
                    txn.open_table(KEYS).map_err(err)?.insert(key.as_str(), job.id).map_err(err)?;
                }
                save(txn, &job)?;
                Ok((job.id, true))
            })
            .await
    }

    async fn claim(&self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Result<Option<Job>> {
        let (kinds, worker) = (kinds.to_vec(), worker.to_owned());
        self.db
            .write(move |txn| {
                let ids: Vec<u64> = {
                    let active = txn.open_table(ACTIVE).map_err(err)?;
                    let mut ids = Vec::new();
                    for item in active.iter().map_err(err)? {
                        ids.push(item.map_err(err)?.0.value());
                    }
                    ids
                };
                let mut active = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(job) = load(txn, id)? {
                        active.push(job);
                    }
                }
                let running = running_counts(&active, now_ms);
                let mut candidates: Vec<Job> =
                    active.into_iter().filter(|j| kinds.iter().any(|k| k.kind == j.kind)).collect();
                let (chosen, changed) = claim_among(&mut candidates, &running, &kinds, &worker, now_ms, lease_ms);
                for i in changed {
                    save(txn, &candidates[i])?;
                }
                Ok(chosen.map(|i| candidates[i].clone()))
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
                let table = txn.open_table(JOBS).map_err(err)?;
                let (mut page, mut total) = (Vec::new(), 0u64);
                for item in table.iter().map_err(err)?.rev() {
                    let job: Job = decode(item.map_err(err)?.1.value())?;
                    if filter.matches(&job) {
                        if total >= offset as u64 && page.len() < limit {
                            page.push(job);
                        }
                        total += 1;
                    }
                }
                Ok((page, total))
            })
            .await
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>> {
        self.db
            .read(move |txn| {
                let table = txn.open_table(JOBS).map_err(err)?;
                let mut pairs: Vec<(String, JobStatus)> = Vec::new();
                for item in table.iter().map_err(err)? {
                    let job: Job = decode(item.map_err(err)?.1.value())?;
                    pairs.push((job.kind, job.status));
                }
                Ok(count_jobs(pairs.iter().map(|(k, s)| (k.as_str(), *s))))
            })
            .await
    }

    async fn trim_jobs(&self, before_ms: u64) -> Result<u64> {
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(JOBS).map_err(err)?;
                let mut old = Vec::new();
                for item in table.iter().map_err(err)? {
                    let job: Job = decode(item.map_err(err)?.1.value())?;
                    if job.status.is_final() && job.updated_ms < before_ms {
                        old.push((job.id, job.key));
                    }
                }
                let mut keys = txn.open_table(KEYS).map_err(err)?;
                for (id, key) in &old {
                    table.remove(*id).map_err(err)?;
                    if let Some(key) = key {
                        keys.remove(key.as_str()).map_err(err)?;
                    }
                }
                Ok(old.len() as u64)
            })
            .await
    }
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
