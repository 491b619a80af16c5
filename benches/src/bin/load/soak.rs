//! The sustained load: 64 clients on loopback mixing pushes, pulls, tag listings and deletes (each
//! client keeping at most 40 images, so the registry reaches a steady state) for several minutes against our registry (release build, filesystem storage, garbage collection
//! every 30 s under the load), counting errors and digest mismatches, sampling the server's
//! resident memory and open file descriptors every second.
//!
//! `cargo run --release -p registry-benches --bin load -- soak [seconds]` (default 300)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use registry_core::Digest;

use super::{Conn, OCI_MANIFEST, header, path_of, rss_kib, start_ours, test_data};

const CLIENTS: usize = 64;

#[derive(Default)]
struct Counts {
    pushes: AtomicU64,
    pulls: AtomicU64,
    listings: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    mismatches: AtomicU64,
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

/// Pushes a small image (config + one layer, monolithic or in two chunks) tagged `tag`; returns
/// the manifest's digest and the layer's.
async fn push_image(c: &mut Conn, repo: &str, tag: &str, seed: u64, chunked: bool) -> anyhow::Result<(Digest, Digest)> {
    let layer = test_data(16 << 10 | (seed as usize % (240 << 10)), seed);
    let config = Bytes::from(format!(r#"{{"seed":{seed}}}"#));
    let mut digests = Vec::new();
    for (i, blob) in [&config, &layer].into_iter().enumerate() {
        let digest = Digest::sha256_of(blob);
        let (status, h, _) = c.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Bytes::new()).await?;
        anyhow::ensure!(status == 202, "POST {status}");
        let mut location = path_of(&header(&h, "location"));
        if chunked && i == 1 {
            let half = blob.len() / 2;
            let range = format!("0-{}", half - 1);
            let hh = [("content-range", range.as_str()), ("content-type", "application/octet-stream")];
            let (status, h, _) = c.send("PATCH", &location, &hh, blob.slice(..half)).await?;
            anyhow::ensure!(status == 202, "PATCH {status}");
            location = path_of(&header(&h, "location"));
            let sep = if location.contains('?') { '&' } else { '?' };
            let (status, _, _) =
                c.send("PUT", &format!("{location}{sep}digest={digest}"), &[], blob.slice(half..)).await?;
            anyhow::ensure!(status == 201, "PUT {status}");
        } else {
            let sep = if location.contains('?') { '&' } else { '?' };
            let (status, _, _) = c.send("PUT", &format!("{location}{sep}digest={digest}"), &[], blob.clone()).await?;
            anyhow::ensure!(status == 201, "PUT {status}");
        }
        digests.push((digest, blob.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digests[0].0, digests[0].1, digests[1].0, digests[1].1
    );
    let (status, _, _) = c
        .send(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", OCI_MANIFEST)],
            Bytes::from(manifest.clone()),
        )
        .await?;
    anyhow::ensure!(status == 201, "manifest PUT {status}");
    Ok((Digest::sha256_of(manifest.as_bytes()), digests[1].0.clone()))
}

/// One client: its own repository, a mix of operations until `deadline`.
async fn client(addr: std::net::SocketAddr, id: usize, deadline: Instant, counts: Arc<Counts>) {
    let repo = format!("soak/c{id}");
    let mut images: Vec<(String, Digest, Digest)> = Vec::new();
    let mut x: u64 = (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = 0u64;
    let mut conn = None;
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
                    continue;
                }
            },
        };
        let roll = x % 100;
        let result: anyhow::Result<()> = async {
            // Each client keeps at most 40 images: a steady state, in which memory must stay flat.
            let full = images.len() >= 40;
            if (roll < 30 || images.is_empty()) && !full {
                next += 1;
                let tag = format!("t{next}");
                let (manifest, layer) = push_image(c, &repo, &tag, x, roll.is_multiple_of(2)).await?;
                images.push((tag, manifest, layer));
                counts.pushes.fetch_add(1, Ordering::Relaxed);
            } else if roll < 70 && !full {
                let (tag, manifest, layer) = &images[(x as usize / 7) % images.len()];
                let (status, body) =
                    c.fetch("GET", &format!("/v2/{repo}/manifests/{tag}"), &[("accept", OCI_MANIFEST)]).await?;
                anyhow::ensure!(status == 200, "manifest GET {status}");
                let (status, blob) = c.fetch("GET", &format!("/v2/{repo}/blobs/{layer}"), &[]).await?;
                anyhow::ensure!(status == 200, "blob GET {status}");
                if &Digest::sha256_of(&body) != manifest || &Digest::sha256_of(&blob) != layer {
                    counts.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                counts.pulls.fetch_add(1, Ordering::Relaxed);
            } else if roll < 85 && !full {
                let (status, body) = c.fetch("GET", &format!("/v2/{repo}/tags/list?n=100"), &[]).await?;
                anyhow::ensure!(status == 200, "tags {status}");
                anyhow::ensure!(body.len() > 2, "empty tag list");
                counts.listings.fetch_add(1, Ordering::Relaxed);
            } else {
                let (_, manifest, _) = images.remove((x as usize / 11) % images.len());
                let (status, _, _) =
                    c.send("DELETE", &format!("/v2/{repo}/manifests/{manifest}"), &[], Bytes::new()).await?;
                anyhow::ensure!(status == 202, "DELETE {status}");
                counts.deletes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("client {id}: {e:#}");
            conn = None;
        }
    }
}

pub(super) async fn run(binary: &Path, seconds: u64) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-soak-").tempdir_in(std::env::temp_dir())?;
    let server = start_ours(binary, work.path(), false, "[gc]\ninterval_secs = 30\ngrace_secs = 10\n").await?;
    let pid = server.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(client(server.addr, i, deadline, counts.clone()))).collect();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed().as_secs(), rss_kib(pid).unwrap_or(0), fds(pid)));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let ops = get(&counts.pushes) + get(&counts.pulls) + get(&counts.listings) + get(&counts.deletes);
    let minute = |from: usize, to: usize| -> (f64, f64) {
        let window: Vec<_> = samples.iter().skip(from).take(to - from).collect();
        let n = window.len().max(1) as f64;
        (
            window.iter().map(|s| s.1 as f64).sum::<f64>() / n / 1024.0,
            window.iter().map(|s| s.2 as f64).sum::<f64>() / n,
        )
    };
    let n = samples.len();
    // The first minute warms caches up; the second is the reference.
    let (first_rss, first_fds) = minute(n.min(60), n.min(120));
    let (last_rss, last_fds) = minute(n.saturating_sub(60), n);
    let peak_rss = samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1024.0;
    let peak_fds = samples.iter().map(|s| s.2).max().unwrap_or(0);
    println!("\nSustained load: {CLIENTS} clients, {seconds} s, garbage collection every 30 s (grace 10 s)\n");
    println!("| figure | value |");
    println!("|---|---|");
    println!("| operations | {ops} ({:.0}/s) |", ops as f64 / elapsed);
    println!(
        "| pushes / pulls / tag listings / deletes | {} / {} / {} / {} |",
        get(&counts.pushes),
        get(&counts.pulls),
        get(&counts.listings),
        get(&counts.deletes)
    );
    println!("| errors | {} |", get(&counts.errors));
    println!("| digest mismatches | {} |", get(&counts.mismatches));
    println!(
        "| RSS, mean of the second minute / of the last minute / peak | {first_rss:.1} / {last_rss:.1} / {peak_rss:.1} MiB |"
    );
    println!(
        "| open fds, mean of the second minute / of the last minute / peak | {first_fds:.0} / {last_fds:.0} / {peak_fds} |"
    );
    anyhow::ensure!(get(&counts.errors) == 0 && get(&counts.mismatches) == 0, "errors under sustained load");
    Ok(())
}
