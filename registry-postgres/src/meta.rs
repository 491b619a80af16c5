//! The [`MetadataStore`] half of [`PgStore`] (tables in `migrations/0001_initial.sql`).
//!
//! (Its length is the trait's: 27 transactions, each beside the locks that keep garbage
//! collection's contract with concurrent writers on other replicas; see the crate docs.)

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use registry_core::event::{Event, EventFilter};
use registry_core::{Digest, RepositoryName, Tag};
use registry_storage::listing::Touched;
use registry_storage::meta::{GcLink, Holder, ManifestEntry, Pulls};
use registry_storage::quota::Changes;
use registry_storage::{Error, ManifestRecord, MetadataStore, Page, Protection, Result, UploadId, UploadRecord};

use crate::quota::{hold, release, settle};
use crate::{Cached, PgStore, pg_err};

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(pg_err(context, e))
}

fn parse_digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|e| Error::corrupt(format!("digest {text:?}"), e))
}

fn decode_record(text: &str) -> Result<ManifestRecord> {
    serde_json::from_str(text).map_err(|e| Error::corrupt("a manifest record", e))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Serializes every transaction that changes who holds `digest` (linking, pushing it as a
/// manifest, marking it for deletion), until the transaction ends.
async fn lock_digest(txn: &Transaction<'_>, digest: &str) -> Result<()> {
    txn.cached_execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", &[&digest])
        .await
        .map_err(db("locking a digest"))?;
    Ok(())
}

/// Refuses a digest garbage collection is deleting.
async fn not_collecting(txn: &Transaction<'_>, digest: &str) -> Result<()> {
    let marked =
        txn.cached_opt("SELECT 1 FROM collecting WHERE digest = $1", &[&digest]).await.map_err(db("reading marks"))?;
    if marked.is_some() {
        return Err(Error::Collecting { digest: digest.to_owned() });
    }
    Ok(())
}

/// Links `digest` into `repo` (the caller holds the digest's lock), its project's usage checked
/// and kept.
async fn link(txn: &Transaction<'_>, repo: &str, digest: &str, size: u64, now: u64, now_ms: u64) -> Result<()> {
    not_collecting(txn, digest).await?;
    txn.cached_execute("INSERT INTO repositories (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&repo])
        .await
        .map_err(db("adding a repository"))?;
    let new: bool = txn
        .cached_one(
            "INSERT INTO blob_links (repository, digest, size, linked_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository, digest) DO UPDATE SET size = EXCLUDED.size, linked_at = EXCLUDED.linked_at
             RETURNING (xmax = 0)",
            &[&repo, &digest, &i64_of(size), &i64_of(now)],
        )
        .await
        .map_err(db("linking a blob"))?
        .get(0);
    let mut changes = Changes::default();
    if new {
        hold(txn, repo, digest, size, &mut changes).await?;
    }
    settle(txn, &changes, now_ms).await
}

/// Removes a manifest with its tags, labels and references; its record if it existed.
async fn remove_manifest(
    txn: &Transaction<'_>,
    repo: &str,
    digest: &str,
    changes: &mut Changes,
    touched: &mut Touched,
) -> Result<Option<ManifestRecord>> {
    // Its pulls first, counted out of the repository's (the manifest's row would take them).
    let pulls = txn
        .cached_opt("DELETE FROM pulls WHERE repository = $1 AND digest = $2 RETURNING count", &[&repo, &digest])
        .await
        .map_err(db("deleting pulls"))?
        .map_or(0, |r| u64_of(r.get(0)));
    let row = txn
        .cached_opt("DELETE FROM manifests WHERE repository = $1 AND digest = $2 RETURNING record", &[&repo, &digest])
        .await
        .map_err(db("deleting a manifest"))?;
    let Some(row) = row else { return Ok(None) };
    let record = decode_record(row.get(0))?;
    touched.removed(&record, pulls);
    release(txn, repo, digest, changes).await?;
    txn.cached_execute("DELETE FROM tags WHERE repository = $1 AND digest = $2", &[&repo, &digest])
        .await
        .map_err(db("deleting tags"))?;
    txn.cached_execute("DELETE FROM manifest_refs WHERE repository = $1 AND manifest = $2", &[&repo, &digest])
        .await
        .map_err(db("deleting references"))?;
    Ok(Some(record))
}

/// Refuses, by `protection`, a change to `digest`'s tags (`what` names it).
async fn check_tags(
    txn: &Transaction<'_>,
    repo: &str,
    digest: &str,
    protection: &Protection,
    what: &str,
) -> Result<()> {
    if protection.is_empty() {
        return Ok(());
    }
    let rows = txn
        .cached_query("SELECT tag FROM tags WHERE repository = $1 AND digest = $2 FOR UPDATE", &[&repo, &digest])
        .await
        .map_err(db("reading tags"))?;
    for row in rows {
        protection.check(repo, row.get(0), what)?;
    }
    Ok(())
}

/// A manifest with its tags, referencing manifests, pulls and labels: the columns
/// [`entry_of`] reads, from `manifests m`, for a `WHERE` to follow.
const ENTRY_SELECT: &str = "SELECT m.record,
        ARRAY(SELECT t.tag FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest ORDER BY t.tag),
        ARRAY(SELECT r.manifest FROM manifest_refs r
              WHERE r.reference = m.digest AND r.repository = m.repository ORDER BY r.manifest),
        coalesce(p.count, 0), coalesce(p.last_ms, 0),
        ARRAY(SELECT l.label FROM labels l WHERE l.repository = m.repository AND l.digest = m.digest ORDER BY l.label)
    FROM manifests m
    LEFT JOIN pulls p ON p.repository = m.repository AND p.digest = m.digest";

/// A [`ManifestEntry`] from a row of [`ENTRY_SELECT`].
fn entry_of(r: &tokio_postgres::Row) -> Result<ManifestEntry> {
    let referenced_by: Vec<String> = r.get(2);
    let (count, last_ms): (i64, i64) = (r.get(3), r.get(4));
    let labels: Vec<i64> = r.get(5);
    Ok(ManifestEntry {
        record: decode_record(r.get(0))?,
        tags: r.get(1),
        referenced_by: referenced_by.iter().map(|d| parse_digest(d)).collect::<Result<_>>()?,
        pulls: Pulls { count: count.max(0) as u64, last_ms: last_ms.max(0) as u64 },
        labels: labels.into_iter().map(u64_of).collect(),
    })
}

fn page(mut entries: Vec<String>, limit: usize) -> Page {
    let more = entries.len() > limit;
    entries.truncate(limit);
    Page { entries, more }
}

impl PgStore {
    async fn write_txn<'c>(client: &'c mut crate::lease::Lease) -> Result<Transaction<'c>> {
        client.transaction().await.map_err(db("starting a transaction"))
    }
}

async fn commit(txn: Transaction<'_>) -> Result<()> {
    txn.commit().await.map_err(db("committing"))
}

fn upload_from_row(row: &tokio_postgres::Row) -> Result<UploadRecord> {
    let repository: String = row.get("repository");
    Ok(UploadRecord {
        repository: RepositoryName::parse(&repository).map_err(|e| Error::corrupt("an upload's repository", e))?,
        offset: u64_of(row.get("upload_offset")),
        verifier_state: row.get("verifier_state"),
        started_at: u64_of(row.get("started_at")),
        store_state: row.get("store_state"),
    })
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        let client = self.client().await?;
        client
            .cached_execute(
                "INSERT INTO uploads (id, repository, upload_offset, verifier_state, store_state, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id.as_str(),
                    &record.repository.as_str(),
                    &i64_of(record.offset),
                    &record.verifier_state,
                    &record.store_state,
                    &i64_of(record.started_at),
                ],
            )
            .await
            .map_err(db("creating an upload"))?;
        Ok(())
    }

    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .cached_execute(
                "UPDATE uploads SET upload_offset = $3, verifier_state = $4, store_state = $5
                 WHERE id = $1 AND upload_offset = $2",
                &[
                    &id.as_str(),
                    &i64_of(expected_offset),
                    &i64_of(record.offset),
                    &record.verifier_state,
                    &record.store_state,
                ],
            )
            .await
            .map_err(db("updating an upload"))?;
        Ok(n == 1)
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT repository, upload_offset, verifier_state, store_state, started_at FROM uploads WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(db("reading an upload"))?;
        row.map(|r| upload_from_row(&r)).transpose()
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .cached_execute("DELETE FROM uploads WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(db("deleting an upload"))?;
        Ok(n == 1)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn lease_upload(&self, id: &UploadId, token: u64, until_millis: u64, now_millis: u64) -> Result<bool> {
        let client = self.client().await?;
        let taken = client
            .cached_execute(
                "UPDATE uploads SET lease_token = $2, lease_until = $3
                 WHERE id = $1 AND (lease_until < $4 OR lease_token = $2)",
                &[&id.as_str(), &(token as i64), &i64_of(until_millis), &i64_of(now_millis)],
            )
            .await
            .map_err(db("leasing an upload"))?;
        if taken == 1 {
            return Ok(true);
        }
        // Either another replica holds it, or there is no such upload (the caller finds out).
        let exists = client
            .cached_opt("SELECT 1 FROM uploads WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(db("reading an upload"))?;
        Ok(exists.is_none())
    }

    async fn release_upload(&self, id: &UploadId, token: u64) -> Result<()> {
        let client = self.client().await?;
        client
            .cached_execute(
                "UPDATE uploads SET lease_until = 0 WHERE id = $1 AND lease_token = $2",
                &[&id.as_str(), &(token as i64)],
            )
            .await
            .map_err(db("releasing an upload"))?;
        Ok(())
    }

    async fn hold_digest(&self, digest: &Digest, holder: u64, until_millis: u64) -> Result<()> {
        let d = digest.to_string();
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        lock_digest(&txn, &d).await?;
        not_collecting(&txn, &d).await?;
        txn.cached_execute(
            "INSERT INTO held (digest, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (digest, holder) DO UPDATE SET until_ms = EXCLUDED.until_ms",
            &[&d, &(holder as i64), &i64_of(until_millis)],
        )
        .await
        .map_err(db("holding a digest"))?;
        commit(txn).await
    }

    async fn release_digest(&self, digest: &Digest, holder: u64) -> Result<()> {
        let client = self.client().await?;
        client
            .cached_execute(
                "DELETE FROM held WHERE digest = $1 AND holder = $2",
                &[&digest.to_string(), &(holder as i64)],
            )
            .await
            .map_err(db("releasing a digest"))?;
        Ok(())
    }

    async fn lock_job(&self, job: &str) -> Result<Option<registry_storage::JobLock>> {
        // A session-level advisory lock on a connection of its own: the lock lasts until released,
        // or until the session ends (the guard dropped, or this process dead).
        let client = self.client().await?;
        let locked: bool = client
            .cached_one("SELECT pg_try_advisory_lock(hashtextextended($1, 11))", &[&job])
            .await
            .map_err(db("taking a job lock"))?
            .get(0);
        if !locked {
            return Ok(None);
        }
        // Out of the pool: a session holding the lock must never serve other requests.
        let session = client.detach();
        let job = job.to_owned();
        Ok(Some(registry_storage::JobLock::new(async move {
            if let Err(e) = session.execute("SELECT pg_advisory_unlock(hashtextextended($1, 11))", &[&job]).await {
                tracing::warn!(job, error = %e, "could not release a job lock (it goes with the session)");
            }
        })))
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        let (repo, d) = (repository.as_str(), digest.to_string());
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        lock_digest(&txn, &d).await?;
        link(&txn, repo, &d, size, self.now(), self.clock.now_millis()).await?;
        commit(txn).await
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let (repo, d) = (repository.as_str(), digest.to_string());
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        lock_digest(&txn, &d).await?;
        link(&txn, repo, &d, size, self.now(), self.clock.now_millis()).await?;
        txn.cached_execute("DELETE FROM uploads WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(db("ending an upload"))?;
        commit(txn).await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let d = digest.to_string();
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        lock_digest(&txn, &d).await?;
        let row = txn
            .cached_opt(
                "SELECT size FROM blob_links WHERE repository = $1 AND digest = $2 FOR SHARE",
                &[&from.as_str(), &d],
            )
            .await
            .map_err(db("reading a link"))?;
        let Some(row) = row else { return Ok(None) };
        let size = u64_of(row.get(0));
        link(&txn, repository.as_str(), &d, size, self.now(), self.clock.now_millis()).await?;
        commit(txn).await?;
        Ok(Some(size))
    }

    async fn blob_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT size FROM blob_links WHERE repository = $1 AND digest = $2",
                &[&repository.as_str(), &digest.to_string()],
            )
            .await
            .map_err(db("reading a link"))?;
        Ok(row.map(|r| u64_of(r.get(0))))
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, d) = (repository.as_str(), digest.to_string());
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let n = txn
            .cached_execute("DELETE FROM blob_links WHERE repository = $1 AND digest = $2", &[&repo, &d])
            .await
            .map_err(db("unlinking a blob"))?;
        let mut changes = Changes::default();
        if n == 1 {
            release(&txn, repo, &d, &mut changes).await?;
        }
        settle(&txn, &changes, self.clock.now_millis()).await?;
        commit(txn).await?;
        Ok(n == 1)
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        protection: &Protection,
        events: &[Event],
    ) -> Result<()> {
        let repo = repository.as_str();
        let digest = record.digest.to_string();
        let references: Vec<String> = record.references.iter().map(Digest::to_string).collect();
        let subject = record.subject.as_ref().map(Digest::to_string);
        let text = serde_json::to_string(record).map_err(|e| Error::corrupt("a manifest record", e))?;
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        lock_digest(&txn, &digest).await?;
        not_collecting(&txn, &digest).await?;
        // What it references must be in the repository now, locked so that a concurrent
        // collection waits for this transaction and then sees the references it adds.
        if !references.is_empty() {
            let rows = txn
                .cached_query(
                    "SELECT digest FROM blob_links WHERE repository = $1 AND digest = ANY($2) FOR SHARE",
                    &[&repo, &references],
                )
                .await
                .map_err(db("checking references"))?;
            let mut held: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            let rows = txn
                .cached_query(
                    "SELECT digest FROM manifests WHERE repository = $1 AND digest = ANY($2) FOR SHARE",
                    &[&repo, &references],
                )
                .await
                .map_err(db("checking references"))?;
            held.extend(rows.iter().map(|r| r.get::<_, String>(0)));
            if let Some(missing) = record.references.iter().find(|r| !held.contains(&r.to_string())) {
                return Err(Error::ManifestBlobUnknown { digest: missing.clone() });
            }
        }
        txn.cached_execute("INSERT INTO repositories (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&repo])
            .await
            .map_err(db("adding a repository"))?;
        let new: bool = txn
            .cached_one(
                "INSERT INTO manifests (repository, digest, record, subject, pushed_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (repository, digest) DO UPDATE
                 SET record = EXCLUDED.record, subject = EXCLUDED.subject, pushed_at = EXCLUDED.pushed_at
                 RETURNING (xmax = 0)",
                &[&repo, &digest, &text, &subject, &i64_of(record.pushed_at)],
            )
            .await
            .map_err(db("storing a manifest"))?
            .get(0);
        let (mut changes, mut touched) = (Changes::default(), Touched::default());
        touched.written(record, new);
        if new {
            hold(&txn, repo, &digest, record.size, &mut changes).await?;
        }
        if !references.is_empty() {
            txn.cached_execute(
                "INSERT INTO manifest_refs (reference, repository, manifest)
                 SELECT r, $2, $3 FROM unnest($1::text[]) AS r ON CONFLICT DO NOTHING",
                &[&references, &repo, &digest],
            )
            .await
            .map_err(db("storing references"))?;
        }
        if let Some(tag) = tag {
            let current = txn
                .cached_opt(
                    "SELECT digest FROM tags WHERE repository = $1 AND tag = $2 FOR UPDATE",
                    &[&repo, &tag.as_str()],
                )
                .await
                .map_err(db("reading a tag"))?
                .map(|row| row.get::<_, String>(0));
            if let Some(previous) = current.filter(|p| *p != digest) {
                protection.check(repo, tag.as_str(), "pushing another manifest as")?;
                touched.retagged(&previous);
            }
            txn.cached_execute(
                "INSERT INTO tags (repository, tag, digest) VALUES ($1, $2, $3)
                 ON CONFLICT (repository, tag) DO UPDATE SET digest = EXCLUDED.digest",
                &[&repo, &tag.as_str(), &digest],
            )
            .await
            .map_err(db("moving a tag"))?;
        }
        crate::listing::settle(&txn, repo, touched).await?;
        settle(&txn, &changes, self.clock.now_millis()).await?;
        crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        commit(txn).await
    }

    async fn get_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT record FROM manifests WHERE repository = $1 AND digest = $2",
                &[&repository.as_str(), &digest.to_string()],
            )
            .await
            .map_err(db("reading a manifest"))?;
        row.map(|r| decode_record(r.get(0))).transpose()
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let (repo, d) = (repository.as_str(), digest.to_string());
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        check_tags(&txn, repo, &d, protection, &format!("deleting {digest}, which carries it")).await?;
        let (mut changes, mut touched) = (Changes::default(), Touched::default());
        let removed = remove_manifest(&txn, repo, &d, &mut changes, &mut touched).await?;
        crate::listing::settle(&txn, repo, touched).await?;
        settle(&txn, &changes, self.clock.now_millis()).await?;
        if removed.is_some() {
            crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        }
        commit(txn).await?;
        Ok(removed.is_some())
    }

    async fn resolve_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT digest FROM tags WHERE repository = $1 AND tag = $2",
                &[&repository.as_str(), &tag.as_str()],
            )
            .await
            .map_err(db("resolving a tag"))?;
        row.map(|r| parse_digest(r.get(0))).transpose()
    }

    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT m.record FROM tags t JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest
                 WHERE t.repository = $1 AND t.tag = $2",
                &[&repository.as_str(), &tag.as_str()],
            )
            .await
            .map_err(db("reading a tagged manifest"))?;
        row.map(|r| decode_record(r.get(0))).transpose()
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let removed = txn
            .cached_opt(
                "DELETE FROM tags WHERE repository = $1 AND tag = $2 RETURNING digest",
                &[&repository.as_str(), &tag.as_str()],
            )
            .await
            .map_err(db("deleting a tag"))?
            .map(|row| row.get::<_, String>(0));
        let n = u64::from(removed.is_some());
        if let Some(digest) = removed {
            protection.check(repository.as_str(), tag.as_str(), "deleting")?;
            let mut touched = Touched::default();
            touched.retagged(&digest);
            crate::listing::settle(&txn, repository.as_str(), touched).await?;
        }
        if n == 1 {
            crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        }
        commit(txn).await?;
        Ok(n == 1)
    }

    async fn set_label(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        label: u64,
        on: bool,
        events: &[Event],
    ) -> Result<bool> {
        let (repo, d) = (repository.as_str(), digest.to_string());
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let present = txn
            .cached_opt("SELECT 1 FROM manifests WHERE repository = $1 AND digest = $2 FOR SHARE", &[&repo, &d])
            .await
            .map_err(db("reading a manifest"))?;
        if present.is_none() {
            return Err(Error::ManifestUnknown { reference: d });
        }
        let statement = if on {
            "INSERT INTO labels (repository, digest, label) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM labels WHERE repository = $1 AND digest = $2 AND label = $3"
        };
        let n = txn.cached_execute(statement, &[&repo, &d, &i64_of(label)]).await.map_err(db("labelling"))?;
        if n == 1 {
            crate::events::record(&txn, events).await.map_err(db("recording events"))?;
        }
        commit(txn).await?;
        Ok(n == 1)
    }

    async fn drop_label(&self, label: u64) -> Result<u64> {
        let client = self.client().await?;
        let n = client
            .cached_execute("DELETE FROM labels WHERE label = $1", &[&i64_of(label)])
            .await
            .map_err(db("dropping a label"))?;
        Ok(n)
    }

    async fn append_events(&self, events: &[Event]) -> Result<()> {
        self.append(events).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.after(after, limit).await
    }

    async fn query_events(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)> {
        self.query(filter, offset, limit).await
    }

    async fn trim_events(&self, before_ms: u64) -> Result<u64> {
        self.trim(before_ms).await
    }

    async fn cursor(&self, name: &str) -> Result<u64> {
        self.consumer(name).await
    }

    async fn advance_cursor(&self, name: &str, from: u64, to: u64) -> Result<bool> {
        self.advance(name, from, to).await
    }

    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>> {
        let client = self.client().await?;
        let known = client
            .cached_opt("SELECT 1 FROM repositories WHERE name = $1", &[&repository.as_str()])
            .await
            .map_err(db("reading a repository"))?;
        if known.is_none() {
            return Ok(None);
        }
        let rows = client
            .cached_query(
                "SELECT tag FROM tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3",
                &[&repository.as_str(), &last.unwrap_or(""), &(limit as i64 + 1)],
            )
            .await
            .map_err(db("listing tags"))?;
        Ok(Some(page(rows.iter().map(|r| r.get(0)).collect(), limit)))
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Page> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
                &[&last.unwrap_or(""), &(limit as i64 + 1)],
            )
            .await
            .map_err(db("listing repositories"))?;
        Ok(page(rows.iter().map(|r| r.get(0)).collect(), limit))
    }

    async fn referencing(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Digest>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT manifest FROM manifest_refs WHERE reference = $1 AND repository = $2 ORDER BY manifest",
                &[&digest.to_string(), &repository.as_str()],
            )
            .await
            .map_err(db("reading references"))?;
        rows.iter().map(|r| parse_digest(r.get(0))).collect()
    }

    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT record FROM manifests WHERE repository = $1 AND subject = $2 ORDER BY digest",
                &[&repository.as_str(), &subject.to_string()],
            )
            .await
            .map_err(db("listing referrers"))?;
        rows.iter().map(|r| decode_record(r.get(0))).collect()
    }

    async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestEntry>> {
        let client = self.client().await?;
        let sql = format!("{ENTRY_SELECT} WHERE m.repository = $1 AND m.digest > $2 ORDER BY m.digest LIMIT $3");
        let rows = client
            .cached_query(
                &sql,
                &[&repository.as_str(), &after.map(Digest::to_string).unwrap_or_default(), &(limit as i64)],
            )
            .await
            .map_err(db("listing manifests"))?;
        rows.iter().map(entry_of).collect()
    }

    async fn artifacts(
        &self,
        repository: &RepositoryName,
        offset: usize,
        limit: usize,
    ) -> Result<registry_storage::listing::ArtifactPage> {
        let client = self.client().await?;
        let repo = repository.as_str();
        let total = client
            .cached_opt("SELECT artifacts FROM repository_stats WHERE repository = $1", &[&repo])
            .await
            .map_err(db("counting artifacts"))?
            .map_or(0, |r| u64_of(r.get(0)));
        let sql = format!(
            "{ENTRY_SELECT} JOIN artifacts a ON a.repository = m.repository AND a.digest = m.digest
             WHERE a.repository = $1 ORDER BY a.pushed_at DESC, a.digest OFFSET $2 LIMIT $3"
        );
        let rows = client
            .cached_query(&sql, &[&repo, &i64_of(offset as u64), &i64_of(limit as u64)])
            .await
            .map_err(db("listing artifacts"))?;
        let entries = rows.iter().map(entry_of).collect::<Result<_>>()?;
        Ok(registry_storage::listing::ArtifactPage { entries, total })
    }

    async fn manifest_entry(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestEntry>> {
        let client = self.client().await?;
        let sql = format!("{ENTRY_SELECT} WHERE m.repository = $1 AND m.digest = $2");
        let row = client
            .cached_opt(&sql, &[&repository.as_str(), &digest.to_string()])
            .await
            .map_err(db("reading a manifest"))?;
        row.as_ref().map(entry_of).transpose()
    }

    async fn repository_stats(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<registry_storage::listing::RepositoryStats>> {
        let client = self.client().await?;
        let row = client
            .cached_opt(
                "SELECT repository, manifests, artifacts, pulls, created, updated FROM repository_stats
                 WHERE repository = $1 AND manifests > 0",
                &[&repository.as_str()],
            )
            .await
            .map_err(db("reading a repository's counts"))?;
        Ok(row.as_ref().map(crate::listing::stats_of))
    }

    async fn project_repositories(
        &self,
        project: &str,
        offset: usize,
        limit: usize,
    ) -> Result<registry_storage::listing::RepositoryPage> {
        let client = self.client().await?;
        crate::listing::project_repositories(&client, project, offset, limit).await
    }

    async fn gc_links(&self, repository: &RepositoryName, after: Option<&Digest>, limit: usize) -> Result<Vec<GcLink>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT l.digest, l.size, l.linked_at,
                        ARRAY(SELECT r.manifest FROM manifest_refs r
                              WHERE r.reference = l.digest AND r.repository = l.repository ORDER BY r.manifest)
                 FROM blob_links l WHERE l.repository = $1 AND l.digest > $2 ORDER BY l.digest LIMIT $3",
                &[&repository.as_str(), &after.map(Digest::to_string).unwrap_or_default(), &(limit as i64)],
            )
            .await
            .map_err(db("listing links"))?;
        rows.iter()
            .map(|r| {
                let referenced_by: Vec<String> = r.get(3);
                Ok(GcLink {
                    digest: parse_digest(r.get(0))?,
                    size: u64_of(r.get(1)),
                    linked_at: u64_of(r.get(2)),
                    referenced_by: referenced_by.iter().map(|d| parse_digest(d)).collect::<Result<_>>()?,
                })
            })
            .collect()
    }

    async fn gc_holders(&self, digests: &[Digest]) -> Result<Vec<Vec<Holder>>> {
        let texts: Vec<String> = digests.iter().map(Digest::to_string).collect();
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT digest, repository, false FROM blob_links WHERE digest = ANY($1)
                 UNION ALL SELECT digest, repository, true FROM manifests WHERE digest = ANY($1)
                 ORDER BY 2, 3",
                &[&texts],
            )
            .await
            .map_err(db("reading holders"))?;
        let mut out: Vec<Vec<Holder>> = vec![Vec::new(); digests.len()];
        for r in rows {
            let d: String = r.get(0);
            for (i, t) in texts.iter().enumerate() {
                if *t == d {
                    out[i].push(Holder { repository: r.get(1), manifest: r.get(2) });
                }
            }
        }
        Ok(out)
    }

    async fn gc_delete_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        pushed_before: u64,
    ) -> Result<Vec<Digest>> {
        let repo = repository.as_str();
        let mut sorted = digests.to_vec();
        sorted.sort_by_key(Digest::to_string);
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let mut deleted = Vec::new();
        let (mut changes, mut touched) = (Changes::default(), Touched::default());
        for digest in sorted {
            let d = digest.to_string();
            // The row lock first; the conditions then in new statements, which see what
            // concurrent pushes committed while this waited.
            let row = txn
                .cached_opt(
                    "SELECT record, pushed_at FROM manifests WHERE repository = $1 AND digest = $2 FOR UPDATE",
                    &[&repo, &d],
                )
                .await
                .map_err(db("locking a manifest"))?;
            let Some(row) = row else { continue };
            let record = decode_record(row.get(0))?;
            if u64_of(row.get(1)) > pushed_before {
                continue;
            }
            let kept = txn
                .cached_one(
                    "SELECT EXISTS (SELECT 1 FROM tags WHERE repository = $1 AND digest = $2)
                         OR EXISTS (SELECT 1 FROM manifest_refs WHERE reference = $2 AND repository = $1)
                         OR EXISTS (SELECT 1 FROM manifests WHERE repository = $1 AND digest = $3)",
                    &[&repo, &d, &record.subject.as_ref().map(Digest::to_string).unwrap_or_default()],
                )
                .await
                .map_err(db("checking a manifest"))?;
            if kept.get::<_, bool>(0) {
                continue;
            }
            remove_manifest(&txn, repo, &d, &mut changes, &mut touched).await?;
            deleted.push(digest);
        }
        crate::listing::settle(&txn, repo, touched).await?;
        settle(&txn, &changes, self.clock.now_millis()).await?;
        commit(txn).await?;
        Ok(deleted)
    }

    async fn gc_unlink(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        linked_before: u64,
    ) -> Result<Vec<(Digest, u64)>> {
        let repo = repository.as_str();
        let mut sorted = digests.to_vec();
        sorted.sort_by_key(Digest::to_string);
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let mut removed = Vec::new();
        let mut changes = Changes::default();
        for digest in sorted {
            let d = digest.to_string();
            let row = txn
                .cached_opt(
                    "SELECT size, linked_at FROM blob_links WHERE repository = $1 AND digest = $2 FOR UPDATE",
                    &[&repo, &d],
                )
                .await
                .map_err(db("locking a link"))?;
            let Some(row) = row else { continue };
            let (size, linked_at) = (u64_of(row.get(0)), u64_of(row.get(1)));
            if linked_at > linked_before {
                continue;
            }
            let referenced = txn
                .cached_opt(
                    "SELECT 1 FROM manifest_refs WHERE reference = $1 AND repository = $2 LIMIT 1",
                    &[&d, &repo],
                )
                .await
                .map_err(db("checking references"))?;
            if referenced.is_some() {
                continue;
            }
            txn.cached_execute("DELETE FROM blob_links WHERE repository = $1 AND digest = $2", &[&repo, &d])
                .await
                .map_err(db("unlinking a blob"))?;
            release(&txn, repo, &d, &mut changes).await?;
            removed.push((digest, size));
        }
        settle(&txn, &changes, self.clock.now_millis()).await?;
        commit(txn).await?;
        Ok(removed)
    }

    async fn gc_mark(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut sorted = digests.to_vec();
        sorted.sort_by_key(Digest::to_string);
        let now = self.now();
        let now_millis = self.clock.now_millis();
        let mut client = self.client().await?;
        let txn = PgStore::write_txn(&mut client).await?;
        let mut marked = Vec::new();
        for digest in sorted {
            let d = digest.to_string();
            lock_digest(&txn, &d).await?;
            txn.cached_execute("DELETE FROM held WHERE digest = $1 AND until_ms <= $2", &[&d, &i64_of(now_millis)])
                .await
                .map_err(db("clearing expired holds"))?;
            let held = txn
                .cached_one(
                    "SELECT EXISTS (SELECT 1 FROM blob_links WHERE digest = $1)
                         OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1)
                         OR EXISTS (SELECT 1 FROM held WHERE digest = $1)",
                    &[&d],
                )
                .await
                .map_err(db("checking holders"))?;
            if held.get::<_, bool>(0) {
                continue;
            }
            txn.cached_execute(
                "INSERT INTO collecting (digest, since) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&d, &i64_of(now)],
            )
            .await
            .map_err(db("marking"))?;
            marked.push(digest);
        }
        commit(txn).await?;
        Ok(marked)
    }

    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()> {
        let texts: Vec<String> = digests.iter().map(Digest::to_string).collect();
        let client = self.client().await?;
        client
            .cached_execute("DELETE FROM collecting WHERE digest = ANY($1)", &[&texts])
            .await
            .map_err(db("unmarking"))?;
        Ok(())
    }

    async fn gc_marked(&self, limit: usize) -> Result<Vec<Digest>> {
        let client = self.client().await?;
        let rows = client
            .cached_query("SELECT digest FROM collecting ORDER BY digest LIMIT $1", &[&(limit as i64)])
            .await
            .map_err(db("reading marks"))?;
        rows.iter().map(|r| parse_digest(r.get(0))).collect()
    }

    async fn expired_uploads(&self, started_before: u64, limit: usize) -> Result<Vec<UploadId>> {
        let client = self.client().await?;
        let rows = client
            .cached_query(
                "SELECT id FROM uploads WHERE started_at <= $1 ORDER BY id LIMIT $2",
                &[&i64_of(started_before), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await
            .map_err(db("listing uploads"))?;
        rows.iter()
            .map(|r| UploadId::parse(r.get::<_, &str>(0)).map_err(|e| Error::corrupt("an upload id", e)))
            .collect()
    }
}
