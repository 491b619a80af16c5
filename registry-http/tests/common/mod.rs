//! Helpers shared by the HTTP tests.
#![allow(dead_code, unreachable_pub)]

use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::{Client, Response, StatusCode};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Asserts status and the spec's error code in a JSON error body.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["errors"][0]["code"], code, "error code in {body}");
    assert!(body["errors"][0]["message"].is_string());
}

pub fn header(resp: &Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Number of files below `dir` (0 when it does not exist).
pub fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.map(|e| e.expect("entry").path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum()
}

/// Files in the registry's uploads and blobs directories.
pub fn stored(reg: &TestRegistry) -> (usize, usize) {
    let dir = reg.data_dir().expect("on-disk registry");
    (files_under(&dir.join("uploads")), files_under(&dir.join("blobs")))
}

/// Pushes a blob monolithically and returns its digest.
pub async fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    let resp = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .body(data.to_vec())
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::CREATED, "monolithic push");
    digest
}

/// An OCI image manifest over a config and layers, optionally with a subject and artifactType.
pub fn image_manifest(config: &Digest, config_size: usize, layers: &[(Digest, usize)], extra: &str) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// Pushes a config and one layer and a manifest tagged `tag`; returns the manifest's bytes and digest.
pub async fn push_image(c: &Client, base: &str, repo: &str, tag: &str, seed: &str) -> (String, Digest) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}").repeat(100);
    let cd = push_blob(c, base, repo, config.as_bytes()).await;
    let ld = push_blob(c, base, repo, layer.as_bytes()).await;
    let manifest = image_manifest(&cd, config.len(), &[(ld, layer.len())], "");
    let resp = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(resp.status(), StatusCode::CREATED, "manifest push");
    let digest = Digest::sha256_of(manifest.as_bytes());
    (manifest, digest)
}

/// Sends a raw HTTP/1.1 request (path exactly as given, no client-side normalization) and returns
/// the status code and the body.
pub async fn raw_request(reg: &TestRegistry, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", reg.host());
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}
