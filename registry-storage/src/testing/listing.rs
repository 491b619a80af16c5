//! The listing rules every store passes: after any sequence of writes, the artifact index, the
//! repository's counts and its project's listing equal what a recount of every manifest finds.

use registry_core::event::{Event, EventAction, Operator, Resource};
use registry_core::{Digest, RepositoryName, Tag};

use crate::Protection;
use crate::listing::is_artifact;
use crate::meta::{ManifestEntry, ManifestRecord, MetadataStore};

/// Every manifest of `repository`, read page by page.
async fn every_manifest(store: &dyn MetadataStore, repository: &RepositoryName) -> Vec<ManifestEntry> {
    let mut out: Vec<ManifestEntry> = Vec::new();
    loop {
        let after = out.last().map(|e| e.record.digest.clone());
        let page = store.manifests(repository, after.as_ref(), 100).await.expect("manifests");
        let done = page.len() < 100;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Checks the store's listing of `repository` against a recount of its manifests: the artifact
/// index (whole and paged), the repository's counts, and its place in its project's listing.
pub async fn check_listing(store: &dyn MetadataStore, repository: &RepositoryName) {
    let all = every_manifest(store, repository).await;
    let mut expected: Vec<&ManifestEntry> =
        all.iter().filter(|e| is_artifact(e.record.subject.is_some(), !e.referenced_by.is_empty(), &e.tags)).collect();
    expected.sort_by(|a, b| b.record.pushed_at.cmp(&a.record.pushed_at).then(a.record.digest.cmp(&b.record.digest)));
    let page = store.artifacts(repository, 0, 100_000).await.expect("artifacts");
    assert_eq!(page.total, expected.len() as u64, "{repository}: the artifact count");
    let expected_entries: Vec<ManifestEntry> = expected.iter().map(|e| (*e).clone()).collect();
    assert_eq!(page.entries, expected_entries, "{repository}: the artifacts, newest push first");
    let middle = store.artifacts(repository, 1, 2).await.expect("artifacts");
    let want: Vec<&Digest> = expected.iter().skip(1).take(2).map(|e| &e.record.digest).collect();
    assert_eq!(middle.entries.iter().map(|e| &e.record.digest).collect::<Vec<_>>(), want, "{repository}: a page");
    for entry in &all {
        let one = store.manifest_entry(repository, &entry.record.digest).await.expect("entry");
        assert_eq!(one.as_ref(), Some(entry), "{repository}: one entry as the listing has it");
    }

    let stats = store.repository_stats(repository).await.expect("stats");
    let project = crate::quota::project_of(repository.as_str());
    let listing = store.project_repositories(project, 0, 100_000).await.expect("project repositories");
    assert_eq!(listing.total, listing.entries.len() as u64, "{project}: the listed count");
    let times: Vec<u64> = listing.entries.iter().map(|s| s.updated).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{project}: newest push first: {times:?}");
    let listed = listing.entries.iter().find(|s| s.name == repository.as_str());
    if all.is_empty() {
        assert_eq!(stats, None, "{repository}: an empty repository has no counts");
        assert_eq!(listed, None, "{repository}: an empty repository is not listed");
        return;
    }
    let stats = stats.expect("a repository with manifests has counts");
    assert_eq!(stats.manifests, all.len() as u64, "{repository}: the manifest count");
    assert_eq!(stats.artifacts, expected.len() as u64, "{repository}: the artifact count");
    assert_eq!(stats.pulls, all.iter().map(|e| e.pulls.count).sum::<u64>(), "{repository}: the pull count");
    let pushed = all.iter().map(|e| e.record.pushed_at);
    assert!(stats.created <= pushed.clone().min().unwrap_or(0), "{repository}: created before every manifest");
    assert!(stats.updated >= pushed.max().unwrap_or(0), "{repository}: updated at the newest push");
    assert_eq!(listed, stats.listed().then_some(&stats), "{repository}: listed when it holds an artifact");
}

/// A small deterministic generator (xorshift), so a failing sequence repeats from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn pull(repository: &RepositoryName, digest: &Digest, count: u64, time_ms: u64) -> Event {
    let resource = Resource {
        project: Some(crate::quota::project_of(repository.as_str()).to_owned()),
        repository: Some(repository.to_string()),
        digest: Some(digest.to_string()),
        ..Default::default()
    };
    let event = Event::new(time_ms, Operator::anonymous(None), EventAction::PullArtifact, resource);
    Event { count, ..event }
}

/// [`listing_steps`], then every manifest deleted: no counts left, nothing listed.
pub async fn listing_rules(store: &dyn MetadataStore, seed: u64, steps: usize) {
    let repos = listing_steps(store, seed, steps).await;
    let none = Protection::none();
    for repo in &repos {
        for entry in every_manifest(store, repo).await {
            store.delete_manifest(repo, &entry.record.digest, &none, &[]).await.expect("delete");
        }
        check_listing(store, repo).await;
        assert_eq!(store.repository_stats(repo).await.expect("stats"), None);
    }
    let project = crate::quota::project_of(repos[0].as_str());
    let listing = store.project_repositories(project, 0, 10).await.expect("listing");
    assert_eq!((listing.total, listing.entries.len()), (0, 0), "an emptied project lists nothing");
}

/// `steps` random writes over two repositories of project `listing<seed>` (`app` and
/// `tools/cli`): images, indexes of them, referrers, cosign-tagged signatures, tag moves and
/// deletions, manifest deletions, garbage collection's deletions, pulls; each followed by
/// [`check_listing`]. `seed` picks the sequence. Returns the two repositories.
pub async fn listing_steps(store: &dyn MetadataStore, seed: u64, steps: usize) -> [RepositoryName; 2] {
    let repos = [
        RepositoryName::parse(&format!("listing{seed}/app")).expect("name"),
        RepositoryName::parse(&format!("listing{seed}/tools/cli")).expect("name"),
    ];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let none = Protection::none();
    for step in 0..steps {
        let repo = &repos[rng.below(2) as usize];
        let present = every_manifest(store, repo).await;
        let pick = |rng: &mut Rng| -> Option<Digest> {
            (!present.is_empty()).then(|| present[rng.below(present.len() as u64) as usize].record.digest.clone())
        };
        // Times repeat now and then, so equal push times order by digest.
        let pushed_at = 1_000 + rng.below(step as u64 + 1) * 10;
        let what = rng.below(9);
        let mut record = ManifestRecord {
            digest: Digest::sha256_of(format!("{seed}-{step}").as_bytes()),
            media_type: registry_core::media_type::OCI_MANIFEST.into(),
            size: 100 + step as u64,
            artifact_type: None,
            annotations: Default::default(),
            subject: None,
            references: Vec::new(),
            pushed_at,
        };
        let tag = |rng: &mut Rng, target: Option<&Digest>| -> Option<Tag> {
            let text = match (rng.below(4), target) {
                (0, _) => return None,
                (1, Some(target)) => format!("sha256-{}.sig", target.hex()),
                (n, _) => format!("v{}", n + rng.below(3)),
            };
            Some(Tag::parse(&text).expect("tag"))
        };
        match what {
            // An image, maybe tagged (a cosign signature tag names another manifest).
            0..=2 => {
                let target = pick(&mut rng);
                let tag = tag(&mut rng, target.as_ref());
                store.put_manifest(repo, &record, tag.as_ref(), &none, &[]).await.expect("push");
            }
            // An index of up to two manifests present.
            3 => {
                record.media_type = registry_core::media_type::OCI_INDEX.into();
                record.references = (0..2).filter_map(|_| pick(&mut rng)).collect();
                record.references.dedup();
                let tag = tag(&mut rng, None);
                store.put_manifest(repo, &record, tag.as_ref(), &none, &[]).await.expect("push an index");
            }
            // A referrer of a manifest present.
            4 => {
                let Some(subject) = pick(&mut rng) else { continue };
                record.subject = Some(subject);
                record.artifact_type = Some("application/vnd.example.sbom".into());
                store.put_manifest(repo, &record, None, &none, &[]).await.expect("push a referrer");
            }
            // A tag moved onto a manifest present (pushed again, as a client does).
            5 => {
                let Some(digest) = pick(&mut rng) else { continue };
                let Some(existing) = present.iter().find(|e| e.record.digest == digest) else { continue };
                let target = pick(&mut rng);
                let tag = tag(&mut rng, target.as_ref());
                store.put_manifest(repo, &existing.record, tag.as_ref(), &none, &[]).await.expect("tag");
            }
            6 => {
                let tags: Vec<&String> = present.iter().flat_map(|e| &e.tags).collect();
                if tags.is_empty() {
                    continue;
                }
                let tag = Tag::parse(tags[rng.below(tags.len() as u64) as usize]).expect("tag");
                store.delete_tag(repo, &tag, &none, &[]).await.expect("delete a tag");
            }
            7 => {
                let Some(digest) = pick(&mut rng) else { continue };
                if rng.below(2) == 0 {
                    store.delete_manifest(repo, &digest, &none, &[]).await.expect("delete");
                } else {
                    store.gc_delete_manifests(repo, &[digest], u64::MAX).await.expect("collect");
                }
            }
            _ => {
                let Some(digest) = pick(&mut rng) else { continue };
                let count = 1 + rng.below(3);
                store.append_events(&[pull(repo, &digest, count, 5_000 + step as u64)]).await.expect("pull");
            }
        }
        for repo in &repos {
            check_listing(store, repo).await;
        }
    }
    repos
}

/// Four writers, through `a` and `b` in turn (two processes' connections to one store), on one
/// repository at once: indexes over shared images pushed and deleted, tags moved between them,
/// pulls counted. Afterwards the listing equals a recount ([`check_listing`]): no writer's
/// recomputation was lost to another's.
pub async fn concurrent_listing(a: std::sync::Arc<dyn MetadataStore>, b: std::sync::Arc<dyn MetadataStore>) {
    let repo = RepositoryName::parse("listingc/app").expect("name");
    let none = Protection::none();
    let image = |i: usize| ManifestRecord {
        digest: Digest::sha256_of(format!("shared image {i}").as_bytes()),
        media_type: registry_core::media_type::OCI_MANIFEST.into(),
        size: 10,
        artifact_type: None,
        annotations: Default::default(),
        subject: None,
        references: Vec::new(),
        pushed_at: 100 + i as u64,
    };
    let images: Vec<ManifestRecord> = (0..6).map(image).collect();
    for record in &images {
        a.put_manifest(&repo, record, None, &none, &[]).await.expect("push an image");
    }
    let writers = (0..4).map(|w| {
        let (store, repo, images) = (if w % 2 == 0 { a.clone() } else { b.clone() }, repo.clone(), images.clone());
        let none = none.clone();
        tokio::spawn(async move {
            let mut rng = Rng(0x51ED_0000 + w as u64);
            let mut mine: Vec<Digest> = Vec::new();
            for step in 0..25u64 {
                match rng.below(4) {
                    0 | 1 => {
                        let children = [rng.below(6), rng.below(6)];
                        let record = ManifestRecord {
                            digest: Digest::sha256_of(format!("index {w} {step}").as_bytes()),
                            media_type: registry_core::media_type::OCI_INDEX.into(),
                            references: children.iter().map(|c| images[*c as usize].digest.clone()).collect(),
                            pushed_at: 1_000 + step,
                            ..image(0)
                        };
                        store.put_manifest(&repo, &record, None, &none, &[]).await.expect("push an index");
                        mine.push(record.digest);
                    }
                    2 if !mine.is_empty() => {
                        let digest = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                        store.delete_manifest(&repo, &digest, &none, &[]).await.expect("delete an index");
                    }
                    2 => {}
                    _ => {
                        let target = &images[rng.below(6) as usize];
                        let tag = Tag::parse(&format!("t{}", rng.below(3))).expect("tag");
                        store.put_manifest(&repo, target, Some(&tag), &none, &[]).await.expect("move a tag");
                        store.append_events(&[pull(&repo, &target.digest, 1, step)]).await.expect("pull");
                    }
                }
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("writer");
    }
    check_listing(&*a, &repo).await;
    check_listing(&*b, &repo).await;
}
