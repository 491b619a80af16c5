//! The `registry` binary: configuration, logs, readiness and graceful shutdown.

use reqwest::StatusCode;
use testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_registry");
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Writes `registry.toml` in `dir`: `data_dir` is `dir/data`, then `rest`; returns its path.
fn config_file(dir: &std::path::Path, rest: &str) -> String {
    let path = dir.join("registry.toml");
    std::fs::write(&path, format!("data_dir = {:?}\n{rest}", dir.join("data"))).expect("config");
    path.to_str().expect("utf8").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_by_default_logs_each_request_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(BIN, &["--data-dir", dir.path().to_str().expect("utf8")], &[]).await;
    let base = server.url();
    let c = client();

    // No default password: the first start prints a random one, once.
    let line = server.startup.iter().find(|l| l.contains("created system administrator")).expect("first-start line");
    let password =
        line.split("password ").nth(1).and_then(|s| s.split_whitespace().next()).expect("password").to_owned();
    assert!(password.len() >= 20);

    // Anonymous: the challenge names the built-in token service.
    let resp = c.get(format!("{base}/v2/")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&resp, "www-authenticate"), format!("Bearer realm=\"{base}/auth/token\",service=\"registry\""));
    let line = server.log_line(&["request", "method=GET", "path=/v2/", "status=401"]).await;
    assert!(line.contains("duration_ms="), "{line}");
    assert_eq!(get_token(&c, &base, Some(("admin", "not the password")), &[]).await.status(), StatusCode::UNAUTHORIZED);

    // The admin pushes to the public `library` project created at the first start.
    let t = token(&c, &base, Some(("admin", &password)), &["repository:library/app:pull,push"]).await;
    push_image_as(&c, &base, "library/app", "v1", "b", Some(&t)).await;
    let line = server.log_line(&["method=PUT", "path=/v2/library/app/manifests/v1", "status=201"]).await;
    assert!(line.contains("bytes="), "{line}");
    let anon = token(&c, &base, None, &["repository:library/app:pull"]).await;
    assert_eq!(
        c.get(format!("{base}/v2/library/app/manifests/v1")).bearer_auth(&anon).send().await.expect("pull").status(),
        StatusCode::OK
    );

    // An upload in flight when SIGTERM arrives still completes.
    let resp = c.post(format!("{base}/v2/library/app/blobs/uploads/")).bearer_auth(&t).send().await.expect("post");
    let location = header(&resp, "location");
    let mut s = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    // `Expect: 100-continue`: the server answers 100 once the handler reads the body, so the
    // request is known to be in flight before SIGTERM.
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {t}\r\nContent-Length: 2000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.expect("read the interim response");
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));
    s.write_all(&[1u8; 1000]).await.expect("write");
    server.terminate();
    server.log_line(&["SIGTERM received"]).await;
    s.write_all(&[1u8; 1000]).await.expect("write the rest after SIGTERM");
    let mut response = String::new();
    s.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 202"), "in-flight request finished: {response}");
    let status = server.child.wait().await.expect("wait");
    assert!(status.success(), "clean exit: {status}");
    for entry in ["blobs", "uploads", "tmp", "metadata.redb", "token-key.pem"] {
        assert!(dir.path().join(entry).exists(), "{entry}");
    }
    assert!(!dir.path().join("admin.sock").exists(), "the admin socket goes with the server");

    // A restart keeps the accounts and the key: the old password and token still work, and no
    // new password is printed.
    let server = Server::start(BIN, &["--data-dir", dir.path().to_str().expect("utf8")], &[]).await;
    assert!(!server.startup.iter().any(|l| l.contains("created system administrator")));
    let resp =
        c.get(format!("{}/v2/library/app/manifests/v1", server.url())).bearer_auth(&t).send().await.expect("pull");
    assert_eq!(resp.status(), StatusCode::OK, "tokens survive a restart (same key)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_subcommands_then_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");
    let cli = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--data-dir".to_string(), data.to_string()]);
        let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        async move {
            let out = Command::new(env!("CARGO_BIN_EXE_registry")).args(&all).envs(envs).output().await.expect("run");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
            )
        }
    };
    assert!(cli(&["user", "add", "dana"], &[("REGISTRY_USER_PASSWORD", "danapassword")]).await.0);
    assert!(cli(&["project", "create", "team"], &[]).await.0);
    assert!(cli(&["member", "add", "team", "dana", "developer"], &[]).await.0);
    let (ok, out) = cli(&["robot", "create", "team", "ci", "--permission", "app:pull"], &[]).await;
    assert!(ok, "{out}");
    let secret = out.split("(shown once): ").nth(1).expect("secret").trim().to_owned();
    let (ok, out) = cli(&["member", "add", "team", "dana", "wizard"], &[]).await;
    assert!(!ok && out.contains("unknown role"), "{out}");
    let (ok, out) = cli(&["project", "list"], &[]).await;
    assert!(ok && out.contains("team\tprivate"), "{out}");

    let server = Server::start(BIN, &["--data-dir", data], &[("REGISTRY_ADMIN_PASSWORD", "adminpassword")]).await;
    let (c, base) = (client(), server.url());
    let t = token(&c, &base, Some(("dana", "danapassword")), &["repository:team/app:pull,push,delete"]).await;
    push_image_as(&c, &base, "team/app", "v1", "d", Some(&t)).await;
    let robot = token(&c, &base, Some(("robot$team+ci", &secret)), &["repository:team/app:pull"]).await;
    assert_eq!(
        c.get(format!("{base}/v2/team/app/manifests/v1")).bearer_auth(&robot).send().await.expect("pull").status(),
        StatusCode::OK
    );
    // While the server runs, the commands reach it through its admin socket.
    let (ok, out) = cli(&["user", "list"], &[]).await;
    assert!(ok && out.contains("dana") && out.contains("admin"), "{out}");
    let (ok, out) = cli(&["user", "passwd", "dana"], &[("REGISTRY_USER_PASSWORD", "newdanapassword")]).await;
    assert!(ok, "{out}");
    assert_eq!(get_token(&c, &base, Some(("dana", "danapassword")), &[]).await.status(), StatusCode::UNAUTHORIZED);
    token(&c, &base, Some(("dana", "newdanapassword")), &[]).await;
    let (ok, out) = cli(&["user", "passwd", "admin"], &[]).await;
    assert!(ok, "{out}");
    let reset = out.split("(shown once): ").nth(1).expect("a new password").trim().to_owned();
    token(&c, &base, Some(("admin", &reset)), &[]).await;
    let (ok, out) = cli(&["user", "disable", "dana"], &[]).await;
    assert!(ok, "{out}");
    assert_eq!(get_token(&c, &base, Some(("dana", "newdanapassword")), &[]).await.status(), StatusCode::UNAUTHORIZED);
    let (ok, out) = cli(&["project", "remove", "team"], &[]).await;
    assert!(!ok && out.contains("holds 1 repositories"), "refused with the reason: {out}");
    let (ok, out) = cli(&["robot", "list", "team"], &[]).await;
    assert!(ok && out.contains("robot$team+ci"), "{out}");
    server.stop().await;
    // And on the stopped server's data directory, the same commands in this process.
    let (ok, out) = cli(&["user", "enable", "dana"], &[]).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&["member", "list", "team"], &[]).await;
    assert!(ok && out.contains("dana\tdeveloper"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_environment_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), "[auth]\nenabled = false\n[limits]\nmax_manifest_bytes = 100\nmax_page = 2\n");
    let config = config.as_str();

    // The file's limit applies.
    let server = Server::start(BIN, &["--config", config], &[]).await;
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
        BIN,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_token_server_and_a_registry_holding_only_public_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens_dir = dir.path().join("tokens");
    let tokens = Server::start_command(
        BIN,
        "token-server",
        &["--data-dir", tokens_dir.to_str().expect("utf8")],
        &[("REGISTRY_ADMIN_PASSWORD", "adminpassword")],
    )
    .await;
    let c = client();
    let jwks = c.get(format!("{}/auth/jwks", tokens.url())).send().await.expect("jwks").text().await.expect("body");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).expect("jwks file");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[auth]\nrealm = \"{}/auth/token\"\ntrusted_keys = {:?}\n",
            dir.path().join("registry"),
            tokens.url(),
            jwks_file
        ),
    )
    .expect("config");
    let registry = Server::start(BIN, &["--config", config.to_str().expect("utf8")], &[]).await;
    let base = registry.url();

    // The challenge sends clients to the token server; its tokens open the registry.
    let resp = c.get(format!("{base}/v2/")).send().await.expect("challenge");
    assert!(header(&resp, "www-authenticate").contains(&format!("realm=\"{}/auth/token\"", tokens.url())));
    let t = token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/app:pull,push"]).await;
    push_image_as(&c, &base, "library/app", "v1", "ext", Some(&t)).await;
    // A token from another issuer's key is refused.
    let stranger = registry_auth::TokenIssuer::new(
        registry_auth::TokenKey::generate().expect("key"),
        registry_http::token::ISSUER,
        std::time::Duration::from_secs(60),
    )
    .issue("admin", "registry", &[registry_core::Scope::parse("repository:library/app:pull").expect("scope")])
    .expect("issue")
    .0;
    let resp = c.get(format!("{base}/v2/library/app/manifests/v1")).bearer_auth(&stranger).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The registry holds no accounts and no signing key: only the public keys.
    assert!(!dir.path().join("registry").join("token-key.pem").exists(), "no signing key at the registry");
    assert!(tokens_dir.join("token-key.pem").exists(), "the signing key is at the token server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n[auth]\nalgorithm = \"RS256\"\n", dir.path().join("data")))
        .expect("config");
    let server = Server::start(
        BIN,
        &["--config", config.to_str().expect("utf8")],
        &[("REGISTRY_ADMIN_PASSWORD", "adminpassword")],
    )
    .await;
    let (c, base) = (client(), server.url());
    let t = token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/rsa:pull,push"]).await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.split('.').next().expect("header"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "RS256");
    push_image_as(&c, &base, "library/rsa", "v1", "rsa", Some(&t)).await;
    let jwks: serde_json::Value =
        c.get(format!("{base}/auth/jwks")).send().await.expect("jwks").json().await.expect("json");
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
}

/// `registry gc` on a stopped server's data directory: the dry run reports, the run frees, and a
/// running server's directory is refused with a pointer to the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_subcommand_dry_run_then_collect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n[auth]\nenabled = false\n[gc]\ngrace_secs = 0\n", dir.path().join("data")),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let server = Server::start(BIN, &["--config", config], &[]).await;
    let c = client();
    push_image(&c, &server.url(), "app", "v1", "kept").await;
    let orphan = push_blob(&c, &server.url(), "app", b"an orphan of eighteen").await;
    let gc = |extra: &[&str]| {
        let mut args = vec!["gc", "--config", config];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_registry")).args(args).env_remove("RUST_LOG").output()
    };
    let report = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = text.lines().rev().find(|l| l.starts_with('{')).expect("a JSON report");
        serde_json::from_str(json).expect("json")
    };
    // While it runs, through its admin socket (with its own grace period).
    let live = report(gc(&["--dry-run"]).await.expect("run"));
    assert_eq!((live["dry_run"].as_bool(), live["blobs_deleted"].as_u64()), (Some(true), Some(1)), "{live}");
    let refused = gc(&["--dry-run", "--grace-secs", "5"]).await.expect("run");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("grace_secs"));
    server.stop().await;

    let dry = report(gc(&["--dry-run"]).await.expect("run"));
    assert_eq!((dry["dry_run"].as_bool(), dry["blobs_deleted"].as_u64()), (Some(true), Some(1)), "{dry}");
    assert_eq!(dry["bytes_freed"], 21);
    let done = report(gc(&[]).await.expect("run"));
    assert_eq!((done["dry_run"].as_bool(), done["blobs_deleted"].as_u64()), (Some(false), Some(1)), "{done}");
    let again = report(gc(&[]).await.expect("run"));
    assert_eq!(again["blobs_deleted"], 0, "nothing left to free");

    // The image survived: serve again and pull it.
    let server = Server::start(BIN, &["--config", config], &[]).await;
    let resp = c
        .get(format!("{}/v2/app/manifests/v1", server.url()))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("pull");
    assert_eq!(resp.status(), StatusCode::OK);
    let gone = c.head(format!("{}/v2/app/blobs/{orphan}", server.url())).send().await.expect("head");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    server.stop().await;

    // On a schedule while serving, reported in the log.
    let scheduled = dir.path().join("scheduled.toml");
    std::fs::write(
        &scheduled,
        format!("data_dir = {:?}\n[auth]\nenabled = false\n[gc]\ninterval_secs = 1\n", dir.path().join("data")),
    )
    .expect("config");
    let mut server = Server::start(BIN, &["--config", scheduled.to_str().expect("utf8")], &[]).await;
    let line = server.log_line(&["garbage collection finished", "blobs_deleted=0"]).await;
    assert!(line.contains("bytes_freed=0") && line.contains("duration_ms="), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_as_soon_as_it_says_it_serves_stops_it_cleanly() {
    // The signal handlers are in place before the serving line: a SIGTERM sent the moment it
    // appears is a clean stop, never the default action's kill (which a loaded CI machine hit).
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_owned();
    for _ in 0..10 {
        Server::start(BIN, &["--data-dir", &data], &[("REGISTRY_ADMIN_PASSWORD", "a-long-enough-password")])
            .await
            .stop()
            .await;
    }
}

/// The bytes of `file` held in the page cache, as util-linux's `fincore` counts them.
fn cached_bytes(file: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(file)
        .output()
        .expect("fincore (util-linux)");
    assert!(out.status.success(), "fincore: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("fincore's count")
}

/// The one file under `dir` whose name holds `hex` (a blob's file in the data directory).
fn file_named(dir: &std::path::Path, hex: &str) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").map(|e| e.expect("entry")) {
            let path = entry.path();
            match entry.file_type().expect("type").is_dir() {
                true => dirs.push(path),
                false if entry.file_name().to_string_lossy().contains(hex) => found.push(path),
                false => {}
            }
        }
    }
    assert_eq!(found.len(), 1, "one file for {hex}: {found:?}");
    found.remove(0)
}

/// Whether the filesystem holding `dir` takes `O_DIRECT` (tmpfs does not).
fn direct_io_works(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("o_direct_probe");
    let opened = std::fs::OpenOptions::new().create(true).write(true).custom_flags(libc::O_DIRECT).open(&probe);
    let _ = std::fs::remove_file(&probe);
    opened.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_allocators_figures_and_buffered_writes_keep_a_push_in_the_page_cache() {
    // A layer of 8 MiB and a bit: eight whole blocks for the direct path, and a tail.
    let layer: Vec<u8> = (0..8 * 1024 * 1024 + 5).map(|i: u32| (i % 251) as u8).collect();
    let c = client();
    for buffered in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_file(
            dir.path(),
            &format!("[auth]\nenabled = false\n[metrics]\nenabled = true\n[storage]\nbuffered_writes = {buffered}\n"),
        );
        let server = Server::start(BIN, &["--config", &config], &[]).await;
        let digest = push_blob(&c, &server.url(), "a", &layer).await;
        // Before any pull reads it: buffered, the pushed bytes stay in the page cache (a pull
        // right after reads memory); by default they went past it, all but the last page.
        let cached = cached_bytes(&file_named(&dir.path().join("data"), digest.hex()));
        match buffered {
            true => assert!(cached >= layer.len() as u64 / 2, "buffered: {cached} bytes cached"),
            false if direct_io_works(dir.path()) => assert!(cached <= 64 * 1024, "direct: {cached} bytes cached"),
            false => {}
        }
        let pulled = c.get(format!("{}/v2/a/blobs/{digest}", server.url())).send().await.expect("pull");
        assert!(pulled.bytes().await.expect("body").as_ref() == &layer[..], "the layer pulled back whole");

        let text = c.get(format!("{}/metrics", server.url())).send().await.expect("scrape").text().await.expect("text");
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse::<f64>().ok())
                })
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        let (allocated, resident) =
            (value("registry_allocator_allocated_bytes"), value("registry_allocator_resident_bytes"));
        assert!(allocated > 100_000.0, "jemalloc counts the server's heap: {allocated}");
        assert!(resident >= allocated, "resident {resident} covers allocated {allocated}");
    }
}
