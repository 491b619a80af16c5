//! The [`MetadataStore`] half of [`RedbStore`]: blob links, manifests, tags, referrers, upload
//! sessions and garbage collection's indexes. (Its length is the trait's: 25 transactions, each
//! beside the table layout it writes and the garbage-collection re-checks it must keep.)
//!
//! # Tables
//!
//! Keys join their parts with `\0`, which no repository name, tag or digest contains, so all keys
//! of one repository form one contiguous range (`"<repo>\0"` .. `"<repo>\x01"`) and every listing
//! is a range scan whose cost grows with the page, not with the store.
//!
//! | table | key | value |
//! |---|---|---|
//! | `uploads` | upload id | JSON [`UploadRecord`] |
//! | `repositories` | repository | unused |
//! | `blob_links` | repo `\0` digest | size |
//! | `manifests` | repo `\0` digest | JSON [`ManifestRecord`] |
//! | `tags` | repo `\0` tag | digest |
//! | `manifest_tags` | repo `\0` digest `\0` tag | unused (reverse index of `tags`) |
//! | `referrers` | repo `\0` subject `\0` referrer | unused |
//! | `holders` | digest `\0` repo `\0` `b` (blob link) or `m` (manifest) | since (seconds) |
//! | `blob_refs` | digest `\0` repo `\0` manifest | unused (what references a digest) |
//! | `collecting` | digest | since (seconds): marked for deletion by garbage collection |
//! | `pulls` | repo `\0` digest | (pulls, newest pull in ms) |
//! | `labels` | repo `\0` digest `\0` label id (20 digits) | unused |
//! | `schema` | `version` | the layout version (see the crate docs) |
//!
//! `holders` and `blob_refs` index `blob_links` and `manifests` by digest, in the same
//! transactions; opening a version 1 database builds them. Every change of `holders` moves the
//! project's usage in the same transaction (`quota.rs`: `holdings`, `quotas`); opening a version
//! 3 database counts it.
//!
//! Each trait method is one write or read transaction; writes commit durably (fsync) before they
//! return.
//!
//! Tag resolutions, manifest records and blob links are cached in memory (bounded), which is exact
//! because this store alone writes its file (redb locks it): every write invalidates what it
//! changed (see `meta/cache.rs` for why that is exact).

use std::ops::Bound;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use registry_core::event::{Event, EventFilter};
use registry_core::{Digest, RepositoryName, Tag};
use registry_storage::listing::Touched;
use registry_storage::meta::cache::{Cached, Generation};
use registry_storage::meta::{GcLink, Holder, ManifestEntry, Pulls};
use registry_storage::quota::Changes;
use registry_storage::{Error, ManifestRecord, MetadataStore, Page, Protection, Result, UploadId, UploadRecord};

use crate::tables::{BLOB_LINKS, BLOB_REFS, HOLDERS, MANIFEST_TAGS, MANIFESTS, PULLS};
use crate::{RedbStore, quota};

const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const REPOSITORIES: TableDefinition<&str, u8> = TableDefinition::new("repositories");
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
const REFERRERS: TableDefinition<&str, u8> = TableDefinition::new("referrers");
const COLLECTING: TableDefinition<&str, u64> = TableDefinition::new("collecting");
/// repo `\0` digest `\0` label id, zero-padded to 20 digits so that ids list in order.
const LABELS: TableDefinition<&str, u8> = TableDefinition::new("labels");

fn label_key(repo: &str, digest: &str, label: u64) -> String {
    format!("{repo}\0{digest}\0{label:020}")
}

/// Digests held for writes: digest -> (holder, held until in milliseconds). Checked by `gc_mark`
/// inside its write transaction, and taken by `hold_digest` after checking the marks, both under
/// the lock.
#[derive(Default)]
pub(crate) struct Held(std::sync::Mutex<HeldMap>);

type HeldMap = std::collections::HashMap<String, Vec<(u64, u64)>>;

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HeldMap> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The cached reads, keyed by their table keys.
pub(crate) struct HotReads {
    generation: Generation,
    tags: Cached<Digest>,
    manifests: Cached<ManifestRecord>,
    blob_links: Cached<u64>,
    /// (repository, subject) -> its referrers (what content trust asks at every pull).
    referrers: Cached<Vec<ManifestRecord>>,
}

impl HotReads {
    /// The caches' hits and misses.
    pub(crate) fn stats(&self) -> Vec<registry_storage::meta::cache::CacheStats> {
        vec![
            self.tags.stats("tags"),
            self.manifests.stats("manifests"),
            self.blob_links.stats("blob_links"),
            self.referrers.stats("referrers"),
        ]
    }
}

impl Default for HotReads {
    fn default() -> Self {
        HotReads {
            generation: Generation::default(),
            tags: Cached::new(16 << 10),
            manifests: Cached::new(8 << 10),
            blob_links: Cached::new(16 << 10),
            referrers: Cached::new(8 << 10),
        }
    }
}

impl HotReads {
    /// Forgets everything (the database was reopened).
    pub(crate) fn clear(&self) {
        self.generation.bump();
        self.tags.clear();
        self.manifests.clear();
        self.blob_links.clear();
        self.referrers.clear();
    }
}

fn key(parts: &[&str]) -> String {
    parts.join("\0")
}

/// The half-open range of keys that start with `prefix` followed by `\0`.
fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}\0"), format!("{prefix}\x01"))
}

fn db_err(e: impl Into<redb::Error>) -> Error {
    crate::handle::db_err(e)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt("a metadata record", e))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::corrupt("a metadata record", e))
}

fn parse_digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|e| Error::corrupt(format!("digest {text:?}"), e))
}

/// The pulls among `events`: (key of the manifest, count, time).
fn pulls_of(events: &[Event]) -> Vec<(String, u64, u64)> {
    events.iter().filter_map(|e| Pulls::of_event(e).map(|(r, d)| (key(&[r, d]), e.count, e.time_ms))).collect()
}

/// Counts `pulls` (from [`pulls_of`]) on the manifests they pulled (those still there), in the
/// transaction that appends their events (pull events come through `append_events` only).
fn count_pulls(txn: &redb::WriteTransaction, pulls: &[(String, u64, u64)]) -> Result<()> {
    if pulls.is_empty() {
        return Ok(());
    }
    let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
    let mut table = txn.open_table(PULLS).map_err(db_err)?;
    let mut counted = Vec::new();
    for (k, count, time_ms) in pulls {
        if manifests.get(k.as_str()).map_err(db_err)?.is_none() {
            continue;
        }
        let (old_count, last_ms) = table.get(k.as_str()).map_err(db_err)?.map(|v| v.value()).unwrap_or_default();
        let new = Pulls { count: old_count, last_ms }.add(*count, *time_ms);
        table.insert(k.as_str(), (new.count, new.last_ms)).map_err(db_err)?;
        if let Some((repo, _)) = k.split_once('\0') {
            let mut touched = Touched::default();
            touched.change.pulls = i64::try_from(*count).unwrap_or(i64::MAX);
            counted.push((repo.to_owned(), touched));
        }
    }
    drop((manifests, table));
    for (repo, touched) in counted {
        crate::listing::settle(txn, &repo, touched)?;
    }
    Ok(())
}

/// The tables a [`ManifestEntry`] is read from, open in a read transaction.
struct EntryTables {
    reverse: redb::ReadOnlyTable<&'static str, u8>,
    refs: redb::ReadOnlyTable<&'static str, u8>,
    pulls: redb::ReadOnlyTable<&'static str, (u64, u64)>,
    labels: redb::ReadOnlyTable<&'static str, u8>,
}

impl EntryTables {
    fn open(txn: &redb::ReadTransaction) -> Result<EntryTables> {
        Ok(EntryTables {
            reverse: txn.open_table(MANIFEST_TAGS).map_err(db_err)?,
            refs: txn.open_table(BLOB_REFS).map_err(db_err)?,
            pulls: txn.open_table(PULLS).map_err(db_err)?,
            labels: txn.open_table(LABELS).map_err(db_err)?,
        })
    }

    /// The entry of the manifest at `k` (`repo \0 digest`).
    fn entry(&self, repo: &str, k: &str, record: ManifestRecord) -> Result<ManifestEntry> {
        let tags = suffixes(&self.reverse, k)?;
        let referenced_by = digests(suffixes(&self.refs, &key(&[&record.digest.to_string(), repo]))?)?;
        let (count, last_ms) = self.pulls.get(k).map_err(db_err)?.map(|v| v.value()).unwrap_or_default();
        let labels = suffixes(&self.labels, k)?.iter().filter_map(|l| l.parse().ok()).collect();
        Ok(ManifestEntry { record, tags, referenced_by, pulls: Pulls { count, last_ms }, labels })
    }
}

/// Creates the metadata tables, building the indexes of a version 1 database.
pub(crate) fn prepare(txn: &redb::WriteTransaction, version: u64) -> Result<()> {
    txn.open_table(UPLOADS).map_err(db_err)?;
    txn.open_table(REPOSITORIES).map_err(db_err)?;
    txn.open_table(BLOB_LINKS).map_err(db_err)?;
    txn.open_table(MANIFESTS).map_err(db_err)?;
    txn.open_table(TAGS).map_err(db_err)?;
    txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
    txn.open_table(REFERRERS).map_err(db_err)?;
    txn.open_table(HOLDERS).map_err(db_err)?;
    txn.open_table(BLOB_REFS).map_err(db_err)?;
    txn.open_table(COLLECTING).map_err(db_err)?;
    txn.open_table(PULLS).map_err(db_err)?;
    txn.open_table(LABELS).map_err(db_err)?;
    crate::events::prepare::<Error>(txn)?;
    crate::queue::prepare(txn, version)?;
    crate::reports::prepare(txn)?;
    if version < 2 {
        build_indexes(txn)?;
    }
    crate::quota::prepare(txn, version)?;
    crate::listing::prepare(txn, version)?;
    Ok(())
}

impl RedbStore {
    /// Reads `key` through the cache `pick` chooses, running `f` in a read transaction on a miss.
    async fn cached<V, F>(&self, pick: fn(&HotReads) -> &Cached<V>, key: String, f: F) -> Result<Option<V>>
    where
        V: Clone + Send + 'static,
        F: FnOnce(&redb::ReadTransaction, &str) -> Result<Option<V>> + Send + 'static,
    {
        if let Some(v) = pick(&self.hot).get(&key) {
            return Ok(Some(v));
        }
        let seen = self.hot.generation.current();
        let k = key.clone();
        let value = self.db.read(move |txn| f(txn, &k)).await?;
        if let Some(v) = &value {
            pick(&self.hot).fill(&self.hot.generation, seen, key, v.clone());
        }
        Ok(value)
    }

    /// After a write (committed or not): bumps the generation, then lets `f` invalidate.
    fn changed(&self, f: impl FnOnce(&HotReads)) {
        self.hot.generation.bump();
        f(&self.hot);
    }

    fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

/// Up to `limit` keys of `table` in `(after, end)`, with the part after `strip` bytes.
fn page<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    start: Bound<&str>,
    end: &str,
    strip: usize,
    limit: usize,
) -> Result<Page> {
    let mut entries = Vec::with_capacity(limit.min(1024));
    let mut more = false;
    for item in table.range::<&str>((start, Bound::Excluded(end))).map_err(db_err)? {
        let (k, _) = item.map_err(db_err)?;
        if entries.len() == limit {
            more = true;
            break;
        }
        entries.push(k.value()[strip..].to_owned());
    }
    Ok(Page { entries, more })
}

/// Builds `holders` and `blob_refs` from `blob_links` and `manifests` (opening a version 1
/// database).
fn build_indexes(txn: &redb::WriteTransaction) -> Result<()> {
    let links: Vec<String> = {
        let table = txn.open_table(BLOB_LINKS).map_err(db_err)?;
        let keys = table.iter().map_err(db_err)?.map(|item| item.map(|(k, _)| k.value().to_owned()).map_err(db_err));
        keys.collect::<Result<_>>()?
    };
    let manifests: Vec<(String, ManifestRecord)> = {
        let table = txn.open_table(MANIFESTS).map_err(db_err)?;
        let entries = table.iter().map_err(db_err)?.map(|item| {
            let (k, v) = item.map_err(db_err)?;
            Ok((k.value().to_owned(), decode(v.value())?))
        });
        entries.collect::<Result<_>>()?
    };
    let mut holders = txn.open_table(HOLDERS).map_err(db_err)?;
    let mut refs = txn.open_table(BLOB_REFS).map_err(db_err)?;
    for k in links {
        if let Some((repo, digest)) = k.split_once('\0') {
            holders.insert(key(&[digest, repo, "b"]).as_str(), 0).map_err(db_err)?;
        }
    }
    for (k, record) in manifests {
        if let Some((repo, digest)) = k.split_once('\0') {
            holders.insert(key(&[digest, repo, "m"]).as_str(), record.pushed_at).map_err(db_err)?;
            for r in &record.references {
                refs.insert(key(&[&r.to_string(), repo, digest]).as_str(), 0).map_err(db_err)?;
            }
        }
    }
    Ok(())
}

/// Refuses a digest that garbage collection is deleting.
fn not_collecting(txn: &redb::WriteTransaction, digest: &str) -> Result<()> {
    if txn.open_table(COLLECTING).map_err(db_err)?.get(digest).map_err(db_err)?.is_some() {
        return Err(Error::Collecting { digest: digest.to_owned() });
    }
    Ok(())
}

/// Whether any key of `table` starts with `prefix` `\0`.
fn any_with_prefix<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    prefix: &str,
) -> Result<bool> {
    let (start, end) = prefix_range(prefix);
    Ok(table.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)?.next().is_some())
}

/// The rest of the keys of `table` that start with `prefix` `\0`.
fn suffixes<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    prefix: &str,
) -> Result<Vec<String>> {
    let (start, end) = prefix_range(prefix);
    table
        .range::<&str>(start.as_str()..end.as_str())
        .map_err(db_err)?
        .map(|item| item.map(|(k, _)| k.value()[start.len()..].to_owned()).map_err(db_err))
        .collect()
}

/// Up to `limit` entries of `table` in repository `repo` after `after` (a digest): full keys and
/// values as `value` makes them.
fn repo_range<V: redb::Value + 'static, T>(
    table: &impl ReadableTable<&'static str, V>,
    repo: &str,
    after: Option<&str>,
    limit: usize,
    value: impl Fn(redb::AccessGuard<'_, V>) -> T,
) -> Result<Vec<(String, T)>> {
    let (start, end) = prefix_range(repo);
    let after = after.map(|a| key(&[repo, a]));
    let lower = match &after {
        Some(a) => Bound::Excluded(a.as_str()),
        None => Bound::Included(start.as_str()),
    };
    let mut out = Vec::new();
    for item in table.range::<&str>((lower, Bound::Excluded(end.as_str()))).map_err(db_err)?.take(limit) {
        let (k, v) = item.map_err(db_err)?;
        out.push((k.value().to_owned(), value(v)));
    }
    Ok(out)
}

/// Parses digests.
fn digests(texts: Vec<String>) -> Result<Vec<Digest>> {
    texts.iter().map(|t| parse_digest(t)).collect()
}

/// The holders of `digest` in the `holders` table.
fn holders_of(holders: &impl ReadableTable<&'static str, u64>, digest: &str) -> Result<Vec<Holder>> {
    Ok(suffixes(holders, digest)?
        .into_iter()
        .filter_map(|rest| {
            let (repo, kind) = rest.rsplit_once('\0')?;
            Some(Holder { repository: repo.to_owned(), manifest: kind == "m" })
        })
        .collect())
}

/// Links `digest` into `repo`, its project's usage checked and kept.
fn link(txn: &redb::WriteTransaction, repo: &str, digest: &str, size: u64, now: u64, now_ms: u64) -> Result<()> {
    not_collecting(txn, digest)?;
    txn.open_table(REPOSITORIES).map_err(db_err)?.insert(repo, 0).map_err(db_err)?;
    txn.open_table(BLOB_LINKS).map_err(db_err)?.insert(key(&[repo, digest]).as_str(), size).map_err(db_err)?;
    let mut changes = Changes::default();
    quota::hold(txn, &key(&[digest, repo, "b"]), repo, digest, size, now, &mut changes)?;
    quota::settle(txn, &changes, now_ms)
}

/// Unlinks `digest` from `repo`; its size if it was linked.
fn unlink(txn: &redb::WriteTransaction, repo: &str, digest: &str, changes: &mut Changes) -> Result<Option<u64>> {
    let size = {
        let mut links = txn.open_table(BLOB_LINKS).map_err(db_err)?;
        links.remove(key(&[repo, digest]).as_str()).map_err(db_err)?.map(|v| v.value())
    };
    quota::release(txn, &key(&[digest, repo, "b"]), repo, digest, changes)?;
    Ok(size)
}

/// The tags of a manifest.
fn tags_of(txn: &redb::WriteTransaction, repo: &str, digest: &str) -> Result<Vec<String>> {
    suffixes(&txn.open_table(MANIFEST_TAGS).map_err(db_err)?, &key(&[repo, digest]))
}

/// Removes a manifest with its tags, labels, referrer entry and index entries; its record if it
/// existed.
fn remove_manifest(
    txn: &redb::WriteTransaction,
    repo: &str,
    digest: &str,
    changes: &mut Changes,
    touched: &mut Touched,
) -> Result<Option<ManifestRecord>> {
    let mut manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
    let Some(old) = manifests.remove(key(&[repo, digest]).as_str()).map_err(db_err)? else {
        return Ok(None);
    };
    let record: ManifestRecord = decode(old.value())?;
    drop(old);
    drop(manifests);
    let pulls = {
        let mut table = txn.open_table(PULLS).map_err(db_err)?;
        let removed = table.remove(key(&[repo, digest]).as_str()).map_err(db_err)?;
        removed.map_or(0, |p| p.value().0)
    };
    touched.removed(&record, pulls);
    {
        let (start, end) = prefix_range(&key(&[repo, digest]));
        let mut labels = txn.open_table(LABELS).map_err(db_err)?;
        labels.extract_from_if::<&str, _>(start.as_str()..end.as_str(), |_, _| true).map_err(db_err)?.for_each(drop);
    }
    if let Some(subject) = &record.subject {
        txn.open_table(REFERRERS)
            .map_err(db_err)?
            .remove(key(&[repo, &subject.to_string(), digest]).as_str())
            .map_err(db_err)?;
    }
    // Every tag pointing at it goes with it.
    let (start, end) = prefix_range(&key(&[repo, digest]));
    let mut reverse = txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
    let tags: Vec<String> = reverse
        .extract_from_if::<&str, _>(start.as_str()..end.as_str(), |_, _| true)
        .map_err(db_err)?
        .map(|item| item.map(|(k, _)| k.value()[start.len()..].to_owned()).map_err(db_err))
        .collect::<Result<_>>()?;
    drop(reverse);
    let mut tag_table = txn.open_table(TAGS).map_err(db_err)?;
    for tag in tags {
        tag_table.remove(key(&[repo, &tag]).as_str()).map_err(db_err)?;
    }
    drop(tag_table);
    quota::release(txn, &key(&[digest, repo, "m"]), repo, digest, changes)?;
    let mut refs = txn.open_table(BLOB_REFS).map_err(db_err)?;
    for r in &record.references {
        refs.remove(key(&[&r.to_string(), repo, digest]).as_str()).map_err(db_err)?;
    }
    Ok(Some(record))
}

#[async_trait]
impl MetadataStore for RedbStore {
    /// The new session is committed without its own fsync: it becomes durable with the next
    /// durable commit (at the latest the first acknowledged chunk's). A crash before that loses a
    /// session that holds no acknowledged byte; the client's next request on it gets
    /// `BLOB_UPLOAD_UNKNOWN` and it starts over, which every client does.
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        let (id, value) = (id.to_string(), encode(record)?);
        self.db
            .write_with(redb::Durability::None, move |txn| {
                txn.open_table(UPLOADS).map_err(db_err)?.insert(id.as_str(), value.as_slice()).map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool> {
        let (id, value) = (id.to_string(), encode(record)?);
        self.db
            .write(move |txn| {
                let mut table = txn.open_table(UPLOADS).map_err(db_err)?;
                let current: Option<UploadRecord> = match table.get(id.as_str()).map_err(db_err)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                match current {
                    Some(c) if c.offset == expected_offset => {
                        table.insert(id.as_str(), value.as_slice()).map_err(db_err)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .await
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        let id = id.to_string();
        self.db
            .read(move |txn| {
                let table = txn.open_table(UPLOADS).map_err(db_err)?;
                let value = table.get(id.as_str()).map_err(db_err)?;
                value.map(|v| decode(v.value())).transpose()
            })
            .await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool> {
        let id = id.to_string();
        self.db
            .write(move |txn| {
                let removed = txn.open_table(UPLOADS).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?.is_some();
                Ok(removed)
            })
            .await
    }

    async fn hold_digest(&self, digest: &Digest, holder: u64, until_millis: u64) -> Result<()> {
        let (d, held) = (digest.to_string(), self.held.clone());
        self.db
            .read(move |txn| {
                let mut held = held.lock();
                if txn.open_table(COLLECTING).map_err(db_err)?.get(d.as_str()).map_err(db_err)?.is_some() {
                    return Err(Error::Collecting { digest: d });
                }
                let holders = held.entry(d).or_default();
                holders.retain(|(h, _)| *h != holder);
                holders.push((holder, until_millis));
                Ok(())
            })
            .await
    }

    async fn release_digest(&self, digest: &Digest, holder: u64) -> Result<()> {
        let mut held = self.held.lock();
        let d = digest.to_string();
        if let Some(holders) = held.get_mut(&d) {
            holders.retain(|(h, _)| *h != holder);
            if holders.is_empty() {
                held.remove(&d);
            }
        }
        Ok(())
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        let (repo, d) = (repository.to_string(), digest.to_string());
        let k = key(&[&repo, &d]);
        let (now, now_ms) = (self.now(), self.clock.now_millis());
        let result = self.db.write(move |txn| link(txn, &repo, &d, size, now, now_ms)).await;
        self.changed(|hot| hot.blob_links.invalidate(&k));
        result
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let (repo, d, id) = (repository.to_string(), digest.to_string(), id.to_string());
        let (now, now_ms) = (self.now(), self.clock.now_millis());
        let k = key(&[&repo, &d]);
        let result = self
            .db
            .write(move |txn| {
                link(txn, &repo, &d, size, now, now_ms)?;
                txn.open_table(UPLOADS).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?;
                Ok(())
            })
            .await;
        self.changed(|hot| hot.blob_links.invalidate(&k));
        result
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let (repo, from, d) = (repository.to_string(), from.to_string(), digest.to_string());
        let (now, now_ms) = (self.now(), self.clock.now_millis());
        let k = key(&[&repo, &d]);
        let result = self
            .db
            .write(move |txn| {
                let size = {
                    let links = txn.open_table(BLOB_LINKS).map_err(db_err)?;
                    links.get(key(&[&from, &d]).as_str()).map_err(db_err)?.map(|v| v.value())
                };
                let Some(size) = size else { return Ok(None) };
                link(txn, &repo, &d, size, now, now_ms)?;
                Ok(Some(size))
            })
            .await;
        self.changed(|hot| hot.blob_links.invalidate(&k));
        result
    }

    async fn blob_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let k = key(&[repository.as_str(), &digest.to_string()]);
        self.cached(
            |hot| &hot.blob_links,
            k,
            |txn, k| Ok(txn.open_table(BLOB_LINKS).map_err(db_err)?.get(k).map_err(db_err)?.map(|v| v.value())),
        )
        .await
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, d) = (repository.to_string(), digest.to_string());
        let k = key(&[&repo, &d]);
        let now_ms = self.clock.now_millis();
        let result = self
            .db
            .write(move |txn| {
                let mut changes = Changes::default();
                let unlinked = unlink(txn, &repo, &d, &mut changes)?.is_some();
                quota::settle(txn, &changes, now_ms)?;
                Ok(unlinked)
            })
            .await;
        self.changed(|hot| hot.blob_links.invalidate(&k));
        result
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        protection: &Protection,
        events: &[Event],
    ) -> Result<()> {
        let events = events.to_vec();
        let protection = protection.clone();
        let now_ms = self.clock.now_millis();
        let size = record.size;
        let repo = repository.to_string();
        let digest = record.digest.to_string();
        let subject = record.subject.as_ref().map(|s| s.to_string());
        let references: Vec<String> = record.references.iter().map(Digest::to_string).collect();
        let pushed_at = record.pushed_at;
        let value = encode(record)?;
        let record = record.clone();
        let tag = tag.map(|t| t.to_string());
        let (manifest_key, tag_key) = (key(&[&repo, &digest]), tag.as_ref().map(|t| key(&[&repo, t])));
        let referrers_key = subject.as_ref().map(|subject| key(&[&repo, subject]));
        let invalidate = (manifest_key.clone(), tag_key.clone());
        let result = self
            .db
            .write(move |txn| {
                not_collecting(txn, &digest)?;
                // What it references must be in the repository now, in this transaction: checked
                // only before, a concurrent garbage collection could have removed it since.
                {
                    let links = txn.open_table(BLOB_LINKS).map_err(db_err)?;
                    let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                    for r in &references {
                        let k = key(&[&repo, r]);
                        if links.get(k.as_str()).map_err(db_err)?.is_none()
                            && manifests.get(k.as_str()).map_err(db_err)?.is_none()
                        {
                            let digest = parse_digest(r)?;
                            return Err(Error::ManifestBlobUnknown { digest });
                        }
                    }
                }
                let mut changes = Changes::default();
                quota::hold(txn, &key(&[&digest, &repo, "m"]), &repo, &digest, size, pushed_at, &mut changes)?;
                {
                    let mut refs = txn.open_table(BLOB_REFS).map_err(db_err)?;
                    for r in &references {
                        refs.insert(key(&[r, &repo, &digest]).as_str(), 0).map_err(db_err)?;
                    }
                }
                txn.open_table(REPOSITORIES).map_err(db_err)?.insert(repo.as_str(), 0).map_err(db_err)?;
                let new = txn
                    .open_table(MANIFESTS)
                    .map_err(db_err)?
                    .insert(key(&[&repo, &digest]).as_str(), value.as_slice())
                    .map_err(db_err)?
                    .is_none();
                let mut touched = Touched::default();
                touched.written(&record, new);
                if let Some(subject) = &subject {
                    txn.open_table(REFERRERS)
                        .map_err(db_err)?
                        .insert(key(&[&repo, subject, &digest]).as_str(), 0)
                        .map_err(db_err)?;
                }
                if let Some(tag) = &tag {
                    let mut tags = txn.open_table(TAGS).map_err(db_err)?;
                    let previous = tags.insert(key(&[&repo, tag]).as_str(), digest.as_str()).map_err(db_err)?;
                    let previous = previous.map(|p| p.value().to_owned());
                    drop(tags);
                    if previous.as_ref().is_some_and(|p| *p != digest) {
                        protection.check(&repo, tag, "pushing another manifest as")?;
                    }
                    let mut reverse = txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
                    if let Some(previous) = previous {
                        reverse.remove(key(&[&repo, &previous, tag]).as_str()).map_err(db_err)?;
                        touched.retagged(&previous);
                    }
                    reverse.insert(key(&[&repo, &digest, tag]).as_str(), 0).map_err(db_err)?;
                }
                crate::listing::settle(txn, &repo, touched)?;
                crate::events::record::<Error>(txn, &events)?;
                quota::settle(txn, &changes, now_ms)
            })
            .await;
        let (manifest_key, tag_key) = invalidate;
        self.changed(|hot| {
            hot.manifests.invalidate(&manifest_key);
            if let Some(k) = &tag_key {
                hot.tags.invalidate(k);
            }
            if let Some(k) = &referrers_key {
                hot.referrers.invalidate(k);
            }
        });
        result
    }

    async fn get_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let k = key(&[repository.as_str(), &digest.to_string()]);
        self.cached(
            |hot| &hot.manifests,
            k,
            |txn, k| {
                txn.open_table(MANIFESTS)
                    .map_err(db_err)?
                    .get(k)
                    .map_err(db_err)?
                    .map(|v| decode(v.value()))
                    .transpose()
            },
        )
        .await
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let (repo, digest, events) = (repository.to_string(), digest.to_string(), events.to_vec());
        let (protection, now_ms) = (protection.clone(), self.clock.now_millis());
        let manifest_key = key(&[&repo, &digest]);
        let result = self
            .db
            .write(move |txn| {
                for tag in tags_of(txn, &repo, &digest)? {
                    protection.check(&repo, &tag, &format!("deleting {digest}, which carries it"))?;
                }
                let (mut changes, mut touched) = (Changes::default(), Touched::default());
                let removed = remove_manifest(txn, &repo, &digest, &mut changes, &mut touched)?.is_some();
                crate::listing::settle(txn, &repo, touched)?;
                if removed {
                    crate::events::record::<Error>(txn, &events)?;
                }
                quota::settle(txn, &changes, now_ms)?;
                Ok(removed)
            })
            .await;
        // The tags that pointed at it are gone too; deletions are rare, so all tags are forgotten.
        self.changed(|hot| {
            hot.manifests.invalidate(&manifest_key);
            hot.tags.clear();
            hot.referrers.clear();
        });
        result
    }

    async fn resolve_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        let k = key(&[repository.as_str(), tag.as_str()]);
        self.cached(
            |hot| &hot.tags,
            k,
            |txn, k| {
                let table = txn.open_table(TAGS).map_err(db_err)?;
                let value = table.get(k).map_err(db_err)?;
                value.map(|v| parse_digest(v.value())).transpose()
            },
        )
        .await
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let (repo, tag, events) = (repository.to_string(), tag.to_string(), events.to_vec());
        let protection = protection.clone();
        let tag_key = key(&[&repo, &tag]);
        let result = self
            .db
            .write(move |txn| {
                let mut tags = txn.open_table(TAGS).map_err(db_err)?;
                let removed = tags.remove(key(&[&repo, &tag]).as_str()).map_err(db_err)?.map(|d| d.value().to_owned());
                drop(tags);
                let Some(digest) = removed else { return Ok(false) };
                protection.check(&repo, &tag, "deleting")?;
                txn.open_table(MANIFEST_TAGS)
                    .map_err(db_err)?
                    .remove(key(&[&repo, &digest, &tag]).as_str())
                    .map_err(db_err)?;
                let mut touched = Touched::default();
                touched.retagged(&digest);
                crate::listing::settle(txn, &repo, touched)?;
                crate::events::record::<Error>(txn, &events)?;
                Ok(true)
            })
            .await;
        self.changed(|hot| hot.tags.invalidate(&tag_key));
        result
    }

    async fn set_label(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        label: u64,
        on: bool,
        events: &[Event],
    ) -> Result<bool> {
        let (repo, d, events) = (repository.to_string(), digest.to_string(), events.to_vec());
        self.db
            .write(move |txn| {
                if txn.open_table(MANIFESTS).map_err(db_err)?.get(key(&[&repo, &d]).as_str()).map_err(db_err)?.is_none()
                {
                    return Err(Error::ManifestUnknown { reference: d });
                }
                let k = label_key(&repo, &d, label);
                let mut labels = txn.open_table(LABELS).map_err(db_err)?;
                let changed = if on {
                    labels.insert(k.as_str(), 0).map_err(db_err)?.is_none()
                } else {
                    labels.remove(k.as_str()).map_err(db_err)?.is_some()
                };
                drop(labels);
                if changed {
                    crate::events::record::<Error>(txn, &events)?;
                }
                Ok(changed)
            })
            .await
    }

    async fn drop_label(&self, label: u64) -> Result<u64> {
        let suffix = format!("\0{label:020}");
        self.db
            .write(move |txn| {
                let mut labels = txn.open_table(LABELS).map_err(db_err)?;
                let removed = labels.extract_if(|k, _| k.ends_with(&suffix)).map_err(db_err)?.count();
                Ok(removed as u64)
            })
            .await
    }

    async fn append_events(&self, events: &[Event]) -> Result<()> {
        // Encoded here, so the writer gets bytes rather than a copy of the events; the pulls
        // among them (the batched pull events come this way) counted in the same transaction.
        let encoded = events.iter().map(crate::events::encode).collect::<Result<Vec<_>>>()?;
        let pulls = pulls_of(events);
        self.db
            .write(move |txn| {
                count_pulls(txn, &pulls)?;
                crate::events::record_encoded(txn, &encoded)
            })
            .await
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

    fn cache_stats(&self) -> Vec<registry_storage::meta::cache::CacheStats> {
        self.hot.stats()
    }

    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>> {
        let repo = repository.to_string();
        let last = last.map(str::to_owned);
        self.db
            .read(move |txn| {
                if txn.open_table(REPOSITORIES).map_err(db_err)?.get(repo.as_str()).map_err(db_err)?.is_none() {
                    return Ok(None);
                }
                let table = txn.open_table(TAGS).map_err(db_err)?;
                let (start, end) = prefix_range(&repo);
                let after = last.map(|l| key(&[&repo, &l]));
                let bound = match &after {
                    Some(a) => Bound::Excluded(a.as_str()),
                    None => Bound::Included(start.as_str()),
                };
                page(&table, bound, &end, start.len(), limit).map(Some)
            })
            .await
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Page> {
        let last = last.map(str::to_owned);
        self.db
            .read(move |txn| {
                let table = txn.open_table(REPOSITORIES).map_err(db_err)?;
                let bound = match &last {
                    Some(l) => Bound::Excluded(l.as_str()),
                    None => Bound::Unbounded,
                };
                // Repository names are below "\x7f" (ASCII); "\u{7f}" ends the range.
                page(&table, bound, "\u{7f}", 0, limit)
            })
            .await
    }

    async fn referencing(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Digest>> {
        let prefix = key(&[&digest.to_string(), repository.as_str()]);
        self.db.read(move |txn| digests(suffixes(&txn.open_table(BLOB_REFS).map_err(db_err)?, &prefix)?)).await
    }

    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>> {
        let repo = repository.to_string();
        let found = self
            .cached(
                |hot| &hot.referrers,
                key(&[&repo, &subject.to_string()]),
                move |txn, prefix| {
                    let refs = txn.open_table(REFERRERS).map_err(db_err)?;
                    let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                    let (start, end) = prefix_range(prefix);
                    let mut out = Vec::new();
                    for item in refs.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)? {
                        let (k, _) = item.map_err(db_err)?;
                        let referrer = &k.value()[start.len()..];
                        if let Some(v) = manifests.get(key(&[&repo, referrer]).as_str()).map_err(db_err)? {
                            out.push(decode(v.value())?);
                        }
                    }
                    Ok(Some(out))
                },
            )
            .await?;
        Ok(found.unwrap_or_default())
    }

    async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestEntry>> {
        let (repo, after) = (repository.to_string(), after.map(Digest::to_string));
        self.db
            .read(move |txn| {
                let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                let tables = EntryTables::open(txn)?;
                let mut out = Vec::new();
                for (k, v) in repo_range(&manifests, &repo, after.as_deref(), limit, |v| v.value().to_vec())? {
                    out.push(tables.entry(&repo, &k, decode(&v)?)?);
                }
                Ok(out)
            })
            .await
    }

    async fn artifacts(
        &self,
        repository: &RepositoryName,
        offset: usize,
        limit: usize,
    ) -> Result<registry_storage::listing::ArtifactPage> {
        let repo = repository.to_string();
        self.db
            .read(move |txn| {
                let (digests, total) = crate::listing::artifact_digests(txn, &repo, offset, limit)?;
                let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                let tables = EntryTables::open(txn)?;
                let mut out = Vec::with_capacity(digests.len());
                for digest in digests {
                    let k = key(&[&repo, &digest]);
                    if let Some(v) = manifests.get(k.as_str()).map_err(db_err)? {
                        out.push(tables.entry(&repo, &k, decode(v.value())?)?);
                    }
                }
                Ok(crate::listing::page(out, total))
            })
            .await
    }

    async fn manifest_entry(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestEntry>> {
        let (repo, k) = (repository.to_string(), key(&[repository.as_str(), &digest.to_string()]));
        self.db
            .read(move |txn| {
                let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                let Some(v) = manifests.get(k.as_str()).map_err(db_err)? else { return Ok(None) };
                Ok(Some(EntryTables::open(txn)?.entry(&repo, &k, decode(v.value())?)?))
            })
            .await
    }

    async fn repository_stats(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<registry_storage::listing::RepositoryStats>> {
        let repo = repository.to_string();
        self.db.read(move |txn| crate::listing::repository_stats(txn, &repo)).await
    }

    async fn project_repositories(
        &self,
        project: &str,
        offset: usize,
        limit: usize,
    ) -> Result<registry_storage::listing::RepositoryPage> {
        let project = project.to_owned();
        self.db.read(move |txn| crate::listing::project_repositories(txn, &project, offset, limit)).await
    }

    async fn gc_links(&self, repository: &RepositoryName, after: Option<&Digest>, limit: usize) -> Result<Vec<GcLink>> {
        let (repo, after) = (repository.to_string(), after.map(Digest::to_string));
        self.db
            .read(move |txn| {
                let links = txn.open_table(BLOB_LINKS).map_err(db_err)?;
                let holders = txn.open_table(HOLDERS).map_err(db_err)?;
                let refs = txn.open_table(BLOB_REFS).map_err(db_err)?;
                let mut out = Vec::new();
                for (k, size) in repo_range(&links, &repo, after.as_deref(), limit, |v| v.value())? {
                    let d = &k[repo.len() + 1..];
                    let digest = parse_digest(d)?;
                    let linked_at = holders.get(key(&[d, &repo, "b"]).as_str()).map_err(db_err)?.map(|v| v.value());
                    let referenced_by = digests(suffixes(&refs, &key(&[d, &repo]))?)?;
                    out.push(GcLink { digest, size, linked_at: linked_at.unwrap_or(0), referenced_by });
                }
                Ok(out)
            })
            .await
    }

    async fn gc_holders(&self, digests: &[Digest]) -> Result<Vec<Vec<Holder>>> {
        let digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
        self.db
            .read(move |txn| {
                let holders = txn.open_table(HOLDERS).map_err(db_err)?;
                digests.iter().map(|d| holders_of(&holders, d)).collect()
            })
            .await
    }

    async fn gc_delete_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        pushed_before: u64,
    ) -> Result<Vec<Digest>> {
        let repo = repository.to_string();
        let candidates = digests.to_vec();
        let keys: Vec<String> = digests.iter().map(|d| key(&[&repo, &d.to_string()])).collect();
        let now_ms = self.clock.now_millis();
        let result = self
            .db
            .write(move |txn| {
                let mut deleted = Vec::new();
                let (mut changes, mut touched) = (Changes::default(), Touched::default());
                for digest in candidates {
                    let d = digest.to_string();
                    let record: ManifestRecord = {
                        let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                        match manifests.get(key(&[&repo, &d]).as_str()).map_err(db_err)? {
                            Some(v) => decode(v.value())?,
                            None => continue,
                        }
                    };
                    let subject_present = match &record.subject {
                        Some(s) => {
                            let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                            manifests.get(key(&[&repo, &s.to_string()]).as_str()).map_err(db_err)?.is_some()
                        }
                        None => false,
                    };
                    let tagged = any_with_prefix(&txn.open_table(MANIFEST_TAGS).map_err(db_err)?, &key(&[&repo, &d]))?;
                    let referenced = any_with_prefix(&txn.open_table(BLOB_REFS).map_err(db_err)?, &key(&[&d, &repo]))?;
                    if tagged || referenced || subject_present || record.pushed_at > pushed_before {
                        continue;
                    }
                    remove_manifest(txn, &repo, &d, &mut changes, &mut touched)?;
                    deleted.push(digest);
                }
                crate::listing::settle(txn, &repo, touched)?;
                quota::settle(txn, &changes, now_ms)?;
                Ok(deleted)
            })
            .await;
        self.changed(|hot| {
            for k in &keys {
                hot.manifests.invalidate(k);
            }
            hot.referrers.clear();
        });
        result
    }

    async fn gc_unlink(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        linked_before: u64,
    ) -> Result<Vec<(Digest, u64)>> {
        let repo = repository.to_string();
        let candidates = digests.to_vec();
        let keys: Vec<String> = digests.iter().map(|d| key(&[&repo, &d.to_string()])).collect();
        let now_ms = self.clock.now_millis();
        let result = self
            .db
            .write(move |txn| {
                let mut removed = Vec::new();
                let mut changes = Changes::default();
                for digest in candidates {
                    let d = digest.to_string();
                    let referenced = any_with_prefix(&txn.open_table(BLOB_REFS).map_err(db_err)?, &key(&[&d, &repo]))?;
                    let since = {
                        let holders = txn.open_table(HOLDERS).map_err(db_err)?;
                        holders.get(key(&[&d, &repo, "b"]).as_str()).map_err(db_err)?.map(|v| v.value())
                    };
                    if referenced || since.is_some_and(|t| t > linked_before) {
                        continue;
                    }
                    if let Some(size) = unlink(txn, &repo, &d, &mut changes)? {
                        removed.push((digest, size));
                    }
                }
                quota::settle(txn, &changes, now_ms)?;
                Ok(removed)
            })
            .await;
        self.changed(|hot| {
            for k in &keys {
                hot.blob_links.invalidate(k);
            }
        });
        result
    }

    async fn gc_mark(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let candidates = digests.to_vec();
        let now = self.now();
        let held = self.held.clone();
        let now_millis = self.clock.now_millis();
        self.db
            .write(move |txn| {
                let holders = txn.open_table(HOLDERS).map_err(db_err)?;
                let mut collecting = txn.open_table(COLLECTING).map_err(db_err)?;
                let held = held.lock();
                let is_held = |d: &str| held.get(d).is_some_and(|hs| hs.iter().any(|(_, until)| *until > now_millis));
                let mut marked = Vec::new();
                for digest in candidates {
                    let d = digest.to_string();
                    if !any_with_prefix(&holders, &d)? && !is_held(&d) {
                        collecting.insert(d.as_str(), now).map_err(db_err)?;
                        marked.push(digest);
                    }
                }
                Ok(marked)
            })
            .await
    }

    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()> {
        let digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
        self.db
            .write(move |txn| {
                let mut collecting = txn.open_table(COLLECTING).map_err(db_err)?;
                for d in digests {
                    collecting.remove(d.as_str()).map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn gc_marked(&self, limit: usize) -> Result<Vec<Digest>> {
        self.db
            .read(move |txn| {
                let collecting = txn.open_table(COLLECTING).map_err(db_err)?;
                let mut out = Vec::new();
                for item in collecting.iter().map_err(db_err)?.take(limit) {
                    let (k, _) = item.map_err(db_err)?;
                    out.push(parse_digest(k.value())?);
                }
                Ok(out)
            })
            .await
    }

    async fn expired_uploads(&self, started_before: u64, limit: usize) -> Result<Vec<UploadId>> {
        self.db
            .read(move |txn| {
                let uploads = txn.open_table(UPLOADS).map_err(db_err)?;
                let mut out = Vec::new();
                for item in uploads.iter().map_err(db_err)? {
                    let (k, v) = item.map_err(db_err)?;
                    let record: UploadRecord = decode(v.value())?;
                    if record.started_at <= started_before {
                        out.push(UploadId::parse(k.value()).map_err(|e| Error::corrupt("an upload id", e))?);
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                Ok(out)
            })
            .await
    }
}
