//! Copying a whole registry into other stores, and checking the copy: how an operator moves up
//! from the embedded default (redb + files) to PostgreSQL + object storage.
//!
//! [`Registry::copy_into`] copies every published blob (hashed on the way: a corrupt source blob
//! stops the copy rather than being spread), then, repository by repository, the blob links, the
//! manifests (children before the indexes that list them), their labels and the tags; then every
//! policy with its id (webhooks, immutability rules, labels, retention policies, settings) and
//! every quota's limit (usage is counted by the target as the content lands). Blobs already in the
//! target at the right size are skipped, so a copy that stopped half-way is resumed by running
//! it again. Uploads in progress are not copied (their clients start them again).
//!
//! [`Registry::compare_with`] then checks the target against the source: the same repositories,
//! links, manifests (records equal) and tags, and every blob present with its size and, read
//! back and hashed, its digest.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use registry_core::{Digest, DigestVerifier, RepositoryName, Tag};
use serde::Serialize;

use crate::blob::{BlobStore, StoredObject, UploadId};
use crate::engine::Registry;
use crate::error::{Error, Result};
use crate::immutable::Protection;
use crate::meta::{ManifestRecord, MetadataStore};

/// Objects listed per page.
const PAGE: usize = 500;

/// Blobs copied at once (object stores answer each request in milliseconds; many small blobs
/// would take long one by one).
const COPIES: usize = 8;

/// Blobs up to this size are read whole, checked and stored in one request.
const SMALL: u64 = 4 << 20;

/// What a copy moved, or a comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Repositories.
    pub repositories: u64,
    /// Blobs in the blob store (layers, configs, manifests' bytes).
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Blobs already in the target (a resumed copy).
    pub blobs_skipped: u64,
    /// Blob links.
    pub links: u64,
    /// Manifests.
    pub manifests: u64,
    /// Tags.
    pub tags: u64,
    /// Events of the stream (the audit history), in their order.
    pub events: u64,
    /// Policies of every kind (webhooks, immutability rules, labels, retention, settings).
    pub policies: u64,
    /// Quotas (limits; usage is counted again from the content).
    pub quotas: u64,
    /// Labels on manifests.
    pub labels: u64,
    /// Scan reports.
    pub reports: u64,
}

/// One repository's metadata, read whole (repositories are small next to their blobs).
#[derive(Debug, Default, PartialEq, Eq)]
struct RepositoryContents {
    links: BTreeMap<Digest, u64>,
    manifests: BTreeMap<Digest, ManifestRecord>,
    tags: BTreeMap<String, Digest>,
    labels: BTreeMap<Digest, Vec<u64>>,
}

async fn contents(meta: &dyn MetadataStore, repo: &RepositoryName) -> Result<RepositoryContents> {
    let mut out = RepositoryContents::default();
    let mut after: Option<Digest> = None;
    loop {
        let page = meta.gc_links(repo, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        out.links.extend(page.into_iter().map(|l| (l.digest, l.size)));
    }
    let mut after: Option<Digest> = None;
    loop {
        let page = meta.manifests(repo, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.digest.clone());
        for m in page {
            if !m.labels.is_empty() {
                out.labels.insert(m.record.digest.clone(), m.labels);
            }
            out.manifests.insert(m.record.digest.clone(), m.record);
        }
    }
    let mut last: Option<String> = None;
    loop {
        let Some(page) = meta.list_tags(repo, last.as_deref(), PAGE).await? else { break };
        for name in &page.entries {
            let tag = Tag::parse(name).map_err(|e| Error::corrupt(format!("tag {name:?} of {repo}"), e))?;
            if let Some(digest) = meta.resolve_tag(repo, &tag).await? {
                out.tags.insert(name.clone(), digest);
            }
        }
        last = page.entries.last().cloned();
        if !page.more {
            break;
        }
    }
    Ok(out)
}

async fn repositories(meta: &dyn MetadataStore) -> Result<Vec<RepositoryName>> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = meta.list_repositories(last.as_deref(), PAGE).await?;
        for name in &page.entries {
            out.push(RepositoryName::parse(name).map_err(|e| Error::corrupt(format!("repository {name:?}"), e))?);
        }
        last = page.entries.last().cloned();
        if !page.more {
            return Ok(out);
        }
    }
}

/// How many events a store holds.
async fn count_events(meta: &dyn MetadataStore) -> Result<u64> {
    let (mut count, mut after) = (0u64, 0);
    loop {
        let page = meta.events_after(after, PAGE).await?;
        let Some(last) = page.last() else { return Ok(count) };
        after = last.id;
        count += page.len() as u64;
    }
}

/// Every published blob of a store, page by page.
fn all_blobs(store: &dyn BlobStore) -> impl futures::Stream<Item = Result<StoredObject<Digest>>> + '_ {
    futures::stream::try_unfold(
        (Some(None), store),
        |(after, store): (Option<Option<Digest>>, &dyn BlobStore)| async move {
            let Some(after) = after else { return Ok::<_, Error>(None) };
            let page = store.list_blobs(after.as_ref(), PAGE).await?;
            let next = page.last().map(|last| Some(last.key.clone()));
            Ok(Some((futures::stream::iter(page.into_iter().map(Ok::<_, Error>)), (next, store))))
        },
    )
    .try_flatten()
}

impl Registry {
    /// Copies every blob, repository, link, manifest and tag of this registry into `target`
    /// (see the [module docs](crate::transfer)); `progress` hears of each step.
    pub async fn copy_into(
        &self,
        target: &Registry,
        progress: &(dyn Fn(&TransferReport) + Sync),
    ) -> Result<TransferReport> {
        let mut report = TransferReport::default();
        let copies = all_blobs(self.blob_store().as_ref())
            .map(|blob| async move {
                let blob = blob?;
                if target.blob_store().stat(&blob.key).await? == Some(blob.size) {
                    return Ok::<_, Error>((blob.size, true));
                }
                self.copy_blob(target, &blob.key, blob.size).await?;
                Ok((blob.size, false))
            })
            .buffer_unordered(COPIES);
        futures::pin_mut!(copies);
        while let Some(copied) = copies.next().await {
            let (size, skipped) = copied?;
            report.blobs += 1;
            report.blob_bytes += size;
            report.blobs_skipped += u64::from(skipped);
            progress(&report);
        }
        for repo in repositories(self.metadata_store().as_ref()).await? {
            let source = contents(self.metadata_store().as_ref(), &repo).await?;
            let meta = target.metadata_store();
            for (digest, size) in &source.links {
                meta.link_blob(&repo, digest, *size).await?;
                report.links += 1;
            }
            // A manifest may reference only what the repository holds: children first.
            let mut pending: Vec<&ManifestRecord> = source.manifests.values().collect();
            let mut done: BTreeSet<Digest> = BTreeSet::new();
            while !pending.is_empty() {
                let (ready, waiting): (Vec<&ManifestRecord>, Vec<&ManifestRecord>) = pending
                    .into_iter()
                    .partition(|m| m.references.iter().all(|r| !source.manifests.contains_key(r) || done.contains(r)));
                if ready.is_empty() {
                    return Err(Error::corrupt(
                        format!("repository {repo}"),
                        std::io::Error::other("its manifests reference each other in a cycle"),
                    ));
                }
                for record in ready {
                    meta.put_manifest(&repo, record, None, &Protection::none(), &[]).await?;
                    done.insert(record.digest.clone());
                    report.manifests += 1;
                }
                pending = waiting;
            }
            for (name, digest) in &source.tags {
                let tag = Tag::parse(name).map_err(|e| Error::corrupt(format!("tag {name:?}"), e))?;
                let record = source.manifests.get(digest).ok_or_else(|| {
                    Error::corrupt(format!("tag {repo}:{name}"), std::io::Error::other("it names no manifest"))
                })?;
                meta.put_manifest(&repo, record, Some(&tag), &Protection::none(), &[]).await?;
                report.tags += 1;
            }
            for (digest, labels) in &source.labels {
                for label in labels {
                    meta.set_label(&repo, digest, *label, true, &[]).await?;
                    report.labels += 1;
                }
            }
            report.repositories += 1;
            progress(&report);
        }
        // The event stream, in order (the target's ids follow the same order); a resumed copy
        // skips as many as the target holds.
        for policy in self.metadata_store().all_policies().await? {
            target.metadata_store().import_policy(&policy).await?;
            report.policies += 1;
        }
        for quota in self.metadata_store().quotas().await? {
            target.metadata_store().set_quota(&quota.project, quota.limit, quota.warn_percent, &[]).await?;
            report.quotas += 1;
        }
        let mut after = None;
        loop {
            let page = self.metadata_store().reports_after(after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.digest.clone(), last.scanner.clone(), last.mime_type.clone()));
            for r in &page {
                target.metadata_store().put_report(r, None, &[]).await?;
                report.reports += 1;
            }
        }
        let mut skip = count_events(target.metadata_store().as_ref()).await?;
        let mut after = 0;
        loop {
            let page = self.metadata_store().events_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            report.events += page.len() as u64;
            let fresh = page.len().saturating_sub(skip as usize);
            skip = skip.saturating_sub(page.len() as u64);
            if fresh > 0 {
                target.metadata_store().append_events(&page[page.len() - fresh..]).await?;
            }
        }
        Ok(report)
    }

    /// Streams one blob into the target's blob store, hashing it on the way.
    async fn copy_blob(&self, target: &Registry, digest: &Digest, size: u64) -> Result<()> {
        let into = target.blob_store();
        if size <= SMALL {
            let mut bytes = Vec::with_capacity(size as usize);
            let mut stream = self.blob_store().read(digest, None).await?;
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk?);
            }
            if &Digest::compute(digest.algorithm(), &bytes) != digest {
                return Err(Error::corrupt(
                    format!("source blob {digest}"),
                    std::io::Error::other("its bytes hash to another digest"),
                ));
            }
            return into.put(digest, bytes::Bytes::from(bytes)).await;
        }
        let id = UploadId::new_random();
        let state = into.upload_create(&id, Some(digest)).await?;
        let source = self.blob_store().read(digest, None).await?;
        let verifier = DigestVerifier::expecting(digest, None);
        let mut verifying = registry_core::VerifyingStream::new(source, verifier);
        let appended = {
            let mut body = (&mut verifying).map(|item| {
                item.map_err(|e| match e {
                    registry_core::verifier::StreamError::Source(e) => Box::new(e) as crate::BodyError,
                    registry_core::verifier::StreamError::Verify(e) => Box::new(e) as crate::BodyError,
                })
            });
            into.upload_append(&id, &state, 0, &mut body).await
        };
        let finished = match appended {
            Ok((size, state)) => match verifying.finish() {
                Ok(_) => into.upload_publish(&id, &state, digest, size).await,
                Err(e) => Err(Error::corrupt(format!("source blob {digest}"), e)),
            },
            Err(e) => Err(e),
        };
        if finished.is_err() {
            let _ = into.upload_delete(&id, None).await;
        }
        finished
    }

    /// Checks `target` against this registry (see the [module docs](crate::transfer)): the
    /// counts it found equal, or [`Error::Corrupt`] naming the first difference.
    pub async fn compare_with(&self, target: &Registry) -> Result<TransferReport> {
        let differ = |what: String| Error::corrupt(what, std::io::Error::other("differs in the copy"));
        let mut report = TransferReport::default();
        let checks = all_blobs(self.blob_store().as_ref())
            .map(|blob| async move {
                let blob = blob?;
                let differ = |what: String| Error::corrupt(what, std::io::Error::other("differs in the copy"));
                if target.blob_store().stat(&blob.key).await? != Some(blob.size) {
                    return Err(differ(format!("blob {} ({} bytes)", blob.key, blob.size)));
                }
                let mut verifier = DigestVerifier::expecting(&blob.key, Some(blob.size));
                let mut stream = target.blob_store().read(&blob.key, None).await?;
                while let Some(chunk) = stream.next().await {
                    verifier.update(&chunk?).map_err(|_| differ(format!("blob {}", blob.key)))?;
                }
                verifier.finish().map_err(|_| differ(format!("blob {}", blob.key)))?;
                Ok(blob.size)
            })
            .buffer_unordered(COPIES);
        futures::pin_mut!(checks);
        while let Some(checked) = checks.next().await {
            report.blobs += 1;
            report.blob_bytes += checked?;
        }
        let source_repos = repositories(self.metadata_store().as_ref()).await?;
        if repositories(target.metadata_store().as_ref()).await? != source_repos {
            return Err(differ("the list of repositories".into()));
        }
        for repo in source_repos {
            let (a, b) = (
                contents(self.metadata_store().as_ref(), &repo).await?,
                contents(target.metadata_store().as_ref(), &repo).await?,
            );
            if a.links != b.links {
                return Err(differ(format!("the blob links of {repo}")));
            }
            if a.manifests != b.manifests {
                return Err(differ(format!("the manifests of {repo}")));
            }
            if a.tags != b.tags {
                return Err(differ(format!("the tags of {repo}")));
            }
            if a.labels != b.labels {
                return Err(differ(format!("the labels of {repo}'s artifacts")));
            }
            report.labels += a.labels.values().map(|l| l.len() as u64).sum::<u64>();
            report.repositories += 1;
            report.links += a.links.len() as u64;
            report.manifests += a.manifests.len() as u64;
            report.tags += a.tags.len() as u64;
        }
        let source_events = count_events(self.metadata_store().as_ref()).await?;
        if count_events(target.metadata_store().as_ref()).await? != source_events {
            return Err(differ("the event stream".into()));
        }
        report.events = source_events;
        let policies = self.metadata_store().all_policies().await?;
        if target.metadata_store().all_policies().await? != policies {
            return Err(differ("the policies (webhooks, rules, labels, settings)".into()));
        }
        report.policies = policies.len() as u64;
        let mut after = None;
        loop {
            let page = self.metadata_store().reports_after(after.as_ref(), PAGE).await?;
            if target.metadata_store().reports_after(after.as_ref(), PAGE).await? != page {
                return Err(differ("the scan reports".into()));
            }
            let Some(last) = page.last() else { break };
            after = Some((last.digest.clone(), last.scanner.clone(), last.mime_type.clone()));
            report.reports += page.len() as u64;
        }
        let quotas = self.metadata_store().quotas().await?;
        let target_quotas = target.metadata_store().quotas().await?;
        let limits = |qs: &[crate::quota::Quota]| -> Vec<(String, Option<u64>, u64)> {
            qs.iter()
                .filter(|q| q.used > 0 || q.limit.is_some())
                .map(|q| (q.project.clone(), q.limit, q.used))
                .collect()
        };
        if limits(&target_quotas) != limits(&quotas) {
            return Err(differ("the quotas (limits and usage)".into()));
        }
        report.quotas = quotas.len() as u64;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::body;
    use crate::{Limits, MemoryBlobStore, MemoryMetadataStore};
    use registry_core::Reference;

    fn registry() -> Registry {
        Registry::new(Arc::new(MemoryBlobStore::new()), Arc::new(MemoryMetadataStore::new()), Limits::default())
    }

    #[tokio::test]
    async fn a_copy_compares_equal_and_a_second_run_skips_what_is_there() {
        let source = registry();
        let repo = RepositoryName::parse("move/app").expect("name");
        let mut images = Vec::new();
        for i in 0..3u8 {
            let layer = [i; 50];
            let layer_digest = Digest::sha256_of(&layer);
            source
                .push_blob(&repo, &layer_digest, &mut body(&[&layer]), &registry_core::event::Operator::system())
                .await
                .expect("layer");
            source
                .push_blob(
                    &repo,
                    &Digest::sha256_of(b"{}"),
                    &mut body(&[b"{}"]),
                    &registry_core::event::Operator::system(),
                )
                .await
                .expect("config");
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":50}}]}}"#,
                Digest::sha256_of(b"{}")
            );
            let pushed = source
                .put_manifest(
                    &repo,
                    &Reference::parse(&format!("v{i}")).expect("tag"),
                    Some("application/vnd.oci.image.manifest.v1+json"),
                    bytes::Bytes::from(manifest),
                    &registry_core::event::Operator::named("alice", None),
                )
                .await
                .expect("manifest");
            images.push(pushed.digest);
        }
        // Policies keep their ids, labels stay on their artifacts, limits stay with projects.
        let meta = source.metadata_store();
        let policy = crate::PolicyRecord {
            id: 0,
            kind: "label".into(),
            project_id: 3,
            name: "release".into(),
            body: "{}".into(),
            created_ms: 0,
            updated_ms: 0,
        };
        let label = meta.put_policy(&policy, &[]).await.expect("policy");
        meta.set_label(&repo, &images[1], label, true, &[]).await.expect("label");
        meta.set_quota("move", Some(1 << 30), 90, &[]).await.expect("limit");
        let scanned = crate::ScanReport {
            digest: images[0].clone(),
            scanner: "trivy".into(),
            mime_type: "application/vnd.security.vulnerability.report; version=1.1".into(),
            id: "r1".into(),
            status: "Success".into(),
            job_id: 9,
            started_ms: 1,
            ended_ms: 2,
            summary: "{}".into(),
            body: "{\"vulnerabilities\": []}".into(),
        };
        meta.put_report(&scanned, None, &[]).await.expect("report");
        let target = registry();
        let report = source.copy_into(&target, &|_| {}).await.expect("copy");
        assert_eq!((report.repositories, report.manifests, report.tags, report.links), (1, 3, 3, 4));
        assert_eq!((report.policies, report.quotas, report.labels, report.reports), (1, 1, 1, 1));
        assert_eq!(target.metadata_store().reports(&images[0]).await.expect("reports"), vec![scanned]);
        let quota = target.quota("move").await.expect("quota").expect("there");
        assert_eq!((quota.limit, quota.warn_percent), (Some(1 << 30), 90));
        assert_eq!(quota.used, source.quota("move").await.expect("quota").expect("there").used, "usage counted");
        assert_eq!(
            target.metadata_store().policy("label", label).await.expect("policy").map(|p| p.name),
            Some("release".into())
        );
        assert_eq!(report.events, 6, "a push and a tag event per image");
        let moved = target.metadata_store().events_after(0, 100).await.expect("events");
        assert_eq!(moved.len(), 6);
        assert_eq!(moved[0].operator.name, "alice");
        assert_eq!(report.blobs, 7, "3 layers, the config, 3 manifests' bytes");
        let compared = source.compare_with(&target).await.expect("equal");
        assert_eq!((compared.blobs, compared.manifests, compared.tags, compared.reports), (7, 3, 3, 1));
        let again = source.copy_into(&target, &|_| {}).await.expect("copy again");
        assert_eq!(again.blobs_skipped, 7, "a second run copies no blob twice");
        assert_eq!(target.metadata_store().events_after(0, 100).await.expect("events").len(), 6, "nor an event");
        // A difference is named.
        target.delete_blob(&repo, &Digest::sha256_of(&[0u8; 50])).await.expect("unlink");
        let err = source.compare_with(&target).await.expect_err("differs");
        assert!(err.to_string().contains("blob links of move/app"), "{err}");
        let _ = images;
    }
}
