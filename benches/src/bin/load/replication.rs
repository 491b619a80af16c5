//! `load replication [runs]`: a push-based replication of a 64 MiB image (8 incompressible
//! layers) from this registry (token auth, the embedded default) to distribution 2.8, next to
//! `skopeo copy` of the same image between the same two registries, alternating, each run to a
//! fresh destination repository. Wall-clock MB/s, and CPU seconds per GB: ours for replication
//! (it reads its store and sends), skopeo's plus ours (serving the pull) for the copy.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use registry_core::Digest;

use super::{
    Conn, OCI_MANIFEST, cell, cpu_secs, header, median_spread, post_put, start_distribution, start_ours, test_data,
};

const LAYERS: usize = 8;
const LAYER: usize = 8 << 20;
const PASSWORD: &str = "load-test-password";

/// A bearer token of the admin for `scope` from our token service.
pub(crate) async fn admin_token(s: &super::Server, scope: &str) -> anyhow::Result<String> {
    let token: serde_json::Value = testkit::client()
        .get(format!("http://{}/auth/token?service=registry&scope={scope}", s.addr))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await?
        .json()
        .await?;
    Ok(token["token"].as_str().context("a token")?.to_owned())
}

/// Pushes `library/big:v1` (its layers and config; to distribution without credentials, to ours
/// with the admin's token); its total bytes.
pub(crate) async fn push_image(s: &super::Server) -> anyhow::Result<u64> {
    let bearer = match s.name {
        "distribution" => String::new(),
        _ => format!("Bearer {}", admin_token(s, "repository:library/big:pull,push").await?),
    };
    let h: Vec<(&str, &str)> = if bearer.is_empty() { Vec::new() } else { vec![("authorization", bearer.as_str())] };
    let mut c = Conn::open(s.addr).await?;
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let config_digest = Digest::sha256_of(&config);
    post_put(&mut c, "library/big", &h, config.clone(), &config_digest).await?;
    let mut layers = Vec::new();
    for i in 0..LAYERS {
        let data = test_data(LAYER, 100 + i as u64);
        let d = Digest::sha256_of(&data);
        post_put(&mut c, "library/big", &h, data, &d).await?;
        layers
            .push(format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{LAYER}}}"#));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layers.join(",")
    );
    let mut hh = h.clone();
    hh.push(("content-type", OCI_MANIFEST));
    let (status, _, _) = c.send("PUT", "/v2/library/big/manifests/v1", &hh, Bytes::from(manifest)).await?;
    anyhow::ensure!(status == 201, "manifest push {status}");
    Ok((LAYERS * LAYER + config.len()) as u64)
}

/// A management API call as admin; (status, `Location`, body).
pub(crate) async fn admin(
    s: &super::Server,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<(u16, String, serde_json::Value)> {
    let c = testkit::client();
    let url = format!("http://{}/api/v2.0{path}", s.addr);
    let req = match method {
        "POST" => c.post(url).json(&body),
        _ => c.get(url),
    };
    let r = req.basic_auth("admin", Some(PASSWORD)).send().await?;
    let status = r.status().as_u16();
    let location = header(r.headers(), "location");
    Ok((status, location, r.json().await.unwrap_or(serde_json::Value::Null)))
}

/// Replicates `library/big` under `namespace`: (seconds, our CPU seconds).
async fn replicate(s: &super::Server, registry_id: u64, namespace: &str) -> anyhow::Result<(f64, f64)> {
    let pid = s.pid().context("pid")?;
    let policy = serde_json::json!({"name": namespace, "dest_registry": {"id": registry_id}, "dest_namespace": namespace,
        "dest_namespace_replace_count": -1, "filters": [{"type": "name", "value": "library/big"}]});
    let (status, location, _) = admin(s, "POST", "/replication/policies", policy).await?;
    anyhow::ensure!(status == 201, "policy: {status}");
    let policy_id: u64 = location.rsplit('/').next().context("id")?.parse()?;
    let (cpu, started) = (cpu_secs(pid), Instant::now());
    let (status, location, _) =
        admin(s, "POST", "/replication/executions", serde_json::json!({"policy_id": policy_id})).await?;
    anyhow::ensure!(status == 201, "execution: {status}");
    let execution = location.rsplit('/').next().context("id")?.to_owned();
    loop {
        let (_, _, e) =
            admin(s, "GET", &format!("/replication/executions/{execution}"), serde_json::Value::Null).await?;
        match e["status"].as_str() {
            Some("Succeed") => return Ok((started.elapsed().as_secs_f64(), cpu_secs(pid) - cpu)),
            Some("InProgress") => tokio::time::sleep(Duration::from_millis(20)).await,
            other => anyhow::bail!("replication ended {other:?}: {e}"),
        }
    }
}

/// `skopeo copy` of `library/big:v1` to `dest`: (seconds, skopeo's CPU seconds + ours).
async fn skopeo(s: &super::Server, dist: &super::Server, dest: &str) -> anyhow::Result<(f64, f64)> {
    let pid = s.pid().context("pid")?;
    let (ours, started) = (cpu_secs(pid), Instant::now());
    let script = format!(
        "TIMEFORMAT='%U %S'; {{ time skopeo copy --quiet --src-creds admin:{PASSWORD} --src-tls-verify=false \
         --dest-tls-verify=false docker://{}/library/big:v1 docker://{}/{dest}:v1 >/dev/null; }} 2>&1",
        s.addr, dist.addr
    );
    let out = tokio::process::Command::new("bash").args(["-c", &script]).output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    let cpu: f64 = last.split_whitespace().filter_map(|t| t.parse::<f64>().ok()).sum();
    anyhow::ensure!(out.status.success() && last.split_whitespace().count() == 2, "skopeo copy failed: {text}");
    Ok((started.elapsed().as_secs_f64(), cpu + cpu_secs(pid) - ours))
}

/// A fresh distribution registered as an endpoint of `ours` (nothing in it to mount or skip);
/// the server and the endpoint's id.
async fn fresh_distribution(ours: &super::Server, dir: &Path, name: &str) -> anyhow::Result<(super::Server, u64)> {
    std::fs::create_dir_all(dir)?;
    let dist = start_distribution(dir).await?;
    let endpoint = serde_json::json!({"name": name, "type": "docker-registry", "url": format!("http://{}", dist.addr)});
    let (status, location, _) = admin(ours, "POST", "/registries", endpoint).await?;
    anyhow::ensure!(status == 201, "registry: {status}");
    Ok((dist, location.rsplit('/').next().context("id")?.parse()?))
}

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-replication-").tempdir_in(std::env::temp_dir())?;
    std::fs::create_dir_all(work.path().join("ours"))?;
    let ours = start_ours(binary, &work.path().join("ours"), true, "").await?;
    let bytes = push_image(&ours).await? as f64;
    let (mut rates, mut cpu): ([Vec<f64>; 2], [Vec<f64>; 2]) = Default::default();
    for run in 0..runs {
        // Each copy to a distribution of its own: skopeo would otherwise mount what it sent before.
        let (dist, registry_id) =
            fresh_distribution(&ours, &work.path().join(format!("rep{run}")), &format!("rep{run}")).await?;
        let (secs, used) = replicate(&ours, registry_id, &format!("rep{run}")).await?;
        rates[0].push(bytes / secs / 1e6);
        cpu[0].push(used / (bytes / 1e9));
        drop(dist);
        let (dist, _) = fresh_distribution(&ours, &work.path().join(format!("sko{run}")), &format!("sko{run}")).await?;
        let (secs, used) = skopeo(&ours, &dist, &format!("sko{run}/big")).await?;
        rates[1].push(bytes / secs / 1e6);
        cpu[1].push(used / (bytes / 1e9));
        drop(dist);
        eprintln!(
            "  run {run}: replication {:.0} MB/s {:.1} CPU s/GB; skopeo copy {:.0} MB/s {:.1} CPU s/GB",
            rates[0][run], cpu[0][run], rates[1][run], cpu[1][run]
        );
    }
    let pct = |v: &[Vec<f64>; 2]| median_spread(&v[0]).0 / median_spread(&v[1]).0 * 100.0;
    println!("| 64 MiB image, ours -> distribution 2.8 | replication | skopeo copy | replication/skopeo |");
    println!("|---|---|---|---|");
    println!("| MB/s (wall clock) | {} | {} | {:.0}% |", cell(&rates[0]), cell(&rates[1]), pct(&rates));
    println!("| CPU s per GB (ours; skopeo's + ours) | {} | {} | {:.0}% |", cell(&cpu[0]), cell(&cpu[1]), pct(&cpu));
    Ok(())
}
