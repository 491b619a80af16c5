//! The portal's HTTP side: its pages with their security headers, Harbor's session endpoints
//! (`/c/login`, `/c/session`, `/c/log_out`) with the token service's lockout and login events,
//! and the management API taking the session cookie, with the CSRF token required for changes.

use registry_core::event::{EventAction, EventFilter};
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::*;

/// The `sid` cookie a response set (its value), with the whole `Set-Cookie` line.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let line = header(resp, "set-cookie");
    let value = line.strip_prefix("sid=").and_then(|rest| rest.split(';').next()).expect("a sid cookie").to_owned();
    (value, line)
}

async fn login(c: &reqwest::Client, base: &str, user: &str, password: &str) -> reqwest::Response {
    c.post(format!("{base}/c/login"))
        .json(&json!({"principal": user, "password": password}))
        .send()
        .await
        .expect("login")
}

#[tokio::test]
async fn sessions_use_the_same_accounts_and_guard_every_change() {
    let reg = TestRegistry::builder().harbor_accounts().portal(true).start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    accounts.add_user("dev", "devpassword", false).await.expect("dev");
    let (c, base) = (client(), reg.url());

    // The pages: HTML with a strict policy, scripts as modules of this origin, nothing else.
    let page = c.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let script = c.get(format!("{base}/portal/app.js")).send().await.expect("script");
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let etag = header(&script, "etag");
    assert!(!etag.is_empty());
    let again = c.get(format!("{base}/portal/app.js")).header("if-none-match", &etag).send().await.expect("again");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "revalidated by its ETag");
    for path in ["/portal/../Cargo.toml", "/portal/%2e%2e/Cargo.toml", "/portal/nothing.js"] {
        let (status, _) = raw_request(&reg, "GET", path).await;
        assert_eq!(status, 404, "{path}");
    }

    // Before signing in: nobody, and the first-start hint while the admin keeps its password.
    let session: Value = c.get(format!("{base}/c/session")).send().await.expect("session").json().await.expect("json");
    assert_eq!(session["user"], Value::Null);
    assert_eq!(session["first_start"], true);

    // A wrong password: 401, a login-failure event without the password; five lock the account.
    for _ in 0..5 {
        assert_eq!(login(&c, &base, "dev", "wrong-password-xyz").await.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = login(&c, &base, "dev", "devpassword").await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "the token service's lockout");
    assert!(!header(&locked, "retry-after").is_empty());
    reg.registry().flush_events().await;
    let (events, _) =
        reg.registry().metadata_store().query_events(&EventFilter::default(), 0, 100).await.expect("events");
    let failures: Vec<_> = events.iter().filter(|e| e.action == EventAction::LoginFailure).collect();
    let counted: u64 = failures.iter().map(|e| e.count).sum();
    assert_eq!(counted, 6, "each failed sign-in recorded (identical ones counted on one event)");
    assert!(failures.iter().all(|e| e.resource.name.as_deref() == Some("dev")));
    assert!(!serde_json::to_string(&events).expect("json").contains("wrong-password-xyz"), "never the password");
    let empty = c.post(format!("{base}/c/login")).json(&json!({"principal": "admin"})).send().await.expect("login");
    assert_error(empty, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;

    // Signing in: an HttpOnly, SameSite=Strict cookie and the CSRF token; the form works too.
    let signed = c
        .post(format!("{base}/c/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("principal=admin&password=adminpassword")
        .send()
        .await
        .expect("login");
    assert_eq!(signed.status(), StatusCode::OK);
    let (sid, line) = session_cookie(&signed);
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/"), "{line}");
    assert!(!line.contains("Secure"), "plain HTTP here");
    let body: Value = signed.json().await.expect("json");
    assert_eq!(body["username"], "admin");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_owned();
    let cookie = format!("sid={sid}");
    let me = c.get(format!("{base}/api/v2.0/users/current")).header("cookie", &cookie).send().await.expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.expect("json")["username"], "admin");
    let session: Value =
        c.get(format!("{base}/c/session")).header("cookie", &cookie).send().await.expect("s").json().await.expect("j");
    assert_eq!(session["user"]["username"], "admin");
    assert_eq!(session["csrf_token"], csrf.as_str());

    // A change by the cookie needs the token (another site's form cannot send it).
    let project = json!({"project_name": "team"});
    let forged = c
        .post(format!("{base}/api/v2.0/projects"))
        .header("cookie", &cookie)
        .json(&project)
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.expect("body").contains("CSRF"));
    let wrong = c
        .post(format!("{base}/api/v2.0/projects"))
        .header("cookie", &cookie)
        .header("x-harbor-csrf-token", "0".repeat(64))
        .json(&project)
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let made = c
        .post(format!("{base}/api/v2.0/projects"))
        .header("cookie", &cookie)
        .header("x-harbor-csrf-token", &csrf)
        .json(&project)
        .send()
        .await
        .expect("post");
    assert_eq!(made.status(), StatusCode::CREATED);

    // The admin changes its password: the first-start hint goes.
    let admin_id = accounts.user("admin").await.expect("user").expect("admin").id;
    let changed = c
        .put(format!("{base}/api/v2.0/users/{admin_id}/password"))
        .header("cookie", &cookie)
        .header("x-harbor-csrf-token", &csrf)
        .json(&json!({"old_password": "adminpassword", "new_password": "a-new-password-1"}))
        .send()
        .await
        .expect("put");
    assert_eq!(changed.status(), StatusCode::OK);
    let session: Value = c.get(format!("{base}/c/session")).send().await.expect("s").json().await.expect("j");
    assert_eq!(session["first_start"], false);

    // A script's 401 comes without a Basic challenge (no browser password dialog); others get it.
    let from_script = c
        .get(format!("{base}/api/v2.0/users/current"))
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .expect("get");
    assert_eq!(from_script.status(), StatusCode::UNAUTHORIZED);
    assert!(from_script.headers().get("www-authenticate").is_none());
    let plain = c.get(format!("{base}/api/v2.0/users/current")).send().await.expect("get");
    assert!(header(&plain, "www-authenticate").starts_with("Basic"));

    // Forged and foreign cookies prove nothing; a deleted user's session ends at once.
    let forged = c.get(format!("{base}/api/v2.0/users/current")).header("cookie", "sid=v1.AAAA").send().await;
    assert_eq!(forged.expect("get").status(), StatusCode::UNAUTHORIZED);
    accounts.add_user("erin", "erinpassword", false).await.expect("erin");
    let erin_login = login(&c, &base, "erin", "erinpassword").await;
    assert_eq!(erin_login.status(), StatusCode::OK);
    let (erin_sid, _) = session_cookie(&erin_login);
    let erin_cookie = format!("sid={erin_sid}");
    let seen = c.get(format!("{base}/api/v2.0/users/current")).header("cookie", &erin_cookie).send().await;
    assert_eq!(seen.expect("get").status(), StatusCode::OK);
    accounts.set_user_enabled("erin", false).await.expect("disable");
    let disabled = c.get(format!("{base}/api/v2.0/users/current")).header("cookie", &erin_cookie).send().await;
    assert_eq!(disabled.expect("get").status(), StatusCode::UNAUTHORIZED, "a disabled user's session ends");
    accounts.set_user_enabled("erin", true).await.expect("enable");
    accounts.remove_user("erin").await.expect("delete");
    let gone = c.get(format!("{base}/api/v2.0/users/current")).header("cookie", &erin_cookie).send().await;
    assert_eq!(gone.expect("get").status(), StatusCode::UNAUTHORIZED, "a deleted user's session ends");

    // Robots use tokens, not the portal.
    let (robot, secret) = accounts
        .create_robot(registry_auth::NewRobot::for_project(
            "team",
            "ci",
            vec![registry_auth::RobotPermission::parse_for_project("team", "app:pull").expect("perm")],
        ))
        .await
        .expect("robot");
    assert_eq!(login(&c, &base, &robot.name, &secret).await.status(), StatusCode::FORBIDDEN);

    // Signing out needs the token too, and removes the cookie.
    let out = c.post(format!("{base}/c/log_out")).header("cookie", &cookie).send().await.expect("out");
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    let out = c
        .post(format!("{base}/c/log_out"))
        .header("cookie", &cookie)
        .header("x-harbor-csrf-token", &csrf)
        .send()
        .await
        .expect("out");
    assert_eq!(out.status(), StatusCode::OK);
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    reg.stop().await;
}

#[tokio::test]
async fn without_the_portal_there_are_no_pages_and_no_sessions() {
    let reg = TestRegistry::builder().harbor_accounts().start().await.expect("start");
    let accounts = reg.accounts().expect("accounts");
    accounts.add_user("admin", "adminpassword", true).await.expect("admin");
    let (c, base) = (client(), reg.url());
    assert_eq!(c.get(format!("{base}/")).send().await.expect("page").status(), StatusCode::NOT_FOUND);
    assert_eq!(login(&c, &base, "admin", "adminpassword").await.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}
