//! Signing in through OpenLDAP (Debian's `slapd`, started by the test with a fixture): settings
//! refused before they are saved when they cannot work, the ping saying why a server cannot be
//! used, users made at their first sign-in with their e-mail and name (a non-ASCII one too), the
//! admin group, a disabled person left out by the filter, the local system admin still signing in
//! with its password, the lockout, a directory that is down answering 503 naming it, the user
//! search and import, passwords that belong to the directory, and who may manage all this.

use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::Api;
use testkit::ldap::{BASE, Slapd};
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

/// Harbor's LDAP settings for `slapd` (people who are not disabled; the admin group).
fn settings(slapd: &Slapd) -> Value {
    json!({
        "auth_mode": "ldap_auth",
        "ldap_url": slapd.url,
        "ldap_search_dn": Slapd::ROOT_DN,
        "ldap_search_password": Slapd::ROOT_PASSWORD,
        "ldap_base_dn": format!("ou=people,{BASE}"),
        "ldap_filter": "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))",
        "ldap_uid": "uid",
        "ldap_scope": 2,
        "ldap_group_admin_dn": format!("cn=registry-admins,ou=groups,{BASE}"),
    })
}

/// The token endpoint's answer to `user` with `password`.
async fn sign_in(reg: &TestRegistry, user: &str, password: &str) -> reqwest::Response {
    get_token(&client(), &reg.url(), Some((user, password)), &["repository:team/app:pull"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_directory() {
    let mut slapd = Slapd::start().await;
    let reg = harbor_registry().await;
    let admin = Api::new(&reg, Some(ADMIN));

    // Settings that cannot work are refused before they are saved, saying why.
    for (change, says) in [
        (json!({"ldap_url": "http://127.0.0.1:1"}), "ldap_url"),
        (json!({"ldap_filter": "objectClass=person"}), "ldap_filter"),
        (json!({"ldap_scope": 7}), "ldap_scope"),
        (json!({"ldap_ca_certificate": "not a certificate"}), "ldap_ca_certificate"),
        (json!({"auth_mode": "sso"}), "auth_mode"),
    ] {
        let mut body = settings(&slapd);
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let refused = admin.put("/configurations", body).await.expect(StatusCode::BAD_REQUEST, None);
        assert!(refused.body.to_string().contains(says), "{says}: {}", refused.body);
    }
    assert_eq!(admin.get("/systeminfo").await.expect(StatusCode::OK, None).body["auth_mode"], "db_auth");

    // The ping tries a server before it is saved: why it cannot be used, or that it can.
    let mut wrong = settings(&slapd);
    wrong["ldap_search_password"] = json!("wrong");
    wrong.as_object_mut().expect("object").remove("auth_mode");
    let pinged = admin.post("/ldap/ping", wrong).await.expect(StatusCode::OK, None);
    assert_eq!(pinged.body["success"], false);
    assert!(pinged.body["message"].as_str().unwrap_or_default().contains("refuses the search DN"), "{}", pinged.body);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let unreachable = json!({"ldap_url": format!("ldap://127.0.0.1:{closed}"), "ldap_base_dn": BASE});
    let pinged = admin.post("/ldap/ping", unreachable).await.expect(StatusCode::OK, None);
    assert!(pinged.body["message"].as_str().unwrap_or_default().contains("cannot be reached"), "{}", pinged.body);
    let mut good = settings(&slapd);
    good.as_object_mut().expect("object").remove("auth_mode");
    let pinged = admin.post("/ldap/ping", good).await.expect(StatusCode::OK, None);
    assert_eq!(pinged.body, json!({"success": true}));

    admin.put("/configurations", settings(&slapd)).await.expect(StatusCode::OK, None);
    let shown = admin.get("/configurations").await.expect(StatusCode::OK, None);
    assert_eq!(shown.body["ldap_url"]["value"], slapd.url);
    assert!(!shown.body.to_string().contains(Slapd::ROOT_PASSWORD), "the search password is never shown");
    assert_eq!(admin.get("/systeminfo").await.expect(StatusCode::OK, None).body["auth_mode"], "ldap_auth");

    // Searching the directory: by part of a name, or everyone the filter takes.
    let found = admin.get("/ldap/users/search?username=ali").await.expect(StatusCode::OK, None);
    assert_eq!(found.body, json!([{"username": "alice", "realname": "Alice Liddell", "email": "alice@example.org"}]));
    let everyone = admin.get("/ldap/users/search").await.expect(StatusCode::OK, None);
    let mut names: Vec<&str> =
        everyone.body.as_array().expect("people").iter().filter_map(|p| p["username"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob", "dave", "jose"], "carol is disabled");

    // Signing in: the first time makes the user, with the directory's e-mail and name.
    assert_eq!(sign_in(&reg, "alice", "alice-password").await.status(), StatusCode::OK);
    let me = Api::new(&reg, Some(("alice", "alice-password"))).get("/users/current").await.expect(StatusCode::OK, None);
    assert_eq!(
        (me.body["email"].as_str(), me.body["realname"].as_str()),
        (Some("alice@example.org"), Some("Alice Liddell"))
    );
    assert_eq!(me.body["sysadmin_flag"], false);
    let jose = Api::new(&reg, Some(("jose", "jose-password"))).get("/users/current").await.expect(StatusCode::OK, None);
    assert_eq!(jose.body["realname"], "José Núñez");
    let dave = Api::new(&reg, Some(("dave", "dave-password"))).get("/users/current").await.expect(StatusCode::OK, None);
    assert_eq!(dave.body["sysadmin_flag"], true, "dave is in the admin group");
    assert_eq!(sign_in(&reg, "alice", "wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&reg, "carol", "carol-password").await.status(), StatusCode::UNAUTHORIZED, "disabled");
    assert_eq!(sign_in(&reg, "nobody", "whatever-password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&reg, "dev", "password1").await.status(), StatusCode::UNAUTHORIZED, "the directory's now");
    assert_eq!(sign_in(&reg, "admin", "adminpassword").await.status(), StatusCode::OK, "the local admin");
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("alice");
    podman.run(&["login", "--tls-verify=false", "-u", "alice", "-p", "alice-password", &reg.host()], &auth).await;

    // The directory's people change their passwords there.
    let refused = Api::new(&reg, Some(("alice", "alice-password")))
        .put(
            &format!("/users/{}/password", me.body["user_id"]),
            json!({"old_password": "alice-password", "new_password": "another-password1"}),
        )
        .await;
    assert!(refused.status.is_client_error(), "{:?}", refused.body);
    assert!(refused.body.to_string().contains("LDAP directory"), "{}", refused.body);

    // Only system admins manage the directory.
    let alice = Api::new(&reg, Some(("alice", "alice-password")));
    alice.post("/ldap/ping", json!({})).await.expect(StatusCode::FORBIDDEN, None);
    alice.get("/ldap/users/search").await.expect(StatusCode::FORBIDDEN, None);
    alice.put("/configurations", json!({"auth_mode": "db_auth"})).await.expect(StatusCode::FORBIDDEN, None);
    let anonymous = Api::new(&reg, None);
    anonymous.post("/ldap/ping", json!({})).await.expect(StatusCode::UNAUTHORIZED, None);
    anonymous.get("/ldap/users/search").await.expect(StatusCode::UNAUTHORIZED, None);
    anonymous
        .post("/ldap/users/import", json!({"ldap_uid_list": ["bob"]}))
        .await
        .expect(StatusCode::UNAUTHORIZED, None);
    alice.post("/ldap/users/import", json!({"ldap_uid_list": ["bob"]})).await.expect(StatusCode::FORBIDDEN, None);
    let bad = admin.post("/ldap/users/import", json!({"uids": ["bob"]})).await.expect(StatusCode::BAD_REQUEST, None);
    assert!(bad.body.to_string().contains("ldap_uid_list"), "{}", bad.body);

    // Import: users made before their first sign-in; the names that cannot be, listed.
    let imported = admin.post("/ldap/users/import", json!({"ldap_uid_list": ["bob", "nobody"]})).await;
    assert_eq!(imported.status, StatusCode::NOT_FOUND);
    assert_eq!(imported.body[0]["uid"], "nobody", "{}", imported.body);
    let users = admin.get("/users?q=username%3Dbob").await.expect(StatusCode::OK, None);
    assert_eq!(users.body[0]["email"], "bob@example.org", "{}", users.body);

    // The lockout holds for the directory's people too.
    for _ in 0..5 {
        assert_eq!(sign_in(&reg, "bob", "wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(sign_in(&reg, "bob", "bob-password").await.status(), StatusCode::TOO_MANY_REQUESTS);

    // The directory down: 503 naming it, not "invalid credentials"; the local admin unaffected,
    // and a sign-in verified moments ago still holds (for two minutes).
    slapd.kill().await;
    assert_eq!(sign_in(&reg, "jose", "jose-password").await.status(), StatusCode::OK, "remembered");
    let down = sign_in(&reg, "jose", "another-password").await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = down.text().await.expect("body");
    assert!(text.contains("LDAP server") && text.contains(&slapd.url), "{text}");
    assert_eq!(sign_in(&reg, "admin", "adminpassword").await.status(), StatusCode::OK);
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_and_starttls_with_a_ca_of_its_own() {
    let slapd = Slapd::start_tls().await;
    let (ldaps, ca) = (slapd.ldaps_url.clone().expect("ldaps"), slapd.ca_pem.clone().expect("ca"));
    let reg = TestRegistry::builder().accounts(harbor_accounts().await).start().await.expect("start");
    let admin = Api::new(&reg, Some(ADMIN));
    let ping = |changes: Value| {
        let mut body = settings(&slapd);
        body.as_object_mut().expect("object").remove("auth_mode");
        for (k, v) in changes.as_object().expect("object") {
            body[k] = v.clone();
        }
        admin.post("/ldap/ping", body)
    };
    // ldaps:// without the CA: the certificate is not trusted, and the ping says so.
    let untrusted = ping(json!({"ldap_url": ldaps})).await.expect(StatusCode::OK, None);
    assert_eq!(untrusted.body["success"], false);
    let why = untrusted.body["message"].as_str().unwrap_or_default();
    assert!(why.contains("cannot be reached") && why.to_lowercase().contains("certificate"), "{why}");
    for change in [
        json!({"ldap_url": ldaps, "ldap_ca_certificate": ca}),
        json!({"ldap_starttls": true, "ldap_ca_certificate": ca}),
        json!({"ldap_url": ldaps, "ldap_verify_cert": false}),
    ] {
        let answered = ping(change.clone()).await.expect(StatusCode::OK, None);
        assert_eq!(answered.body, json!({"success": true}), "{change}");
    }
    let mut body = settings(&slapd);
    body["ldap_url"] = json!(ldaps);
    body["ldap_ca_certificate"] = json!(ca);
    admin.put("/configurations", body).await.expect(StatusCode::OK, None);
    assert_eq!(sign_in(&reg, "alice", "alice-password").await.status(), StatusCode::OK, "over ldaps://");
    slapd.stop().await;
    reg.stop().await;
}

/// The actions the token endpoint grants `user` on `repository`.
async fn granted(reg: &TestRegistry, user: &str, password: &str, repository: &str) -> Vec<String> {
    testkit::granted_actions(&reg.url(), user, password, repository).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_groups_are_members_of_projects() {
    let slapd = Slapd::start().await;
    let reg = harbor_registry().await;
    let admin = Api::new(&reg, Some(ADMIN));
    let developers = format!("cn=developers,ou=groups,{BASE}");

    // LDAP groups are made only while the directory signs people in.
    let early = admin.post("/usergroups", json!({"group_type": 1, "ldap_group_dn": developers})).await;
    early.expect(StatusCode::BAD_REQUEST, None);
    let mut body = settings(&slapd);
    body["ldap_group_base_dn"] = json!(format!("ou=groups,{BASE}"));
    body["ldap_group_search_filter"] = json!("(objectClass=groupOfNames)");
    body["ldap_group_attribute_name"] = json!("cn");
    admin.put("/configurations", body.clone()).await.expect(StatusCode::OK, None);
    let mut bad = body.clone();
    bad["ldap_group_search_filter"] = json!("objectClass=groupOfNames");
    let refused = admin.put("/configurations", bad).await.expect(StatusCode::BAD_REQUEST, None);
    assert!(refused.body.to_string().contains("ldap_group_search_filter"), "{}", refused.body);

    // The directory's groups: by part of a name, or by DN.
    let found = admin.get("/ldap/groups/search?groupname=dev").await.expect(StatusCode::OK, None);
    assert_eq!(found.body, json!([{"group_name": "developers", "group_type": 1, "ldap_group_dn": developers}]));
    let by_dn = admin.get(&format!("/ldap/groups/search?groupdn={developers}")).await.expect(StatusCode::OK, None);
    assert_eq!(by_dn.body[0]["group_name"], "developers");
    let none = admin.get(&format!("/ldap/groups/search?groupdn=cn=nobody,ou=groups,{BASE}")).await;
    assert_eq!(none.expect(StatusCode::OK, None).body, json!([]));

    // A group here for a DN the directory has, named as the directory names it; one per DN.
    let missing = admin
        .post("/usergroups", json!({"group_type": 1, "ldap_group_dn": format!("cn=ghosts,ou=groups,{BASE}")}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(missing.body.to_string().contains("cn=ghosts"), "{}", missing.body);
    let made = admin.post("/usergroups", json!({"group_type": 1, "ldap_group_dn": developers})).await;
    let group_id = made.expect(StatusCode::CREATED, None).id();
    let group = admin.get(&format!("/usergroups/{group_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(
        group.body,
        json!({"id": group_id, "group_name": "developers", "group_type": 1, "ldap_group_dn": developers})
    );
    let again = json!({"group_type": 1, "ldap_group_dn": developers.to_uppercase().replace(',', ", ")});
    admin.post("/usergroups", again).await.expect(StatusCode::CONFLICT, None);
    admin
        .post("/usergroups", json!({"group_type": 2, "group_name": "web"}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);

    // The group a developer of a private project; alice (in it) a guest of her own: the
    // strongest role wins. Bob, in no group, gets nothing.
    admin.post("/projects", json!({"project_name": "squad", "public": false})).await.expect(StatusCode::CREATED, None);
    let member = admin
        .post("/projects/squad/members", json!({"role_id": 2, "member_group": {"id": group_id}}))
        .await
        .expect(StatusCode::CREATED, None);
    let member_id = member.id();
    assert_eq!(granted(&reg, "alice", "alice-password", "squad/app").await, ["pull", "push"]);
    admin
        .post("/projects/squad/members", json!({"role_id": 3, "member_user": {"username": "alice"}}))
        .await
        .expect(StatusCode::CREATED, None);
    assert_eq!(granted(&reg, "alice", "alice-password", "squad/app").await, ["pull", "push"], "the stronger role");
    assert!(granted(&reg, "bob", "bob-password", "squad/app").await.is_empty());
    let members = admin.get("/projects/squad/members").await.expect(StatusCode::OK, None);
    let listed = members.body.as_array().expect("members").iter().find(|m| m["id"] == json!(member_id)).cloned();
    let listed = listed.expect("the group is listed");
    assert_eq!((listed["entity_type"].as_str(), listed["entity_name"].as_str()), (Some("g"), Some("developers")));
    assert_eq!(listed["entity_id"], json!(group_id));

    // A group named by its DN is made as it is added (the admin group here).
    admin
        .post(
            "/projects/squad/members",
            json!({"role_id": 4, "member_group": {"group_type": 1, "ldap_group_dn": format!("cn=registry-admins,ou=groups,{BASE}")}}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    let groups = admin.get("/usergroups").await.expect(StatusCode::OK, None);
    assert_eq!(groups.body.as_array().map(Vec::len), Some(2), "{}", groups.body);

    // Who may see and change groups: any signed-in user searches, system admins manage.
    let alice = Api::new(&reg, Some(("alice", "alice-password")));
    let searched = alice.get("/usergroups/search?groupname=dev").await.expect(StatusCode::OK, None);
    assert_eq!(searched.body, json!([{"id": group_id, "group_name": "developers", "group_type": 1}]));
    alice.get("/usergroups").await.expect(StatusCode::FORBIDDEN, None);
    alice.get("/ldap/groups/search?groupname=dev").await.expect(StatusCode::FORBIDDEN, None);
    alice.post("/usergroups", json!({"group_type": 3, "group_name": "x"})).await.expect(StatusCode::FORBIDDEN, None);
    alice.delete(&format!("/usergroups/{group_id}")).await.expect(StatusCode::FORBIDDEN, None);
    Api::new(&reg, None).get("/usergroups/search?groupname=dev").await.expect(StatusCode::UNAUTHORIZED, None);

    // Renamed in place; deleted with its memberships: alice keeps only her own role.
    admin.put(&format!("/usergroups/{group_id}"), json!({"group_name": "devs"})).await.expect(StatusCode::OK, None);
    let renamed = admin.get(&format!("/projects/squad/members/{member_id}")).await.expect(StatusCode::OK, None);
    assert_eq!(renamed.body["entity_name"], "devs");
    admin.delete(&format!("/usergroups/{group_id}")).await.expect(StatusCode::OK, None);
    admin.get(&format!("/projects/squad/members/{member_id}")).await.expect(StatusCode::NOT_FOUND, None);
    assert_eq!(granted(&reg, "alice", "alice-password", "squad/app").await, ["pull"]);
    admin.get(&format!("/usergroups/{group_id}")).await.expect(StatusCode::NOT_FOUND, None);
    slapd.stop().await;
    reg.stop().await;
}
