//! The audit log in Harbor's shapes: what pushes, pulls, deletions, account changes and logins
//! record; the `q=` filters and pagination; who sees what (system admins everything, members
//! their projects); the purge; a failed login never carries the password.

use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::*;

async fn get(
    c: &reqwest::Client,
    url: &str,
    creds: Option<(&str, &str)>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = c.get(url);
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.expect("get");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_filters_and_guards() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts").acting_as(registry_core::event::Operator::system());
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let admin_api = accounts.acting_as(registry_core::event::Operator::named("admin", None));
    admin_api.add_user("dev", "password1", false).await.expect("dev");
    admin_api.add_user("outsider", "password1", false).await.expect("outsider");
    admin_api.create_project("team", false).await.expect("team");
    admin_api.create_project("library", true).await.expect("library");
    admin_api.add_member("team", "dev", registry_auth::model::Role::Developer, None).await.expect("member");

    let (c, base) = (client(), reg.url());
    let admin = ("admin", "adminpassword");
    let t =
        token(&c, &base, Some(admin), &["repository:team/app:pull,push,delete", "repository:library/web:pull,push"])
            .await;
    push_image_as(&c, &base, "team/app", "v1", "a", Some(&t)).await;
    push_image_as(&c, &base, "library/web", "v1", "b", Some(&t)).await;
    let dev = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:pull"]).await;
    let pulled = c
        .get(format!("{base}/v2/team/app/manifests/v1"))
        .bearer_auth(&dev)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("pull");
    assert_eq!(pulled.status(), StatusCode::OK);
    let deleted = c.delete(format!("{base}/v2/team/app/manifests/v1")).bearer_auth(&t).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let refused = get_token(&c, &base, Some(("dev", "not-the-Secret-9")), &[]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    reg.registry().flush_events().await;

    // Everything, newest first, in Harbor's shape.
    let url = format!("{base}/api/v2.0/audit-logs");
    let (status, headers, body) = get(&c, &format!("{url}?page_size=100"), Some(admin)).await;
    assert_eq!(status, StatusCode::OK);
    let records = body.as_array().expect("array").clone();
    let total: usize = headers["x-total-count"].to_str().expect("count").parse().expect("number");
    assert_eq!(total, records.len());
    assert!(records.windows(2).all(|w| w[0]["id"].as_u64() > w[1]["id"].as_u64()), "newest first");
    for key in ["id", "username", "resource", "resource_type", "operation", "op_time"] {
        assert!(records[0].get(key).is_some(), "{key} in {}", records[0]);
    }
    let find =
        |op: &str, kind: &str| records.iter().filter(|r| r["operation"] == op && r["resource_type"] == kind).count();
    assert_eq!(find("create", "artifact"), 2, "two pushes");
    assert_eq!(find("create", "tag"), 2, "two tags set");
    assert_eq!(find("pull", "artifact"), 1, "one pull");
    assert_eq!(find("delete", "tag"), 1, "one tag deleted (DELETE by tag)");
    assert_eq!(find("create", "project"), 2);
    assert_eq!(find("create", "project_member"), 1);
    assert_eq!(find("login_failure", "user"), 1);
    assert!(find("login", "user") >= 2, "token logins");
    let pull = records.iter().find(|r| r["operation"] == "pull").expect("pull");
    assert_eq!((pull["username"].as_str(), pull["resource"].as_str()), (Some("dev"), Some("team/app:v1")));
    let raw =
        c.get(format!("{url}?page_size=100")).basic_auth("admin", Some("adminpassword")).send().await.expect("get");
    assert!(!raw.text().await.expect("text").contains("not-the-Secret-9"), "no password in the log");

    // Filters.
    let (_, h, body) = get(&c, &format!("{url}?q=operation%3Dpull"), Some(admin)).await;
    assert_eq!((h["x-total-count"].to_str().expect("n"), body[0]["username"].as_str()), ("1", Some("dev")));
    let (_, h, _) = get(&c, &format!("{url}?q=resource_type%3Dartifact,operation%3Dcreate"), Some(admin)).await;
    assert_eq!(h["x-total-count"], "2");
    let (_, h, _) = get(&c, &format!("{url}?q=resource%3D~library%2Fweb"), Some(admin)).await;
    assert_eq!(h["x-total-count"], "2", "the push and the tag of library/web");
    let (_, h, _) =
        get(&c, &format!("{url}?q=op_time%3D%5B2000-01-01%2000%3A00%3A00~2000-12-31%2000%3A00%3A00%5D"), Some(admin))
            .await;
    assert_eq!(h["x-total-count"], "0", "nothing in 2000");
    let (status, _, body) = get(&c, &format!("{url}?q=color%3Dred"), Some(admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Pagination.
    let (_, h, body) = get(&c, &format!("{url}?page=1&page_size=2"), Some(admin)).await;
    assert_eq!(body.as_array().expect("array").len(), 2);
    assert!(h["link"].to_str().expect("link").contains("rel=\"next\""));

    // Who sees what.
    assert_eq!(get(&c, &url, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &url, Some(("dev", "password1"))).await.0, StatusCode::FORBIDDEN);
    let team = format!("{base}/api/v2.0/projects/team/logs?page_size=100");
    let (status, _, body) = get(&c, &team, Some(("dev", "password1"))).await;
    assert_eq!(status, StatusCode::OK);
    let resources: Vec<&str> = body.as_array().expect("array").iter().filter_map(|r| r["resource"].as_str()).collect();
    assert!(resources.iter().all(|r| !r.contains("library")), "only team's records: {resources:?}");
    assert!(resources.contains(&"team/app:v1"), "{resources:?}");
    assert!(!body.as_array().expect("array").is_empty());
    assert_eq!(get(&c, &team, Some(("outsider", "password1"))).await.0, StatusCode::FORBIDDEN);

    // The purge: a dry run counts, a run removes.
    let purge = |dry: bool| {
        c.post(format!("{base}/api/v2.0/system/purgeaudit/schedule"))
            .basic_auth("admin", Some("adminpassword"))
            .json(&json!({"parameters": {"audit_retention_hour": 0, "dry_run": dry}}))
            .send()
    };
    let dry: Value = purge(true).await.expect("dry run").json().await.expect("json");
    assert_eq!(dry["removed"].as_u64(), Some(total as u64));
    let (_, h, _) = get(&c, &url, Some(admin)).await;
    assert_eq!(h["x-total-count"].to_str().expect("n"), total.to_string(), "a dry run removes nothing");
    purge(false).await.expect("purge");
    let (_, h, _) = get(&c, &url, Some(admin)).await;
    let left: usize = h["x-total-count"].to_str().expect("n").parse().expect("number");
    assert!(left <= 1, "only what the purge call itself may have logged: {left}");
    reg.stop().await;
}
