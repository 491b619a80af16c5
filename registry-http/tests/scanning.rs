//! Vulnerability scanning against a scanner adapter the tests run (Harbor's Pluggable Scanner
//! API over real HTTP, fixture reports; Trivy and Clair cannot be installed here): registrations
//! checked against their adapter and their credentials sealed, the credential a scan hands out
//! (pulls its repository and nothing else, expires), scans on request, on push and of
//! everything, reports and overviews in Harbor's shapes, adapters that are down, slow or answer
//! garbage (the scan fails saying why; pushes and pulls go on), the prevention policy on every
//! pull path with the CVE allowlists, and who may do what.

use std::time::Duration;

use base64::Engine as _;
use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::harbor::Api;
use testkit::scanner::{Behaviour, FixtureScanner, pull_with};
use testkit::*;

const ADMIN: (&str, &str) = ("admin", "adminpassword");
const REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";

async fn start(timeout: Duration) -> TestRegistry {
    TestRegistry::builder()
        .accounts(harbor_accounts().await)
        .jobs(Duration::from_secs(30), Duration::from_millis(20))
        .scan_timeout(timeout)
        .start()
        .await
        .expect("start")
}

/// Registers `scanner` (with its API key); its uuid.
async fn register(admin: &Api, name: &str, scanner: &FixtureScanner) -> String {
    let mut body = json!({"name": name, "url": scanner.url()});
    if let Some(key) = &scanner.api_key {
        body["auth"] = json!("X-ScannerAdapter-API-Key");
        body["access_credential"] = json!(key);
    }
    let created = admin.post("/scanners", body).await.expect(StatusCode::CREATED, None);
    created.header("location").rsplit('/').next().expect("uuid").to_owned()
}

/// The overview of `reference` once its scan has ended (polling the artifacts API).
async fn scanned(api: &Api, repo: &str, reference: &str) -> Value {
    let path = format!("/projects/team/repositories/{repo}/artifacts/{reference}?with_scan_overview=true");
    for _ in 0..1500 {
        let a = api.get(&path).await.expect(StatusCode::OK, None);
        let overview = &a.body["scan_overview"][REPORT];
        if let Some(status) = overview["scan_status"].as_str()
            && !matches!(status, "Pending" | "Running")
        {
            return overview.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the scan of {repo}:{reference} did not end")
}

/// The SBOM overview of `reference` once its SBOM generation has ended.
async fn sbom_made(api: &Api, repo: &str, reference: &str) -> Value {
    let path = format!("/projects/team/repositories/{repo}/artifacts/{reference}?with_sbom_overview=true");
    for _ in 0..1500 {
        let a = api.get(&path).await.expect(StatusCode::OK, None);
        let overview = &a.body["sbom_overview"];
        if let Some(status) = overview["scan_status"].as_str()
            && !matches!(status, "Pending" | "Running")
        {
            return overview.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the SBOM generation of {repo}:{reference} did not end")
}

async fn pull(reg: &TestRegistry, repo: &str, reference: &str, creds: (&str, &str)) -> (StatusCode, String) {
    let c = client();
    let base = reg.url();
    let t = token(&c, &base, Some(creds), &[&format!("repository:{repo}:pull")]).await;
    let r = c
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .bearer_auth(t)
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .expect("get");
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["errors"][0]["message"].as_str().unwrap_or_default().to_owned())
}

async fn push(reg: &TestRegistry, repo: &str, tag: &str, seed: &str) -> Digest {
    let c = client();
    let base = reg.url();
    let t = token(&c, &base, Some(ADMIN), &[&format!("repository:{repo}:pull,push")]).await;
    push_image_as(&c, &base, repo, tag, seed, Some(&t)).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_are_checked_registered_and_chosen_by_admins() {
    let reg = start(Duration::from_secs(60)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let dev = Api::new(&reg, Some(("dev", "password1")));
    let fixture = FixtureScanner::start(Some("sesame-key"), false).await;

    // Bad input: each refused saying why, nothing kept.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let down = admin
        .post("/scanners", json!({"name": "down", "url": closed}))
        .await
        .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    assert!(
        down.body["errors"][0]["message"].as_str().unwrap_or_default().contains("cannot be reached"),
        "{}",
        down.body
    );
    let metadata_ip = admin.post("/scanners", json!({"name": "m", "url": "http://169.254.169.254/"})).await;
    assert!(metadata_ip.expect(StatusCode::BAD_REQUEST, None).body.to_string().contains("link-local"));
    let wrong_key = admin
        .post(
            "/scanners",
            json!({"name": "k", "url": fixture.url(), "auth": "X-ScannerAdapter-API-Key", "access_credential": "nope"}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert!(wrong_key.body.to_string().contains("401"), "{}", wrong_key.body);
    admin.post("/scanners", json!({"url": fixture.url()})).await.expect(StatusCode::BAD_REQUEST, None);
    admin
        .post("/scanners", json!({"name": "x", "url": fixture.url(), "auth": "Digest"}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    assert_eq!(admin.get("/scanners").await.expect(StatusCode::OK, None).body, json!([]));

    // Only system admins manage scanners.
    dev.get("/scanners").await.expect(StatusCode::FORBIDDEN, Some("FORBIDDEN"));
    Api::new(&reg, None).get("/scanners").await.expect(StatusCode::UNAUTHORIZED, None);
    dev.post("/scanners", json!({"name": "f", "url": fixture.url()})).await.expect(StatusCode::FORBIDDEN, None);

    let first = register(&admin, "fixture", &fixture).await;
    admin
        .post("/scanners", json!({"name": "fixture", "url": fixture.url(), "auth": "X-ScannerAdapter-API-Key", "access_credential": "sesame-key"}))
        .await
        .expect(StatusCode::CONFLICT, Some("CONFLICT"));
    let listed = admin.get("/scanners").await.expect(StatusCode::OK, None);
    assert_eq!(listed.body[0]["uuid"], first.as_str());
    assert_eq!(listed.body[0]["is_default"], true, "the first registration is the default");
    assert_eq!(listed.body[0]["access_credential"], "***", "never shown");
    let shown = admin.get(&format!("/scanners/{first}")).await.expect(StatusCode::OK, None);
    assert_eq!((shown.body["health"].as_str(), shown.body["adapter"].as_str()), (Some("healthy"), Some("Fixture")));
    let metadata = admin.get(&format!("/scanners/{first}/metadata")).await.expect(StatusCode::OK, None);
    assert_eq!(metadata.body["capabilities"][0]["produces_mime_types"][0], REPORT);
    // The credential is sealed at rest.
    let stored = reg.registry().metadata_store().policies("scanner", Some(0)).await.expect("policies");
    assert!(!stored[0].body.contains("sesame-key"), "{}", stored[0].body);
    // Ping: a registration's settings tried without keeping them.
    let ping = json!({"name": "p", "url": fixture.url(), "auth": "X-ScannerAdapter-API-Key", "access_credential": "sesame-key"});
    assert_eq!(
        admin.post("/scanners/ping", ping).await.expect(StatusCode::OK, None).body["scanner"]["name"],
        "Fixture"
    );
    admin.post("/scanners/ping", json!({"name": "p", "url": closed})).await.expect(StatusCode::BAD_REQUEST, None);
    // An update keeps the credential it does not mention.
    admin.put(&format!("/scanners/{first}"), json!({"description": "the fixture"})).await.expect(StatusCode::OK, None);
    assert_eq!(admin.get(&format!("/scanners/{first}")).await.expect(StatusCode::OK, None).body["health"], "healthy");

    // A project's scanner: read by members, set by its admins; candidates listed to them.
    let other_fixture = FixtureScanner::start(None, true).await;
    let second = register(&admin, "second", &other_fixture).await;
    let guest = Api::new(&reg, Some(("guest", "password1")));
    assert_eq!(guest.get("/projects/team/scanner").await.expect(StatusCode::OK, None).body["uuid"], first.as_str());
    dev.put("/projects/team/scanner", json!({"uuid": second})).await.expect(StatusCode::FORBIDDEN, None);
    admin.put("/projects/team/scanner", json!({"uuid": "no-such"})).await.expect(StatusCode::BAD_REQUEST, None);
    admin.put("/projects/team/scanner", json!({"uuid": second})).await.expect(StatusCode::OK, None);
    assert_eq!(guest.get("/projects/team/scanner").await.expect(StatusCode::OK, None).body["uuid"], second.as_str());
    assert_eq!(
        admin.get("/projects/team/scanner/candidates").await.expect(StatusCode::OK, None).header("x-total-count"),
        "2"
    );
    Api::new(&reg, Some(("outsider", "password1")))
        .get("/projects/team/scanner")
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // The default cannot go while others remain; another made the default, it can.
    admin.delete(&format!("/scanners/{first}")).await.expect(StatusCode::CONFLICT, None);
    admin
        .send(reqwest::Method::PATCH, &format!("/scanners/{second}"), Some(json!({"is_default": true})), &[])
        .await
        .expect(StatusCode::OK, None);
    let deleted = admin.delete(&format!("/scanners/{first}")).await.expect(StatusCode::OK, None);
    assert_eq!(deleted.body["name"], "fixture");
    admin.get(&format!("/scanners/{first}")).await.expect(StatusCode::NOT_FOUND, None);
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_hand_out_a_narrow_credential_and_keep_the_report() {
    let reg = start(Duration::from_secs(60)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let dev = Api::new(&reg, Some(("dev", "password1")));
    let guest = Api::new(&reg, Some(("guest", "password1")));
    let digest = push(&reg, "team/app", "v1", "one").await;
    push(&reg, "team/secret", "v1", "two").await;

    // No scanner yet: a clear refusal.
    let none = dev
        .post("/projects/team/repositories/app/artifacts/v1/scan", json!({}))
        .await
        .expect(StatusCode::PRECONDITION_FAILED, None);
    assert!(none.body.to_string().contains("no scanner"), "{}", none.body);
    let fixture = FixtureScanner::start(Some("k1"), false).await;
    register(&admin, "fixture", &fixture).await;

    guest
        .post("/projects/team/repositories/app/artifacts/v1/scan", json!({}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    dev.post("/projects/team/repositories/app/artifacts/v1/scan", json!({"scan_type": "malware"}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    dev.post("/projects/team/repositories/app/artifacts/nope/scan", json!({}))
        .await
        .expect(StatusCode::NOT_FOUND, None);
    dev.post("/projects/team/repositories/app/artifacts/v1/scan", json!({})).await.expect(StatusCode::ACCEPTED, None);
    let overview = scanned(&guest, "app", "v1").await;
    assert_eq!(overview["scan_status"], "Success", "{overview}");
    assert_eq!(overview["severity"], "High");
    assert_eq!(overview["summary"]["total"], 2);
    assert_eq!(overview["summary"]["fixable"], 1);
    assert_eq!(overview["summary"]["summary"]["High"], 1);
    assert_eq!(overview["scanner"]["name"], "Fixture");
    let vulnerabilities = guest
        .get("/projects/team/repositories/app/artifacts/v1/additions/vulnerabilities")
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(vulnerabilities.body[REPORT]["vulnerabilities"][0]["id"], "CVE-2026-0001");
    let log = guest
        .get(&format!(
            "/projects/team/repositories/app/artifacts/v1/scan/{}/log",
            overview["report_id"].as_str().expect("id")
        ))
        .await
        .expect(StatusCode::OK, None);
    assert!(log.body.as_str().unwrap_or_default().contains("Fixture 1.0"), "{}", log.body);

    // The credential it was handed: the registry's URL, Basic, good for this repository only.
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.pulled, 200, "the adapter pulled what it scans");
    assert_eq!(request.body["registry"]["url"], reg.url());
    assert_eq!(request.body["artifact"]["digest"], digest.to_string());
    assert_eq!(request.body["artifact"]["repository"], "team/app");
    let authorization = request.body["registry"]["authorization"].as_str().expect("authorization").to_owned();
    let c = client();
    assert_eq!(pull_with(&c, &reg.url(), &authorization, "team/app", &digest.to_string()).await, Ok(200));
    let elsewhere = pull_with(&c, &reg.url(), &authorization, "team/secret", "v1").await.expect("answer");
    assert!(elsewhere == 401 || elsewhere == 403, "another repository: {elsewhere}");
    let basic = authorization.strip_prefix("Basic ").expect("Basic");
    let decoded =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic).expect("base64")).expect("utf8");
    let (user, credential) = decoded.split_once(':').expect("user:credential");
    assert!(user.starts_with("scanner$"), "{user}");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(credential.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("json");
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert!(lifetime <= 60 + 1, "it expires with the scan's timeout: {lifetime}s");
    // The same credential pushes nothing.
    let exchanged = c
        .get(format!("{}/auth/token?service={}&scope=repository:team/app:pull,push", reg.url(), reg.host()))
        .header("authorization", &authorization)
        .send()
        .await
        .expect("token");
    let exchanged: Value = exchanged.json().await.expect("json");
    let access: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(exchanged["token"].as_str().unwrap_or_default().split('.').nth(1).unwrap_or_default())
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert_eq!(access["access"][0]["actions"], json!(["pull"]), "{access}");

    // Not images: refused with 422.
    let c = client();
    let t = token(&c, &reg.url(), Some(ADMIN), &["repository:team/app:pull,push"]).await;
    let config = push_blob_as(&c, &reg.url(), "team/app", b"{}", Some(&t)).await;
    let chart = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config.to_string(), "size": 2}, "layers": []})
    .to_string();
    let put = c
        .put(format!("{}/v2/team/app/manifests/chart", reg.url()))
        .bearer_auth(&t)
        .header("content-type", OCI_MANIFEST)
        .body(chart)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::CREATED);
    dev.post("/projects/team/repositories/app/artifacts/chart/scan", json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY, None);

    // An index: its children are scanned, its overview sums them up.
    let a = push(&reg, "team/multi", "a", "child-a").await;
    let b = push(&reg, "team/multi", "b", "child-b").await;
    fixture.report_for(&b.to_string(), vec![("CVE-2026-0009", "Critical", Some("2"))]);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": a.to_string(), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": b.to_string(), "size": 1, "platform": {"os": "linux", "architecture": "arm64"}}]})
    .to_string();
    let t = token(&c, &reg.url(), Some(ADMIN), &["repository:team/multi:pull,push"]).await;
    let put = c
        .put(format!("{}/v2/team/multi/manifests/both", reg.url()))
        .bearer_auth(&t)
        .header("content-type", OCI_INDEX)
        .body(index)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::CREATED);
    dev.post("/projects/team/repositories/multi/artifacts/both/scan", json!({}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    scanned(&guest, "multi", &a.to_string()).await;
    scanned(&guest, "multi", &b.to_string()).await;
    let overview = scanned(&guest, "multi", "both").await;
    assert_eq!((overview["scan_status"].as_str(), overview["severity"].as_str()), (Some("Success"), Some("Critical")));
    assert_eq!(overview["summary"]["total"], 3);
    assert_eq!(overview["complete_percent"], 100);

    // SCANNING_COMPLETED events, with the overview as their detail.
    reg.registry().flush_events().await;
    let events = reg.registry().metadata_store().events_after(0, 10_000).await.expect("events");
    let completed: Vec<_> =
        events.iter().filter(|e| e.action == registry_core::event::EventAction::ScanningCompleted).collect();
    assert_eq!(completed.len(), 3);
    assert!(completed[0].resource.detail.as_deref().unwrap_or_default().contains("\"severity\":\"High\""));
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapters_that_fail_fail_their_scan_and_nothing_else() {
    let reg = start(Duration::from_secs(2)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let fixture = FixtureScanner::start(None, false).await;
    register(&admin, "fixture", &fixture).await;
    for (i, (behaviour, why)) in [
        (Behaviour::Garbage, "not an array"),
        (Behaviour::Refuse, "the fixture refuses to scan"),
        (Behaviour::Slow, "within 2s"),
    ]
    .into_iter()
    .enumerate()
    {
        fixture.behave(behaviour.clone());
        let tag = format!("t{i}");
        push(&reg, "team/app", &tag, &tag).await;
        admin
            .post(&format!("/projects/team/repositories/app/artifacts/{tag}/scan"), json!({}))
            .await
            .expect(StatusCode::ACCEPTED, None);
        if behaviour == Behaviour::Slow {
            // Pushes and pulls go on while a scan waits.
            push(&reg, "team/app", "meanwhile", "meanwhile").await;
            assert_eq!(pull(&reg, "team/app", "meanwhile", ADMIN).await.0, StatusCode::OK);
        }
        let overview = scanned(&admin, "app", &tag).await;
        assert_eq!(overview["scan_status"], "Error", "{behaviour:?}: {overview}");
        assert!(overview["error"].as_str().unwrap_or_default().contains(why), "{behaviour:?}: {overview}");
        let log = admin
            .get(&format!(
                "/projects/team/repositories/app/artifacts/{tag}/scan/{}/log",
                overview["report_id"].as_str().expect("id")
            ))
            .await
            .expect(StatusCode::OK, None);
        assert!(log.body.as_str().unwrap_or_default().contains(why), "{}", log.body);
    }
    // A scan stopped while it waits.
    fixture.behave(Behaviour::Slow);
    push(&reg, "team/app", "stopme", "stopme").await;
    admin
        .post("/projects/team/repositories/app/artifacts/stopme/scan", json!({}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    Api::new(&reg, Some(("guest", "password1")))
        .post("/projects/team/repositories/app/artifacts/stopme/scan/stop", json!({"scan_type": "vulnerability"}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    admin
        .post("/projects/team/repositories/app/artifacts/stopme/scan/stop", json!({"scan_type": "vulnerability"}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    assert_eq!(scanned(&admin, "app", "stopme").await["scan_status"], "Stopped");
    admin
        .post("/projects/team/repositories/app/artifacts/stopme/scan/stop", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    // An adapter gone away.
    fixture.stop();
    admin.post("/projects/team/repositories/app/artifacts/t0/scan", json!({})).await.expect(StatusCode::ACCEPTED, None);
    let overview = scanned(&admin, "app", "t0").await;
    assert!(overview["error"].as_str().unwrap_or_default().contains("cannot be reached"), "{overview}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vulnerable_images_are_not_pulled_unless_allowed() {
    let reg = start(Duration::from_secs(60)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let fixture = FixtureScanner::start(None, false).await;
    register(&admin, "fixture", &fixture).await;
    let vulnerable = push(&reg, "team/app", "vulnerable", "one").await;
    let clean = push(&reg, "team/app", "clean", "two").await;
    fixture.report_for(&clean.to_string(), vec![("CVE-2026-0100", "Low", None)]);
    let unscanned = push(&reg, "team/app", "unscanned", "three").await;
    let _ = unscanned;

    // Bad settings are refused.
    for bad in [json!({"prevent_vul": "yes"}), json!({"severity": "apocalyptic"}), json!({"auto_scan": "1"})] {
        admin
            .put("/projects/team", json!({"metadata": bad}))
            .await
            .expect(StatusCode::BAD_REQUEST, Some("BAD_REQUEST"));
    }
    admin
        .put("/projects/team", json!({"metadata": {"prevent_vul": "true", "severity": "high"}}))
        .await
        .expect(StatusCode::OK, None);
    let (status, message) = pull(&reg, "team/app", "unscanned", ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.contains("was not scanned") && message.contains("project team"), "{message}");
    for tag in ["vulnerable", "clean"] {
        admin
            .post(&format!("/projects/team/repositories/app/artifacts/{tag}/scan"), json!({}))
            .await
            .expect(StatusCode::ACCEPTED, None);
        scanned(&admin, "app", tag).await;
    }
    for reference in ["vulnerable".to_owned(), vulnerable.to_string()] {
        let (status, message) = pull(&reg, "team/app", &reference, ("dev", "password1")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{reference}");
        assert!(message.contains("1 such vulnerabilities (1 High)") && message.contains("severity High"), "{message}");
    }
    assert_eq!(pull(&reg, "team/app", "clean", ADMIN).await.0, StatusCode::OK, "only a Low one");

    // The system allowlist allows it; once expired, no more; a project's own list when it says so.
    let forbidden_allowlist = Api::new(&reg, Some(("dev", "password1")));
    forbidden_allowlist
        .put("/system/CVEAllowlist", json!({"items": [{"cve_id": "CVE-2026-0001"}]}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    admin.put("/system/CVEAllowlist", json!({"items": [{"cve_id": ""}]})).await.expect(StatusCode::BAD_REQUEST, None);
    admin
        .put("/system/CVEAllowlist", json!({"items": [{"cve_id": "CVE-2026-0001"}]}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(
        forbidden_allowlist.get("/system/CVEAllowlist").await.expect(StatusCode::OK, None).body["items"][0]["cve_id"],
        "CVE-2026-0001"
    );
    assert_eq!(pull(&reg, "team/app", "vulnerable", ADMIN).await.0, StatusCode::OK, "allowlisted");
    admin
        .put("/system/CVEAllowlist", json!({"items": [{"cve_id": "CVE-2026-0001"}], "expires_at": 1}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(pull(&reg, "team/app", "vulnerable", ADMIN).await.0, StatusCode::FORBIDDEN, "expired");
    admin
        .put("/projects/team", json!({"metadata": {"reuse_sys_cve_allowlist": "false"}, "cve_allowlist": {"items": [{"cve_id": "CVE-2026-0001"}]}}))
        .await
        .expect(StatusCode::OK, None);
    assert_eq!(
        admin.get("/projects/team").await.expect(StatusCode::OK, None).body["cve_allowlist"]["items"][0]["cve_id"],
        "CVE-2026-0001"
    );
    assert_eq!(pull(&reg, "team/app", "vulnerable", ADMIN).await.0, StatusCode::OK, "the project's own list");
    admin.put("/projects/team", json!({"cve_allowlist": {"items": []}})).await.expect(StatusCode::OK, None);
    assert_eq!(pull(&reg, "team/app", "vulnerable", ADMIN).await.0, StatusCode::FORBIDDEN);
    admin.put("/projects/team", json!({"metadata": {"severity": "critical"}})).await.expect(StatusCode::OK, None);
    assert_eq!(pull(&reg, "team/app", "vulnerable", ADMIN).await.0, StatusCode::OK, "below the threshold");
    admin.put("/projects/team", json!({"metadata": {"severity": "low"}})).await.expect(StatusCode::OK, None);

    // skopeo shows the refusal.
    let err = skopeo_inspect_refused(&reg.host(), "team/app:vulnerable").await;
    assert!(err.contains("prevents pulling images with vulnerabilities"), "{err}");

    // Content trust on as well: the scanner still pulls what it scans (and it is refused to others).
    admin
        .put("/projects/team", json!({"metadata": {"enable_content_trust_cosign": "true"}}))
        .await
        .expect(StatusCode::OK, None);
    push(&reg, "team/app", "fresh", "fresh").await;
    admin
        .post("/projects/team/repositories/app/artifacts/fresh/scan", json!({}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    assert_eq!(scanned(&admin, "app", "fresh").await["scan_status"], "Success");
    assert_eq!(fixture.requests().last().expect("request").pulled, 200);
    assert_eq!(pull(&reg, "team/app", "fresh", ADMIN).await.0, StatusCode::FORBIDDEN);
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_scanned_in_auto_scan_projects_and_everything_on_request() {
    let reg = start(Duration::from_secs(60)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let fixture = FixtureScanner::start(None, false).await;
    register(&admin, "fixture", &fixture).await;
    push(&reg, "team/before", "v1", "before").await;
    admin.put("/projects/team", json!({"metadata": {"auto_scan": "true"}})).await.expect(StatusCode::OK, None);
    push(&reg, "team/app", "v1", "pushed").await;
    assert_eq!(scanned(&admin, "app", "v1").await["scan_status"], "Success", "scanned on push");
    push(&reg, "library/lib", "v1", "library").await;
    let lib = admin
        .get("/projects/library/repositories/lib/artifacts/v1?with_scan_overview=true")
        .await
        .expect(StatusCode::OK, None);
    assert!(lib.body.get("scan_overview").is_none(), "library does not scan on push");

    // The scan of everything: admins only, bad schedules refused, metrics counted.
    let dev = Api::new(&reg, Some(("dev", "password1")));
    dev.post("/system/scanAll/schedule", json!({"schedule": {"type": "Manual"}}))
        .await
        .expect(StatusCode::FORBIDDEN, None);
    admin
        .put("/system/scanAll/schedule", json!({"schedule": {"type": "Custom", "cron": "every day"}}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    admin
        .put("/system/scanAll/schedule", json!({"schedule": {"type": "Sometimes"}}))
        .await
        .expect(StatusCode::BAD_REQUEST, None);
    admin.put("/system/scanAll/schedule", json!({"schedule": {"type": "Daily"}})).await.expect(StatusCode::OK, None);
    let schedule = admin.get("/system/scanAll/schedule").await.expect(StatusCode::OK, None);
    assert_eq!(
        (schedule.body["schedule"]["type"].as_str(), schedule.body["schedule"]["cron"].as_str()),
        (Some("Daily"), Some("0 0 0 * * *"))
    );
    admin
        .post("/system/scanAll/schedule", json!({"schedule": {"type": "Manual"}}))
        .await
        .expect(StatusCode::CREATED, None);
    assert_eq!(scanned(&admin, "before", "v1").await["scan_status"], "Success");
    let lib = loop {
        let a = admin
            .get("/projects/library/repositories/lib/artifacts/v1?with_scan_overview=true")
            .await
            .expect(StatusCode::OK, None);
        match a.body["scan_overview"][REPORT]["scan_status"].as_str() {
            Some("Success") => break a,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(lib.body["scan_overview"][REPORT]["severity"], "High");
    let metrics = loop {
        let m = admin.get("/scans/all/metrics").await.expect(StatusCode::OK, None);
        if m.body["ongoing"] == false {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(metrics.body["total"], metrics.body["completed"]);
    assert!(metrics.body["metrics"]["Success"].as_u64().unwrap_or(0) >= 2, "{}", metrics.body);
    assert_eq!(metrics.body["trigger"], "Manual");
    admin.post("/system/scanAll/stop", json!({})).await.expect(StatusCode::BAD_REQUEST, None);
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sboms_are_generated_by_the_scanner_and_kept_as_accessories() {
    let reg = start(Duration::from_secs(60)).await;
    let admin = Api::new(&reg, Some(ADMIN));
    let dev = Api::new(&reg, Some(("dev", "password1")));
    let guest = Api::new(&reg, Some(("guest", "password1")));
    let digest = push(&reg, "team/app", "v1", "one").await;
    let fixture = FixtureScanner::start(None, false).await;
    register(&admin, "fixture", &fixture).await;
    guest
        .post("/projects/team/repositories/app/artifacts/v1/scan", json!({"scan_type": "sbom"}))
        .await
        .expect(StatusCode::FORBIDDEN, None);

    // On request: the scanner's SBOM becomes an accessory of the image.
    dev.post("/projects/team/repositories/app/artifacts/v1/scan", json!({"scan_type": "sbom"}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    let overview = sbom_made(&guest, "app", "v1").await;
    assert_eq!(overview["scan_status"], "Success", "{overview}");
    assert_eq!(overview["scanner"]["name"], "Fixture");
    let sbom = overview["sbom_digest"].as_str().expect("the SBOM's digest").to_owned();
    let request = fixture.requests().pop().expect("a request");
    assert_eq!(request.body["enabled_capabilities"][0]["type"], "sbom");
    assert_eq!(request.pulled, 200, "the adapter pulled what it describes");
    let (c, base) = (client(), reg.url());
    let t = token(&c, &base, Some(ADMIN), &["repository:team/app:pull"]).await;
    let referrers = get_json(&c, &format!("{base}/v2/team/app/referrers/{digest}"), Some(&t)).await;
    assert_eq!(referrers["manifests"].as_array().map(Vec::len), Some(1), "{referrers}");
    assert_eq!(referrers["manifests"][0]["digest"], sbom.as_str());
    assert_eq!(referrers["manifests"][0]["artifactType"], "application/vnd.goharbor.harbor.sbom.v1");
    let manifest = get_json(&c, &format!("{base}/v2/team/app/manifests/{sbom}"), Some(&t)).await;
    assert_eq!(manifest["subject"]["digest"], digest.to_string());
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    let document = get_json(&c, &format!("{base}/v2/team/app/blobs/{layer}"), Some(&t)).await;
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    let addition =
        guest.get("/projects/team/repositories/app/artifacts/v1/additions/sbom").await.expect(StatusCode::OK, None);
    assert_eq!(addition.body, document, "the addition is the SBOM itself");
    guest
        .get(&format!("/projects/team/repositories/app/artifacts/{sbom}/additions/sbom"))
        .await
        .expect(StatusCode::NOT_FOUND, None);
    Api::new(&reg, Some(("outsider", "password1")))
        .get("/projects/team/repositories/app/artifacts/v1/additions/sbom")
        .await
        .expect(StatusCode::FORBIDDEN, None);
    let artifact = guest.get("/projects/team/repositories/app/artifacts/v1").await.expect(StatusCode::OK, None);
    assert_eq!(artifact.body["accessories"][0]["type"], "sbom.harbor", "{}", artifact.body);
    // An SBOM is not scanned itself.
    dev.post(&format!("/projects/team/repositories/app/artifacts/{sbom}/scan"), json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY, None);

    // Generated again: still one SBOM.
    dev.post("/projects/team/repositories/app/artifacts/v1/scan", json!({"scan_type": "sbom"}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    assert_eq!(sbom_made(&guest, "app", "v1").await["scan_status"], "Success");
    let listed = reg.registry().referrers(&"team/app".parse().expect("name"), &digest, None).await.expect("referrers");
    assert_eq!(listed.len(), 1, "the earlier SBOM is replaced");

    // A scanner without the capability fails the generation saying so; pulls go on.
    fixture.without_sbom();
    let other = push(&reg, "team/app", "v2", "two").await;
    dev.post("/projects/team/repositories/app/artifacts/v2/scan", json!({"scan_type": "sbom"}))
        .await
        .expect(StatusCode::ACCEPTED, None);
    let failed = sbom_made(&guest, "app", "v2").await;
    assert_eq!(failed["scan_status"], "Error", "{failed}");
    assert!(failed["error"].as_str().unwrap_or_default().contains("does not generate SBOMs"), "{failed}");
    assert_eq!(pull(&reg, "team/app", &other.to_string(), ADMIN).await.0, StatusCode::OK);

    // On push, in projects that ask for it.
    let fixture = FixtureScanner::start(None, false).await;
    let uuid = register(&admin, "with-sbom", &fixture).await;
    admin.put("/projects/team/scanner", json!({"uuid": uuid})).await.expect(StatusCode::OK, None);
    admin
        .put("/projects/team", json!({"metadata": {"auto_sbom_generation": "true"}}))
        .await
        .expect(StatusCode::OK, None);
    push(&reg, "team/app", "v3", "three").await;
    assert_eq!(sbom_made(&guest, "app", "v3").await["scan_status"], "Success");

    // Deleting the image deletes its SBOM.
    admin.delete("/projects/team/repositories/app/artifacts/v1").await.expect(StatusCode::OK, None);
    let gone = c
        .head(format!("{base}/v2/team/app/manifests/{sbom}"))
        .bearer_auth(&t)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("head");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}
