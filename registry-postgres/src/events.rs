//! The event stream on PostgreSQL (tables `event_counter`, `events`, `cursors`): written in the
//! transaction of the change, ids in commit order (see the migration), queried with the audit
//! log's filters in SQL.

use deadpool_postgres::Transaction;
use registry_core::event::{Event, EventAction, EventFilter};
use registry_storage::{Error, Result};

use crate::{Cached, PgStore, pg_err};

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes `events` in the caller's transaction: call it last, just before committing (the
/// counter's row lock is held until then).
pub(crate) async fn record(txn: &Transaction<'_>, events: &[Event]) -> std::result::Result<(), tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len() as i64;
    let last: i64 = txn.cached_one("UPDATE event_counter SET last = last + $1 RETURNING last", &[&n]).await?.get(0);
    for (i, event) in events.iter().enumerate() {
        let id = last - n + 1 + i as i64;
        // The id is the column, set again when the record is read.
        let record = serde_json::to_string(event).unwrap_or_default();
        txn.cached_execute(
            "INSERT INTO events (id, time_ms, project, action, username, resource, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &i64_of(event.time_ms),
                &event.resource.project,
                &event.action.as_str(),
                &event.operator.display_name(),
                &event.resource_text(),
                &record,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Counts the pulls among `events` on the manifests they pulled (those still there) and in
/// their repositories' counts; before [`record`] takes the event counter (the lock order of
/// `listing.rs`), rows in (repository, digest) order so that two batches never wait on each other
/// in a circle.
async fn count_pulls(txn: &Transaction<'_>, events: &[Event]) -> Result<()> {
    let mut pulls: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
    for event in events {
        if let Some(key) = registry_storage::Pulls::of_event(event) {
            let (count, time) = pulls.entry(key).or_default();
            *count += event.count;
            *time = (*time).max(event.time_ms);
        }
    }
    let mut by_repository: std::collections::BTreeMap<&str, u64> = Default::default();
    for ((repository, digest), (count, time_ms)) in pulls {
        // Counted on the manifest while it is there (a batch may come after a delete).
        let n = txn
            .cached_execute(
                "INSERT INTO pulls (repository, digest, count, last_ms)
                 SELECT $1, $2, $3, $4 FROM manifests WHERE repository = $1 AND digest = $2
                 ON CONFLICT (repository, digest) DO UPDATE
                 SET count = pulls.count + EXCLUDED.count, last_ms = GREATEST(pulls.last_ms, EXCLUDED.last_ms)",
                &[&repository, &digest, &i64_of(count), &i64_of(time_ms)],
            )
            .await
            .map_err(db("counting pulls"))?;
        if n > 0 {
            *by_repository.entry(repository).or_default() += count;
        }
    }
    for (repository, count) in by_repository {
        let mut touched = registry_storage::listing::Touched::default();
        touched.change.pulls = i64_of(count);
        crate::listing::settle(txn, repository, touched).await?;
    }
    Ok(())
}

fn decode(row: &tokio_postgres::Row) -> Result<Event> {
    let event: Event = serde_json::from_str(row.get("record")).map_err(|e| Error::corrupt("an event record", e))?;
    Ok(Event { id: u64::try_from(row.get::<_, i64>("id")).unwrap_or(0), ..event })
}

impl PgStore {
    pub(crate) async fn append(&self, events: &[Event]) -> Result<()> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db("starting a transaction"))?;
        count_pulls(&txn, events).await?;
        record(&txn, events).await.map_err(db("appending events"))?;
        txn.commit().await.map_err(db("committing events"))
    }

    pub(crate) async fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT id, record FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&i64_of(after), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(db("reading events"))?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn query(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)> {
        // The operation and resource type name sets of actions.
        let actions: Option<Vec<&str>> = (filter.operation.is_some() || filter.resource_type.is_some()).then(|| {
            EventAction::ALL
                .iter()
                .filter(|a| {
                    let (kind, operation) = a.audit();
                    filter.operation.as_deref().is_none_or(|o| o == operation)
                        && filter.resource_type.as_deref().is_none_or(|t| t == kind)
                })
                .map(|a| a.as_str())
                .collect()
        });
        let projects = filter.projects.clone();
        let resource = filter
            .resource
            .as_ref()
            .map(|r| format!("%{}%", r.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let (from, to) = (filter.from_ms.map(i64_of), filter.to_ms.map(i64_of));
        let condition = "($1::text[] IS NULL OR project = ANY($1))
             AND ($2::text[] IS NULL OR action = ANY($2))
             AND ($3::text IS NULL OR resource LIKE $3)
             AND ($4::text IS NULL OR username = $4)
             AND ($5::bigint IS NULL OR time_ms >= $5)
             AND ($6::bigint IS NULL OR time_ms <= $6)";
        let client = self.client().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&projects, &actions, &resource, &filter.username, &from, &to];
        let total: i64 = client
            .cached_one(&format!("SELECT count(*) FROM events WHERE {condition}"), &params)
            .await
            .map_err(db("counting events"))?
            .get(0);
        let (offset, limit) = (offset.min(i64::MAX as usize) as i64, limit.min(i64::MAX as usize) as i64);
        let mut paged: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
        paged.push(&offset);
        paged.push(&limit);
        let rows = client
            .cached_query(
                &format!("SELECT id, record FROM events WHERE {condition} ORDER BY id DESC OFFSET $7 LIMIT $8"),
                &paged,
            )
            .await
            .map_err(db("querying events"))?;
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn trim(&self, before_ms: u64) -> Result<u64> {
        let client = self.client().await?;
        client
            .cached_execute("DELETE FROM events WHERE time_ms < $1", &[&i64_of(before_ms)])
            .await
            .map_err(db("trimming events"))
    }

    pub(crate) async fn consumer(&self, name: &str) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .cached_opt("SELECT position FROM cursors WHERE name = $1", &[&name])
            .await
            .map_err(db("reading a cursor"))?;
        Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    pub(crate) async fn advance(&self, name: &str, from: u64, to: u64) -> Result<bool> {
        let client = self.client().await?;
        let n = if from == 0 {
            client
                .cached_execute(
                    "INSERT INTO cursors (name, position) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position WHERE cursors.position = 0",
                    &[&name, &i64_of(to)],
                )
                .await
        } else {
            client
                .cached_execute(
                    "UPDATE cursors SET position = $3 WHERE name = $1 AND position = $2",
                    &[&name, &i64_of(from), &i64_of(to)],
                )
                .await
        }
        .map_err(db("moving a cursor"))?;
        Ok(n == 1)
    }
}
