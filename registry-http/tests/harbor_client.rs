//! A real Harbor client library against the registry: `tests/harbor/client.py` drives projects,
//! users, passwords, members, v2 robots, system info, statistics and GC history through
//! `harborapi` (PyPI), which validates every answer against Harbor's models.
//!
//! The README's test command installs it in a virtual environment and points
//! `REGISTRY_TEST_PYTHON` at its interpreter.

use registry_http::TestRegistry;
use testkit::{client, push_image_as, run, token};

fn python() -> String {
    std::env::var("REGISTRY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/registry-tools/harbor-venv/bin/python")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harborapi_scripts_work_against_this_registry() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "Admin-Password-1", true).await.expect("admin");
    accounts.create_project("library", true).await.expect("library");
    // An image with a cosign signature (by the tag scheme), and a scanner adapter.
    let c = client();
    let t = token(&c, &reg.url(), Some(("admin", "Admin-Password-1")), &["repository:library/signed:pull,push"]).await;
    let (_, signed) = push_image_as(&c, &reg.url(), "library/signed", "v1", "signed", Some(&t)).await;
    let signature_tag = format!("sha256-{}.sig", signed.hex());
    push_image_as(&c, &reg.url(), "library/signed", &signature_tag, "signature", Some(&t)).await;
    // An image with a build history and a Helm chart, for the artifact kinds.
    let scopes = ["repository:library/built:pull,push", "repository:library/demo:pull,push"];
    let t = token(&c, &reg.url(), Some(("admin", "Admin-Password-1")), &scopes).await;
    testkit::helm::push_image_with_history(&c, &reg.url(), "library/built", "v1", Some(&t)).await;
    let chart =
        testkit::helm::chart_archive("demo", &[("Chart.yaml", testkit::helm::chart_yaml("demo", "1.0.0").as_bytes())]);
    let config = testkit::helm::chart_config("demo", "1.0.0");
    testkit::helm::push_chart(&c, &reg.url(), "library/demo", "1.0.0", &config, &chart, Some(&t)).await;
    let scanner = testkit::scanner::FixtureScanner::start(None, false).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harbor/client.py");
    let python = python();
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run the README's test command (bash scripts/test.sh), which installs harborapi"
    );
    let slapd = testkit::ldap::Slapd::start().await;
    let (root_dn, root_password, base) =
        (testkit::ldap::Slapd::ROOT_DN, testkit::ldap::Slapd::ROOT_PASSWORD, testkit::ldap::BASE);
    let args =
        [script, &reg.url(), "admin", "Admin-Password-1", scanner.url(), &slapd.url, root_dn, root_password, base];
    let out = run(&python, &args, &[]).await;
    assert!(out.contains("every call answered as Harbor would"), "{out}");
}
