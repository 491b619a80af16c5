//! OpenID Connect, against a real provider (the npm package oidc-provider, started by the test):
//! its discovery tried by `POST /system/oidc/ping` before anyone relies on it, saying why a
//! provider cannot be used, and only for system admins.

use reqwest::StatusCode;
use serde_json::json;
use testkit::harbor::Api;
use testkit::oidc::OidcProvider;
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_discovery_is_tried() {
    let provider = OidcProvider::start(&["http://127.0.0.1:1/c/oidc/callback"]).await;
    let reg = harbor_registry().await;
    let admin = Api::new(&reg, Some(ADMIN));

    admin
        .post("/system/oidc/ping", json!({"url": provider.issuer, "verify_cert": true}))
        .await
        .expect(StatusCode::OK, None);
    admin.post("/system/oidc/ping", json!({"url": format!("{}/", provider.issuer)})).await.expect(StatusCode::OK, None);

    // Why a provider cannot be used: not a URL, nothing listening, not a provider.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    for (url, says) in [
        ("ldap://127.0.0.1:1".to_owned(), "https://".to_owned()),
        (format!("http://127.0.0.1:{closed}"), format!("http://127.0.0.1:{closed}")),
        (format!("{}/not-here", provider.issuer), "discovery failed".to_owned()),
    ] {
        let refused = admin.post("/system/oidc/ping", json!({"url": url})).await.expect(StatusCode::BAD_REQUEST, None);
        assert!(refused.body.to_string().contains(&says), "{url}: {}", refused.body);
    }
    admin.post("/system/oidc/ping", json!({"verify_cert": true})).await.expect(StatusCode::BAD_REQUEST, None);

    // System admins only.
    admin
        .post("/users", json!({"username": "ursula", "password": "Password123", "email": "u@example.org"}))
        .await
        .expect(StatusCode::CREATED, None);
    let user = Api::new(&reg, Some(("ursula", "Password123")));
    user.post("/system/oidc/ping", json!({"url": provider.issuer})).await.expect(StatusCode::FORBIDDEN, None);
    Api::new(&reg, None)
        .post("/system/oidc/ping", json!({"url": provider.issuer}))
        .await
        .expect(StatusCode::UNAUTHORIZED, None);
    provider.stop().await;
    reg.stop().await;
}
