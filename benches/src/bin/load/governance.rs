//! `load governance [runs]`: what quotas and tag immutability cost. The same server (token auth,
//! the embedded default) with neither a limit nor a rule, then with a limit on the project and
//! an immutability rule that every tag push and deletion must consult, alternating, `runs` each:
//! manifest GET by tag (wrk), 200 blob pushes of 64 KiB (each admitted against the quota in the
//! transaction that links it), and 200 manifest pushes by tag (each reading the project's
//! rules). Requests/s, pushes/s and server CPU µs per request.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use super::{
    Conn, OCI_MANIFEST, cell, cpu_secs, manifest_load, median_spread, push_small_image, small_pushes, start_ours,
};

/// A management API call as the admin; its status.
pub(crate) async fn admin(c: &mut Conn, method: &str, path: &str, body: serde_json::Value) -> anyhow::Result<u16> {
    use base64::Engine as _;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("admin:load-test-password"));
    let headers = [("authorization", basic.as_str()), ("content-type", "application/json")];
    let (status, _, _) = c.send(method, &format!("/api/v2.0{path}"), &headers, Bytes::from(body.to_string())).await?;
    Ok(status)
}

/// Puts a large limit on `library` and an immutability rule for `release-*` tags (the pushed
/// tags do not match it, so every push goes through, but each consults it).
async fn govern(c: &mut Conn) -> anyhow::Result<()> {
    let quotas = admin(c, "PUT", "/quotas/1", serde_json::json!({"hard": {"storage": 1u64 << 40}})).await?;
    anyhow::ensure!(quotas == 200, "setting the quota: {quotas}");
    let rule = serde_json::json!({
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "release-*"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    });
    let created = admin(c, "POST", "/projects/library/immutabletagrules", rule).await?;
    anyhow::ensure!(created == 201, "creating the rule: {created}");
    Ok(())
}

/// `count` manifest pushes by tag (`t0`, `t1`, …) of the image of `library/small`'s config and
/// layer, one connection: pushes/s.
async fn tag_pushes(s: &super::Server, count: usize) -> anyhow::Result<f64> {
    let auth = s.auth_headers();
    let mut h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.push(("content-type", OCI_MANIFEST));
    let mut c = Conn::open(s.addr).await?;
    let (status, manifest) =
        c.fetch("GET", "/v2/library/small/manifests/v1", &[("accept", OCI_MANIFEST), h[0]]).await?;
    anyhow::ensure!(status == 200, "reading the image: {status}");
    let started = Instant::now();
    for i in 0..count {
        // Each a new manifest (an annotation apart), so that each push stores a record.
        let text =
            String::from_utf8_lossy(&manifest).replacen('{', &format!("{{\"annotations\":{{\"n\":\"{i}\"}},"), 1);
        let (status, _, _) = c.send("PUT", &format!("/v2/library/small/manifests/t{i}"), &h, Bytes::from(text)).await?;
        anyhow::ensure!(status == 201, "tag push {status}");
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// 10 s of manifest GETs of `library/small` by tag over 64 connections: requests per second and
/// the server's CPU microseconds per request.
pub(crate) async fn measured_gets(server: &super::Server) -> anyhow::Result<(f64, f64)> {
    let pid = server.pid().context("pid")?;
    let before = cpu_secs(pid);
    let (rps, _) = manifest_load(server, "library/small", 64, Duration::from_secs(10)).await?;
    let used = cpu_secs(pid) - before;
    Ok((rps, used * 1e6 / (rps * 10.0)))
}

/// The table rows of [`measured_gets`] off (`[0]`) and on (`[1]`).
pub(crate) fn print_gets(rates: &[Vec<f64>; 2], cpu: &[Vec<f64>; 2]) {
    let pct = |v: &[Vec<f64>; 2]| median_spread(&v[1]).0 / median_spread(&v[0]).0 * 100.0;
    println!(
        "| manifest GET by tag, wrk 64 conns, 10 s, req/s | {} | {} | {:.0}% |",
        cell(&rates[0]),
        cell(&rates[1]),
        pct(rates)
    );
    println!("| server CPU µs per manifest GET | {} | {} | {:.0}% |", cell(&cpu[0]), cell(&cpu[1]), pct(cpu));
}

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-governance-").tempdir_in(std::env::temp_dir())?;
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    let mut blobs: [Vec<f64>; 2] = Default::default();
    let mut tags: [Vec<f64>; 2] = Default::default();
    for run in 0..runs {
        for (i, on) in [false, true].into_iter().enumerate() {
            let dir = work.path().join(format!("r{run}-{on}"));
            std::fs::create_dir_all(&dir)?;
            let server = start_ours(binary, &dir, true, "").await?;
            if on {
                govern(&mut Conn::open(server.addr).await?).await?;
            }
            push_small_image(&server, "library/small").await?;
            let (rps, per_get) = measured_gets(&server).await?;
            rates[i].push(rps);
            cpu[i].push(per_get);
            blobs[i].push(small_pushes(&server, "library/load", 200, 32, run as u64 + 1).await?);
            tags[i].push(tag_pushes(&server, 200).await?);
            eprintln!(
                "  run {run}, quota and rule {}: {rps:.0} req/s, {per_get:.1} CPU µs/req, {:.0} blob pushes/s, {:.0} tag pushes/s",
                if on { "on" } else { "off" },
                blobs[i].last().copied().unwrap_or(0.0),
                tags[i].last().copied().unwrap_or(0.0)
            );
            drop(server);
        }
    }
    let pct = |v: &[Vec<f64>; 2]| median_spread(&v[1]).0 / median_spread(&v[0]).0 * 100.0;
    println!("| token auth, embedded default | off (no limit, no rule) | on (limit + immutability rule) | on/off |");
    println!("|---|---|---|---|");
    print_gets(&rates, &cpu);
    println!(
        "| 200 blob pushes of 64 KiB over 32 conns, pushes/s | {} | {} | {:.0}% |",
        cell(&blobs[0]),
        cell(&blobs[1]),
        pct(&blobs)
    );
    println!(
        "| 200 manifest pushes by tag, 1 conn, pushes/s | {} | {} | {:.0}% |",
        cell(&tags[0]),
        cell(&tags[1]),
        pct(&tags)
    );
    Ok(())
}
