//! The sustained load, on either deployment shape: clients on loopback mixing pushes, pulls, tag
//! listings and deletes (each client keeping at most 40 images, so the registry reaches a steady
//! state), logging in again every 100 operations (a token with Basic credentials, and a management
//! API call with them), with garbage collection every 30 s under the load and a webhook policy
//! delivering every push and delete to a receiver on loopback. Token auth is on.
//!
//! Every second it samples the registry processes' resident memory and open file descriptors;
//! every minute it prints a row with those, the heap the processes hold as jemalloc counts it
//! (`registry_allocator_allocated_bytes`: a rising RSS over a flat heap is freed memory the
//! allocator keeps, a rising heap is the program holding more), the tasks alive in each process's async runtime
//! (`registry_runtime_tasks` from `/metrics`), the database connections (`pg_stat_activity`, on
//! the replicated shape, which it also vacuums each minute where the server's autovacuum is off),
//! the operations and webhook deliveries of the minute, the deliveries waiting in the queue
//! (`registry_jobs`), a delivery's mean time waiting once due, being claimed, running and being
//! recorded in the minute (`registry_job_*_seconds`), the errors, and the CPU the registry
//! processes together and the S3 server (replicated) used in the minute, in % of one core (which
//! of the two sets the rate).
//! The first minute warms the caches up; the second is the reference for "flat".
//!
//! ```sh
//! cargo build --release -p registry-server --bin registry
//! cargo run --release -p registry-benches --bin load -- soak [seconds] [embedded|replicated|replicated-moto|replicated-fs] [clients]
//! ```
//!
//! `replicated`: three replicas on PostgreSQL (a throwaway database on `REGISTRY_TEST_POSTGRES` or
//! the machine's) and Garage (`REGISTRY_GARAGE`) behind nginx, as `load ha` runs them.
//! Garage keeps a day of tombstones, which its listings walk: under the soak's churn its rate, not
//! the registry's, falls over the hour. Two other stores, to tell the two apart:
//! `replicated-moto` runs the same on moto's server (in memory: a deleted key is gone), and
//! `replicated-fs` on s3s-fs, an S3 server on a directory (install it with
//! `cargo install s3s-fs --version 0.14.1 --features binary --locked --root ~/.cache/registry-tools/s3s-fs`;
//! it leaves a deleted object's directories behind and walks the whole bucket for every listing,
//! so it slows with deletions too).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use registry_core::Digest;
use registry_postgres::testing::TestDatabase;
use testkit::proxy::{Proxy, reserve_port};
use testkit::s3::S3Server;

use super::{Conn, OCI_MANIFEST, Server, cpu_secs, header, path_of, rss_kib, start_ours, test_data};

const PASSWORD: &str = "load-test-password";
/// Operations between two logins of a client.
const LOGIN_EVERY: u64 = 100;

#[derive(Default)]
struct Counts {
    pushes: AtomicU64,
    pulls: AtomicU64,
    listings: AtomicU64,
    deletes: AtomicU64,
    logins: AtomicU64,
    reconnects: AtomicU64,
    errors: AtomicU64,
    mismatches: AtomicU64,
}

impl Counts {
    fn ops(&self) -> u64 {
        [&self.pushes, &self.pulls, &self.listings, &self.deletes, &self.logins]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

fn basic() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}")))
}

/// Pushes a small image (config + one layer, monolithic or in two chunks) tagged `tag`; returns
/// the manifest's digest and the layer's.
async fn push_image(
    c: &mut Conn,
    auth: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    chunked: bool,
) -> anyhow::Result<(Digest, Digest)> {
    let layer = test_data(16 << 10 | (seed as usize % (240 << 10)), seed);
    let config = Bytes::from(format!(r#"{{"seed":{seed}}}"#));
    let a = [("authorization", auth)];
    let mut digests = Vec::new();
    for (i, blob) in [&config, &layer].into_iter().enumerate() {
        let digest = Digest::sha256_of(blob);
        let (status, h, _) = c.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &a, Bytes::new()).await?;
        anyhow::ensure!(status == 202, "POST {status}");
        let mut location = path_of(&header(&h, "location"));
        let mut body = blob.clone();
        if chunked && i == 1 {
            let half = blob.len() / 2;
            let range = format!("0-{}", half - 1);
            let hh = [
                ("authorization", auth),
                ("content-range", range.as_str()),
                ("content-type", "application/octet-stream"),
            ];
            let (status, h, _) = c.send("PATCH", &location, &hh, blob.slice(..half)).await?;
            anyhow::ensure!(status == 202, "PATCH {status}");
            location = path_of(&header(&h, "location"));
            body = blob.slice(half..);
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let (status, _, _) = c.send("PUT", &format!("{location}{sep}digest={digest}"), &a, body).await?;
        anyhow::ensure!(status == 201, "PUT {status}");
        digests.push((digest, blob.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digests[0].0, digests[0].1, digests[1].0, digests[1].1
    );
    let hh = [("authorization", auth), ("content-type", OCI_MANIFEST)];
    let (status, _, _) =
        c.send("PUT", &format!("/v2/{repo}/manifests/{tag}"), &hh, Bytes::from(manifest.clone())).await?;
    anyhow::ensure!(status == 201, "manifest PUT {status}");
    Ok((Digest::sha256_of(manifest.as_bytes()), digests[1].0.clone()))
}

/// A login: a token for the client's repository with Basic credentials (as podman asks one per
/// scope), and a management API call with them (as Harbor's API clients send them every time).
async fn login(c: &mut Conn, repo: &str) -> anyhow::Result<String> {
    let basic = basic();
    let path = format!("/auth/token?service=registry&scope=repository:{repo}:pull,push,delete");
    let (status, body) = c.fetch("GET", &path, &[("authorization", &basic)]).await?;
    anyhow::ensure!(status == 200, "token {status}");
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let token = json["token"].as_str().context("no token")?;
    let (status, _) = c.fetch("GET", "/api/v2.0/projects?page_size=5", &[("authorization", &basic)]).await?;
    anyhow::ensure!(status == 200, "API {status}");
    Ok(format!("Bearer {token}"))
}

/// One client: its own repository, a mix of operations until `deadline`.
async fn client(addr: SocketAddr, id: usize, deadline: Instant, counts: Arc<Counts>) {
    let repo = format!("library/soak-c{id}");
    let mut images: Vec<(String, Digest, Digest)> = Vec::new();
    let mut x: u64 = (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let (mut next, mut done) = (0u64, 0u64);
    let mut conn = None;
    let mut auth: Option<String> = None;
    while Instant::now() < deadline {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::open(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let roll = x % 100;
        let result: anyhow::Result<()> = async {
            done += 1;
            if auth.is_none() || done.is_multiple_of(LOGIN_EVERY) {
                auth = Some(login(c, &repo).await?);
                counts.logins.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let a = auth.clone().unwrap_or_default();
            // Each client keeps at most 40 images: a steady state, in which memory must stay flat.
            let full = images.len() >= 40;
            if (roll < 30 || images.is_empty()) && !full {
                next += 1;
                let tag = format!("t{next}");
                let (manifest, layer) = push_image(c, &a, &repo, &tag, x, roll.is_multiple_of(2)).await?;
                images.push((tag, manifest, layer));
                counts.pushes.fetch_add(1, Ordering::Relaxed);
            } else if roll < 70 && !full {
                let (tag, manifest, layer) = &images[(x as usize / 7) % images.len()];
                let h = [("authorization", a.as_str()), ("accept", OCI_MANIFEST)];
                let (status, body) = c.fetch("GET", &format!("/v2/{repo}/manifests/{tag}"), &h).await?;
                anyhow::ensure!(status == 200, "manifest GET {status}");
                let (status, blob) =
                    c.fetch("GET", &format!("/v2/{repo}/blobs/{layer}"), &[("authorization", a.as_str())]).await?;
                anyhow::ensure!(status == 200, "blob GET {status}");
                if &Digest::sha256_of(&body) != manifest || &Digest::sha256_of(&blob) != layer {
                    counts.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                counts.pulls.fetch_add(1, Ordering::Relaxed);
            } else if roll < 85 && !full {
                let h = [("authorization", a.as_str())];
                let (status, body) = c.fetch("GET", &format!("/v2/{repo}/tags/list?n=100"), &h).await?;
                anyhow::ensure!(status == 200, "tags {status}");
                anyhow::ensure!(body.len() > 2, "empty tag list");
                counts.listings.fetch_add(1, Ordering::Relaxed);
            } else {
                let victim = (x as usize / 11) % images.len();
                let manifest = images[victim].1.clone();
                let h = [("authorization", a.as_str())];
                let (status, _, _) =
                    c.send("DELETE", &format!("/v2/{repo}/manifests/{manifest}"), &h, Bytes::new()).await?;
                anyhow::ensure!(status == 202, "DELETE {status}");
                images.remove(victim);
                counts.deletes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            conn = None;
            if e.downcast_ref::<super::ConnectionClosed>().is_some() {
                // Not sent: reconnect and go on (a push half done is pushed again: idempotent).
                counts.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counts.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("client {id}: {e:#}");
            conn = None;
            auth = None;
        }
    }
}

/// The registry processes under load, the address clients use, and what keeps the shape up.
struct Soaked {
    target: SocketAddr,
    replicas: Vec<Server>,
    database: Option<TestDatabase>,
    s3: Option<S3Server>,
    proxy: Option<Proxy>,
}

const EXTRA: &str = "[gc]\ninterval_secs = 30\ngrace_secs = 10\n[metrics]\nenabled = true\n";

async fn embedded(binary: &Path, work: &Path) -> anyhow::Result<Soaked> {
    let server = start_ours(binary, work, true, EXTRA).await?;
    Ok(Soaked { target: server.addr, replicas: vec![server], database: None, s3: None, proxy: None })
}

async fn replicated(binary: &Path, work: &Path, s3: S3Server) -> anyhow::Result<Soaked> {
    let db = TestDatabase::create().await;
    let mut replicas = Vec::new();
    for i in 0..3 {
        let dir = work.join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir)?;
        let extra = format!("{EXTRA}{}", super::ha::stores_config(&db, &s3));
        replicas.push(start_ours(binary, &dir, true, &extra).await?);
    }
    let upstreams: Vec<String> = replicas.iter().map(|s| s.addr.to_string()).collect();
    let proxy = Proxy::start(reserve_port(), &upstreams).await;
    let target = proxy.addr.parse()?;
    Ok(Soaked { target, replicas, database: Some(db), s3: Some(s3), proxy: Some(proxy) })
}

/// Allows loopback webhook targets and points a policy of `library` at `url` (pushes, deletes).
async fn webhook_policy(target: SocketAddr, url: &str) -> anyhow::Result<()> {
    let mut c = Conn::open(target).await?;
    let basic = basic();
    let json = [("authorization", basic.as_str()), ("content-type", "application/json")];
    let allow = Bytes::from(r#"{"webhook_allow_private_targets": true}"#);
    let (status, _, _) = c.send("PUT", "/api/v2.0/configurations", &json, allow).await?;
    anyhow::ensure!(status == 200, "configurations {status}");
    let policy = serde_json::json!({
        "name": "soak",
        "targets": [{"type": "http", "address": url}],
        "event_types": ["PUSH_ARTIFACT", "DELETE_ARTIFACT"],
        "enabled": true,
    });
    let body = Bytes::from(policy.to_string());
    let (status, _, _) = c.send("POST", "/api/v2.0/projects/library/webhook/policies", &json, body).await?;
    anyhow::ensure!(status == 201, "webhook policy {status}");
    Ok(())
}

/// What one process's `/metrics` says: its runtime tasks, the webhook deliveries waiting in the
/// queue (`registry_jobs` pending; the queue is shared, so each process reports the same), and
/// where its deliveries spent their time (attempts, and seconds waiting once due, running and
/// recording their ends, summed since start).
#[derive(Default, Clone, Copy)]
struct Scraped {
    tasks: u64,
    heap_bytes: f64,
    /// Entries of every cache the process reports (`registry_cache_entries`), and the bytes of
    /// those bounded by bytes (`registry_cache_bytes`).
    cached: (f64, f64),
    waiting: u64,
    attempts: f64,
    waited: f64,
    claimed: f64,
    ran: f64,
    recorded: f64,
}

async fn scrape(addr: SocketAddr) -> Scraped {
    let Ok(mut c) = Conn::open(addr).await else { return Scraped::default() };
    let Ok((200, body)) = c.fetch("GET", "/metrics", &[]).await else { return Scraped::default() };
    let text = String::from_utf8_lossy(&body);
    let value = |prefix: &str| {
        text.lines().find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    let sum = |prefix: &str| caches(&text, prefix).iter().map(|(_, v)| v).sum::<f64>();
    Scraped {
        tasks: value("registry_runtime_tasks ") as u64,
        heap_bytes: value("registry_allocator_allocated_bytes "),
        cached: (sum("registry_cache_entries{"), sum("registry_cache_bytes{")),
        waiting: value("registry_jobs{kind=\"webhook\",status=\"pending\"} ") as u64,
        attempts: value("registry_job_attempts{kind=\"webhook\"} "),
        waited: value("registry_job_wait_seconds{kind=\"webhook\"} "),
        claimed: value("registry_job_claim_seconds{kind=\"webhook\"} "),
        ran: value("registry_job_run_seconds{kind=\"webhook\"} "),
        recorded: value("registry_job_record_seconds{kind=\"webhook\"} "),
    }
}

/// The samples of one cache metric in an exposition: each cache's name and value.
fn caches(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let (labels, value) = l.strip_prefix(prefix)?.split_once("} ")?;
            let name = labels.strip_prefix("cache=\"")?.trim_end_matches('"');
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Every cache's entries (and bytes, where bounded by bytes) in the process at `addr`, largest
/// first: which of them holds what the heap grew by.
async fn cache_sizes(addr: SocketAddr) -> String {
    let Ok(mut c) = Conn::open(addr).await else { return String::new() };
    let Ok((200, body)) = c.fetch("GET", "/metrics", &[]).await else { return String::new() };
    let text = String::from_utf8_lossy(&body);
    let bytes = caches(&text, "registry_cache_bytes{");
    let mut entries = caches(&text, "registry_cache_entries{");
    entries.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = entries
        .iter()
        .map(|(name, n)| match bytes.iter().find(|(b, _)| b == name) {
            Some((_, b)) => format!("{name} {n:.0} ({:.1} MiB)", b / (1024.0 * 1024.0)),
            None => format!("{name} {n:.0}"),
        })
        .collect();
    shown.join(", ")
}

/// Connections to the replicas' database, not counting `client`'s.
async fn database_connections(client: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Connections to the replicas' database, not counting this one. Where the server runs without
/// autovacuum (this machine's does), the database is vacuumed too, as autovacuum would: the hot
/// rows (counters, job rows) otherwise collect dead versions and the rate falls for that reason.
async fn database_minute(url: &str) -> anyhow::Result<u64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let autovacuum: String = client.query_one("SHOW autovacuum", &[]).await?.get(0);
    if autovacuum == "off" {
        client.batch_execute("VACUUM (ANALYZE)").await?;
    }
    database_connections(&client).await
}

/// One minute's row.
#[derive(Clone, Copy)]
struct Row {
    minute: u64,
    ops: u64,
    deliveries: u64,
    waiting: u64,
    errors: u64,
    rss_mib: f64,
    heap_mib: f64,
    /// Cache entries and the MiB of those bounded by bytes, summed over the processes.
    cached: (f64, f64),
    fds: f64,
    tasks: u64,
    connections: Option<u64>,
    /// A delivery's mean wait once due, claim, run and recording in the minute (ms).
    delivery_ms: (f64, f64, f64, f64),
    /// CPU in the minute, % of one core: the registry processes together, and the S3 server.
    cpu: (f64, Option<f64>),
}

pub(super) async fn run(binary: &Path, seconds: u64, shape: &str, clients: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-soak-").tempdir_in(std::env::temp_dir())?;
    let soaked = match shape {
        "embedded" => embedded(binary, work.path()).await?,
        "replicated" => replicated(binary, work.path(), S3Server::garage().await).await?,
        "replicated-moto" => replicated(binary, work.path(), S3Server::moto().await).await?,
        "replicated-fs" => replicated(binary, work.path(), S3Server::file_system().await).await?,
        other => anyhow::bail!("soak: shape {other:?}: embedded, replicated, replicated-moto or replicated-fs"),
    };
    let pids: Vec<u32> = soaked.replicas.iter().filter_map(Server::pid).collect();
    let store_pid = soaked.s3.as_ref().and_then(S3Server::pid);
    let cpu_now = || (pids.iter().map(|p| cpu_secs(*p)).sum::<f64>(), store_pid.map(cpu_secs));
    let mut receiver = testkit::hook::Receiver::start(200, true).await;
    let delivered = receiver.arrived.clone();
    webhook_policy(soaked.target, &receiver.url).await?;
    let drain = tokio::spawn(async move {
        loop {
            receiver.next().await;
        }
    });

    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> =
        (0..clients).map(|i| tokio::spawn(client(soaked.target, i, deadline, counts.clone()))).collect();
    println!(
        "\nSustained load on the {shape} shape: {clients} clients, {seconds} s, garbage collection every 30 s, a webhook per push and delete\n"
    );
    println!(
        "| minute | operations | webhook deliveries | deliveries waiting | a delivery's wait / claim / run / record (ms) | errors | RSS (MiB) | heap (MiB) | cached entries (MiB) | open fds | runtime tasks | database connections | CPU %: registry / store |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<Row> = Vec::new();
    let (mut window, mut last_ops, mut last_delivered) = (Vec::new(), 0u64, 0u64);
    let mut last_times = Scraped::default();
    let (mut last_cpu, mut last_minute) = (cpu_now(), Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss: u64 = pids.iter().map(|p| rss_kib(*p).unwrap_or(0)).sum();
        let fd: u64 = pids.iter().map(|p| fds(*p)).sum();
        window.push((rss, fd));
        let elapsed = started.elapsed().as_secs();
        if elapsed.is_multiple_of(60) || Instant::now() >= deadline {
            let n = window.len().max(1) as f64;
            let (mut tasks_now, mut waiting, mut times, mut heap) = (0, 0, Scraped::default(), 0.0);
            let mut cached = (0.0, 0.0);
            for s in &soaked.replicas {
                let scraped = scrape(s.addr).await;
                tasks_now += scraped.tasks;
                heap += scraped.heap_bytes;
                cached = (cached.0 + scraped.cached.0, cached.1 + scraped.cached.1);
                waiting = scraped.waiting;
                times.attempts += scraped.attempts;
                times.waited += scraped.waited;
                times.claimed += scraped.claimed;
                times.ran += scraped.ran;
                times.recorded += scraped.recorded;
            }
            let attempts = (times.attempts - last_times.attempts).max(1.0);
            let mean = |now: f64, before: f64| (now - before) / attempts * 1000.0;
            let delivery_ms = (
                mean(times.waited, last_times.waited),
                mean(times.claimed, last_times.claimed),
                mean(times.ran, last_times.ran),
                mean(times.recorded, last_times.recorded),
            );
            last_times = times;
            let connections = match &soaked.database {
                Some(db) => Some(database_minute(db.url()).await?),
                None => None,
            };
            let (ops, got) = (counts.ops(), delivered.load(Ordering::Relaxed) as u64);
            let (cpu, minute) = (cpu_now(), last_minute.elapsed().as_secs_f64().max(1.0));
            let percent = |now: f64, before: f64| (now - before) / minute * 100.0;
            let cpu_row = (percent(cpu.0, last_cpu.0), cpu.1.zip(last_cpu.1).map(|(now, before)| percent(now, before)));
            (last_cpu, last_minute) = (cpu, Instant::now());
            let row = Row {
                minute: elapsed.div_ceil(60),
                ops: ops - last_ops,
                deliveries: got - last_delivered,
                waiting,
                errors: counts.errors.load(Ordering::Relaxed),
                rss_mib: window.iter().map(|w| w.0 as f64).sum::<f64>() / n / 1024.0,
                heap_mib: heap / (1024.0 * 1024.0),
                cached: (cached.0, cached.1 / (1024.0 * 1024.0)),
                fds: window.iter().map(|w| w.1 as f64).sum::<f64>() / n,
                tasks: tasks_now,
                connections,
                delivery_ms,
                cpu: cpu_row,
            };
            (last_ops, last_delivered) = (ops, got);
            window.clear();
            println!(
                "| {} | {} | {} | {} | {:.0} / {:.1} / {:.1} / {:.1} | {} | {:.1} | {:.1} | {:.0} ({:.1}) | {:.0} | {} | {} | {:.0} / {} |",
                row.minute,
                row.ops,
                row.deliveries,
                row.waiting,
                row.delivery_ms.0,
                row.delivery_ms.1,
                row.delivery_ms.2,
                row.delivery_ms.3,
                row.errors,
                row.rss_mib,
                row.heap_mib,
                row.cached.0,
                row.cached.1,
                row.fds,
                row.tasks,
                row.connections.map_or("–".to_owned(), |c| c.to_string()),
                row.cpu.0,
                row.cpu.1.map_or("–".to_owned(), |c| format!("{c:.0}"))
            );
            rows.push(row);
        }
    }
    for t in tasks {
        t.await?;
    }
    drain.abort();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "\npushes / pulls / tag listings / deletes / logins: {} / {} / {} / {} / {}; reconnects {}; errors {}; digest mismatches {}",
        get(&counts.pushes),
        get(&counts.pulls),
        get(&counts.listings),
        get(&counts.deletes),
        get(&counts.logins),
        get(&counts.reconnects),
        get(&counts.errors),
        get(&counts.mismatches)
    );
    println!(
        "webhook deliveries received: {} for {} pushes and deletes (the rest still queued or not yet dispatched at the end)",
        delivered.load(Ordering::Relaxed),
        get(&counts.pushes) + get(&counts.deletes)
    );
    if let (Some(second), Some(last)) = (rows.get(1), rows.last()) {
        println!(
            "second minute → last: RSS {:.1} → {:.1} MiB, heap {:.1} → {:.1} MiB, cached entries {:.0} → {:.0}, open fds {:.0} → {:.0}, runtime tasks {} → {}, database connections {} → {}",
            second.rss_mib,
            last.rss_mib,
            second.heap_mib,
            last.heap_mib,
            second.cached.0,
            last.cached.0,
            second.fds,
            last.fds,
            second.tasks,
            last.tasks,
            second.connections.map_or("–".to_owned(), |c| c.to_string()),
            last.connections.map_or("–".to_owned(), |c| c.to_string())
        );
    }
    if let Some(first) = soaked.replicas.first() {
        println!("caches at the end (the first process): {}", cache_sizes(first.addr).await);
    }
    let Soaked { replicas, database, s3, proxy, .. } = soaked;
    drop(replicas);
    if let Some(proxy) = proxy {
        proxy.stop().await;
    }
    if let Some(s3) = s3 {
        s3.stop().await;
    }
    if let Some(db) = database {
        db.drop_database().await;
    }
    if get(&counts.errors) > 0 || get(&counts.mismatches) > 0 {
        // Kept for reading: each registry's log (`registry.log` beside its configuration).
        let kept = work.keep();
        anyhow::bail!("errors under sustained load: the registries' logs are in {}", kept.display());
    }
    Ok(())
}
