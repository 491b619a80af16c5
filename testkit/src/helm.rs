//! Helm charts as `helm push` stores them (the helm CLI cannot be installed here): the chart's
//! archive (`<name>/Chart.yaml`…, a gzip-compressed tar), its config (the chart's metadata as
//! JSON) and an OCI manifest of the two, tagged with the chart's version.

use std::io::Write;

use registry_core::Digest;
use registry_core::kind::{HELM_CHART_CONTENT, HELM_CONFIG, HELM_PROVENANCE};

use crate::{push_blob_as, tar_of};

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("in memory");
    gz.finish().expect("in memory")
}

/// A chart archive: each of `files` under `<dir>/`.
pub fn chart_archive(dir: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let named: Vec<(String, &[u8])> = files.iter().map(|(n, d)| (format!("{dir}/{n}"), *d)).collect();
    let named: Vec<(&str, &[u8])> = named.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    gzip(&tar_of(&named))
}

/// A `Chart.yaml` of `name` at `version`.
pub fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"2.4\"\ndescription: The {name} chart\n")
}

/// The config `helm push` writes for `name` at `version` (the metadata as JSON).
pub fn chart_config(name: &str, version: &str) -> String {
    serde_json::json!({
        "apiVersion": "v2", "name": name, "version": version, "appVersion": "2.4",
        "description": format!("The {name} chart"), "type": "application",
    })
    .to_string()
}

/// Pushes a chart to `repo` as `helm push` does, tagged with `tag`: the config and archive
/// blobs, then the manifest; the manifest's text and digest.
pub async fn push_chart(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    config: &str,
    archive: &[u8],
    token: Option<&str>,
) -> (String, Digest) {
    push_chart_files(c, base, repo, tag, config, archive, None, token).await
}

/// [`push_chart`] with a provenance file (`helm package --sign`) as a third layer.
#[allow(clippy::too_many_arguments)]
pub async fn push_chart_files(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    config: &str,
    archive: &[u8],
    provenance: Option<&[u8]>,
    token: Option<&str>,
) -> (String, Digest) {
    let config_digest = push_blob_as(c, base, repo, config.as_bytes(), token).await;
    let archive_digest = push_blob_as(c, base, repo, archive, token).await;
    let mut layers = vec![
        serde_json::json!({"mediaType": HELM_CHART_CONTENT, "digest": archive_digest.to_string(), "size": archive.len()}),
    ];
    if let Some(prov) = provenance {
        let digest = push_blob_as(c, base, repo, prov, token).await;
        layers
            .push(serde_json::json!({"mediaType": HELM_PROVENANCE, "digest": digest.to_string(), "size": prov.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry_core::media_type::OCI_MANIFEST,
        "config": {"mediaType": HELM_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
        "annotations": {"org.opencontainers.image.title": repo.rsplit('/').next().unwrap_or(repo), "org.opencontainers.image.version": tag},
    })
    .to_string();
    crate::put_image_manifest(c, base, repo, tag, &manifest, token).await;
    let digest = Digest::sha256_of(manifest.as_bytes());
    (manifest, digest)
}

/// Pushes an image whose config records a platform, an author and a build history (what the
/// artifact views show): one gzip-compressed layer; the manifest's text and digest, and the
/// layer's digest.
pub async fn push_image_with_history(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    token: Option<&str>,
) -> (String, Digest, Digest) {
    let config = serde_json::json!({
        "architecture": "arm64", "os": "linux", "author": "ci", "created": "2026-01-02T03:04:05Z",
        "config": {"Entrypoint": ["/app"]}, "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created": "2026-01-02T03:04:05Z", "created_by": "COPY app /app"},
            {"created_by": "CMD [\"/app\"]", "empty_layer": true},
        ],
    })
    .to_string();
    let config_digest = push_blob_as(c, base, repo, config.as_bytes(), token).await;
    let layer = gzip(&tar_of(&[("app", b"binary")]));
    let layer_digest = push_blob_as(c, base, repo, &layer, token).await;
    let manifest = crate::image_manifest(&config_digest, config.len(), &[(layer_digest.clone(), layer.len())], "");
    crate::put_image_manifest(c, base, repo, tag, &manifest, token).await;
    let digest = Digest::sha256_of(manifest.as_bytes());
    (manifest, digest, layer_digest)
}
