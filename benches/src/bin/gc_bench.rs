//! Garbage collection's cost against the size of the store: an on-disk registry (filesystem blobs,
//! redb metadata) with `manifests` manifests of 5 blobs each in 100 repositories; 20% of the
//! manifests are deleted, then a dry run and a real collection are timed, with the process's
//! resident memory sampled during each.
//!
//! `cargo run --release -p registry-benches --bin gc_bench -- [manifests ...]` (default 2000 10000)
//!
//! The data lives on /dev/shm when it exists (populating 50,000 blobs on a disk that fsyncs every
//! write would take most of the run); the collection's own work is metadata range scans, directory
//! listings and deletions, which the figures show growing with the number of objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_core::{Digest, Reference, RepositoryName};
use registry_redb::RedbStore;
use registry_storage::{FsBlobStore, GcOptions, Limits, Registry};

const BLOBS_PER_MANIFEST: usize = 5;
const REPOSITORIES: usize = 100;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs `f`, sampling RSS every 5 ms: (result, elapsed, peak RSS above the start in MiB).
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, f64) {
    let before = rss_kib();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let out = f.await;
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = sampler.join();
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst).saturating_sub(before);
    (out, elapsed, peak as f64 / 1024.0)
}

async fn run(manifests: usize) -> anyhow::Result<()> {
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let dir = tempfile::Builder::new().prefix("registry-gc-bench-").tempdir_in(base)?;
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("blobs"))?);
    let meta = Arc::new(RedbStore::open(dir.path().join("metadata.redb"))?);
    let registry = Registry::new(blobs, meta, Limits::default());
    let started = Instant::now();
    let mut pushed = Vec::with_capacity(manifests);
    for m in 0..manifests {
        let repo = RepositoryName::parse(&format!("bench/r{:03}", m % REPOSITORIES))?;
        let mut layers = Vec::new();
        for b in 0..BLOBS_PER_MANIFEST {
            let data = format!("manifest {m} blob {b}").into_bytes();
            let digest = Digest::sha256_of(&data);
            let body = futures::stream::iter([Ok::<_, registry_storage::BodyError>(bytes::Bytes::from(data.clone()))]);
            registry.push_blob(&repo, &digest, &mut Box::pin(body), &registry_core::event::Operator::system()).await?;
            layers.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}"#,
                data.len()
            ));
        }
        let config = layers.remove(0).replace("layer.v1.tar", "config.v1+json");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{config},"layers":[{}]}}"#,
            layers.join(",")
        );
        let tag = Reference::parse(&format!("t{m}"))?;
        let done = registry
            .put_manifest(
                &repo,
                &tag,
                Some("application/vnd.oci.image.manifest.v1+json"),
                manifest.into(),
                &registry_core::event::Operator::system(),
            )
            .await?;
        pushed.push((repo, done.digest));
    }
    // Every fifth image deleted.
    for (repo, digest) in pushed.iter().step_by(5) {
        registry
            .delete_manifest(repo, &Reference::Digest(digest.clone()), &registry_core::event::Operator::system())
            .await?;
    }
    let populated = started.elapsed();
    let options = GcOptions { grace: Duration::ZERO, ..GcOptions::default() };
    let (dry, dry_time, dry_mem) =
        measured(registry.collect_garbage(&GcOptions { dry_run: true, ..options.clone() })).await;
    let dry = dry?;
    let (real, real_time, real_mem) = measured(registry.collect_garbage(&options)).await;
    let real = real?;
    anyhow::ensure!(real.blobs_deleted == dry.blobs_deleted, "the dry run foresaw the run");
    println!(
        "| {manifests} | {} | {:.1} s | {:.2} s | {:.1} MiB | {:.2} s | {:.1} MiB | {} blobs, {} links, {} bytes |",
        manifests * BLOBS_PER_MANIFEST,
        populated.as_secs_f64(),
        dry_time.as_secs_f64(),
        dry_mem,
        real_time.as_secs_f64(),
        real_mem,
        real.blobs_deleted,
        real.links_removed,
        real.bytes_freed
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args().skip(1).map(|s| s.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![2000, 10_000] } else { sizes };
    println!(
        "| manifests | blobs | populate | dry run | dry run peak RSS | collection | collection peak RSS | freed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        run(n).await?;
    }
    Ok(())
}
