//! Every backend passes the conformance suites.

use registry_storage::testing::{blob_store_suite, metadata_store_suite};
use registry_storage::{FsBlobStore, MemoryBlobStore, RedbMetadataStore};

#[tokio::test]
async fn memory_blob_store() {
    blob_store_suite(&MemoryBlobStore::new()).await;
}

#[tokio::test]
async fn filesystem_blob_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::open(dir.path()).expect("open");
    blob_store_suite(&store).await;
    assert_eq!(store.upload_count().expect("count"), 0, "no upload left behind");
    assert!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").next().is_none(), "no temp file left");
}

#[tokio::test]
async fn redb_in_memory() {
    metadata_store_suite(&RedbMetadataStore::in_memory().expect("db")).await;
}

#[tokio::test]
async fn redb_file_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    metadata_store_suite(&RedbMetadataStore::open(&path).expect("db")).await;
    let store = RedbMetadataStore::open(&path).expect("reopen");
    let repos = registry_storage::MetadataStore::list_repositories(&store, None, 10).await.expect("catalog");
    assert_eq!(repos.entries, vec!["suite/app", "suite/other"], "data survives closing the database");
}

/// The read cache never keeps a value a write replaced, whatever the interleaving: readers race
/// a writer that moves a tag and relinks a blob; once the writer is done, every read sees its last
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_cache_never_serves_a_replaced_value() {
    use registry_core::{Digest, RepositoryName, Tag};
    use registry_storage::{ManifestRecord, MetadataStore};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let store = Arc::new(RedbMetadataStore::in_memory().expect("db"));
    let repo = RepositoryName::parse("race/app").expect("name");
    let tag = Tag::parse("latest").expect("tag");
    let blob = Digest::sha256_of(b"blob");
    let record = |i: u32| ManifestRecord {
        digest: Digest::sha256_of(&i.to_le_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 1,
        artifact_type: None,
        annotations: Default::default(),
        subject: None,
        references: Vec::new(),
        pushed_at: 0,
    };
    for round in 0..20u32 {
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, repo, tag, blob, done) =
                    (store.clone(), repo.clone(), tag.clone(), blob.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::SeqCst) {
                        store.resolve_tag(&repo, &tag).await.expect("resolve");
                        store.blob_link(&repo, &blob).await.expect("link");
                    }
                })
            })
            .collect();
        let last = round * 10 + 9;
        for i in round * 10..=last {
            store.put_manifest(&repo, &record(i), Some(&tag)).await.expect("move tag");
            if i % 2 == 0 {
                store.link_blob(&repo, &blob, 4).await.expect("link");
            } else {
                store.unlink_blob(&repo, &blob).await.expect("unlink");
            }
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.expect("reader");
        }
        assert_eq!(store.resolve_tag(&repo, &tag).await.expect("resolve"), Some(record(last).digest), "round {round}");
        assert_eq!(store.blob_link(&repo, &blob).await.expect("link"), None, "round {round}");
    }
}

/// After a failed commit redb refuses everything until reopened: the store answers "unavailable"
/// (retryable), reopens the file once the disk works again, and has lost nothing committed.
#[tokio::test]
async fn redb_recovers_from_a_failed_disk_without_a_restart() {
    use registry_core::{Digest, RepositoryName};
    use registry_storage::testing::faults::FaultyRedbFile;
    use registry_storage::{Error, MetadataStore};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let store = RedbMetadataStore::open_with(move || FaultyRedbFile::open(&path, flag.clone())).expect("open");
    let repo = RepositoryName::parse("disk/app").expect("name");
    let (kept, lost, later) = (Digest::sha256_of(b"kept"), Digest::sha256_of(b"lost"), Digest::sha256_of(b"later"));
    store.link_blob(&repo, &kept, 4).await.expect("link");

    failing.store(true, Ordering::SeqCst);
    let failed = store.link_blob(&repo, &lost, 4).await;
    assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
    assert_eq!(failed.expect_err("failed").status(), 503, "retryable");
    let still = store.link_blob(&repo, &later, 5).await;
    assert!(matches!(still, Err(Error::Unavailable(_))), "while the disk fails: {still:?}");

    failing.store(false, Ordering::SeqCst);
    store.link_blob(&repo, &later, 5).await.expect("works again once the disk does");
    assert_eq!(store.blob_link(&repo, &kept).await.expect("read"), Some(4), "committed data kept");
    assert_eq!(store.blob_link(&repo, &lost).await.expect("read"), None, "the failed write left nothing");
    assert_eq!(store.blob_link(&repo, &later).await.expect("read"), Some(5));
}
