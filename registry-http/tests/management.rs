//! The management API (`/api/v2.0`) in Harbor's shapes, authorized by the same model as pushes
//! and pulls: ids and `Location`s, pagination headers, `q=` filters, v2 robots, the error
//! envelope with Harbor's codes, and who may do what.

use registry_http::TestRegistry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::harbor::{Api, location_id};
use testkit::*;

fn names(v: &Value, field: &str) -> Vec<String> {
    v.as_array().expect("list").iter().map(|p| p[field].as_str().expect("name").to_owned()).collect()
}

#[tokio::test]
async fn system_endpoints_and_users_in_harbors_shapes() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let (anon, admin) = (Api::new(&reg, None), Api::new(&reg, Some(("admin", "adminpassword"))));

    let ping = anon.get("/ping").await.expect(StatusCode::OK, None);
    assert_eq!(ping.body, "Pong");
    let health = anon.get("/health").await.expect(StatusCode::OK, None);
    assert_eq!(health.body["status"], "healthy", "{}", health.body);
    assert!(health.body["components"].as_array().expect("components").iter().all(|c| c["status"] == "healthy"));
    let info = anon.get("/systeminfo").await.expect(StatusCode::OK, None);
    assert_eq!(info.body["auth_mode"], "db_auth");
    assert!(info.body["harbor_version"].as_str().expect("version").starts_with("v2."));
    assert!(info.body.get("registry_url").is_none(), "anonymous callers see the public part only");
    let info = admin.get("/systeminfo").await.expect(StatusCode::OK, None);
    assert_eq!(info.body["registry_url"], reg.host());

    // Users: created with a Location naming the id; listed with X-Total-Count and Link.
    let created = admin
        .post(
            "/users",
            json!({"username": "erin", "password": "erinpassword", "email": "erin@example.com", "realname": "Erin"}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let erin_id = location_id(&created);
    for name in ["dana", "fred"] {
        admin
            .post("/users", json!({"username": name, "password": "password1"}))
            .await
            .expect(StatusCode::CREATED, None);
    }
    let page = admin.get("/users?page=2&page_size=1").await.expect(StatusCode::OK, None);
    assert_eq!(page.header("x-total-count"), "4");
    let link = page.header("link");
    assert!(
        link.contains("page=1&page_size=1>; rel=\"prev\"") && link.contains("page=3&page_size=1>; rel=\"next\""),
        "{link}"
    );
    assert_eq!(page.body.as_array().expect("page").len(), 1);
    let erin = admin.get(&format!("/users/{erin_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(erin.body["username"], "erin");
    assert_eq!(erin.body["email"], "erin@example.com");
    assert_eq!(erin.body["sysadmin_flag"], false);
    assert!(erin.body["creation_time"].as_str().expect("time").ends_with('Z'));
    let filtered = admin.get("/users?q=username%3D~re").await.expect(StatusCode::OK, None);
    assert_eq!(names(&filtered.body, "username"), ["fred"]);

    // The current user, and searching users by name (any signed-in user).
    let as_erin = Api::new(&reg, Some(("erin", "erinpassword")));
    let me = as_erin.get("/users/current").await.expect(StatusCode::OK, None);
    assert_eq!(me.body["user_id"], erin_id);
    let found = as_erin.get("/users/search?username=da").await.expect(StatusCode::OK, None);
    assert_eq!(found.body[0]["username"], "dana");
    anon.get("/users/current").await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));

    // Profiles: the user themselves or an admin.
    as_erin.put(&format!("/users/{erin_id}"), json!({"realname": "Erin E."})).await.expect(StatusCode::OK, None);
    let dana_id = location_id(&admin.post("/users", json!({"username": "gina", "password": "password1"})).await);
    as_erin
        .put(&format!("/users/{dana_id}"), json!({"realname": "x"}))
        .await
        .expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    as_erin.get("/users").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));

    // Passwords: the old one is required for one's own; an admin resets others' without it.
    let password = |old: Option<&str>, new: &str| {
        let mut body = json!({"new_password": new});
        if let Some(old) = old {
            body["old_password"] = old.into();
        }
        body
    };
    as_erin
        .put(&format!("/users/{erin_id}/password"), password(None, "newpassword1"))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    as_erin
        .put(&format!("/users/{erin_id}/password"), password(Some("wrong-old"), "newpassword1"))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    as_erin
        .put(&format!("/users/{erin_id}/password"), password(Some("erinpassword"), "short"))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    as_erin
        .put(&format!("/users/{erin_id}/password"), password(Some("erinpassword"), "newpassword1"))
        .await
        .expect(StatusCode::OK, None);
    as_erin.get("/users/current").await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));
    admin
        .put(&format!("/users/{erin_id}/password"), password(None, "resetpassword1"))
        .await
        .expect(StatusCode::OK, None);
    Api::new(&reg, Some(("erin", "resetpassword1"))).get("/users/current").await.expect(StatusCode::OK, None);

    // Admin flags: never the last admin, never oneself deleted.
    let admin_id = admin.get("/users/current").await.body["user_id"].as_u64().expect("id");
    admin
        .put(&format!("/users/{admin_id}/sysadmin"), json!({"sysadmin_flag": false}))
        .await
        .expect(StatusCode::PRECONDITION_FAILED, Some("PRECONDITION"));
    admin.delete(&format!("/users/{admin_id}")).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    admin.put(&format!("/users/{erin_id}/sysadmin"), json!({"sysadmin_flag": true})).await.expect(StatusCode::OK, None);
    assert_eq!(admin.get(&format!("/users/{erin_id}")).await.body["sysadmin_flag"], true);
    admin.delete(&format!("/users/{dana_id}")).await.expect(StatusCode::OK, None);
    admin.get(&format!("/users/{dana_id}")).await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // Disabling (our extension), for admins only.
    admin.put(&format!("/users/{erin_id}"), json!({"enabled": false})).await.expect(StatusCode::OK, None);
    Api::new(&reg, Some(("erin", "resetpassword1"))).get("/users/current").await.expect(StatusCode::UNAUTHORIZED, None);

    // Bad input and unknown endpoints.
    admin
        .post("/users", json!({"username": "erin", "password": "password1"}))
        .await
        .expect(StatusCode::CONFLICT, Some("CONFLICT"));
    admin
        .post("/users", json!({"username": "Bad Name", "password": "password1"}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.send(Method::POST, "/users", None, &[]).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/users?page_size=101").await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/users?q=nosuchkey%3D1").await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/users/abc").await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/nothing/here").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    admin
        .send(Method::PATCH, "/users", None, &[])
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED, Some("METHOD_NOT_ALLOWED"));
    Api::new(&reg, Some(("admin", "wrong"))).get("/ping").await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));
}

#[tokio::test]
async fn projects_members_and_robots_by_role() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.create_project("library", true).await.expect("library");
    for user in ["erin", "dev", "guest", "lg", "outsider"] {
        accounts.add_user(user, "password1", false).await.expect("user");
    }
    let as_user = |name: &str| Api::new(&reg, Some((name, "password1")));
    let (anon, admin, erin) = (Api::new(&reg, None), Api::new(&reg, Some(("admin", "adminpassword"))), as_user("erin"));

    // Any user creates a project and becomes its project admin; HEAD says whether one exists.
    let created = erin
        .post("/projects", json!({"project_name": "team", "metadata": {"public": "false", "auto_scan": "true"}}))
        .await
        .expect(StatusCode::CREATED, None);
    let team_id = location_id(&created);
    anon.send(Method::HEAD, "/projects?project_name=team", None, &[]).await.expect(StatusCode::OK, None);
    anon.send(Method::HEAD, "/projects?project_name=nope", None, &[]).await.expect(StatusCode::NOT_FOUND, None);
    let by_name = erin
        .send(
            Method::POST,
            "/projects",
            Some(json!({"project_name": "named"})),
            &[("x-resource-name-in-location", "true")],
        )
        .await
        .expect(StatusCode::CREATED, None);
    assert!(by_name.header("location").ends_with("/api/v2.0/projects/named"));
    let team = erin.get(&format!("/projects/{team_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(team.body["name"], "team");
    assert_eq!(team.body["project_id"], team_id);
    assert_eq!(team.body["owner_name"], "erin");
    assert_eq!(team.body["current_user_role_id"], 1);
    assert_eq!(team.body["metadata"], json!({"public": "false", "auto_scan": "true"}));
    assert_eq!(erin.get("/projects/team").await.body["project_id"], team_id, "by name");

    // Visibility: anonymous sees public projects; outsiders are refused private ones.
    assert_eq!(names(&anon.get("/projects").await.body, "name"), ["library"]);
    assert_eq!(names(&erin.get("/projects").await.body, "name"), ["library", "named", "team"]);
    assert_eq!(admin.get("/projects?public=false").await.body.as_array().expect("list").len(), 2);
    as_user("outsider").get("/projects/team").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    anon.get("/projects/team").await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));
    anon.get("/projects/nope").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // Members, with Harbor's ids and role names.
    for (user, role) in [("dev", 2), ("guest", 3), ("lg", 5)] {
        let added = erin
            .post("/projects/team/members", json!({"role_id": role, "member_user": {"username": user}}))
            .await
            .expect(StatusCode::CREATED, None);
        assert!(added.header("location").contains(&format!("/projects/{team_id}/members/")));
    }
    let members = as_user("dev").get("/projects/team/members").await.expect(StatusCode::OK, None);
    assert_eq!(members.header("x-total-count"), "4");
    let dev = members.body.as_array().expect("list").iter().find(|m| m["entity_name"] == "dev").expect("dev").clone();
    assert_eq!(
        (dev["role_id"].clone(), dev["role_name"].clone(), dev["entity_type"].clone()),
        (json!(2), json!("developer"), json!("u"))
    );
    assert_eq!(dev["project_id"], team_id);
    as_user("guest").get("/projects/team/members").await.expect(StatusCode::OK, None);
    as_user("lg").get("/projects/team/members").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    as_user("dev")
        .post("/projects/team/members", json!({"role_id": 1, "member_user": {"username": "dev"}}))
        .await
        .expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    erin.post("/projects/team/members", json!({"role_id": 9, "member_user": {"username": "outsider"}}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    erin.post("/projects/team/members", json!({"role_id": 2, "member_user": {"username": "dev"}}))
        .await
        .expect(StatusCode::CONFLICT, Some("CONFLICT"));
    erin.post("/projects/team/members", json!({"role_id": 2, "member_user": {"username": "ghost"}}))
        .await
        .expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    let dev_member = dev["id"].as_u64().expect("id");
    erin.put(&format!("/projects/team/members/{dev_member}"), json!({"role_id": 4})).await.expect(StatusCode::OK, None);
    assert_eq!(erin.get(&format!("/projects/team/members/{dev_member}")).await.body["role_name"], "maintainer");
    let summary = as_user("guest").get("/projects/team/summary").await.expect(StatusCode::OK, None);
    assert_eq!(
        (summary.body["project_admin_count"].clone(), summary.body["maintainer_count"].clone()),
        (json!(1), json!(1))
    );

    // A member may push as their role allows.
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:pull,push"]).await;
    push_image_as(&c, &base, "team/app", "v1", "pushed by a maintainer", Some(&t)).await;
    assert_eq!(erin.get("/projects/team").await.body["repo_count"], 1);

    // Robots, Harbor v2: project robots belong to the project admins.
    let robot = json!({"name": "ci", "level": "project", "duration": -1, "permissions": [
        {"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "push"}]}]});
    as_user("dev").post("/robots", robot.clone()).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    let created = erin.post("/robots", robot.clone()).await.expect(StatusCode::CREATED, None);
    assert_eq!(created.body["name"], "robot$team+ci");
    assert_eq!(created.body["expires_at"], -1);
    let (robot_id, secret) =
        (created.body["id"].as_u64().expect("id"), created.body["secret"].as_str().expect("secret").to_owned());
    let t = token(&c, &base, Some(("robot$team+ci", &secret)), &["repository:team/app:pull,push"]).await;
    push_blob_as(&c, &base, "team/app", b"pushed by a robot", Some(&t)).await;
    let listed =
        erin.get(&format!("/robots?q=Level%3Dproject%2CProjectID%3D{team_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(names(&listed.body, "name"), ["robot$team+ci"]);
    assert!(listed.body[0].get("secret").is_none(), "the secret is never listed");
    assert_eq!(listed.body[0]["permissions"][0]["access"][1]["action"], "push");
    erin.get("/robots").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    assert_eq!(admin.get("/robots").await.header("x-total-count"), "1");
    erin.put(&format!("/robots/{robot_id}"), json!({"description": "builds", "disable": true}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(
        get_token(&c, &base, Some(("robot$team+ci", &secret)), &[]).await.status(),
        StatusCode::UNAUTHORIZED,
        "disabled"
    );
    erin.put(&format!("/robots/{robot_id}"), json!({"disable": false})).await.expect(StatusCode::OK, None);
    let refreshed = erin
        .send(Method::PATCH, &format!("/robots/{robot_id}"), Some(json!({})), &[])
        .await
        .expect(StatusCode::OK, None);
    let new_secret = refreshed.body["secret"].as_str().expect("secret");
    assert_eq!(
        get_token(&c, &base, Some(("robot$team+ci", &secret)), &[]).await.status(),
        StatusCode::UNAUTHORIZED,
        "old secret"
    );
    token(&c, &base, Some(("robot$team+ci", new_secret)), &[]).await;
    let elsewhere = json!({"name": "x", "level": "project", "permissions": [{"kind": "project", "namespace": "team",
        "access": [{"resource": "repository", "action": "pull"}]}, {"kind": "project", "namespace": "library", "access": [{"resource": "repository", "action": "pull"}]}]});
    erin.post("/robots", elsewhere).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    let system = json!({"name": "ops", "level": "system", "duration": 7, "permissions": [
        {"kind": "project", "namespace": "*", "access": [{"resource": "repository", "action": "pull"}]}]});
    erin.post("/robots", system.clone()).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    let ops = admin.post("/robots", system).await.expect(StatusCode::CREATED, None);
    assert_eq!(ops.body["name"], "robot$ops");
    let t = token(
        &c,
        &base,
        Some(("robot$ops", ops.body["secret"].as_str().expect("secret"))),
        &["repository:team/app:pull,push"],
    )
    .await;
    let claims: Value = serde_json::from_slice(&base64_decode(t.split('.').nth(1).expect("claims"))).expect("json");
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]), "pull in every project, nothing more");
    erin.delete(&format!("/robots/{robot_id}")).await.expect(StatusCode::OK, None);
    erin.get(&format!("/robots/{robot_id}")).await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // A project that holds repositories is not deleted; emptied, it is.
    let deletable = erin.get("/projects/team/_deletable").await.expect(StatusCode::OK, None);
    assert_eq!(deletable.body["deletable"], false);
    erin.delete("/projects/team").await.expect(StatusCode::PRECONDITION_FAILED, Some("PRECONDITION"));
    as_user("dev").delete("/projects/named").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    erin.delete("/projects/named").await.expect(StatusCode::OK, None);
    erin.get("/projects/named").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // Metadata.
    erin.put("/projects/team", json!({"metadata": {"public": "true", "severity": "high"}}))
        .await
        .expect(StatusCode::OK, None);
    let metadata = anon.get("/projects/team/metadatas").await.expect(StatusCode::OK, None);
    assert_eq!(metadata.body, json!({"public": "true", "auto_scan": "true", "severity": "high"}));
    erin.delete("/projects/team/metadatas/severity").await.expect(StatusCode::OK, None);
    anon.get("/projects/team/metadatas/severity").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    erin.post("/projects", json!({"project_name": "Bad/Name"}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    erin.post("/projects", json!({"project_name": "team"})).await.expect(StatusCode::CONFLICT, Some("CONFLICT"));
    erin.send(Method::POST, "/projects", None, &[]).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64")
}

/// Garbage collection through the management API: system admins start runs (dry or not) and
/// read their reports; what a run frees is gone over HTTP, and the image it keeps still pulls.
#[tokio::test]
async fn garbage_collection_over_the_api() {
    let accounts = harbor_accounts().await;
    let no_grace = registry_storage::GcOptions { grace: std::time::Duration::ZERO, ..Default::default() };
    let reg = TestRegistry::builder().temp_dir().accounts(accounts).gc(no_grace, None).start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let (admin, dev, anon) = (
        Api::new(&reg, Some(("admin", "adminpassword"))),
        Api::new(&reg, Some(("dev", "password1"))),
        Api::new(&reg, None),
    );
    let token_admin =
        token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/app:pull,push,delete"]).await;
    let (_, manifest) = push_image_as(&c, &base, "library/app", "v1", "kept", Some(&token_admin)).await;
    let orphan = push_blob_as(&c, &base, "library/app", b"never referenced", Some(&token_admin)).await;

    let run = |dry_run: bool| json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": dry_run, "delete_untagged": false}});
    anon.post("/system/gc/schedule", run(true)).await.expect(StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"));
    dev.post("/system/gc/schedule", run(true)).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    let finished = |id: u64| {
        let admin = &admin;
        async move {
            loop {
                let run = admin.get(&format!("/system/gc/{id}")).await.expect(StatusCode::OK, None);
                if run.body["job_status"] != "Running" && run.body["job_status"] != "Pending" {
                    return run.body;
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let started = admin.post("/system/gc/schedule", run(true)).await.expect(StatusCode::CREATED, None);
    let dry = finished(location_id(&started)).await;
    assert_eq!(dry["job_status"], "Success", "{dry}");
    assert_eq!(dry["report"]["dry_run"], true);
    assert_eq!(dry["report"]["blobs_deleted"], 1, "{dry}");
    assert_eq!(dry["report"]["bytes_freed"], b"never referenced".len());
    let head = |digest: String| {
        let (c, t, base) = (c.clone(), token_admin.clone(), base.clone());
        async move {
            c.head(format!("{base}/v2/library/app/blobs/{digest}")).bearer_auth(t).send().await.expect("head").status()
        }
    };
    assert_eq!(head(orphan.to_string()).await, StatusCode::OK, "a dry run changes nothing");

    let started = admin.post("/system/gc/schedule", run(false)).await.expect(StatusCode::CREATED, None);
    let id = location_id(&started);
    let done = finished(id).await;
    assert_eq!(done["job_status"], "Success", "{done}");
    assert_eq!(done["job_kind"], "MANUAL");
    assert_eq!(done["report"]["blobs_deleted"], 1, "{done}");
    assert_eq!(head(orphan.to_string()).await, StatusCode::NOT_FOUND, "collected");
    let pulled = c
        .get(format!("{base}/v2/library/app/manifests/v1"))
        .bearer_auth(&token_admin)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("pull");
    assert_eq!(header(&pulled, "docker-content-digest"), manifest.to_string());
    let log = admin.get(&format!("/system/gc/{id}/log")).await.expect(StatusCode::OK, None);
    assert!(log.body.as_str().expect("text").contains("1 blobs"), "{}", log.body);
    let runs = admin.get("/system/gc").await.expect(StatusCode::OK, None);
    assert_eq!(runs.header("x-total-count"), "2");
    assert_eq!(runs.body[0]["id"], id, "newest first");
    admin.get("/system/gc/999").await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));
    admin
        .post("/system/gc/schedule", json!({"schedule": {"type": "Daily"}}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    assert_eq!(admin.get("/system/gc/schedule").await.body["schedule"]["type"], "None");
    admin.put(&format!("/system/gc/{id}"), json!({})).await.expect(StatusCode::CONFLICT, Some("CONFLICT"));

    // The runs are jobs of the shared queue: the job service shows them.
    dev.get("/jobservice/queues").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    let queues = admin.get("/jobservice/queues").await.expect(StatusCode::OK, None);
    let gc = queues.body.as_array().expect("array").iter().find(|q| q["job_type"] == "gc").expect("gc queue").clone();
    assert_eq!((gc["succeeded"].as_u64(), gc["count"].as_u64(), gc["running"].as_u64()), (Some(2), Some(0), Some(0)));
    let jobs = admin.get("/jobservice/jobs?job_type=gc&status=Success").await.expect(StatusCode::OK, None);
    assert_eq!(jobs.header("x-total-count"), "2");
    assert_eq!(jobs.body[0]["id"], id);
    assert_eq!(jobs.body[0]["attempts"], 1);
    let log = admin.get(&format!("/jobservice/jobs/{id}/log")).await.expect(StatusCode::OK, None);
    assert!(log.body.as_str().expect("text").contains("garbage collection"), "{}", log.body);
    admin
        .put(&format!("/jobservice/jobs/{id}"), json!({"action": "stop"}))
        .await
        .expect(StatusCode::CONFLICT, Some("CONFLICT"));
    admin
        .put(&format!("/jobservice/jobs/{id}"), json!({"action": "pause"}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    admin.get("/jobservice/jobs?status=sleeping").await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
}

#[tokio::test]
async fn repositories_and_artifacts_in_harbors_shapes() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.add_user("gus", "guspassword", false).await.expect("guest");
    accounts.add_user("olga", "olgapassword", false).await.expect("outsider");
    let (c, base) = (client(), reg.url());
    let (admin, guest, outsider, anon) = (
        Api::new(&reg, Some(("admin", "adminpassword"))),
        Api::new(&reg, Some(("gus", "guspassword"))),
        Api::new(&reg, Some(("olga", "olgapassword"))),
        Api::new(&reg, None),
    );
    admin.post("/projects", json!({"project_name": "team"})).await.expect(StatusCode::CREATED, None);
    admin
        .post("/projects/team/members", json!({"role_id": 3, "member_user": {"username": "gus"}}))
        .await
        .expect(StatusCode::CREATED, None);
    let t = token(&c, &base, Some(("admin", "adminpassword")), &["repository:team/app/web:pull,push,delete"]).await;

    // An image (tagged v1 and latest), an index of two images, a signature by the referrers API
    // and one by cosign's tag scheme.
    let repo = "team/app/web";
    let (image_json, image) = push_image_as(&c, &base, repo, "v1", "first", Some(&t)).await;
    put_manifest_as(&c, &base, repo, "latest", OCI_MANIFEST, &image_json, &t).await;
    let (amd, amd_digest) = push_image_as(&c, &base, repo, "amd", "amd64 child", Some(&t)).await;
    let (arm, arm_digest) = push_image_as(&c, &base, repo, "arm", "arm64 child", Some(&t)).await;
    for tag in ["amd", "arm"] {
        admin
            .delete(&format!("/projects/team/repositories/app%252Fweb/artifacts/{tag}/tags/{tag}"))
            .await
            .expect(StatusCode::OK, None);
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm_digest}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        amd.len(),
        arm.len()
    );
    let index_digest = put_manifest_as(&c, &base, repo, "multi", OCI_INDEX, &index, &t).await.to_string();
    let config = push_blob_as(&c, &base, repo, b"{}", Some(&t)).await;
    let subject = format!(
        r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{image}","size":{}}},"artifactType":"application/vnd.cncf.notary.signature""#,
        image_json.len()
    );
    let signature = image_manifest(&config, 2, &[], &subject);
    put_manifest_as(
        &c,
        &base,
        repo,
        &registry_core::Digest::sha256_of(signature.as_bytes()).to_string(),
        OCI_MANIFEST,
        &signature,
        &t,
    )
    .await;
    let cosign = image_manifest(&config, 2, &[], "");
    put_manifest_as(&c, &base, repo, &format!("sha256-{}.sig", image.hex()), OCI_MANIFEST, &cosign, &t).await;
    // Two pulls of v1, counted once the batch is stored.
    for _ in 0..2 {
        let pulled = c
            .get(format!("{base}/v2/{repo}/manifests/v1"))
            .bearer_auth(&t)
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("pull");
        assert_eq!(pulled.status(), StatusCode::OK);
    }
    reg.registry().flush_events().await;

    // The repository: two artifacts (the image, the index); children and signatures belong to them.
    let repos = guest.get("/projects/team/repositories").await.expect(StatusCode::OK, None);
    assert_eq!(names(&repos.body, "name"), ["team/app/web"]);
    assert_eq!(repos.body[0]["artifact_count"], 2, "{}", repos.body);
    assert_eq!(repos.body[0]["pull_count"], 2);
    assert_eq!(repos.header("x-total-count"), "1");
    for path in ["app%252Fweb", "app%2Fweb"] {
        let one = guest.get(&format!("/projects/team/repositories/{path}")).await.expect(StatusCode::OK, None);
        assert_eq!(one.body["name"], "team/app/web", "encoded as {path}");
    }
    let arts =
        guest.get("/projects/team/repositories/app%252Fweb/artifacts?with_tag=true").await.expect(StatusCode::OK, None);
    let list = arts.body.as_array().expect("artifacts");
    assert_eq!(list.len(), 2, "{}", arts.body);
    let by_digest = |d: &str| list.iter().find(|a| a["digest"] == d).cloned().expect("listed");
    let img = by_digest(&image.to_string());
    let mut tags: Vec<&str> =
        img["tags"].as_array().expect("tags").iter().map(|t| t["name"].as_str().expect("name")).collect();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);
    assert_eq!(img["type"], "IMAGE");
    assert_eq!(
        img["size"],
        image_json.len()
            + r#"{"architecture":"amd64","os":"linux","seed":"first"}"#.len()
            + "layer of first".len() * 100
    );
    assert_eq!(img["pull_count"], 2);
    assert!(img["pull_time"].as_str().is_some_and(|t| t.ends_with('Z')), "{img}");
    assert_eq!(img["signed"], true);
    let mut kinds: Vec<&str> =
        img["accessories"].as_array().expect("accessories").iter().map(|a| a["type"].as_str().expect("type")).collect();
    kinds.sort();
    assert_eq!(kinds, ["signature.cosign", "signature.notation"]);
    let idx = by_digest(&index_digest);
    let platforms: Vec<String> = idx["references"]
        .as_array()
        .expect("references")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["platform"]["os"].as_str().unwrap_or(""),
                r["platform"]["architecture"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(idx["pull_time"], Value::Null, "never pulled");
    let untagged =
        guest.get("/projects/team/repositories/app%252Fweb/artifacts?q=tags%3Dnil").await.expect(StatusCode::OK, None);
    assert_eq!(untagged.body.as_array().map(Vec::len), Some(0));
    let by_tag =
        guest.get("/projects/team/repositories/app%252Fweb/artifacts/multi").await.expect(StatusCode::OK, None);
    assert_eq!(by_tag.body["digest"], index_digest.as_str());

    // Activity per day and storage used, from the same stream and store.
    let activity = guest.get("/statistics/activity?days=3").await.expect(StatusCode::OK, None);
    let days = activity.body["days"].as_array().expect("days");
    assert_eq!(days.len(), 3, "{}", activity.body);
    assert_eq!(days[2]["push"], 7, "today: the image twice (v1, latest), two children, the index, two signatures");
    assert_eq!(days[2]["pull"], 2);
    guest.get("/statistics/activity?days=0").await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    let theirs = outsider.get("/statistics/activity").await.expect(StatusCode::OK, None);
    let pushes: u64 = theirs.body["days"].as_array().expect("days").iter().filter_map(|d| d["push"].as_u64()).sum();
    assert_eq!(pushes, 0, "an outsider counts only their projects' activity");
    let summary = guest.get("/projects/team/summary").await.expect(StatusCode::OK, None);
    assert!(summary.body["quota"]["used"]["storage"].as_u64().is_some_and(|n| n > image_json.len() as u64));

    // Tags: a guest may read, not write; a tag on another artifact is a conflict.
    let tags_path = format!("/projects/team/repositories/app%252Fweb/artifacts/{image}/tags");
    guest.post(&tags_path, json!({"name": "stable"})).await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    admin.post(&tags_path, json!({"name": "stable"})).await.expect(StatusCode::CREATED, None);
    admin.post(&tags_path, json!({"name": "multi"})).await.expect(StatusCode::CONFLICT, Some("CONFLICT"));
    admin.post(&tags_path, json!({"name": "no spaces"})).await.expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    let resolved = c
        .get(format!("{base}/v2/{repo}/manifests/stable"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("pull");
    assert_eq!(header(&resolved, "docker-content-digest"), image.to_string(), "the registry sees the new tag");
    let listed = guest.get(&tags_path).await.expect(StatusCode::OK, None);
    assert_eq!(listed.header("x-total-count"), "3");
    guest.delete(&format!("{tags_path}/stable")).await.expect(StatusCode::FORBIDDEN, None);
    admin.delete(&format!("{tags_path}/stable")).await.expect(StatusCode::OK, None);
    admin.delete(&format!("{tags_path}/stable")).await.expect(StatusCode::NOT_FOUND, Some("NOT_FOUND"));

    // Who may see: an outsider and the anonymous caller do not see a private project's content.
    outsider.get("/projects/team/repositories/app%252Fweb/artifacts").await.expect(StatusCode::FORBIDDEN, None);
    anon.get("/projects/team/repositories").await.expect(StatusCode::UNAUTHORIZED, None);
    let found = guest.get("/search?q=web").await.expect(StatusCode::OK, None);
    assert_eq!(found.body["repository"][0]["repository_name"], "team/app/web");
    let found = outsider.get("/search?q=web").await.expect(StatusCode::OK, None);
    assert_eq!(found.body["repository"], json!([]), "private repositories are not found by outsiders");

    // Deleting an artifact takes its accessories; deleting the repository empties it.
    guest
        .delete(&format!("/projects/team/repositories/app%252Fweb/artifacts/{image}"))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    admin
        .delete(&format!("/projects/team/repositories/app%252Fweb/artifacts/{image}"))
        .await
        .expect(StatusCode::OK, None);
    let gone = c
        .get(format!("{base}/v2/{repo}/manifests/sha256-{}.sig", image.hex()))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "the cosign signature went with its image");
    let one = admin.get("/projects/team/repositories/app%252Fweb").await.expect(StatusCode::OK, None);
    assert_eq!(one.body["artifact_count"], 1);
    admin.delete("/projects/team/repositories/app%252Fweb").await.expect(StatusCode::OK, None);
    admin.get("/projects/team/repositories/app%252Fweb").await.expect(StatusCode::NOT_FOUND, None);
    let repos = admin.get("/projects/team/repositories").await.expect(StatusCode::OK, None);
    assert_eq!(repos.body, json!([]));
    reg.stop().await;
}
