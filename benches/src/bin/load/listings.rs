//! `load listings [redb|postgres]`: Harbor's artifacts page (15, newest first), the repositories page (15)
//! and the project summary against the size of the repository and of the project, on redb and on
//! PostgreSQL (`REGISTRY_TEST_POSTGRES`, a scratch database made and dropped): a repository of
//! 10, 1,000, 10,000 and 100,000 manifests, a project of 10, 1,000 and 10,000 repositories. The
//! server runs in this process (so the CPU column is the process's: server and client), seeded
//! through the engine (each manifest a small OCI index of its own, so seeding writes one record
//! per manifest). Beside each indexed page, the same page through a filter (`q=type=IMAGE`),
//! which reads every manifest as every listing did before the index: the cost it replaces. On
//! PostgreSQL the tool runs `VACUUM ANALYZE` between seeding steps and before each measurement,
//! as autovacuum would (this machine's server runs with it off).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use registry_core::event::Operator;
use registry_core::{Reference, RepositoryName};
use registry_storage::{Limits, MemoryBlobStore, MetadataStore, Registry};

use super::{cpu_secs, median_spread};

const REPOSITORY_SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];
const PROJECT_SIZES: [usize; 3] = [10, 1_000, 10_000];
/// Requests per figure.
const REQUESTS: usize = 40;

/// An OCI index of nothing, made distinct by `n`.
fn manifest(n: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"n":"{n}"}}}}"#
    ))
}

/// Pushes manifests `from..to` into `repo` through the engine, `parallel` at a time.
async fn seed(
    registry: &Registry,
    repo: &RepositoryName,
    from: usize,
    to: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    let operator = Operator::anonymous(None);
    let mut next = from;
    while next < to {
        let batch = (next..to.min(next + parallel)).map(|n| {
            let (registry, repo, operator) = (registry.clone(), repo.clone(), operator.clone());
            async move {
                let bytes = manifest(n);
                let digest = registry_core::Digest::sha256_of(&bytes);
                registry
                    .put_manifest(
                        &repo,
                        &Reference::Digest(digest),
                        Some(registry_core::media_type::OCI_INDEX),
                        bytes,
                        &operator,
                    )
                    .await
            }
        });
        for pushed in futures::future::join_all(batch).await {
            pushed.context("seeding a manifest")?;
        }
        next = to.min(next + parallel);
    }
    Ok(())
}

/// Median wall ms and process CPU ms per request of `count` GETs of `path`, checking the status
/// and the total.
async fn time_get(base: &str, path: &str, count: usize, total: usize) -> anyhow::Result<(f64, f64)> {
    // A new client each time: a connection left idle through a long seeding may be closed by the
    // server just as it is reused.
    let c = testkit::client();
    let mut times = Vec::with_capacity(count);
    let cpu = cpu_secs(std::process::id());
    for _ in 0..count {
        let started = Instant::now();
        let resp = c.get(format!("{base}/api/v2.0{path}")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
        let header = resp.headers().get("x-total-count").and_then(|v| v.to_str().ok()).map(str::to_owned);
        resp.bytes().await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if let Some(seen) = header {
            anyhow::ensure!(seen == total.to_string(), "{path}: total {seen}, expected {total}");
        }
    }
    let cpu_ms = (cpu_secs(std::process::id()) - cpu) * 1e3 / count as f64;
    Ok((median_spread(&times).0, cpu_ms))
}

/// What autovacuum does on a PostgreSQL that runs it (this machine's has it off): `VACUUM
/// ANALYZE` of the scratch database, before each measurement and between seeding steps.
struct Maintenance(Option<tokio_postgres::Client>);

impl Maintenance {
    async fn connect(url: Option<&str>) -> anyhow::Result<Maintenance> {
        let Some(url) = url else { return Ok(Maintenance(None)) };
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(Maintenance(Some(client)))
    }

    async fn run(&self) -> anyhow::Result<()> {
        if let Some(client) = &self.0 {
            client.batch_execute("VACUUM ANALYZE").await?;
        }
        Ok(())
    }
}

/// One backend's rows; `database`: PostgreSQL's URL, for [`Maintenance`].
async fn measure(
    name: &str,
    meta: Arc<dyn MetadataStore>,
    parallel: usize,
    database: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let maintenance = Maintenance::connect(database).await?;
    let registry = Registry::new(Arc::new(MemoryBlobStore::new()), meta, Limits::default());
    let accounts = registry_auth::Accounts::in_memory();
    for project in ["big", "p10", "p1000", "p10000"] {
        accounts.create_project(project, true).await?;
    }
    let server = registry_http::TestRegistry::builder().registry(registry.clone()).accounts(accounts).start().await?;
    let base = server.url();
    let mut rows = Vec::new();
    let mut baseline: Option<(f64, f64)> = None;
    for size in REPOSITORY_SIZES {
        let repo = RepositoryName::parse(&format!("big/r{size}"))?;
        let started = Instant::now();
        for from in (0..size).step_by(10_000) {
            seed(&registry, &repo, from, size.min(from + 10_000), parallel).await?;
            maintenance.run().await?;
        }
        let took = started.elapsed().as_secs_f64();
        eprintln!("  {name}: seeded {size} manifests in {took:.1} s ({:.0}/s)", size as f64 / took);
        maintenance.run().await?;
        let path = format!("/projects/big/repositories/r{size}/artifacts?page=1&page_size=15");
        let (ms, cpu) = time_get(&base, &path, REQUESTS, size).await?;
        let full_count = if size >= 10_000 { 3 } else { 10 };
        let (full_ms, full_cpu) = time_get(&base, &format!("{path}&q=type%3DIMAGE"), full_count, size).await?;
        let base_ms = baseline.get_or_insert((ms, cpu)).0;
        rows.push(format!(
            "| {name} | artifacts page (15) | {size} manifests | {ms:.2} | {cpu:.2} | {:.2}x | {full_ms:.1} ms, {full_cpu:.1} CPU ms |",
            ms / base_ms
        ));
    }
    let mut baseline: Option<f64> = None;
    for size in PROJECT_SIZES {
        let project = format!("p{size}");
        let started = Instant::now();
        for r in 0..size {
            // One manifest per repository, `parallel` repositories at a time.
            if r % parallel != 0 {
                continue;
            }
            let batch = (r..(r + parallel).min(size)).map(|k| {
                let registry = registry.clone();
                let project = project.clone();
                async move {
                    let repo = RepositoryName::parse(&format!("{project}/repo{k:05}"))?;
                    seed(&registry, &repo, k, k + 1, 1).await
                }
            });
            for seeded in futures::future::join_all(batch).await {
                seeded?;
            }
        }
        eprintln!("  {name}: seeded {size} repositories in {:.1} s", started.elapsed().as_secs_f64());
        maintenance.run().await?;
        let (ms, cpu) =
            time_get(&base, &format!("/projects/{project}/repositories?page=1&page_size=15"), REQUESTS, size).await?;
        let (summary_ms, summary_cpu) =
            time_get(&base, &format!("/projects/{project}/summary"), REQUESTS, size).await?;
        let base_ms = *baseline.get_or_insert(ms);
        rows.push(format!(
            "| {name} | repositories page (15) | {size} repositories | {ms:.2} | {cpu:.2} | {:.2}x | summary {summary_ms:.2} ms, {summary_cpu:.2} CPU ms |",
            ms / base_ms
        ));
    }
    server.stop().await;
    Ok(rows)
}

/// `which`: `redb`, `postgres` or both (`None`).
pub(crate) async fn run(which: Option<&str>) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if which != Some("postgres") {
        rows.extend(measure("redb", Arc::new(registry_redb::RedbStore::in_memory()), 1, None).await?);
    }
    let postgres = which != Some("redb");
    if postgres && std::env::var("REGISTRY_TEST_POSTGRES").is_ok() {
        let db = registry_postgres::testing::TestDatabase::create().await;
        let measured = measure("PostgreSQL", Arc::new(db.store().await), 4, Some(db.url())).await;
        db.drop_database().await;
        rows.extend(measured?);
    } else if postgres {
        eprintln!("REGISTRY_TEST_POSTGRES is not set: PostgreSQL skipped");
    }
    println!(
        "\nMedian of {REQUESTS} requests (the full read: of 10, or 3 from 10,000 up); CPU is this process's (server and client) per request.\n"
    );
    println!("| store | call | size | ms | CPU ms | vs. smallest | the same through a full read |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
