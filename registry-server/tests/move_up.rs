//! `registry move-up`: a registry on the embedded default with a few hundred images and
//! Harbor accounts moves into PostgreSQL + Garage; compared after, and served by a replica on the
//! target with every image, login, robot and id as before.

use registry_core::Digest;
use registry_postgres::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use testkit::s3::S3Server;
use testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_registry");
const PASSWORD: &str = "move-up-admin-password";

/// Pushes `count` small images into `repo` (each a layer of its own, every third also sharing
/// one); returns (tag, manifest digest).
async fn push_images(base: &str, token: &str, repo: &str, count: usize) -> Vec<(String, Digest)> {
    let c = client();
    let shared = push_blob_as(&c, base, repo, b"a layer shared by many", Some(token)).await;
    let config = push_blob_as(&c, base, repo, b"{}", Some(token)).await;
    let mut out = Vec::new();
    for i in 0..count {
        let layer = format!("{repo} layer {i}").into_bytes();
        let own = push_blob_as(&c, base, repo, &layer, Some(token)).await;
        let mut layers = vec![(own, layer.len())];
        if i % 3 == 0 {
            layers.push((shared.clone(), 22));
        }
        let manifest = image_manifest(&config, 2, &layers, "");
        let tag = format!("v{i}");
        let resp = c
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .bearer_auth(token)
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(resp.status(), StatusCode::CREATED);
        out.push((tag, Digest::sha256_of(manifest.as_bytes())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_registry_moves_up_into_postgresql_and_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8");
    let env = [("REGISTRY_ADMIN_PASSWORD", PASSWORD)];
    let server = Server::start(BIN, &["--data-dir", data_arg], &env).await;
    let base = server.url();
    let c = client();
    let admin = |method: reqwest::Method, path: &str| {
        c.request(method, format!("{base}/api/v2.0{path}")).basic_auth("admin", Some(PASSWORD))
    };
    let created = admin(reqwest::Method::POST, "/projects")
        .json(&json!({"project_name": "team", "metadata": {"public": "false"}}))
        .send()
        .await
        .expect("project");
    assert_eq!(created.status(), StatusCode::CREATED);
    let resp =
        admin(reqwest::Method::POST, "/users").json(&json!({"username": "dev", "password": "password1"})).send().await;
    assert_eq!(resp.expect("user").status(), StatusCode::CREATED);
    let resp = admin(reqwest::Method::POST, "/projects/team/members")
        .json(&json!({"role_id": 2, "member_user": {"username": "dev"}}))
        .send()
        .await;
    assert_eq!(resp.expect("member").status(), StatusCode::CREATED);
    let robot = admin(reqwest::Method::POST, "/robots")
        .json(&json!({"name": "ci", "level": "project", "duration": -1, "permissions": [
            {"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}]}]}))
        .send()
        .await
        .expect("robot")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let robot_secret = robot["secret"].as_str().expect("secret").to_owned();
    let team =
        admin(reqwest::Method::GET, "/projects/team").send().await.expect("get").json::<serde_json::Value>().await;
    let team_id = team.expect("json")["project_id"].clone();

    let scopes = ["repository:library/a:pull,push", "repository:library/b:pull,push", "repository:team/c:pull,push"];
    let t = token(&c, &base, Some(("admin", PASSWORD)), &scopes).await;
    let mut images = Vec::new();
    for (repo, n) in [("library/a", 150), ("library/b", 100), ("team/c", 50)] {
        images.push((repo, push_images(&base, &t, repo, n).await));
    }
    // Policies of every kind move too: a limit, an immutability rule, a label on an artifact.
    let quota_id = team_id.as_u64().expect("id");
    let resp = admin(reqwest::Method::PUT, &format!("/quotas/{quota_id}"))
        .json(&json!({"hard": {"storage": 50_000_000}}))
        .send()
        .await;
    assert_eq!(resp.expect("quota").status(), StatusCode::OK);
    let rule = json!({"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v1"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}});
    let resp = admin(reqwest::Method::POST, "/projects/team/immutabletagrules").json(&rule).send().await;
    assert_eq!(resp.expect("rule").status(), StatusCode::CREATED);
    let label = admin(reqwest::Method::POST, "/labels")
        .json(&json!({"name": "moved", "scope": "g"}))
        .send()
        .await
        .expect("label");
    let label_id: u64 =
        testkit::header(&label, "location").rsplit('/').next().and_then(|i| i.parse().ok()).expect("id");
    let resp = admin(reqwest::Method::POST, "/projects/team/repositories/c/artifacts/v2/labels")
        .json(&json!({"id": label_id}))
        .send()
        .await;
    assert_eq!(resp.expect("artifact label").status(), StatusCode::CREATED);
    server.stop().await;

    // The target: a fresh database and bucket.
    let db = TestDatabase::create().await;
    let s3 = S3Server::garage().await;
    let target = dir.path().join("target.toml");
    let target_config = format!(
        "data_dir = {:?}\n[database]\nurl = {:?}\n[storage]\ntype = \"s3\"\nbucket = {:?}\nendpoint = {:?}\n\
         region = {:?}\npath_style = true\n",
        dir.path().join("replica"),
        db.url(),
        s3.bucket,
        s3.endpoint,
        s3.region
    );
    std::fs::write(&target, target_config).expect("target config");
    let s3_env = testkit::s3::client_env(&s3);
    let envs: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target_arg = target.to_str().expect("utf8");
    let out = run(BIN, &["--data-dir", data_arg, "move-up", "--to", target_arg], &envs).await;
    assert!(out.contains("accounts: 2 users, 2 projects, 2 members, 1 robots"), "{out}");
    assert!(out.contains("compared: 3 repositories, 300 manifests, 300 tags"), "{out}");
    assert!(out.contains("2 policies (webhooks, immutability rules, labels, retention, scanners, settings)"), "{out}");
    assert!(out.contains("1 artifact labels, 0 scan reports; accounts equal"), "{out}");
    assert!(out.contains("the target matches the source"), "{out}");

    // Again: the target is not empty any more; refused, nothing changed.
    let err = run_failing(BIN, &["--data-dir", data_arg, "move-up", "--to", target_arg], &envs).await;
    assert!(err.contains("already holds"), "{err}");

    // A replica on the target serves everything as before.
    let mut replica_env = envs.clone();
    replica_env.push(("REGISTRY_ADMIN_PASSWORD", "not used: the admin moved"));
    let replica = Server::start(BIN, &["--config", target_arg], &replica_env).await;
    let base = replica.url();
    let t = token(&c, &base, Some(("admin", PASSWORD)), &scopes).await;
    for (repo, pushed) in &images {
        for (tag, digest) in pushed {
            let resp = c
                .head(format!("{base}/v2/{repo}/manifests/{tag}"))
                .bearer_auth(&t)
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("head");
            assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag}");
            assert_eq!(header(&resp, "docker-content-digest"), digest.to_string(), "{repo}:{tag}");
        }
    }
    let layer = c
        .get(format!("{base}/v2/team/c/blobs/{}", Digest::sha256_of(b"team/c layer 7")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("blob");
    assert_eq!(layer.bytes().await.expect("body").as_ref(), b"team/c layer 7");
    // Accounts: the same ids, the same passwords, the same robot secret.
    let moved = c
        .get(format!("{base}/api/v2.0/projects/team"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("project")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(moved["project_id"], team_id, "project ids are kept");
    token(&c, &base, Some(("dev", "password1")), &["repository:team/c:pull"]).await;
    let robot_token = token(&c, &base, Some(("robot$team+ci", &robot_secret)), &["repository:team/c:pull"]).await;
    let resp = c.get(format!("{base}/v2/team/c/tags/list")).bearer_auth(&robot_token).send().await.expect("tags");
    assert_eq!(resp.status(), StatusCode::OK, "the robot pulls with its old secret");
    // New accounts get new ids, after the moved ones.
    let resp = c
        .post(format!("{base}/api/v2.0/projects"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({"project_name": "later"}))
        .send()
        .await
        .expect("project");
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The policies hold on the target: the limit, the rule (v1 stays where it is), the label.
    let get = |path: String| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let resp =
                c.get(format!("{base}/api/v2.0{path}")).basic_auth("admin", Some(PASSWORD)).send().await.expect("get");
            resp.json::<serde_json::Value>().await.expect("json")
        }
    };
    assert_eq!(get(format!("/quotas/{quota_id}")).await["hard"]["storage"], 50_000_000);
    let artifact = get("/projects/team/repositories/c/artifacts/v1".into()).await;
    assert_eq!(artifact["tags"][0]["immutable"], true, "{artifact}");
    let labelled = get("/projects/team/repositories/c/artifacts/v2".into()).await;
    assert_eq!(labelled["labels"][0]["name"], "moved", "{labelled}");
    let deleter = token(&c, &base, Some(("admin", PASSWORD)), &["repository:team/c:delete"]).await;
    let resp = c.delete(format!("{base}/v2/team/c/manifests/v1")).bearer_auth(&deleter).send().await.expect("delete");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "the rule holds on the target");
    replica.stop().await;
    s3.stop().await;
    db.drop_database().await;
}
