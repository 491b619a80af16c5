//! cosign's signature format, made by the tests (no cosign binary here): ECDSA P-256 keys, the
//! simple-signing payload naming an image's digest, the signature manifest with the signature
//! annotation, pushed under cosign's tag scheme (`sha256-<hex>.sig`).

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use registry_core::Digest;
use reqwest::StatusCode;
use serde_json::json;

use crate::{OCI_MANIFEST, push_blob_as};

const SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A signing key made from `seed` (the same seed, the same key).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("key")
}

/// The public key of `key` in PEM, as a project's trusted keys hold it.
pub fn pem(key: &SigningKey) -> String {
    key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("pem")
}

/// cosign's simple-signing payload for `digest` of `repo`.
pub fn payload(repo: &str, digest: &Digest) -> Vec<u8> {
    json!({"critical": {"identity": {"docker-reference": repo}, "image": {"docker-manifest-digest": digest.to_string()},
        "type": "cosign container image signature"}, "optional": null})
    .to_string()
    .into_bytes()
}

/// The base64 DER signature of `bytes` under `key`.
pub fn sign(key: &SigningKey, bytes: &[u8]) -> String {
    let signature: Signature = key.sign(bytes);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

/// A cosign signature manifest over `payload` with `signature`; pushes its blobs; its bytes.
pub async fn signature_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    t: &str,
    payload: &[u8],
    signature: &str,
) -> String {
    let config = push_blob_as(c, base, repo, b"{}", Some(t)).await;
    let layer = push_blob_as(c, base, repo, payload, Some(t)).await;
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": SIGNING, "digest": layer.to_string(), "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    })
    .to_string()
}

/// PUTs an OCI manifest; the status.
pub async fn put_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    t: &str,
    body: &str,
) -> StatusCode {
    c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .bearer_auth(t)
        .header("content-type", OCI_MANIFEST)
        .body(body.to_owned())
        .send()
        .await
        .expect("put")
        .status()
}

/// Signs `digest` of `repo` with `key` (cosign's tag scheme).
pub async fn cosign(c: &reqwest::Client, base: &str, repo: &str, t: &str, digest: &Digest, key: &SigningKey) {
    let p = payload(repo, digest);
    let manifest = signature_manifest(c, base, repo, t, &p, &sign(key, &p)).await;
    let tag = format!("sha256-{}.sig", digest.hex());
    assert_eq!(put_manifest(c, base, repo, &tag, t, &manifest).await, StatusCode::CREATED);
}
