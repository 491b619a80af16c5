//! SBOMs made by scanners (Pluggable Scanner API v1.2's `sbom` capability): the adapter's SBOM
//! report checked when it arrives, the SBOM kept as an accessory of the image it describes (an
//! OCI manifest with Harbor's SBOM artifact type and the image as its subject, pushed to the
//! image's repository, so that referrers, the accessories endpoint, replication and deletion treat
//! it as every other accessory), and Harbor's `SBOMOverview`.

use bytes::Bytes;
use registry_core::event::Operator;
use registry_core::media_type::OCI_MANIFEST;
use registry_core::{Digest, Reference, RepositoryName};
use registry_storage::reports::ScanReport;
use registry_storage::{ManifestRecord, Registry};
use serde_json::{Value, json};

use super::adapter::ScannerInfo;

/// The report media type of the `sbom` capability.
pub const SBOM_REPORT: &str = "application/vnd.security.sbom.report+json; version=1.0";
/// The SBOM format the registry asks for (SPDX JSON, as Harbor does).
pub const SPDX: &str = "application/spdx+json";
/// Harbor's artifact type (and layer media type) of an SBOM accessory.
pub const ARTIFACT_TYPE: &str = "application/vnd.goharbor.harbor.sbom.v1";
/// The empty config of an artifact manifest.
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A checked SBOM report.
#[derive(Debug, Clone)]
pub struct SbomReport {
    /// The SBOM's own media type (`application/spdx+json`).
    pub media_type: String,
    /// The SBOM document.
    pub document: Value,
    /// The scanner that made it.
    pub scanner: ScannerInfo,
}

/// Checks an adapter's SBOM report: a JSON object whose `sbom` is a JSON object.
pub fn parse(bytes: &[u8]) -> Result<SbomReport, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("its SBOM report is not JSON ({e})"))?;
    let object = value.as_object().ok_or("its SBOM report is not a JSON object")?;
    let document = match object.get("sbom") {
        Some(sbom @ Value::Object(_)) => sbom.clone(),
        Some(_) => return Err("the `sbom` of its SBOM report is not a JSON document".into()),
        None => return Err("its SBOM report has no `sbom`".into()),
    };
    let media_type = object.get("media_type").and_then(Value::as_str).unwrap_or(SPDX).to_owned();
    let scanner = serde_json::from_value(object.get("scanner").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    Ok(SbomReport { media_type, document, scanner })
}

/// Pushes `sbom` to `repository` as an accessory of `subject` (its blobs, then its manifest by
/// digest, as `operator`); the accessory's digest. Counted against the project's quota like any
/// push: a project at its limit refuses it, and the scan fails saying so.
pub async fn store(
    registry: &Registry,
    repository: &RepositoryName,
    subject: &ManifestRecord,
    sbom: &SbomReport,
    created: &str,
    operator: &Operator,
) -> Result<Digest, String> {
    let document = Bytes::from(serde_json::to_vec(&sbom.document).map_err(|e| e.to_string())?);
    let config = Bytes::from_static(b"{}");
    for blob in [&config, &document] {
        let digest = Digest::sha256_of(blob);
        let mut body = futures::stream::iter([Ok::<_, registry_storage::BodyError>(blob.clone())]);
        registry
            .push_blob(repository, &digest, &mut body, operator)
            .await
            .map_err(|e| format!("storing the SBOM in {repository}: {e}"))?;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY, "digest": Digest::sha256_of(&config).to_string(), "size": config.len()},
        "layers": [{
            "mediaType": ARTIFACT_TYPE,
            "digest": Digest::sha256_of(&document).to_string(),
            "size": document.len(),
            "annotations": {"org.opencontainers.image.title": "sbom.spdx.json", "format": sbom.media_type},
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
        "annotations": {
            "created-by": "Harbor",
            "org.opencontainers.artifact.created": created,
            "org.opencontainers.artifact.description": "SPDX JSON SBOM",
        },
    });
    let bytes = Bytes::from(manifest.to_string());
    let digest = Digest::sha256_of(&bytes);
    registry
        .put_manifest(repository, &Reference::Digest(digest.clone()), Some(OCI_MANIFEST), bytes, operator)
        .await
        .map_err(|e| format!("storing the SBOM's manifest in {repository}: {e}"))?;
    Ok(digest)
}

/// The SBOM document kept as the accessory `sbom` of `repository` (none when it is gone or is
/// not an SBOM accessory); at most `limit` bytes.
pub async fn document(
    registry: &Registry,
    repository: &RepositoryName,
    sbom: &Digest,
    limit: u64,
) -> registry_storage::Result<Option<Bytes>> {
    use futures::StreamExt;
    let manifest = match registry.get_manifest(repository, &Reference::Digest(sbom.clone())).await {
        Ok((record, bytes)) if record.artifact_type.as_deref() == Some(ARTIFACT_TYPE) => bytes,
        Ok(_) | Err(registry_storage::Error::ManifestUnknown { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let layer = serde_json::from_slice::<Value>(&manifest)
        .ok()
        .and_then(|m| m["layers"][0]["digest"].as_str().and_then(|d| Digest::parse(d).ok()));
    let Some(layer) = layer else { return Ok(None) };
    let read = match registry.read_blob(repository, &layer, None).await {
        Ok(read) if read.size <= limit => read,
        Ok(_) | Err(registry_storage::Error::BlobUnknown { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut body = read.body;
    let mut out = Vec::with_capacity(read.size as usize);
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Some(Bytes::from(out)))
}

/// Harbor's `SBOMOverview` of `report`.
pub fn overview(report: &ScanReport) -> Value {
    let summary: super::report::Summary = serde_json::from_str(&report.summary).unwrap_or_default();
    let time = |ms: u64| (ms > 0).then(|| registry_core::time::rfc3339(ms / 1000));
    let duration = if report.ended_ms > report.started_ms { (report.ended_ms - report.started_ms) / 1000 } else { 0 };
    let mut out = json!({
        "report_id": report.id,
        "scan_status": report.status,
        "start_time": time(report.started_ms),
        "end_time": time(report.ended_ms),
        "duration": duration,
        "scanner": summary.scanner,
    });
    if let Some(digest) = summary.sbom_digest {
        out["sbom_digest"] = json!(digest);
    }
    if let Some(error) = summary.error {
        out["error"] = json!(error);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_without_a_document_are_refused_saying_why() {
        assert!(parse(b"not json").expect_err("refused").contains("not JSON"));
        assert!(parse(b"[]").expect_err("refused").contains("not a JSON object"));
        assert!(parse(b"{}").expect_err("refused").contains("no `sbom`"));
        assert!(parse(br#"{"sbom": "text"}"#).expect_err("refused").contains("not a JSON document"));
        let ok = parse(br#"{"media_type": "application/spdx+json", "sbom": {"spdxVersion": "SPDX-2.3"}}"#);
        let ok = ok.expect("a report");
        assert_eq!(ok.media_type, SPDX);
        assert_eq!(ok.document["spdxVersion"], "SPDX-2.3");
    }
}
