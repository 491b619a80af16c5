//! Online garbage collection: reclaims what nothing references while the registry keeps serving
//! pushes and pulls (no read-only window).
//!
//! # What is collected, in order
//!
//! 1. With [`GcOptions::delete_untagged`]: manifests no tag points at, no index of the repository
//!    lists and whose subject (for a referrer) is not in the repository, pushed before the grace
//!    period; repeated until nothing more goes (deleting an index frees its children).
//! 2. Blob links no manifest of the repository references, linked before the grace period.
//! 3. Blob files no repository holds (as a link or as a manifest), written before the grace
//!    period.
//! 4. Uploads not written to for [`GcOptions::upload_expiry`] (with their session, if any: a
//!    crash between creating the file and recording the session leaves none), and sessions that
//!    old whose file is gone.
//!
//! # Why it is safe while clients push
//!
//! Decisions are made on pages read from the stores, but every removal re-checks its condition in
//! the metadata transaction that performs it, and the store's write paths check the other side:
//! a manifest push verifies in its transaction that the repository holds everything it
//! references, so it either commits before a link is removed (and the link is then referenced and
//! kept) or fails with `MANIFEST_BLOB_UNKNOWN`, never referencing a deleted blob. A blob file is
//! deleted only after a transaction found no holder and marked the digest; while marked, linking
//! it or pushing it as a manifest fails with a retryable 503, and the mark is removed only after
//! the file is gone. A collection that stops half-way leaves marks, which the next one finishes
//! first. The grace period protects what was uploaded or mounted but is not referenced yet.
//!
//! Time and memory grow with the number of objects examined (pages of [`PAGE`]), never with
//! stored bytes; a dry run also remembers what it would remove, to follow the cascade exactly.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use registry_core::{Digest, RepositoryName};
use serde::{Deserialize, Serialize};

use crate::engine::Registry;
use crate::error::Result;
use crate::meta::Holder;

/// Objects examined per page.
pub const PAGE: usize = 500;

/// What a collection does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GcOptions {
    /// Objects younger than this are kept, referenced or not (default one hour).
    #[serde(with = "secs")]
    pub grace: Duration,
    /// Also delete untagged manifests (as distribution's `--delete-untagged`).
    pub delete_untagged: bool,
    /// Report what would be freed, change nothing.
    pub dry_run: bool,
    /// Upload sessions older than this are abandoned (default one day).
    #[serde(with = "secs")]
    pub upload_expiry: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            delete_untagged: false,
            dry_run: false,
            upload_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// What a collection freed (or, in a dry run, would free).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// When it started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Untagged manifests deleted.
    pub manifests_deleted: u64,
    /// Unreferenced blob links removed.
    pub links_removed: u64,
    /// Blob files deleted.
    pub blobs_deleted: u64,
    /// Bytes of blob files deleted.
    pub bytes_freed: u64,
    /// Upload sessions and orphan upload files removed.
    pub uploads_removed: u64,
    /// Bytes of upload files removed.
    pub upload_bytes_freed: u64,
    /// Objects examined (manifests, links, blob files, uploads).
    pub examined: u64,
}

/// A run in progress: its report so far and who wants to hear of it.
struct Run<'a> {
    report: GcReport,
    started: Instant,
    progress: &'a (dyn Fn(&GcReport) + Send + Sync),
}

impl Run<'_> {
    /// A page of `n` objects examined.
    fn page(&mut self, n: usize) {
        self.report.examined += n as u64;
        self.report.duration_ms = self.started.elapsed().as_millis() as u64;
        (self.progress)(&self.report);
    }
}

/// What a dry run has (virtually) removed so far, so later steps see the cascade.
#[derive(Default)]
struct Removed {
    manifests: HashSet<(String, Digest)>,
    links: HashSet<(String, Digest)>,
}

impl Removed {
    fn holds(&self, digest: &Digest, holder: &Holder) -> bool {
        let key = (holder.repository.clone(), digest.clone());
        if holder.manifest { !self.manifests.contains(&key) } else { !self.links.contains(&key) }
    }
}

impl Registry {
    /// Runs one garbage collection (see the [module docs](crate::gc)). Collections run one at a
    /// time: in a process, and across the processes sharing a metadata store (a run finishing
    /// another's marks must not meet a third); [`Error::JobRunning`](crate::Error::JobRunning)
    /// while another replica collects.
    pub async fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport> {
        self.collect_garbage_with_progress(options, &|_| {}).await
    }

    /// [`Registry::collect_garbage`], calling `progress` with the report so far after each page of
    /// objects (for a long run's status).
    pub async fn collect_garbage_with_progress(
        &self,
        options: &GcOptions,
        progress: &(dyn Fn(&GcReport) + Send + Sync),
    ) -> Result<GcReport> {
        let _one_at_a_time = self.gc_lock().lock().await;
        let Some(one_replica) = self.metadata_store().lock_job("garbage collection").await? else {
            return Err(crate::Error::JobRunning { job: "garbage collection" });
        };
        let result = self.collect_locked(options, progress).await;
        one_replica.release().await;
        result
    }

    async fn collect_locked(
        &self,
        options: &GcOptions,
        progress: &(dyn Fn(&GcReport) + Send + Sync),
    ) -> Result<GcReport> {
        let started = Instant::now();
        // Blob store times are milliseconds; metadata times are seconds.
        let now_ms = self.clock().now_millis();
        // Objects written before this instant are old enough (milliseconds, for blob files)...
        let cutoff_ms = now_ms.saturating_sub(options.grace.as_millis() as u64);
        // ... and records made before this second (metadata keeps seconds).
        let cutoff = cutoff_ms / 1000;
        let report = GcReport { dry_run: options.dry_run, started_at: now_ms / 1000, ..GcReport::default() };
        let mut run = Run { report, started, progress };
        let mut removed = Removed::default();
        tracing::info!(
            dry_run = options.dry_run,
            delete_untagged = options.delete_untagged,
            "garbage collection started"
        );
        if !options.dry_run {
            self.finish_marked(&mut run).await?;
        }
        let mut last: Option<String> = None;
        loop {
            let page = self.metadata_store().list_repositories(last.as_deref(), PAGE).await?;
            for name in &page.entries {
                let Ok(repo) = RepositoryName::parse(name) else { continue };
                if options.delete_untagged {
                    self.collect_manifests(&repo, cutoff, options.dry_run, &mut removed, &mut run).await?;
                }
                self.collect_links(&repo, cutoff, options.dry_run, &mut removed, &mut run).await?;
            }
            last = page.entries.last().cloned();
            if !page.more {
                break;
            }
        }
        self.collect_blobs(cutoff_ms, options.dry_run, &removed, &mut run).await?;
        self.collect_uploads(now_ms, options, &mut run).await?;
        run.report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            dry_run = run.report.dry_run,
            manifests_deleted = run.report.manifests_deleted,
            links_removed = run.report.links_removed,
            blobs_deleted = run.report.blobs_deleted,
            bytes_freed = run.report.bytes_freed,
            uploads_removed = run.report.uploads_removed,
            examined = run.report.examined,
            duration_ms = run.report.duration_ms,
            "garbage collection finished"
        );
        Ok(run.report)
    }

    /// Deletes the blobs a stopped collection had marked, then their marks.
    async fn finish_marked(&self, run: &mut Run<'_>) -> Result<()> {
        loop {
            let marked = self.metadata_store().gc_marked(PAGE).await?;
            if marked.is_empty() {
                return Ok(());
            }
            for digest in &marked {
                self.delete_blob_file(digest, u64::MAX, run).await?;
            }
            self.metadata_store().gc_unmark(&marked).await?;
        }
    }

    /// Deletes a blob file unless written after `cutoff_ms`, counting it.
    async fn delete_blob_file(&self, digest: &Digest, cutoff_ms: u64, run: &mut Run<'_>) -> Result<()> {
        if let Some(size) = self.blob_store().delete_if_older(digest, cutoff_ms).await? {
            run.report.blobs_deleted += 1;
            run.report.bytes_freed += size;
            self.forget_manifest_bytes(digest);
        }
        Ok(())
    }

    async fn collect_manifests(
        &self,
        repo: &RepositoryName,
        cutoff: u64,
        dry_run: bool,
        removed: &mut Removed,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let name = repo.to_string();
        loop {
            let mut deleted_this_pass = 0;
            let mut after: Option<Digest> = None;
            loop {
                let page = self.metadata_store().manifests(repo, after.as_ref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.record.digest.clone());
                run.page(page.len());
                let mut candidates = Vec::new();
                for m in &page {
                    let key = (name.clone(), m.record.digest.clone());
                    if !m.tags.is_empty() || m.record.pushed_at > cutoff || removed.manifests.contains(&key) {
                        continue;
                    }
                    if !m.referenced_by.iter().all(|r| removed.manifests.contains(&(name.clone(), r.clone()))) {
                        continue;
                    }
                    if let Some(subject) = &m.record.subject {
                        let present = self.metadata_store().get_manifest(repo, subject).await?.is_some()
                            && !removed.manifests.contains(&(name.clone(), subject.clone()));
                        if present {
                            continue;
                        }
                    }
                    candidates.push(m.record.digest.clone());
                }
                if candidates.is_empty() {
                    continue;
                }
                let gone = if dry_run {
                    candidates
                } else {
                    self.metadata_store().gc_delete_manifests(repo, &candidates, cutoff).await?
                };
                deleted_this_pass += gone.len();
                run.report.manifests_deleted += gone.len() as u64;
                if dry_run {
                    removed.manifests.extend(gone.into_iter().map(|d| (name.clone(), d)));
                }
            }
            if deleted_this_pass == 0 {
                return Ok(());
            }
        }
    }

    async fn collect_links(
        &self,
        repo: &RepositoryName,
        cutoff: u64,
        dry_run: bool,
        removed: &mut Removed,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let name = repo.to_string();
        let mut after: Option<Digest> = None;
        loop {
            let page = self.metadata_store().gc_links(repo, after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.digest.clone());
            run.page(page.len());
            let candidates: Vec<Digest> = page
                .iter()
                .filter(|l| l.linked_at <= cutoff)
                .filter(|l| l.referenced_by.iter().all(|r| removed.manifests.contains(&(name.clone(), r.clone()))))
                .map(|l| l.digest.clone())
                .collect();
            if candidates.is_empty() {
                continue;
            }
            if dry_run {
                run.report.links_removed += candidates.len() as u64;
                removed.links.extend(candidates.into_iter().map(|d| (name.clone(), d)));
            } else {
                let gone = self.metadata_store().gc_unlink(repo, &candidates, cutoff).await?;
                run.report.links_removed += gone.len() as u64;
            }
        }
    }

    async fn collect_blobs(&self, cutoff_ms: u64, dry_run: bool, removed: &Removed, run: &mut Run<'_>) -> Result<()> {
        let mut after: Option<Digest> = None;
        let mut pages = 0u64;
        loop {
            let page = self.blob_store().list_blobs(after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.key.clone());
            run.page(page.len());
            pages += 1;
            if pages.is_multiple_of(20) {
                tracing::info!(
                    examined = run.report.examined,
                    blobs_deleted = run.report.blobs_deleted,
                    "garbage collection progress"
                );
            }
            let old: Vec<_> = page.iter().filter(|b| b.modified <= cutoff_ms).collect();
            let digests: Vec<Digest> = old.iter().map(|b| b.key.clone()).collect();
            let holders = self.metadata_store().gc_holders(&digests).await?;
            let free: Vec<_> = old
                .into_iter()
                .zip(holders)
                .filter(|(b, holders)| !holders.iter().any(|h| removed.holds(&b.key, h)))
                .map(|(b, _)| b)
                .collect();
            if free.is_empty() {
                continue;
            }
            if dry_run {
                run.report.blobs_deleted += free.len() as u64;
                run.report.bytes_freed += free.iter().map(|b| b.size).sum::<u64>();
                continue;
            }
            let digests: Vec<Digest> = free.iter().map(|b| b.key.clone()).collect();
            let marked = self.metadata_store().gc_mark(&digests).await?;
            let mut result = Ok(());
            for digest in &marked {
                // Unless written again since it was listed (pushed anew).
                result = self.delete_blob_file(digest, cutoff_ms, run).await;
                if result.is_err() {
                    break;
                }
            }
            self.metadata_store().gc_unmark(&marked).await?;
            result?;
        }
    }

    /// Uploads untouched for the expiry time go, with their session if any; so do sessions that
    /// old whose file is gone. Activity is the upload's last write, not its start.
    async fn collect_uploads(&self, now_ms: u64, options: &GcOptions, run: &mut Run<'_>) -> Result<()> {
        let expired_before = now_ms.saturating_sub(options.upload_expiry.as_millis() as u64);
        let mut after = None;
        loop {
            let page = self.blob_store().list_uploads(after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            run.page(page.len());
            for upload in page.iter().filter(|u| u.modified <= expired_before) {
                if !options.dry_run {
                    self.abandon_upload(&upload.key).await?;
                }
                run.report.uploads_removed += 1;
                run.report.upload_bytes_freed += upload.size;
            }
        }
        for id in self.metadata_store().expired_uploads(expired_before / 1000, usize::MAX).await? {
            match self.blob_store().upload_info(&id).await? {
                // Counted above, or still written to.
                Some(_) => continue,
                None => {
                    if !options.dry_run {
                        self.abandon_upload(&id).await?;
                    }
                    run.report.uploads_removed += 1;
                }
            }
        }
        Ok(())
    }
}
