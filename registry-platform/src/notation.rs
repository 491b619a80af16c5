//! Notation (Notary Project) signatures verified against X.509 roots: a signature's envelope
//! (JWS JSON serialization, `application/jose+json`) is signed by the first certificate of its
//! `x5c` chain, that chain leads to one of the project's trusted roots and is valid now, the leaf
//! may sign code, and the signed payload's `targetArtifact` is the artifact pulled. Chains and
//! signatures are checked with rustls-webpki (the certificate validation rustls itself uses, on
//! ring): ES256, ES384 and PS256, PS384, PS512, as notation signs. COSE envelopes are not read (a
//! project with roots refuses them as unverified).

use base64::Engine as _;
use registry_core::Digest;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde_json::Value;

/// The media type of a JWS envelope.
pub const JWS: &str = "application/jose+json";
/// The content type of a notation payload.
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// The extended key usage a signing certificate must allow: code signing (1.3.6.1.5.5.7.3.3).
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Trusted roots, parsed.
#[derive(Debug, Default)]
pub struct Roots {
    anchors: Vec<TrustAnchor<'static>>,
}

impl Roots {
    /// Parses PEM certificates (each may hold several); says which one is wrong.
    pub fn parse(pems: &[String]) -> Result<Roots, String> {
        let mut anchors = Vec::new();
        for (i, pem) in pems.iter().enumerate() {
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("notation[{i}] is not a PEM certificate: {e}"))?;
                let anchor = webpki::anchor_from_trusted_cert(&cert)
                    .map_err(|e| format!("notation[{i}] is not an X.509 certificate a root can be made of: {e}"))?;
                anchors.push(anchor.to_owned());
                found += 1;
            }
            if found == 0 {
                return Err(format!("notation[{i}] holds no certificate (-----BEGIN CERTIFICATE-----)"));
            }
        }
        Ok(Roots { anchors })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

fn b64url(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

/// Verifies a JWS `envelope` for `subject` under `roots` at `now` (seconds since the epoch);
/// why not, when it does not.
pub fn verify_jws(envelope: &[u8], subject: &Digest, roots: &Roots, now: u64) -> Result<(), String> {
    let jws: Value = serde_json::from_slice(envelope).map_err(|e| format!("the envelope is not JSON: {e}"))?;
    let field = |name: &str| jws[name].as_str().ok_or_else(|| format!("the envelope has no {name}"));
    let (protected_b64, payload_b64, signature_b64) = (field("protected")?, field("payload")?, field("signature")?);
    let protected: Value = serde_json::from_slice(&b64url(protected_b64)?)
        .map_err(|e| format!("the protected header is not JSON: {e}"))?;
    if protected["cty"].as_str() != Some(PAYLOAD_TYPE) {
        return Err(format!("the protected header's cty is not {PAYLOAD_TYPE}"));
    }
    if let Some(expiry) = protected["io.cncf.notary.expiry"].as_str() {
        let expiry = registry_core::time::parse_timestamp(expiry).ok_or("its expiry is not a time")?;
        if expiry <= now {
            return Err("the signature has expired".into());
        }
    }
    let payload: Value =
        serde_json::from_slice(&b64url(payload_b64)?).map_err(|e| format!("the payload is not JSON: {e}"))?;
    if payload["targetArtifact"]["digest"].as_str() != Some(subject.to_string().as_str()) {
        return Err("the payload names another artifact".into());
    }
    let chain: Vec<CertificateDer<'static>> = jws["header"]["x5c"]
        .as_array()
        .ok_or("the envelope has no x5c certificate chain")?
        .iter()
        .map(|c| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(c.as_str().unwrap_or_default())
                .map_err(|e| format!("an x5c certificate is not base64: {e}"))?;
            Ok(CertificateDer::from(der))
        })
        .collect::<Result<_, String>>()?;
    let (leaf, intermediates) = chain.split_first().ok_or("the x5c chain is empty")?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("the signing certificate: {e}"))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &roots.anchors,
        intermediates,
        time,
        webpki::KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| format!("the certificate chain does not lead to a trusted root: {e}"))?;
    let raw = b64url(signature_b64)?;
    let (algorithm, signature) = match protected["alg"].as_str() {
        Some("ES256") => (webpki::ring::ECDSA_P256_SHA256, ecdsa_der(&raw, 32)?),
        Some("ES384") => (webpki::ring::ECDSA_P384_SHA384, ecdsa_der(&raw, 48)?),
        Some("PS256") => (webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY, raw),
        Some("PS384") => (webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY, raw),
        Some("PS512") => (webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY, raw),
        other => return Err(format!("algorithm {other:?} is not one notation signs with")),
    };
    let signed = format!("{protected_b64}.{payload_b64}");
    leaf.verify_signature(algorithm, signed.as_bytes(), &signature)
        .map_err(|e| format!("the signature does not verify under its certificate: {e}"))
}

/// A JWS ECDSA signature (`r || s`, each `half` bytes) in DER, as X.509 verification reads it.
fn ecdsa_der(raw: &[u8], half: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * half {
        return Err(format!("an ECDSA signature of {} bytes, not {}", raw.len(), 2 * half));
    }
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut out = vec![0x02];
        let pad = trimmed.first().is_none_or(|b| b & 0x80 != 0);
        out.push((trimmed.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend(trimmed);
        out
    };
    let (r, s) = (integer(&raw[..half]), integer(&raw[half..]));
    let mut out = vec![0x30];
    let len = r.len() + s.len();
    if len >= 0x80 {
        out.push(0x81);
    }
    out.push(len as u8);
    out.extend(r);
    out.extend(s);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der_as_p256_writes_it() {
        use p256::ecdsa::signature::Signer as _;
        let key = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).expect("key");
        for message in [b"one".as_slice(), b"two", b"three", b"four", b"five"] {
            let signature: p256::ecdsa::Signature = key.sign(message);
            let der = ecdsa_der(&signature.to_bytes(), 32).expect("der");
            assert_eq!(der, signature.to_der().as_bytes());
        }
        assert!(ecdsa_der(&[1u8; 10], 32).is_err());
    }

    #[test]
    fn envelopes_that_are_not_notations_are_refused_saying_why() {
        let roots = Roots::default();
        let subject = Digest::sha256_of(b"x");
        assert!(verify_jws(b"nope", &subject, &roots, 0).expect_err("refused").contains("not JSON"));
        assert!(verify_jws(b"{}", &subject, &roots, 0).expect_err("refused").contains("no protected"));
        assert!(Roots::parse(&["nothing".into()]).expect_err("refused").contains("no certificate"));
    }
}
