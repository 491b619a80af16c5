//! Three replicas on one PostgreSQL database and one Garage bucket behind nginx round-robin (no
//! stickiness): real clients push and pull through the proxy, one upload's chunks land on every
//! replica, a tag moved on one replica is seen on the next request at another, and garbage
//! collection on one replica runs during pushes through the others.

mod cluster;

use cluster::{Cluster, Options, PASSWORD, admin_token, collect_garbage, push_until, try_push_blob};
use registry_core::Digest;
use reqwest::StatusCode;
use testkit::*;

const MIB: usize = 1 << 20;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_podman_and_oci_client_through_three_replicas() {
    install_crypto_provider();
    let cluster = Cluster::start(Options::default()).await;
    let host = cluster.host();
    let work = tempfile::tempdir().expect("tempdir");

    // skopeo: an OCI layout in, and back out with every blob intact.
    let authfile = work.path().join("skopeo.json");
    std::fs::write(&authfile, "{}").expect("auth");
    let env = [("REGISTRY_AUTH_FILE", authfile.to_str().expect("utf8"))];
    run("skopeo", &["login", "--tls-verify=false", "-u", "admin", "-p", PASSWORD, &host], &env).await;
    let src = work.path().join("src");
    write_oci_layout(&src, "v1", 3);
    let dest = format!("docker://{host}/library/skopeo:v1");
    run("skopeo", &["copy", "--dest-tls-verify=false", &format!("oci:{}:v1", src.display()), &dest], &env).await;
    let out = work.path().join("out");
    run("skopeo", &["copy", "--src-tls-verify=false", &dest, &format!("oci:{}:v1", out.display())], &env).await;
    for entry in std::fs::read_dir(out.join("blobs/sha256")).expect("blobs") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        assert_eq!(Digest::sha256_of(&std::fs::read(&path).expect("read")).hex(), name, "blob {name} intact");
    }

    // podman: push, remove locally, pull back.
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("admin");
    podman.run(&["login", "--tls-verify=false", "-u", "admin", "-p", PASSWORD, &host], &auth).await;
    let image = format!("{host}/library/podman:v1");
    podman.run(&["push", "--tls-verify=false", "localhost/podtest:v1", &image], &auth).await;
    podman.run(&["rmi", "localhost/podtest:v1"], &auth).await;
    podman.run(&["pull", "--tls-verify=false", &image], &auth).await;

    // oci-client: a chunked push of a 12 MiB layer (more than two parts) and a pull.
    {
        use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
        use oci_client::{Client, Reference, secrets::RegistryAuth};
        let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
        let auth = RegistryAuth::Basic("admin".into(), PASSWORD.into());
        let reference: Reference = format!("{host}/library/oci:v1").parse().expect("reference");
        let data = bytes(12 * MIB + 5, 3);
        let layer = ImageLayer::new(data.clone(), "application/vnd.oci.image.layer.v1.tar".into(), None);
        let config =
            Config::new(br#"{"os":"linux"}"#.to_vec(), "application/vnd.oci.image.config.v1+json".into(), None);
        client.push(&reference, &[layer], config, &auth, None).await.expect("oci-client push");
        let pulled =
            client.pull(&reference, &auth, vec!["application/vnd.oci.image.layer.v1.tar"]).await.expect("pull");
        assert!(pulled.layers[0].data.as_ref() == data.as_slice(), "the layer round-trips");
    }

    // Every replica served some of it.
    let log = cluster.proxy.access_log();
    for i in 0..3 {
        let addr = cluster.replicas[i].as_ref().expect("running").addr.clone();
        assert!(log.contains(&addr), "replica {addr} served requests:\n{log}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_continues_on_every_replica() {
    let cluster = Cluster::start(Options::default()).await;
    let c = client();
    let t = admin_token(&cluster.replica(0), &["repository:library/chunked:pull,push"]).await;
    let data = bytes(16 * MIB + 3, 7);
    let digest = Digest::sha256_of(&data);

    let resp = c
        .post(format!("{}/v2/library/chunked/blobs/uploads/", cluster.replica(0)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location");
    // Chunks across part boundaries (parts are 5 MiB here), each on another replica.
    let cuts = [0, 6 * MIB, 13 * MIB, data.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let replica = cluster.replica((i + 1) % 3);
        let resp = c
            .patch(format!("{replica}{location}"))
            .bearer_auth(&t)
            .header("content-range", format!("{}-{}", w[0], w[1] - 1))
            .header("content-type", "application/octet-stream")
            .body(data[w[0]..w[1]].to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "chunk {i} on replica {}", (i + 1) % 3);
        assert_eq!(header(&resp, "range"), format!("0-{}", w[1] - 1));
        // Any replica reports the acknowledged offset.
        let status = c.get(format!("{}{location}", cluster.replica(i % 3))).bearer_auth(&t).send().await.expect("get");
        assert_eq!(header(&status, "range"), format!("0-{}", w[1] - 1), "status on replica {}", i % 3);
    }
    // A chunk at the wrong offset is refused wherever it lands, and changes nothing.
    let wrong = c
        .patch(format!("{}{location}", cluster.replica(2)))
        .bearer_auth(&t)
        .header("content-range", "5-9")
        .body(vec![0u8; 5])
        .send()
        .await
        .expect("patch");
    assert_eq!(wrong.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The completing PUT on one replica, then the same PUT again on another (a proxy retrying
    // after the first replica died before answering): both 201, one blob.
    let sep = if location.contains('?') { '&' } else { '?' };
    for replica in [0, 1] {
        let resp = c
            .put(format!("{}{location}{sep}digest={digest}", cluster.replica(replica)))
            .bearer_auth(&t)
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), StatusCode::CREATED, "completion on replica {replica}");
        assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    }
    let got = c
        .get(format!("{}/v2/library/chunked/blobs/{digest}", cluster.replica(2)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get blob");
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.expect("body").as_ref() == data.as_slice(), "the blob is the chunks, in order");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_on_one_replica_is_seen_at_the_next_request_on_another() {
    let cluster = Cluster::start(Options::default()).await;
    let c = client();
    let scope = ["repository:library/moving:pull,push,delete"];
    let t = admin_token(&cluster.url(), &scope).await;
    let manifest_of = |replica: String| {
        let (c, t) = (c.clone(), t.clone());
        async move {
            let resp = c
                .get(format!("{replica}/v2/library/moving/manifests/latest"))
                .bearer_auth(&t)
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("get");
            (resp.status(), header(&resp, "docker-content-digest"))
        }
    };
    let mut previous = String::new();
    for round in 0..6 {
        let writer = cluster.replica(round % 3);
        let (_, digest) =
            push_image_as(&c, &writer, "library/moving", "latest", &format!("round {round}"), Some(&t)).await;
        assert_ne!(digest.to_string(), previous);
        for reader in 0..3 {
            let (status, seen) = manifest_of(cluster.replica(reader)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(seen, digest.to_string(), "round {round}: replica {reader} sees the move at once");
        }
        previous = digest.to_string();
    }
    // Deleting the manifest on one replica: gone everywhere at once, tag and all.
    let del = c
        .delete(format!("{}/v2/library/moving/manifests/{previous}", cluster.replica(1)))
        .bearer_auth(&t)
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), StatusCode::ACCEPTED);
    for reader in 0..3 {
        assert_eq!(manifest_of(cluster.replica(reader)).await.0, StatusCode::NOT_FOUND, "replica {reader}");
    }
    // Accounts too: a project made on one replica is usable through another at once.
    let resp = c
        .post(format!("{}/api/v2.0/projects", cluster.replica(2)))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"project_name": "fresh", "metadata": {"public": "false"}}))
        .send()
        .await
        .expect("create project");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let t = admin_token(&cluster.replica(0), &["repository:fresh/app:pull,push"]).await;
    push_image_as(&c, &cluster.replica(1), "fresh/app", "v1", "x", Some(&t)).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_on_one_replica_during_pushes_through_the_others() {
    let cluster = Cluster::start(Options { gc_grace_secs: 0, ..Options::default() }).await;
    let c = client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pushers = Vec::new();
    for (n, replica) in [1, 2, 1, 2].into_iter().enumerate() {
        let repo = format!("library/gc{n}");
        let token = admin_token(&cluster.replica(replica), &[&format!("repository:{repo}:pull,push")]).await;
        pushers.push(tokio::spawn(push_until(cluster.replica(replica), repo, token, stop.clone())));
    }
    // Something to collect: blobs no manifest references.
    let orphans = admin_token(&cluster.replica(1), &["repository:library/orphans:pull,push"]).await;
    for i in 0..5u8 {
        try_push_blob(&c, &cluster.replica(1), "library/orphans", &[i; 100], &orphans).await.expect("orphan");
    }
    // Collections on replica 0, one after the other, while the others take pushes.
    let mut runs = 0;
    let mut collected = 0;
    while runs < 6 {
        let finished = collect_garbage(&cluster.replica(0), runs % 2 == 1).await;
        let report = &finished["report"];
        collected += report["links_removed"].as_u64().unwrap_or(0) + report["blobs_deleted"].as_u64().unwrap_or(0);
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for (n, p) in pushers.into_iter().enumerate() {
        acknowledged.push((format!("library/gc{n}"), p.await.expect("pusher")));
    }
    assert!(collected >= 10, "the orphans' links and blobs were collected: {collected}");
    // Every acknowledged image is whole, read through the proxy.
    for (repo, pushed) in acknowledged {
        let t = admin_token(&cluster.url(), &[&format!("repository:{repo}:pull")]).await;
        cluster::assert_intact(&cluster.url(), &t, &repo, &pushed).await;
    }
    cluster.stop().await;
}

/// `registry serve` refuses to start, naming what is wrong, when the database or the bucket does
/// not answer as configured; a running replica that loses neither keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refuses_to_start_on_an_unreachable_database_or_a_wrong_bucket() {
    let s3 = testkit::s3::S3Server::garage().await;
    let db = registry_postgres::testing::TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let env = testkit::s3::client_env(&s3);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("REGISTRY_ADMIN_PASSWORD", PASSWORD));
    let data = dir.path().to_str().expect("utf8");
    let common = ["--data-dir", data, "--storage", "s3", "--s3-endpoint", &s3.endpoint, "--s3-region", &s3.region];
    let serve = |db_url: String, bucket: &'static str| {
        let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        args.extend(["--database-url".into(), db_url, "--s3-bucket".into(), bucket.into(), "--s3-path-style".into()]);
        args.extend(["true".into(), "serve".into(), "--listen".into(), "127.0.0.1:0".into()]);
        args
    };
    let args = serve(format!("postgres://registry:secret@127.0.0.1:{closed}/registry"), "registry");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = run_failing(cluster::BIN, &argv, &envs).await;
    assert!(err.contains(&format!("127.0.0.1:{closed}/registry")), "names the database: {err}");
    assert!(!err.contains("secret"), "never the password: {err}");
    let args = serve(db.url().to_owned(), "no-such-bucket");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = run_failing(cluster::BIN, &argv, &envs).await;
    assert!(err.contains("no-such-bucket") && err.contains("not starting"), "names the bucket: {err}");
    s3.stop().await;
    db.drop_database().await;
}

/// Pushers racing at a project's quota through three replicas on PostgreSQL: exactly as many
/// blobs fit as the limit allows, the rest are refused with DENIED, and the counter matches what
/// the project holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_racing_at_the_quota_through_three_replicas_never_pass_it() {
    const PUSHERS: usize = 18;
    const SIZE: usize = 1000;
    let cluster = Cluster::start(Options::default()).await;
    let c = client();
    let created = c
        .post(format!("{}/api/v2.0/projects", cluster.url()))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"project_name": "racing", "storage_limit": 7_500}))
        .send()
        .await
        .expect("create project");
    assert_eq!(created.status(), StatusCode::CREATED);
    let t = admin_token(&cluster.url(), &["repository:racing/app:pull,push"]).await;
    let pushes = (0..PUSHERS).map(|i| {
        let (c, t, replica) = (c.clone(), t.clone(), cluster.replica(i % 3));
        tokio::spawn(async move {
            let data = bytes(SIZE, i as u8 + 1);
            let digest = Digest::sha256_of(&data);
            let resp = c
                .post(format!("{replica}/v2/racing/app/blobs/uploads/?digest={digest}"))
                .bearer_auth(&t)
                .body(data)
                .send()
                .await
                .expect("push");
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, body)
        })
    });
    let results: Vec<(StatusCode, serde_json::Value)> =
        futures::future::join_all(pushes).await.into_iter().map(|r| r.expect("task")).collect();
    let accepted = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    }
    assert_eq!(accepted, 7, "7 of {PUSHERS} blobs of {SIZE} bytes fit in 7500: {results:?}");
    let summary: serde_json::Value = c
        .get(format!("{}/api/v2.0/projects/racing/summary", cluster.replica(2)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["quota"]["used"]["storage"], 7 * SIZE, "{summary}");
    let verify: serde_json::Value = c
        .get(format!("{}/api/v2.0/system/quotas/verify", cluster.replica(1)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert_eq!(verify["drift"], serde_json::json!([]), "{verify}");
    cluster.stop().await;
}

/// `GET` of a manifest through `base` as the admin: its status and error message.
async fn pull_through(base: &str, repo: &str, reference: &str) -> (StatusCode, String) {
    let t = admin_token(base, &[&format!("repository:{repo}:pull")]).await;
    let r = client()
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .bearer_auth(t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("pull");
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["errors"][0]["message"].as_str().unwrap_or_default().to_owned())
}

/// Pulls through `base` until the answer says `want` (other replicas see a change within their
/// caches' two seconds); the last answer.
async fn pull_until(
    base: &str,
    repo: &str,
    reference: &str,
    want: impl Fn(StatusCode, &str) -> bool,
) -> (StatusCode, String) {
    let mut last = (StatusCode::OK, String::new());
    for _ in 0..200 {
        last = pull_through(base, repo, reference).await;
        if want(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{base}: {repo}:{reference} never answered as expected; last {last:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_scans_and_replication_hold_on_every_replica() {
    let cluster = Cluster::start(Options::default()).await;
    let scanner = testkit::scanner::FixtureScanner::start(Some("cluster-key"), false).await;
    let c = client();
    let api = |i: usize, method: reqwest::Method, path: &str, body: serde_json::Value| {
        c.request(method, format!("{}/api/v2.0{path}", cluster.replica(i)))
            .basic_auth("admin", Some(PASSWORD))
            .json(&body)
            .send()
    };
    let created = api(0, reqwest::Method::POST, "/projects", serde_json::json!({"project_name": "secure"}))
        .await
        .expect("project");
    assert_eq!(created.status(), StatusCode::CREATED);
    let registered = api(
        0,
        reqwest::Method::POST,
        "/scanners",
        serde_json::json!({"name": "fixture", "url": scanner.url(),
        "auth": "X-ScannerAdapter-API-Key", "access_credential": "cluster-key"}),
    )
    .await
    .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let t = admin_token(&cluster.url(), &["repository:secure/app:pull,push"]).await;
    push_image_as(&c, &cluster.url(), "secure/app", "v1", "secure", Some(&t)).await;

    // Prevention set on one replica holds on the others: unscanned, then vulnerable.
    let set = api(
        1,
        reqwest::Method::PUT,
        "/projects/secure",
        serde_json::json!({"metadata": {"prevent_vul": "true", "severity": "high"}}),
    );
    assert_eq!(set.await.expect("set").status(), StatusCode::OK);
    pull_until(&cluster.replica(2), "secure/app", "v1", |s, m| {
        s == StatusCode::FORBIDDEN && m.contains("was not scanned")
    })
    .await;
    let scan =
        api(1, reqwest::Method::POST, "/projects/secure/repositories/app/artifacts/v1/scan", serde_json::json!({}));
    assert_eq!(scan.await.expect("scan").status(), StatusCode::ACCEPTED);
    for i in 0..3 {
        pull_until(&cluster.replica(i), "secure/app", "v1", |s, m| {
            s == StatusCode::FORBIDDEN && m.contains("(1 High)")
        })
        .await;
    }
    let overview: serde_json::Value = c
        .get(format!(
            "{}/api/v2.0/projects/secure/repositories/app/artifacts/v1?with_scan_overview=true",
            cluster.replica(0)
        ))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("artifact")
        .json()
        .await
        .expect("json");
    assert_eq!(
        overview["scan_overview"]["application/vnd.security.vulnerability.report; version=1.1"]["severity"],
        "High"
    );
    assert_eq!(scanner.requests()[0].pulled, 200, "the adapter pulled from the replica that ran the scan");

    // The system allowlist, set on one replica, lets it through everywhere.
    let allow = api(
        2,
        reqwest::Method::PUT,
        "/system/CVEAllowlist",
        serde_json::json!({"items": [{"cve_id": "CVE-2026-0001"}]}),
    );
    assert_eq!(allow.await.expect("allowlist").status(), StatusCode::OK);
    for i in 0..3 {
        pull_until(&cluster.replica(i), "secure/app", "v1", |s, _| s == StatusCode::OK).await;
    }
    // Content trust, set on one replica, refuses the unsigned image everywhere.
    let trust = api(
        0,
        reqwest::Method::PUT,
        "/projects/secure",
        serde_json::json!({"metadata": {"enable_content_trust_cosign": "true"}}),
    );
    assert_eq!(trust.await.expect("trust").status(), StatusCode::OK);
    for i in 0..3 {
        pull_until(&cluster.replica(i), "secure/app", "v1", |s, m| {
            s == StatusCode::FORBIDDEN && m.contains("not signed by cosign")
        })
        .await;
    }

    // An SBOM asked for on one replica is kept in the shared stores: another serves it.
    let sbom = api(
        2,
        reqwest::Method::POST,
        "/projects/secure/repositories/app/artifacts/v1/scan",
        serde_json::json!({"scan_type": "sbom"}),
    );
    assert_eq!(sbom.await.expect("sbom").status(), StatusCode::ACCEPTED);
    let path = "/projects/secure/repositories/app/artifacts/v1/additions/sbom";
    let mut document = serde_json::Value::Null;
    for _ in 0..500 {
        let r = api(1, reqwest::Method::GET, path, serde_json::Value::Null).await.expect("sbom");
        if r.status() == StatusCode::OK {
            document = r.json().await.expect("json");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(document["spdxVersion"], "SPDX-2.3", "{document}");

    // A registry endpoint made on one replica (the cluster itself, by its token service) is
    // shown healthy by another, its secret sealed in the shared database.
    let made = api(
        0,
        reqwest::Method::POST,
        "/registries",
        serde_json::json!({"name": "self", "type": "harbor", "url": cluster.replica(1),
            "credential": {"type": "basic", "access_key": "admin", "access_secret": PASSWORD}}),
    );
    let made = made.await.expect("registry");
    assert_eq!(made.status(), StatusCode::CREATED);
    let id = made.headers()["location"].to_str().expect("location").rsplit('/').next().expect("id").to_owned();
    let shown = api(2, reqwest::Method::GET, &format!("/registries/{id}"), serde_json::Value::Null).await.expect("get");
    let shown: serde_json::Value = shown.json().await.expect("json");
    assert_eq!(shown["status"], "healthy", "{shown}");

    // Replication through that endpoint, asked for on one replica, run by whichever takes the
    // job, seen on a third.
    let made = api(0, reqwest::Method::POST, "/projects", serde_json::json!({"project_name": "copies"}));
    assert_eq!(made.await.expect("project").status(), StatusCode::CREATED);
    let policy = api(
        1,
        reqwest::Method::POST,
        "/replication/policies",
        serde_json::json!({"name": "copy", "dest_registry": {"id": id.parse::<u64>().expect("id")},
            "dest_namespace": "copies", "dest_namespace_replace_count": -1,
            "filters": [{"type": "name", "value": "secure/app"}]}),
    );
    let policy = policy.await.expect("policy");
    assert_eq!(policy.status(), StatusCode::CREATED);
    let policy_id: u64 =
        policy.headers()["location"].to_str().expect("location").rsplit('/').next().expect("id").parse().expect("id");
    let started = api(0, reqwest::Method::POST, "/replication/executions", serde_json::json!({"policy_id": policy_id}));
    let started = started.await.expect("start");
    assert_eq!(started.status(), StatusCode::CREATED);
    let execution =
        started.headers()["location"].to_str().expect("location").rsplit('/').next().expect("id").to_owned();
    let mut status = serde_json::Value::Null;
    for _ in 0..500 {
        let e = api(2, reqwest::Method::GET, &format!("/replication/executions/{execution}"), serde_json::Value::Null);
        let e: serde_json::Value = e.await.expect("execution").json().await.expect("json");
        if e["status"] != "InProgress" {
            status = e;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "Succeed", "{status}");
    let copied =
        api(1, reqwest::Method::GET, "/projects/copies/repositories/app/artifacts/v1", serde_json::Value::Null);
    let copied: serde_json::Value = copied.await.expect("artifact").json().await.expect("json");
    let original =
        api(2, reqwest::Method::GET, "/projects/secure/repositories/app/artifacts/v1", serde_json::Value::Null);
    let original: serde_json::Value = original.await.expect("artifact").json().await.expect("json");
    assert_eq!(copied["digest"], original["digest"], "{copied}");
    cluster.stop().await;
}

/// A proxy-cache project in front of distribution 2.8: ten cold pulls of one image at once,
/// through all three replicas, fetch each blob from the upstream once (counted in its access
/// log), and every pull gets the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_cold_pulls_through_three_replicas_fetch_each_blob_once() {
    let cluster = Cluster::start(Options::default()).await;
    let upstream = testkit::distribution::Distribution::open().await;
    let c = client();
    let layer = bytes(4 * MIB, 9);
    let manifest = push_layer_image(&c, &upstream.url(), "library/app", "v1", &layer, None).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let (config_digest, layer_digest) = (Digest::sha256_of(&config), Digest::sha256_of(&layer));
    let api = |i: usize, path: &str, body: serde_json::Value| {
        c.post(format!("{}/api/v2.0{path}", cluster.replica(i))).basic_auth("admin", Some(PASSWORD)).json(&body).send()
    };
    let made =
        api(0, "/registries", serde_json::json!({"name": "hub", "type": "docker-registry", "url": upstream.url()}));
    let made = made.await.expect("registry");
    assert_eq!(made.status(), StatusCode::CREATED);
    let id: u64 =
        made.headers()["location"].to_str().expect("location").rsplit('/').next().expect("id").parse().expect("id");
    let project = api(1, "/projects", serde_json::json!({"project_name": "hub", "registry_id": id}));
    assert_eq!(project.await.expect("project").status(), StatusCode::CREATED);

    let pulls = (0..10).map(|i| {
        let (base, c, manifest) = (cluster.replica(i % 3), c.clone(), manifest.clone());
        let want = [(config_digest.clone(), config.clone()), (layer_digest.clone(), layer.clone())];
        async move {
            let t = admin_token(&base, &["repository:hub/library/app:pull"]).await;
            let got = c
                .get(format!("{base}/v2/hub/library/app/manifests/v1"))
                .bearer_auth(&t)
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("manifest");
            assert_eq!(got.status(), StatusCode::OK);
            assert_eq!(got.bytes().await.expect("bytes").as_ref(), manifest.as_bytes());
            for (digest, content) in want {
                let blob = c
                    .get(format!("{base}/v2/hub/library/app/blobs/{digest}"))
                    .bearer_auth(&t)
                    .send()
                    .await
                    .expect("blob");
                assert_eq!(blob.status(), StatusCode::OK, "{base}: {digest}");
                assert!(blob.bytes().await.expect("bytes").as_ref() == content.as_slice(), "{base}: {digest} whole");
            }
        }
    });
    futures::future::join_all(pulls).await;
    for digest in [&config_digest, &layer_digest] {
        let fetched = upstream.requests(&format!("\"GET /v2/library/app/blobs/{digest}"));
        assert_eq!(fetched.len(), 1, "{digest} fetched from the upstream once: {fetched:?}");
    }
    upstream.stop().await;
    cluster.stop().await;
}

/// Signing in through LDAP set on one replica holds on the others: a person signs in through
/// another (their user made in the shared database), a third sees them, and the sealed search
/// password opens on every replica (one key).
/// Puts run-time settings (`/configurations`) through `base` as the admin.
async fn configure(c: &reqwest::Client, base: &str, settings: &serde_json::Value) {
    let set = c
        .put(format!("{base}/api/v2.0/configurations"))
        .basic_auth("admin", Some(PASSWORD))
        .json(settings)
        .send()
        .await
        .expect("configurations");
    assert_eq!(set.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_set_on_one_replica_signs_people_in_on_the_others() {
    let cluster = Cluster::start(Options::default()).await;
    let slapd = testkit::ldap::Slapd::start().await;
    let c = client();
    let settings = serde_json::json!({
        "auth_mode": "ldap_auth", "ldap_url": slapd.url, "ldap_search_dn": testkit::ldap::Slapd::ROOT_DN,
        "ldap_search_password": testkit::ldap::Slapd::ROOT_PASSWORD,
        "ldap_base_dn": format!("ou=people,{}", testkit::ldap::BASE), "ldap_uid": "uid",
    });
    configure(&c, &cluster.replica(0), &settings).await;
    let t = testkit::get_token(&c, &cluster.replica(2), Some(("alice", "alice-password")), &[]).await;
    assert_eq!(t.status(), StatusCode::OK, "alice signs in on another replica");
    let found: serde_json::Value = c
        .get(format!("{}/api/v2.0/users/search?username=alice", cluster.replica(1)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert_eq!(found[0]["username"], "alice", "{found}");
    let pinged: serde_json::Value = c
        .post(format!("{}/api/v2.0/ldap/ping", cluster.replica(1)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("ping")
        .json()
        .await
        .expect("json");
    assert_eq!(pinged["success"], true, "the sealed password opens here too: {pinged}");
    slapd.stop().await;
    cluster.stop().await;
}

/// Signing in through an OIDC provider behind the proxy: a sign-in begun on one replica is
/// finished by whichever the proxy picks (its state travels sealed in a cookie, one key for all),
/// the person is found by their subject on every replica (PostgreSQL's index), and their CLI
/// secret signs command-line clients in on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_ins_begun_on_one_replica_finish_on_any() {
    let cluster = Cluster::start(Options::default()).await;
    let provider = testkit::oidc::OidcProvider::start(&[&format!("{}/c/oidc/callback", cluster.url())]).await;
    let c = client();
    let settings = serde_json::json!({
        "auth_mode": "oidc_auth", "oidc_name": "Test ID", "oidc_endpoint": provider.issuer,
        "oidc_client_id": testkit::oidc::OidcProvider::CLIENT_ID,
        "oidc_client_secret": testkit::oidc::OidcProvider::CLIENT_SECRET,
        "oidc_scope": "openid,profile,email,groups,offline_access", "oidc_auto_onboard": true,
    });
    configure(&c, &cluster.replica(0), &settings).await;
    for round in 0..2 {
        // Begun on replica 1; the provider returns the browser to the proxy.
        let mut browser = testkit::oidc::Browser::new();
        let at_provider = browser.open(&format!("{}/c/oidc/login", cluster.replica(1))).await;
        let page = provider.sign_in(&mut browser, at_provider, "alice").await;
        assert_eq!(page.status, StatusCode::OK, "round {round}: {}", page.body);
        assert!(page.url.starts_with(&cluster.url()), "back through the proxy: {}", page.url);
        let me = browser.send(c.get(format!("{}/api/v2.0/users/current", cluster.replica(round)))).await;
        assert_eq!(me.status(), StatusCode::OK, "the session holds on replica {round}");
        let me: serde_json::Value = me.json().await.expect("json");
        assert_eq!(me["username"], "alice", "the same user each time: {me}");
        let secret = me["oidc_user_meta"]["secret"].as_str().expect("a CLI secret").to_owned();
        let t = testkit::get_token(&c, &cluster.replica(2), Some(("alice", &secret)), &[]).await;
        assert_eq!(t.status(), StatusCode::OK, "her CLI secret on another replica");
    }
    let users: serde_json::Value = c
        .get(format!("{}/api/v2.0/users?q=username%3Dalice", cluster.replica(2)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(1), "one user for one subject: {users}");
    provider.stop().await;
    cluster.stop().await;
}

/// Charts on the replicated shape: pushed through the proxy, their README read and the classic
/// index made on each replica from the blobs in the bucket (each replica caches its own reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_pushed_through_the_proxy_are_read_on_every_replica() {
    let cluster = Cluster::start(Options::default()).await;
    let c = client();
    let t = admin_token(&cluster.url(), &["repository:library/demo:pull,push"]).await;
    let chart = testkit::helm::chart_archive(
        "demo",
        &[("Chart.yaml", testkit::helm::chart_yaml("demo", "1.0.0").as_bytes()), ("README.md", b"# Demo on S3\n")],
    );
    let config = testkit::helm::chart_config("demo", "1.0.0");
    let (_, digest) =
        testkit::helm::push_chart(&c, &cluster.url(), "library/demo", "1.0.0", &config, &chart, Some(&t)).await;
    for i in 0..3 {
        let base = cluster.replica(i);
        let readme = c
            .get(format!("{base}/api/v2.0/projects/library/repositories/demo/artifacts/{digest}/additions/readme.md"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .expect("readme");
        assert_eq!(readme.status(), StatusCode::OK, "replica {i}");
        assert_eq!(readme.text().await.expect("text"), "# Demo on S3\n");
        let index = c
            .get(format!("{base}/chartrepo/library/index.yaml"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .expect("index")
            .text()
            .await
            .expect("text");
        assert!(index.contains(&Digest::sha256_of(&chart).hex().to_string()), "replica {i}: {index}");
        let tgz = c
            .get(format!("{base}/chartrepo/library/charts/demo-1.0.0.tgz"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .expect("tgz");
        assert_eq!(tgz.bytes().await.expect("bytes").as_ref(), &chart[..], "replica {i}");
    }
    cluster.stop().await;
}

/// One figure of a replica's blob cache at `/metrics` (`hits`, `misses`, `entries`).
async fn blob_cache(c: &reqwest::Client, base: &str, figure: &str) -> u64 {
    let text = c.get(format!("{base}/metrics")).send().await.expect("scrape").text().await.expect("text");
    let name = format!("registry_cache_{figure}{{cache=\"blob_files\"}} ");
    let line = text.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    line[name.len()..].trim().parse::<f64>().expect("a number") as u64
}

/// Replicas with a blob cache: a layer pushed through one replica and pulled twice through
/// another is read from the bucket once, then from that replica's verified copy; a range passes
/// through; once the layer is deleted and collected, the copy the replica still holds is not
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_blobs_are_served_from_a_replicas_copy_until_collected() {
    let cluster = Cluster::start(Options { replicas: 2, cache_mib: 64, gc_grace_secs: 0, ..Options::default() }).await;
    let c = client();
    let (pusher, puller) = (cluster.replica(0), cluster.replica(1));
    let layer = bytes(3 * MIB + 7, 5);
    let digest = Digest::sha256_of(&layer);
    let t0 = admin_token(&pusher, &["repository:library/cached:pull,push,delete"]).await;
    let manifest = push_layer_image(&c, &pusher, "library/cached", "v1", &layer, Some(&t0)).await;
    let t1 = admin_token(&puller, &["repository:library/cached:pull"]).await;
    let blob = format!("{puller}/v2/library/cached/blobs/{digest}");
    let pull = || async {
        let got = c.get(&blob).bearer_auth(&t1).send().await.expect("pull");
        assert_eq!(got.status(), StatusCode::OK);
        assert!(got.bytes().await.expect("bytes").as_ref() == layer.as_slice(), "the layer whole");
    };

    pull().await;
    assert_eq!(blob_cache(&c, &puller, "misses").await, 1, "the first pull reads the bucket");
    // The copy is written beside the pull and kept once its bytes hash to the digest.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while blob_cache(&c, &puller, "entries").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the pulled layer was never kept");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pull().await;
    assert_eq!(blob_cache(&c, &puller, "hits").await, 1, "the second pull reads the copy");
    assert_eq!(blob_cache(&c, &puller, "misses").await, 1);
    let part = c.get(&blob).bearer_auth(&t1).header("range", "bytes=1048576-1048675").send().await.expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert!(part.bytes().await.expect("bytes").as_ref() == &layer[MIB..MIB + 100], "the range from the copy");
    assert_eq!(blob_cache(&c, &pusher, "entries").await, 0, "the pushing replica copies only what it serves");

    // Deleted and collected through the other replica: the copy is still on this replica's disk,
    // and a pull is refused as the registry no longer has the layer.
    let manifest_digest = Digest::sha256_of(manifest.as_bytes());
    let deleted = c
        .delete(format!("{pusher}/v2/library/cached/manifests/{manifest_digest}"))
        .bearer_auth(&t0)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let report = collect_garbage(&pusher, false).await;
    assert!(report["report"]["blobs_deleted"].as_u64().unwrap_or(0) >= 2, "the layer and config collected: {report}");
    assert_eq!(blob_cache(&c, &puller, "entries").await, 1);
    let gone = c.get(&blob).bearer_auth(&t1).send().await.expect("pull");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(gone.json::<serde_json::Value>().await.expect("json")["errors"][0]["code"], "BLOB_UNKNOWN");
    cluster.stop().await;
}
