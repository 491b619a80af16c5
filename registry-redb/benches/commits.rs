//! Durable writes to the database file against how many writers wait at once. Every write is
//! acknowledged only once it is on disk; writers waiting together share one fsync (group commit,
//! see `handle.rs`), so the time per write should fall as more run at once, toward the cost of
//! the write without its flush.
//!
//! `cargo bench -p registry-redb --bench commits -- --warm-up-time 1 --measurement-time 4`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use registry_core::{Digest, RepositoryName};
use registry_redb::RedbStore;
use registry_storage::MetadataStore;

fn commits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path().join("metadata.redb")).expect("open"));
    let repo = RepositoryName::parse("bench/app").expect("name");
    let next = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("durable_writes");
    for writers in [1u64, 4, 16, 64] {
        group.throughput(Throughput::Elements(writers));
        group.bench_function(BenchmarkId::from_parameter(writers), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut running = tokio::task::JoinSet::new();
                        for _ in 0..writers {
                            let (store, repo, next) = (store.clone(), repo.clone(), next.clone());
                            running.spawn(async move {
                                let n = next.fetch_add(1, Ordering::Relaxed);
                                let digest = Digest::sha256_of(&n.to_le_bytes());
                                store.link_blob(&repo, &digest, n).await.expect("link");
                            });
                        }
                        while let Some(done) = running.join_next().await {
                            done.expect("writer");
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = commits
}
criterion_main!(benches);
