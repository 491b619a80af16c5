//! The `registry` binary: configuration, logs, readiness and graceful shutdown.

mod common;

use std::process::Stdio;

use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `registry serve` with its log lines.
struct Server {
    child: Child,
    addr: String,
    logs: mpsc::UnboundedReceiver<String>,
}

impl Server {
    /// Starts the binary on an ephemeral port and waits for its "serving" log line, which it
    /// prints once the listener is bound.
    async fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_registry"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the registry binary");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (tx, logs) = mpsc::unbounded_channel();
        let addr = loop {
            let line = lines.next_line().await.expect("read log").expect("the server exited before serving");
            if line.contains("registry serving") {
                let addr = line.split("listen=").nth(1).and_then(|s| s.split_whitespace().next()).expect("listen=");
                break addr.to_owned();
            }
        };
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, addr, logs }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for a log line containing every needle.
    async fn log_line(&mut self, needles: &[&str]) -> String {
        loop {
            let line = self.logs.recv().await.expect("log stream ended");
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_logs_each_request_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&["--data-dir", dir.path().to_str().expect("utf8")], &[]).await;
    let c = client();
    let resp = c.get(format!("{}/v2/", server.url())).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    let line = server.log_line(&["request", "method=GET", "path=/v2/", "status=200"]).await;
    assert!(line.contains("duration_ms="), "{line}");
    push_image(&c, &server.url(), "bin/app", "v1", "b").await;
    let line = server.log_line(&["method=PUT", "path=/v2/bin/app/manifests/v1", "status=201"]).await;
    assert!(line.contains("bytes="), "{line}");

    // An upload in flight when SIGTERM arrives still completes.
    let location =
        header(&c.post(format!("{}/v2/bin/app/blobs/uploads/", server.url())).send().await.expect("post"), "location");
    let mut s = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&[1u8; 1000]).await.expect("write");
    server.log_line(&["path=/v2/bin/app/blobs/uploads/", "status=202"]).await;
    server.terminate();
    server.log_line(&["SIGTERM received"]).await;
    s.write_all(&[1u8; 1000]).await.expect("write the rest after SIGTERM");
    let mut response = String::new();
    s.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 202"), "in-flight request finished: {response}");
    let status = server.child.wait().await.expect("wait");
    assert!(status.success(), "clean exit: {status}");
    // The data directory holds the documented layout.
    for entry in ["blobs", "uploads", "tmp", "metadata.redb"] {
        assert!(dir.path().join(entry).exists(), "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_environment_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n[limits]\nmax_manifest_bytes = 100\nmax_page = 2\n", dir.path().join("data")),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");

    // The file's limit applies.
    let server = Server::start(&["--config", config], &[]).await;
    let c = client();
    let resp = c
        .put(format!("{}/v2/a/manifests/v1", server.url()))
        .header("content-type", OCI_MANIFEST)
        .body(vec![b' '; 200])
        .send()
        .await
        .expect("put");
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    assert!(dir.path().join("data/metadata.redb").exists(), "data_dir from the file");
    drop(server);

    // The environment overrides the file, a flag overrides the environment.
    let server = Server::start(
        &["--config", config, "--max-manifest-bytes", "4194304"],
        &[
            ("REGISTRY_MAX_MANIFEST_BYTES", "150"),
            ("REGISTRY_DATA_DIR", dir.path().join("data2").to_str().expect("utf8")),
        ],
    )
    .await;
    let (manifest, _) = push_image(&c, &server.url(), "a", "v1", "cfg").await;
    assert!(manifest.len() > 150, "the flag's limit won over the environment's");
    assert!(dir.path().join("data2/metadata.redb").exists(), "data_dir from the environment");
    // max_page = 2 from the file: a page of 5 is capped to 2.
    for t in ["v2", "v3"] {
        c.put(format!("{}/v2/a/manifests/{t}", server.url()))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("put");
    }
    let body: serde_json::Value =
        c.get(format!("{}/v2/a/tags/list?n=5", server.url())).send().await.expect("tags").json().await.expect("json");
    assert_eq!(body["tags"].as_array().expect("tags").len(), 2);
}

#[tokio::test]
async fn bad_configuration_fails_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nunknown_key = 1\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(["serve", "--config", config.to_str().expect("utf8")])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"), "{}", String::from_utf8_lossy(&out.stderr));
}
