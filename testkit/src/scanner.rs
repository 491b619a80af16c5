//! A scanner adapter the tests run themselves (Trivy's and Clair's adapters cannot be installed
//! here): Harbor's Pluggable Scanner API v1.1 over real HTTP, answering with fixture reports.
//! Like a real adapter it pulls what it is asked to scan, with the credential it is handed:
//! it follows the registry's 401 challenge to the token endpoint (Basic credentials) or uses a
//! bearer token as given, then fetches the manifest; a scan whose pull fails fails.
//!
//! Its [`Behaviour`] can be changed while it runs (down, slow, answering garbage, refusing scans),
//! and it keeps every scan request it got so tests can check the credential.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the adapter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Scans, answering "not yet" once, then the fixture report.
    Normal,
    /// Never has a report ready (302 forever).
    Slow,
    /// Answers reports that are not Harbor's format.
    Garbage,
    /// Refuses scan requests (500 with the spec's error body).
    Refuse,
}

/// One vulnerability of a fixture: id, severity, fixed version.
pub type Finding = (&'static str, &'static str, Option<&'static str>);

/// A scan request the adapter got, and what its pull found.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// The request body.
    pub body: Value,
    /// The manifest pull's status with the handed credential.
    pub pulled: u16,
}

#[derive(Default)]
struct State {
    behaviour: Option<Behaviour>,
    /// Digest -> findings (others: the default findings).
    findings: HashMap<String, Vec<Finding>>,
    default_findings: Vec<Finding>,
    /// Scan id -> the scan.
    scans: HashMap<String, Scan>,
    /// Whether its metadata leaves out the `sbom` capability.
    no_sbom: bool,
    requests: Vec<ScanRequest>,
    next: u64,
}

/// A scan it was asked for.
#[derive(Clone)]
struct Scan {
    digest: String,
    /// Reports asked for so far.
    asked: u32,
    pull_error: Option<String>,
    /// Whether it makes an SBOM.
    sbom: bool,
}

/// The adapter.
pub struct FixtureScanner {
    url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    /// The API key it requires, if any.
    pub api_key: Option<String>,
}

impl FixtureScanner {
    /// Starts an adapter on a loopback port; `api_key`: the `X-ScannerAdapter-API-Key` it
    /// requires; `bearer`: whether it asks for bearer tokens (metadata property).
    pub async fn start(api_key: Option<&str>, bearer: bool) -> FixtureScanner {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            behaviour: Some(Behaviour::Normal),
            default_findings: vec![("CVE-2026-0001", "High", Some("1.2.4")), ("CVE-2026-0002", "Low", None)],
            ..State::default()
        }));
        let key = api_key.map(str::to_owned);
        let (s, k) = (state.clone(), key.clone());
        let task = tokio::spawn(async move {
            // Its connections end with it (dropping the set aborts them): a stopped adapter keeps
            // no kept-alive connection answering.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                while connections.try_join_next().is_some() {}
                let (s, k) = (s.clone(), k.clone());
                connections.spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (s, k) = (s.clone(), k.clone());
                        async move { Ok::<_, Infallible>(answer(req, s, k, bearer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FixtureScanner { url, state, task, api_key: key }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes what it does.
    pub fn behave(&self, behaviour: Behaviour) {
        self.state.lock().expect("state").behaviour = Some(behaviour);
    }

    /// The findings it reports for `digest`.
    pub fn report_for(&self, digest: &str, findings: Vec<Finding>) {
        self.state.lock().expect("state").findings.insert(digest.to_owned(), findings);
    }

    /// Leaves the `sbom` capability out of its metadata (an adapter before v1.2).
    pub fn without_sbom(&self) {
        self.state.lock().expect("state").no_sbom = true;
    }

    /// The scan requests it got so far.
    pub fn requests(&self) -> Vec<ScanRequest> {
        self.state.lock().expect("state").requests.clone()
    }

    /// Stops it (its port then refuses connections, and its open connections are closed).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for FixtureScanner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(status: u16, content_type: &str, body: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert("content-type", content_type.parse().expect("type"));
    r
}

fn error(status: u16, message: &str) -> hyper::Response<Full<Bytes>> {
    respond(
        status,
        "application/vnd.scanner.adapter.error+json; version=1.0",
        json!({"error": {"message": message}}).to_string(),
    )
}

const REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";
const SBOM_REPORT: &str = "application/vnd.security.sbom.report+json; version=1.0";
const IMAGES: [&str; 2] =
    ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
    key: Option<String>,
    bearer: bool,
) -> hyper::Response<Full<Bytes>> {
    if let Some(key) = &key
        && req.headers().get("x-scanneradapter-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
    {
        return error(401, "a valid X-ScannerAdapter-API-Key is required");
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let behaviour = state.lock().expect("state").behaviour.clone().unwrap_or(Behaviour::Normal);
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/v1/metadata") => {
            let mut properties = json!({"harbor.scanner-adapter/scanner-type": "os-package-vulnerability"});
            if bearer {
                properties["harbor.scanner-adapter/registry-authorization-type"] = json!("Bearer");
            }
            let mut capabilities =
                vec![json!({"type": "vulnerability", "consumes_mime_types": IMAGES, "produces_mime_types": [REPORT]})];
            if !state.lock().expect("state").no_sbom {
                capabilities.push(json!({"type": "sbom", "consumes_mime_types": IMAGES,
                    "produces_mime_types": [SBOM_REPORT],
                    "additional_attributes": {"sbom_media_types": ["application/spdx+json"]}}));
            }
            let metadata = json!({
                "scanner": {"name": "Fixture", "vendor": "registry tests", "version": "1.0"},
                "capabilities": capabilities,
                "properties": properties,
            });
            respond(200, "application/vnd.scanner.adapter.metadata+json; version=1.1", metadata.to_string())
        }
        ("POST", "/api/v1/scan") => {
            if behaviour == Behaviour::Refuse {
                return error(500, "the fixture refuses to scan");
            }
            let Ok(request) = serde_json::from_slice::<Value>(&body) else { return error(400, "not JSON") };
            let (pulled, pull_error) = pull(&request).await;
            let digest = request["artifact"]["digest"].as_str().unwrap_or_default().to_owned();
            let sbom = request["enabled_capabilities"][0]["type"] == "sbom";
            let mut s = state.lock().expect("state");
            s.next += 1;
            let id = format!("scan-{}", s.next);
            s.scans.insert(id.clone(), Scan { digest, asked: 0, pull_error, sbom });
            s.requests.push(ScanRequest { body: request, pulled });
            respond(
                202,
                "application/vnd.scanner.adapter.scan.response+json; version=1.0",
                json!({"id": id}).to_string(),
            )
        }
        ("GET", p) if p.starts_with("/api/v1/scan/") && p.ends_with("/report") => {
            let id = p.trim_start_matches("/api/v1/scan/").trim_end_matches("/report").to_owned();
            let mut s = state.lock().expect("state");
            let Some(Scan { digest, asked, pull_error, sbom }) = s.scans.get_mut(&id).map(|e| {
                e.asked += 1;
                e.clone()
            }) else {
                return error(404, "no such scan");
            };
            if let Some(why) = pull_error {
                return error(500, &format!("pulling the artifact failed: {why}"));
            }
            if behaviour == Behaviour::Slow || asked == 1 {
                let mut r = respond(302, "text/plain", String::new());
                r.headers_mut().insert("refresh-after", "0".parse().expect("header"));
                return r;
            }
            if behaviour == Behaviour::Garbage {
                return respond(200, REPORT, "{\"vulnerabilities\": \"lots\"}".into());
            }
            if sbom {
                if !query.contains("sbom_media_type=application%2Fspdx%2Bjson") {
                    return error(400, "sbom_media_type=application/spdx+json is required");
                }
                let report = json!({
                    "generated_at": "2026-12-05T00:00:00Z",
                    "artifact": {"digest": digest},
                    "scanner": {"name": "Fixture", "vendor": "registry tests", "version": "1.0"},
                    "media_type": "application/spdx+json",
                    "sbom": {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": digest,
                        "packages": [{"name": "libfixture", "versionInfo": "1.2.3"}]},
                });
                return respond(200, SBOM_REPORT, report.to_string());
            }
            let findings = s.findings.get(&digest).cloned().unwrap_or_else(|| s.default_findings.clone());
            let vulnerabilities: Vec<Value> = findings
                .iter()
                .map(|(id, severity, fix)| {
                    json!({"id": id, "package": "libfixture", "version": "1.2.3", "fix_version": fix,
                        "severity": severity, "description": format!("{id} in libfixture"),
                        "links": [format!("https://avd.example/{id}")]})
                })
                .collect();
            let report = json!({
                "generated_at": "2026-12-05T00:00:00Z",
                "artifact": {"digest": digest},
                "scanner": {"name": "Fixture", "vendor": "registry tests", "version": "1.0"},
                "severity": "High",
                "vulnerabilities": vulnerabilities,
            });
            respond(200, REPORT, report.to_string())
        }
        _ => error(404, "no such endpoint"),
    }
}

/// Pulls the requested manifest as a real adapter would; its status and, when it failed, why.
async fn pull(request: &Value) -> (u16, Option<String>) {
    let base = request["registry"]["url"].as_str().unwrap_or_default().trim_end_matches('/');
    let authorization = request["registry"]["authorization"].as_str().unwrap_or_default();
    let repository = request["artifact"]["repository"].as_str().unwrap_or_default();
    let digest = request["artifact"]["digest"].as_str().unwrap_or_default();
    let c = crate::client();
    match pull_with(&c, base, authorization, repository, digest).await {
        Ok(200) => (200, None),
        Ok(status) => (status, Some(format!("the registry answered {status}"))),
        Err(e) => (0, Some(e)),
    }
}

/// A manifest GET of `repository@digest` with `authorization` (Basic: exchanged at the realm the
/// registry's challenge names; Bearer: used as it is).
pub async fn pull_with(
    c: &reqwest::Client,
    base: &str,
    authorization: &str,
    repository: &str,
    digest: &str,
) -> Result<u16, String> {
    let token = if let Some(token) = authorization.strip_prefix("Bearer ") {
        token.to_owned()
    } else {
        let challenge = c.get(format!("{base}/v2/")).send().await.map_err(|e| e.to_string())?;
        let header = challenge.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let field = |name: &str| {
            header.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned()
        };
        let (realm, service) = (field("realm"), field("service"));
        let answer = c
            .get(format!("{realm}?service={service}&scope=repository:{repository}:pull"))
            .header("authorization", authorization)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Ok(answer.status().as_u16());
        }
        let v: Value = answer.json().await.map_err(|e| e.to_string())?;
        v["token"].as_str().unwrap_or_default().to_owned()
    };
    let r = c
        .get(format!("{base}/v2/{repository}/manifests/{digest}"))
        .bearer_auth(token)
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.status().as_u16())
}
