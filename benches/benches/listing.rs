//! Tag listing and catalog pages against the size of the store: one repository with 1,000 or
//! 100,000 tags, and a catalog of 1,000 or 10,000 repositories. A page (100 entries) at the start,
//! the middle and the end of the listing must cost the same whatever the total: every listing is
//! one range scan of the metadata B-tree from the `last` key.
//!
//! `cargo bench -p registry-benches --bench listing`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use registry_core::{Digest, RepositoryName, Tag};
use registry_redb::RedbStore;
use registry_storage::meta::ManifestRecord;
use registry_storage::{Limits, MemoryBlobStore, MetadataStore, Registry};

const PAGE: usize = 100;

/// A registry whose repository `big/app` holds `tags` tags and whose catalog holds `repos`
/// repositories (`r/00000` ...).
fn populated(rt: &tokio::runtime::Runtime, tags: usize, repos: usize) -> Registry {
    rt.block_on(async {
        let meta = Arc::new(RedbStore::in_memory());
        let repo = RepositoryName::parse("big/app").expect("name");
        let digest = Digest::sha256_of(b"manifest");
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 8,
            artifact_type: None,
            annotations: Default::default(),
            subject: None,
            references: Vec::new(),
            pushed_at: 0,
        };
        for i in 0..tags {
            let tag = Tag::parse(&format!("v{i:06}")).expect("tag");
            meta.put_manifest(&repo, &record, Some(&tag), &registry_storage::Protection::none(), &[])
                .await
                .expect("put");
        }
        for i in 0..repos {
            let name = RepositoryName::parse(&format!("r/{i:05}")).expect("name");
            meta.link_blob(&name, &digest, 8).await.expect("link");
        }
        Registry::new(Arc::new(MemoryBlobStore::new()), meta, Limits::default())
    })
}

fn listing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let repo = RepositoryName::parse("big/app").expect("name");
    let mut tags_group = c.benchmark_group("tags page of 100");
    let mut catalog_group = Vec::new();
    // Run once each as a test (`-- --test`, the test command's quick mode, in a debug build), the
    // large store is a tenth of the measured one: filling 100,000 tags unoptimised takes minutes.
    let quick = std::env::args().any(|a| a == "--test");
    let large = if quick { (10_000, 2_000) } else { (100_000, 10_000) };
    for (tags, repos) in [(1_000usize, 1_000usize), large] {
        let registry = populated(&rt, tags, repos);
        for (at, label) in [(None, "first"), (Some(tags / 2), "middle"), (Some(tags - PAGE - 1), "last")] {
            let last = at.map(|i| format!("v{i:06}"));
            tags_group.bench_with_input(BenchmarkId::new(format!("{tags} tags"), label), &last, |b, last| {
                b.iter(|| {
                    let page = rt.block_on(registry.tags(&repo, last.as_deref(), Some(PAGE))).expect("tags");
                    assert_eq!(page.entries.len(), PAGE);
                })
            });
        }
        catalog_group.push((repos, registry));
    }
    tags_group.finish();
    let mut group = c.benchmark_group("catalog page of 100");
    for (repos, registry) in &catalog_group {
        for (at, label) in [(None, "first"), (Some(repos / 2), "middle"), (Some(repos - PAGE - 1), "last")] {
            let last = at.map(|i| format!("r/{i:05}"));
            group.bench_with_input(BenchmarkId::new(format!("{repos} repositories"), label), &last, |b, last| {
                b.iter(|| {
                    let page = rt.block_on(registry.catalog(last.as_deref(), Some(PAGE))).expect("catalog");
                    assert_eq!(page.entries.len(), PAGE);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
