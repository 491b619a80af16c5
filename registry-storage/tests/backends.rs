//! Every backend of this crate passes the conformance suites.

use registry_storage::testing::{blob_store_suite, metadata_store_suite};
use registry_storage::{FsBlobStore, MemoryBlobStore, MemoryMetadataStore};

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
async fn memory_metadata_store() {
    metadata_store_suite(&MemoryMetadataStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_metadata_store_with_concurrent_writers() {
    let store = std::sync::Arc::new(MemoryMetadataStore::new());
    registry_storage::testing::concurrent::concurrent_writers_suite(store.clone(), store.clone()).await;
    registry_storage::testing::listing::concurrent_listing(store.clone(), store).await;
}
