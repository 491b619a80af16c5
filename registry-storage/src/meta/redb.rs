//! The [`MetadataStore`] on [redb](https://docs.rs/redb), an embedded, ACID, crash-safe B-tree
//! store in pure Rust.
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
//!
//! Each trait method is one write or read transaction; writes commit durably (fsync) before they
//! return.
//!
//! Tag resolutions, manifest records and blob links are cached in memory (bounded), which is exact
//! because this store alone writes its file (redb locks it): every write invalidates what it
//! changed (see [`super::cache`]).

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use registry_core::{Digest, RepositoryName, Tag};

use super::cache::{Cached, Generation};
use super::{ManifestRecord, MetadataStore, Page, UploadRecord};
use crate::blob::UploadId;
use crate::error::{Error, Result};

const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const REPOSITORIES: TableDefinition<&str, u8> = TableDefinition::new("repositories");
const BLOB_LINKS: TableDefinition<&str, u64> = TableDefinition::new("blob_links");
const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
const MANIFEST_TAGS: TableDefinition<&str, u8> = TableDefinition::new("manifest_tags");
const REFERRERS: TableDefinition<&str, u8> = TableDefinition::new("referrers");

/// The metadata store on a redb database (file or memory).
#[derive(Clone)]
pub struct RedbMetadataStore {
    db: Arc<Database>,
    hot: Arc<HotReads>,
}

/// The cached reads, keyed by their table keys.
struct HotReads {
    generation: Generation,
    tags: Cached<Digest>,
    manifests: Cached<ManifestRecord>,
    blob_links: Cached<u64>,
}

impl Default for HotReads {
    fn default() -> Self {
        HotReads {
            generation: Generation::default(),
            tags: Cached::new(64 << 10),
            manifests: Cached::new(16 << 10),
            blob_links: Cached::new(64 << 10),
        }
    }
}

impl std::fmt::Debug for RedbMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbMetadataStore").finish_non_exhaustive()
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
    Error::Backend(format!("metadata database: {}", e.into()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt(e.to_string()))
}

impl RedbMetadataStore {
    /// Opens (creating when needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbMetadataStore> {
        let db = Database::create(path.as_ref()).map_err(db_err)?;
        Self::init(db)
    }

    /// A database held in memory, for tests: the same code as the file store.
    pub fn in_memory() -> Result<RedbMetadataStore> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(db_err)?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<RedbMetadataStore> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(UPLOADS).map_err(db_err)?;
        txn.open_table(REPOSITORIES).map_err(db_err)?;
        txn.open_table(BLOB_LINKS).map_err(db_err)?;
        txn.open_table(MANIFESTS).map_err(db_err)?;
        txn.open_table(TAGS).map_err(db_err)?;
        txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
        txn.open_table(REFERRERS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(RedbMetadataStore { db: Arc::new(db), hot: Arc::default() })
    }

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
        let value = self.read(move |txn| f(txn, &k)).await?;
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

    /// Runs `f` in a write transaction on a blocking thread and commits it durably.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    {
        self.write_with(redb::Durability::Immediate, f).await
    }

    /// Runs `f` in a write transaction on a blocking thread and commits it with `durability`.
    async fn write_with<T, F>(&self, durability: redb::Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(durability).map_err(db_err)?;
            let out = f(&txn)?;
            txn.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
        .map_err(Error::backend)?
    }

    /// Runs `f` in a read transaction on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&txn)
        })
        .await
        .map_err(Error::backend)?
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

/// Links the blob of `link_key` (repo `\0` digest) into `repo`.
fn link(txn: &redb::WriteTransaction, repo: &str, link_key: &str, size: u64) -> Result<()> {
    txn.open_table(REPOSITORIES).map_err(db_err)?.insert(repo, 0).map_err(db_err)?;
    txn.open_table(BLOB_LINKS).map_err(db_err)?.insert(link_key, size).map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl MetadataStore for RedbMetadataStore {
    /// The new session is committed without its own fsync: it becomes durable with the next
    /// durable commit (at the latest the first acknowledged chunk's). A crash before that loses a
    /// session that holds no acknowledged byte; the client's next request on it gets
    /// `BLOB_UPLOAD_UNKNOWN` and it starts over, which every client does.
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        let (id, value) = (id.to_string(), encode(record)?);
        self.write_with(redb::Durability::None, move |txn| {
            txn.open_table(UPLOADS).map_err(db_err)?.insert(id.as_str(), value.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool> {
        let (id, value) = (id.to_string(), encode(record)?);
        self.write(move |txn| {
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
        self.read(move |txn| {
            let table = txn.open_table(UPLOADS).map_err(db_err)?;
            let value = table.get(id.as_str()).map_err(db_err)?;
            value.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool> {
        let id = id.to_string();
        self.write(move |txn| {
            let removed = txn.open_table(UPLOADS).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?.is_some();
            Ok(removed)
        })
        .await
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        let (repo, k) = (repository.to_string(), key(&[repository.as_str(), &digest.to_string()]));
        let k2 = k.clone();
        let result = self.write(move |txn| link(txn, &repo, &k2, size)).await;
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
        let (repo, k) = (repository.to_string(), key(&[repository.as_str(), &digest.to_string()]));
        let (k2, id) = (k.clone(), id.to_string());
        let result = self
            .write(move |txn| {
                link(txn, &repo, &k2, size)?;
                txn.open_table(UPLOADS).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?;
                Ok(())
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
        let k = key(&[repository.as_str(), &digest.to_string()]);
        let k2 = k.clone();
        let result = self
            .write(move |txn| {
                let removed =
                    txn.open_table(BLOB_LINKS).map_err(db_err)?.remove(k2.as_str()).map_err(db_err)?.is_some();
                Ok(removed)
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
    ) -> Result<()> {
        let repo = repository.to_string();
        let digest = record.digest.to_string();
        let subject = record.subject.as_ref().map(|s| s.to_string());
        let value = encode(record)?;
        let tag = tag.map(|t| t.to_string());
        let (manifest_key, tag_key) = (key(&[&repo, &digest]), tag.as_ref().map(|t| key(&[&repo, t])));
        let invalidate = (manifest_key.clone(), tag_key.clone());
        let result = self
            .write(move |txn| {
                txn.open_table(REPOSITORIES).map_err(db_err)?.insert(repo.as_str(), 0).map_err(db_err)?;
                txn.open_table(MANIFESTS)
                    .map_err(db_err)?
                    .insert(key(&[&repo, &digest]).as_str(), value.as_slice())
                    .map_err(db_err)?;
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
                    let mut reverse = txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
                    if let Some(previous) = previous {
                        reverse.remove(key(&[&repo, &previous, tag]).as_str()).map_err(db_err)?;
                    }
                    reverse.insert(key(&[&repo, &digest, tag]).as_str(), 0).map_err(db_err)?;
                }
                Ok(())
            })
            .await;
        let (manifest_key, tag_key) = invalidate;
        self.changed(|hot| {
            hot.manifests.invalidate(&manifest_key);
            if let Some(k) = &tag_key {
                hot.tags.invalidate(k);
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

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repository.to_string(), digest.to_string());
        let manifest_key = key(&[&repo, &digest]);
        let result = self
            .write(move |txn| {
                let mut manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
                let Some(old) = manifests.remove(key(&[&repo, &digest]).as_str()).map_err(db_err)? else {
                    return Ok(false);
                };
                let record: ManifestRecord = decode(old.value())?;
                drop(old);
                drop(manifests);
                if let Some(subject) = &record.subject {
                    txn.open_table(REFERRERS)
                        .map_err(db_err)?
                        .remove(key(&[&repo, &subject.to_string(), &digest]).as_str())
                        .map_err(db_err)?;
                }
                // Every tag pointing at it goes with it.
                let (start, end) = prefix_range(&key(&[&repo, &digest]));
                let mut reverse = txn.open_table(MANIFEST_TAGS).map_err(db_err)?;
                let tags: Vec<String> = reverse
                    .extract_from_if::<&str, _>(start.as_str()..end.as_str(), |_, _| true)
                    .map_err(db_err)?
                    .map(|item| item.map(|(k, _)| k.value()[start.len()..].to_owned()).map_err(db_err))
                    .collect::<Result<_>>()?;
                drop(reverse);
                let mut tag_table = txn.open_table(TAGS).map_err(db_err)?;
                for tag in tags {
                    tag_table.remove(key(&[&repo, &tag]).as_str()).map_err(db_err)?;
                }
                Ok(true)
            })
            .await;
        // The tags that pointed at it are gone too; deletions are rare, so all tags are forgotten.
        self.changed(|hot| {
            hot.manifests.invalidate(&manifest_key);
            hot.tags.clear();
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
                value.map(|v| Digest::parse(v.value()).map_err(|e| Error::Corrupt(e.to_string()))).transpose()
            },
        )
        .await
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool> {
        let (repo, tag) = (repository.to_string(), tag.to_string());
        let tag_key = key(&[&repo, &tag]);
        let result = self
            .write(move |txn| {
                let mut tags = txn.open_table(TAGS).map_err(db_err)?;
                let removed = tags.remove(key(&[&repo, &tag]).as_str()).map_err(db_err)?.map(|d| d.value().to_owned());
                drop(tags);
                let Some(digest) = removed else { return Ok(false) };
                txn.open_table(MANIFEST_TAGS)
                    .map_err(db_err)?
                    .remove(key(&[&repo, &digest, &tag]).as_str())
                    .map_err(db_err)?;
                Ok(true)
            })
            .await;
        self.changed(|hot| hot.tags.invalidate(&tag_key));
        result
    }

    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>> {
        let repo = repository.to_string();
        let last = last.map(str::to_owned);
        self.read(move |txn| {
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
        self.read(move |txn| {
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

    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>> {
        let (repo, subject) = (repository.to_string(), subject.to_string());
        self.read(move |txn| {
            let refs = txn.open_table(REFERRERS).map_err(db_err)?;
            let manifests = txn.open_table(MANIFESTS).map_err(db_err)?;
            let (start, end) = prefix_range(&key(&[&repo, &subject]));
            let mut out = Vec::new();
            for item in refs.range::<&str>(start.as_str()..end.as_str()).map_err(db_err)? {
                let (k, _) = item.map_err(db_err)?;
                let referrer = &k.value()[start.len()..];
                if let Some(v) = manifests.get(key(&[&repo, referrer]).as_str()).map_err(db_err)? {
                    out.push(decode(v.value())?);
                }
            }
            Ok(out)
        })
        .await
    }
}
