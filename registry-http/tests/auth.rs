//! Token authentication over real HTTP: the challenge, the token endpoint, Harbor's roles, and
//! every way a token can be wrong.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use registry_auth::{RobotPermission, Role};
use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use testkit::*;

async fn setup() -> (TestRegistry, String) {
    let accounts = harbor_accounts().await;
    let reg = TestRegistry::start_with_auth(accounts).await.expect("start");
    let url = reg.url();
    (reg, url)
}

fn www_authenticate(resp: &reqwest::Response) -> String {
    header(resp, "www-authenticate")
}

#[tokio::test]
async fn anonymous_requests_get_the_challenge() {
    let (reg, base) = setup().await;
    let c = client();
    let resp = c.get(format!("{base}/v2/")).send().await.expect("get");
    let challenge = www_authenticate(&resp);
    assert_eq!(challenge, format!("Bearer realm=\"{base}/auth/token\",service=\"{}\"", reg.host()));
    assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    let resp = c.head(format!("{base}/v2/team/app/manifests/v1")).send().await.expect("head");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&resp).ends_with(",scope=\"repository:team/app:pull\""), "{}", www_authenticate(&resp));

    let digest = Digest::sha256_of(b"x");
    let resp = c
        .post(format!("{base}/v2/team/app/blobs/uploads/?mount={digest}&from=library/base"))
        .send()
        .await
        .expect("post");
    assert!(
        www_authenticate(&resp).contains("scope=\"repository:team/app:pull,push repository:library/base:pull\""),
        "every scope the route needs: {}",
        www_authenticate(&resp)
    );
    // Nothing was created by refused requests.
    assert!(reg.registry().catalog(None, None).await.expect("catalog").entries.is_empty());
}

#[tokio::test]
async fn roles_decide_what_a_token_grants() {
    let (_reg, base) = setup().await;
    let c = client();
    let push_scope = "repository:team/app:pull,push";

    // Developer pushes to the private project.
    let dev = token(&c, &base, Some(("dev", "password1")), &[push_scope]).await;
    let data = b"layer pushed by a developer".to_vec();
    let digest = Digest::sha256_of(&data);
    let resp = c
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(&dev)
        .body(data)
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (manifest, md) = {
        let config = b"{}".to_vec();
        let cd = Digest::sha256_of(&config);
        c.post(format!("{base}/v2/team/app/blobs/uploads/?digest={cd}"))
            .bearer_auth(&dev)
            .body(config)
            .send()
            .await
            .expect("push");
        let m = image_manifest(&cd, 2, &[(digest.clone(), 27)], "");
        let resp = c
            .put(format!("{base}/v2/team/app/manifests/v1"))
            .bearer_auth(&dev)
            .header("content-type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), StatusCode::CREATED);
        (m.clone(), Digest::sha256_of(m.as_bytes()))
    };

    // Guest pulls, cannot push; the token simply grants less.
    let guest = token(&c, &base, Some(("guest", "password1")), &[push_scope]).await;
    let resp = c.get(format!("{base}/v2/team/app/manifests/v1")).bearer_auth(&guest).send().await.expect("pull");
    assert_eq!(resp.text().await.expect("body"), manifest);
    let resp = c.post(format!("{base}/v2/team/app/blobs/uploads/")).bearer_auth(&guest).send().await.expect("push");
    assert!(www_authenticate(&resp).contains("error=\"insufficient_scope\""));
    assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Non-member and anonymous: nothing on the private project.
    for creds in [Some(("outsider", "password1")), None] {
        let t = token(&c, &base, creds, &["repository:team/app:pull"]).await;
        let resp = c.get(format!("{base}/v2/team/app/manifests/v1")).bearer_auth(&t).send().await.expect("pull");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{creds:?}");
    }

    // Delete: refused for the developer, allowed for the maintainer.
    let dev_delete = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:delete"]).await;
    let resp =
        c.delete(format!("{base}/v2/team/app/manifests/{md}")).bearer_auth(&dev_delete).send().await.expect("delete");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let ma = token(&c, &base, Some(("ma", "password1")), &["repository:team/app:delete"]).await;
    let resp = c.delete(format!("{base}/v2/team/app/manifests/{md}")).bearer_auth(&ma).send().await.expect("delete");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // Anonymous pull from the public project works; a guest cannot push there.
    let admin = token(&c, &base, Some(("admin", "adminpassword")), &["repository:library/base:pull,push"]).await;
    let d = push_blob_with(&c, &base, "library/base", b"public layer", &admin).await;
    let anon = token(&c, &base, None, &["repository:library/base:pull,push"]).await;
    assert_eq!(
        c.head(format!("{base}/v2/library/base/blobs/{d}")).bearer_auth(&anon).send().await.expect("head").status(),
        StatusCode::OK
    );
    let guest = token(&c, &base, Some(("guest", "password1")), &["repository:library/base:push"]).await;
    assert_eq!(
        c.post(format!("{base}/v2/library/base/blobs/uploads/"))
            .bearer_auth(&guest)
            .send()
            .await
            .expect("post")
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // The catalog lists what the caller may pull: everything for the admin, the public project
    // for an outsider, nothing for anonymous.
    let catalog = |who: Option<(&'static str, &'static str)>| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let t = token(&c, &base, who, &["registry:catalog:*"]).await;
            let resp = c.get(format!("{base}/v2/_catalog")).bearer_auth(&t).send().await.expect("catalog");
            if resp.status() != StatusCode::OK {
                return None;
            }
            Some(resp.json::<serde_json::Value>().await.expect("json")["repositories"].clone())
        }
    };
    assert_eq!(catalog(Some(("admin", "adminpassword"))).await, Some(serde_json::json!(["library/base", "team/app"])));
    assert_eq!(catalog(Some(("outsider", "password1"))).await, Some(serde_json::json!(["library/base"])));
    assert_eq!(catalog(Some(("guest", "password1"))).await, Some(serde_json::json!(["library/base", "team/app"])));
    assert_eq!(catalog(None).await, None, "anonymous gets no catalog");
}

async fn push_blob_with(c: &reqwest::Client, base: &str, repo: &str, data: &[u8], token: &str) -> Digest {
    let digest = Digest::sha256_of(data);
    let resp = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .bearer_auth(token)
        .body(data.to_vec())
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::CREATED);
    digest
}

#[tokio::test]
async fn robot_accounts_push_with_their_secret() {
    let (reg, base) = setup().await;
    let accounts = reg.accounts().expect("auth on");
    let (robot, secret) = accounts
        .create_robot({
            let mut robot = registry_auth::NewRobot::for_project(
                "team",
                "ci",
                vec![RobotPermission::parse_for_project("team", "app:pull,push").expect("perm")],
            );
            robot.duration_days = None;
            robot
        })
        .await
        .expect("robot");
    let c = client();
    let t = token(
        &c,
        &base,
        Some((&robot.name, &secret)),
        &["repository:team/app:pull,push", "repository:team/other:push"],
    )
    .await;
    push_blob_with(&c, &base, "team/app", b"from ci", &t).await;
    let resp = c.post(format!("{base}/v2/team/other/blobs/uploads/")).bearer_auth(&t).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "robot permissions are per repository pattern");
    assert_eq!(get_token(&c, &base, Some((&robot.name, "wrong")), &[]).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oauth2_post_and_refresh_tokens() {
    let (reg, base) = setup().await;
    let c = client();
    let service = reg.host();
    let form = format!(
        "grant_type=password&username=dev&password=password1&service={service}&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&client_id=test&access_type=offline"
    );
    let resp = c
        .post(format!("{base}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    let refresh = body["refresh_token"].as_str().expect("refresh token").to_owned();
    push_blob_with(&c, &base, "team/app", b"pushed with a POST token", body["access_token"].as_str().expect("token"))
        .await;

    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service={service}&scope=repository%3Ateam%2Fapp%3Apull"
    );
    let resp = c.post(format!("{base}/auth/token")).body(form.clone()).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<serde_json::Value>().await.expect("json")["access_token"].is_string());

    // A disabled user's refresh token stops working at once.
    reg.accounts().expect("auth").set_user_enabled("dev", false).await.expect("disable");
    let resp = c.post(format!("{base}/auth/token")).body(form).send().await.expect("post");
    assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let resp = c.post(format!("{base}/auth/token")).body("grant_type=magic").send().await.expect("post");
    assert_error(resp, StatusCode::BAD_REQUEST, "UNSUPPORTED").await;
    let resp = get_token(&c, &base, None, &["not a scope"]).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "UNSUPPORTED").await;
}

#[tokio::test]
async fn bad_tokens_are_refused_and_write_nothing() {
    let (reg, base) = setup().await;
    let c = client();
    let good = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:pull"]).await;
    let parts: Vec<&str> = good.split('.').collect();

    // Tampered claims: pull escalated to push.
    let mut claims: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
    claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#), B64.encode(claims.to_string()));
    let hs256 =
        format!("{}.{}.{}", B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#), B64.encode(claims.to_string()), parts[2]);
    // Signed by a key the registry does not trust.
    let foreign_key = registry_auth::TokenKey::generate().expect("key");
    let foreign =
        registry_auth::TokenIssuer::new(foreign_key, registry_http::token::ISSUER, std::time::Duration::from_secs(300))
            .issue("dev", &reg.host(), &[registry_core::Scope::parse("repository:team/app:pull,push").expect("scope")])
            .expect("issue")
            .0;
    for bad in [tampered, none, hs256, foreign, "garbage".to_string()] {
        let resp = c.post(format!("{base}/v2/team/app/blobs/uploads/")).bearer_auth(&bad).send().await.expect("post");
        assert!(www_authenticate(&resp).contains("error=\"invalid_token\""), "{bad}");
        assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }

    // A pull token cannot push; a token for one repository does not open another.
    let resp = c.post(format!("{base}/v2/team/app/blobs/uploads/")).bearer_auth(&good).send().await.expect("post");
    assert!(www_authenticate(&resp).contains("error=\"insufficient_scope\""));
    let other = token(&c, &base, Some(("dev", "password1")), &["repository:team/other:pull,push"]).await;
    let resp = c
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={}", Digest::sha256_of(b"x")))
        .bearer_auth(&other)
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(reg.registry().catalog(None, None).await.expect("catalog").entries.is_empty(), "nothing written");

    // Escalation in the token request grants nothing beyond the role.
    let t = token(&c, &base, Some(("guest", "password1")), &["repository:team/app:pull,push,delete,*"]).await;
    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(t.split('.').nth(1).expect("claims")).expect("b64")).expect("json");
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));

    // Names that try to leave a project never reach the policy or the store.
    for path in ["/v2/team/../library/x/blobs/uploads/", "/v2/team/%2e%2e/library/blobs/uploads/"] {
        let (status, body) = raw_request(&reg, "POST", path).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("NAME_INVALID"));
    }

    // Wrong passwords: after five, the account is locked (429), even for the right password.
    for _ in 0..5 {
        assert_eq!(get_token(&c, &base, Some(("ma", "wrong")), &[]).await.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = get_token(&c, &base, Some(("ma", "password1")), &[]).await;
    assert!(!header(&resp, "retry-after").is_empty());
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
}

#[tokio::test]
async fn jwks_publishes_the_verifying_key() {
    let (_reg, base) = setup().await;
    let c = client();
    let jwks: serde_json::Value =
        c.get(format!("{base}/auth/jwks")).send().await.expect("jwks").json().await.expect("json");
    let key = registry_auth::PublicKey::from_jwk(&jwks["keys"][0].to_string()).expect("jwk");
    let t = token(&c, &base, None, &[]).await;
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(t.split('.').next().expect("header")).expect("b64")).expect("json");
    assert_eq!(header["kid"], key.thumbprint());
    assert_eq!(header["alg"], "ES256");
}

#[tokio::test]
async fn tokens_die_with_their_project() {
    let (reg, base) = setup().await;
    let c = client();
    let t = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:pull,push"]).await;
    push_blob_with(&c, &base, "team/app", b"before the project was deleted", &t).await;
    reg.accounts().expect("auth").remove_project("team").await.expect("remove");
    // Signed in, the caller is told the project is gone (clients print the message).
    let resp = c.post(format!("{base}/v2/team/app/blobs/uploads/")).bearer_auth(&t).send().await.expect("post");
    assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    // Re-created: the old token still does not open it (unless issued within the same second;
    // see registry_http::distribution::access::predates), and a new token needs a new membership.
    reg.accounts().expect("auth").create_project("team", false).await.expect("re-create");
    let fresh = token(&c, &base, Some(("dev", "password1")), &["repository:team/app:pull,push"]).await;
    let resp = c.post(format!("{base}/v2/team/app/blobs/uploads/")).bearer_auth(&fresh).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "memberships went with the project");
}

#[tokio::test]
async fn wrong_times_audiences_and_issuers_are_refused_over_http() {
    let (reg, base) = setup().await;
    let c = client();
    let accounts = reg.accounts().expect("auth on");
    // A project that existed long before these tokens, so only the checked claim differs.
    let now = registry_core::time::now_secs();
    accounts.import_project("old", false, now - 100_000).await.expect("project");
    accounts.add_member("old", "dev", Role::Developer, None).await.expect("member");
    let key = reg.token_key().expect("auth on").clone();
    let issuer =
        registry_auth::TokenIssuer::new(key, registry_http::token::ISSUER, std::time::Duration::from_secs(300));
    let good = registry_auth::Claims {
        iss: registry_http::token::ISSUER.into(),
        sub: "dev".into(),
        aud: reg.host(),
        exp: now + 300,
        nbf: now - 1,
        iat: now,
        jti: "test".into(),
        access: vec![registry_auth::AccessEntry {
            resource_type: "repository".into(),
            name: "old/app".into(),
            actions: vec!["pull".into(), "push".into()],
        }],
    };
    // The well-formed token works, so each variant below fails for its one difference.
    let t = issuer.sign_claims(&good).expect("sign");
    assert_eq!(
        c.post(format!("{base}/v2/old/app/blobs/uploads/")).bearer_auth(&t).send().await.expect("post").status(),
        StatusCode::ACCEPTED
    );
    let variants = [
        ("expired", registry_auth::Claims { exp: now - 120, iat: now - 420, nbf: now - 420, ..good.clone() }),
        ("not yet valid", registry_auth::Claims { nbf: now + 600, ..good.clone() }),
        ("wrong audience", registry_auth::Claims { aud: "another-registry".into(), ..good.clone() }),
        ("wrong issuer", registry_auth::Claims { iss: "someone-else".into(), ..good.clone() }),
    ];
    for (what, claims) in variants {
        let t = issuer.sign_claims(&claims).expect("sign");
        let resp = c
            .post(format!("{base}/v2/old/app/blobs/uploads/?digest={}", Digest::sha256_of(b"x")))
            .bearer_auth(&t)
            .body("x")
            .send()
            .await
            .expect("post");
        assert!(www_authenticate(&resp).contains("error=\"invalid_token\""), "{what}");
        assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    assert_eq!(
        reg.registry().stat_blob(&"old/app".parse().expect("name"), &Digest::sha256_of(b"x")).await.ok(),
        None,
        "nothing written by refused requests"
    );

    // An upload session started under a valid token may finish with it after it expired (within
    // the documented grace), but nothing else accepts the expired token.
    let location = header(
        &c.post(format!("{base}/v2/old/app/blobs/uploads/"))
            .bearer_auth(t_for(&issuer, &good))
            .send()
            .await
            .expect("post"),
        "location",
    );
    let expired = issuer
        .sign_claims(&registry_auth::Claims { exp: now - 120, iat: now - 420, nbf: now - 420, ..good.clone() })
        .expect("sign");
    let data = b"finished after the token expired".to_vec();
    let digest = Digest::sha256_of(&data);
    let resp =
        c.put(format!("{base}{location}?digest={digest}")).bearer_auth(&expired).body(data).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED, "upload grace");
    let resp = c.post(format!("{base}/v2/old/app/blobs/uploads/")).bearer_auth(&expired).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no grace for new sessions");
}

fn t_for(issuer: &registry_auth::TokenIssuer, claims: &registry_auth::Claims) -> String {
    issuer.sign_claims(claims).expect("sign")
}

/// A request whose work does not finish in time (here: an account store that hangs) gets 503
/// with `Retry-After`, not a client left waiting.
#[tokio::test]
async fn a_hung_backend_gets_a_503_at_the_request_deadline() {
    use registry_auth::{AuthError, Authenticator, Identity};
    struct Hangs;
    #[async_trait::async_trait]
    impl Authenticator for Hangs {
        async fn authenticate(&self, username: &str, _: &str) -> Result<Identity, AuthError> {
            Ok(Identity::User { name: username.to_owned(), admin: false })
        }
        async fn lookup(&self, _: &str) -> Result<Identity, AuthError> {
            std::future::pending().await
        }
    }
    let reg = TestRegistry::builder()
        .authenticator(Hangs)
        .request_deadline(std::time::Duration::from_millis(200))
        .start()
        .await
        .expect("start");
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(("anyone", "anything")), &["registry:catalog:*"]).await;
    // The catalog asks the authenticator who the token's subject is: it never answers.
    let resp = c.get(format!("{base}/v2/_catalog")).bearer_auth(&t).send().await.expect("get");
    assert_eq!(header(&resp, "retry-after"), "1");
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN").await;
    // Other requests are served meanwhile.
    assert_eq!(c.get(format!("{base}/v2/")).bearer_auth(&t).send().await.expect("get").status(), StatusCode::OK);
}

/// A signed-in caller asking for a token in a project that does not exist is told so beside the
/// (empty) grant, and the registry's answer to the request names the project too.
#[tokio::test]
async fn a_missing_project_is_named_to_signed_in_callers() {
    let (_reg, base) = setup().await;
    let c = client();
    let resp = get_token(&c, &base, Some(("dev", "password1")), &["repository:nope/app:pull,push"]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["denied"][0]["scope"], "repository:nope/app:pull,push");
    assert!(body["denied"][0]["reason"].as_str().expect("reason").contains("project nope not found"));
    let t = body["token"].as_str().expect("token");
    let resp = c.post(format!("{base}/v2/nope/app/blobs/uploads/")).bearer_auth(t).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let error: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(error["errors"][0]["code"], "NAME_UNKNOWN");
    assert!(error["errors"][0]["message"].as_str().expect("message").contains("project nope not found"));
    assert_eq!(error["errors"][0]["detail"]["project"], "nope");
    // Anonymous callers learn nothing of which projects exist.
    let anonymous = get_token(&c, &base, None, &["repository:nope/app:pull"]).await;
    let body: serde_json::Value = anonymous.json().await.expect("json");
    assert!(body.get("denied").is_none());
    let t = body["token"].as_str().expect("token");
    let resp = c.get(format!("{base}/v2/nope/app/tags/list")).bearer_auth(t).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
