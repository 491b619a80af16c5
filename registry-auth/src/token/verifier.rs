//! Verifying tokens: signature, algorithm, key, issuer, audience and times. (Most of this file is
//! the tests of every refusal, kept beside the checks they prove.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use registry_core::cache_stats::CacheStats;
use registry_core::{Action, Scope};

use super::claims::{Claims, Header};
use super::key::{ALGORITHM, PublicKey, RS256};
use crate::error::{AuthError, TokenError};

/// Verifies tokens: signature against the trusted keys, algorithm, issuer, audience and times.
///
/// Tokens that passed the signature, issuer and audience checks are remembered (bounded, by the
/// whole token text), so a client presenting the same token again costs a look-up instead of a
/// signature verification; the times are checked on every use. Clones share the cache.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: BTreeMap<String, PublicKey>,
    issuer: String,
    audience: String,
    leeway: u64,
    verified: Arc<VerifiedCache>,
}

/// Bytes of token text the verified-token cache holds.
const VERIFIED_CACHE_BYTES: u64 = 8 << 20;

#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<String, Verified> for TokenWeight {
    fn weight(&self, signature: &String, verified: &Verified) -> u64 {
        (signature.len() + verified.token.len()) as u64 + 256
    }
}

/// A token verified once, and what it proved.
#[derive(Clone)]
struct Verified {
    token: Arc<str>,
    proved: VerifiedToken,
}

/// Tokens verified, found by their signature (the last part): hashing it costs a fraction of
/// hashing the whole token, which every request would pay. A hit counts only when the whole
/// token is the one verified.
struct VerifiedCache(quick_cache::sync::Cache<String, Verified, TokenWeight>);

impl VerifiedCache {
    fn stats(&self) -> CacheStats {
        CacheStats::weighed("verified_tokens", self.0.hits(), self.0.misses(), self.0.len(), self.0.weight())
    }

    fn get(&self, token: &str) -> Option<VerifiedToken> {
        let found = self.0.get(signature(token))?;
        same(found.token.as_bytes(), token.as_bytes()).then_some(found.proved)
    }

    fn insert(&self, token: &str, proved: &VerifiedToken) {
        self.0.insert(signature(token).to_owned(), Verified { token: token.into(), proved: proved.clone() });
    }
}

/// A token's signature: its last part.
fn signature(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(_, signature)| signature)
}

/// Whether two tokens are the same, every byte compared whatever the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache").field("entries", &self.0.len()).finish()
    }
}

/// A token that passed verification. Cheap to clone (the claims are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: Arc<Claims>,
}

impl VerifiedToken {
    /// Whether the token grants `action` on the resource `resource_type:name`.
    pub fn allows(&self, resource_type: &str, name: &str, action: &Action) -> bool {
        self.claims.access.iter().any(|entry| {
            entry.resource_type == resource_type
                && entry.name == name
                && entry.actions.iter().any(|a| {
                    Action::parse(a).is_ok_and(|granted| {
                        &granted == action
                            || (granted == Action::All
                                && matches!(action, Action::Pull | Action::Push | Action::Delete))
                    })
                })
        })
    }

    /// Whether the token grants every action of `scope`.
    pub fn covers(&self, scope: &Scope) -> bool {
        scope.actions.iter().all(|a| self.allows(&scope.resource_type, &scope.name, a))
    }
}

/// Largest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 16 << 10;

impl TokenVerifier {
    /// A verifier for tokens of `issuer` for `audience`, signed by one of `keys`.
    pub fn new(
        keys: impl IntoIterator<Item = PublicKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        TokenVerifier {
            // Each key is found by either form of key id.
            keys: keys.into_iter().flat_map(|k| [(k.thumbprint(), k.clone()), (k.libtrust_kid(), k)]).collect(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: 30,
            verified: Arc::new(VerifiedCache(quick_cache::sync::Cache::with_weighter(
                4096,
                VERIFIED_CACHE_BYTES,
                TokenWeight,
            ))),
        }
    }

    /// Allowed clock skew for `exp` and `nbf` (default 30 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// The figures of the cache of tokens verified, for metrics.
    pub fn cache_stats(&self) -> CacheStats {
        self.verified.stats()
    }

    /// The audience (the registry's service name).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies a token at the current time.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        self.verify_at(token, registry_core::time::now_secs())
    }

    /// Verifies a token as of `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<VerifiedToken, AuthError> {
        self.verify_with_grace(token, now, 0)
    }

    /// Verifies a token as of `now`, accepting it up to `grace` seconds after its expiry (every
    /// other check unchanged). For requests on work a valid token started, such as an upload.
    pub fn verify_with_grace(&self, token: &str, now: u64, grace: u64) -> Result<VerifiedToken, AuthError> {
        let verified = match self.verified.get(token) {
            Some(v) => v,
            None => {
                let v = self.verify_signed(token)?;
                self.verified.insert(token, &v);
                v
            }
        };
        let claims = &verified.claims;
        let invalid = AuthError::InvalidToken;
        if now > claims.exp.saturating_add(self.leeway).saturating_add(grace) {
            return Err(invalid(TokenError::Expired));
        }
        if now.saturating_add(self.leeway) < claims.nbf {
            return Err(invalid(TokenError::NotYetValid));
        }
        Ok(verified)
    }

    /// The checks that do not depend on time: format, algorithm, key, signature, issuer, audience.
    fn verify_signed(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let invalid = AuthError::InvalidToken;
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(TokenError::TooLong));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(TokenError::Malformed));
        };
        let header: Header =
            B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(invalid(TokenError::Malformed))?;
        // Only the algorithms of trusted keys exist here (no `none`, no HMAC): anything else is
        // refused before a key is even looked up.
        if header.alg != ALGORITHM && header.alg != RS256 {
            return Err(invalid(TokenError::Algorithm));
        }
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid).ok_or(invalid(TokenError::UnknownKey))?,
            None if self.keys.len() == 2 => self.keys.values().next().ok_or(invalid(TokenError::UnknownKey))?,
            None => return Err(invalid(TokenError::UnknownKey)),
        };
        // Each key verifies with its own algorithm only: the header cannot choose another.
        if header.alg != key.algorithm() {
            return Err(invalid(TokenError::Algorithm));
        }
        let signature = B64.decode(s).map_err(|_| invalid(TokenError::BadSignature))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(invalid(TokenError::BadSignature));
        }
        let claims: Claims =
            B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(invalid(TokenError::Malformed))?;
        if claims.iss != self.issuer {
            return Err(invalid(TokenError::WrongIssuer));
        }
        if claims.aud != self.audience {
            return Err(invalid(TokenError::WrongAudience));
        }
        Ok(VerifiedToken { claims: Arc::new(claims) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::TokenIssuer;
    use super::super::key::{KidFormat, TokenKey, base32};
    use super::*;

    fn setup() -> (TokenIssuer, TokenVerifier) {
        let key = TokenKey::generate().expect("key");
        let verifier = TokenVerifier::new([key.public_key()], "issuer", "registry");
        (TokenIssuer::new(key, "issuer", Duration::from_secs(300)), verifier)
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).expect("scope")
    }

    #[test]
    fn a_remembered_token_still_expires_and_its_signature_opens_nothing_else() {
        let (issuer, verifier) = setup();
        let (token, claims) = issuer.issue("alice", "registry", &[scope("repository:a/b:pull")]).expect("issue");
        verifier.verify_at(&token, claims.iat).expect("valid, and now remembered");
        assert!(
            matches!(verifier.verify_at(&token, claims.exp + 31), Err(AuthError::InvalidToken(TokenError::Expired))),
            "the times are checked on every use"
        );
        assert!(verifier.clone().verify_at(&token, claims.iat).is_ok(), "clones share what they verified");
        // The same signature over other claims is not the remembered token.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(
            String::from_utf8(B64.decode(parts[1]).expect("b64")).expect("utf8").replace("a/b", "a/c").as_bytes(),
        );
        parts[1] = &forged;
        assert!(matches!(
            verifier.verify_at(&parts.join("."), claims.iat),
            Err(AuthError::InvalidToken(TokenError::BadSignature))
        ));
        assert!(verifier.verify_at(&token, claims.iat).is_ok(), "the remembered token is still remembered");
    }

    #[test]
    fn issued_tokens_verify_and_grant_what_they_list() {
        let (issuer, verifier) = setup();
        let (token, claims) = issuer.issue("alice", "registry", &[scope("repository:a/b:pull,push")]).expect("issue");
        assert_eq!(claims.exp - claims.iat, 300);
        let v = verifier.verify(&token).expect("valid");
        assert_eq!(v.claims.sub, "alice");
        assert!(v.allows("repository", "a/b", &Action::Push));
        assert!(!v.allows("repository", "a/b", &Action::Delete));
        assert!(!v.allows("repository", "a/c", &Action::Pull), "scope is per repository");
        assert!(v.covers(&scope("repository:a/b:pull,push")));
        assert!(!v.covers(&scope("repository:a/b:pull,delete")));
    }

    #[test]
    fn refuses_everything_that_is_not_exactly_right() {
        let (issuer, verifier) = setup();
        let (token, _) = issuer.issue("alice", "registry", &[scope("repository:a:pull")]).expect("issue");
        let parts: Vec<&str> = token.split('.').collect();

        // Tampered claims.
        let mut claims: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let forged = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
        assert!(matches!(verifier.verify(&forged), Err(AuthError::InvalidToken(TokenError::BadSignature))));

        // alg: none, with and without a signature.
        let none = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        for t in [format!("{none}.{}.", parts[1]), format!("{none}.{}.{}", parts[1], parts[2])] {
            assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken(_))), "{t}");
        }
        // HS256 "signed" with the public key as the secret: refused on the algorithm alone.
        let hs = B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(matches!(
            verifier.verify(&format!("{hs}.{}.{}", parts[1], parts[2])),
            Err(AuthError::InvalidToken(TokenError::Algorithm))
        ));

        // Another key, another issuer, another audience.
        let (other_issuer, _) = setup();
        let (t, _) = other_issuer.issue("alice", "registry", &[]).expect("issue");
        assert!(verifier.verify(&t).is_err(), "untrusted key");
        let key = issuer.key().clone();
        let (t, _) =
            TokenIssuer::new(key.clone(), "other", Duration::from_secs(60)).issue("a", "registry", &[]).expect("issue");
        assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken(TokenError::WrongIssuer))));
        let (t, _) = issuer.issue("a", "other-registry", &[]).expect("issue");
        assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken(TokenError::WrongAudience))));

        // Time.
        let (t, claims) = issuer.issue("a", "registry", &[]).expect("issue");
        assert!(verifier.verify_at(&t, claims.exp + 31).is_err(), "expired beyond the leeway");
        assert!(verifier.verify_at(&t, claims.exp + 29).is_ok(), "within the leeway");
        assert!(matches!(
            verifier.verify_at(&t, claims.nbf - 31),
            Err(AuthError::InvalidToken(TokenError::NotYetValid))
        ));

        // Garbage.
        for t in ["", "a.b", "a.b.c.d", "....", &"x".repeat(20_000)] {
            assert!(verifier.verify(t).is_err());
        }
    }

    #[test]
    fn keys_round_trip_through_pem_and_jwk_and_rotate() {
        let key = TokenKey::generate().expect("key");
        let again = TokenKey::from_pem(&key.to_pem().expect("pem")).expect("from pem");
        assert_eq!(again.kid(), key.kid());
        let public = PublicKey::from_jwk(&key.public_key().to_jwk()).expect("from jwk");
        assert_eq!(public, key.public_key());
        assert!(super::super::jwks(&[public]).contains(key.kid()));

        // Two trusted keys: tokens of either verify.
        let new_key = TokenKey::generate().expect("key");
        let verifier = TokenVerifier::new([key.public_key(), new_key.public_key()], "i", "r");
        for k in [key, new_key] {
            let (t, _) = TokenIssuer::new(k, "i", Duration::from_secs(60)).issue("s", "r", &[]).expect("issue");
            verifier.verify(&t).expect("either key verifies");
        }
    }

    #[test]
    fn rs256_keys_sign_and_verify_only_rs256() {
        let rsa_key = TokenKey::generate_rs256().expect("rsa key");
        assert_eq!(rsa_key.algorithm(), "RS256");
        let again = TokenKey::from_pem(&rsa_key.to_pem().expect("pem")).expect("from pem");
        assert_eq!(again.kid(), rsa_key.kid());
        let public = PublicKey::from_jwk(&rsa_key.public_key().to_jwk()).expect("jwk");
        assert_eq!(public, rsa_key.public_key());
        let ec_key = TokenKey::generate().expect("ec key");
        let verifier = TokenVerifier::new([rsa_key.public_key(), ec_key.public_key()], "i", "r");
        let (t, _) =
            TokenIssuer::new(rsa_key.clone(), "i", Duration::from_secs(60)).issue("s", "r", &[]).expect("issue");
        let parts: Vec<&str> = t.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "RS256");
        verifier.verify(&t).expect("RS256 verifies");
        // The same signature presented as ES256, or an ES256 token naming the RSA key: refused.
        let relabeled = B64.encode(serde_json::json!({"alg": "ES256", "kid": rsa_key.kid()}).to_string());
        assert!(verifier.verify(&format!("{relabeled}.{}.{}", parts[1], parts[2])).is_err());
        let (ec_token, _) = TokenIssuer::new(ec_key, "i", Duration::from_secs(60)).issue("s", "r", &[]).expect("issue");
        let ec_parts: Vec<&str> = ec_token.split('.').collect();
        let forged = B64.encode(serde_json::json!({"alg": "ES256", "kid": rsa_key.kid()}).to_string());
        assert!(verifier.verify(&format!("{forged}.{}.{}", ec_parts[1], ec_parts[2])).is_err());
        // HS256 with the RSA public key (PEM or DER) as the HMAC secret: refused on the algorithm.
        let hs = B64.encode(serde_json::json!({"alg": "HS256", "kid": rsa_key.kid()}).to_string());
        assert!(matches!(
            verifier.verify(&format!("{hs}.{}.{}", parts[1], parts[2])),
            Err(AuthError::InvalidToken(TokenError::Algorithm))
        ));
    }

    #[test]
    fn libtrust_key_ids() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI", "RFC 4648 test vector (unpadded)");
        let key = TokenKey::generate().expect("key");
        let kid = key.public_key().libtrust_kid();
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
        );
        let verifier = TokenVerifier::new([key.public_key()], "i", "r");
        let (t, _) = TokenIssuer::new(key, "i", Duration::from_secs(60))
            .with_kid_format(KidFormat::Libtrust)
            .issue("s", "r", &[])
            .expect("issue");
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(t.split('.').next().expect("h")).expect("b64")).expect("json");
        assert_eq!(header["kid"], kid);
        verifier.verify(&t).expect("found by its libtrust kid");
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 section 3.1 uses an RSA key; for EC we check the canonical member order and
        // stability instead: the same key always gives the same kid, different keys differ.
        let a = TokenKey::generate().expect("key");
        let b = TokenKey::generate().expect("key");
        assert_eq!(a.public_key().thumbprint(), a.kid());
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 43, "base64url of 32 bytes");
    }
}
