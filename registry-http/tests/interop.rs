//! Interoperability: distribution 2.8 (Debian's `docker-registry`) configured with our token
//! service as its realm and our token certificate as its root bundle accepts our tokens.

use registry_auth::{Accounts, Role};
use registry_http::TestRegistry;
use testkit::*;

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

    let certificate = tokens.token_certificate_pem().expect("certificate");
    let distribution = testkit::distribution::Distribution::start(|dir| {
        let bundle = dir.join("token-root.pem");
        std::fs::write(&bundle, certificate).expect("bundle");
        format!(
            "auth:\n  token:\n    realm: {}/auth/token\n    service: distribution-test\n    issuer: {}\n    rootcertbundle: {}\n",
            tokens.url(),
            registry_http::token::ISSUER,
            bundle.display()
        )
    })
    .await;
    let host = distribution.host.clone();
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

    distribution.stop().await;
    tokens.stop().await;
}
