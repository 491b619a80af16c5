//! Garbage collection on the engine over the memory metadata store and the filesystem blob store.

use std::sync::Arc;

use registry_storage::testing::gc::{GcFixture, gc_suite};
use registry_storage::{FsBlobStore, Limits, MemoryMetadataStore, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_metadata_on_the_filesystem() {
    gc_suite(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Arc::new(FsBlobStore::open(dir.path().join("blobs")).expect("blob store"));
        let registry = Registry::new(blobs.clone(), Arc::new(MemoryMetadataStore::new()), Limits::default());
        GcFixture { registry, blobs, guard: Box::new(dir) }
    })
    .await;
}
