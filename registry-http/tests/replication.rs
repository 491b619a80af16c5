//! Replication against distribution 2.8 (Debian's `docker-registry`) behind htpasswd: a
//! push-based policy copies images, a multi-arch index with its children and a cosign signature
//! to it, digest for digest, filtered by name and tag, flattened under a namespace; a second run
//! sends nothing new; a pull-based policy copies them back into a project of this registry; bad
//! policies are refused saying why, and only system admins replicate. Label filters, chunked
//! copies, deletions replicated on events (a digest deleted there too; a tag where the remote
//! cannot delete tags failing saying so), `REPLICATION` webhooks, a bandwidth limit, and a remote
//! killed in the middle of a blob (no tag there while it is down; the retry completes).

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

/// A registry with Harbor's accounts and a fast job queue, distribution behind Basic auth, and the
/// registry's system admin.
async fn start() -> (TestRegistry, Distribution, Api) {
    let reg = harbor_registry().await;
    let dist = Distribution::basic("mirror", "s3cret-pass").await;
    let admin = Api::new(&reg, Some(ADMIN));
    (reg, dist, admin)
}

/// `dist` as a registry endpoint named `dist` (signing in as its `mirror` user); its id.
async fn endpoint(admin: &Api, dist: &Distribution) -> u64 {
    endpoint_as(admin, dist, ("mirror", "s3cret-pass")).await
}

/// `dist` as a registry endpoint named `dist`, signing in with `credential`; its id.
async fn endpoint_as(admin: &Api, dist: &Distribution, credential: (&str, &str)) -> u64 {
    let endpoint = json!({"name": "dist", "type": "docker-registry", "url": dist.url(),
        "credential": {"type": "basic", "access_key": credential.0, "access_secret": credential.1}});
    admin.post("/registries", endpoint).await.expect(StatusCode::CREATED, None).id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_indexes_and_signatures_replicate_to_and_from_distribution() {
    let (reg, dist, admin) = start().await;
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

    let registry_id = endpoint(&admin, &dist).await;

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
    let push_id = pushed.id().to_string();
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
    let pull_id = pulled.id().to_string();
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
    let on_push_id = on_push.id().to_string();
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
    let scheduled_id = scheduled.id().to_string();
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

/// The `n`th execution of `policy` (oldest first), once it has ended.
async fn nth_execution(admin: &Api, policy: &str, n: usize) -> Value {
    for _ in 0..1500 {
        let listed =
            admin.get(&format!("/replication/executions?policy_id={policy}")).await.expect(StatusCode::OK, None);
        let mut all = listed.body.as_array().cloned().unwrap_or_default();
        all.sort_by_key(|e| e["id"].as_u64());
        if let Some(e) = all.get(n - 1)
            && e["status"] != "InProgress"
        {
            return e.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("execution {n} of policy {policy} did not end")
}

/// The log of the first task of `execution`.
async fn first_task_log(admin: &Api, execution: &Value) -> String {
    let tasks =
        admin.get(&format!("/replication/executions/{}/tasks", execution["id"])).await.expect(StatusCode::OK, None);
    let task = tasks.body[0]["id"].as_u64().expect("a task");
    let log = admin
        .get(&format!("/replication/executions/{}/tasks/{task}/log", execution["id"]))
        .await
        .expect(StatusCode::OK, None);
    log.body.as_str().unwrap_or_default().to_owned()
}

/// A policy from `body` (with `dest_registry` set to `registry`); its id.
async fn policy(admin: &Api, registry: u64, mut body: Value) -> String {
    body["dest_registry"] = json!({"id": registry});
    let made = admin.post("/replication/policies", body).await.expect(StatusCode::CREATED, None);
    made.id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_chunks_deletions_and_webhooks_of_replication() {
    let (reg, dist, admin) = start().await;
    let (c, base) = (client(), reg.url());
    let scopes = ["repository:team/app:pull,push,delete", "repository:team/big:pull,push"];
    let t = token(&c, &base, Some(ADMIN), &scopes).await;
    admin.put("/configurations", json!({"webhook_allow_private_targets": true})).await.expect(StatusCode::OK, None);
    let mut hook = testkit::hook::Receiver::start(200, true).await;
    admin
        .post(
            "/projects/team/webhook/policies",
            json!({"name": "replications", "event_types": ["REPLICATION"], "enabled": true,
                "targets": [{"type": "http", "address": hook.url, "payload_format": "Default"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let (_, v1) = push_image_as(&c, &base, "team/app", "v1", "one", Some(&t)).await;
    push_image_as(&c, &base, "team/app", "v2", "two", Some(&t)).await;
    let label = admin.post("/labels", json!({"name": "release", "scope": "g"})).await.expect(StatusCode::CREATED, None);
    let label_id = label.id();
    admin
        .post("/projects/team/repositories/app/artifacts/v1/labels", json!({"id": label_id}))
        .await
        .expect(StatusCode::CREATED, None);
    let registry = endpoint(&admin, &dist).await;

    // Label filters: only what carries the label; pull-based policies cannot filter by labels.
    let refused = admin
        .post(
            "/replication/policies",
            json!({"name": "p", "src_registry": {"id": registry}, "filters": [{"type": "label", "value": ["release"]}]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(refused.body.to_string().contains("push-based"), "{}", refused.body);
    let released = policy(
        &admin,
        registry,
        json!({"name": "released", "dest_namespace": "released", "dest_namespace_replace_count": 1,
            "filters": [{"type": "name", "value": "team/app"}, {"type": "label", "value": ["release"]}]}),
    )
    .await;
    let execution = run(&admin, &released).await;
    assert_eq!((execution["status"].as_str(), execution["total"].as_u64()), (Some("Succeed"), Some(1)), "{execution}");
    assert_eq!(at_distribution(&dist, "released/app", "v1").await, Some(v1.clone()));
    assert_eq!(at_distribution(&dist, "released/app", "v2").await, None, "v2 carries no release label");
    assert!(dist.requests("PATCH ").is_empty(), "blobs went in one request each");
    let delivered: Value = serde_json::from_slice(&hook.next().await.body).expect("json");
    assert_eq!(delivered["type"], "REPLICATION", "{delivered}");
    let summary = &delivered["event_data"]["replication"];
    assert_eq!(summary["job_status"], "Succeed", "{delivered}");
    assert_eq!(summary["dest_resource"]["registry_name"], "dist");
    assert_eq!(summary["dest_resource"]["namespace"], "released");
    assert_eq!(summary["src_resource"]["namespace"], "team");
    assert_eq!(summary["successful_artifact"][0]["name_tag"], "team/app:v1", "{summary}");

    // By chunk: the config in one PATCH, the 11 MiB layer in two (10 MiB each at most), whole.
    let layer = incompressible(11 << 20, 7);
    let layer_digest = Digest::sha256_of(&layer);
    let manifest = push_layer_image(&c, &base, "team/big", "v1", &layer, Some(&t)).await;
    let chunked = policy(
        &admin,
        registry,
        json!({"name": "chunked", "copy_by_chunk": true, "filters": [{"type": "name", "value": "team/big"}]}),
    )
    .await;
    let shown = admin.get(&format!("/replication/policies/{chunked}")).await.expect(StatusCode::OK, None);
    assert_eq!((shown.body["copy_by_chunk"].as_bool(), shown.body["speed"].as_i64()), (Some(true), Some(-1)));
    assert_eq!(run(&admin, &chunked).await["status"], "Succeed");
    assert_eq!(at_distribution(&dist, "team/big", "v1").await, Some(Digest::sha256_of(manifest.as_bytes())));
    let patches = dist.requests("PATCH /v2/team/big/blobs/uploads/");
    assert_eq!(patches.len(), 3, "{patches:?}");
    let fetched = client()
        .get(format!("{}/v2/team/big/blobs/{layer_digest}", dist.url()))
        .basic_auth("mirror", Some("s3cret-pass"))
        .send()
        .await
        .expect("blob")
        .bytes()
        .await
        .expect("bytes");
    assert!(fetched.as_ref() == layer.as_slice(), "the layer arrived whole");

    // Deletions replicated on events: a digest deleted here goes there; a tag cannot go from
    // distribution 2.8, and the execution fails saying so.
    let mirrored = policy(
        &admin,
        registry,
        json!({"name": "mirrored", "dest_namespace": "events", "trigger": {"type": "event_based"},
            "replicate_deletion": true, "filters": [{"type": "name", "value": "team/app"}]}),
    )
    .await;
    let (_, v3) = push_image_as(&c, &base, "team/app", "v3", "three", Some(&t)).await;
    assert_eq!(nth_execution(&admin, &mirrored, 1).await["status"], "Succeed");
    assert_eq!(at_distribution(&dist, "events/app", "v3").await, Some(v3.clone()));
    let deleted = c.delete(format!("{base}/v2/team/app/manifests/{v3}")).bearer_auth(&t).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let execution = nth_execution(&admin, &mirrored, 2).await;
    assert_eq!(execution["status"], "Succeed", "{execution}");
    assert!(first_task_log(&admin, &execution).await.contains(&format!("deleted events/app@{v3}")));
    assert_eq!(at_distribution(&dist, "events/app", "v3").await, None, "deleted there too");
    assert_eq!(at_distribution(&dist, "events/app", &v3.to_string()).await, None);

    push_image_as(&c, &base, "team/app", "v4", "four", Some(&t)).await;
    assert_eq!(nth_execution(&admin, &mirrored, 3).await["status"], "Succeed");
    let untagged = c.delete(format!("{base}/v2/team/app/manifests/v4")).bearer_auth(&t).send().await.expect("delete");
    assert_eq!(untagged.status(), StatusCode::ACCEPTED);
    let execution = nth_execution(&admin, &mirrored, 4).await;
    assert_eq!(execution["status"], "Failed", "{execution}");
    let log = first_task_log(&admin, &execution).await;
    assert!(log.contains("does not delete tags"), "{log}");
    assert!(at_distribution(&dist, "events/app", "v4").await.is_some(), "kept there");

    // Bad settings are refused saying why.
    let refused = admin
        .post("/replication/policies", json!({"name": "p", "dest_registry": {"id": registry}, "speed": -5}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(refused.body.to_string().contains("speed"), "{}", refused.body);
    dist.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_killed_mid_blob_gets_no_tag_and_the_retry_completes() {
    let (reg, mut dist, admin) = start().await;
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let manifest = push_layer_image(&c, &base, "team/app", "v1", &incompressible(1 << 20, 3), Some(&t)).await;
    let registry_id = endpoint(&admin, &dist).await;
    // 512 KiB/s: the 1 MiB layer takes two seconds, long enough to cut it in the middle.
    let policy_id = policy(&admin, registry_id, json!({"name": "p", "speed": 512})).await;

    let started = admin
        .post("/replication/executions", json!({"policy_id": policy_id.parse::<u64>().expect("id")}))
        .await
        .expect(StatusCode::CREATED, None);
    let id = started.id().to_string();
    // The config's upload opens first, then the layer's: once distribution has opened the
    // second, the layer's two-second PUT is under way.
    let opened = || dist.requests("\"POST /v2/team/app/blobs/uploads/ HTTP/1.1\" 202").len();
    for _ in 0..1500 {
        if opened() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(opened(), 2, "the layer's upload opened");
    dist.kill().await;
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
    let tag = dist.data().join("docker/registry/v2/repositories/team/app/_manifests/tags/v1");
    assert!(!tag.exists(), "no tag at the remote while its content is incomplete");

    // Back: the retry completes the copy.
    dist.restart().await;
    let done = ended(&admin, started.header("location")).await;
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(at_distribution(&dist, "team/app", "v1").await, Some(Digest::sha256_of(manifest.as_bytes())));
    let tasks = admin.get(&format!("/replication/executions/{id}/tasks")).await.expect(StatusCode::OK, None);
    assert!(tasks.body[0]["bytes"].as_u64() >= Some(1 << 20), "the retry sent the layer: {}", tasks.body);
    dist.stop().await;
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_and_from_distribution_behind_a_token_realm() {
    // This registry issues distribution's tokens too (its realm, our certificate as its root).
    let reg = TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .also_issue_for("distribution-test")
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .start()
        .await
        .expect("start");
    let certificate = reg.token_certificate_pem().expect("certificate");
    let dist = Distribution::start(|dir| {
        let bundle = dir.join("token-root.pem");
        std::fs::write(&bundle, certificate).expect("bundle");
        format!(
            "auth:\n  token:\n    realm: {}/auth/token\n    service: distribution-test\n    issuer: {}\n    rootcertbundle: {}\n",
            reg.url(),
            registry_http::token::ISSUER,
            bundle.display()
        )
    })
    .await;
    let admin = Api::new(&reg, Some(ADMIN));
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let (_, v1) = push_image_as(&c, &base, "team/app", "v1", "token-realm", Some(&t)).await;
    let registry = endpoint_as(&admin, &dist, ("dev", "password1")).await;
    let shown = admin.get(&format!("/registries/{registry}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["status"], "healthy", "{}", shown.body);

    // Push-based: distribution asks for a token for team/app, which dev may push to.
    let pushed =
        policy(&admin, registry, json!({"name": "out", "filters": [{"type": "name", "value": "team/app"}]})).await;
    assert_eq!(run(&admin, &pushed).await["status"], "Succeed");
    let dt = token(&c, &dist.url(), Some(("dev", "password1")), &["repository:team/app:pull"]).await;
    let head = c
        .head(format!("{}/v2/team/app/manifests/v1", dist.url()))
        .bearer_auth(&dt)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["docker-content-digest"].to_str().expect("digest"), v1.to_string());

    // Pull-based, back into another project, through the same token flow.
    admin.post("/projects", json!({"project_name": "back"})).await.expect(StatusCode::CREATED, None);
    let pulled = admin
        .post(
            "/replication/policies",
            json!({"name": "in", "src_registry": {"id": registry}, "dest_namespace": "back",
                "dest_namespace_replace_count": 1, "filters": [{"type": "name", "value": "team/app"}]}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let pulled = pulled.id().to_string();
    let execution = run(&admin, &pulled).await;
    assert_eq!(execution["status"], "Succeed", "{execution}");
    let artifact = admin.get("/projects/back/repositories/app/artifacts/v1").await.expect(StatusCode::OK, None);
    assert_eq!(artifact.body["digest"], v1.to_string());
    dist.stop().await;
    reg.stop().await;
}
