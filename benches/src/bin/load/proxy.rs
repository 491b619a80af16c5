//! `load proxy [runs]`: pulls of a 64 MiB image (8 incompressible layers, four fetched at a
//! time, as podman does) — from distribution 2.8 directly, through a proxy-cache project of ours
//! in front of it while the cache is cold (a new project each run) and once it is warm, and from
//! ours where the image was pushed (the local pull). Wall-clock MB/s, and our CPU seconds per GB.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use super::replication::{admin, admin_token, push_image};
use super::{OCI_MANIFEST, cell, cpu_secs, median_spread, start_distribution, start_ours};

/// Pulls `repository:v1` from `addr` (manifest, then its blobs four at a time); the bytes read.
async fn pull(addr: std::net::SocketAddr, repository: &str, token: Option<&str>) -> anyhow::Result<u64> {
    let c = testkit::client();
    let authorized = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let manifest = authorized(c.get(format!("http://{addr}/v2/{repository}/manifests/v1")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await?;
    anyhow::ensure!(manifest.status() == 200, "manifest of {repository}: {}", manifest.status());
    let manifest: serde_json::Value = manifest.json().await?;
    let mut digests = vec![manifest["config"]["digest"].as_str().context("config")?.to_owned()];
    for layer in manifest["layers"].as_array().context("layers")? {
        digests.push(layer["digest"].as_str().context("layer")?.to_owned());
    }
    let fetches = futures::stream::iter(digests.into_iter().map(|d| {
        let request = authorized(c.get(format!("http://{addr}/v2/{repository}/blobs/{d}")));
        async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status() == 200, "blob {d}: {}", response.status());
            let mut body = response.bytes_stream();
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                read += chunk?.len() as u64;
            }
            Ok(read)
        }
    }))
    .buffer_unordered(4);
    let read: Vec<anyhow::Result<u64>> = fetches.collect().await;
    read.into_iter().sum()
}

/// Times `work`: (MB/s, our CPU seconds per GB).
async fn timed(pid: u32, work: impl std::future::Future<Output = anyhow::Result<u64>>) -> anyhow::Result<(f64, f64)> {
    let (cpu, started) = (cpu_secs(pid), Instant::now());
    let bytes = work.await? as f64;
    let secs = started.elapsed().as_secs_f64();
    Ok((bytes / secs / 1e6, (cpu_secs(pid) - cpu) / (bytes / 1e9)))
}

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-proxy-").tempdir_in(std::env::temp_dir())?;
    for dir in ["ours", "upstream"] {
        std::fs::create_dir_all(work.path().join(dir))?;
    }
    let ours = start_ours(binary, &work.path().join("ours"), true, "").await?;
    let upstream = start_distribution(&work.path().join("upstream")).await?;
    push_image(&upstream).await?;
    push_image(&ours).await?;
    let pid = ours.pid().context("pid")?;
    let endpoint =
        serde_json::json!({"name": "upstream", "type": "docker-registry", "url": format!("http://{}", upstream.addr)});
    let (status, location, _) = admin(&ours, "POST", "/registries", endpoint).await?;
    anyhow::ensure!(status == 201, "registry: {status}");
    let registry_id: u64 = location.rsplit('/').next().context("id")?.parse()?;
    let local = admin_token(&ours, "repository:library/big:pull").await?;
    // direct, cold, warm, local
    let (mut rates, mut cpu): ([Vec<f64>; 4], [Vec<f64>; 4]) = Default::default();
    for run in 0..runs {
        let project = format!("hub{run}");
        let body = serde_json::json!({"project_name": project, "registry_id": registry_id});
        let (status, _, _) = admin(&ours, "POST", "/projects", body).await?;
        anyhow::ensure!(status == 201, "project: {status}");
        let repository = format!("{project}/library/big");
        let token = admin_token(&ours, &format!("repository:{repository}:pull")).await?;
        let results = [
            timed(pid, pull(upstream.addr, "library/big", None)).await?,
            timed(pid, pull(ours.addr, &repository, Some(&token))).await?,
            {
                // Warm once the cache stored the manifest too (after its fill's short wait).
                let path = format!("/projects/{project}/repositories/library%2Fbig/artifacts/v1");
                for _ in 0..600 {
                    if admin(&ours, "GET", &path, serde_json::Value::Null).await?.0 == 200 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                timed(pid, pull(ours.addr, &repository, Some(&token))).await?
            },
            timed(pid, pull(ours.addr, "library/big", Some(&local))).await?,
        ];
        for (i, (rate, used)) in results.into_iter().enumerate() {
            rates[i].push(rate);
            cpu[i].push(used);
        }
        eprintln!(
            "  run {run}: direct {:.0}, cold {:.0}, warm {:.0}, local {:.0} MB/s",
            rates[0][run], rates[1][run], rates[2][run], rates[3][run]
        );
    }
    let of = |v: &[Vec<f64>; 4], i: usize, j: usize| median_spread(&v[i]).0 / median_spread(&v[j]).0 * 100.0;
    println!(
        "| 64 MiB image pull, 4 blobs at a time | direct from distribution | cold through the proxy | warm | local pull of ours |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| MB/s (wall clock) | {} | {} ({:.0}% of direct) | {} ({:.0}% of local) | {} |",
        cell(&rates[0]),
        cell(&rates[1]),
        of(&rates, 1, 0),
        cell(&rates[2]),
        of(&rates, 2, 3),
        cell(&rates[3])
    );
    println!("| our CPU s per GB | (not ours) | {} | {} | {} |", cell(&cpu[1]), cell(&cpu[2]), cell(&cpu[3]));
    drop(upstream);
    Ok(())
}
