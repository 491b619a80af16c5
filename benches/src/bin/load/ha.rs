//! The replicated shape: the same workloads through nginx (round-robin) against 1 and 3 replicas
//! of ours on PostgreSQL + Garage, and 1 and 3 replicas of distribution 2.8 on the same Garage,
//! in one run, streaming; then three of each answering blob downloads with presigned URLs
//! (`[storage] redirect = true`, distribution's default `redirect`); last, three of ours keeping a
//! copy of what they serve on local disk (`[storage] cache_mib`), whose second pull of a blob is
//! measured after every replica has served it once. Each shape gets a fresh bucket (Garage
//! deduplicates blocks: every push is of new data anyway). Beside each rate, the CPU the registry processes spent per unit of work (their
//! `utime + stime` from `/proc`), which shows what a second and third replica would add on a
//! machine with the cores to give them: this one has 2, shared with the client, nginx and Garage.
//!
//! `cargo build --release -p registry-server --bin registry && cargo run --release -p registry-benches --bin load -- ha [runs] [shapes]`
//! (`shapes`: names from the table, comma-separated, e.g. `"ours x3 cached,distribution x3"`)

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use registry_core::Digest;
use registry_postgres::testing::TestDatabase;
use testkit::proxy::{Proxy, reserve_port};
use testkit::s3::S3Server;
use tokio::process::{Child, Command};

use super::{
    GIB, Server, cell, cpu_secs, free_port, manifest_load, median_spread, pull, push_monolithic, push_small_image,
    range_p50, start_ours, test_data,
};

/// A shape under test: the processes behind the proxy.
struct Shape {
    name: String,
    /// Each replica keeps a copy of what it serves (`[storage] cache_mib`).
    cached: bool,
    proxy: Proxy,
    pids: Vec<u32>,
    /// The processes (kept alive with the shape).
    _children: Vec<Child>,
    /// Our replicas, each with its own address (none for distribution's, kept in `_children`).
    servers: Vec<Server>,
}

impl Shape {
    fn cpu(&self) -> f64 {
        self.pids.iter().map(|p| cpu_secs(*p)).sum()
    }

    fn target(&self) -> anyhow::Result<Server> {
        let addr: SocketAddr = self.proxy.addr.parse()?;
        Ok(Server { name: "proxy", addr, child: None, bearer: None })
    }
}

/// A replica's `[database]` and `[storage]` tables for `db` and `s3` (the `[storage]` table last,
/// open for more keys).
pub(super) fn stores_config(db: &TestDatabase, s3: &S3Server) -> String {
    format!(
        "[database]\nurl = {:?}\npool_size = 16\n[storage]\ntype = \"s3\"\nbucket = {:?}\nendpoint = {:?}\n\
         region = {:?}\npath_style = true\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
        db.url(),
        s3.bucket,
        s3.endpoint,
        s3.region,
        s3.access_key_id,
        s3.secret_access_key
    )
}

/// `redirect`: blob downloads answered with a presigned URL (`[storage] redirect = true`);
/// `cached`: each replica keeps up to 4 GiB of pulled blobs on its disk (`[storage] cache_mib`).
async fn ours(
    binary: &Path,
    work: &Path,
    (replicas, redirect, cached): (usize, bool, bool),
    s3: &S3Server,
    db: &TestDatabase,
) -> anyhow::Result<Shape> {
    let mut servers = Vec::new();
    for i in 0..replicas {
        let dir = work.join(format!("ours-{replicas}-{redirect}-{cached}-{i}"));
        std::fs::create_dir_all(&dir)?;
        let cache = if cached { 4096 } else { 0 };
        let extra =
            format!("{}redirect = {redirect}\ncache_mib = {cache}\n[metrics]\nenabled = true\n", stores_config(db, s3));
        servers.push(start_ours(binary, &dir, false, &extra).await?);
    }
    let upstreams: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let pids = servers.iter().filter_map(Server::pid).collect();
    let proxy = Proxy::start(reserve_port(), &upstreams).await;
    let name =
        format!("ours x{replicas}{}{}", if redirect { " redirect" } else { "" }, if cached { " cached" } else { "" });
    Ok(Shape { name, cached, proxy, pids, _children: Vec::new(), servers })
}

/// Pulls `digest` from every replica directly, each time waiting until the replica has kept its
/// copy (its `/metrics` counts `copies` GiB of copies: the 1 GiB blobs of the runs so far, beside
/// which manifests are a few bytes), so that the next pull through the proxy finds a copy
/// wherever it lands.
async fn warm(shape: &Shape, repo: &str, digest: &Digest, copies: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for server in &shape.servers {
        pull(server, repo, digest).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let text = client.get(format!("http://{}/metrics", server.addr)).send().await?.text().await?;
            let held = text
                .lines()
                .find_map(|l| l.strip_prefix("registry_cache_bytes{cache=\"blob_files\"} "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            if held >= copies * GIB as u64 {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "{} kept no copy of {digest}", server.addr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// `redirect`: distribution's own default (`storage.redirect.disable: false`).
async fn distribution(work: &Path, replicas: usize, redirect: bool, s3: &S3Server) -> anyhow::Result<Shape> {
    let mut children = Vec::new();
    let mut upstreams = Vec::new();
    for i in 0..replicas {
        let port = free_port()?;
        let config = work.join(format!("distribution-{replicas}-{redirect}-{i}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  s3:\n    \
                 accesskey: {}\n    secretkey: {}\n    region: {}\n    regionendpoint: {}\n    bucket: {}\n    \
                 secure: false\n    v4auth: true\n    rootdirectory: /distribution\n  delete:\n    enabled: true\n  \
                 redirect:\n    disable: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: load-shared-secret\n",
                s3.access_key_id, s3.secret_access_key, s3.region, s3.endpoint, s3.bucket, !redirect
            ),
        )?;
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().context("utf8")?])
            // It panics at start with AWS_CA_BUNDLE set (see TESTING.md).
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting docker-registry (apt-get install -y docker-registry)")?;
        let addr = format!("127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "docker-registry did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        upstreams.push(addr);
        children.push(child);
    }
    let pids = children.iter().filter_map(Child::id).collect();
    let proxy = Proxy::start(reserve_port(), &upstreams).await;
    let name = format!("distribution x{replicas}{}", if redirect { " redirect" } else { "" });
    let cached = false;
    Ok(Shape { name, cached, proxy, pids, _children: children, servers: Vec::new() })
}

/// One shape's figures, one entry per run.
#[derive(Default)]
struct Figures {
    push: Vec<f64>,
    push_cpu: Vec<f64>,
    pull: Vec<f64>,
    pull_cpu: Vec<f64>,
    again: Vec<f64>,
    again_cpu: Vec<f64>,
    range: Vec<f64>,
    manifest: Vec<f64>,
    p99: Vec<f64>,
    manifest_cpu: Vec<f64>,
}

async fn measure(shape: &Shape, runs: usize, seed: u64) -> anyhow::Result<Figures> {
    let target = shape.target()?;
    let mut f = Figures::default();
    push_small_image(&target, "load/small").await?;
    for run in 0..runs {
        let data = test_data(GIB, seed * 100 + run as u64);
        let digest = Digest::sha256_of(&data);
        let repo = format!("load/r{run}");
        let before = shape.cpu();
        f.push.push(push_monolithic(&target, &repo, &data, &digest).await?);
        f.push_cpu.push(shape.cpu() - before);
        drop(data);
        let before = shape.cpu();
        f.pull.push(pull(&target, &repo, &digest).await?);
        f.pull_cpu.push(shape.cpu() - before);
        if shape.cached {
            warm(shape, &repo, &digest, run as u64 + 1).await?;
        }
        let before = shape.cpu();
        f.again.push(pull(&target, &repo, &digest).await?);
        f.again_cpu.push(shape.cpu() - before);
        f.range.push(range_p50(&target, &repo, &digest, GIB).await? / 1000.0);
        let before = shape.cpu();
        let (rps, p99) = manifest_load(&target, "load/small", 64, Duration::from_secs(10)).await?;
        let cpu = shape.cpu() - before;
        f.manifest.push(rps);
        f.p99.push(p99);
        f.manifest_cpu.push(cpu * 1e6 / (rps * 10.0));
        eprintln!(
            "  {} run {run}: push {:.0} MB/s ({:.1} CPU s), pull {:.0} MB/s ({:.1} CPU s), again {:.0} MB/s ({:.1} CPU s), range p50 {:.2} ms, manifest {rps:.0}/s p99 {p99:.1} ms ({:.0} CPU µs/req)",
            shape.name,
            f.push[run],
            f.push_cpu[run],
            f.pull[run],
            f.pull_cpu[run],
            f.again[run],
            f.again_cpu[run],
            f.range[run],
            f.manifest_cpu[run]
        );
    }
    Ok(f)
}

/// Runs every shape (or those whose names `only` lists, comma-separated) and prints the table.
pub(crate) async fn run(binary: &Path, runs: usize, only: Option<&str>) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-load-ha-").tempdir_in(std::env::temp_dir())?;
    let mut results: Vec<(String, Figures)> = Vec::new();
    // Streaming first (the defaults), then blob downloads redirected to presigned URLs.
    // Last, three of ours each keeping a copy of what it serves on its disk.
    let shapes: [(&str, usize, bool, bool); 7] = [
        ("ours", 1, false, false),
        ("ours", 3, false, false),
        ("distribution", 1, false, false),
        ("distribution", 3, false, false),
        ("ours", 3, true, false),
        ("distribution", 3, true, false),
        ("ours", 3, false, true),
    ];
    for (i, (kind, replicas, redirect, cached)) in shapes.into_iter().enumerate() {
        let name = format!(
            "{kind} x{replicas}{}{}",
            if redirect { " redirect" } else { "" },
            if cached { " cached" } else { "" }
        );
        if only.is_some_and(|only| !only.split(',').any(|n| n.trim() == name)) {
            continue;
        }
        let s3 = S3Server::garage().await;
        let db = TestDatabase::create().await;
        let shape = if kind == "ours" {
            ours(binary, work.path(), (replicas, redirect, cached), &s3, &db).await?
        } else {
            distribution(work.path(), replicas, redirect, &s3).await?
        };
        eprintln!("{}: behind nginx at {}", shape.name, shape.proxy.addr);
        let figures = match measure(&shape, runs, i as u64 + 1).await {
            Ok(figures) => figures,
            Err(e) => {
                // The replicas' logs (and their blob caches) are what tells why.
                let kept = work.keep();
                return Err(e.context(format!("the replicas' directories are kept in {}", kept.display())));
            }
        };
        results.push((shape.name.clone(), figures));
        let Shape { proxy, .. } = shape;
        proxy.stop().await;
        s3.stop().await;
        db.drop_database().await;
    }

    println!("\nThe replicated shape: nginx round-robin over the replicas; PostgreSQL 15 (ours) and Garage 2.5.0");
    println!("on this machine (2 CPUs, shared by every process). Runs per figure: {runs}; median (min–max).\n");
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    println!(
        "| workload | unit | {} | ours x3 / distribution x3 | both redirecting | ours redirecting / distribution streaming | ours cached / distribution streaming | ours cached / distribution redirecting |",
        names.join(" | ")
    );
    println!("|---|---|{}---|---|---|---|---|", "---|".repeat(names.len()));
    type Pick = fn(&Figures) -> &Vec<f64>;
    let rows: [(&str, &str, Pick, bool); 10] = [
        ("1 GiB blob push (POST + PUT)", "MB/s", |f| &f.push, false),
        ("registry CPU for that push", "CPU s", |f| &f.push_cpu, true),
        ("1 GiB blob pull", "MB/s", |f| &f.pull, false),
        ("registry CPU for that pull", "CPU s", |f| &f.pull_cpu, true),
        ("the same 1 GiB pulled again (cached: after each replica served it once)", "MB/s", |f| &f.again, false),
        ("registry CPU for that pull", "CPU s", |f| &f.again_cpu, true),
        ("4 KiB Range GET, p50", "ms", |f| &f.range, true),
        ("manifest GET by tag, wrk 2 threads, 64 conns, 10 s", "req/s", |f| &f.manifest, false),
        ("manifest GET by tag, p99", "ms", |f| &f.p99, true),
        ("registry CPU per manifest GET", "CPU µs", |f| &f.manifest_cpu, true),
    ];
    for (workload, unit, pick, lower) in rows {
        let cells: Vec<String> = results.iter().map(|(_, f)| cell(pick(f))).collect();
        let median = |name: &str| results.iter().find(|(n, _)| n == name).map(|(_, f)| median_spread(pick(f)).0);
        let ratio = |a: &str, b: &str| {
            let (ours, theirs) = (median(a).unwrap_or(0.0), median(b).unwrap_or(0.0));
            if ours <= 0.0 || theirs <= 0.0 {
                "–".to_owned()
            } else if lower {
                format!("{:.2}x less", theirs / ours)
            } else {
                format!("{:.2}x", ours / theirs)
            }
        };
        println!(
            "| {workload} | {unit} | {} | {} | {} | {} | {} | {} |",
            cells.join(" | "),
            ratio("ours x3", "distribution x3"),
            ratio("ours x3 redirect", "distribution x3 redirect"),
            ratio("ours x3 redirect", "distribution x3"),
            ratio("ours x3 cached", "distribution x3"),
            ratio("ours x3 cached", "distribution x3 redirect")
        );
    }
    Ok(())
}
