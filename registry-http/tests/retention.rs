//! Tag retention over HTTP on a registry of a few hundred artifacts with mixed push and pull
//! ages (time injected, never slept): a dry run reports exactly what the run then deletes; the
//! rules keep what they say, immutable tags stay, repositories no rule applies to are left
//! alone; the policy API in Harbor's shapes with its permissions and its answers to bad input.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use registry_core::event::Operator;
use registry_core::time::ManualClock;
use registry_core::{Digest, Reference, RepositoryName};
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::{Api, location_id};
use testkit::*;

const HOUR: Duration = Duration::from_secs(3600);

fn body(data: &[u8]) -> impl futures::Stream<Item = Result<Bytes, registry_storage::BodyError>> + Send + Unpin + use<> {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

/// Pushes an image (its own layer, a shared config) through the engine; its digest.
async fn push(reg: &TestRegistry, repo: &str, tag: Option<&str>, n: usize) -> Digest {
    let name = RepositoryName::parse(repo).expect("name");
    let engine = reg.registry();
    let system = Operator::system();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = format!("{repo} layer {n}").repeat(20);
    let (cd, ld) = (Digest::sha256_of(config), Digest::sha256_of(layer.as_bytes()));
    engine.push_blob(&name, &cd, &mut body(config), &system).await.expect("config");
    engine.push_blob(&name, &ld, &mut body(layer.as_bytes()), &system).await.expect("layer");
    let manifest = image_manifest(&cd, config.len(), &[(ld, layer.len())], "");
    let reference = match tag {
        Some(t) => Reference::parse(t).expect("tag"),
        None => Reference::Digest(Digest::sha256_of(manifest.as_bytes())),
    };
    engine
        .put_manifest(&name, &reference, Some(OCI_MANIFEST), Bytes::from(manifest), &system)
        .await
        .expect("manifest")
        .digest
}

/// The digests a run's task logs name after `verb` (`would delete`, `deleted`).
async fn named_in_logs(api: &Api, policy: u64, run: u64, verb: &str) -> BTreeSet<String> {
    let tasks = api
        .get(&format!("/retentions/{policy}/executions/{run}/tasks?page_size=100"))
        .await
        .expect(StatusCode::OK, None);
    let mut out = BTreeSet::new();
    for task in tasks.body.as_array().expect("tasks") {
        let log = api
            .get(&format!("/retentions/{policy}/executions/{run}/tasks/{}", task["id"]))
            .await
            .expect(StatusCode::OK, None);
        let text = log.body.as_str().expect("a text log").to_owned();
        for line in text.lines().filter_map(|l| l.strip_prefix(&format!("{verb} "))) {
            out.insert(format!(
                "{}:{}",
                task["repository"].as_str().expect("repo"),
                line.split(' ').next().expect("digest")
            ));
        }
    }
    out
}

/// Starts a run and waits for it to end; its id.
async fn run(api: &Api, policy: u64, dry_run: bool) -> u64 {
    let started = api
        .post(&format!("/retentions/{policy}/executions"), json!({"dry_run": dry_run}))
        .await
        .expect(StatusCode::CREATED, None);
    let id = location_id(&started);
    for _ in 0..1000 {
        let runs = api.get(&format!("/retentions/{policy}/executions")).await.expect(StatusCode::OK, None);
        let run = runs.body.as_array().expect("runs").iter().find(|r| r["id"] == id).cloned().expect("listed");
        match run["status"].as_str() {
            Some("Success") => {
                assert_eq!(run["dry_run"], dry_run);
                return id;
            }
            Some("Pending" | "Running") => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the run ended {other:?}: {run}"),
        }
    }
    panic!("the run did not end");
}

async fn remaining(reg: &TestRegistry, repo: &str) -> BTreeSet<String> {
    let name = RepositoryName::parse(repo).expect("name");
    let manifests = reg.registry().manifests(&name, None, 10_000).await.expect("manifests");
    manifests.iter().map(|m| format!("{repo}:{}", m.record.digest)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_exactly_what_the_run_deletes() {
    let clock = Arc::new(ManualClock::at_secs(1_796_457_600));
    let reg = TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .clock(clock.clone())
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .start()
        .await
        .expect("start");
    let admin = Api::new(&reg, Some(("admin", "adminpassword")));
    let team = admin.get("/projects/team").await.expect(StatusCode::OK, None).body["project_id"].as_u64().expect("id");

    // 300 artifacts in three repositories, an hour apart: releases, dev builds, untagged ones;
    // some dev builds pulled at various times.
    let mut all = BTreeSet::new();
    let mut pushed: Vec<(String, usize, String)> = Vec::new();
    for i in 0..100 {
        for repo in ["team/a", "team/b", "team/keep"] {
            let tag = match i % 4 {
                0 | 1 => Some(format!("v{i}")),
                2 => Some(format!("dev-{i}")),
                _ => None,
            };
            let digest = push(&reg, repo, tag.as_deref(), i).await;
            all.insert(format!("{repo}:{digest}"));
            pushed.push((repo.to_owned(), i, format!("{repo}:{digest}")));
            if i % 8 == 2 {
                let name = RepositoryName::parse(repo).expect("name");
                reg.registry()
                    .pull_manifest(&name, &Reference::Digest(digest), &Operator::system())
                    .await
                    .expect("pull");
            }
        }
        clock.advance(HOUR);
    }
    reg.registry().flush_events().await;
    clock.advance(Duration::from_secs(24 * 3600));
    // v1 is immutable: kept whatever the rules say.
    let rule = json!({"tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v1"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}});
    admin.post("/projects/team/immutabletagrules", rule).await.expect(StatusCode::CREATED, None);

    let selector = |pattern: &str, untagged: bool| {
        json!({"kind": "doublestar", "decoration": "matches", "pattern": pattern,
            "extras": if untagged { r#"{"untagged":true}"# } else { "" }})
    };
    let not_keep = json!({"repository": [{"kind": "doublestar", "decoration": "repoExcludes", "pattern": "keep"}]});
    let policy = json!({
        "algorithm": "or",
        "rules": [
            {"action": "retain", "template": "latestPushedK", "params": {"latestPushedK": 10},
             "tag_selectors": [selector("v*", false)], "scope_selectors": not_keep},
            {"action": "retain", "template": "nDaysSinceLastPull", "params": {"nDaysSinceLastPull": 3},
             "tag_selectors": [selector("dev-*", false)], "scope_selectors": not_keep},
            {"action": "retain", "template": "nDaysSinceLastPush", "params": {"nDaysSinceLastPush": 2},
             "tag_selectors": [selector("**", true)], "scope_selectors": not_keep},
        ],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
        "scope": {"level": "project", "ref": team},
    });
    let created = admin.post("/retentions", policy.clone()).await.expect(StatusCode::CREATED, None);
    let id = location_id(&created);
    let project = admin.get("/projects/team").await.expect(StatusCode::OK, None);
    assert_eq!(project.body["metadata"]["retention_id"], id.to_string(), "the project names its policy");
    admin.post("/retentions", policy.clone()).await.expect(StatusCode::CONFLICT, Some("CONFLICT"));
    let shown = admin.get(&format!("/retentions/{id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["rules"][0]["params"]["latestPushedK"], 10);
    assert_eq!(shown.body["scope"]["ref"], team);

    // The dry run deletes nothing and names what the run deletes; the run deletes exactly that.
    let dry = run(&admin, id, true).await;
    let would = named_in_logs(&admin, id, dry, "would delete").await;
    assert_eq!(remaining(&reg, "team/a").await.len() + remaining(&reg, "team/b").await.len(), 200, "nothing deleted");
    let real = run(&admin, id, false).await;
    let deleted = named_in_logs(&admin, id, real, "deleted").await;
    assert!(!would.is_empty(), "the rules delete something");
    assert_eq!(would, deleted, "a dry run reports exactly what the run deletes");
    let mut left = BTreeSet::new();
    for repo in ["team/a", "team/b", "team/keep"] {
        left.extend(remaining(&reg, repo).await);
    }
    let expected: BTreeSet<String> = all.difference(&deleted).cloned().collect();
    assert_eq!(left, expected, "everything not deleted is there");

    // What the rules keep, worked out here on their own: artifact i was pushed (and, when
    // i % 8 == 2, pulled) at hour i; the runs are at hour 124.
    let kept_by_rules = |i: usize| {
        let releases_newest_first: Vec<usize> = (0..100).rev().filter(|j| j % 4 < 2).collect();
        let release = i % 4 < 2;
        (release && releases_newest_first[..10].contains(&i)) // latestPushedK 10 of v*
            || (i % 4 == 2 && i % 8 == 2 && 124 - i <= 72) // dev-* pulled within 3 days
            || 124 - i <= 48 // pushed within 2 days, tagged or not
            || i == 1 // v1 is immutable
    };
    let expected_left: BTreeSet<String> = pushed
        .iter()
        .filter(|(repo, i, _)| repo == "team/keep" || kept_by_rules(*i))
        .map(|(_, _, key)| key.clone())
        .collect();
    assert_eq!(left, expected_left, "the rules keep what they say");
    let tasks = admin.get(&format!("/retentions/{id}/executions/{real}/tasks")).await.expect(StatusCode::OK, None);
    let repos: Vec<&str> =
        tasks.body.as_array().expect("tasks").iter().map(|t| t["repository"].as_str().unwrap_or_default()).collect();
    assert_eq!(repos, vec!["team/a", "team/b"], "no task for the repository no rule applies to");
    assert_eq!(remaining(&reg, "team/keep").await.len(), 100);
    let kept = (0..100).filter(|i| kept_by_rules(*i)).count();
    assert_eq!(tasks.body[0]["total"], 100);
    assert_eq!(tasks.body[0]["retained"], kept);
    assert!(tasks.body[0]["freed_bytes"].as_u64().is_some_and(|b| b > 0), "it says what it frees: {}", tasks.body[0]);

    // On a schedule: an hourly cron, the clock moved past the hour, and a run appears.
    let mut scheduled = policy.clone();
    scheduled["trigger"]["settings"]["cron"] = json!("0 0 * * * *");
    admin.put(&format!("/retentions/{id}"), scheduled).await.expect(StatusCode::OK, None);
    clock.advance(HOUR);
    let mut found = false;
    for _ in 0..500 {
        let runs = admin.get(&format!("/retentions/{id}/executions")).await.expect(StatusCode::OK, None);
        if runs.body.as_array().expect("runs").iter().any(|r| r["trigger"] == "SCHEDULE") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "the schedule started a run");

    // A second run finds nothing more to delete.
    let again = run(&admin, id, false).await;
    assert!(named_in_logs(&admin, id, again, "deleted").await.is_empty());
    reg.stop().await;
}

#[tokio::test]
async fn retention_policies_are_checked_and_guarded() {
    let accounts = harbor_accounts().await;
    accounts.add_user("lg", "password1", false).await.expect("user");
    accounts.add_member("team", "lg", registry_auth::Role::LimitedGuest, None).await.expect("member");
    let reg = TestRegistry::builder().accounts(accounts).start().await.expect("start");
    let as_user = |u: &str, p: &str| Api::new(&reg, Some((u, p)));
    let (admin, dev, guest) =
        (as_user("admin", "adminpassword"), as_user("dev", "password1"), as_user("guest", "password1"));
    let team = admin.get("/projects/team").await.expect(StatusCode::OK, None).body["project_id"].as_u64().expect("id");
    let policy = |template: &str, params: Value, cron: &str| {
        json!({"rules": [{"template": template, "params": params,
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}],
            "trigger": {"kind": "Schedule", "settings": {"cron": cron}}, "scope": {"level": "project", "ref": team}})
    };
    for (body, says) in [
        (policy("keepMost", json!({}), ""), "template"),
        (policy("latestPushedK", json!({}), ""), "latestPushedK is required"),
        (policy("latestPushedK", json!({"latestPushedK": -3}), ""), "whole number"),
        (policy("latestPushedK", json!({"latestPushedK": 10_000_000}), ""), "at most"),
        (policy("always", json!({}), "every night"), "cron"),
        (policy("always", json!({}), "0 0 25 * * *"), "hour"),
        (json!({"rules": [], "scope": {"level": "project"}}), "scope"),
    ] {
        let answer = admin.post("/retentions", body).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
        let message = answer.body["errors"][0]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(says), "{says}: {message}");
    }
    // Developers and above manage retention (Harbor's table); guests may not even read it.
    guest.post("/retentions", policy("always", json!({}), "")).await.expect(StatusCode::FORBIDDEN, None);
    Api::new(&reg, None)
        .post("/retentions", policy("always", json!({}), ""))
        .await
        .expect(StatusCode::UNAUTHORIZED, None);
    let created = dev
        .post("/retentions", policy("latestPushedK", json!({"latestPushedK": 5}), "0 0 0 * * *"))
        .await
        .expect(StatusCode::CREATED, None);
    let id = location_id(&created);
    guest.get(&format!("/retentions/{id}")).await.expect(StatusCode::FORBIDDEN, None);
    as_user("lg", "password1").get(&format!("/retentions/{id}/executions")).await.expect(StatusCode::FORBIDDEN, None);
    as_user("outsider", "password1")
        .put(&format!("/retentions/{id}"), policy("always", json!({}), ""))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    guest
        .post(&format!("/retentions/{id}/executions"), json!({"dry_run": true}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    let ma = as_user("ma", "password1");
    ma.put(&format!("/retentions/{id}"), policy("always", json!({}), "@daily")).await.expect(StatusCode::OK, None);
    let shown = ma.get(&format!("/retentions/{id}")).await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["rules"][0]["template"], "always");
    assert_eq!(shown.body["trigger"]["settings"]["cron"], "@daily");
    let metadata = guest.get("/retentions/metadatas").await.expect(StatusCode::OK, None);
    assert_eq!(metadata.body["templates"].as_array().map(Vec::len), Some(5));
    admin.get("/retentions/999999").await.expect(StatusCode::NOT_FOUND, None);
    dev.delete(&format!("/retentions/{id}")).await.expect(StatusCode::OK, None);
    let project = admin.get("/projects/team").await.expect(StatusCode::OK, None);
    assert!(project.body["metadata"].get("retention_id").is_none(), "{}", project.body);
    reg.stop().await;
}
