//! Registry endpoints against real registries: distribution 2.8 (Debian's `docker-registry`)
//! open and behind Basic auth, and a second instance of this registry behind its token service;
//! health that says why (unreachable, wrong credentials, not a registry), secrets sealed and never
//! shown, bad input refused saying why, and only system admins.

use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::distribution::Distribution;
use testkit::harbor::Api;
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

async fn create(admin: &Api, body: Value) -> String {
    let created = admin.post("/registries", body).await.expect(StatusCode::CREATED, None);
    created.header("location").rsplit('/').next().expect("id").to_owned()
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_endpoints_are_checked_against_real_registries() {
    let reg = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("start");
    let peer = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("peer");
    let open = Distribution::open().await;
    let basic = Distribution::basic("mirror", "s3cret-pass").await;
    let admin = Api::new(&reg, Some(ADMIN));

    // Only system admins.
    let dev = Api::new(&reg, Some(("dev", "password1")));
    dev.get("/registries").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    dev.post("/registries", json!({"name": "x", "type": "harbor", "url": open.url()}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    Api::new(&reg, None).get("/registries").await.expect(StatusCode::UNAUTHORIZED, None);
    assert_eq!(
        admin.get("/replication/adapters").await.expect(StatusCode::OK, None).body,
        json!(["docker-registry", "harbor"])
    );

    // Bad input: refused saying why, nothing kept.
    for (body, says) in [
        (json!({"type": "harbor", "url": open.url()}), "name"),
        (json!({"name": "x", "type": "quay", "url": open.url()}), "quay"),
        (json!({"name": "x", "type": "harbor", "url": "http://169.254.169.254"}), "link-local"),
        (json!({"name": "x", "type": "harbor", "url": "ftp://example.com"}), "http"),
        (json!({"name": "x", "type": "harbor", "url": format!("{}/v2/library", open.url())}), "base URL"),
        (json!({"name": "x", "type": "harbor", "url": open.url(), "credential": {"type": "oauth"}}), "oauth"),
    ] {
        let refused =
            admin.post("/registries", body.clone()).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
        assert!(message(&refused.body).contains(says), "{body}: {}", refused.body);
    }
    assert_eq!(admin.get("/registries").await.expect(StatusCode::OK, None).body, json!([]));

    // Distribution, open: healthy.
    let open_id = create(&admin, json!({"name": "open", "type": "docker-registry", "url": open.url()})).await;
    let shown = admin.get(&format!("/registries/{open_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["status"], "healthy", "{}", shown.body);
    admin
        .post("/registries", json!({"name": "open", "type": "harbor", "url": open.url()}))
        .await
        .expect(StatusCode::CONFLICT, Some("CONFLICT"));

    // Distribution behind Basic: healthy with the password, unhealthy saying why without.
    let basic_id = create(
        &admin,
        json!({"name": "basic", "type": "docker-registry", "url": basic.url(),
            "credential": {"type": "basic", "access_key": "mirror", "access_secret": "s3cret-pass"}}),
    )
    .await;
    let shown = admin.get(&format!("/registries/{basic_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["status"], "healthy", "{}", shown.body);
    assert_eq!(shown.body["credential"]["access_key"], "mirror");
    assert_eq!(shown.body["credential"]["access_secret"], "*****", "never shown");
    let stored = reg.registry().metadata_store().policies("registry", Some(0)).await.expect("policies");
    assert!(stored.iter().all(|p| !p.body.contains("s3cret-pass")), "sealed at rest");
    admin
        .put(&format!("/registries/{basic_id}"), json!({"access_key": "mirror", "access_secret": "wrong"}))
        .await
        .expect(StatusCode::OK, None);
    let shown = admin.get(&format!("/registries/{basic_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["status"], "unhealthy");
    assert!(
        shown.body["status_message"].as_str().unwrap_or_default().contains("refuses the credentials of \"mirror\""),
        "{}",
        shown.body
    );
    let anonymous = admin
        .post("/registries/ping", json!({"type": "docker-registry", "url": basic.url()}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(message(&anonymous.body).contains("asks for credentials"), "{}", anonymous.body);
    // A ping of a stored endpoint with a new secret tries it without keeping it.
    admin
        .post("/registries/ping", json!({"id": basic_id.parse::<u64>().expect("id"), "access_secret": "s3cret-pass"}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(
        admin.get(&format!("/registries/{basic_id}")).await.expect(StatusCode::OK, None).body["status"],
        "unhealthy"
    );

    // Another instance of this registry: its token service, with an account and without.
    let peer_id = create(
        &admin,
        json!({"name": "peer", "type": "harbor", "url": peer.url(),
            "credential": {"type": "basic", "access_key": "dev", "access_secret": "password1"}}),
    )
    .await;
    let shown = admin.get(&format!("/registries/{peer_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["status"], "healthy", "{}", shown.body);
    let wrong = admin
        .post(
            "/registries/ping",
            json!({"type": "harbor", "url": peer.url(),
            "credential": {"type": "basic", "access_key": "dev", "access_secret": "nope"}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(message(&wrong.body).contains("token service refuses the credentials of \"dev\""), "{}", wrong.body);
    let info = admin.get(&format!("/registries/{peer_id}/info")).await.expect(StatusCode::OK, None);
    assert_eq!(info.body["type"], "harbor");

    // Unreachable, and not a registry at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let down = admin.post("/registries/ping", json!({"type": "harbor", "url": closed})).await;
    assert!(message(&down.expect(StatusCode::BAD_REQUEST, None).body).contains("cannot be reached"));
    let scanner = testkit::scanner::FixtureScanner::start(None, false).await;
    let not_registry = admin.post("/registries/ping", json!({"type": "harbor", "url": scanner.url()})).await;
    assert!(
        message(&not_registry.expect(StatusCode::BAD_REQUEST, None).body).contains("does not look like a registry")
    );

    // The list: each with its health; filtered; deleting one.
    let listed = admin.get("/registries").await.expect(StatusCode::OK, None);
    assert_eq!(listed.header("x-total-count"), "3");
    let healthy: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["status"] == "healthy")
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(healthy, ["open", "peer"]);
    let harbors = admin.get("/registries?q=type=harbor").await.expect(StatusCode::OK, None);
    assert_eq!(harbors.body.as_array().map(Vec::len), Some(1));
    admin.delete(&format!("/registries/{open_id}")).await.expect(StatusCode::OK, None);
    admin.get(&format!("/registries/{open_id}")).await.expect(StatusCode::NOT_FOUND, None);
    admin.get("/registries/nope").await.expect(StatusCode::BAD_REQUEST, None);

    open.stop().await;
    basic.stop().await;
    peer.stop().await;
    reg.stop().await;
}

/// A remote endpoint's session for `url` with `credential`.
fn remote(url: &str, credential: Option<(&str, &str)>) -> registry_platform::remote::client::Remote {
    let key = registry_auth::SecretKey::generate().expect("key");
    let mut body = json!({"name": "r", "type": "docker-registry", "url": url});
    if let Some((user, secret)) = credential {
        body["credential"] = json!({"type": "basic", "access_key": user, "access_secret": secret});
    }
    let mut endpoint = registry_platform::remote::Endpoint::default();
    endpoint.apply(serde_json::from_value(body).expect("input"), &key).expect("endpoint");
    registry_platform::remote::client::Remote::of(&endpoint, &key).expect("remote")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_copies_an_image_exactly_from_this_registry_to_distribution() {
    let reg = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("start");
    let basic = Distribution::basic("mirror", "s3cret-pass").await;
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let (_, digest) = push_image_as(&c, &base, "team/app", "v1", "copied", Some(&t)).await;

    let source = remote(&base, Some(ADMIN));
    let target = remote(&basic.url(), Some(("mirror", "s3cret-pass")));
    let (from, to) = (source.session().await.expect("session"), target.session().await.expect("session"));
    let manifest = from.manifest("team/app", "v1").await.expect("read").expect("found");
    assert_eq!(manifest.digest, digest);
    assert_eq!(from.manifest_digest("team/app", "v1").await.expect("head"), Some(digest.clone()));
    assert!(from.manifest("team/app", "nope").await.expect("read").is_none());
    let parsed: Value = serde_json::from_slice(&manifest.bytes).expect("json");
    let mut blobs = vec![parsed["config"]["digest"].as_str().expect("config").to_owned()];
    blobs.extend(
        parsed["layers"].as_array().expect("layers").iter().map(|l| l["digest"].as_str().expect("layer").to_owned()),
    );
    for blob in &blobs {
        let blob = registry_core::Digest::parse(blob).expect("digest");
        assert!(!to.has_blob("mirror/app", &blob).await.expect("head"));
        let bytes = from.blob("team/app", &blob).await.expect("get").bytes().await.expect("bytes");
        let size = bytes.len() as u64;
        to.push_blob("mirror/app", &blob, size, move || reqwest::Body::from(bytes)).await.expect("push");
        assert!(to.has_blob("mirror/app", &blob).await.expect("head"));
        assert!(to.mount("mirror/other", &blob, "mirror/app").await.expect("mount"), "mounted, not sent again");
    }
    to.put_manifest("mirror/app", "v1", &manifest.media_type, &manifest.bytes).await.expect("manifest");
    assert_eq!(to.manifest_digest("mirror/app", "v1").await.expect("head"), Some(digest.clone()), "the same bytes");
    assert_eq!(to.tags("mirror/app").await.expect("tags"), ["v1"]);
    assert_eq!(to.tags("mirror/none").await.expect("tags"), Vec::<String>::new());

    // The wrong password: each call says so.
    let refused =
        remote(&basic.url(), Some(("mirror", "wrong"))).session().await.expect("session").tags("mirror/app").await;
    let why = refused.expect_err("refused").0;
    assert!(why.contains("refuses the credentials of \"mirror\" for repository:mirror/app:pull"), "{why}");
    basic.stop().await;
    reg.stop().await;
}
