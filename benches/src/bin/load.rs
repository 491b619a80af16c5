//! The load tool: our `registry` (release build, filesystem storage) and Debian's `docker-registry`
//! (distribution 2.8) on 127.0.0.1, one after the other on the same data, next to the machine's
//! limits (sha256 speed, fsync'd disk write, loopback), in one run.
//!
//! `cargo build --release -p registry-server --bin registry && cargo run --release -p registry-benches --bin load [runs]`
//!
//! `load ha [runs]`: the replicated shape instead (see `load/ha.rs`); `load soak [seconds] [embedded|replicated|replicated-moto|replicated-fs] [clients]`: the
//! sustained mixed load (see `load/soak.rs`); `load governance [runs]`: quotas and immutability
//! on versus off (see `load/governance.rs`); `load pull-policies [runs]`: content trust and
//! vulnerability prevention on versus off (see `load/pull_policies.rs`); `load push-cpu [runs]`:
//! 1 GiB pushes in server CPU per GiB next to one core's SHA-256 (see `load/push_cpu.rs`);
//! `load auth-par [runs] [embedded|postgres]`: token-authenticated manifest GETs next to anonymous ones;
//! `load connections [runs]`: 1,000 and 10,000 keep-alive clients, and memory per idle connection;
//! `load listings`: Harbor's listings against the size of the repository and the project, on redb
//! and PostgreSQL (see `load/listings.rs`).
//!
//! Prints one table: workload | ours | distribution | ours/distribution | ours/limit, each the median
//! of `runs` (default 3) with the spread (min–max). Compare ratios from one run, never absolute
//! figures across runs: the machine is shared.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use registry_core::Digest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

#[path = "load/auth_par.rs"]
mod auth_par;
#[path = "load/connections.rs"]
mod connections;
#[path = "load/governance.rs"]
mod governance;
#[path = "load/ha.rs"]
mod ha;
#[path = "load/listings.rs"]
mod listings;
#[path = "load/proxy.rs"]
mod proxy;
#[path = "load/pull_policies.rs"]
mod pull_policies;
#[path = "load/push_cpu.rs"]
mod push_cpu;
#[path = "load/replication.rs"]
mod replication;
#[path = "load/soak.rs"]
mod soak;

const GIB: usize = 1 << 30;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A request not sent: the connection had been closed (a proxy closes keep-alive connections
/// after so many requests, saying so in the last response). Nothing happened; a client reconnects.
#[derive(Debug)]
struct ConnectionClosed;

impl std::fmt::Display for ConnectionClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection was closed before the request was sent")
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender, host: addr.to_string() })
    }

    /// Sends a body-less request; returns status and the body.
    async fn fetch(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await.map_err(|e| anyhow::Error::new(e).context(ConnectionClosed))?;
        let mut req = Request::builder().method(method).uri(path).header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self.sender.send_request(req.body(Full::new(Bytes::new()))?).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    /// Sends a request; returns status, headers and the body length (the body is drained).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(u16, http::HeaderMap, u64)> {
        self.sender.ready().await.map_err(|e| anyhow::Error::new(e).context(ConnectionClosed))?;
        let mut req = Request::builder().method(method).uri(path).header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self.sender.send_request(req.body(Full::new(body))?).await?;
        let (parts, mut body) = response.into_parts();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len() as u64;
            }
        }
        Ok((parts.status.as_u16(), parts.headers, len))
    }
}

/// A location header as a path (distribution answers absolute URLs).
fn path_of(location: &str) -> String {
    match location.find("://") {
        Some(i) => location[i + 3..].find('/').map(|j| location[i + 3 + j..].to_owned()).unwrap_or_default(),
        None => location.to_owned(),
    }
}

fn header(h: &http::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn test_data(len: usize, seed: u64) -> Bytes {
    // Spread first: `seed | 1` alone made seeds 2k and 2k+1 the same data (runs 0 and 1 of a
    // shape pushed the same blob).
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// A registry under test.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    /// The process (none when `addr` is a proxy in front of processes kept elsewhere).
    child: Option<Child>,
    bearer: Option<String>,
}

impl Server {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }

    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        self.bearer.iter().map(|t| ("authorization", format!("Bearer {t}"))).collect()
    }
}

/// Reads the child's output until a line holding `needle`; every line read, then and after, goes
/// to `log`.
async fn wait_for_line(child: &mut Child, stdout: bool, needle: &str, log: std::fs::File) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt as _;
    let mut log = tokio::fs::File::from_std(log);
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if stdout {
        Box::new(child.stdout.take().context("stdout")?)
    } else {
        Box::new(child.stderr.take().context("stderr")?)
    };
    let mut lines = BufReader::new(reader).lines();
    loop {
        let Some(line) = lines.next_line().await? else { bail!("server exited before {needle:?}") };
        log.write_all(format!("{line}\n").as_bytes()).await?;
        if line.contains(needle) {
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if log.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
            return Ok(line);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_ours(binary: &Path, dir: &Path, auth: bool, extra_config: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let config = dir.join("ours.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlog_level = \"warn,registry=info,registry_=warn,registry_storage::blob::cache=debug\"\n[auth]\nenabled = {auth}\n{extra_config}",
            dir.join("ours-data")
        ),
    )?;
    // Its log (warnings, and what a failed request met) beside its configuration.
    let log = std::fs::File::create(dir.join("registry.log")).context("the registry's log file")?;
    let mut child = Command::new(binary)
        .args(["serve", "--config", config.to_str().context("utf8")?, "--listen", &format!("127.0.0.1:{port}")])
        .env("REGISTRY_ADMIN_PASSWORD", "load-test-password")
        .stdout(Stdio::piped())
        .stderr(log.try_clone().context("the registry's log file")?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // The serving line is logged at info: keep the binary's info for its own target (`registry`),
    // not for the libraries' (`registry_http`'s access log: distribution runs without one too).
    tokio::time::timeout(Duration::from_secs(30), wait_for_line(&mut child, true, "registry serving", log))
        .await
        .context("the registry did not report serving within 30 s")??;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut server = Server { name: "ours", addr, child: Some(child), bearer: None };
    if auth {
        server.bearer = Some(admin_token(addr).await?);
    }
    Ok(server)
}

/// An anonymous client's token to pull `repo` (as podman gets one for a public project).
async fn anonymous_token(addr: SocketAddr, repo: &str) -> anyhow::Result<String> {
    let mut c = Conn::open(addr).await?;
    let (_, body) = c.fetch("GET", &format!("/auth/token?service=registry&scope=repository:{repo}:pull"), &[]).await?;
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    json["token"].as_str().map(str::to_owned).context("no anonymous token")
}

async fn admin_token(addr: SocketAddr) -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut c = Conn::open(addr).await?;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("admin:load-test-password"));
    let path =
        "/auth/token?service=registry&scope=repository:library/load:pull,push&scope=repository:library/small:pull,push";
    let (_, body) = c.fetch("GET", path, &[("authorization", &basic)]).await?;
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    json["token"].as_str().map(str::to_owned).context("no token")
}

async fn start_distribution(dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let config = dir.join("distribution.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("distribution-data").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .args(["serve", config.to_str().context("utf8")?])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting docker-registry (apt-get install -y docker-registry)")?;
    // Its "listening on" line is at info, which the warn level hides: poll for the port instead.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Server { name: "distribution", addr, child: Some(child), bearer: None });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("docker-registry did not start listening")
}

/// Measurements of one workload on one server: one figure per run.
type Runs = Vec<f64>;

async fn push_monolithic(s: &Server, repo: &str, data: &Bytes, digest: &Digest) -> anyhow::Result<f64> {
    let auth = s.auth_headers();
    let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut c = Conn::open(s.addr).await?;
    let started = Instant::now();
    let (status, headers, _) = c.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &h, Bytes::new()).await?;
    anyhow::ensure!(status == 202, "POST {status}");
    let location = path_of(&header(&headers, "location"));
    let sep = if location.contains('?') { '&' } else { '?' };
    let mut hh = h.clone();
    hh.push(("content-type", "application/octet-stream"));
    let (status, _, _) = c.send("PUT", &format!("{location}{sep}digest={digest}"), &hh, data.clone()).await?;
    anyhow::ensure!(status == 201, "PUT {status}");
    Ok(data.len() as f64 / started.elapsed().as_secs_f64() / 1e6)
}

async fn push_chunked(s: &Server, repo: &str, data: &Bytes, digest: &Digest, chunks: usize) -> anyhow::Result<f64> {
    let auth = s.auth_headers();
    let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut c = Conn::open(s.addr).await?;
    let started = Instant::now();
    let (status, headers, _) = c.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &h, Bytes::new()).await?;
    anyhow::ensure!(status == 202, "POST {status}");
    let mut location = path_of(&header(&headers, "location"));
    let size = data.len() / chunks;
    for i in 0..chunks {
        let range = format!("{}-{}", i * size, (i + 1) * size - 1);
        let mut hh = h.clone();
        hh.push(("content-range", &range));
        hh.push(("content-type", "application/octet-stream"));
        let (status, headers, _) = c.send("PATCH", &location, &hh, data.slice(i * size..(i + 1) * size)).await?;
        anyhow::ensure!(status == 202, "PATCH {status}");
        location = path_of(&header(&headers, "location"));
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _, _) = c.send("PUT", &format!("{location}{sep}digest={digest}"), &h, Bytes::new()).await?;
    anyhow::ensure!(status == 201, "PUT {status}");
    Ok(data.len() as f64 / started.elapsed().as_secs_f64() / 1e6)
}

async fn pull(s: &Server, repo: &str, digest: &Digest) -> anyhow::Result<f64> {
    let auth = s.auth_headers();
    let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut c = Conn::open(s.addr).await?;
    let started = Instant::now();
    let (status, headers, len) = c.send("GET", &format!("/v2/{repo}/blobs/{digest}"), &h, Bytes::new()).await?;
    if status == 307 || status == 302 {
        // A redirect to the store (a presigned URL): the bytes come from there, as a client
        // follows it (without the registry's credentials).
        let location = header(&headers, "location");
        let url = location.strip_prefix("http://").context("a plain-HTTP redirect")?;
        let (host, path) = url.split_at(url.find('/').unwrap_or(url.len()));
        let mut direct = Conn::open(host.parse().context("the redirect's host")?).await?;
        let (status, _, len) = direct.send("GET", path, &[], Bytes::new()).await?;
        anyhow::ensure!(status == 200, "GET (redirected) {status}");
        return Ok(len as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    anyhow::ensure!(status == 200, "GET {status}");
    Ok(len as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// p50 latency of sequential 4 KiB range reads, in microseconds (a redirect to the store
/// followed, as a client does: both requests in the latency).
async fn range_p50(s: &Server, repo: &str, digest: &Digest, size: usize) -> anyhow::Result<f64> {
    let mut c = Conn::open(s.addr).await?;
    let mut direct: Option<(String, Conn)> = None;
    let mut latencies = Vec::with_capacity(1000);
    let mut x = 12345u64;
    for _ in 0..1000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let start = (x >> 20) as usize % (size - 4096);
        let range = format!("bytes={start}-{}", start + 4095);
        let t = Instant::now();
        let (mut status, headers, mut len) =
            c.send("GET", &format!("/v2/{repo}/blobs/{digest}"), &[("range", &range)], Bytes::new()).await?;
        if status == 307 || status == 302 {
            let location = header(&headers, "location");
            let url = location.strip_prefix("http://").context("a plain-HTTP redirect")?;
            let (host, path) = url.split_at(url.find('/').unwrap_or(url.len()));
            if direct.as_ref().is_none_or(|(h, _)| h != host) {
                direct = Some((host.to_owned(), Conn::open(host.parse().context("the redirect's host")?).await?));
            }
            let (_, store) = direct.as_mut().context("a connection to the store")?;
            (status, _, len) = store.send("GET", path, &[("range", &range)], Bytes::new()).await?;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(status == 206 && len == 4096, "range GET {status} {len}");
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies[latencies.len() / 2])
}

/// Pushes one blob as POST (session) + PUT (body): the form every registry supports
/// (distribution 2.8 has no single-request `POST ?digest=` upload).
async fn post_put(c: &mut Conn, repo: &str, h: &[(&str, &str)], blob: Bytes, digest: &Digest) -> anyhow::Result<()> {
    let (status, headers, _) = c.send("POST", &format!("/v2/{repo}/blobs/uploads/"), h, Bytes::new()).await?;
    anyhow::ensure!(status == 202, "POST {status}");
    let location = path_of(&header(&headers, "location"));
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _, _) = c.send("PUT", &format!("{location}{sep}digest={digest}"), h, blob).await?;
    anyhow::ensure!(status == 201, "PUT {status}");
    Ok(())
}

/// Pushes a small image tagged `v1`; returns nothing (it is looked up by tag).
async fn push_small_image(s: &Server, repo: &str) -> anyhow::Result<()> {
    let auth = s.auth_headers();
    let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut c = Conn::open(s.addr).await?;
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let layer = test_data(4096, 7);
    let mut descriptors = Vec::new();
    for blob in [&config, &layer] {
        let d = Digest::sha256_of(blob);
        post_put(&mut c, repo, &h, blob.clone(), &d).await?;
        descriptors.push((d, blob.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
    );
    let mut hh = h.clone();
    hh.push(("content-type", OCI_MANIFEST));
    let (status, _, _) = c.send("PUT", &format!("/v2/{repo}/manifests/v1"), &hh, Bytes::from(manifest)).await?;
    anyhow::ensure!(status == 201, "manifest push {status}");
    Ok(())
}

/// Manifest GETs by tag with wrk (2 threads, `connections` connections, `duration`), as the issue
/// prescribes: (requests/s, p99 ms). wrk is a C load generator, so the client's own cost stays
/// small next to the server's on this 2-core machine.
async fn manifest_load(s: &Server, repo: &str, connections: usize, duration: Duration) -> anyhow::Result<(f64, f64)> {
    manifest_load_as(s, repo, connections, duration, s.bearer.as_deref()).await
}

/// [`manifest_load`] with `bearer` (or no token) on every request.
async fn manifest_load_as(
    s: &Server,
    repo: &str,
    connections: usize,
    duration: Duration,
    bearer: Option<&str>,
) -> anyhow::Result<(f64, f64)> {
    let url = format!("http://{}/v2/{repo}/manifests/v1", s.addr);
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs()), "--latency"]);
    cmd.args(["-H", &format!("accept: {OCI_MANIFEST}")]);
    if let Some(token) = bearer {
        cmd.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    let out = cmd.arg(&url).output().await.context("running wrk (apt-get install -y wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    anyhow::ensure!(!text.contains("Non-2xx"), "manifest GETs failed: {text}");
    parse_wrk(&text).with_context(|| format!("unexpected wrk output: {text}"))
}

/// Requests/s and the p99 latency in ms from wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<(f64, f64)> {
    let rps = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:"))?.trim().parse().ok()?;
    let p99 = text.lines().find_map(|l| l.trim().strip_prefix("99%"))?.trim();
    let (number, scale) = if let Some(v) = p99.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = p99.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = p99.strip_suffix('s') {
        (v, 1e3)
    } else {
        return None;
    };
    Some((rps, number.parse::<f64>().ok()? * scale))
}

/// `count` pushes of distinct 64 KiB blobs over `connections` connections: pushes per second.
async fn small_pushes(s: &Server, repo: &str, count: usize, connections: usize, seed: u64) -> anyhow::Result<f64> {
    let blobs: Vec<(Bytes, Digest)> = (0..count)
        .map(|i| {
            let b = test_data(64 << 10, seed * 1_000_003 + i as u64);
            let d = Digest::sha256_of(&b);
            (b, d)
        })
        .collect();
    let blobs = Arc::new(blobs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let auth: Arc<Vec<(&'static str, String)>> = Arc::new(s.auth_headers());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, repo, blobs, next, auth) = (s.addr, repo.to_owned(), blobs.clone(), next.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await?;
            let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((blob, digest)) = blobs.get(i) else { break };
                post_put(&mut c, &repo, &h, blob.clone(), digest).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Peak RSS above idle (MiB) while `work` runs, sampled every 2 ms.
async fn peak_rss_during<F: std::future::Future<Output = anyhow::Result<f64>>>(
    pid: u32,
    work: F,
) -> anyhow::Result<f64> {
    let idle = rss_kib(pid).context("rss")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let (s, p) = (stop.clone(), peak.clone());
    let sampler = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(r) = rss_kib(pid) {
                p.fetch_max(r, std::sync::atomic::Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    work.await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    Ok((peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(idle)) as f64 / 1024.0)
}

// ---- machine limits ----

fn openssl_sha256_mb_s() -> anyhow::Result<f64> {
    let out = std::process::Command::new("openssl").args(["speed", "-evp", "sha256", "-seconds", "2"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("sha256")).context("openssl output")?;
    let last = line.split_whitespace().last().context("openssl column")?;
    Ok(last.trim_end_matches('k').parse::<f64>()? * 1000.0 / 1e6)
}

/// A 1 GiB write of `data` (the pushed data: a constant pattern would flatter a thin-provisioned
/// virtual disk) in 1 MiB writes, then fsync.
fn fsync_write_mb_s(dir: &Path, data: &[u8]) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let started = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for chunk in data.chunks(1 << 20) {
        f.write_all(chunk)?;
    }
    f.sync_all()?;
    let mb_s = GIB as f64 / started.elapsed().as_secs_f64() / 1e6;
    std::fs::remove_file(&path)?;
    Ok(mb_s)
}

async fn loopback_mb_s() -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0usize;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(total);
            }
            total += n;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let chunk = vec![1u8; 256 << 10];
    let started = Instant::now();
    for _ in 0..(4 * GIB / chunk.len()) {
        s.write_all(&chunk).await?;
    }
    s.shutdown().await?;
    let total = reader.await??;
    Ok(total as f64 / started.elapsed().as_secs_f64() / 1e6)
}

// ---- report ----

fn median_spread(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn cell(v: &[f64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let (m, lo, hi) = median_spread(v);
    format!("{m:.1} ({lo:.1}–{hi:.1})")
}

struct Row {
    workload: String,
    unit: &'static str,
    ours: Runs,
    theirs: Runs,
    limit: Option<f64>,
    /// Whether lower is better (latency, memory).
    lower_is_better: bool,
}

fn ratio(a: &[f64], b: &[f64], lower_is_better: bool) -> String {
    if a.is_empty() || b.is_empty() {
        return "–".into();
    }
    let (a, b) = (median_spread(a).0, median_spread(b).0);
    if a < 0.05 || b < 0.05 {
        return "–".into(); // a ratio to (near) zero says nothing
    }
    if lower_is_better { format!("{:.2}x less", b / a) } else { format!("{:.2}x", a / b) }
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// `load events N`: manifest GET with pull events recorded against the same server without
/// them (`[events] record_pulls`), alternating, N runs each; and small pushes (each with its
/// transactional events) for the push side. Requests/s and server CPU µs per request.
async fn pull_events(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-events-").tempdir_in(std::env::temp_dir())?;
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    let mut pushes: [Vec<f64>; 2] = Default::default();
    for run in 0..runs {
        for (i, record) in [true, false].into_iter().enumerate() {
            let dir = work.path().join(format!("r{run}-{record}"));
            std::fs::create_dir_all(&dir)?;
            let server = start_ours(binary, &dir, false, &format!("[events]\nrecord_pulls = {record}\n")).await?;
            push_small_image(&server, "load/small").await?;
            let pid = server.pid().context("pid")?;
            let before = cpu_secs(pid);
            let (rps, _) = manifest_load(&server, "load/small", 64, Duration::from_secs(10)).await?;
            let used = cpu_secs(pid) - before;
            rates[i].push(rps);
            cpu[i].push(used * 1e6 / (rps * 10.0));
            pushes[i].push(small_pushes(&server, "load/pushes", 200, 32, run as u64 + 1).await?);
            eprintln!(
                "  run {run}, record_pulls = {record}: {rps:.0} req/s, {:.1} CPU µs/req",
                used * 1e6 / (rps * 10.0)
            );
            drop(server);
        }
    }
    let (on, off) = (median_spread(&rates[0]).0, median_spread(&rates[1]).0);
    println!("| manifest GET by tag, wrk 64 conns, 10 s | with pull events | without | with/without |");
    println!("|---|---|---|---|");
    println!("| req/s | {} | {} | {:.0}% |", cell(&rates[0]), cell(&rates[1]), on / off * 100.0);
    println!("| server CPU µs/req | {} | {} | |", cell(&cpu[0]), cell(&cpu[1]));
    println!("| 200 pushes of 64 KiB, pushes/s | {} | {} | |", cell(&pushes[0]), cell(&pushes[1]));
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("listings") {
        // In process: no binary needed.
        return listings::run(std::env::args().nth(2).as_deref()).await;
    }
    // REGISTRY_BINARY names another build (a copy of the one before a change, for a before/after).
    let binary = match std::env::var_os("REGISTRY_BINARY") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/registry"),
    };
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build --release -p registry-server --bin registry",
        binary.display()
    );
    if std::env::args().nth(1).as_deref() == Some("ha") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
        return ha::run(&binary, runs, std::env::args().nth(3).as_deref()).await;
    }
    if std::env::args().nth(1).as_deref() == Some("events") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
        return pull_events(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("pull-policies") {
        let runs = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(3);
        return pull_policies::run(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("replication") {
        let runs = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(3);
        return replication::run(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("proxy") {
        let runs = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(3);
        return proxy::run(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("governance") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
        return governance::run(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("soak") {
        let seconds = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(300);
        let shape = std::env::args().nth(3).unwrap_or_else(|| "embedded".into());
        let clients = std::env::args().nth(4).map(|s| s.parse()).transpose()?.unwrap_or(64);
        return soak::run(&binary, seconds, &shape, clients).await;
    }
    if std::env::args().nth(1).as_deref() == Some("auth-par") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
        let postgres = match std::env::args().nth(3).as_deref() {
            None | Some("embedded") => false,
            Some("postgres") => true,
            Some(other) => bail!("auth-par: store {other:?}: embedded or postgres"),
        };
        return auth_par::run(&binary, runs, postgres).await;
    }
    if std::env::args().nth(1).as_deref() == Some("connections") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
        return connections::run(&binary, runs).await;
    }
    if std::env::args().nth(1).as_deref() == Some("push-cpu") {
        let runs = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
        let data = test_data(GIB, 42);
        let digest = Digest::sha256_of(&data);
        return push_cpu::run(&binary, runs, &data, &digest).await;
    }
    let runs: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let work = tempfile::Builder::new().prefix("registry-load-").tempdir_in(std::env::temp_dir())?;
    eprintln!("data on {}", work.path().display());

    eprintln!("generating 1 GiB of test data...");
    let data = test_data(GIB, 42);
    let digest = Digest::sha256_of(&data);

    let sha = openssl_sha256_mb_s()?;
    let disk = fsync_write_mb_s(work.path(), &data)?;
    let lo = loopback_mb_s().await?;
    let push_limit = sha.min(disk);

    let mut rows: Vec<Row> = Vec::new();
    let mut add = |workload: &str, unit: &'static str, limit: Option<f64>, lower: bool| {
        rows.push(Row {
            workload: workload.into(),
            unit,
            ours: Vec::new(),
            theirs: Vec::new(),
            limit,
            lower_is_better: lower,
        });
        rows.len() - 1
    };
    let mono = add("1 GiB blob, monolithic POST + PUT", "MB/s", Some(push_limit), false);
    let chunked = add("1 GiB blob, 16 PATCH of 64 MiB", "MB/s", Some(push_limit), false);
    let pull_row = add("1 GiB blob pull", "MB/s", Some(lo), false);
    let range_row = add("4 KiB Range GET, p50", "µs", None, true);
    let manifest_rps = add("manifest GET by tag, wrk 2 threads, 64 conns, 10 s", "req/s", None, false);
    let manifest_p99 = add("manifest GET by tag, p99", "ms", None, true);
    let small = add("200 pushes of 64 KiB (POST+PUT) over 32 conns", "pushes/s", None, false);
    let rss = add("peak RSS above idle during 1 GiB push", "MiB", None, true);

    for which in ["ours", "distribution"] {
        let server = if which == "ours" {
            start_ours(&binary, work.path(), false, "").await?
        } else {
            start_distribution(work.path()).await?
        };
        eprintln!("{}: {}", server.name, server.addr);
        push_small_image(&server, "load/small").await?;
        for run in 0..runs {
            let repo = format!("load/r{run}");
            let pid = server.pid().context("pid")?;
            let mut m = 0.0;
            let peak = peak_rss_during(pid, async {
                m = push_monolithic(&server, &repo, &data, &digest).await?;
                Ok(m)
            })
            .await?;
            let c = push_chunked(&server, &format!("load/c{run}"), &data, &digest, 16).await?;
            let p = pull(&server, &repo, &digest).await?;
            let r = range_p50(&server, &repo, &digest, data.len()).await?;
            let (rps, p99) = manifest_load(&server, "load/small", 64, Duration::from_secs(10)).await?;
            let sp = small_pushes(&server, &format!("load/s{run}"), 200, 32, run as u64 + 1).await?;
            eprintln!(
                "  run {run}: mono {m:.0} MB/s, chunked {c:.0}, pull {p:.0}, range p50 {r:.0} µs, manifest {rps:.0}/s p99 {p99:.1} ms, small {sp:.0}/s, rss +{peak:.1} MiB"
            );
            for (row, v) in [
                (mono, m),
                (chunked, c),
                (pull_row, p),
                (range_row, r),
                (manifest_rps, rps),
                (manifest_p99, p99),
                (small, sp),
                (rss, peak),
            ] {
                if which == "ours" { rows[row].ours.push(v) } else { rows[row].theirs.push(v) }
            }
        }
        drop(server);
    }

    // Token-authenticated manifest GET against our unauthenticated rate, same run.
    let mut auth_rates = Vec::new();
    let mut plain_rates = Vec::new();
    for auth in [false, true] {
        let server = start_ours(&binary, work.path(), auth, "").await?;
        let repo = if auth { "library/small" } else { "load/small" };
        push_small_image(&server, repo).await?;
        for _ in 0..runs {
            let (rps, _) = manifest_load(&server, repo, 64, Duration::from_secs(10)).await?;
            if auth { auth_rates.push(rps) } else { plain_rates.push(rps) }
        }
    }

    // In-process test registry: start to first 200 on /v2/.
    let mut starts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let reg = registry_http::TestRegistry::start().await?;
        let mut c = Conn::open(reg.addr()).await?;
        let (status, _, _) = c.send("GET", "/v2/", &[], Bytes::new()).await?;
        anyhow::ensure!(status == 200);
        starts.push(t.elapsed().as_secs_f64() * 1e3);
        drop(reg);
    }

    println!(
        "\nMachine: {} CPUs; sha256 (openssl, 16 KiB) {sha:.0} MB/s; fsync'd 1 GiB write {disk:.0} MB/s; loopback {lo:.0} MB/s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("Runs per figure: {runs}; median (min–max)\n");
    println!("| workload | unit | ours | distribution | ours/distribution | ours/limit |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let limit = match (r.limit, r.ours.is_empty()) {
            (Some(l), false) => format!("{:.0}% of {l:.0}", median_spread(&r.ours).0 / l * 100.0),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {limit} |",
            r.workload,
            r.unit,
            cell(&r.ours),
            cell(&r.theirs),
            ratio(&r.ours, &r.theirs, r.lower_is_better)
        );
    }
    println!(
        "| token-authenticated manifest GET | req/s | {} | – | {:.0}% of unauthenticated {} | – |",
        cell(&auth_rates),
        median_spread(&auth_rates).0 / median_spread(&plain_rates).0 * 100.0,
        cell(&plain_rates)
    );
    println!("| in-process test registry, start to first 200 | ms | {} | – | – | – |", cell(&starts));
    Ok(())
}
