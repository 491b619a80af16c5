//! Notation signatures made here in notation's format (no notation binary can be installed): a
//! certificate authority of the test's own (rcgen), signing certificates it issues for P-256 keys,
//! JWS envelopes (`application/jose+json`) over a `targetArtifact` payload with the `x5c` chain,
//! and the signature pushed as a referrer of its subject.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePrivateKey as _;
use registry_core::Digest;
use reqwest::StatusCode;
use serde_json::json;

use crate::{OCI_MANIFEST, push_blob_as};

/// A certificate authority: a self-signed root and the issuer of signing certificates.
pub struct Authority {
    /// The root certificate in PEM (what a project trusts).
    pub root_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// What a signing certificate allows and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Code signing, valid now.
    Good,
    /// Valid only in the past.
    Expired,
    /// For TLS servers, not code signing.
    NotCodeSigning,
}

impl Authority {
    /// A new authority named `name`.
    pub fn new(name: &str) -> Authority {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let root = params.self_signed(&key).expect("a root");
        Authority { root_pem: root.pem(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// A certificate for `key` (DER), issued by this authority.
    pub fn leaf(&self, key: &SigningKey, kind: Leaf) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "signer");
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match kind {
            Leaf::NotCodeSigning => vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
            _ => vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning],
        };
        if kind == Leaf::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
        let public = rcgen::KeyPair::try_from(pkcs8.as_bytes()).expect("the key as rcgen reads it");
        params.signed_by(&public, &self.issuer).expect("a leaf").der().to_vec()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS envelope signing `target` (digest, media type, size) with `key`, carrying `chain`.
pub fn envelope(target: (&Digest, &str, u64), key: &SigningKey, chain: &[Vec<u8>]) -> Vec<u8> {
    let protected = json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2026-12-05T00:00:00Z",
    });
    let payload = json!({"targetArtifact": {"digest": target.0.to_string(), "mediaType": target.1, "size": target.2}});
    let (protected, payload) = (b64url(protected.to_string().as_bytes()), b64url(payload.to_string().as_bytes()));
    let signature: Signature = key.sign(format!("{protected}.{payload}").as_bytes());
    let x5c: Vec<String> = chain.iter().map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect();
    json!({"payload": payload, "protected": protected, "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "testkit"},
        "signature": b64url(&signature.to_bytes())})
    .to_string()
    .into_bytes()
}

/// Pushes `envelope` as a notation signature of `subject` (an OCI manifest of `subject_len`
/// bytes); the signature manifest's digest.
pub async fn push_signature(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    t: &str,
    subject: (&Digest, u64),
    envelope: &[u8],
) -> Digest {
    let config = push_blob_as(c, base, repo, b"{}", Some(t)).await;
    let layer = push_blob_as(c, base, repo, envelope, Some(t)).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": layer.to_string(), "size": envelope.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.0.to_string(), "size": subject.1},
    })
    .to_string();
    let digest = Digest::sha256_of(manifest.as_bytes());
    let status = crate::cosign::put_manifest(c, base, repo, &digest.to_string(), t, &manifest).await;
    assert_eq!(status, StatusCode::CREATED);
    digest
}
