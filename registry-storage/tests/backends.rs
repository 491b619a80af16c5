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
