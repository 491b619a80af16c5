//! Governing content after the push, over HTTP: storage quotas (limits, refusals that name the
//! project, its usage and its limit, the counters moving with pushes, deletions and garbage
//! collection, the events), tag immutability (re-push allowed, move and deletion refused naming
//! the rule, nothing half-deleted), labels (global and project, on artifacts, as a filter), each
//! endpoint's permission matrix and its answers to bad input.

use registry_http::TestRegistry;
use registry_storage::GcOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::{Api, location_id};
use testkit::*;

/// A registry with Harbor's accounts: `admin`; `pa`, `ma`, `dev`, `guest`, `lg` in project
/// `team` with those roles; `outsider`; and two robots of `team`, one holding `perm`
/// (`resource:action,…`) and one holding only pull.
async fn registry(perm: &[(&str, &str)]) -> (TestRegistry, String, String) {
    use registry_auth::{NewRobot, RobotAccess, RobotPermission, Role};
    let accounts = harbor_accounts().await;
    for (user, role) in [("pa", Role::ProjectAdmin), ("lg", Role::LimitedGuest)] {
        accounts.add_user(user, "password1", false).await.expect("user");
        accounts.add_member("team", user, role, None).await.expect("member");
    }
    let robot = |name: &str, access: Vec<RobotAccess>| {
        let permission =
            RobotPermission { kind: "project".into(), namespace: "team".into(), access, repositories: None };
        NewRobot::for_project("team", name, vec![permission])
    };
    let mut granted: Vec<RobotAccess> =
        perm.iter().map(|(r, a)| RobotAccess { resource: (*r).into(), action: (*a).into() }).collect();
    granted.push(RobotAccess { resource: "repository".into(), action: "pull".into() });
    let (_, with) = accounts.create_robot(robot("with", granted)).await.expect("robot");
    let pull = vec![RobotAccess { resource: "repository".into(), action: "pull".into() }];
    let (_, without) = accounts.create_robot(robot("without", pull)).await.expect("robot");
    let reg = TestRegistry::builder().accounts(accounts).start().await.expect("start");
    (reg, with, without)
}

fn as_user(reg: &TestRegistry, user: &str) -> Api {
    let password = if user == "admin" { "adminpassword" } else { "password1" };
    Api::new(reg, Some((user, password)))
}

/// Who is allowed, by caller: the users of [`registry`] and its two robots.
async fn matrix(
    reg: &TestRegistry,
    robots: (&str, &str),
    allowed: &[&str],
    call: impl AsyncFn(&Api) -> StatusCode,
    what: &str,
) {
    let callers = [
        ("admin", as_user(reg, "admin")),
        ("pa", as_user(reg, "pa")),
        ("ma", as_user(reg, "ma")),
        ("dev", as_user(reg, "dev")),
        ("guest", as_user(reg, "guest")),
        ("lg", as_user(reg, "lg")),
        ("outsider", as_user(reg, "outsider")),
        ("robot-with", Api::new(reg, Some(("robot$team+with", robots.0)))),
        ("robot-without", Api::new(reg, Some(("robot$team+without", robots.1)))),
        ("anonymous", Api::new(reg, None)),
    ];
    for (name, api) in &callers {
        let status = call(api).await;
        if allowed.contains(name) {
            assert!(status.is_success(), "{what}: {name} is allowed, got {status}");
        } else if *name == "anonymous" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: anonymous");
        } else {
            assert!(
                status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                "{what}: {name} is refused, got {status}"
            );
        }
    }
}

fn error_message(body: &Value) -> String {
    body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn quotas_refuse_what_passes_the_limit_and_keep_exact_counts() {
    let (reg, _, _) = registry(&[]).await;
    let c = client();
    let admin = as_user(&reg, "admin");
    let created = admin.post("/projects", json!({"project_name": "q", "storage_limit": 3000})).await;
    let q_id = location_id(&created.expect(StatusCode::CREATED, None));
    let t = token(&c, &reg.url(), Some(("admin", "adminpassword")), &["repository:q/app:pull,push,delete"]).await;

    // Within the limit: an image (config, layer, manifest) of about 1.7 KB.
    let (_, first) = push_image_as(&c, &reg.url(), "q/app", "v1", "one", Some(&t)).await;
    let summary = admin.get("/projects/q/summary").await.expect(StatusCode::OK, None);
    let used = summary.body["quota"]["used"]["storage"].as_u64().expect("used");
    assert_eq!(summary.body["quota"]["hard"]["storage"], 3000);
    assert!(used > 1000 && used < 3000, "{used}");
    // The same layer in another repository of the project counts once.
    let layer = "layer of one".repeat(100);
    push_blob_as(&c, &reg.url(), "q/app", layer.as_bytes(), Some(&t)).await;
    let t2 = token(&c, &reg.url(), Some(("admin", "adminpassword")), &["repository:q/other:pull,push"]).await;
    push_blob_as(&c, &reg.url(), "q/other", layer.as_bytes(), Some(&t2)).await;
    let again = admin.get("/projects/q/summary").await.expect(StatusCode::OK, None);
    assert_eq!(again.body["quota"]["used"]["storage"].as_u64(), Some(used), "deduplicated inside the project");

    // Past the limit: DENIED, naming the project, its usage and its limit; nothing linked.
    let big = vec![7u8; 2000];
    let digest = registry_core::Digest::sha256_of(&big);
    let resp = c
        .post(format!("{}/v2/q/app/blobs/uploads/?digest={digest}", reg.url()))
        .bearer_auth(&t)
        .body(big.clone())
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = error_message(&body);
    assert!(message.contains("project q") && message.contains("quota"), "{message}");
    assert!(message.contains("3000 B") || message.contains("2.9 KiB"), "the limit is named: {message}");
    let head = c.head(format!("{}/v2/q/app/blobs/{digest}", reg.url())).bearer_auth(&t).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::NOT_FOUND, "the refused blob is not in the repository");
    // A chunked upload is refused at its completion too.
    let start = c.post(format!("{}/v2/q/app/blobs/uploads/", reg.url())).bearer_auth(&t).send().await.expect("start");
    let location = header(&start, "location");
    let location = if location.starts_with("http") { location } else { format!("{}{location}", reg.url()) };
    let patch = c.patch(&location).bearer_auth(&t).body(big.clone()).send().await.expect("patch");
    assert_eq!(patch.status(), StatusCode::ACCEPTED);
    let location = header(&patch, "location");
    let location = if location.starts_with("http") { location } else { format!("{}{location}", reg.url()) };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = c.put(format!("{location}{sep}digest={digest}")).bearer_auth(&t).send().await.expect("put");
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    // The image pushed before is whole.
    let got = c
        .get(format!("{}/v2/q/app/manifests/v1", reg.url()))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(header(&got, "docker-content-digest"), first.to_string());

    // The quotas API, Harbor's shapes; raising the limit lets the push through.
    let quotas =
        admin.get(&format!("/quotas?reference=project&reference_id={q_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(quotas.header("x-total-count"), "1");
    let quota = &quotas.body[0];
    assert_eq!((quota["id"].as_u64(), quota["ref"]["name"].as_str()), (Some(q_id), Some("q")));
    assert_eq!(quota["hard"]["storage"], 3000);
    assert_eq!(quota["used"]["storage"].as_u64(), Some(used));
    assert!(quota["creation_time"].as_str().is_some_and(|t| t.ends_with('Z')));
    admin.put(&format!("/quotas/{q_id}"), json!({"hard": {"storage": 100_000}})).await.expect(StatusCode::OK, None);
    push_blob_as(&c, &reg.url(), "q/app", &big, Some(&t)).await;
    let quota = admin.get(&format!("/quotas/{q_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(quota.body["used"]["storage"].as_u64(), Some(used + 2000));
    let sorted = admin.get("/quotas?sort=-used.storage").await.expect(StatusCode::OK, None);
    assert_eq!(sorted.body[0]["ref"]["name"], "q", "the biggest first");

    // Bad input: 400 with what is wrong.
    for (body, says) in [
        (json!({"hard": {"storage": -5}}), "out of range"),
        (json!({"hard": {"storage": 0}}), "out of range"),
        (json!({"hard": {"storage": 1u64 << 62}}), "out of range"),
        (json!({"hard": {"storage": "lots"}}), "whole number"),
        (json!({"hard": {}}), "hard required"),
        (json!({"hard": {"count": 5}}), "only storage"),
    ] {
        let answer =
            admin.put(&format!("/quotas/{q_id}"), body).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
        assert!(error_message(&answer.body).contains(says), "{}", answer.body);
    }
    admin.get("/quotas/999999").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    let refused = admin.post("/projects", json!({"project_name": "absurd", "storage_limit": -7})).await;
    refused.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/projects/absurd").await.expect(StatusCode::NOT_FOUND, None);

    // Only system admins read and change quotas; members see theirs in the summary.
    as_user(&reg, "ma").get("/quotas").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    Api::new(&reg, None).get("/quotas").await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));
    as_user(&reg, "ma")
        .put(&format!("/quotas/{q_id}"), json!({"hard": {"storage": -1}}))
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // The default for new projects, and Harbor's rule that only admins choose a limit.
    admin.put("/configurations", json!({"storage_per_project": 5000})).await.expect(StatusCode::OK, None);
    admin.put("/configurations", json!({"storage_per_project": -3})).await.expect(StatusCode::BAD_REQUEST, None);
    admin.put("/configurations", json!({"quota_warning_percent": 0})).await.expect(StatusCode::BAD_REQUEST, None);
    let settings = admin.get("/configurations").await.expect(StatusCode::OK, None);
    assert_eq!(settings.body["storage_per_project"]["value"], 5000);
    as_user(&reg, "dev")
        .post("/projects", json!({"project_name": "devs", "storage_limit": 1}))
        .await
        .expect(StatusCode::CREATED, None);
    let devs = admin.get("/projects/devs/summary").await.expect(StatusCode::OK, None);
    assert_eq!(devs.body["quota"]["hard"]["storage"], 5000, "a user's storage_limit gives way to the default");

    // Deleting frees nothing until garbage collection; then the counter falls.
    let before =
        admin.get(&format!("/quotas/{q_id}")).await.expect(StatusCode::OK, None).body["used"]["storage"].as_u64();
    admin.delete("/projects/q/repositories/app").await.expect(StatusCode::OK, None);
    let after_delete =
        admin.get(&format!("/quotas/{q_id}")).await.expect(StatusCode::OK, None).body["used"]["storage"].as_u64();
    assert!(after_delete < before, "the manifest's own bytes go at once");
    let gc = GcOptions { grace: std::time::Duration::ZERO, delete_untagged: true, ..GcOptions::default() };
    reg.registry().collect_garbage(&gc).await.expect("gc");
    let after_gc =
        admin.get(&format!("/quotas/{q_id}")).await.expect(StatusCode::OK, None).body["used"]["storage"].as_u64();
    assert!(after_gc < after_delete, "garbage collection frees the blobs: {after_gc:?} < {after_delete:?}");
    let verify = admin.get("/system/quotas/verify").await.expect(StatusCode::OK, None);
    assert_eq!(verify.body["drift"], json!([]), "the counters are exact: {}", verify.body);

    // The refusal is an event (QUOTA_EXCEED) in the audit log.
    reg.registry().flush_events().await;
    let log = admin.get("/audit-logs?q=resource_type=quota,operation=exceed").await.expect(StatusCode::OK, None);
    assert!(log.body.as_array().is_some_and(|l| !l.is_empty()), "{}", log.body);
    reg.stop().await;
}

#[tokio::test]
async fn immutable_tags_stay_where_they_are() {
    let (reg, with, without) = registry(&[("immutable-tag", "*")]).await;
    let c = client();
    let (admin, ma) = (as_user(&reg, "admin"), as_user(&reg, "ma"));
    let rule = json!({
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    });
    let created = ma.post("/projects/team/immutabletagrules", rule.clone()).await.expect(StatusCode::CREATED, None);
    let rule_id = location_id(&created);
    ma.post("/projects/team/immutabletagrules", rule.clone()).await.expect(StatusCode::CONFLICT, Some("CONFLICT"));
    let listed = ma.get("/projects/team/immutabletagrules").await.expect(StatusCode::OK, None);
    assert_eq!(listed.body[0]["id"].as_u64(), Some(rule_id));
    assert_eq!(listed.body[0]["action"], "immutable");
    assert_eq!(listed.body[0]["template"], "immutable_template");
    assert_eq!(listed.body[0]["disabled"], false);

    let t = token(&c, &reg.url(), Some(("admin", "adminpassword")), &["repository:team/app:pull,push,delete"]).await;
    let (manifest, v1) = push_image_as(&c, &reg.url(), "team/app", "v1.0", "first", Some(&t)).await;
    push_image_as(&c, &reg.url(), "team/app", "latest", "first", Some(&t)).await;
    // The same bytes again under the protected tag: fine.
    let again = c
        .put(format!("{}/v2/team/app/manifests/v1.0", reg.url()))
        .bearer_auth(&t)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .expect("re-push");
    assert_eq!(again.status(), StatusCode::CREATED);
    // Other bytes under it: DENIED, naming the rule; the tag stays.
    let config = push_blob_as(&c, &reg.url(), "team/app", b"{\"other\":1}", Some(&t)).await;
    let other = image_manifest(&config, 11, &[], "");
    let moved = c
        .put(format!("{}/v2/team/app/manifests/v1.0", reg.url()))
        .bearer_auth(&t)
        .header("content-type", OCI_MANIFEST)
        .body(other.clone())
        .send()
        .await
        .expect("push over");
    assert_eq!(moved.status(), StatusCode::FORBIDDEN);
    let body: Value = moved.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(error_message(&body).contains(&format!("rule {rule_id}")), "{body}");
    let still = c.head(format!("{}/v2/team/app/manifests/v1.0", reg.url())).bearer_auth(&t).send().await.expect("head");
    assert_eq!(header(&still, "docker-content-digest"), v1.to_string());
    // An unprotected tag moves.
    let latest = c
        .put(format!("{}/v2/team/app/manifests/latest", reg.url()))
        .bearer_auth(&t)
        .header("content-type", OCI_MANIFEST)
        .body(other)
        .send()
        .await
        .expect("move latest");
    assert_eq!(latest.status(), StatusCode::CREATED);

    // Deleting the tag, the artifact or the repository: refused, nothing deleted.
    let del = c.delete(format!("{}/v2/team/app/manifests/v1.0", reg.url())).bearer_auth(&t).send().await.expect("del");
    assert_eq!(del.status(), StatusCode::FORBIDDEN);
    admin.delete("/projects/team/repositories/app/artifacts/v1.0/tags/v1.0").await.expect(StatusCode::FORBIDDEN, None);
    admin.delete(&format!("/projects/team/repositories/app/artifacts/{v1}")).await.expect(StatusCode::FORBIDDEN, None);
    let refused = admin.delete("/projects/team/repositories/app").await.expect(StatusCode::FORBIDDEN, None);
    assert!(error_message(&refused.body).contains("immutable"), "{}", refused.body);
    let artifacts = admin.get("/projects/team/repositories/app/artifacts").await.expect(StatusCode::OK, None);
    assert_eq!(artifacts.header("x-total-count"), "2", "both artifacts are still there");
    let artifact = admin.get("/projects/team/repositories/app/artifacts/v1.0").await.expect(StatusCode::OK, None);
    let tags = artifact.body["tags"].as_array().expect("tags");
    assert_eq!(tags[0]["name"], "v1.0");
    assert_eq!(tags[0]["immutable"], true);
    let other_artifact =
        admin.get("/projects/team/repositories/app/artifacts/latest").await.expect(StatusCode::OK, None);
    assert_eq!(other_artifact.body["tags"][0]["immutable"], false);

    // Disabled, the rule protects nothing.
    ma.put(&format!("/projects/team/immutabletagrules/{rule_id}"), json!({"disabled": true}))
        .await
        .expect(StatusCode::OK, None);
    let listed = ma.get("/projects/team/immutabletagrules").await.expect(StatusCode::OK, None);
    assert_eq!(listed.body[0]["disabled"], true);
    assert_eq!(listed.body[0]["tag_selectors"][0]["pattern"], "v*", "the selectors stay");
    admin.delete("/projects/team/repositories/app/artifacts/v1.0/tags/v1.0").await.expect(StatusCode::OK, None);

    // Bad rules: 400 saying what is wrong.
    for (body, says) in [
        (
            json!({"tag_selectors": [{"kind": "regexp", "decoration": "matches", "pattern": "v"}], "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}),
            "doublestar",
        ),
        (
            json!({"tag_selectors": [{"kind": "doublestar", "decoration": "nearly", "pattern": "v"}], "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}),
            "decoration",
        ),
        (
            json!({"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "{v"}], "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}),
            "unmatched",
        ),
        (
            json!({"tag_selectors": [], "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}),
            "tag_selectors",
        ),
        (
            json!({"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v"}], "scope_selectors": {}}),
            "scope_selectors.repository",
        ),
        (
            json!({"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v"}], "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}, "action": "retain"}),
            "immutable",
        ),
    ] {
        let answer = ma
            .post("/projects/team/immutabletagrules", body)
            .await
            .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
        assert!(error_message(&answer.body).contains(says), "{says}: {}", answer.body);
    }
    ma.put("/projects/team/immutabletagrules/999999", rule.clone()).await.expect(StatusCode::NOT_FOUND, None);

    // Who may: project admins, maintainers, system admins, robots holding immutable-tag.
    let allowed = ["admin", "pa", "ma", "robot-with"];
    matrix(
        &reg,
        (&with, &without),
        &allowed,
        async |api: &Api| api.get("/projects/team/immutabletagrules").await.status,
        "list rules",
    )
    .await;
    let n = std::sync::atomic::AtomicUsize::new(0);
    matrix(
        &reg,
        (&with, &without),
        &allowed,
        async |api: &Api| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = json!({
                "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": format!("rc{i}-*")}],
                "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
            });
            api.post("/projects/team/immutabletagrules", body).await.status
        },
        "create a rule",
    )
    .await;
    matrix(
        &reg,
        (&with, &without),
        &allowed,
        async |api: &Api| {
            api.put(&format!("/projects/team/immutabletagrules/{rule_id}"), json!({"disabled": false})).await.status
        },
        "enable a rule",
    )
    .await;
    ma.delete(&format!("/projects/team/immutabletagrules/{rule_id}")).await.expect(StatusCode::OK, None);
    as_user(&reg, "dev")
        .delete(&format!("/projects/team/immutabletagrules/{rule_id}"))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    reg.stop().await;
}

#[tokio::test]
async fn labels_global_and_of_projects_on_artifacts() {
    let (reg, with, without) = registry(&[("label", "*"), ("artifact-label", "*")]).await;
    let c = client();
    let (admin, ma) = (as_user(&reg, "admin"), as_user(&reg, "ma"));
    let team_id =
        admin.get("/projects/team").await.expect(StatusCode::OK, None).body["project_id"].as_u64().expect("id");
    let global = admin
        .post("/labels", json!({"name": "release", "color": "#00aa00", "description": "shipped", "scope": "g"}))
        .await
        .expect(StatusCode::CREATED, None);
    let global_id = location_id(&global);
    ma.post("/labels", json!({"name": "other", "scope": "g"})).await.expect(StatusCode::FORBIDDEN, None);
    let local = ma
        .post("/labels", json!({"name": "qa-passed", "scope": "p", "project_id": team_id}))
        .await
        .expect(StatusCode::CREATED, None);
    let local_id = location_id(&local);
    ma.post("/labels", json!({"name": "qa-passed", "scope": "p", "project_id": team_id}))
        .await
        .expect(StatusCode::CONFLICT, None);
    let shown = as_user(&reg, "guest").get(&format!("/labels/{local_id}")).await.expect(StatusCode::OK, None);
    assert_eq!((shown.body["scope"].as_str(), shown.body["project_id"].as_u64()), (Some("p"), Some(team_id)));
    let listed =
        as_user(&reg, "dev").get(&format!("/labels?scope=p&project_id={team_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let globals = as_user(&reg, "outsider").get("/labels?scope=g&q=name%3D~rel").await.expect(StatusCode::OK, None);
    assert_eq!(globals.body[0]["color"], "#00aa00");
    as_user(&reg, "outsider")
        .get(&format!("/labels?scope=p&project_id={team_id}"))
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // On artifacts: developers and above; shown and filtered by.
    let t = token(&c, &reg.url(), Some(("admin", "adminpassword")), &["repository:team/app:pull,push"]).await;
    push_image_as(&c, &reg.url(), "team/app", "a", "a", Some(&t)).await;
    push_image_as(&c, &reg.url(), "team/app", "b", "b", Some(&t)).await;
    let dev = as_user(&reg, "dev");
    dev.post("/projects/team/repositories/app/artifacts/a/labels", json!({"id": global_id}))
        .await
        .expect(StatusCode::CREATED, None);
    dev.post("/projects/team/repositories/app/artifacts/a/labels", json!({"id": local_id}))
        .await
        .expect(StatusCode::CREATED, None);
    dev.post("/projects/team/repositories/app/artifacts/b/labels", json!({"id": local_id}))
        .await
        .expect(StatusCode::CREATED, None);
    dev.post("/projects/team/repositories/app/artifacts/a/labels", json!({"id": local_id}))
        .await
        .expect(StatusCode::CONFLICT, None);
    as_user(&reg, "guest")
        .post("/projects/team/repositories/app/artifacts/b/labels", json!({"id": global_id}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    dev.post("/projects/team/repositories/app/artifacts/a/labels", json!({"id": 999999}))
        .await
        .expect(StatusCode::NOT_FOUND, None);
    let elsewhere =
        admin.get("/projects/library").await.expect(StatusCode::OK, None).body["project_id"].as_u64().expect("id");
    let foreign = admin
        .post("/labels", json!({"name": "lib-only", "scope": "p", "project_id": elsewhere}))
        .await
        .expect(StatusCode::CREATED, None);
    dev.post("/projects/team/repositories/app/artifacts/a/labels", json!({"id": location_id(&foreign)}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    let artifact = dev.get("/projects/team/repositories/app/artifacts/a").await.expect(StatusCode::OK, None);
    let names: Vec<&str> = artifact.body["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["release", "qa-passed"]);
    let both = dev
        .get(&format!("/projects/team/repositories/app/artifacts?q=labels%3D({global_id}%20{local_id})"))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(both.header("x-total-count"), "1", "only a carries both");
    let either = dev
        .get(&format!("/projects/team/repositories/app/artifacts?q=labels%3D{local_id}"))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(either.header("x-total-count"), "2");
    dev.delete(&format!("/projects/team/repositories/app/artifacts/b/labels/{local_id}"))
        .await
        .expect(StatusCode::OK, None);
    dev.delete(&format!("/projects/team/repositories/app/artifacts/b/labels/{local_id}"))
        .await
        .expect(StatusCode::NOT_FOUND, None);

    // A deleted label leaves every artifact.
    ma.put(&format!("/labels/{local_id}"), json!({"color": "#123456"})).await.expect(StatusCode::OK, None);
    ma.put(&format!("/labels/{local_id}"), json!({"scope": "g"})).await.expect(StatusCode::BAD_REQUEST, None);
    ma.delete(&format!("/labels/{local_id}")).await.expect(StatusCode::OK, None);
    let artifact = dev.get("/projects/team/repositories/app/artifacts/a").await.expect(StatusCode::OK, None);
    assert_eq!(artifact.body["labels"].as_array().map(Vec::len), Some(1), "{}", artifact.body);

    // Bad input.
    for body in [
        json!({"name": "", "scope": "g"}),
        json!({"name": "x", "scope": "z"}),
        json!({"name": "x", "scope": "p"}),
        json!({"name": "x", "scope": "g", "color": "green"}),
        json!({"name": "x".repeat(200), "scope": "g"}),
    ] {
        admin.post("/labels", body).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    }

    // Who may make project labels: admins, project admins, maintainers, robots holding label.
    let n = std::sync::atomic::AtomicUsize::new(0);
    matrix(
        &reg,
        (&with, &without),
        &["admin", "pa", "ma", "robot-with"],
        async |api: &Api| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            api.post("/labels", json!({"name": format!("l{i}"), "scope": "p", "project_id": team_id})).await.status
        },
        "create a project label",
    )
    .await;
    reg.stop().await;
}

/// Many pushers racing at the limit on the embedded default (redb): exactly as many fit as the
/// limit allows; every other one is DENIED; the counter is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_at_the_quota_on_the_embedded_default() {
    let (reg, _, _) = registry(&[]).await;
    let admin = as_user(&reg, "admin");
    admin
        .post("/projects", json!({"project_name": "racing", "storage_limit": 10_500}))
        .await
        .expect(StatusCode::CREATED, None);
    let c = client();
    let t = token(&c, &reg.url(), Some(("admin", "adminpassword")), &["repository:racing/app:pull,push"]).await;
    let pushes = (0..32u8).map(|i| {
        let (c, t, url) = (c.clone(), t.clone(), reg.url());
        tokio::spawn(async move {
            let data = incompressible(1000, u64::from(i) + 1);
            let digest = registry_core::Digest::sha256_of(&data);
            let resp = c
                .post(format!("{url}/v2/racing/app/blobs/uploads/?digest={digest}"))
                .bearer_auth(&t)
                .body(data)
                .send()
                .await
                .expect("push");
            resp.status()
        })
    });
    let statuses: Vec<StatusCode> =
        futures::future::join_all(pushes).await.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN), "{statuses:?}");
    let summary = admin.get("/projects/racing/summary").await.expect(StatusCode::OK, None);
    assert_eq!(summary.body["quota"]["used"]["storage"], 10_000);
    assert_eq!(admin.get("/system/quotas/verify").await.expect(StatusCode::OK, None).body["drift"], json!([]));
    reg.stop().await;
}

/// Who may manage tag retention: Harbor's table (project admins, maintainers, developers), system
/// admins, and robots holding `tag-retention`; nobody else reads or changes it.
#[tokio::test]
async fn retention_permission_matrix() {
    let (reg, with, without) = registry(&[("tag-retention", "*")]).await;
    let admin = as_user(&reg, "admin");
    let team = admin.get("/projects/team").await.expect(StatusCode::OK, None).body["project_id"].as_u64().expect("id");
    let policy = |n: u64| {
        json!({"rules": [{"template": "latestPushedK", "params": {"latestPushedK": n},
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}],
            "scope": {"level": "project", "ref": team}})
    };
    let id = location_id(&admin.post("/retentions", policy(1)).await.expect(StatusCode::CREATED, None));
    let allowed = ["admin", "pa", "ma", "dev", "robot-with"];
    let robots = (with.as_str(), without.as_str());
    matrix(
        &reg,
        robots,
        &allowed,
        async |api: &Api| api.get(&format!("/retentions/{id}")).await.status,
        "read the policy",
    )
    .await;
    let n = std::sync::atomic::AtomicU64::new(2);
    matrix(
        &reg,
        robots,
        &allowed,
        async |api: &Api| {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            api.put(&format!("/retentions/{id}"), policy(k)).await.status
        },
        "change the policy",
    )
    .await;
    matrix(
        &reg,
        robots,
        &allowed,
        async |api: &Api| api.post(&format!("/retentions/{id}/executions"), json!({"dry_run": true})).await.status,
        "start a dry run",
    )
    .await;
    matrix(
        &reg,
        robots,
        &allowed,
        async |api: &Api| api.get(&format!("/retentions/{id}/executions")).await.status,
        "list runs",
    )
    .await;
    reg.stop().await;
}
