//! Content trust: projects that accept only signed artifacts, as Harbor's project metadata
//! `enable_content_trust_cosign` (cosign signatures) and `enable_content_trust` (notation
//! signatures) say. A pull (by tag, by digest, an index's child) of an artifact without such a
//! signature is refused with `DENIED` saying why; a child of a signed index counts as signed.
//!
//! Beyond Harbor, a project may trust cosign public keys ([`TrustedKeys`], ECDSA P-256 in PEM):
//! then a cosign signature counts only when it verifies — its simple-signing payload names this
//! artifact's digest and the signature (the layer's `dev.cosignproject.cosign/signature`
//! annotation) verifies under one of the keys — rather than by its mere presence. Verification
//! results are cached by signature digest and key set (both immutable, so the cache needs no
//! invalidation on any replica). Signatures are ECDSA over SHA-256 (p256, the crate the token
//! keys already use). Likewise a project may trust X.509 roots for notation: then a notation
//! signature counts only when its envelope verifies under a chain to one of them (see
//! [`crate::notation`], feature `notation`); without roots, notation signatures count by presence.

use registry_core::cache_stats::CacheStats;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use registry_auth::Accounts;
use registry_core::event::Operator;
use registry_core::{Digest, RepositoryName, Tag};
use registry_storage::policies::PolicyRecord;
use registry_storage::{BlobStore, Error, ManifestRecord, MetadataStore, PullPolicies, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::selectors::Invalid;

/// The project metadata turning on cosign content trust.
pub const COSIGN: &str = "enable_content_trust_cosign";
/// The project metadata turning on notation content trust (Harbor's name).
pub const NOTATION: &str = "enable_content_trust";
/// The policy kind of a project's trusted keys.
pub const KIND: &str = "trusted_keys";
/// The annotation of a cosign signature layer holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of cosign signatures pushed as OCI 1.1 referrers.
pub const COSIGN_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The artifact type of notation signatures.
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Largest signature payload read.
const MAX_PAYLOAD: u64 = 64 << 10;
/// Largest signature manifest read.
const MAX_MANIFEST: u64 = 256 << 10;

/// A project's trusted keys (kind [`KIND`], one document per project).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustedKeys {
    /// Cosign public keys, PEM (`-----BEGIN PUBLIC KEY-----`, ECDSA P-256).
    pub cosign: Vec<String>,
    /// Notation root certificates, PEM (`-----BEGIN CERTIFICATE-----`).
    pub notation: Vec<String>,
}

impl TrustedKeys {
    /// The keys checked: each a P-256 public key in PEM, at most 20.
    pub fn checked(self) -> std::result::Result<TrustedKeys, Invalid> {
        if self.cosign.len() > 20 {
            return Err(Invalid(format!("at most 20 cosign keys, not {}", self.cosign.len())));
        }
        for (i, pem) in self.cosign.iter().enumerate() {
            VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
                Invalid(format!(
                    "cosign[{i}] is not an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----): {e}"
                ))
            })?;
        }
        if self.notation.len() > 20 {
            return Err(Invalid(format!("at most 20 notation roots, not {}", self.notation.len())));
        }
        #[cfg(feature = "notation")]
        crate::notation::Roots::parse(&self.notation).map_err(Invalid)?;
        #[cfg(not(feature = "notation"))]
        if !self.notation.is_empty() {
            return Err(Invalid("this build does not verify notation signatures (feature `notation`)".into()));
        }
        Ok(self)
    }

    fn keys(&self) -> Vec<VerifyingKey> {
        self.cosign.iter().filter_map(|pem| VerifyingKey::from_public_key_pem(pem.trim()).ok()).collect()
    }

    /// The stored document of project `project_id`.
    pub fn record(&self, id: u64, project_id: u64) -> PolicyRecord {
        PolicyRecord {
            id,
            kind: KIND.into(),
            project_id,
            name: "keys".into(),
            body: serde_json::to_string(self).unwrap_or_default(),
            created_ms: 0,
            updated_ms: 0,
        }
    }
}

/// A project's keys and the id of their document (0: none stored).
pub async fn keys_of(meta: &dyn MetadataStore, project_id: u64) -> Result<(u64, TrustedKeys)> {
    let found = meta.policies(KIND, Some(project_id)).await?.into_iter().next();
    Ok(match found {
        Some(p) => (p.id, serde_json::from_str(&p.body).unwrap_or_default()),
        None => (0, TrustedKeys::default()),
    })
}

/// Verifies a cosign simple-signing `payload` and base64 `signature` for `subject` under `keys`.
pub fn verify_cosign(payload: &[u8], signature_b64: &str, subject: &Digest, keys: &[VerifyingKey]) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(payload) else { return false };
    let critical = &doc["critical"];
    if critical["image"]["docker-manifest-digest"].as_str() != Some(subject.to_string().as_str())
        || critical["type"].as_str() != Some("cosign container image signature")
    {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else { return false };
    let Ok(signature) = Signature::from_der(&raw).or_else(|_| Signature::from_slice(&raw)) else { return false };
    keys.iter().any(|key| key.verify(payload, &signature).is_ok())
}

/// The pull policy of content trust, over the metadata store, the blob store (signature
/// manifests and payloads) and the accounts (projects' metadata).
pub struct ContentTrust {
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    accounts: Accounts,
    /// (signature manifest, subject, key set) -> whether it verifies.
    verified: quick_cache::sync::Cache<(Digest, Digest, Digest), bool>,
    /// Project id -> its trusted keys parsed, and when they were read (trusted for [`KEYS_TTL`]).
    keys: quick_cache::sync::Cache<u64, (std::time::Instant, Arc<ProjectKeys>)>,
    /// What "now" is to a certificate's validity.
    #[cfg_attr(not(feature = "notation"), allow(dead_code))]
    clock: registry_core::time::SharedClock,
}

/// How long a project's trusted keys, once read, are used before they are read again (other
/// replicas' changes show within it; this replica's at once, see [`ContentTrust::forget_keys`]).
pub const KEYS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// A project's trusted keys, parsed, and the digest naming the set (the verification cache's key).
struct ProjectKeys {
    verifying: Vec<VerifyingKey>,
    #[cfg(feature = "notation")]
    roots: crate::notation::Roots,
    set: Digest,
}

impl ProjectKeys {
    fn of(keys: &TrustedKeys) -> ProjectKeys {
        ProjectKeys {
            verifying: keys.keys(),
            #[cfg(feature = "notation")]
            roots: crate::notation::Roots::parse(&keys.notation).unwrap_or_default(),
            set: Digest::sha256_of(format!("{}\n--\n{}", keys.cosign.join("\n"), keys.notation.join("\n")).as_bytes()),
        }
    }

    /// Whether notation signatures must verify (there are roots).
    fn has_roots(&self) -> bool {
        #[cfg(feature = "notation")]
        return !self.roots.is_empty();
        #[cfg(not(feature = "notation"))]
        false
    }
}

impl ContentTrust {
    /// Content trust over these stores, checking certificates' validity at `clock`'s time.
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        accounts: Accounts,
        clock: registry_core::time::SharedClock,
    ) -> Arc<ContentTrust> {
        Arc::new(ContentTrust {
            meta,
            blobs,
            accounts,
            verified: quick_cache::sync::Cache::new(16 * 1024),
            keys: quick_cache::sync::Cache::new(4 * 1024),
            clock,
        })
    }

    /// The caches' figures, for metrics.
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        let (v, k) = (&self.verified, &self.keys);
        vec![
            CacheStats::counted("signatures_verified", v.hits(), v.misses(), v.len()),
            CacheStats::counted("trusted_keys", k.hits(), k.misses(), k.len()),
        ]
    }

    /// Forgets the keys read of project `project_id` (they were just changed).
    pub fn forget_keys(&self, project_id: u64) {
        self.keys.remove(&project_id);
    }

    /// The trusted keys of project `project_id`, parsed (cached).
    async fn project_keys(&self, project_id: u64) -> Result<Arc<ProjectKeys>> {
        if let Some((at, keys)) = self.keys.get(&project_id)
            && at.elapsed() < KEYS_TTL
        {
            return Ok(keys);
        }
        let keys = keys_of(&*self.meta, project_id).await?.1;
        let parsed = Arc::new(ProjectKeys::of(&keys));
        self.keys.insert(project_id, (std::time::Instant::now(), parsed.clone()));
        Ok(parsed)
    }

    async fn read(&self, digest: &Digest, limit: u64) -> Result<Option<Vec<u8>>> {
        use futures::StreamExt;
        let mut stream = match self.blobs.read(digest, None).await {
            Ok(s) => s,
            Err(Error::BlobUnknown { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() as u64 > limit {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// Whether the cosign signature manifest `signature` of `subject` verifies under `keys`.
    async fn verifies(&self, signature: &Digest, subject: &Digest, keys: &ProjectKeys) -> Result<bool> {
        let key = (signature.clone(), subject.clone(), keys.set.clone());
        if let Some(known) = self.verified.get(&key) {
            return Ok(known);
        }
        let Some(manifest) = self.read(signature, MAX_MANIFEST).await? else { return Ok(false) };
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
        let keys = &keys.verifying;
        let mut ok = false;
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let (Some(sig), Some(digest)) = (
                layer["annotations"][SIGNATURE_ANNOTATION].as_str(),
                layer["digest"].as_str().and_then(|d| Digest::parse(d).ok()),
            ) else {
                continue;
            };
            if let Some(payload) = self.read(&digest, MAX_PAYLOAD).await?
                && Digest::sha256_of(&payload) == digest
                && verify_cosign(&payload, sig, subject, keys)
            {
                ok = true;
                break;
            }
        }
        self.verified.insert(key, ok);
        Ok(ok)
    }

    /// Whether the notation signature manifest `signature` of `subject` verifies under the
    /// project's roots (cached as cosign's are).
    #[cfg(feature = "notation")]
    async fn notation_verifies(&self, signature: &Digest, subject: &Digest, keys: &ProjectKeys) -> Result<bool> {
        let key = (signature.clone(), subject.clone(), keys.set.clone());
        if let Some(known) = self.verified.get(&key) {
            return Ok(known);
        }
        let Some(manifest) = self.read(signature, MAX_MANIFEST).await? else { return Ok(false) };
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
        let layer = &manifest["layers"][0];
        let mut ok = false;
        if layer["mediaType"].as_str() == Some(crate::notation::JWS)
            && let Some(digest) = layer["digest"].as_str().and_then(|d| Digest::parse(d).ok())
            && let Some(envelope) = self.read(&digest, MAX_MANIFEST).await?
            && Digest::sha256_of(&envelope) == digest
        {
            let now = self.clock.now_secs();
            match crate::notation::verify_jws(&envelope, subject, &keys.roots, now) {
                Ok(()) => ok = true,
                Err(why) => tracing::info!(%signature, %subject, why, "a notation signature does not verify"),
            }
        }
        self.verified.insert(key, ok);
        Ok(ok)
    }

    /// The signatures of `subject` in the repository: cosign ones (by the tag scheme and as
    /// referrers) and notation ones (referrers).
    async fn signatures(&self, repository: &RepositoryName, subject: &Digest) -> Result<(Vec<Digest>, Vec<Digest>)> {
        let mut cosign = Vec::new();
        if let Ok(tag) = Tag::parse(&format!("sha256-{}.sig", subject.hex()))
            && let Some(digest) = self.meta.resolve_tag(repository, &tag).await?
        {
            cosign.push(digest);
        }
        let mut notation = Vec::new();
        for referrer in self.meta.referrers(repository, subject).await? {
            match referrer.artifact_type.as_deref() {
                Some(COSIGN_ARTIFACT_TYPE) => cosign.push(referrer.digest),
                Some(NOTATION_ARTIFACT_TYPE) => notation.push(referrer.digest),
                _ => {}
            }
        }
        Ok((cosign, notation))
    }

    /// Whether `subject` is signed as the project requires.
    async fn signed(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        need: Need,
        keys: &ProjectKeys,
    ) -> Result<bool> {
        let (cosign, notation) = self.signatures(repository, subject).await?;
        let cosign_ok = if !need.cosign {
            true
        } else if keys.verifying.is_empty() {
            !cosign.is_empty()
        } else {
            let mut any = false;
            for signature in &cosign {
                if self.verifies(signature, subject, keys).await? {
                    any = true;
                    break;
                }
            }
            any
        };
        if !cosign_ok {
            return Ok(false);
        }
        if !need.notation {
            return Ok(true);
        }
        if !keys.has_roots() {
            return Ok(!notation.is_empty());
        }
        #[cfg(feature = "notation")]
        for signature in &notation {
            if self.notation_verifies(signature, subject, keys).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[derive(Debug, Clone, Copy)]
struct Need {
    cosign: bool,
    notation: bool,
}

#[async_trait]
impl PullPolicies for ContentTrust {
    async fn admit(&self, repository: &RepositoryName, record: &ManifestRecord, puller: &Operator) -> Result<()> {
        // The registry's scanner pulls what it was asked to scan, signed or not (as Harbor's
        // scanner robot does).
        if crate::delegates::is_scanner(puller) {
            return Ok(());
        }
        let Some(project) = crate::artifacts::project_of_repository(&self.accounts, repository).await? else {
            return Ok(());
        };
        let on = |key: &str| project.metadata.get(key).is_some_and(|v| v == "true");
        let need = Need { cosign: on(COSIGN), notation: on(NOTATION) };
        if !need.cosign && !need.notation {
            return Ok(());
        }
        let keys = self.project_keys(project.id).await?;
        if self.signed(repository, &record.digest, need, &keys).await? {
            return Ok(());
        }
        // A child of a signed index is signed by it.
        for parent in self.meta.referencing(repository, &record.digest).await? {
            if self.signed(repository, &parent, need, &keys).await? {
                return Ok(());
            }
        }
        let what = match (need.cosign, need.notation) {
            (true, true) => "by cosign and by notation",
            (true, false) => "by cosign",
            _ => "by notation",
        };
        let how = match (need.cosign && !keys.verifying.is_empty(), need.notation && keys.has_roots()) {
            (true, true) => " with signatures that verify under the project's trusted keys and roots",
            (true, false) => " with a signature that verifies under one of the project's trusted keys",
            (false, true) => " with a signature that verifies under one of the project's trusted roots",
            (false, false) => "",
        };
        Err(Error::PullDenied {
            reason: format!(
                "{repository}@{} is not signed {what}{how}, and project {} accepts only signed artifacts (content trust)",
                record.digest, project.name
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).expect("key")
    }

    fn payload(digest: &Digest) -> Vec<u8> {
        serde_json::json!({"critical": {"identity": {"docker-reference": "r/app"}, "image": {"docker-manifest-digest": digest.to_string()},
            "type": "cosign container image signature"}, "optional": null})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn cosign_signatures_verify_and_forgeries_do_not() {
        let subject = Digest::sha256_of(b"image");
        let signer = key();
        let sign = |bytes: &[u8]| {
            let sig: Signature = signer.sign(bytes);
            base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
        };
        let keys = [*signer.verifying_key()];
        let good = payload(&subject);
        assert!(verify_cosign(&good, &sign(&good), &subject, &keys));
        let other = payload(&Digest::sha256_of(b"another"));
        assert!(!verify_cosign(&other, &sign(&other), &subject, &keys), "another digest in the payload");
        let mut tampered = good.clone();
        tampered.push(b' ');
        assert!(!verify_cosign(&tampered, &sign(&good), &subject, &keys), "a tampered payload");
        let stranger = SigningKey::from_slice(&[9u8; 32]).expect("key");
        assert!(!verify_cosign(&good, &sign(&good), &subject, &[*stranger.verifying_key()]), "the wrong key");
        assert!(!verify_cosign(&good, "not base64!", &subject, &keys));
        let pem = signer.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("pem");
        assert!(TrustedKeys { cosign: vec![pem], ..TrustedKeys::default() }.checked().is_ok());
        let bad = "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----".to_owned();
        assert!(TrustedKeys { cosign: vec![bad], ..TrustedKeys::default() }.checked().is_err());
    }
}
