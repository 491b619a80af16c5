//! The management REST API (`/api/v2.0`), authorized by the same model as pushes and pulls.

mod common;

use common::*;
use registry_auth::Accounts;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::json;

/// POSTs a JSON body to the management API with Basic credentials.
async fn post_json(
    c: &reqwest::Client,
    url: String,
    (user, password): (&str, &str),
    body: serde_json::Value,
) -> reqwest::Response {
    c.post(url).basic_auth(user, Some(password)).json(&body).send().await.expect("post")
}

#[tokio::test]
async fn projects_users_members_robots_over_the_api() {
    let accounts = Accounts::in_memory().expect("accounts");
    accounts.create_project("library", true).await.expect("project");
    accounts.create_project("hidden", false).await.expect("project");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let reg = TestRegistry::start_with_auth(accounts).await.expect("start");
    let (c, base) = (client(), reg.url());
    let api = |p: &str| format!("{base}/api/v2.0/{p}");

    // Users: system admins only.
    let resp = post_json(
        &c,
        api("users"),
        ("admin", "adminpassword"),
        json!({"username": "erin", "password": "erinpassword"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    post_json(&c, api("users"), ("admin", "adminpassword"), json!({"username": "dev", "password": "devpassword"}))
        .await;
    assert_error(
        c.get(api("users")).basic_auth("erin", Some("erinpassword")).send().await.expect("get"),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert_error(c.get(api("users")).send().await.expect("get"), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    assert_error(
        c.get(api("users")).basic_auth("erin", Some("wrong")).send().await.expect("get"),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await;
    let users: serde_json::Value = c
        .get(api("users"))
        .basic_auth("admin", Some("adminpassword"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(users.as_array().expect("list").len(), 3);

    // Any user creates a project (private by default) and becomes its project admin.
    let resp = post_json(&c, api("projects"), ("erin", "erinpassword"), json!({"project_name": "erin"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.json::<serde_json::Value>().await.expect("json")["metadata"]["public"], "false");
    let members: serde_json::Value = c
        .get(api("projects/erin/members"))
        .basic_auth("erin", Some("erinpassword"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(members, json!([{"entity_name": "erin", "role_id": 1, "repositories": null}]));

    // Visibility: anonymous sees public projects, members see theirs, admins see all.
    let names = |v: serde_json::Value| {
        v.as_array().expect("list").iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(c.get(api("projects")).send().await.expect("get").json().await.expect("json")), ["library"]);
    assert_eq!(
        names(
            c.get(api("projects"))
                .basic_auth("erin", Some("erinpassword"))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json")
        ),
        ["erin", "library"]
    );
    assert_eq!(
        names(
            c.get(api("projects"))
                .basic_auth("admin", Some("adminpassword"))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json")
        )
        .len(),
        3
    );
    assert_eq!(
        c.get(api("projects/hidden")).basic_auth("erin", Some("erinpassword")).send().await.expect("get").status(),
        StatusCode::NOT_FOUND
    );

    // The project admin adds a developer, who can then push, but not manage the project.
    let resp = post_json(
        &c,
        api("projects/erin/members"),
        ("erin", "erinpassword"),
        json!({"role_id": 2, "member_user": {"username": "dev"}}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let t = token(&c, &base, Some(("dev", "devpassword")), &["repository:erin/app:pull,push"]).await;
    push_blob_as(&c, &base, "erin/app", b"pushed by a member added over the API", Some(&t)).await;
    assert_error(
        post_json(
            &c,
            api("projects/erin/members"),
            ("dev", "devpassword"),
            json!({"role_id": 1, "member_user": {"username": "dev"}}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;
    assert_error(
        c.delete(api("projects/erin")).basic_auth("dev", Some("devpassword")).send().await.expect("delete"),
        StatusCode::FORBIDDEN,
        "DENIED",
    )
    .await;

    // Bad input.
    assert_error(
        post_json(
            &c,
            api("projects/erin/members"),
            ("erin", "erinpassword"),
            json!({"role_id": 9, "member_user": {"username": "dev"}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        c.post(api("projects")).basic_auth("erin", Some("erinpassword")).body("{not json").send().await.expect("post"),
        StatusCode::BAD_REQUEST,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        post_json(&c, api("projects"), ("erin", "erinpassword"), json!({"project_name": "Bad/Name"})).await,
        StatusCode::BAD_REQUEST,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        post_json(&c, api("projects"), ("erin", "erinpassword"), json!({"project_name": "erin"})).await,
        StatusCode::BAD_REQUEST,
        "UNSUPPORTED",
    )
    .await;

    // Robots: the secret comes once, in the creation response.
    let resp = post_json(
        &c,
        api("projects/erin/robots"),
        ("erin", "erinpassword"),
        json!({"name": "ci", "duration": -1, "permissions": [{"repositories": "*", "actions": ["pull", "push"]}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let robot: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(robot["name"], "robot$erin+ci");
    let t = token(
        &c,
        &base,
        Some(("robot$erin+ci", robot["secret"].as_str().expect("secret"))),
        &["repository:erin/app:pull,push"],
    )
    .await;
    push_blob_as(&c, &base, "erin/app", b"pushed by a robot made over the API", Some(&t)).await;
    let listed: serde_json::Value = c
        .get(api("projects/erin/robots"))
        .basic_auth("erin", Some("erinpassword"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(listed[0].get("secret").is_none(), "the secret is never listed");
    assert_eq!(
        c.delete(api("projects/erin/robots/robot$erin+ci"))
            .basic_auth("erin", Some("erinpassword"))
            .send()
            .await
            .expect("delete")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get_token(&c, &base, Some(("robot$erin+ci", robot["secret"].as_str().expect("secret"))), &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The project admin deletes the project.
    assert_eq!(
        c.delete(api("projects/erin")).basic_auth("erin", Some("erinpassword")).send().await.expect("delete").status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(api("projects/erin")).basic_auth("admin", Some("adminpassword")).send().await.expect("get").status(),
        StatusCode::NOT_FOUND
    );
}

/// Garbage collection through the management API: system admins start runs (dry or not) and
/// read their reports; what a run frees is gone over HTTP, and the image it keeps still pulls.
#[tokio::test]
async fn garbage_collection_over_the_api() {
    let accounts = harbor_accounts().await;
    let no_grace = registry_storage::GcOptions { grace: std::time::Duration::ZERO, ..Default::default() };
    let reg =
        TestRegistry::builder().on_disk().with_auth(accounts).with_gc_options(no_grace).start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let api = |p: &str| format!("{base}/api/v2.0/{p}");
    let admin = token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/app:pull,push,delete"]).await;
    let (_, manifest) = push_image_as(&c, &base, "library/app", "v1", "kept", Some(&admin)).await;
    let orphan = push_blob_as(&c, &base, "library/app", b"never referenced", Some(&admin)).await;

    // Who may.
    let start = |user: Option<(&str, &str)>, dry_run: bool| {
        let mut req = c.post(api("system/gc/schedule")).json(
            &json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": dry_run, "delete_untagged": false}}),
        );
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        req.send()
    };
    assert_error(start(None, true).await.expect("post"), StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    assert_error(start(Some(("dev", "password1")), true).await.expect("post"), StatusCode::FORBIDDEN, "DENIED").await;

    // A run reports when finished; wait on its status.
    let finished = |location: String| {
        let c = c.clone();
        let url = format!("{base}{location}");
        async move {
            loop {
                let run: serde_json::Value = c
                    .get(&url)
                    .basic_auth("admin", Some("adminpassword"))
                    .send()
                    .await
                    .expect("get")
                    .json()
                    .await
                    .expect("json");
                if run["job_status"] != "Running" {
                    return run;
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let resp = start(Some(("admin", "adminpassword")), true).await.expect("post");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let dry = finished(header(&resp, "location")).await;
    assert_eq!(dry["job_status"], "Success", "{dry}");
    assert_eq!(dry["report"]["dry_run"], true);
    assert_eq!(dry["report"]["blobs_deleted"], 1, "{dry}");
    assert_eq!(dry["report"]["bytes_freed"], b"never referenced".len());
    let head = |digest: String| {
        let (c, admin, base) = (c.clone(), admin.clone(), base.clone());
        async move {
            c.head(format!("{base}/v2/library/app/blobs/{digest}"))
                .bearer_auth(admin)
                .send()
                .await
                .expect("head")
                .status()
        }
    };
    assert_eq!(head(orphan.to_string()).await, StatusCode::OK, "a dry run changes nothing");

    let resp = start(Some(("admin", "adminpassword")), false).await.expect("post");
    let run = finished(header(&resp, "location")).await;
    assert_eq!(run["job_status"], "Success", "{run}");
    assert_eq!(run["job_kind"], "MANUAL");
    assert_eq!(run["report"]["blobs_deleted"], 1, "{run}");
    assert!(run["report"]["duration_ms"].is_u64());
    assert_eq!(head(orphan.to_string()).await, StatusCode::NOT_FOUND, "collected");
    let pulled = c
        .get(format!("{base}/v2/library/app/manifests/v1"))
        .bearer_auth(&admin)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("pull");
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(header(&pulled, "docker-content-digest"), manifest.to_string());

    let runs: serde_json::Value = c
        .get(api("system/gc"))
        .basic_auth("admin", Some("adminpassword"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let runs = runs.as_array().expect("list");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["id"], run["id"], "newest first");
    let wrong =
        post_json(&c, api("system/gc/schedule"), ("admin", "adminpassword"), json!({"schedule": {"type": "Daily"}}))
            .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
}
