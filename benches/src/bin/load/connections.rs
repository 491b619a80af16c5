//! `load connections [runs]`: many clients at once. Ours (release build, `[auth] enabled =
//! false`, the embedded default) and distribution 2.8, each serving a small image: `wrk -t2`
//! with 1,000 and 10,000 keep-alive connections for 10 s on the manifest by tag and on its 4 KiB
//! layer (requests/s, p99, errors of every kind wrk counts); and, first, on the fresh server,
//! 10,000 idle keep-alive connections opened, each after one request, with the server's resident
//! memory before and after (KiB per idle connection). The file-descriptor limit is raised for the bench's processes only
//! (`prlimit`, soft limit to the hard one), never in the product's defaults.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use registry_core::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{
    OCI_MANIFEST, Server, cell, parse_wrk, push_small_image, rss_kib, start_distribution, start_ours, test_data,
};

/// File descriptors each process needs: 10,000 connections and some to spare.
const FILES: u64 = 12_000;

/// Raises this process's open-file limit to its hard limit (its children, the servers and wrk,
/// inherit it); the hard limit must allow [`FILES`].
fn raise_fd_limit() -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .context("reading the open-file limit")?;
    anyhow::ensure!(hard >= FILES, "the hard open-file limit is {hard}: 10,000 connections need {FILES}");
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .context("prlimit (util-linux)")?;
    anyhow::ensure!(status.success(), "prlimit refused to raise the soft open-file limit to {hard}");
    Ok(())
}

/// wrk's socket errors and non-2xx answers, summed.
fn wrk_errors(text: &str) -> u64 {
    let socket: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| rest.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let non_2xx: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    socket + non_2xx
}

/// `wrk -t2 -c<connections> -d10s` on `path`: (requests/s, p99 ms, errors).
async fn wrk(s: &Server, path: &str, connections: usize) -> anyhow::Result<(f64, f64, u64)> {
    let url = format!("http://{}{path}", s.addr);
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), "-d10s", "--timeout", "10s", "--latency"])
        .args(["-H", &format!("accept: {OCI_MANIFEST}")])
        .arg(&url)
        .output()
        .await
        .context("running wrk (apt-get install -y wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    let (rps, p99) = parse_wrk(&text).with_context(|| format!("unexpected wrk output: {text}"))?;
    let errors = wrk_errors(&text);
    if errors > 0 {
        let said: Vec<&str> = text.lines().filter(|l| l.contains("errors") || l.contains("Non-2xx")).collect();
        eprintln!("    {path} x{connections}: {}", said.join("; ").trim());
    }
    Ok((rps, p99, errors))
}

/// Opens `n` keep-alive connections, each after one `GET /v2/`, and keeps them open while the
/// server's resident memory is read: KiB per connection.
async fn idle_kib_per_connection(s: &Server, n: usize) -> anyhow::Result<f64> {
    let pid = s.pid().context("pid")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid).context("rss")?;
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = tokio::net::TcpStream::connect(s.addr).await?;
        conn.write_all(b"GET /v2/ HTTP/1.1\r\nHost: bench\r\n\r\n").await?;
        let mut head = [0u8; 512];
        let read = conn.read(&mut head).await?;
        anyhow::ensure!(read > 0 && head.starts_with(b"HTTP/1.1 200"), "GET /v2/ on an idle connection");
        open.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid).context("rss")?;
    drop(open);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    raise_fd_limit()?;
    let work = tempfile::Builder::new().prefix("registry-connections-").tempdir_in(std::env::temp_dir())?;
    let layer = Digest::sha256_of(&test_data(4096, 7));
    // [server][row] -> figures per run; rows: (what, connections).
    let rows = [("manifest", 1_000), ("manifest", 10_000), ("4 KiB blob", 1_000), ("4 KiB blob", 10_000)];
    let mut rps: [[Vec<f64>; 4]; 2] = Default::default();
    let mut p99: [[Vec<f64>; 4]; 2] = Default::default();
    let mut errors = [[0u64; 4]; 2];
    let mut idle: [Vec<f64>; 2] = Default::default();
    for (i, which) in ["ours", "distribution"].into_iter().enumerate() {
        let server = if i == 0 {
            start_ours(binary, work.path(), false, "").await?
        } else {
            start_distribution(work.path()).await?
        };
        push_small_image(&server, "load/small").await?;
        for run in 0..runs {
            // Idle connections first, on a server that has not yet held thousands of busy ones
            // (its allocator would keep that memory, hiding what an idle connection costs).
            if run == 0 {
                let kib = idle_kib_per_connection(&server, 10_000).await?;
                eprintln!("  {which}: {kib:.1} KiB per idle connection");
                idle[i].push(kib);
            }
            for (r, (what, connections)) in rows.iter().enumerate() {
                let path = if *what == "manifest" {
                    "/v2/load/small/manifests/v1".to_owned()
                } else {
                    format!("/v2/load/small/blobs/{layer}")
                };
                let (r_rps, r_p99, r_errors) = wrk(&server, &path, *connections).await?;
                eprintln!(
                    "  {which} run {run} {what} x{connections}: {r_rps:.0} req/s, p99 {r_p99:.1} ms, {r_errors} errors"
                );
                rps[i][r].push(r_rps);
                p99[i][r].push(r_p99);
                errors[i][r] += r_errors;
            }
        }
        drop(server);
    }
    println!("\nRuns per figure: {runs}; median (min–max); errors summed over the runs\n");
    println!(
        "| GET, wrk 2 threads, 10 s | connections | ours req/s | ours p99 ms | ours errors | distribution req/s | distribution p99 ms | distribution errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (r, (what, connections)) in rows.iter().enumerate() {
        println!(
            "| {what} | {connections} | {} | {} | {} | {} | {} | {} |",
            cell(&rps[0][r]),
            cell(&p99[0][r]),
            errors[0][r],
            cell(&rps[1][r]),
            cell(&p99[1][r]),
            errors[1][r]
        );
    }
    println!(
        "| resident memory per idle keep-alive connection (10,000 open, fresh server) | KiB | {} | | | {} | | |",
        cell(&idle[0]),
        cell(&idle[1])
    );
    Ok(())
}
