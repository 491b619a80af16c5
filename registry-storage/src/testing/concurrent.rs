//! Concurrent writers: the [`MetadataStore`] rules that only show when writers race, through one
//! store or through two handles on the same data (two replicas on one database). Run it on a
//! multi-threaded runtime.

use std::sync::Arc;

use registry_core::{Digest, RepositoryName, Tag};

use crate::blob::UploadId;
use crate::meta::{ManifestRecord, MetadataStore, UploadRecord};

const WRITERS: usize = 8;

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("valid name")
}

fn manifest(i: usize) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::sha256_of(format!("manifest {i}").as_bytes()),
        media_type: registry_core::media_type::OCI_MANIFEST.into(),
        size: 10,
        artifact_type: None,
        annotations: Default::default(),
        subject: None,
        references: vec![],
        pushed_at: 0,
    }
}

/// Runs every case; writers alternate between `a` and `b` (pass one store twice when there is
/// only one handle).
pub async fn concurrent_writers_suite(a: Arc<dyn MetadataStore>, b: Arc<dyn MetadataStore>) {
    let stores = [a, b];
    let pick = |i: usize| stores[i % 2].clone();

    // Of writers racing to advance an upload from the same offset, exactly one wins.
    let repo = name("race/app");
    let id = UploadId::new_random();
    let record = UploadRecord {
        repository: repo.clone(),
        offset: 0,
        verifier_state: vec![],
        started_at: 1,
        store_state: vec![],
    };
    stores[0].create_upload(&id, &record).await.expect("create upload");
    let swaps = (0..WRITERS).map(|i| {
        let (store, id, record) = (pick(i), id.clone(), record.clone());
        tokio::spawn(async move {
            let next = UploadRecord { offset: 10 + i as u64, store_state: vec![i as u8], ..record };
            store.update_upload(&id, 0, &next).await.expect("swap")
        })
    });
    let won: Vec<bool> = futures::future::join_all(swaps).await.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "exactly one swap from offset 0 wins: {won:?}");
    let winner = won.iter().position(|w| *w).expect("a winner");
    let saved = stores[1].get_upload(&id).await.expect("get").expect("exists");
    assert_eq!((saved.offset, saved.store_state), (10 + winner as u64, vec![winner as u8]), "the winner's record");

    // One lease at a time, across handles; a holder renews; an expired lease can be taken.
    if stores[0].shared() {
        let now = 1_000_000;
        let leases = (0..WRITERS).map(|i| {
            let (store, id) = (pick(i), id.clone());
            tokio::spawn(async move { store.lease_upload(&id, i as u64 + 1, now + 10_000, now).await.expect("lease") })
        });
        let held: Vec<bool> = futures::future::join_all(leases).await.into_iter().map(|r| r.expect("task")).collect();
        assert_eq!(held.iter().filter(|h| **h).count(), 1, "one lease holder: {held:?}");
        let holder = held.iter().position(|h| *h).expect("a holder") as u64 + 1;
        let other = if holder == 1 { 2 } else { 1 };
        assert!(stores[1].lease_upload(&id, holder, now + 20_000, now + 5_000).await.expect("renew"), "renewal");
        assert!(!stores[0].lease_upload(&id, other, now + 30_000, now + 15_000).await.expect("lease"), "still held");
        assert!(stores[0].lease_upload(&id, other, now + 40_000, now + 20_001).await.expect("lease"), "expired");
        stores[1].release_upload(&id, other).await.expect("release");
        assert!(stores[0].lease_upload(&id, holder, now + 50_000, now + 20_002).await.expect("lease"), "released");
        let unknown = UploadId::new_random();
        assert!(
            stores[0].lease_upload(&unknown, 1, now, now).await.expect("lease"),
            "an unknown upload is not refused"
        );
    }
    assert!(stores[0].delete_upload(&id).await.expect("delete"));

    // Writers linking the same blob all succeed, and it is linked once.
    let blob = Digest::sha256_of(b"shared layer");
    let links = (0..WRITERS).map(|i| {
        let (store, repo, blob) = (pick(i), repo.clone(), blob.clone());
        tokio::spawn(async move { store.link_blob(&repo, &blob, 12).await })
    });
    for result in futures::future::join_all(links).await {
        result.expect("task").expect("link");
    }
    assert_eq!(stores[1].blob_link(&repo, &blob).await.expect("link"), Some(12));

    // Writers moving one tag to different manifests: the tag ends on one of them, listed once,
    // and every manifest stays.
    let tag = Tag::parse("latest").expect("tag");
    let puts = (0..WRITERS).map(|i| {
        let (store, repo, tag) = (pick(i), repo.clone(), tag.clone());
        tokio::spawn(async move {
            let resource = registry_core::event::Resource {
                repository: Some(repo.to_string()),
                digest: Some(manifest(i).digest.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            let event = registry_core::event::Event::new(
                i as u64,
                registry_core::event::Operator::system(),
                registry_core::event::EventAction::CreateTag,
                resource,
            );
            store.put_manifest(&repo, &manifest(i), Some(&tag), &crate::Protection::none(), &[event]).await
        })
    });
    for result in futures::future::join_all(puts).await {
        result.expect("task").expect("put manifest");
    }
    let digest = stores[0].resolve_tag(&repo, &tag).await.expect("resolve").expect("tagged");
    assert!((0..WRITERS).any(|i| manifest(i).digest == digest), "the tag names one of the pushed manifests");
    let tags = stores[1].list_tags(&repo, None, 100).await.expect("tags").expect("known");
    assert_eq!(tags.entries, vec!["latest"], "one tag, listed once");
    // The events are in the order the changes committed: the last tag event is the tag's state.
    let events = stores[0].events_after(0, 1000).await.expect("events");
    let tag_events: Vec<_> =
        events.iter().filter(|e| e.action == registry_core::event::EventAction::CreateTag).collect();
    assert_eq!(tag_events.len(), WRITERS, "one event per write");
    assert_eq!(
        tag_events.last().and_then(|e| e.resource.digest.clone()),
        Some(digest.to_string()),
        "the last event recorded is the last change committed"
    );
    for i in 0..WRITERS {
        assert!(stores[i % 2].get_manifest(&repo, &manifest(i).digest).await.expect("get").is_some(), "manifest {i}");
    }

    // Repositories created by racing first pushes are listed once.
    let first = (0..WRITERS).map(|i| {
        let (store, blob) = (pick(i), blob.clone());
        tokio::spawn(async move { store.link_blob(&name("race/new"), &blob, 12).await })
    });
    for result in futures::future::join_all(first).await {
        result.expect("task").expect("link");
    }
    let catalog = stores[0].list_repositories(None, 100).await.expect("catalog");
    assert_eq!(catalog.entries, vec!["race/app", "race/new"]);
    quota_race(stores[0].clone(), stores[1].clone()).await;
}

/// Writers racing at a project's limit, through both handles: exactly as many fit as the limit
/// allows, the rest are refused with nothing written, and the counter is what was linked.
async fn quota_race(a: Arc<dyn MetadataStore>, b: Arc<dyn MetadataStore>) {
    const RACERS: usize = 24;
    const SIZE: u64 = 100;
    const LIMIT: u64 = 1_050;
    a.set_quota("racing", Some(LIMIT), 100, &[]).await.expect("limit");
    let shared = Digest::sha256_of(b"racing shared layer");
    let links = (0..RACERS).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let shared = shared.clone();
        tokio::spawn(async move {
            let repo = name(&format!("racing/r{}", i % 5));
            // Every fourth writer links the one shared layer (it counts once), the others a
            // layer of their own, and some push a manifest too.
            let digest = if i % 4 == 0 { shared } else { Digest::sha256_of(format!("racing {i}").as_bytes()) };
            let linked = store.link_blob(&repo, &digest, SIZE).await;
            if let Err(e) = &linked {
                assert!(matches!(e, crate::Error::QuotaExceeded { .. }), "refused by quota only: {e}");
            }
            linked.is_ok().then_some((repo, digest))
        })
    });
    let results: Vec<Option<(RepositoryName, Digest)>> =
        futures::future::join_all(links).await.into_iter().map(|r| r.expect("task")).collect();
    let distinct: std::collections::HashSet<&Digest> = results.iter().flatten().map(|(_, d)| d).collect();
    let used = a.quota("racing").await.expect("quota").expect("quota").used;
    assert_eq!(used, distinct.len() as u64 * SIZE, "the counter is what was linked, each digest once");
    assert!(used <= LIMIT, "never past the limit: {used}");
    assert_eq!(distinct.len() as u64, LIMIT / SIZE, "as many as fit: {} of {RACERS}", distinct.len());
    for (i, result) in results.iter().enumerate() {
        if result.is_none() {
            let repo = name(&format!("racing/r{}", i % 5));
            let digest = Digest::sha256_of(format!("racing {i}").as_bytes());
            assert_eq!(b.blob_link(&repo, &digest).await.expect("link"), None, "a refused link is not there");
        }
    }
    for (repo, digest) in results.iter().flatten() {
        a.unlink_blob(repo, digest).await.expect("unlink");
    }
    assert_eq!(b.quota("racing").await.expect("quota").expect("quota").used, 0, "all freed");
}
