//! `load push-cpu [runs]`: a 1 GiB push next to the hashing limit, in wall-clock rate and in
//! server CPU per GiB. Ours (release build, token auth, the embedded default) and distribution
//! 2.8, monolithic (POST + PUT) and chunked (16 PATCH of 64 MiB), `runs` each; beside them
//! `openssl dgst -sha256` of the same GiB read from the page cache (one core's SHA-256 rate).
//! Server CPU is user + system time from `/proc/<pid>/stat` around each push (the kernel's
//! writeback threads are not counted, for either server).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use registry_core::Digest;

use super::{
    GIB, cell, cpu_secs, fsync_write_mb_s, median_spread, push_chunked, push_monolithic, start_distribution, start_ours,
};

/// `openssl dgst -sha256` of `data` written to a file under `dir` (read once before, so it is
/// cached): MB/s.
fn dgst_mb_s(dir: &Path, data: &[u8]) -> anyhow::Result<f64> {
    let path = dir.join("dgst-probe");
    std::fs::write(&path, data)?;
    std::fs::read(&path)?;
    let started = Instant::now();
    let out = std::process::Command::new("openssl").args(["dgst", "-sha256"]).arg(&path).output()?;
    anyhow::ensure!(out.status.success(), "openssl dgst failed");
    let rate = data.len() as f64 / started.elapsed().as_secs_f64() / 1e6;
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// A cell with two decimals (CPU seconds).
fn cell2(v: &[f64]) -> String {
    let (m, lo, hi) = median_spread(v);
    format!("{m:.2} ({lo:.2}–{hi:.2})")
}

pub(crate) async fn run(binary: &Path, runs: usize, data: &Bytes, digest: &Digest) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-push-cpu-").tempdir_in(std::env::temp_dir())?;
    let sha = dgst_mb_s(work.path(), data)?;
    let disk = fsync_write_mb_s(work.path(), data)?;
    let gib = data.len() as f64 / GIB as f64;
    // [which][mono, chunked] -> (MB/s, CPU-s per GiB) per run.
    let mut rates: [[Vec<f64>; 2]; 2] = Default::default();
    let mut cpu: [[Vec<f64>; 2]; 2] = Default::default();
    for (i, which) in ["ours", "distribution"].into_iter().enumerate() {
        let server = if i == 0 {
            start_ours(binary, work.path(), true, "").await?
        } else {
            start_distribution(work.path()).await?
        };
        let pid = server.pid().context("pid")?;
        for run in 0..runs {
            for (k, chunked) in [false, true].into_iter().enumerate() {
                // The token covers library/load; pushing the same blob again costs what the first did.
                let repo = "library/load";
                let before = cpu_secs(pid);
                let rate = if chunked {
                    push_chunked(&server, repo, data, digest, 16).await?
                } else {
                    push_monolithic(&server, repo, data, digest).await?
                };
                let used = (cpu_secs(pid) - before) / gib;
                eprintln!(
                    "  {which} run {run} {}: {rate:.0} MB/s, {used:.2} CPU-s/GiB",
                    if chunked { "chunked" } else { "mono" }
                );
                rates[i][k].push(rate);
                cpu[i][k].push(used);
            }
        }
        drop(server);
    }
    println!(
        "\n`openssl dgst -sha256` of the same GiB: {sha:.0} MB/s ({:.2} CPU-s/GiB); the same GiB written in 1 MiB writes and fsync'd: {disk:.0} MB/s",
        GIB as f64 / 1e6 / sha
    );
    println!("Runs per figure: {runs}; median (min–max)\n");
    println!(
        "| push of 1 GiB | ours MB/s | ours / dgst | ours / fsync'd write | ours server CPU-s/GiB | distribution MB/s | distribution CPU-s/GiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (k, name) in ["monolithic (POST + PUT)", "chunked (16 PATCH of 64 MiB)"].into_iter().enumerate() {
        println!(
            "| {name} | {} | {:.0}% | {:.0}% | {} | {} | {} |",
            cell(&rates[0][k]),
            median_spread(&rates[0][k]).0 / sha * 100.0,
            median_spread(&rates[0][k]).0 / disk * 100.0,
            cell2(&cpu[0][k]),
            cell(&rates[1][k]),
            cell2(&cpu[1][k]),
        );
    }
    Ok(())
}
