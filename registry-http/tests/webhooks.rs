//! Webhooks against real HTTP receivers started by the test: both payload formats field by field,
//! the signature, a receiver that is down and then up (delivered, the retries recorded), a restart
//! with deliveries pending, a receiver that does not answer (pushes go on), the SSRF guard, and who
//! may manage policies.

use std::sync::atomic::Ordering;

use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::hook::Receiver;
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

async fn api(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    creds: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c.request(method, url).basic_auth(creds.0, Some(creds.1));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

async fn set_up(reg: &TestRegistry) {
    let accounts = reg.accounts().expect("accounts").acting_as(registry_core::event::Operator::system());
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.add_user("dev", "password1", false).await.expect("dev");
    accounts.add_user("keeper", "password1", false).await.expect("keeper");
    accounts.create_project("team", false).await.expect("team");
    accounts.add_member("team", "dev", registry_auth::model::Role::Developer, None).await.expect("member");
    accounts.add_member("team", "keeper", registry_auth::model::Role::Maintainer, None).await.expect("member");
}

fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_both_formats_retried_until_the_receiver_is_up() {
    let reg = TestRegistry::builder()
        .harbor_accounts()
        .jobs(std::time::Duration::from_secs(5), std::time::Duration::from_millis(50))
        .webhook_retry(5, std::time::Duration::from_millis(100))
        .start()
        .await
        .expect("start");
    set_up(&reg).await;
    let (c, base) = (client(), reg.url());
    let policies = format!("{base}/api/v2.0/projects/team/webhook/policies");
    let mut plain = Receiver::start(200, true).await;
    let mut cloud = Receiver::start(503, true).await;
    let policy = |name: &str, url: &str, format: &str| {
        json!({
            "name": name,
            "targets": [{"type": "http", "address": url, "auth_header": "Bearer hook-token", "payload_format": format}],
            "event_types": ["PUSH_ARTIFACT", "DELETE_ARTIFACT"],
            "enabled": true,
            "secret": "s3cret-signing-key",
        })
    };

    // The SSRF guard: a loopback target is refused until an admin allows private targets.
    let (status, body) =
        api(&c, reqwest::Method::POST, &policies, ADMIN, Some(policy("plain", &plain.url, "Default"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("webhook_allow_private_targets"), "{body}");
    let configurations = format!("{base}/api/v2.0/configurations");
    let (status, _) = api(
        &c,
        reqwest::Method::PUT,
        &configurations,
        ("dev", "password1"),
        Some(json!({"webhook_allow_private_targets": true})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        api(&c, reqwest::Method::PUT, &configurations, ADMIN, Some(json!({"webhook_allow_private_targets": true})))
            .await;
    assert_eq!(status, StatusCode::OK);

    // Who may manage: project admins (and system admins) write, maintainers read, developers nothing.
    let (status, _) =
        api(&c, reqwest::Method::POST, &policies, ("keeper", "password1"), Some(policy("x", &plain.url, "Default")))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api(&c, reqwest::Method::GET, &policies, ("dev", "password1"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bad = json!({"name": "bad", "targets": [{"address": plain.url}], "event_types": ["PUSH_EVERYTHING"]});
    let (status, body) = api(&c, reqwest::Method::POST, &policies, ADMIN, Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("PUSH_EVERYTHING"), "{body}");

    let (status, created) =
        api(&c, reqwest::Method::POST, &policies, ADMIN, Some(policy("plain", &plain.url, "Default"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let plain_id = created["id"].as_u64().expect("id");
    let (status, _) =
        api(&c, reqwest::Method::POST, &policies, ADMIN, Some(policy("plain", &plain.url, "Default"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "names are unique in a project");
    let (status, created) =
        api(&c, reqwest::Method::POST, &policies, ADMIN, Some(policy("cloud", &cloud.url, "CloudEvents"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let cloud_id = created["id"].as_u64().expect("id");
    let (status, shown) =
        api(&c, reqwest::Method::GET, &format!("{policies}/{plain_id}"), ("keeper", "password1"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["targets"][0]["auth_header"], "***", "the header is never shown");
    assert!(!shown.to_string().contains("s3cret"), "nor the secret: {shown}");
    assert_eq!(shown["event_types"], json!(["PUSH_ARTIFACT", "DELETE_ARTIFACT"]));

    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push,delete"]).await;
    let (_, digest) = push_image_as(&c, &base, "team/app", "v1", "first", Some(&t)).await;

    // Harbor's default JSON, field by field, signed.
    let got = plain.next().await;
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["authorization"], "Bearer hook-token");
    assert_eq!(got.headers["x-registry-signature-256"], signature("s3cret-signing-key", &got.body).as_str());
    let event_id = got.headers["x-registry-event-id"].to_str().expect("id").to_owned();
    let v: Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(v["type"], "PUSH_ARTIFACT");
    assert_eq!(v["operator"], "admin");
    assert!(v["occur_at"].as_u64().expect("occur_at") > 1_700_000_000);
    let resource = &v["event_data"]["resources"][0];
    assert_eq!(resource["digest"], digest.to_string());
    assert_eq!(resource["tag"], "v1");
    assert_eq!(resource["resource_url"], format!("{}/team/app:v1", reg.host()));
    let repository = &v["event_data"]["repository"];
    assert_eq!((repository["namespace"].as_str(), repository["name"].as_str()), (Some("team"), Some("app")));
    assert_eq!(repository["repo_full_name"], "team/app");
    assert_eq!(repository["repo_type"], "private");

    // CloudEvents: refused twice (503), delivered on the third attempt, the same event id each time.
    for attempt in 1..=3 {
        if attempt == 3 {
            cloud.status.store(200, Ordering::SeqCst);
        }
        let got = cloud.next().await;
        assert_eq!(got.headers["x-registry-event-id"].to_str().expect("id"), event_id, "attempt {attempt}");
        assert_eq!(got.headers["content-type"], "application/cloudevents+json");
        let v: Value = serde_json::from_slice(&got.body).expect("json");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], event_id);
        assert_eq!(v["type"], "harbor.artifact.pushed");
        assert_eq!(v["source"], format!("/projects/{}/webhook/policies/{cloud_id}", shown["project_id"]));
        assert_eq!(v["datacontenttype"], "application/json");
        assert!(v["time"].as_str().expect("time").ends_with('Z'));
        assert_eq!(v["operator"], "admin");
        assert_eq!(v["data"]["resources"][0]["digest"], digest.to_string());
    }
    // The history shows the attempts and the receiver's answer.
    let executions = format!("{policies}/{cloud_id}/executions");
    let history = loop {
        let (_, history) = api(&c, reqwest::Method::GET, &executions, ADMIN, None).await;
        if history[0]["status"] == "Success" {
            break history;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(history.as_array().expect("array").len(), 1);
    assert_eq!(history[0]["extra_attrs"]["attempts"], 3, "{history}");
    assert_eq!(history[0]["extra_attrs"]["response_code"], 200);
    assert_eq!(history[0]["extra_attrs"]["event_type"], "PUSH_ARTIFACT");
    let execution = history[0]["id"].as_u64().expect("id");
    let log = c
        .get(format!("{executions}/{execution}/tasks/{execution}/log"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert_eq!(log.matches("answered 503").count(), 2, "{log}");

    // A deletion is delivered too; a pull is not (not among the policy's types).
    let deleted =
        c.delete(format!("{base}/v2/team/app/manifests/{digest}")).bearer_auth(&t).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let got = plain.next().await;
    assert_eq!(serde_json::from_slice::<Value>(&got.body).expect("json")["type"], "DELETE_ARTIFACT");

    // The test call reaches the receiver now; a receiver answering 500 fails it.
    let test_url = format!("{policies}/test");
    let probe = json!({"targets": [{"address": plain.url, "payload_format": "Default"}]});
    let (status, _) = api(&c, reqwest::Method::POST, &test_url, ADMIN, Some(probe.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&plain.next().await.body).expect("json")["type"], "PUSH_ARTIFACT");
    plain.status.store(500, Ordering::SeqCst);
    let (status, body) = api(&c, reqwest::Method::POST, &test_url, ADMIN, Some(probe)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("answered 500"), "{body}");

    // Policy changes are audited.
    reg.registry().flush_events().await;
    let (_, logs) = api(
        &c,
        reqwest::Method::GET,
        &format!("{base}/api/v2.0/audit-logs?q=resource_type%3Dwebhook_policy&page_size=50"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(logs.as_array().expect("array").len(), 2, "{logs}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_receiver_never_slows_pushes_and_a_restart_loses_no_delivery() {
    let dir = tempfile::tempdir().expect("dir");
    let start = || {
        TestRegistry::builder()
            .embedded(dir.path())
            .harbor_accounts()
            .jobs(std::time::Duration::from_secs(5), std::time::Duration::from_millis(50))
            .webhook_retry(20, std::time::Duration::from_millis(100))
            .start()
    };
    let reg = start().await.expect("start");
    set_up(&reg).await;
    let (c, base) = (client(), reg.url());
    // A receiver that takes every request and answers none until the test lets it.
    let stuck = Receiver::start(200, false).await;
    let configurations = format!("{base}/api/v2.0/configurations");
    api(&c, reqwest::Method::PUT, &configurations, ADMIN, Some(json!({"webhook_allow_private_targets": true}))).await;
    let policy = json!({"name": "stuck", "targets": [{"address": stuck.url}], "event_types": ["PUSH_ARTIFACT"]});
    let (status, _) =
        api(&c, reqwest::Method::POST, &format!("{base}/api/v2.0/projects/team/webhook/policies"), ADMIN, Some(policy))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    push_image_as(&c, &base, "team/app", "v0", "layer 0", Some(&t)).await;
    while stuck.arrived.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The receiver holds the first delivery unanswered: the next pushes are acknowledged anyway.
    for n in 1..5 {
        push_image_as(&c, &base, "team/app", &format!("v{n}"), &format!("layer {n}"), Some(&t)).await;
    }
    assert_eq!(stuck.gate.available_permits(), 0, "still nothing answered");

    // Restart with deliveries pending: the receiver is replaced by one that answers.
    reg.stop().await;
    drop(stuck);
    let mut up = Receiver::start(200, true).await;
    let reg = start().await.expect("restart");
    let base = reg.url();
    let policies = format!("{base}/api/v2.0/projects/team/webhook/policies");
    let (_, listed) = api(&c, reqwest::Method::GET, &policies, ADMIN, None).await;
    let id = listed[0]["id"].as_u64().expect("id");
    let target = json!({"targets": [{"address": up.url}]});
    let (status, _) = api(&c, reqwest::Method::PUT, &format!("{policies}/{id}"), ADMIN, Some(target)).await;
    assert_eq!(status, StatusCode::OK);
    let mut tags = std::collections::BTreeSet::new();
    while tags.len() < 5 {
        let got = up.next().await;
        let v: Value = serde_json::from_slice(&got.body).expect("json");
        tags.insert(v["event_data"]["resources"][0]["tag"].as_str().expect("tag").to_owned());
    }
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        vec!["v0", "v1", "v2", "v3", "v4"],
        "every push delivered once restarted"
    );
    reg.stop().await;
}

/// Quota events reach the webhooks: `QUOTA_WARNING` when a push takes the project past the
/// warning percentage, `QUOTA_EXCEED` when one is refused, each saying why in Harbor's
/// `custom_attributes.Details`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_warnings_and_refusals_are_delivered() {
    let reg = TestRegistry::builder()
        .harbor_accounts()
        .jobs(std::time::Duration::from_secs(5), std::time::Duration::from_millis(50))
        .start()
        .await
        .expect("start");
    set_up(&reg).await;
    let (c, base) = (client(), reg.url());
    let configurations = format!("{base}/api/v2.0/configurations");
    let settings = json!({"webhook_allow_private_targets": true, "quota_warning_percent": 50});
    let (status, _) = api(&c, reqwest::Method::PUT, &configurations, ADMIN, Some(settings)).await;
    assert_eq!(status, StatusCode::OK);
    let mut hook = Receiver::start(200, true).await;
    let policy = json!({
        "name": "quota",
        "targets": [{"type": "http", "address": hook.url, "payload_format": "Default"}],
        "event_types": ["QUOTA_WARNING", "QUOTA_EXCEED"],
        "enabled": true,
    });
    let policies = format!("{base}/api/v2.0/projects/team/webhook/policies");
    let (status, body) = api(&c, reqwest::Method::POST, &policies, ADMIN, Some(policy)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, quotas) = api(&c, reqwest::Method::GET, &format!("{base}/api/v2.0/quotas"), ADMIN, None).await;
    assert_eq!(status, StatusCode::OK);
    let id = quotas.as_array().expect("quotas").iter().find(|q| q["ref"]["name"] == "team").expect("team's")["id"]
        .as_u64()
        .expect("id");
    let limit = json!({"hard": {"storage": 4000}});
    let (status, _) = api(&c, reqwest::Method::PUT, &format!("{base}/api/v2.0/quotas/{id}"), ADMIN, Some(limit)).await;
    assert_eq!(status, StatusCode::OK);

    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull,push"]).await;
    push_blob_as(&c, &base, "team/app", &[1u8; 2500], Some(&t)).await;
    let warning: Value = serde_json::from_slice(&hook.next().await.body).expect("json");
    assert_eq!(warning["type"], "QUOTA_WARNING", "{warning}");
    assert_eq!(warning["event_data"]["repository"]["namespace"], "team");
    let details = warning["event_data"]["custom_attributes"]["Details"].as_str().expect("details");
    assert!(details.contains("project team") && details.contains("50%"), "{details}");

    let big = vec![2u8; 3000];
    let digest = registry_core::Digest::sha256_of(&big);
    let refused = c
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(&t)
        .body(big)
        .send()
        .await
        .expect("push");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let exceeded: Value = serde_json::from_slice(&hook.next().await.body).expect("json");
    assert_eq!(exceeded["type"], "QUOTA_EXCEED", "{exceeded}");
    assert_eq!(exceeded["operator"], "admin", "the refused pusher is named");
    let details = exceeded["event_data"]["custom_attributes"]["Details"].as_str().expect("details");
    assert!(details.contains("quota exceeded: project team"), "{details}");
    reg.stop().await;
}
