//! Replication against distribution 2.8 (Debian's `docker-registry`) behind htpasswd: a
//! push-based policy copies images, a multi-arch index with its children and a cosign signature
//! to it, digest for digest, filtered by name and tag, flattened under a namespace; a second run
//! sends nothing new; a pull-based policy copies them back into a project of this registry; bad
//! policies are refused saying why, and only system admins replicate.

use std::time::Duration;

use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::distribution::Distribution;
use testkit::harbor::Api;
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

/// The execution `location` names, once it has ended.
async fn ended(admin: &Api, location: &str) -> Value {
    let id = location.rsplit('/').next().expect("id");
    for _ in 0..1500 {
        let e = admin.get(&format!("/replication/executions/{id}")).await.expect(StatusCode::OK, None);
        if e.body["status"] != "InProgress" {
            return e.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("execution {id} did not end")
}

/// The digest `reference` names at distribution (with its Basic credentials), if any.
async fn at_distribution(dist: &Distribution, repo: &str, reference: &str) -> Option<Digest> {
    let r = client()
        .head(format!("{}/v2/{repo}/manifests/{reference}", dist.url()))
        .basic_auth("mirror", Some("s3cret-pass"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("head");
    if r.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(r.status(), StatusCode::OK);
    Some(Digest::parse(r.headers()["docker-content-digest"].to_str().expect("header")).expect("digest"))
}

/// The first execution of `policy` once it has ended (started by a trigger).
async fn executed(admin: &Api, policy: &str) -> Value {
    for _ in 0..1500 {
        let listed =
            admin.get(&format!("/replication/executions?policy_id={policy}")).await.expect(StatusCode::OK, None);
        if let Some(first) = listed.body.as_array().and_then(|a| a.last())
            && first["status"] != "InProgress"
        {
            return first.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no execution of policy {policy} ended")
}

async fn run(admin: &Api, policy: &str) -> Value {
    let started = admin
        .post("/replication/executions", json!({"policy_id": policy.parse::<u64>().expect("id")}))
        .await
        .expect(StatusCode::CREATED, None);
    ended(admin, started.header("location")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_indexes_and_signatures_replicate_to_and_from_distribution() {
    let reg = TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .start()
        .await
        .expect("start");
    let dist = Distribution::basic("mirror", "s3cret-pass").await;
    let admin = Api::new(&reg, Some(ADMIN));
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push", "repository:team/multi:pull,push"]).await;
    let (_, v1) = push_image_as(&c, &base, "team/app", "v1", "one", Some(&t)).await;
    push_image_as(&c, &base, "team/app", "v2-rc", "two", Some(&t)).await;
    testkit::cosign::cosign(&c, &base, "team/app", &t, &v1, &testkit::cosign::key(3)).await;
    let children = [
        push_image_as(&c, &base, "team/multi", "amd64", "amd", Some(&t)).await,
        push_image_as(&c, &base, "team/multi", "arm64", "arm", Some(&t)).await,
    ];
    let manifests: Vec<Value> = children
        .iter()
        .map(|(m, d)| json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": m.len()}))
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).to_string();
    let put = c
        .put(format!("{base}/v2/team/multi/manifests/latest"))
        .bearer_auth(&t)
        .header("content-type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .expect("index");
    assert_eq!(put.status(), StatusCode::CREATED);
    let index_digest = Digest::sha256_of(index.as_bytes());

    let created = admin
        .post(
            "/registries",
            json!({"name": "dist", "type": "docker-registry", "url": dist.url(),
                "credential": {"type": "basic", "access_key": "mirror", "access_secret": "s3cret-pass"}}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let registry_id: u64 = created.header("location").rsplit('/').next().expect("id").parse().expect("number");

    // Bad policies: each refused saying why; only admins.
    for (body, says) in [
        (json!({"name": "p"}), "src_registry"),
        (json!({"name": "p", "dest_registry": {"id": 999}}), "registry 999 does not exist"),
        (
            json!({"name": "p", "dest_registry": {"id": registry_id}, "filters": [{"type": "name", "value": "a/[b"}]}),
            "filters[0]",
        ),
        (
            json!({"name": "p", "dest_registry": {"id": registry_id},
                "trigger": {"type": "scheduled", "trigger_settings": {"cron": "nope"}}}),
            "cron",
        ),
        (json!({"name": "p", "src_registry": {"id": registry_id}, "trigger": {"type": "event_based"}}), "push-based"),
        (json!({"name": "p", "dest_registry": {"id": registry_id}, "speed": 1024}), "speed"),
    ] {
        let refused = admin.post("/replication/policies", body.clone()).await.expect(StatusCode::BAD_REQUEST, None);
        assert!(refused.body.to_string().contains(says), "{body}: {}", refused.body);
    }
    Api::new(&reg, Some(("dev", "password1")))
        .post("/replication/policies", json!({"name": "p", "dest_registry": {"id": registry_id}}))
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // Push-based: team/** but not the release candidates, flattened under `mirror`.
    let pushed = admin
        .post(
            "/replication/policies",
            json!({"name": "to-dist", "dest_registry": {"id": registry_id}, "dest_namespace": "mirror",
                "dest_namespace_replace_count": 1, "trigger": {"type": "manual"}, "override": true,
                "filters": [{"type": "name", "value": "team/**"}, {"type": "tag", "value": "*-rc", "decoration": "excludes"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let push_id = pushed.header("location").rsplit('/').next().expect("id").to_owned();
    let shown = admin.get(&format!("/replication/policies/{push_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["dest_registry"]["name"], "dist");
    assert_eq!(shown.body["src_registry"]["id"], 0);
    let execution = run(&admin, &push_id).await;
    assert_eq!(execution["status"], "Succeed", "{execution}");
    let tasks =
        admin.get(&format!("/replication/executions/{}/tasks", execution["id"])).await.expect(StatusCode::OK, None);
    let mut copied: Vec<&str> =
        tasks.body.as_array().expect("tasks").iter().map(|t| t["src_resource"].as_str().unwrap_or_default()).collect();
    copied.sort();
    assert_eq!(copied, ["team/app:v1", "team/multi:amd64", "team/multi:arm64", "team/multi:latest"]);
    assert_eq!(at_distribution(&dist, "mirror/app", "v1").await, Some(v1.clone()));
    assert_eq!(at_distribution(&dist, "mirror/app", "v2-rc").await, None, "excluded by the tag filter");
    assert_eq!(at_distribution(&dist, "mirror/multi", "latest").await, Some(index_digest.clone()));
    for (_, child) in &children {
        assert_eq!(at_distribution(&dist, "mirror/multi", &child.to_string()).await, Some(child.clone()));
    }
    let signature = format!("sha256-{}.sig", v1.hex());
    let local_signature = at_distribution(&dist, "mirror/app", &signature).await;
    assert!(local_signature.is_some(), "the signature went with its subject");
    let first = tasks.body[0]["id"].as_u64().expect("task id");
    let log = admin
        .get(&format!("/replication/executions/{}/tasks/{first}/log", execution["id"]))
        .await
        .expect(StatusCode::OK, None);
    assert!(log.body.as_str().unwrap_or_default().contains("copied"), "{}", log.body);

    // Again: nothing new is sent.
    let again = run(&admin, &push_id).await;
    assert_eq!(again["status"], "Succeed");
    let tasks = admin.get(&format!("/replication/executions/{}/tasks", again["id"])).await.expect(StatusCode::OK, None);
    assert!(tasks.body.as_array().expect("tasks").iter().all(|t| t["bytes"] == 0), "{}", tasks.body);

    // Pull-based, into a project that does not exist: fails saying so; into one that does:
    // the same digests come back.
    let pulled = admin
        .post(
            "/replication/policies",
            json!({"name": "from-dist", "src_registry": {"id": registry_id}, "dest_namespace": "pulled",
                "dest_namespace_replace_count": -1, "filters": [{"type": "name", "value": "mirror/**"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let pull_id = pulled.header("location").rsplit('/').next().expect("id").to_owned();
    let failed = run(&admin, &pull_id).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    let tasks =
        admin.get(&format!("/replication/executions/{}/tasks", failed["id"])).await.expect(StatusCode::OK, None);
    let task = tasks.body[0]["id"].as_u64().expect("task");
    let log = admin
        .get(&format!("/replication/executions/{}/tasks/{task}/log", failed["id"]))
        .await
        .expect(StatusCode::OK, None);
    assert!(log.body.as_str().unwrap_or_default().contains("project pulled does not exist"), "{}", log.body);
    admin.post("/projects", json!({"project_name": "pulled"})).await.expect(StatusCode::CREATED, None);
    let execution = run(&admin, &pull_id).await;
    assert_eq!(execution["status"], "Succeed", "{execution}");
    let artifact = admin.get("/projects/pulled/repositories/app/artifacts/v1").await.expect(StatusCode::OK, None);
    assert_eq!(artifact.body["digest"], v1.to_string());
    assert_eq!(artifact.body["signed"], true, "the signature came along");
    let multi = admin.get("/projects/pulled/repositories/multi/artifacts/latest").await.expect(StatusCode::OK, None);
    assert_eq!(multi.body["digest"], index_digest.to_string());
    let listed = admin.get(&format!("/replication/executions?policy_id={pull_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(2));

    // Event-based: a push starts an execution of just that artifact.
    let on_push = admin
        .post(
            "/replication/policies",
            json!({"name": "on-push", "dest_registry": {"id": registry_id}, "dest_namespace": "events",
                "trigger": {"type": "event_based"}, "filters": [{"type": "name", "value": "team/app"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let on_push_id = on_push.header("location").rsplit('/').next().expect("id").to_owned();
    let (_, v3) = push_image_as(&c, &base, "team/app", "v3", "three", Some(&t)).await;
    let execution = executed(&admin, &on_push_id).await;
    assert_eq!((execution["status"].as_str(), execution["total"].as_u64()), (Some("Succeed"), Some(1)), "{execution}");
    assert_eq!(at_distribution(&dist, "events/app", "v3").await, Some(v3));
    assert_eq!(at_distribution(&dist, "events/app", "v1").await, None, "only what was pushed");

    // Scheduled: every second until disabled.
    let scheduled = admin
        .post(
            "/replication/policies",
            json!({"name": "nightly", "dest_registry": {"id": registry_id}, "dest_namespace": "scheduled",
                "trigger": {"type": "scheduled", "trigger_settings": {"cron": "* * * * * *"}},
                "filters": [{"type": "name", "value": "team/app"}, {"type": "tag", "value": "v1"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let scheduled_id = scheduled.header("location").rsplit('/').next().expect("id").to_owned();
    let execution = executed(&admin, &scheduled_id).await;
    assert_eq!(execution["status"], "Succeed", "{execution}");
    assert_eq!(execution["trigger"], "scheduled");
    admin
        .put(&format!("/replication/policies/{scheduled_id}"), json!({"enabled": false}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(at_distribution(&dist, "scheduled/app", "v1").await, Some(v1.clone()));

    admin.delete(&format!("/replication/policies/{push_id}")).await.expect(StatusCode::OK, None);
    admin.get(&format!("/replication/policies/{push_id}")).await.expect(StatusCode::NOT_FOUND, None);
    dist.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_whose_remote_went_down_is_retried_and_completes() {
    let reg = TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .start()
        .await
        .expect("start");
    let mut dist = Distribution::basic("mirror", "s3cret-pass").await;
    let admin = Api::new(&reg, Some(ADMIN));
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let (_, v1) = push_image_as(&c, &base, "team/app", "v1", "one", Some(&t)).await;
    let created = admin
        .post(
            "/registries",
            json!({"name": "dist", "type": "docker-registry", "url": dist.url(),
                "credential": {"type": "basic", "access_key": "mirror", "access_secret": "s3cret-pass"}}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let registry_id: u64 = created.header("location").rsplit('/').next().expect("id").parse().expect("number");
    let policy = admin
        .post("/replication/policies", json!({"name": "p", "dest_registry": {"id": registry_id}}))
        .await
        .expect(StatusCode::CREATED, None);
    let policy_id: u64 = policy.header("location").rsplit('/').next().expect("id").parse().expect("number");

    // The remote goes away: the first attempt fails saying why, and the execution waits to retry.
    dist.kill().await;
    let started =
        admin.post("/replication/executions", json!({"policy_id": policy_id})).await.expect(StatusCode::CREATED, None);
    let id = started.header("location").rsplit('/').next().expect("id").to_owned();
    let mut waiting = Value::Null;
    for _ in 0..1500 {
        let e = admin.get(&format!("/replication/executions/{id}")).await.expect(StatusCode::OK, None);
        if e.body["status_text"].as_str().is_some_and(|t| !t.is_empty()) {
            waiting = e.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting["status"], "InProgress", "retried, not given up: {waiting}");
    assert!(waiting["status_text"].as_str().unwrap_or_default().contains("tasks failed"), "{waiting}");
    dist.restart().await;

    // Back: the retry completes the copy.
    let done = ended(&admin, started.header("location")).await;
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(at_distribution(&dist, "team/app", "v1").await, Some(v1));
    dist.stop().await;
    reg.stop().await;
}
