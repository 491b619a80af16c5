//! `load pull-policies [runs]`: what content trust and vulnerability prevention cost a manifest
//! GET. The same server (token auth, the embedded default), alternating: off is no policy; on is
//! `library` accepting only cosign-signed artifacts under a trusted key (the signature verified,
//! its result cached), and preventing vulnerable images at `critical` (the image scanned by a
//! fixture adapter beforehand, its report read through the scan cache). Manifest GET by tag
//! (wrk), requests/s and server CPU µs per request.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{Conn, push_small_image, start_ours};

const REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";

/// Signs `library/small:v1`, registers `scanner`, turns both policies on, scans the image and
/// waits for its report; checks the GET still answers 200.
async fn protect(s: &super::Server, scanner: &testkit::scanner::FixtureScanner) -> anyhow::Result<()> {
    let base = format!("http://{}", s.addr);
    let token = s.bearer.clone().context("a token")?;
    let c = testkit::client();
    let head = c
        .head(format!("{base}/v2/library/small/manifests/v1"))
        .bearer_auth(&token)
        .header("accept", super::OCI_MANIFEST)
        .send()
        .await?;
    let digest = head.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).context("digest")?;
    let digest = registry_core::Digest::parse(digest)?;
    let signer = testkit::cosign::key(11);
    testkit::cosign::cosign(&c, &base, "library/small", &token, &digest, &signer).await;
    let mut conn = Conn::open(s.addr).await?;
    let registered = super::governance::admin(
        &mut conn,
        "POST",
        "/scanners",
        serde_json::json!({"name": "fixture", "url": scanner.url()}),
    )
    .await?;
    anyhow::ensure!(registered == 201, "registering the scanner: {registered}");
    let metadata = serde_json::json!({"metadata": {"enable_content_trust_cosign": "true", "prevent_vul": "true", "severity": "critical"}});
    let set = super::governance::admin(&mut conn, "PUT", "/projects/library", metadata).await?;
    anyhow::ensure!(set == 200, "the project's policies: {set}");
    let keys = serde_json::json!({"cosign": [testkit::cosign::pem(&signer)]});
    let set = super::governance::admin(&mut conn, "PUT", "/projects/library/content-trust/keys", keys).await?;
    anyhow::ensure!(set == 200, "the trusted key: {set}");
    let scan = super::governance::admin(
        &mut conn,
        "POST",
        "/projects/library/repositories/small/artifacts/v1/scan",
        serde_json::json!({}),
    )
    .await?;
    anyhow::ensure!(scan == 202, "the scan: {scan}");
    for _ in 0..500 {
        let a: serde_json::Value = c
            .get(format!("{base}/api/v2.0/projects/library/repositories/small/artifacts/v1?with_scan_overview=true"))
            .basic_auth("admin", Some("load-test-password"))
            .send()
            .await?
            .json()
            .await?;
        if a["scan_overview"][REPORT]["scan_status"] == "Success" {
            let pulled = c
                .get(format!("{base}/v2/library/small/manifests/v1"))
                .bearer_auth(&token)
                .header("accept", super::OCI_MANIFEST)
                .send()
                .await?
                .status();
            anyhow::ensure!(pulled == 200, "a signed, scanned image is pulled: {pulled}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the scan did not finish")
}

pub(crate) async fn run(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let work = tempfile::Builder::new().prefix("registry-pull-policies-").tempdir_in(std::env::temp_dir())?;
    let scanner = testkit::scanner::FixtureScanner::start(None, false).await;
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for run in 0..runs {
        for (i, on) in [false, true].into_iter().enumerate() {
            let dir = work.path().join(format!("r{run}-{on}"));
            std::fs::create_dir_all(&dir)?;
            let server = start_ours(binary, &dir, true, "").await?;
            push_small_image(&server, "library/small").await?;
            if on {
                protect(&server, &scanner).await?;
            }
            let (rps, per_get) = super::governance::measured_gets(&server).await?;
            rates[i].push(rps);
            cpu[i].push(per_get);
            eprintln!(
                "  run {run}, policies {}: {rps:.0} req/s, {per_get:.1} CPU µs/req",
                if on { "on" } else { "off" }
            );
            drop(server);
        }
    }
    println!("| token auth, embedded default | off | on (cosign trust with a key + prevention) | on/off |");
    println!("|---|---|---|---|");
    super::governance::print_gets(&rates, &cpu);
    Ok(())
}
