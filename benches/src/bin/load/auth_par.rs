//! `load auth-par [runs]`: token-authenticated manifest GETs next to unauthenticated ones: two
//! servers side by side on the embedded default, one with `[auth] enabled = false` and one with
//! token auth (the admin's bearer token on every request), alternating 10-second wrk runs (2
//! threads, 64 connections), `runs` each: requests/s, p99 and server CPU µs per request.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{cell, cpu_secs, manifest_load, median_spread, push_small_image, start_ours};

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-auth-par-").tempdir_in(std::env::temp_dir())?;
    let (open_dir, auth_dir) = (work.path().join("open"), work.path().join("auth"));
    std::fs::create_dir_all(&open_dir)?;
    std::fs::create_dir_all(&auth_dir)?;
    let servers = [start_ours(binary, &open_dir, false, "").await?, start_ours(binary, &auth_dir, true, "").await?];
    push_small_image(&servers[0], "library/small").await?;
    push_small_image(&servers[1], "library/small").await?;
    // [unauthenticated, token] -> runs of (req/s, p99 ms, CPU µs/req).
    let mut figures: [[Vec<f64>; 3]; 2] = Default::default();
    for run in 0..runs {
        for (i, server) in servers.iter().enumerate() {
            let pid = server.pid().context("pid")?;
            let before = cpu_secs(pid);
            let (rps, p99) = manifest_load(server, "library/small", 64, Duration::from_secs(10)).await?;
            let cpu = (cpu_secs(pid) - before) * 1e6 / (rps * 10.0);
            eprintln!("  run {run} {}: {rps:.0} req/s, p99 {p99:.1} ms, {cpu:.1} CPU µs/req", ["open", "token"][i]);
            for (k, v) in [rps, p99, cpu].into_iter().enumerate() {
                figures[i][k].push(v);
            }
        }
    }
    println!("\nRuns per figure: {runs}; median (min–max)\n");
    println!("| manifest GET by tag | req/s | p99 ms | server CPU µs/req |");
    println!("|---|---|---|---|");
    for (i, name) in ["unauthenticated (`[auth] enabled = false`)", "token-authenticated"].into_iter().enumerate() {
        println!("| {name} | {} | {} | {} |", cell(&figures[i][0]), cell(&figures[i][1]), cell(&figures[i][2]));
    }
    // Each run's token rate against the unauthenticated run just before it: the machine's speed
    // drifts by more than the difference measured, and a pair of runs shares the drift.
    let ratios: Vec<f64> = figures[1][0].iter().zip(&figures[0][0]).map(|(token, open)| token / open * 100.0).collect();
    let (ratio, low, high) = median_spread(&ratios);
    println!(
        "\nToken-authenticated at {:.0}% of the unauthenticated rate (medians); run by run, {ratio:.0}% ({low:.0}–{high:.0}%).",
        median_spread(&figures[1][0]).0 / median_spread(&figures[0][0]).0 * 100.0
    );
    Ok(())
}
