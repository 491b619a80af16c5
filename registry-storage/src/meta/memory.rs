//! [`MemoryMetadataStore`]: the [`MetadataStore`] in memory, for tests, examples and embedders who
//! keep nothing across restarts. (Its length is the trait's: 25 transactions, each short.)
//!
//! Every method takes one lock over the whole state, so each is one atomic step, exactly as a
//! transaction of a database store; the same conformance suite checks it and the durable stores.
//! The maps mirror the redb store's tables (see `registry-redb`), ordered the same way, so pages
//! list in the same order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use registry_core::event::{Event, EventFilter};

use crate::immutable::Protection;
use crate::jobs::{Heartbeat, Job, JobCount, JobFilter, JobOutcome, JobQueue, JobTable, JobUpdate, KindLimit, NewJob};
use crate::listing::{ArtifactPage, RepositoryPage, RepositoryStats, Touched, is_artifact, listed_change};
use crate::policies::{PolicyRecord, PolicyStore, PolicyTable};
use crate::quota::{Change, Changes, Holding, Quota, QuotaStore, project_of};
use crate::reports::{ReportStore, ReportTable, ScanReport};
use registry_core::{Digest, RepositoryName, SharedClock, Tag};

use super::{GcLink, Holder, ManifestEntry, ManifestRecord, MetadataStore, Page, Pulls, UploadRecord};
use crate::blob::UploadId;
use crate::error::{Error, Result};

type RepoKey = (String, String);

#[derive(Default)]
struct State {
    uploads: HashMap<String, UploadRecord>,
    repositories: BTreeSet<String>,
    /// (repository, digest) -> size.
    blob_links: BTreeMap<RepoKey, u64>,
    /// (repository, digest) -> record.
    manifests: BTreeMap<RepoKey, ManifestRecord>,
    /// (repository, tag) -> digest.
    tags: BTreeMap<RepoKey, String>,
    /// (repository, digest, tag).
    manifest_tags: BTreeSet<(String, String, String)>,
    /// (repository, subject, referrer).
    referrers: BTreeSet<(String, String, String)>,
    /// (digest, repository, is a manifest) -> since (seconds).
    holders: BTreeMap<(String, String, bool), u64>,
    /// (digest, repository, referencing manifest).
    blob_refs: BTreeSet<(String, String, String)>,
    /// digest -> marked since (seconds).
    collecting: BTreeMap<String, u64>,
    /// (digest, holder) -> held until (milliseconds).
    held: BTreeMap<(String, u64), u64>,
    /// The event stream, by id.
    events: BTreeMap<u64, Event>,
    /// The last event id given.
    last_event: u64,
    /// Consumers' cursors.
    cursors: BTreeMap<String, u64>,
    /// The job queue.
    jobs: JobTable,
    /// The policies.
    policies: PolicyTable,
    /// The scan reports.
    reports: ReportTable,
    /// (repository, digest) -> pulls.
    pulls: BTreeMap<RepoKey, Pulls>,
    /// (project, digest) -> its size and holders inside the project.
    holdings: BTreeMap<(String, String), Holding>,
    /// project -> quota.
    quotas: BTreeMap<String, Quota>,
    /// (repository, digest, label).
    labels: BTreeSet<(String, String, u64)>,
    /// The artifact index: (repository, push time newest first, digest).
    artifacts: BTreeSet<(String, Reverse<u64>, String)>,
    /// (repository, digest) -> push time, for the manifests in `artifacts`.
    artifact_at: BTreeMap<RepoKey, u64>,
    /// repository -> its counts.
    repository_stats: BTreeMap<String, RepositoryStats>,
    /// The listed repositories: (project, newest push first, repository).
    listed: BTreeSet<(String, Reverse<u64>, String)>,
    /// project -> how many repositories it lists.
    listed_count: BTreeMap<String, u64>,
}

/// The metadata store in memory. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemoryMetadataStore {
    state: Arc<Mutex<State>>,
    clock: SharedClock,
}

impl std::fmt::Debug for MemoryMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMetadataStore").finish_non_exhaustive()
    }
}

impl Default for MemoryMetadataStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMetadataStore {
    /// An empty store dating links by the system clock.
    pub fn new() -> MemoryMetadataStore {
        Self::with_clock(registry_core::time::system_clock())
    }

    /// An empty store dating links and marks by `clock`.
    pub fn with_clock(clock: SharedClock) -> MemoryMetadataStore {
        MemoryMetadataStore { state: Arc::default(), clock }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn rk(repo: &RepositoryName, digest: &Digest) -> RepoKey {
    (repo.to_string(), digest.to_string())
}

fn parse_digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|e| Error::corrupt(format!("digest {text:?}"), e))
}

impl State {
    fn not_collecting(&self, digest: &str) -> Result<()> {
        if self.collecting.contains_key(digest) {
            return Err(Error::Collecting { digest: digest.to_owned() });
        }
        Ok(())
    }

    /// Links a blob, its project's usage checked and kept.
    fn link(&mut self, repo: &str, digest: &str, size: u64, now: u64, now_ms: u64) -> Result<()> {
        self.not_collecting(digest)?;
        self.admit(repo, self.growth(repo, digest, false, size))?;
        self.repositories.insert(repo.to_owned());
        self.blob_links.insert((repo.to_owned(), digest.to_owned()), size);
        let mut changes = Changes::default();
        self.hold(repo, digest, false, size, now, &mut changes);
        self.settle(&changes, now_ms)
    }

    fn unlink(&mut self, repo: &str, digest: &str, changes: &mut Changes) -> Option<u64> {
        let size = self.blob_links.remove(&(repo.to_owned(), digest.to_owned()));
        self.release(repo, digest, false, changes);
        size
    }

    /// The bytes a new holder of `digest` in `repo` would add to its project: the size, unless
    /// the holder exists or the project holds the digest already.
    fn growth(&self, repo: &str, digest: &str, manifest: bool, size: u64) -> u64 {
        if self.holders.contains_key(&(digest.to_owned(), repo.to_owned(), manifest)) {
            return 0;
        }
        match self.holdings.get(&(project_of(repo).to_owned(), digest.to_owned())) {
            Some(h) if h.holders > 0 => 0,
            _ => size,
        }
    }

    /// Refuses `grow` bytes more in `repo`'s project when they pass its limit (before any change
    /// is made: this store has no rollback).
    fn admit(&self, repo: &str, grow: u64) -> Result<()> {
        if grow == 0 {
            return Ok(());
        }
        let project = project_of(repo);
        let quota = self.quotas.get(project).cloned().unwrap_or_else(|| Quota::new(project, 0));
        quota.admit(Change { grow, shrink: 0 }, 0, repo).map(drop)
    }

    /// Adds a holder of `digest` in `repo`, counting the digest in its project when new there.
    fn hold(&mut self, repo: &str, digest: &str, manifest: bool, size: u64, since: u64, changes: &mut Changes) {
        if self.holders.insert((digest.to_owned(), repo.to_owned(), manifest), since).is_none() {
            let holding = self.holdings.entry((project_of(repo).to_owned(), digest.to_owned())).or_default();
            changes.grow(repo, holding.hold(size));
        }
    }

    /// Removes a holder, taking the digest out of its project's usage with its last holder there.
    fn release(&mut self, repo: &str, digest: &str, manifest: bool, changes: &mut Changes) {
        if self.holders.remove(&(digest.to_owned(), repo.to_owned(), manifest)).is_none() {
            return;
        }
        let key = (project_of(repo).to_owned(), digest.to_owned());
        if let Some(holding) = self.holdings.get_mut(&key) {
            changes.shrink(repo, holding.release());
            if holding.holders == 0 {
                self.holdings.remove(&key);
            }
        }
    }

    /// Moves the quotas by `changes` (admitted before), recording the warnings they cross.
    fn settle(&mut self, changes: &Changes, now_ms: u64) -> Result<()> {
        for (project, change, repo) in changes.iter() {
            let quota = self.quotas.get(project).cloned().unwrap_or_else(|| Quota::new(project, now_ms));
            let (after, warning) = quota.admit(change, now_ms, repo)?;
            self.quotas.insert(project.to_owned(), after);
            if let Some(warning) = warning {
                self.record(&[warning]);
            }
        }
        Ok(())
    }

    fn tags_of(&self, repo: &str, digest: &str) -> Vec<String> {
        let start = (repo.to_owned(), digest.to_owned(), String::new());
        self.manifest_tags
            .range(start..)
            .take_while(|(r, d, _)| r == repo && d == digest)
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    fn referenced_in(&self, digest: &str, repo: &str) -> Vec<String> {
        let start = (digest.to_owned(), repo.to_owned(), String::new());
        self.blob_refs
            .range(start..)
            .take_while(|(d, r, _)| d == digest && r == repo)
            .map(|(_, _, m)| m.clone())
            .collect()
    }

    fn remove_manifest(
        &mut self,
        repo: &str,
        digest: &str,
        changes: &mut Changes,
        touched: &mut Touched,
    ) -> Option<ManifestRecord> {
        let record = self.manifests.remove(&(repo.to_owned(), digest.to_owned()))?;
        let pulls = self.pulls.remove(&(repo.to_owned(), digest.to_owned())).unwrap_or_default();
        touched.removed(&record, pulls.count);
        let labelled: Vec<_> = self
            .labels
            .range((repo.to_owned(), digest.to_owned(), 0)..)
            .take_while(|(r, d, _)| r == repo && d == digest)
            .cloned()
            .collect();
        for key in labelled {
            self.labels.remove(&key);
        }
        if let Some(subject) = &record.subject {
            self.referrers.remove(&(repo.to_owned(), subject.to_string(), digest.to_owned()));
        }
        for tag in self.tags_of(repo, digest) {
            self.manifest_tags.remove(&(repo.to_owned(), digest.to_owned(), tag.clone()));
            self.tags.remove(&(repo.to_owned(), tag));
        }
        self.release(repo, digest, true, changes);
        for r in &record.references {
            self.blob_refs.remove(&(r.to_string(), repo.to_owned(), digest.to_owned()));
        }
        Some(record)
    }

    /// Recomputes the artifact index for what `touched` names and moves the repository's counts
    /// (see [`crate::listing`]).
    fn settle_listing(&mut self, repo: &str, touched: Touched) {
        let mut change = touched.change;
        for digest in &touched.digests {
            let key = (repo.to_owned(), digest.clone());
            let now = self.manifests.get(&key).and_then(|record| {
                let referenced = !self.referenced_in(digest, repo).is_empty();
                // Its tags up to the first that is not cosign's: enough for the rule.
                let mut tags = Vec::new();
                let start = (repo.to_owned(), digest.clone(), String::new());
                for (_, _, tag) in self.manifest_tags.range(start..).take_while(|(r, d, _)| r == repo && d == digest) {
                    tags.push(tag.as_str());
                    if crate::listing::cosign_tag(tag).is_none() {
                        break;
                    }
                }
                is_artifact(record.subject.is_some(), referenced, &tags).then_some(record.pushed_at)
            });
            let before = self.artifact_at.get(&key).copied();
            if now == before {
                continue;
            }
            if let Some(at) = before {
                self.artifacts.remove(&(repo.to_owned(), Reverse(at), digest.clone()));
                self.artifact_at.remove(&key);
                change.artifacts -= 1;
            }
            if let Some(at) = now {
                self.artifacts.insert((repo.to_owned(), Reverse(at), digest.clone()));
                self.artifact_at.insert(key, at);
                change.artifacts += 1;
            }
        }
        if change.is_empty() {
            return;
        }
        let old = self.repository_stats.get(repo).cloned();
        let new = change.apply(repo, old.as_ref());
        let project = project_of(repo).to_owned();
        if let Some(old) = old.as_ref().filter(|o| o.listed()) {
            self.listed.remove(&(project.clone(), Reverse(old.updated), repo.to_owned()));
        }
        if let Some(new) = new.as_ref().filter(|n| n.listed()) {
            self.listed.insert((project.clone(), Reverse(new.updated), repo.to_owned()));
        }
        let count = self.listed_count.entry(project).or_default();
        *count = count.saturating_add_signed(listed_change(old.as_ref(), new.as_ref()));
        match new {
            Some(new) => self.repository_stats.insert(repo.to_owned(), new),
            None => self.repository_stats.remove(repo),
        };
    }

    /// A manifest with what points at it.
    fn entry(&self, repo: &str, digest: &str, record: &ManifestRecord) -> Result<ManifestEntry> {
        let tags = self.tags_of(repo, digest);
        let referenced_by = self.referenced_in(digest, repo).iter().map(|m| parse_digest(m)).collect::<Result<_>>()?;
        let pulls = self.pulls.get(&(repo.to_owned(), digest.to_owned())).copied().unwrap_or_default();
        let labels = self
            .labels
            .range((repo.to_owned(), digest.to_owned(), 0)..)
            .take_while(|(r, d, _)| r == repo && d == digest)
            .map(|(_, _, l)| *l)
            .collect();
        Ok(ManifestEntry { record: record.clone(), tags, referenced_by, pulls, labels })
    }

    fn record(&mut self, events: &[Event]) {
        for event in events {
            if let Some((repo, digest)) = Pulls::of_event(event) {
                let key = (repo.to_owned(), digest.to_owned());
                if self.manifests.contains_key(&key) {
                    let pulls = self.pulls.entry(key).or_default();
                    *pulls = pulls.add(event.count, event.time_ms);
                    let mut touched = Touched::default();
                    touched.change.pulls = i64::try_from(event.count).unwrap_or(i64::MAX);
                    self.settle_listing(repo, touched);
                }
            }
            self.last_event += 1;
            self.events.insert(self.last_event, Event { id: self.last_event, ..event.clone() });
        }
    }

    fn held(&self, digest: &str, now_millis: u64) -> bool {
        self.held
            .range((digest.to_owned(), 0)..)
            .take_while(|((d, _), _)| d == digest)
            .any(|(_, until)| *until > now_millis)
    }

    fn holds(&self, digest: &str) -> bool {
        self.holders.range((digest.to_owned(), String::new(), false)..).next().is_some_and(|((d, _, _), _)| d == digest)
    }
}

/// Up to `limit` keys after `after` among those of `repo` in a (repository, x) ordered map.
fn repo_page<'a, V>(
    map: &'a BTreeMap<RepoKey, V>,
    repo: &str,
    after: Option<&str>,
) -> impl Iterator<Item = (&'a RepoKey, &'a V)> + 'a {
    let lower = match after {
        Some(a) => Bound::Excluded((repo.to_owned(), a.to_owned())),
        None => Bound::Included((repo.to_owned(), String::new())),
    };
    let repo = repo.to_owned();
    map.range((lower, Bound::Unbounded)).take_while(move |((r, _), _)| *r == repo)
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn create_upload(&self, id: &UploadId, record: &UploadRecord) -> Result<()> {
        self.lock().uploads.insert(id.to_string(), record.clone());
        Ok(())
    }

    async fn update_upload(&self, id: &UploadId, expected_offset: u64, record: &UploadRecord) -> Result<bool> {
        let mut state = self.lock();
        match state.uploads.get_mut(id.as_str()) {
            Some(current) if current.offset == expected_offset => {
                *current = record.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        Ok(self.lock().uploads.get(id.as_str()).cloned())
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool> {
        Ok(self.lock().uploads.remove(id.as_str()).is_some())
    }

    async fn hold_digest(&self, digest: &Digest, holder: u64, until_millis: u64) -> Result<()> {
        let mut state = self.lock();
        let d = digest.to_string();
        state.not_collecting(&d)?;
        state.held.insert((d, holder), until_millis);
        Ok(())
    }

    async fn release_digest(&self, digest: &Digest, holder: u64) -> Result<()> {
        self.lock().held.remove(&(digest.to_string(), holder));
        Ok(())
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()> {
        let (now, now_ms) = (self.clock.now_secs(), self.clock.now_millis());
        self.lock().link(repository.as_str(), &digest.to_string(), size, now, now_ms)
    }

    async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let (now, now_ms) = (self.clock.now_secs(), self.clock.now_millis());
        let mut state = self.lock();
        state.link(repository.as_str(), &digest.to_string(), size, now, now_ms)?;
        state.uploads.remove(id.as_str());
        Ok(())
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let (now, now_ms) = (self.clock.now_secs(), self.clock.now_millis());
        let mut state = self.lock();
        let Some(size) = state.blob_links.get(&rk(from, digest)).copied() else { return Ok(None) };
        state.link(repository.as_str(), &digest.to_string(), size, now, now_ms)?;
        Ok(Some(size))
    }

    async fn blob_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.lock().blob_links.get(&rk(repository, digest)).copied())
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        let mut changes = Changes::default();
        let unlinked = state.unlink(repository.as_str(), &digest.to_string(), &mut changes).is_some();
        state.settle(&changes, now_ms)?;
        Ok(unlinked)
    }

    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        protection: &Protection,
        events: &[Event],
    ) -> Result<()> {
        let repo = repository.to_string();
        let digest = record.digest.to_string();
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        state.not_collecting(&digest)?;
        for r in &record.references {
            let k = (repo.clone(), r.to_string());
            if !state.blob_links.contains_key(&k) && !state.manifests.contains_key(&k) {
                return Err(Error::ManifestBlobUnknown { digest: r.clone() });
            }
        }
        if let Some(tag) = tag
            && state.tags.get(&(repo.clone(), tag.to_string())).is_some_and(|d| *d != digest)
        {
            protection.check(&repo, tag.as_str(), "pushing another manifest as")?;
        }
        state.admit(&repo, state.growth(&repo, &digest, true, record.size))?;
        let mut changes = Changes::default();
        state.hold(&repo, &digest, true, record.size, record.pushed_at, &mut changes);
        for r in &record.references {
            state.blob_refs.insert((r.to_string(), repo.clone(), digest.clone()));
        }
        state.repositories.insert(repo.clone());
        let mut touched = Touched::default();
        let old = state.manifests.insert((repo.clone(), digest.clone()), record.clone());
        touched.written(record, old.is_none());
        if let Some(subject) = &record.subject {
            state.referrers.insert((repo.clone(), subject.to_string(), digest.clone()));
        }
        if let Some(tag) = tag {
            let previous = state.tags.insert((repo.clone(), tag.to_string()), digest.clone());
            if let Some(previous) = previous {
                state.manifest_tags.remove(&(repo.clone(), previous.clone(), tag.to_string()));
                touched.retagged(&previous);
            }
            state.manifest_tags.insert((repo.clone(), digest, tag.to_string()));
        }
        state.settle_listing(&repo, touched);
        state.record(events);
        state.settle(&changes, now_ms)
    }

    async fn get_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        Ok(self.lock().manifests.get(&rk(repository, digest)).cloned())
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        let (repo, d) = (repository.as_str(), digest.to_string());
        for tag in state.tags_of(repo, &d) {
            protection.check(repo, &tag, &format!("deleting {digest}, which carries it"))?;
        }
        let (mut changes, mut touched) = (Changes::default(), Touched::default());
        let removed = state.remove_manifest(repo, &d, &mut changes, &mut touched).is_some();
        state.settle_listing(repo, touched);
        if removed {
            state.record(events);
        }
        state.settle(&changes, now_ms)?;
        Ok(removed)
    }

    async fn resolve_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<Digest>> {
        let state = self.lock();
        state.tags.get(&(repository.to_string(), tag.to_string())).map(|d| parse_digest(d)).transpose()
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        protection: &Protection,
        events: &[Event],
    ) -> Result<bool> {
        let mut state = self.lock();
        if state.tags.contains_key(&(repository.to_string(), tag.to_string())) {
            protection.check(repository.as_str(), tag.as_str(), "deleting")?;
        }
        let Some(digest) = state.tags.remove(&(repository.to_string(), tag.to_string())) else { return Ok(false) };
        state.manifest_tags.remove(&(repository.to_string(), digest.clone(), tag.to_string()));
        let mut touched = Touched::default();
        touched.retagged(&digest);
        state.settle_listing(repository.as_str(), touched);
        state.record(events);
        Ok(true)
    }

    async fn set_label(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        label: u64,
        on: bool,
        events: &[Event],
    ) -> Result<bool> {
        let mut state = self.lock();
        let key = rk(repository, digest);
        if !state.manifests.contains_key(&key) {
            return Err(Error::ManifestUnknown { reference: digest.to_string() });
        }
        let entry = (key.0, key.1, label);
        let changed = if on { state.labels.insert(entry) } else { state.labels.remove(&entry) };
        if changed {
            state.record(events);
        }
        Ok(changed)
    }

    async fn drop_label(&self, label: u64) -> Result<u64> {
        let mut state = self.lock();
        let before = state.labels.len();
        state.labels.retain(|(_, _, l)| *l != label);
        Ok((before - state.labels.len()) as u64)
    }

    async fn append_events(&self, events: &[Event]) -> Result<()> {
        self.lock().record(events);
        Ok(())
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        Ok(self.lock().events.range(after + 1..).take(limit).map(|(_, e)| e.clone()).collect())
    }

    async fn query_events(&self, filter: &EventFilter, offset: usize, limit: usize) -> Result<(Vec<Event>, u64)> {
        let state = self.lock();
        let matching: Vec<&Event> = state.events.values().rev().filter(|e| filter.matches(e)).collect();
        let page = matching.iter().skip(offset).take(limit).map(|e| (*e).clone()).collect();
        Ok((page, matching.len() as u64))
    }

    async fn trim_events(&self, before_ms: u64) -> Result<u64> {
        let mut state = self.lock();
        let old: Vec<u64> = state.events.iter().filter(|(_, e)| e.time_ms < before_ms).map(|(id, _)| *id).collect();
        for id in &old {
            state.events.remove(id);
        }
        Ok(old.len() as u64)
    }

    async fn cursor(&self, name: &str) -> Result<u64> {
        Ok(self.lock().cursors.get(name).copied().unwrap_or(0))
    }

    async fn advance_cursor(&self, name: &str, from: u64, to: u64) -> Result<bool> {
        let mut state = self.lock();
        let at = state.cursors.get(name).copied().unwrap_or(0);
        if at != from {
            return Ok(false);
        }
        state.cursors.insert(name.to_owned(), to);
        Ok(true)
    }

    async fn list_tags(&self, repository: &RepositoryName, last: Option<&str>, limit: usize) -> Result<Option<Page>> {
        let state = self.lock();
        if !state.repositories.contains(repository.as_str()) {
            return Ok(None);
        }
        let mut entries: Vec<String> =
            repo_page(&state.tags, repository.as_str(), last).take(limit + 1).map(|((_, t), _)| t.clone()).collect();
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(Some(Page { entries, more }))
    }

    async fn list_repositories(&self, last: Option<&str>, limit: usize) -> Result<Page> {
        let state = self.lock();
        let lower = match last {
            Some(l) => Bound::Excluded(l.to_owned()),
            None => Bound::Unbounded,
        };
        let mut entries: Vec<String> =
            state.repositories.range((lower, Bound::Unbounded)).take(limit + 1).cloned().collect();
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(Page { entries, more })
    }

    async fn referencing(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<Digest>> {
        let state = self.lock();
        state.referenced_in(&digest.to_string(), repository.as_str()).iter().map(|m| parse_digest(m)).collect()
    }

    async fn referrers(&self, repository: &RepositoryName, subject: &Digest) -> Result<Vec<ManifestRecord>> {
        let state = self.lock();
        let (repo, subject) = (repository.to_string(), subject.to_string());
        let start = (repo.clone(), subject.clone(), String::new());
        Ok(state
            .referrers
            .range(start..)
            .take_while(|(r, s, _)| *r == repo && *s == subject)
            .filter_map(|(_, _, referrer)| state.manifests.get(&(repo.clone(), referrer.clone())).cloned())
            .collect())
    }

    async fn manifests(
        &self,
        repository: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestEntry>> {
        let state = self.lock();
        let (repo, after) = (repository.to_string(), after.map(Digest::to_string));
        let mut out = Vec::new();
        for ((_, digest), record) in repo_page(&state.manifests, &repo, after.as_deref()).take(limit) {
            out.push(state.entry(&repo, digest, record)?);
        }
        Ok(out)
    }

    async fn artifacts(&self, repository: &RepositoryName, offset: usize, limit: usize) -> Result<ArtifactPage> {
        let state = self.lock();
        let repo = repository.to_string();
        let total = state.repository_stats.get(&repo).map_or(0, |s| s.artifacts);
        let mut entries = Vec::new();
        let start = (repo.clone(), Reverse(u64::MAX), String::new());
        for (_, _, digest) in state.artifacts.range(start..).take_while(|(r, _, _)| *r == repo).skip(offset).take(limit)
        {
            if let Some(record) = state.manifests.get(&(repo.clone(), digest.clone())) {
                entries.push(state.entry(&repo, digest, record)?);
            }
        }
        Ok(ArtifactPage { entries, total })
    }

    async fn manifest_entry(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestEntry>> {
        let state = self.lock();
        let (repo, d) = rk(repository, digest);
        state.manifests.get(&(repo.clone(), d.clone())).map(|record| state.entry(&repo, &d, record)).transpose()
    }

    async fn repository_stats(&self, repository: &RepositoryName) -> Result<Option<RepositoryStats>> {
        Ok(self.lock().repository_stats.get(repository.as_str()).cloned())
    }

    async fn project_repositories(&self, project: &str, offset: usize, limit: usize) -> Result<RepositoryPage> {
        let state = self.lock();
        let total = state.listed_count.get(project).copied().unwrap_or(0);
        let start = (project.to_owned(), Reverse(u64::MAX), String::new());
        let entries = state
            .listed
            .range(start..)
            .take_while(|(p, _, _)| p == project)
            .skip(offset)
            .take(limit)
            .filter_map(|(_, _, repo)| state.repository_stats.get(repo).cloned())
            .collect();
        Ok(RepositoryPage { entries, total })
    }

    async fn gc_links(&self, repository: &RepositoryName, after: Option<&Digest>, limit: usize) -> Result<Vec<GcLink>> {
        let state = self.lock();
        let (repo, after) = (repository.to_string(), after.map(Digest::to_string));
        let mut out = Vec::new();
        for ((_, digest), size) in repo_page(&state.blob_links, &repo, after.as_deref()).take(limit) {
            let linked_at = state.holders.get(&(digest.clone(), repo.clone(), false)).copied().unwrap_or(0);
            let referenced_by =
                state.referenced_in(digest, &repo).iter().map(|m| parse_digest(m)).collect::<Result<_>>()?;
            out.push(GcLink { digest: parse_digest(digest)?, size: *size, linked_at, referenced_by });
        }
        Ok(out)
    }

    async fn gc_holders(&self, digests: &[Digest]) -> Result<Vec<Vec<Holder>>> {
        let state = self.lock();
        Ok(digests
            .iter()
            .map(|d| {
                let d = d.to_string();
                state
                    .holders
                    .range((d.clone(), String::new(), false)..)
                    .take_while(|((digest, _, _), _)| *digest == d)
                    .map(|((_, repository, manifest), _)| Holder {
                        repository: repository.clone(),
                        manifest: *manifest,
                    })
                    .collect()
            })
            .collect())
    }

    async fn gc_delete_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        pushed_before: u64,
    ) -> Result<Vec<Digest>> {
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        let repo = repository.to_string();
        let mut deleted = Vec::new();
        let (mut changes, mut touched) = (Changes::default(), Touched::default());
        for digest in digests {
            let d = digest.to_string();
            let Some(record) = state.manifests.get(&(repo.clone(), d.clone())) else { continue };
            let subject_present =
                record.subject.as_ref().is_some_and(|s| state.manifests.contains_key(&(repo.clone(), s.to_string())));
            let tagged = !state.tags_of(&repo, &d).is_empty();
            let referenced = !state.referenced_in(&d, &repo).is_empty();
            if tagged || referenced || subject_present || record.pushed_at > pushed_before {
                continue;
            }
            state.remove_manifest(&repo, &d, &mut changes, &mut touched);
            deleted.push(digest.clone());
        }
        state.settle_listing(&repo, touched);
        state.settle(&changes, now_ms)?;
        Ok(deleted)
    }

    async fn gc_unlink(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        linked_before: u64,
    ) -> Result<Vec<(Digest, u64)>> {
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        let repo = repository.to_string();
        let mut removed = Vec::new();
        let mut changes = Changes::default();
        for digest in digests {
            let d = digest.to_string();
            let referenced = !state.referenced_in(&d, &repo).is_empty();
            let since = state.holders.get(&(d.clone(), repo.clone(), false)).copied();
            if referenced || since.is_some_and(|t| t > linked_before) {
                continue;
            }
            if let Some(size) = state.unlink(&repo, &d, &mut changes) {
                removed.push((digest.clone(), size));
            }
        }
        state.settle(&changes, now_ms)?;
        Ok(removed)
    }

    async fn gc_mark(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let now = self.clock.now_secs();
        let now_millis = self.clock.now_millis();
        let mut state = self.lock();
        let mut marked = Vec::new();
        for digest in digests {
            let d = digest.to_string();
            if !state.holds(&d) && !state.held(&d, now_millis) {
                state.collecting.insert(d, now);
                marked.push(digest.clone());
            }
        }
        Ok(marked)
    }

    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()> {
        let mut state = self.lock();
        for d in digests {
            state.collecting.remove(&d.to_string());
        }
        Ok(())
    }

    async fn gc_marked(&self, limit: usize) -> Result<Vec<Digest>> {
        self.lock().collecting.keys().take(limit).map(|d| parse_digest(d)).collect()
    }

    async fn expired_uploads(&self, started_before: u64, limit: usize) -> Result<Vec<UploadId>> {
        let state = self.lock();
        let mut ids: Vec<&String> =
            state.uploads.iter().filter(|(_, r)| r.started_at <= started_before).map(|(id, _)| id).collect();
        ids.sort();
        ids.into_iter()
            .take(limit)
            .map(|id| UploadId::parse(id).map_err(|e| Error::corrupt(format!("upload id {id:?}"), e)))
            .collect()
    }
}

#[async_trait]
impl JobQueue for MemoryMetadataStore {
    async fn enqueue(&self, job: &NewJob, now_ms: u64) -> Result<(u64, bool)> {
        Ok(self.lock().jobs.enqueue(job, now_ms))
    }

    async fn claim(&self, kinds: &[KindLimit], worker: &str, now_ms: u64, lease_ms: u64) -> Result<Option<Job>> {
        Ok(self.lock().jobs.claim(kinds, worker, now_ms, lease_ms))
    }

    async fn heartbeat(
        &self,
        id: u64,
        claim: u64,
        lease_until_ms: u64,
        now_ms: u64,
        update: &JobUpdate,
    ) -> Result<Heartbeat> {
        Ok(self.lock().jobs.get_mut(id).map_or(Heartbeat::Lost, |j| j.beat(claim, lease_until_ms, now_ms, update)))
    }

    async fn finish(&self, id: u64, claim: u64, outcome: &JobOutcome, now_ms: u64) -> Result<bool> {
        Ok(self.lock().jobs.get_mut(id).is_some_and(|j| j.finish(claim, outcome, now_ms)))
    }

    async fn cancel_job(&self, id: u64, now_ms: u64) -> Result<Option<Job>> {
        let mut state = self.lock();
        Ok(state.jobs.get_mut(id).map(|j| {
            j.cancel(now_ms);
            j.clone()
        }))
    }

    async fn job(&self, id: u64) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(id).cloned())
    }

    async fn jobs(&self, filter: &JobFilter, offset: usize, limit: usize) -> Result<(Vec<Job>, u64)> {
        Ok(self.lock().jobs.list(filter, offset, limit))
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>> {
        Ok(self.lock().jobs.counts())
    }

    async fn trim_jobs(&self, before_ms: u64) -> Result<u64> {
        Ok(self.lock().jobs.trim(before_ms))
    }

    async fn trim_jobs_beyond(&self, kind: &str, keep: u64, at_most: u64) -> Result<u64> {
        Ok(self.lock().jobs.trim_beyond(kind, keep, at_most))
    }
}

#[async_trait]
impl PolicyStore for MemoryMetadataStore {
    async fn put_policy(&self, policy: &PolicyRecord, events: &[Event]) -> Result<u64> {
        let now = self.clock.now_millis();
        let mut state = self.lock();
        let id = state.policies.put(policy, now)?;
        state.record(events);
        Ok(id)
    }

    async fn policy(&self, kind: &str, id: u64) -> Result<Option<PolicyRecord>> {
        Ok(self.lock().policies.policy(kind, id))
    }

    async fn policies(&self, kind: &str, project_id: Option<u64>) -> Result<Vec<PolicyRecord>> {
        Ok(self.lock().policies.list(kind, project_id))
    }

    async fn delete_policy(&self, kind: &str, id: u64, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        let deleted = state.policies.delete(kind, id);
        if deleted {
            state.record(events);
        }
        Ok(deleted)
    }

    async fn all_policies(&self) -> Result<Vec<PolicyRecord>> {
        Ok(self.lock().policies.all())
    }

    async fn import_policy(&self, policy: &PolicyRecord) -> Result<()> {
        self.lock().policies.import(policy);
        Ok(())
    }
}

#[async_trait]
impl ReportStore for MemoryMetadataStore {
    async fn put_report(&self, report: &ScanReport, replaces: Option<&str>, events: &[Event]) -> Result<bool> {
        let mut state = self.lock();
        let stored = state.reports.put(report, replaces);
        if stored {
            state.record(events);
        }
        Ok(stored)
    }

    async fn reports(&self, digest: &Digest) -> Result<Vec<ScanReport>> {
        Ok(self.lock().reports.of(digest))
    }

    async fn delete_reports(&self, digest: &Digest) -> Result<u64> {
        Ok(self.lock().reports.delete(digest))
    }

    async fn reports_after(&self, after: Option<&(Digest, String, String)>, limit: usize) -> Result<Vec<ScanReport>> {
        Ok(self.lock().reports.after(after, limit))
    }
}

#[async_trait]
impl QuotaStore for MemoryMetadataStore {
    async fn quota(&self, project: &str) -> Result<Option<Quota>> {
        Ok(self.lock().quotas.get(project).cloned())
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        Ok(self.lock().quotas.values().cloned().collect())
    }

    async fn set_quota(&self, project: &str, limit: Option<u64>, warn_percent: u8, events: &[Event]) -> Result<Quota> {
        let now_ms = self.clock.now_millis();
        let mut state = self.lock();
        let quota = state.quotas.entry(project.to_owned()).or_insert_with(|| Quota::new(project, now_ms));
        quota.limit = limit;
        quota.warn_percent = warn_percent;
        quota.updated_ms = now_ms;
        let quota = quota.clone();
        state.record(events);
        Ok(quota)
    }

    async fn remove_quota(&self, project: &str) -> Result<bool> {
        let mut state = self.lock();
        if state.quotas.get(project).is_some_and(|q| q.used > 0) {
            return Ok(false);
        }
        state.quotas.remove(project);
        Ok(true)
    }
}
