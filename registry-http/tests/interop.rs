//! Interoperability: distribution 2.8 (Debian's `docker-registry`) configured with our token
//! service as its realm and our token certificate as its root bundle accepts our tokens.

use std::process::Stdio;

use registry_auth::{Accounts, Role};
use registry_http::TestRegistry;
use testkit::*;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_accepts_our_tokens_by_x5c() {
    distribution_accepts_our_tokens(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_accepts_our_tokens_by_libtrust_kid() {
    distribution_accepts_our_tokens(true).await;
}

async fn distribution_accepts_our_tokens(libtrust_kid: bool) {
    let accounts = Accounts::in_memory();
    accounts.create_project("team", false).await.expect("project");
    accounts.add_user("dev", "password1", false).await.expect("user");
    accounts.add_member("team", "dev", Role::Developer, None).await.expect("member");
    accounts.add_user("outsider", "password1", false).await.expect("user");
    let mut builder = TestRegistry::builder().accounts(accounts).also_issue_for("distribution-test");
    if libtrust_kid {
        builder = builder.kid_format(registry_auth::KidFormat::Libtrust).x5c(false);
    }
    let tokens = builder.start().await.expect("start");

    let work = tempfile::tempdir().expect("tempdir");
    let bundle = work.path().join("token-root.pem");
    std::fs::write(&bundle, tokens.token_certificate_pem().expect("certificate")).expect("bundle");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = work.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: {}/auth/token\n    service: distribution-test\n    issuer: {}\n    rootcertbundle: {}\n",
            work.path().join("data").display(),
            tokens.url(),
            registry_http::token::ISSUER,
            bundle.display()
        ),
    )
    .expect("config");
    let mut distribution = tokio::process::Command::new("docker-registry")
        .args(["serve", config.to_str().expect("utf8")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("docker-registry starts (apt-get install -y docker-registry)");
    let mut log = BufReader::new(distribution.stderr.take().expect("stderr")).lines();
    loop {
        let line = log.next_line().await.expect("log").expect("docker-registry exited before listening");
        if line.contains("listening on") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

    let host = format!("127.0.0.1:{port}");
    let podman = Podman::with_test_image().await;
    let dev = podman.auth_file("dev");
    podman.run(&["login", "--tls-verify=false", "-u", "dev", "-p", "password1", &host], &dev).await;
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &format!("{host}/team/app:v1")], &dev).await;
    podman.run(&["rmi", "localhost/podtest:v1"], &dev).await;
    podman.run(&["pull", "--tls-verify=false", &format!("{host}/team/app:v1")], &dev).await;

    // The outsider's token grants nothing on team/app: distribution refuses the pull.
    let outsider = podman.auth_file("outsider");
    podman.run(&["login", "--tls-verify=false", "-u", "outsider", "-p", "password1", &host], &outsider).await;
    podman.fails(&["pull", "--tls-verify=false", &format!("{host}/team/app:v1")], &outsider).await;

    distribution.kill().await.expect("stop docker-registry");
    tokens.stop().await;
}
