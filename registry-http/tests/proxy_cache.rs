//! Proxy-cache projects in front of distribution 2.8 (behind nginx, whose access log counts the
//! upstream's requests): a cold pull is served from the upstream and cached, concurrent cold
//! pulls of one blob fetch it once, pulls go on from the cache when the upstream is down, pushes
//! are refused saying why, and bad bindings are refused.

use std::time::Duration;

use registry_core::{Digest, Reference, RepositoryName};
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::json;
use testkit::distribution::Distribution;
use testkit::harbor::Api;
use testkit::proxy::{Proxy, reserve_port};
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

/// Pushes an image of one layer to distribution as `repo:tag`; its manifest's digest and the
/// layer's.
async fn upstream_image(c: &reqwest::Client, base: &str, repo: &str, tag: &str, layer: &[u8]) -> (Digest, Digest) {
    let manifest = push_layer_image(c, base, repo, tag, layer, None).await;
    (Digest::sha256_of(manifest.as_bytes()), Digest::sha256_of(layer))
}

/// The registry endpoint `endpoint` and a proxy-cache project `name` in front of it.
async fn proxy_project(admin: &Api, name: &str, endpoint: serde_json::Value) {
    let registry_id = admin.post("/registries", endpoint).await.expect(StatusCode::CREATED, None).id();
    admin
        .post("/projects", json!({"project_name": name, "registry_id": registry_id}))
        .await
        .expect(StatusCode::CREATED, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_project_caches_what_it_serves_from_its_upstream() {
    let reg = harbor_registry().await;
    let upstream = Distribution::open().await;
    let front = Proxy::start(reserve_port(), std::slice::from_ref(&upstream.host)).await;
    let c = client();
    let (v1, _) = upstream_image(&c, &upstream.url(), "mirror/app", "v1", b"a layer from upstream").await;
    let admin = Api::new(&reg, Some(ADMIN));
    let created = admin
        .post("/registries", json!({"name": "upstream", "type": "docker-registry", "url": front.url()}))
        .await
        .expect(StatusCode::CREATED, None);
    let registry_id = created.id();

    // Bad bindings: refused saying why.
    let missing = admin.post("/projects", json!({"project_name": "nope", "registry_id": 999})).await;
    assert!(missing.expect(StatusCode::BAD_REQUEST, None).body.to_string().contains("no such registry"));
    let sneaky = admin.post("/projects", json!({"project_name": "nope", "metadata": {"registry_id": "1"}})).await;
    assert!(sneaky.expect(StatusCode::BAD_REQUEST, None).body.to_string().contains("registry_id is not metadata"));
    admin
        .post("/projects", json!({"project_name": "hub", "registry_id": registry_id, "metadata": {"public": "true"}}))
        .await
        .expect(StatusCode::CREATED, None);
    assert_eq!(admin.get("/projects/hub").await.expect(StatusCode::OK, None).body["registry_id"], registry_id);

    // A cold pull: the upstream's manifest and blobs, byte for byte.
    let base = reg.url();
    let t = token(&c, &base, Some(ADMIN), &["repository:hub/mirror/app:pull,push"]).await;
    let cold = c
        .get(format!("{base}/v2/hub/mirror/app/manifests/v1"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(cold.status(), StatusCode::OK);
    assert_eq!(cold.headers()["docker-content-digest"].to_str().expect("digest"), v1.to_string());
    let bytes = cold.bytes().await.expect("bytes");
    assert_eq!(Digest::sha256_of(&bytes), v1, "the upstream's bytes");
    let got: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let digests: Vec<Digest> = std::iter::once(&got["config"])
        .chain(got["layers"].as_array().expect("layers"))
        .map(|d| Digest::parse(d["digest"].as_str().expect("digest")).expect("digest"))
        .collect();
    for d in &digests {
        let bytes = c
            .get(format!("{base}/v2/hub/mirror/app/blobs/{d}"))
            .bearer_auth(&t)
            .send()
            .await
            .expect("blob")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&Digest::sha256_of(&bytes), d, "the blob's bytes");
    }
    // Cached: the manifest lands once its blobs have.
    let name = RepositoryName::parse("hub/mirror/app").expect("name");
    let tag = Reference::parse("v1").expect("tag");
    let mut cached = None;
    for _ in 0..500 {
        if let Ok(record) = reg.registry().stat_manifest(&name, &tag).await {
            cached = Some(record.digest);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cached, Some(v1.clone()), "cached under its tag with the upstream's digest");

    // Pushes are refused, saying why.
    let refused =
        c.post(format!("{base}/v2/hub/mirror/app/blobs/uploads/")).bearer_auth(&t).send().await.expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("proxy cache"), "{body}");

    // Ten concurrent cold pulls of one big blob: the upstream serves it once.
    let big = incompressible(4 << 20, 7);
    let (_, layer) = upstream_image(&c, &upstream.url(), "mirror/big", "v1", &big).await;
    let t = token(&c, &base, Some(ADMIN), &["repository:hub/mirror/big:pull"]).await;
    get_json(&c, &format!("{base}/v2/hub/mirror/big/manifests/v1"), Some(&t)).await;
    let pulls = (0..10).map(|_| {
        let (c, url, t) = (c.clone(), format!("{base}/v2/hub/mirror/big/blobs/{layer}"), t.clone());
        tokio::spawn(async move { c.get(url).bearer_auth(t).send().await.expect("get").bytes().await.expect("bytes") })
    });
    for pull in futures::future::join_all(pulls).await {
        assert_eq!(Digest::sha256_of(&pull.expect("pull")), layer, "every pull gets the whole blob");
    }
    let fetched =
        front.access_log().lines().filter(|l| l.starts_with(&format!("GET /v2/mirror/big/blobs/{layer}"))).count();
    assert_eq!(fetched, 1, "one fetch from the upstream:\n{}", front.access_log());

    // The endpoint cannot go while a project fronts it.
    admin.delete(&format!("/registries/{registry_id}")).await.expect(StatusCode::PRECONDITION_FAILED, None);

    // The upstream down: the cache serves what it holds.
    front.stop().await;
    let t = token(&c, &base, Some(ADMIN), &["repository:hub/mirror/app:pull"]).await;
    let again = c
        .get(format!("{base}/v2/hub/mirror/app/manifests/v1"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["docker-content-digest"].to_str().expect("digest"), v1.to_string());
    for d in &digests {
        let r = c.get(format!("{base}/v2/hub/mirror/app/blobs/{d}")).bearer_auth(&t).send().await.expect("blob");
        assert_eq!(r.status(), StatusCode::OK);
    }
    upstream.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_pulled_alone_is_cached_with_its_blobs_from_another_instance() {
    let reg = harbor_registry().await;
    let peer = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("peer");
    let c = client();
    let t = token(&c, &peer.url(), Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let (_, v1) = push_image_as(&c, &peer.url(), "team/app", "v1", "peer", Some(&t)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    proxy_project(
        &admin,
        "cache",
        json!({"name": "peer", "type": "harbor", "url": peer.url(),
                "credential": {"type": "basic", "access_key": "admin", "access_secret": "adminpassword"}}),
    )
    .await;

    // Only the manifest is pulled (a client holding the layers): the cache fetches the rest.
    let base = reg.url();
    let t = token(&c, &base, Some(ADMIN), &["repository:cache/team/app:pull"]).await;
    // As podman does: the tag's digest by HEAD, then the manifest by digest.
    let head = c
        .head(format!("{base}/v2/cache/team/app/manifests/v1"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    let digest = head.headers()["docker-content-digest"].to_str().expect("digest").to_owned();
    let got = c
        .get(format!("{base}/v2/cache/team/app/manifests/{digest}"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), StatusCode::OK);
    let name = RepositoryName::parse("cache/team/app").expect("name");
    let tag = Reference::parse("v1").expect("tag");
    let mut cached = None;
    for _ in 0..500 {
        if let Ok(record) = reg.registry().stat_manifest(&name, &tag).await {
            cached = Some(record.digest);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cached, Some(v1));
    let listed = admin.get("/projects/cache/repositories").await.expect(StatusCode::OK, None);
    assert_eq!(listed.body[0]["name"], "cache/team/app", "{}", listed.body);
    peer.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pulls_through_its_mirror_setting_from_the_proxy_cache() {
    let reg = harbor_registry().await;
    let peer = TestRegistry::start_with_auth(harbor_accounts().await).await.expect("peer");
    let mut podman = Podman::with_test_image().await;
    let auth = podman.auth_file("admin");
    podman.run(&["login", "--tls-verify=false", "-u", "admin", "-p", "adminpassword", &peer.host()], &auth).await;
    podman.run(&["login", "--tls-verify=false", "-u", "admin", "-p", "adminpassword", &reg.host()], &auth).await;
    let image = format!("{}/team/app:v1", peer.host());
    podman.run(&["tag", "localhost/podtest:v1", &image], &auth).await;
    podman.run(&["push", "--tls-verify=false", &image], &auth).await;
    podman.run(&["rmi", &image, "localhost/podtest:v1"], &auth).await;

    let admin = Api::new(&reg, Some(ADMIN));
    proxy_project(
        &admin,
        "mirror",
        json!({"name": "peer", "type": "harbor", "url": peer.url(),
                "credential": {"type": "basic", "access_key": "admin", "access_secret": "adminpassword"}}),
    )
    .await;

    // An upstream name that does not even resolve: podman goes to the mirror, the cache fetches.
    podman.use_registries_conf(&format!(
        "[[registry]]\nlocation = \"upstream.invalid\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{}/mirror\"\ninsecure = true\n",
        reg.host()
    ));
    podman.run(&["pull", "upstream.invalid/team/app:v1"], &auth).await;
    let listed = podman.run(&["images", "--format", "{{.Repository}}:{{.Tag}}"], &auth).await;
    assert!(listed.contains("upstream.invalid/team/app:v1"), "{listed}");
    peer.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_fetches_through_its_hosts_toml_mirror_from_the_proxy_cache() {
    let reg = harbor_registry().await;
    let upstream = Distribution::open().await;
    let c = client();
    let (v1, layer) = upstream_image(&c, &upstream.url(), "library/app", "v1", b"a layer for containerd").await;
    let admin = Api::new(&reg, Some(ADMIN));
    proxy_project(&admin, "hub", json!({"name": "hub", "type": "docker-registry", "url": upstream.url()})).await;

    // containerd's mirror for a name that does not resolve: the project's path on this
    // registry, used as it is (override_path), with the registry's token flow for credentials.
    let ctr = testkit::containerd::Containerd::start().await;
    ctr.set_hosts(
        "upstream.invalid",
        &format!(
            "server = \"https://upstream.invalid\"\n\n[host.\"http://{}/v2/hub\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
            reg.host()
        ),
    );
    let hosts = ctr.hosts_dir();
    let (ok, out) = ctr
        .ctr(&[
            "content",
            "fetch",
            "--hosts-dir",
            hosts.to_str().expect("utf8"),
            "--user",
            "admin:adminpassword",
            "upstream.invalid/library/app:v1",
        ])
        .await;
    assert!(ok, "ctr content fetch: {out}");
    let (_, images) = ctr.ctr(&["images", "ls", "-q"]).await;
    assert!(images.contains("upstream.invalid/library/app:v1"), "{images}");
    let (_, content) = ctr.ctr(&["content", "ls", "-q"]).await;
    assert!(content.contains(&layer.to_string()) && content.contains(&v1.to_string()), "{content}");
    // The cache holds it now: served here, with the upstream's digest.
    let mut cached = None;
    for _ in 0..300 {
        let shown = admin.get("/projects/hub/repositories/library%2Fapp/artifacts/v1").await;
        if shown.status == StatusCode::OK {
            cached = shown.body["digest"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cached, Some(v1.to_string()));
    ctr.stop().await;
    upstream.stop().await;
    reg.stop().await;
}
