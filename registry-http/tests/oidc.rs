//! OpenID Connect, against a real provider (the npm package oidc-provider, started by the test):
//! its discovery tried by `POST /system/oidc/ping` before anyone relies on it; people signing in
//! in the browser (authorization code with PKCE), onboarded automatically or choosing a name;
//! their CLI secrets used by command-line clients, checked against the provider's session once
//! per access-token lifetime (a person removed upstream loses access; the provider down is a 503
//! naming it); groups and the admin group from the groups claim; what local users may still do.

use std::sync::Arc;

use registry_core::time::ManualClock;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::Api;
use testkit::oidc::{Browser, OidcProvider};
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_discovery_is_tried() {
    let provider = OidcProvider::start(&["http://127.0.0.1:1/c/oidc/callback"]).await;
    let reg = harbor_registry().await;
    let admin = Api::new(&reg, Some(ADMIN));

    admin
        .post("/system/oidc/ping", json!({"url": provider.issuer, "verify_cert": true}))
        .await
        .expect(StatusCode::OK, None);
    admin.post("/system/oidc/ping", json!({"url": format!("{}/", provider.issuer)})).await.expect(StatusCode::OK, None);

    // Why a provider cannot be used: not a URL, nothing listening, not a provider.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    for (url, says) in [
        ("ldap://127.0.0.1:1".to_owned(), "https://".to_owned()),
        (format!("http://127.0.0.1:{closed}"), format!("http://127.0.0.1:{closed}")),
        (format!("{}/not-here", provider.issuer), "discovery failed".to_owned()),
    ] {
        let refused = admin.post("/system/oidc/ping", json!({"url": url})).await.expect(StatusCode::BAD_REQUEST, None);
        assert!(refused.body.to_string().contains(&says), "{url}: {}", refused.body);
    }
    admin.post("/system/oidc/ping", json!({"verify_cert": true})).await.expect(StatusCode::BAD_REQUEST, None);

    // System admins only.
    admin
        .post("/users", json!({"username": "ursula", "password": "Password123", "email": "u@example.org"}))
        .await
        .expect(StatusCode::CREATED, None);
    let user = Api::new(&reg, Some(("ursula", "Password123")));
    user.post("/system/oidc/ping", json!({"url": provider.issuer})).await.expect(StatusCode::FORBIDDEN, None);
    Api::new(&reg, None)
        .post("/system/oidc/ping", json!({"url": provider.issuer}))
        .await
        .expect(StatusCode::UNAUTHORIZED, None);
    provider.stop().await;
    reg.stop().await;
}

/// The provider's settings, as an admin sends them.
fn provider_settings(provider: &OidcProvider, auto_onboard: bool) -> Value {
    json!({
        "auth_mode": "oidc_auth",
        "oidc_name": "Test ID",
        "oidc_endpoint": provider.issuer,
        "oidc_client_id": OidcProvider::CLIENT_ID,
        "oidc_client_secret": OidcProvider::CLIENT_SECRET,
        "oidc_scope": "openid,profile,email,groups,offline_access",
        "oidc_groups_claim": "groups",
        "oidc_admin_group": "registry-admins",
        "oidc_auto_onboard": auto_onboard,
    })
}

/// Signs `person` in in `browser` (from the portal's button to the page the flow ends on).
async fn browser_sign_in(
    reg: &TestRegistry,
    provider: &OidcProvider,
    browser: &mut Browser,
    person: &str,
) -> testkit::oidc::Page {
    let at_provider = browser.open(&format!("{}/c/oidc/login?redirect_url=/%23/projects", reg.url())).await;
    provider.sign_in(browser, at_provider, person).await
}

/// `GET /api/v2.0/users/current` with the browser's session.
async fn current_user(reg: &TestRegistry, browser: &mut Browser) -> (StatusCode, Value) {
    let response = browser.send(client().get(format!("{}/api/v2.0/users/current", reg.url()))).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What `GET /api/v2.0/users/current` answers to Basic credentials.
async fn basic(reg: &TestRegistry, user: &str, secret: &str) -> (StatusCode, String) {
    let response = client()
        .get(format!("{}/api/v2.0/users/current", reg.url()))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .expect("request");
    (response.status(), response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_provider_and_use_cli_secrets() {
    let clock = Arc::new(ManualClock::at_secs(registry_core::time::now_secs()));
    let reg = TestRegistry::builder().harbor_accounts().clock(clock.clone()).portal(true).start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.add_user("dev", "password1", false).await.expect("dev");
    accounts.create_project("team", false).await.expect("team");
    let provider = OidcProvider::start(&[&format!("{}/c/oidc/callback", reg.url())]).await;
    let admin = Api::new(&reg, Some(ADMIN));

    // What can be told wrong is refused before it is saved.
    for (change, says) in [
        (json!({"auth_mode": "oidc_auth"}), "oidc_endpoint"),
        (json!({"auth_mode": "oidc_auth", "oidc_endpoint": provider.issuer}), "oidc_client_id"),
        (json!({"auth_mode": "sso"}), "db_auth, ldap_auth, oidc_auth"),
        (json!({"oidc_verify_cert": "yes"}), "oidc_verify_cert"),
    ] {
        let refused = admin.put("/configurations", change.clone()).await.expect(StatusCode::BAD_REQUEST, None);
        assert!(refused.body.to_string().contains(says), "{change}: {}", refused.body);
    }
    // Before the provider is the mode, its sign-in is not offered.
    let mut browser = Browser::new();
    let page = browser.open(&format!("{}/c/oidc/login", reg.url())).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    admin.put("/configurations", provider_settings(&provider, true)).await.expect(StatusCode::OK, None);
    let settings = admin.get("/configurations").await.expect(StatusCode::OK, None).body;
    assert_eq!(settings["oidc_endpoint"]["value"], json!(provider.issuer));
    assert!(settings.get("oidc_client_secret").is_none(), "the client secret is never shown");
    let session: Value =
        client().get(format!("{}/c/session", reg.url())).send().await.expect("session").json().await.expect("json");
    assert_eq!((session["auth_mode"].as_str(), session["oidc_name"].as_str()), (Some("oidc_auth"), Some("Test ID")));

    // Alice signs in in the browser and is made a user; she lands where she asked to go.
    let page = browser_sign_in(&reg, &provider, &mut browser, "alice").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.redirects.last().map(String::as_str), Some("/#/projects"), "{:?}", page.redirects);
    let (status, me) = current_user(&reg, &mut browser).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((me["username"].as_str(), me["email"].as_str()), (Some("alice"), Some("alice@example.org")));
    assert_eq!(me["realname"], json!("Alice Liddell"), "from the name claim");
    assert_eq!(me["sysadmin_flag"], json!(false));
    let secret = me["oidc_user_meta"]["secret"].as_str().expect("a CLI secret").to_owned();
    assert!(secret.len() >= 16, "{secret}");
    let alice = accounts.user("alice").await.expect("read").expect("alice");
    assert!(!format!("{alice:?}").contains(&secret), "no secret in Debug");

    // Her CLI secret is her password for command-line clients; nothing else is.
    assert_eq!(basic(&reg, "alice", &secret).await.0, StatusCode::OK);
    assert_eq!(basic(&reg, "alice", "not-her-secret").await.0, StatusCode::UNAUTHORIZED);
    let podman = Podman::with_test_image().await;
    let auth = podman.auth_file("alice");
    podman.run(&["login", "--tls-verify=false", "-u", "alice", "-p", &secret, &reg.host()], &auth).await;

    // Her groups claim made the group "developers" here; as a member of a project it gives her its role.
    assert!(granted_actions(&reg.url(), "alice", &secret, "team/app").await.is_empty());
    admin
        .post(
            "/projects/team/members",
            json!({"role_id": 2, "member_group": {"group_name": "developers", "group_type": 3}}),
        )
        .await
        .expect(StatusCode::CREATED, None);
    assert_eq!(granted_actions(&reg.url(), "alice", &secret, "team/app").await, ["pull", "push"]);
    podman.run(&["tag", "localhost/podtest:v1", &format!("{}/team/app:v1", reg.host())], &auth).await;
    podman.run(&["push", "--tls-verify=false", &format!("{}/team/app:v1", reg.host())], &auth).await;

    // She sets a new CLI secret: the old one stops working at once. Passwords are not hers to change.
    let id = alice.id;
    let own = Api::new(&reg, Some(("alice", &secret)));
    own.put(&format!("/users/{id}/cli_secret"), json!({"secret": "short"})).await.expect(StatusCode::BAD_REQUEST, None);
    own.put(&format!("/users/{id}/cli_secret"), json!({"secret": "alice-new-cli-secret"}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(basic(&reg, "alice", &secret).await.0, StatusCode::UNAUTHORIZED);
    let secret = "alice-new-cli-secret".to_owned();
    assert_eq!(basic(&reg, "alice", &secret).await.0, StatusCode::OK);
    let refused = Api::new(&reg, Some(("alice", &secret)))
        .put(&format!("/users/{id}/password"), json!({"old_password": secret, "new_password": "Password-123"}))
        .await;
    assert!(refused.status.is_client_error() && refused.body.to_string().contains("cli_secret"), "{}", refused.body);
    // A local user (not an admin) cannot even sign in to try.
    Api::new(&reg, Some(("dev", "password1")))
        .put(&format!("/users/{id}/cli_secret"), json!({"secret": "dev-sets-alice-secret"}))
        .await
        .expect(StatusCode::UNAUTHORIZED, None);

    // Olga is in the provider's admin group: a system admin here.
    let mut olga_browser = Browser::new();
    browser_sign_in(&reg, &provider, &mut olga_browser, "olga").await;
    let (_, olga) = current_user(&reg, &mut olga_browser).await;
    assert_eq!(olga["sysadmin_flag"], json!(true), "{olga}");
    let olga_secret = olga["oidc_user_meta"]["secret"].as_str().expect("secret").to_owned();

    // Local users other than the system admins sign in no more; the admin still does.
    assert_eq!(basic(&reg, "dev", "password1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(basic(&reg, "admin", "adminpassword").await.0, StatusCode::OK);

    // Alice is removed at the provider: she keeps access until the provider's access token would
    // have expired, then loses it. Olga's groups change there: they change here at her next check.
    provider.remove("alice").await;
    provider.set_groups("olga", &["developers"]).await;
    assert_eq!(basic(&reg, "alice", &secret).await.0, StatusCode::OK, "within the token's lifetime");
    clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(basic(&reg, "alice", &secret).await.0, StatusCode::UNAUTHORIZED, "the provider ended her session");
    let (status, olga) = basic(&reg, "olga", &olga_secret).await;
    assert_eq!(status, StatusCode::OK, "{olga}");
    assert!(olga.contains("\"sysadmin_flag\":false"), "no longer in the admin group: {olga}");
    assert_eq!(granted_actions(&reg.url(), "olga", &olga_secret, "team/app").await, ["pull", "push"]);
    // No longer an admin, she may not set another user's CLI secret.
    Api::new(&reg, Some(("olga", &olga_secret)))
        .put(&format!("/users/{id}/cli_secret"), json!({"secret": "olga-sets-alice-secret"}))
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // The provider down: a clear 503 naming it, not "invalid credentials".
    let issuer = provider.issuer.clone();
    provider.stop().await;
    clock.advance(std::time::Duration::from_secs(3600));
    let (status, body) = basic(&reg, "olga", &olga_secret).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(&issuer), "{body}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_choose_their_names_when_onboarding_is_not_automatic() {
    let reg = TestRegistry::builder().accounts(harbor_accounts().await).portal(true).start().await.expect("start");
    let provider = OidcProvider::start(&[&format!("{}/c/oidc/callback", reg.url())]).await;
    let admin = Api::new(&reg, Some(ADMIN));
    admin.put("/configurations", provider_settings(&provider, false)).await.expect(StatusCode::OK, None);

    // A callback without the sign-in it belongs to, or with another state, is refused.
    let mut stranger = Browser::new();
    let page = stranger.open(&format!("{}/c/oidc/callback?code=x&state=y", reg.url())).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("sign in again"), "{}", page.body);
    let at_provider = stranger.open(&format!("{}/c/oidc/login", reg.url())).await;
    assert!(at_provider.url.starts_with(&provider.issuer));
    let page = stranger.open(&format!("{}/c/oidc/callback?code=x&state=forged", reg.url())).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(stranger.cookie("sid").is_none());

    // Bob is asked for a name (his claim's suggested); a taken one is refused, then he is made.
    let mut browser = Browser::new();
    let page = browser_sign_in(&reg, &provider, &mut browser, "bob").await;
    assert_eq!(page.redirects.last().map(String::as_str), Some("/#/oidc-onboard?username=bob"), "{:?}", page.redirects);
    assert!(browser.cookie("sid").is_none(), "not signed in before choosing");
    let choose = |name: &str| {
        client()
            .post(format!("{}/c/oidc/onboard", reg.url()))
            .header("content-type", "application/json")
            .body(json!({"username": name}).to_string())
    };
    let taken = browser.send(choose("dev")).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert!(taken.text().await.expect("body").contains("taken"));
    let invalid = browser.send(choose("bob builder")).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    let made = browser.send(choose("bobby")).await;
    assert_eq!(made.status(), StatusCode::OK);
    let (status, me) = current_user(&reg, &mut browser).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("bobby")));
    assert_eq!(browser.send(choose("bob2")).await.status(), StatusCode::BAD_REQUEST, "the onboarding was used");

    // His next sign-in finds him by his subject, under the name he chose.
    let mut again = Browser::new();
    let page = browser_sign_in(&reg, &provider, &mut again, "bob").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(current_user(&reg, &mut again).await.1["username"], json!("bobby"));

    // Every sign-in is in the audit log, the refused ones too.
    reg.registry().flush_events().await;
    let logins = admin.get("/audit-logs?q=operation%3Dlogin").await.expect(StatusCode::OK, None).body;
    assert!(logins.to_string().contains("bobby"), "{logins}");
    let refused = admin.get("/audit-logs?q=operation%3Dlogin_failure").await.expect(StatusCode::OK, None).body;
    assert!(refused.as_array().is_some_and(|r| !r.is_empty()), "the forged state: {refused}");

    // The provider down while someone signs in: a 503 naming it.
    let mut late = Browser::new();
    let at_provider = late.open(&format!("{}/c/oidc/login", reg.url())).await;
    let state = at_provider.redirects[0].split("state=").nth(1).and_then(|s| s.split('&').next()).expect("state");
    let state = state.to_owned();
    let issuer = provider.issuer.clone();
    provider.stop().await;
    let page = late.open(&format!("{}/c/oidc/callback?code=x&state={state}", reg.url())).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(page.body.contains(&issuer), "{}", page.body);
    reg.stop().await;
}
