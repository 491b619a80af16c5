//! HTTPS with a certificate made at test time: real clients verify it (no --tls-verify=false).

use registry_auth::{Accounts, Role};
use registry_http::TestRegistry;
use reqwest::StatusCode;
use testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_and_skopeo_over_verified_https() {
    install_crypto_provider();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("cert");
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let tls = registry_http::TlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("tls config");

    let accounts = Accounts::in_memory();
    accounts.create_project("team", false).await.expect("project");
    accounts.add_user("dev", "password1", false).await.expect("user");
    accounts.add_member("team", "dev", Role::Developer, None).await.expect("member");
    let reg = TestRegistry::builder().accounts(accounts).tls(tls).start().await.expect("start");
    let (host, base) = (reg.host(), reg.url());
    assert!(base.starts_with("https://"));

    // reqwest trusting the certificate: the challenge sends clients to an https realm.
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let resp = c.get(format!("{base}/v2/")).send().await.expect("https");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&resp, "www-authenticate").contains(&format!("realm=\"https://{host}/auth/token\"")));
    // Without trusting it, the handshake fails; plain HTTP on the TLS port gets no answer.
    assert!(client().get(format!("{base}/v2/")).send().await.is_err(), "untrusted certificate refused");
    assert!(client().get(format!("http://{host}/v2/")).send().await.is_err(), "no plain HTTP on the TLS port");

    // podman and skopeo trust it through a certificate directory, as /etc/containers/certs.d.
    let podman = Podman::with_test_image().await;
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::write(certs.path().join("ca.crt"), &cert_pem).expect("ca.crt");
    let cert_dir = certs.path().to_str().expect("utf8");
    let auth = podman.auth_file("dev");
    podman.run(&["login", "--cert-dir", cert_dir, "-u", "dev", "-p", "password1", &host], &auth).await;
    podman.run(&["push", "--cert-dir", cert_dir, "localhost/podtest:v1", &format!("{host}/team/app:v1")], &auth).await;
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().expect("utf8"))];
    let inspect =
        run("skopeo", &["inspect", "--cert-dir", cert_dir, &format!("docker://{host}/team/app:v1")], &env).await;
    assert!(inspect.contains("\"Digest\""), "{inspect}");
    // Without the certificate directory, verification fails.
    run_failing("skopeo", &["inspect", &format!("docker://{host}/team/app:v1")], &env).await;
    reg.stop().await;
}

#[tokio::test]
async fn portal_sessions_over_https_are_secure_cookies() {
    install_crypto_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let tls = registry_http::TlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("tls config");
    let accounts = Accounts::in_memory();
    accounts.add_user("dev", "password1", false).await.expect("user");
    let reg = TestRegistry::builder().accounts(accounts).tls(tls).portal(true).start().await.expect("start");
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let resp = c
        .post(format!("{}/c/login", reg.url()))
        .json(&serde_json::json!({"principal": "dev", "password": "password1"}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = header(&resp, "set-cookie");
    assert!(cookie.starts_with("sid=") && cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    reg.stop().await;
}
