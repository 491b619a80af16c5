//! The web portal end to end, in headless Chromium: the registry binary on its embedded default,
//! a user's path through the portal (`portal/e2e.mjs`, driven by playwright-core), podman and
//! skopeo beside it. Screenshots of each main page are left in `target/portal-screenshots`.
//!
//! Needs Debian's `chromium` and `playwright-core` (the README's test command installs both and
//! sets `REGISTRY_TEST_NODE_PATH` to the `node_modules` holding playwright-core).

use testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_registry");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_a_guest_in_the_portal() {
    let node_path = std::env::var("REGISTRY_TEST_NODE_PATH").unwrap_or_else(|_| {
        panic!("REGISTRY_TEST_NODE_PATH is not set: run scripts/test.sh, which installs playwright-core and chromium")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(BIN, &["--data-dir", dir.path().to_str().expect("utf8")], &[]).await;
    let line = server.startup.iter().find(|l| l.contains("created system administrator")).expect("first-start line");
    let password = line.split("password ").nth(1).and_then(|s| s.split_whitespace().next()).expect("password");

    let podman = Podman::with_test_image().await;
    let (args, env) = podman.command_line(&podman.auth_file("portal"));
    let podman_json =
        serde_json::json!({"args": args, "env": env.into_iter().collect::<std::collections::HashMap<_, _>>()});
    let screenshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/portal-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portal/e2e.mjs");
    // Images for skopeo: one over the 1 MiB quota the admin sets, one small.
    let (big, small) = (dir.path().join("big-layout"), dir.path().join("small-layout"));
    write_oci_layout_of(&big, "big", &[incompressible(2 << 20, 1)]);
    write_oci_layout_of(&small, "small", &[incompressible(1000, 2)]);

    // Charts and an image with a build history for the artifact views: a chart with a README
    // (hostile markup in it), values and dependencies; one whose README is over the limit.
    let c = client();
    let admin =
        testkit::harbor::Api { c: c.clone(), base: server.url(), creds: Some(("admin".into(), password.into())) };
    let public = serde_json::json!({"project_name": "helm", "metadata": {"public": "true"}});
    admin.post("/projects", public).await.expect(reqwest::StatusCode::CREATED, None);
    let scopes = ["repository:helm/demo:pull,push", "repository:helm/huge:pull,push", "repository:helm/app:pull,push"];
    let t = token(&c, &server.url(), Some(("admin", password)), &scopes).await;
    let chart = format!(
        "{}dependencies:\n- name: redis\n  version: 17.x\n  repository: https://charts.example/\n",
        testkit::helm::chart_yaml("demo", "1.2.3")
    );
    let readme = "# Demo chart\n\nA **demo** with [docs](https://example.com/docs) and [a trap](javascript:window.owned=true).\n\n\
        | Parameter | Default |\n|---|---|\n| `replicaCount` | `2` |\n\n```yaml\nreplicaCount: 2\n```\n\n\
        <script>window.owned = true</script>\n<img src=x onerror=\"window.owned=true\">\n";
    let archive = testkit::helm::chart_archive(
        "demo",
        &[("Chart.yaml", chart.as_bytes()), ("values.yaml", b"replicaCount: 2\n"), ("README.md", readme.as_bytes())],
    );
    let config = testkit::helm::chart_config("demo", "1.2.3");
    testkit::helm::push_chart(&c, &server.url(), "helm/demo", "1.2.3", &config, &archive, Some(&t)).await;
    let huge = testkit::helm::chart_archive(
        "huge",
        &[("Chart.yaml", testkit::helm::chart_yaml("huge", "0.1.0").as_bytes()), ("README.md", &vec![b'#'; 5 << 20])],
    );
    let config = testkit::helm::chart_config("huge", "0.1.0");
    testkit::helm::push_chart(&c, &server.url(), "helm/huge", "0.1.0", &config, &huge, Some(&t)).await;
    testkit::helm::push_image_with_history(&c, &server.url(), "helm/app", "v1", Some(&t)).await;

    // A scanner adapter for the scanning steps (fixture reports; it pulls what it scans).
    let scanner = testkit::scanner::FixtureScanner::start(None, false).await;
    // A directory for the last steps (signing in through LDAP).
    let slapd = testkit::ldap::Slapd::start().await;
    // And a provider for the very last (signing in through OIDC).
    let provider = testkit::oidc::OidcProvider::start(&[&format!("{}/c/oidc/callback", server.url())]).await;
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &node_path)
        .env("BASE_URL", server.url())
        .env("ADMIN_PASSWORD", password)
        .env("SCREENSHOTS", &screenshots)
        .env("PODMAN", podman_json.to_string())
        .env("BIG_LAYOUT", &big)
        .env("SMALL_LAYOUT", &small)
        .env("SCANNER_URL", scanner.url())
        .env("LDAP_URL", &slapd.url)
        .env("LDAP_ROOT_DN", testkit::ldap::Slapd::ROOT_DN)
        .env("LDAP_ROOT_PASSWORD", testkit::ldap::Slapd::ROOT_PASSWORD)
        .env("LDAP_BASE", testkit::ldap::BASE)
        .env("OIDC_ISSUER", &provider.issuer)
        .env("OIDC_CLIENT_ID", testkit::oidc::OidcProvider::CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", testkit::oidc::OidcProvider::CLIENT_SECRET)
        .env("HOSTILE_TAG", "<img src=x onerror=alert(1)>")
        .env("HOSTILE_TEXT", "<img src=x onerror=alert(1)> & \"quotes\"")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the portal's end-to-end steps failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every step held"), "{stdout}");
    for page in [
        "01-login",
        "03-repository",
        "05-robot-secret",
        "06g-vulnerabilities",
        "08-dashboard",
        "11-guest-repository",
        "15-chart-readme",
        "16-image-history",
    ] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "screenshot {page}");
    }
    provider.stop().await;
    server.stop().await;
}
