//! The job queue and the policies on PostgreSQL (migration 0002). A claim takes the queue's
//! advisory transaction lock (claims from all replicas take turns, so a kind's limit holds), counts
//! the jobs running under live leases, and locks the due candidates `FOR UPDATE SKIP LOCKED` (rows a
//! heartbeat or a finish holds are passed over); the rules are `registry_storage::jobs`'s.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use registry_core::event::Event;
use registry_storage::jobs::{
    Heartbeat, Job, JobCount, JobFilter, JobOutcome, JobQueue, JobStatus, JobUpdate, KindLimit, NewJob, claim_among,
};
use registry_storage::policies::{PolicyRecord, PolicyStore, not_found};
use registry_storage::{Error, Result};

use crate::{Cached, PgStore, pg_err};

/// The advisory lock claims take in turn.
const CLAIMS: i64 = 0x6a6f_6273; // "jobs"

/// Candidates a claim looks at per kind, at most (jobs of a passed lease that ran out of
/// attempts are failed among them, the rest wait for a later claim).
const CANDIDATES: i64 = 16;

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn decode(row: &tokio_postgres::Row) -> Result<Job> {
    serde_json::from_str(row.get("record")).map_err(|e| Error::corrupt("a job record", e))
}

fn encode(job: &Job) -> String {
    serde_json::to_string(job).unwrap_or_default()
}

async fn save(txn: &Transaction<'_>, job: &Job) -> std::result::Result<u64, tokio_postgres::Error> {
    txn.cached_execute(
        "UPDATE jobs SET status = $2, run_at = $3, lease_until = $4, updated_ms = $5, record = $6 WHERE id = $1",
        &[
            &big(job.id),
            &job.status.as_str(),
            &big(job.run_at_ms),
            &big(job.lease_until_ms),
            &big(job.updated_ms),
            &encode(job),
        ],
    )
    .await
}

impl PgStore {
    /// Changes job `id` with `change` in one transaction (the row locked); `None` when there is
    /// no such job.
    async fn change_job<T>(&self, id: u64, change: impl FnOnce(&mut Job) -> T) -> Result<Option<(T, Job)>> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let row = txn
            .cached_opt("SELECT record FROM jobs WHERE id = $1 FOR UPDATE", &[&big(id)])
            .await
            .map_err(db("reading a job"))?;
        let Some(row) = row else { return Ok(None) };
        let mut job = decode(&row)?;
        let out = change(&mut job);
        save(&txn, &job).await.map_err(db("saving a job"))?;
        txn.commit().await.map_err(db("committing a job"))?;
        Ok(Some((out, job)))
    }
}

/// Enqueues `new` on `client` (a connection or a transaction): its id, and whether it is new.
async fn enqueue_on(client: &impl Cached, new: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
    let id: i64 = client.cached_one("SELECT nextval('job_ids')", &[]).await.map_err(db("numbering a job"))?.get(0);
    let job = Job::from_new(u64::try_from(id).unwrap_or(0), new, now_ms);
    let inserted = client
        .cached_execute(
            "INSERT INTO jobs (id, kind, status, key, run_at, lease_until, updated_ms, record)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT (key) DO NOTHING",
            &[&id, &job.kind, &job.status.as_str(), &job.key, &big(job.run_at_ms), &big(now_ms), &encode(&job)],
        )
        .await
        .map_err(db("enqueueing a job"))?;
    if inserted == 1 {
        return Ok((job.id, true));
    }
    let row = client
        .cached_one("SELECT id FROM jobs WHERE key = $1", &[&job.key])
        .await
        .map_err(db("finding a job by key"))?;
    Ok((u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), false))
}

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, new: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
        let client = self.client().await?;
        enqueue_on(&**client, new, now_ms).await
    }

    async fn enqueue_all(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<(u64, bool)>> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let mut out = Vec::with_capacity(jobs.len());
        for new in jobs {
            out.push(enqueue_on(&txn, new, now_ms).await?);
        }
        txn.commit().await.map_err(db("committing jobs"))?;
        Ok(out)
    }

    async fn claim(&self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Result<Option<Job>> {
        Ok(self.claim_up_to(kinds, worker, now_ms, lease_ms, 1).await?.pop())
    }

    /// Up to `max` jobs in one transaction: the running counts and each kind's due jobs read
    /// once, the claims made among them one after another (each counted as running for the next).
    async fn claim_up_to(
        &self,
        kinds: &[KindLimit],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
        let now = big(now_ms);
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        txn.cached_execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIMS]).await.map_err(db("locking the queue"))?;
        let counts = txn
            .cached_query(
                "SELECT kind, count(*) FROM jobs
                 WHERE status = 'running' AND lease_until > $1 AND kind = ANY($2) GROUP BY kind",
                &[&now, &names],
            )
            .await
            .map_err(db("counting running jobs"))?;
        let mut running: std::collections::HashMap<String, usize> = counts
            .iter()
            .map(|r| (r.get::<_, String>(0), usize::try_from(r.get::<_, i64>(1)).unwrap_or(usize::MAX)))
            .collect();
        // Only kinds under their limit, and a window of each: a window filled with jobs of a kind
        // at its limit, or with one kind's backlog, would otherwise hold every other kind up.
        let names: Vec<&str> = kinds
            .iter()
            .filter(|k| running.get(&k.kind).copied().unwrap_or(0) < k.limit)
            .map(|k| k.kind.as_str())
            .collect();
        let rows = txn
            .cached_query(
                "SELECT j.record FROM unnest($1::text[]) AS k(kind) CROSS JOIN LATERAL (
                   SELECT record FROM jobs
                   WHERE jobs.kind = k.kind AND status IN ('pending', 'running')
                     AND ((status = 'pending' AND run_at <= $2) OR (status = 'running' AND lease_until <= $2))
                   ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) j",
                &[&names, &now, &CANDIDATES.max(max.min(256) as i64)],
            )
            .await
            .map_err(db("finding due jobs"))?;
        let mut candidates = rows.iter().map(decode).collect::<Result<Vec<Job>>>()?;
        // A claimed job runs under a live lease from now on: no longer due, and counted.
        let (mut chosen, mut changed) = (Vec::new(), std::collections::BTreeSet::new());
        while chosen.len() < max {
            let (claimed, touched) = claim_among(&mut candidates, &running, kinds, worker, now_ms, lease_ms);
            changed.extend(touched);
            let Some(i) = claimed else { break };
            *running.entry(candidates[i].kind.clone()).or_default() += 1;
            chosen.push(i);
        }
        for &i in &changed {
            save(&txn, &candidates[i]).await.map_err(db("claiming a job"))?;
        }
        txn.commit().await.map_err(db("committing a claim"))?;
        Ok(chosen.into_iter().map(|i| candidates[i].clone()).collect())
    }

    async fn heartbeat(
        &self,
        id: u64,
        claim: u64,
        lease_until_ms: u64,
        now_ms: u64,
        update: &JobUpdate,
    ) -> Result<Heartbeat> {
        let beat = self.change_job(id, |job| job.beat(claim, lease_until_ms, now_ms, update)).await?;
        Ok(beat.map_or(Heartbeat::Lost, |(beat, _)| beat))
    }

    async fn finish(&self, id: u64, claim: u64, outcome: &JobOutcome, now_ms: u64) -> Result<bool> {
        Ok(self.change_job(id, |job| job.finish(claim, outcome, now_ms)).await?.is_some_and(|(done, _)| done))
    }

    async fn cancel_job(&self, id: u64, now_ms: u64) -> Result<Option<Job>> {
        Ok(self.change_job(id, |job| job.cancel(now_ms)).await?.map(|(_, job)| job))
    }

    async fn job(&self, id: u64) -> Result<Option<Job>> {
        let client = self.client().await?;
        let row = client
            .cached_opt("SELECT record FROM jobs WHERE id = $1", &[&big(id)])
            .await
            .map_err(db("reading a job"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn jobs(&self, filter: &JobFilter, offset: usize, limit: usize) -> Result<(Vec<Job>, u64)> {
        let client = self.client().await?;
        let status = filter.status.map(JobStatus::as_str);
        let prefix = filter
            .key_prefix
            .as_ref()
            .map(|p| format!("{}%", p.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let condition = "($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR key LIKE $3)";
        let total: i64 = client
            .cached_one(&format!("SELECT count(*) FROM jobs WHERE {condition}"), &[&filter.kind, &status, &prefix])
            .await
            .map_err(db("counting jobs"))?
            .get(0);
        let rows = client
            .cached_query(
                &format!("SELECT record FROM jobs WHERE {condition} ORDER BY id DESC OFFSET $4 LIMIT $5"),
                &[&filter.kind, &status, &prefix, &big(offset as u64), &big(limit as u64)],
            )
            .await
            .map_err(db("listing jobs"))?;
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, u64::try_from(total).unwrap_or(0)))
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>> {
        let client = self.client().await?;
        let rows = client
            .cached_query("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status ORDER BY kind, status", &[])
            .await
            .map_err(db("counting jobs"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status = JobStatus::parse(r.get(1))?;
                Some(JobCount { kind: r.get(0), status, count: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0) })
            })
            .collect())
    }

    async fn trim_jobs(&self, before_ms: u64) -> Result<u64> {
        let client = self.client().await?;
        client
            .cached_execute(
                "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_ms < $1",
                &[&big(before_ms)],
            )
            .await
            .map_err(db("trimming jobs"))
    }

    async fn trim_jobs_beyond(&self, kind: &str, keep: u64, at_most: u64) -> Result<u64> {
        let client = self.client().await?;
        // The oldest of the kind's finished jobs beyond its newest `keep`, `at_most` of them.
        client
            .cached_execute(
                "DELETE FROM jobs WHERE id IN (
                     SELECT id FROM jobs
                     WHERE kind = $1 AND status IN ('succeeded', 'failed', 'cancelled')
                     ORDER BY updated_ms, id
                     LIMIT least(greatest((
                         SELECT count(*) FROM jobs
                         WHERE kind = $1 AND status IN ('succeeded', 'failed', 'cancelled')
                     ) - $2, 0), $3))",
                &[&kind, &big(keep), &big(at_most)],
            )
            .await
            .map_err(db("trimming a kind's finished jobs"))
    }
}

fn policy_of(row: &tokio_postgres::Row) -> PolicyRecord {
    let n = |column: &str| u64::try_from(row.get::<_, i64>(column)).unwrap_or(0);
    PolicyRecord {
        id: n("id"),
        kind: row.get("kind"),
        project_id: n("project_id"),
        name: row.get("name"),
        body: row.get("body"),
        created_ms: n("created_ms"),
        updated_ms: n("updated_ms"),
    }
}

const POLICY_COLUMNS: &str = "id, kind, project_id, name, body, created_ms, updated_ms";

#[async_trait]
impl PolicyStore for PgStore {
    async fn put_policy(&self, policy: &PolicyRecord, events: &[Event]) -> Result<u64> {
        let now = big(self.clock.now_millis());
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let written = if policy.id == 0 {
            txn.cached_opt(
                "INSERT INTO policies (kind, project_id, name, body, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                &[&policy.kind, &big(policy.project_id), &policy.name, &policy.body, &now],
            )
            .await
        } else {
            txn.cached_opt(
                "UPDATE policies SET project_id = $3, name = $4, body = $5, updated_ms = $6
                 WHERE id = $1 AND kind = $2 RETURNING id",
                &[&big(policy.id), &policy.kind, &big(policy.project_id), &policy.name, &policy.body, &now],
            )
            .await
        };
        let row = match written {
            Ok(Some(row)) => row,
            Ok(None) => return Err(not_found(&policy.kind, policy.id)),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                return Err(Error::Conflict { what: format!("a {} policy named {:?}", policy.kind, policy.name) });
            }
            Err(e) => return Err(db("storing a policy")(e)),
        };
        crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        txn.commit().await.map_err(db("committing a policy"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn policy(&self, kind: &str, id: u64) -> Result<Option<PolicyRecord>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE id = $1 AND kind = $2"),
                &[&big(id), &kind],
            )
            .await
            .map_err(db("reading a policy"))?;
        Ok(row.as_ref().map(policy_of))
    }

    async fn all_policies(&self) -> Result<Vec<PolicyRecord>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(&format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY id"), &[])
            .await
            .map_err(db("listing policies"))?;
        Ok(rows.iter().map(policy_of).collect())
    }

    async fn import_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        txn.cached_execute(
            "INSERT INTO policies (id, kind, project_id, name, body, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, project_id = EXCLUDED.project_id,
                 name = EXCLUDED.name, body = EXCLUDED.body, created_ms = EXCLUDED.created_ms,
                 updated_ms = EXCLUDED.updated_ms",
            &[
                &big(policy.id),
                &policy.kind,
                &big(policy.project_id),
                &policy.name,
                &policy.body,
                &big(policy.created_ms),
                &big(policy.updated_ms),
            ],
        )
        .await
        .map_err(db("importing a policy"))?;
        // New policies get ids above the imported ones.
        txn.cached_execute(
            "SELECT setval(pg_get_serial_sequence('policies', 'id'), GREATEST((SELECT max(id) FROM policies), 1))",
            &[],
        )
        .await
        .map_err(db("moving the policy ids"))?;
        txn.commit().await.map_err(db("committing a policy"))?;
        Ok(())
    }

    async fn policies(&self, kind: &str, project_id: Option<u64>) -> Result<Vec<PolicyRecord>> {
        let client = self.client().await?;
        let project = project_id.map(big);
        let rows = client
            .cached_query(
                &format!(
                    "SELECT {POLICY_COLUMNS} FROM policies
                     WHERE kind = $1 AND ($2::bigint IS NULL OR project_id = $2) ORDER BY id"
                ),
                &[&kind, &project],
            )
            .await
            .map_err(db("listing policies"))?;
        Ok(rows.iter().map(policy_of).collect())
    }

    async fn delete_policy(&self, kind: &str, id: u64, events: &[Event]) -> Result<bool> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        let n = txn
            .cached_execute("DELETE FROM policies WHERE id = $1 AND kind = $2", &[&big(id), &kind])
            .await
            .map_err(db("deleting a policy"))?;
        if n == 1 {
            crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        }
        txn.commit().await.map_err(db("committing a deletion"))?;
        Ok(n == 1)
    }
}
