//! The client of a scanner adapter (Harbor's Pluggable Scanner API, `/api/v1`): its metadata,
//! a scan request, and the report polled until it is ready. Every request goes to the adapter's
//! checked addresses only (see [`crate::ssrf`]), follows no redirects (a 302 from the report
//! endpoint means "not yet"), has a deadline and reads at most a bounded body; every failure says
//! which scanner and what went wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use registry_auth::SecretKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registration::Registration;
use crate::ssrf::{self, Reach, root_cause};

/// How long one request to an adapter may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest metadata or scan response read.
const SMALL_BODY: usize = 1 << 20;
/// Largest report read.
pub const MAX_REPORT: usize = 64 << 20;
/// The metadata property naming how the adapter wants to authenticate to the registry.
pub const AUTHORIZATION_TYPE: &str = "harbor.scanner-adapter/registry-authorization-type";
/// The media types of scan requests and metadata.
const SCAN_REQUEST: &str = "application/vnd.scanner.adapter.scan.request+json; version=1.1";
const METADATA: &str = "application/vnd.scanner.adapter.metadata+json; version=1.1, \
                        application/vnd.scanner.adapter.metadata+json; version=1.0";

/// A failed exchange with an adapter, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterError(pub String);

impl std::fmt::Display for AdapterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AdapterError {}

/// The scanner behind an adapter (`Scanner` of the spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ScannerInfo {
    /// Its name (`Trivy`).
    pub name: String,
    /// Its vendor.
    pub vendor: String,
    /// Its version.
    pub version: String,
}

/// One capability of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Capability {
    /// `vulnerability` or `sbom` (absent before v1.2: vulnerability).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The artifact media types it scans.
    pub consumes_mime_types: Vec<String>,
    /// The report media types it produces.
    pub produces_mime_types: Vec<String>,
}

/// An adapter's metadata (`ScannerAdapterMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdapterMetadata {
    /// The scanner.
    pub scanner: ScannerInfo,
    /// What it can do.
    pub capabilities: Vec<Capability>,
    /// Further properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl AdapterMetadata {
    /// The vulnerability capability that consumes `media_type`, and the report type the
    /// registry reads from it.
    pub fn vulnerability_report(&self, media_type: &str) -> Option<&'static str> {
        self.capabilities
            .iter()
            .filter(|c| c.kind.as_deref().is_none_or(|k| k == "vulnerability"))
            .filter(|c| c.consumes_mime_types.iter().any(|m| m == media_type))
            .find_map(|c| super::REPORT_TYPES.into_iter().find(|t| c.produces_mime_types.iter().any(|p| p == t)))
    }

    /// The SBOM report type when an `sbom` capability consumes `media_type`.
    pub fn sbom_report(&self, media_type: &str) -> Option<&'static str> {
        self.capabilities
            .iter()
            .filter(|c| c.kind.as_deref() == Some("sbom"))
            .filter(|c| c.consumes_mime_types.iter().any(|m| m == media_type))
            .find(|c| c.produces_mime_types.iter().any(|p| p == super::sbom::SBOM_REPORT))
            .map(|_| super::sbom::SBOM_REPORT)
    }

    /// Whether the adapter wants an access token rather than credentials to exchange.
    pub fn wants_bearer(&self) -> bool {
        self.properties.get(AUTHORIZATION_TYPE).is_some_and(|v| v.eq_ignore_ascii_case("bearer"))
    }
}

/// What polling a report found.
#[derive(Debug)]
pub enum Poll {
    /// The report (its bytes).
    Ready(Vec<u8>),
    /// Not yet: ask again after this long.
    Later(Duration),
}

/// An adapter to talk to.
pub struct Adapter {
    name: String,
    base: reqwest::Url,
    header: Option<(String, String)>,
    skip_cert_verify: bool,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter").field("name", &self.name).field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl Adapter {
    /// The adapter of `registration`, its credential opened with `key`.
    pub fn of(registration: &Registration, key: &SecretKey) -> Result<Adapter, AdapterError> {
        let header = registration.header(key).map_err(AdapterError)?;
        let base = ssrf::check_address(&registration.url, Reach::Internal)
            .map_err(|e| AdapterError(format!("scanner {:?}: {e}", registration.name)))?;
        Ok(Adapter { name: registration.name.clone(), base, header, skip_cert_verify: registration.skip_cert_verify })
    }

    fn fail(&self, what: impl std::fmt::Display) -> AdapterError {
        AdapterError(format!("scanner {:?} at {}: {what}", self.name, self.base.as_str().trim_end_matches('/')))
    }

    fn endpoint(&self, path: &str) -> Result<reqwest::Url, AdapterError> {
        let base = self.base.as_str().trim_end_matches('/');
        reqwest::Url::parse(&format!("{base}/api/v1/{path}")).map_err(|e| self.fail(format!("a bad URL: {e}")))
    }

    async fn client(&self) -> Result<reqwest::Client, AdapterError> {
        let addrs = ssrf::resolve(&self.base, Reach::Internal).await.map_err(|e| self.fail(e))?;
        let options = ssrf::ClientOptions { timeout: REQUEST_TIMEOUT, insecure: self.skip_cert_verify, ca_pem: None };
        ssrf::pinned_client(&self.base, &addrs, &options).map_err(|e| self.fail(e))
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.header {
            Some((name, value)) => builder.header(name.as_str(), value.as_str()),
            None => builder,
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, AdapterError> {
        self.request(builder).send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "it did not answer in time".to_owned()
            } else if e.is_connect() {
                format!("it cannot be reached ({})", root_cause(&e))
            } else {
                root_cause(&e)
            };
            self.fail(why)
        })
    }

    /// The adapter's metadata.
    pub async fn metadata(&self) -> Result<AdapterMetadata, AdapterError> {
        let client = self.client().await?;
        let response = self.send(client.get(self.endpoint("metadata")?).header("accept", METADATA)).await?;
        let status = response.status();
        let body = read(response, SMALL_BODY).await.map_err(|e| self.fail(e))?;
        if !status.is_success() {
            return Err(self.fail(format!("metadata answered {status}{}", error_message(&body))));
        }
        let metadata: AdapterMetadata = serde_json::from_slice(&body)
            .map_err(|e| self.fail(format!("its metadata is not the spec's JSON ({e})")))?;
        if metadata.capabilities.is_empty() {
            return Err(self.fail("its metadata lists no capabilities"));
        }
        Ok(metadata)
    }

    /// Asks for a scan; the adapter's scan id.
    pub async fn scan(&self, request: &Value) -> Result<String, AdapterError> {
        let client = self.client().await?;
        let response = self
            .send(
                client
                    .post(self.endpoint("scan")?)
                    .header("content-type", SCAN_REQUEST)
                    .header("accept", "application/vnd.scanner.adapter.scan.response+json; version=1.0")
                    .body(request.to_string()),
            )
            .await?;
        let status = response.status();
        let body = read(response, SMALL_BODY).await.map_err(|e| self.fail(e))?;
        if status.as_u16() != 202 && !status.is_success() {
            return Err(self.fail(format!("the scan request answered {status}{}", error_message(&body))));
        }
        let id = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .filter(|id| !id.is_empty() && id.len() <= 512)
            .ok_or_else(|| self.fail("its answer to the scan request has no id"))?;
        Ok(id)
    }

    /// Polls the report of scan `id` in `report_type` (with a query parameter: an SBOM's
    /// `sbom_media_type`).
    pub async fn report(&self, id: &str, report_type: &str, query: Option<(&str, &str)>) -> Result<Poll, AdapterError> {
        let client = self.client().await?;
        let mut url = self.endpoint("scan")?;
        url.path_segments_mut().map_err(|_| self.fail("a bad URL"))?.push(id).push("report");
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let response = self.send(client.get(url).header("accept", report_type)).await?;
        let status = response.status();
        if status.as_u16() == 302 {
            let after = response
                .headers()
                .get("refresh-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(5);
            return Ok(Poll::Later(Duration::from_secs(after.min(60))));
        }
        let body = read(response, MAX_REPORT).await.map_err(|e| self.fail(e))?;
        match status.as_u16() {
            200 => Ok(Poll::Ready(body)),
            404 => Err(self.fail(format!("it does not know scan {id} (404)"))),
            _ => Err(self.fail(format!("the report answered {status}{}", error_message(&body)))),
        }
    }
}

/// `: <message>` of the spec's error body, if it has one.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(|m| format!(": {}", m.chars().take(300).collect::<String>())))
        .unwrap_or_default()
}

/// A response's body, at most `limit` bytes.
async fn read(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading its answer: {}", root_cause(&e)))?;
        if out.len() + chunk.len() > limit {
            return Err(format!("its answer is larger than {}", registry_storage::quota::bytes(limit as u64)));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
