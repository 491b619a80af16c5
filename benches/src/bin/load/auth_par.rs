//! `load auth-par [runs]`: token-authenticated manifest GETs next to anonymous ones. Two servers
//! side by side on the embedded default, one with `[auth] enabled = false` and one with token
//! auth; on the second, the same GET both anonymously (`library` is public: an anonymous
//! client's token, as podman gets one) and with the admin's token on every request. Alternating 10-second wrk runs (2 threads, 64 connections),
//! `runs` of each: requests/s, p99 and server CPU µs per request. The token's own cost is the
//! token run against the anonymous run on the same server just before it; the cost of having
//! auth on at all (projects, pull policies, the access layer) is the anonymous run against the
//! unauthenticated server's.
//!
//! `load auth-par [runs] postgres`: the same with each server's metadata on a throwaway
//! PostgreSQL database (`REGISTRY_TEST_POSTGRES` or the machine's) and its blobs on disk, as a
//! replica keeps them: what a request asks of the database shows in its rate.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use registry_postgres::testing::TestDatabase;

use super::{anonymous_token, cell, cpu_secs, manifest_load_as, median_spread, push_small_image, start_ours};

/// The three ways of sending the same GET: (server index, with the admin's token, the row's name).
const SHAPES: [(usize, bool, &str); 3] = [
    (0, false, "unauthenticated (`[auth] enabled = false`)"),
    (1, false, "anonymous, public project, auth on"),
    (1, true, "token-authenticated, auth on"),
];

pub(crate) async fn run(binary: &Path, runs: usize, postgres: bool) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-auth-par-").tempdir_in(std::env::temp_dir())?;
    let (open_dir, auth_dir) = (work.path().join("open"), work.path().join("auth"));
    std::fs::create_dir_all(&open_dir)?;
    std::fs::create_dir_all(&auth_dir)?;
    let databases =
        if postgres { vec![TestDatabase::create().await, TestDatabase::create().await] } else { Vec::new() };
    let extra = |i: usize| databases.get(i).map_or(String::new(), |db| format!("[database]\nurl = {:?}\n", db.url()));
    let servers =
        [start_ours(binary, &open_dir, false, &extra(0)).await?, start_ours(binary, &auth_dir, true, &extra(1)).await?];
    push_small_image(&servers[0], "library/small").await?;
    push_small_image(&servers[1], "library/small").await?;
    let anonymous = anonymous_token(servers[1].addr, "library/small").await?;
    // Per shape, runs of (req/s, p99 ms, CPU µs/req).
    let mut figures: [[Vec<f64>; 3]; 3] = Default::default();
    for run in 0..runs {
        for (i, (server, with_token, name)) in SHAPES.into_iter().enumerate() {
            let server = &servers[server];
            let pid = server.pid().context("pid")?;
            let before = cpu_secs(pid);
            let token =
                if with_token { server.bearer.as_deref() } else { server.bearer.as_ref().map(|_| anonymous.as_str()) };
            let (rps, p99) = manifest_load_as(server, "library/small", 64, Duration::from_secs(10), token).await?;
            let cpu = (cpu_secs(pid) - before) * 1e6 / (rps * 10.0);
            eprintln!("  run {run} {name}: {rps:.0} req/s, p99 {p99:.1} ms, {cpu:.1} CPU µs/req");
            for (k, v) in [rps, p99, cpu].into_iter().enumerate() {
                figures[i][k].push(v);
            }
        }
    }
    println!("\nRuns per figure: {runs}; median (min–max)\n");
    println!("| manifest GET by tag | req/s | p99 ms | server CPU µs/req |");
    println!("|---|---|---|---|");
    for (i, (_, _, name)) in SHAPES.into_iter().enumerate() {
        println!("| {name} | {} | {} | {} |", cell(&figures[i][0]), cell(&figures[i][1]), cell(&figures[i][2]));
    }
    // Each run against the run just before it: the machine's speed drifts by more than the
    // difference measured, and neighbouring runs share the drift.
    for (of, against, what) in [
        (2, 1, "anonymous rate on the same server"),
        (2, 0, "unauthenticated server's rate"),
        (1, 0, "unauthenticated server's rate"),
    ] {
        let ratios: Vec<f64> = figures[of][0].iter().zip(&figures[against][0]).map(|(a, b)| a / b * 100.0).collect();
        let (ratio, low, high) = median_spread(&ratios);
        println!(
            "{} at {:.0}% of the {what} (medians); run by run, {ratio:.0}% ({low:.0}–{high:.0}%).",
            ["", "Anonymous", "Token-authenticated"][of],
            median_spread(&figures[of][0]).0 / median_spread(&figures[against][0]).0 * 100.0
        );
    }
    drop(servers);
    for db in databases {
        db.drop_database().await;
    }
    Ok(())
}
