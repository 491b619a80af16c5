//! The memory store keeps the job queue and the policies by the shared rules.

use std::sync::Arc;

use registry_storage::MemoryMetadataStore;
use registry_storage::testing::jobs::{concurrent_claims_suite, job_queue_suite, runners_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_the_queue_and_policies_by_the_rules() {
    let store = MemoryMetadataStore::new();
    job_queue_suite(&store).await;
    let shared = Arc::new(store);
    concurrent_claims_suite(shared.clone(), shared.clone()).await;
    runners_suite(shared.clone(), shared).await;
}
