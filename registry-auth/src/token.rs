//! Docker token-auth JWTs: issuing (the token service) and verifying (the registry).
//!
//! Tokens are JWS compact serializations signed with **ES256** (ECDSA P-256 with SHA-256) by
//! default, or **RS256** (RSASSA-PKCS1-v1_5 with SHA-256) with an RSA key. Each trusted key has
//! exactly one algorithm, fixed by its type: the header's `alg` must equal it and is never used to
//! choose it, so `none` and HMAC-with-a-public-key tokens are refused before any cryptography
//! runs. The key is chosen by the header's `kid`, the RFC 7638
//! thumbprint of the public key, among the trusted keys (several may be trusted at once, for
//! rotation); the public keys are published as a JWKS.
//!
//! Claims: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti` and `access`, the list of granted
//! `{type, name, actions}`. The verifier checks signature, algorithm, issuer, audience, `exp` and
//! `nbf` (with a small leeway for clock skew), and the caller then checks that `access` covers the
//! request ([`VerifiedToken::allows`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use registry_core::{Action, Scope};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::AuthError;

/// The default signing algorithm.
pub const ALGORITHM: &str = "ES256";
/// The RSA signing algorithm.
pub const RS256: &str = "RS256";

#[derive(Clone)]
enum Signer {
    Es256(SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
}

/// A signing key of the token service: ES256 (P-256) or RS256 (RSA).
#[derive(Clone)]
pub struct TokenKey {
    key: Signer,
    kid: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("alg", &self.algorithm()).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A fresh random ES256 key.
    pub fn generate() -> Result<TokenKey, AuthError> {
        loop {
            let mut scalar = [0u8; 32];
            getrandom::fill(&mut scalar).map_err(|e| AuthError::Backend(format!("no randomness: {e}")))?;
            // A random 32-byte string is a valid scalar except with negligible probability.
            if let Ok(key) = SigningKey::from_slice(&scalar) {
                return Ok(TokenKey::from_signer(Signer::Es256(key)));
            }
        }
    }

    /// A fresh random RS256 key (RSA, 2048-bit modulus or the rsa crate's larger default).
    pub fn generate_rs256() -> Result<TokenKey, AuthError> {
        use rsa::Generate;
        let key =
            rsa::PrivateKey::try_generate().map_err(|e| AuthError::Backend(format!("RSA key generation: {e}")))?;
        Ok(TokenKey::from_signer(Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key)))))
    }

    fn from_signer(key: Signer) -> TokenKey {
        let mut token_key = TokenKey { key, kid: String::new() };
        token_key.kid = token_key.public_key().thumbprint();
        token_key
    }

    /// Reads a PKCS#8 PEM private key, P-256 or RSA.
    pub fn from_pem(pem: &str) -> Result<TokenKey, AuthError> {
        if let Ok(key) = SigningKey::from_pkcs8_pem(pem) {
            return Ok(TokenKey::from_signer(Signer::Es256(key)));
        }
        let key = rsa::PrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| AuthError::Config(format!("signing key: neither P-256 nor RSA PKCS#8: {e}")))?;
        Ok(TokenKey::from_signer(Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key)))))
    }

    /// The key as PKCS#8 PEM (store it with mode 0600).
    pub fn to_pem(&self) -> Result<String, AuthError> {
        let pem = match &self.key {
            Signer::Es256(k) => k.to_pkcs8_pem(LineEnding::LF),
            Signer::Rs256(k) => k.as_ref().as_ref().to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|p| p.to_string()).map_err(|e| AuthError::Config(format!("signing key: {e}")))
    }

    /// The JWS algorithm: `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Signer::Es256(_) => ALGORITHM,
            Signer::Rs256(_) => RS256,
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, for verifiers.
    pub fn public_key(&self) -> PublicKey {
        match &self.key {
            Signer::Es256(k) => PublicKey { key: Verifier::Es256(*k.verifying_key()) },
            Signer::Rs256(k) => PublicKey { key: Verifier::Rs256(Box::new(k.as_ref().as_ref().to_public_key())) },
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Signer::Es256(k) => {
                let signature: Signature = k.sign(message);
                signature.to_bytes().to_vec()
            }
            Signer::Rs256(k) => {
                let signature: rsa::pkcs1v15::Signature = k.sign(message);
                rsa::signature::SignatureEncoding::to_vec(&signature)
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Verifier {
    Es256(VerifyingKey),
    Rs256(Box<rsa::PublicKey>),
}

/// A trusted public key of a token service.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: Verifier,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.thumbprint())
    }
}

fn trimmed_b64(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    B64.encode(&bytes[start..])
}

impl PublicKey {
    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Verifier::Es256(_) => ALGORITHM,
            Verifier::Rs256(_) => RS256,
        }
    }

    /// The JWK members that identify the key, in RFC 7638's lexical order.
    fn members(&self) -> Vec<(&'static str, String)> {
        match &self.key {
            Verifier::Es256(k) => {
                let point = k.to_sec1_point(false);
                let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
                let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
                vec![("crv", "P-256".into()), ("kty", "EC".into()), ("x", x), ("y", y)]
            }
            Verifier::Rs256(k) => {
                use rsa::traits::PublicKeyParts;
                let e = trimmed_b64(&k.e().to_be_bytes());
                let n = trimmed_b64(&k.n().as_ref().to_be_bytes());
                vec![("e", e), ("kty", "RSA".into()), ("n", n)]
            }
        }
    }

    /// The DER SubjectPublicKeyInfo (as certificates carry it).
    pub fn spki_der(&self) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey;
        let der = match &self.key {
            Verifier::Es256(k) => k.to_public_key_der(),
            Verifier::Rs256(k) => k.as_ref().to_public_key_der(),
        };
        der.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The libtrust key id distribution uses to find a key in its root bundle: base32 of the first
    /// 240 bits of SHA-256 over the DER SubjectPublicKeyInfo, in 12 colon-separated groups of 4.
    pub fn libtrust_kid(&self) -> String {
        let hash = sha2::Sha256::digest(self.spki_der());
        let encoded = base32(&hash[..30]);
        encoded.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` of tokens it verifies.
    pub fn thumbprint(&self) -> String {
        // Required members only, in lexical order, no whitespace, as RFC 7638 requires.
        let body: Vec<String> = self.members().iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
        B64.encode(sha2::Sha256::digest(format!("{{{}}}", body.join(",")).as_bytes()))
    }

    /// The key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::Map::new();
        for (k, v) in self.members() {
            jwk.insert(k.into(), v.into());
        }
        jwk.insert("kid".into(), self.thumbprint().into());
        jwk.insert("alg".into(), self.algorithm().into());
        jwk.insert("use".into(), "sig".into());
        serde_json::Value::Object(jwk)
    }

    /// Reads a JWK (as [`PublicKey::jwk`] writes it): EC P-256 or RSA.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<PublicKey, AuthError> {
        let bad = |what: &str| AuthError::Config(format!("JWK: {what}"));
        let field = |name: &str| jwk[name].as_str().and_then(|s| B64.decode(s).ok()).ok_or_else(|| bad(name));
        match jwk["kty"].as_str() {
            Some("EC") if jwk["crv"] == "P-256" => {
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("coordinates are not 32 bytes"));
                }
                let mut sec1 = vec![4u8];
                sec1.extend(x);
                sec1.extend(y);
                let key = VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| bad("not a point on P-256"))?;
                Ok(PublicKey { key: Verifier::Es256(key) })
            }
            Some("RSA") => {
                let (n, e) = (field("n")?, field("e")?);
                let n = rsa::BoxedUint::from_be_slice_vartime(&n);
                let e = rsa::BoxedUint::from_be_slice_vartime(&e);
                let key = rsa::PublicKey::new(n, e).map_err(|e| bad(&format!("RSA key: {e}")))?;
                Ok(PublicKey { key: Verifier::Rs256(Box::new(key)) })
            }
            _ => Err(bad("only EC P-256 and RSA keys are supported")),
        }
    }

    /// Whether `signature` over `message` verifies with this key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Verifier::Es256(k) => Signature::from_slice(signature).is_ok_and(|s| k.verify(message, &s).is_ok()),
            Verifier::Rs256(k) => {
                let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.as_ref().clone());
                rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|s| verifier.verify(message, &s).is_ok())
            }
        }
    }
}

/// RFC 4648 base32 (standard alphabet, no padding).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// How a token's `kid` names the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KidFormat {
    /// The RFC 7638 JWK thumbprint (default).
    #[default]
    Rfc7638,
    /// The libtrust key id of docker/distribution.
    Libtrust,
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[PublicKey]) -> serde_json::Value {
    serde_json::json!({ "keys": keys.iter().map(PublicKey::jwk).collect::<Vec<_>>() })
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Resource type, e.g. `repository`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource name, e.g. `library/app`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl AccessEntry {
    /// The entry of a granted scope (its class, if any, is kept in the type as `type(class)`).
    pub fn from_scope(scope: &Scope) -> AccessEntry {
        let resource_type = match &scope.resource_class {
            Some(class) => format!("{}({class})", scope.resource_type),
            None => scope.resource_type.clone(),
        };
        AccessEntry {
            resource_type,
            name: scope.name.clone(),
            actions: scope.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }
}

/// The claims of a registry token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the token service's name.
    pub iss: String,
    /// Subject: the account the token was issued to (empty for anonymous).
    pub sub: String,
    /// Audience: the registry service the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// What the token grants.
    #[serde(default)]
    pub access: Vec<AccessEntry>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    typ: Option<String>,
    alg: String,
    kid: Option<String>,
    /// The signing key's certificate chain (base64 DER), for registries that verify tokens
    /// against a root bundle (distribution 2.8 and 3.x).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    x5c: Vec<String>,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A random identifier of `bytes` random bytes, base64url.
pub fn random_id(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Backend(format!("no randomness: {e}")))?;
    Ok(B64.encode(buf))
}

/// Signs tokens.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    key: TokenKey,
    issuer: String,
    lifetime: Duration,
    x5c: Vec<String>,
    kid: String,
}

impl TokenIssuer {
    /// An issuer named `issuer` signing with `key`, tokens valid for `lifetime` (at least 60 s, as
    /// the spec requires of `expires_in`).
    pub fn new(key: TokenKey, issuer: impl Into<String>, lifetime: Duration) -> TokenIssuer {
        let kid = key.kid.clone();
        TokenIssuer {
            key,
            issuer: issuer.into(),
            lifetime: lifetime.max(Duration::from_secs(60)),
            x5c: Vec::new(),
            kid,
        }
    }

    /// Names the key in the tokens' `kid` in this format (RFC 7638 by default).
    pub fn with_kid_format(mut self, format: KidFormat) -> TokenIssuer {
        self.kid = match format {
            KidFormat::Rfc7638 => self.key.kid.clone(),
            KidFormat::Libtrust => self.key.public_key().libtrust_kid(),
        };
        self
    }

    /// Puts the signing key's certificate chain (DER, leaf first) in every token's `x5c` header,
    /// so that registries verifying against a root certificate bundle accept the tokens.
    pub fn with_certificate_chain(mut self, chain_der: &[Vec<u8>]) -> TokenIssuer {
        use base64::engine::general_purpose::STANDARD;
        self.x5c = chain_der.iter().map(|der| STANDARD.encode(der)).collect();
        self
    }

    /// The issuer's name (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The signing key.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Signs a token for `subject` granting `granted` on `audience`.
    pub fn issue(&self, subject: &str, audience: &str, granted: &[Scope]) -> Result<(String, Claims), AuthError> {
        let now = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            exp: now + self.lifetime.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: random_id(16)?,
            access: granted.iter().filter(|s| !s.actions.is_empty()).map(AccessEntry::from_scope).collect(),
        };
        Ok((self.sign_claims(&claims)?, claims))
    }

    /// Signs arbitrary claims (tools and tests; [`TokenIssuer::issue`] is the normal way).
    pub fn sign_claims(&self, claims: &Claims) -> Result<String, AuthError> {
        let header = Header {
            typ: Some("JWT".into()),
            alg: self.key.algorithm().into(),
            kid: Some(self.kid.clone()),
            x5c: self.x5c.clone(),
        };
        let signing_input = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
        let signature = self.key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }
}

fn b64_json<T: Serialize>(value: &T) -> Result<String, AuthError> {
    serde_json::to_vec(value).map(|b| B64.encode(b)).map_err(|e| AuthError::Backend(e.to_string()))
}

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

impl quick_cache::Weighter<String, VerifiedToken> for TokenWeight {
    fn weight(&self, token: &String, _: &VerifiedToken) -> u64 {
        token.len() as u64 + 256
    }
}

struct VerifiedCache(quick_cache::sync::Cache<String, VerifiedToken, TokenWeight>);

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache").field("entries", &self.0.len()).finish()
    }
}

/// A token that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: Claims,
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

    /// The audience (the registry's service name).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies a token at the current time.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        self.verify_at(token, now_secs())
    }

    /// Verifies a token as of `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<VerifiedToken, AuthError> {
        self.verify_with_grace(token, now, 0)
    }

    /// Verifies a token as of `now`, accepting it up to `grace` seconds after its expiry (every
    /// other check unchanged). For requests on work a valid token started, such as an upload.
    pub fn verify_with_grace(&self, token: &str, now: u64, grace: u64) -> Result<VerifiedToken, AuthError> {
        let verified = match self.verified.0.get(token) {
            Some(v) => v,
            None => {
                let v = self.verify_signed(token)?;
                self.verified.0.insert(token.to_owned(), v.clone());
                v
            }
        };
        let claims = &verified.claims;
        let invalid = |reason: &'static str| AuthError::InvalidToken { reason };
        if now > claims.exp.saturating_add(self.leeway).saturating_add(grace) {
            return Err(invalid("expired"));
        }
        if now.saturating_add(self.leeway) < claims.nbf {
            return Err(invalid("not yet valid"));
        }
        Ok(verified)
    }

    /// The checks that do not depend on time: format, algorithm, key, signature, issuer, audience.
    fn verify_signed(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let invalid = |reason: &'static str| AuthError::InvalidToken { reason };
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("not a JWS compact serialization"));
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(invalid("header does not decode"))?;
        // Only the algorithms of trusted keys exist here (no `none`, no HMAC): anything else is
        // refused before a key is even looked up.
        if header.alg != ALGORITHM && header.alg != RS256 {
            return Err(invalid("algorithm not accepted"));
        }
        let key = match &header.kid {
            Some(kid) => self.keys.get(kid).ok_or(invalid("unknown key id"))?,
            None if self.keys.len() == 2 => self.keys.values().next().ok_or(invalid("no trusted key"))?,
            None => return Err(invalid("no key id")),
        };
        // Each key verifies with its own algorithm only: the header cannot choose another.
        if header.alg != key.algorithm() {
            return Err(invalid("algorithm not accepted"));
        }
        let signature = B64.decode(s).map_err(|_| invalid("signature does not decode"))?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(invalid("bad signature"));
        }
        let claims: Claims =
            B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(invalid("claims do not decode"))?;
        if claims.iss != self.issuer {
            return Err(invalid("wrong issuer"));
        }
        if claims.aud != self.audience {
            return Err(invalid("wrong audience"));
        }
        Ok(VerifiedToken { claims })
    }
}

#[cfg(test)]
mod tests {
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
            matches!(verifier.verify_at(&token, claims.exp + 31), Err(AuthError::InvalidToken { reason: "expired" })),
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
            Err(AuthError::InvalidToken { reason: "bad signature" })
        ));
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
        assert!(matches!(verifier.verify(&forged), Err(AuthError::InvalidToken { reason: "bad signature" })));

        // alg: none, with and without a signature.
        let none = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        for t in [format!("{none}.{}.", parts[1]), format!("{none}.{}.{}", parts[1], parts[2])] {
            assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken { .. })), "{t}");
        }
        // HS256 "signed" with the public key as the secret: refused on the algorithm alone.
        let hs = B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(matches!(
            verifier.verify(&format!("{hs}.{}.{}", parts[1], parts[2])),
            Err(AuthError::InvalidToken { reason: "algorithm not accepted" })
        ));

        // Another key, another issuer, another audience.
        let (other_issuer, _) = setup();
        let (t, _) = other_issuer.issue("alice", "registry", &[]).expect("issue");
        assert!(verifier.verify(&t).is_err(), "untrusted key");
        let key = issuer.key().clone();
        let (t, _) =
            TokenIssuer::new(key.clone(), "other", Duration::from_secs(60)).issue("a", "registry", &[]).expect("issue");
        assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken { reason: "wrong issuer" })));
        let (t, _) = issuer.issue("a", "other-registry", &[]).expect("issue");
        assert!(matches!(verifier.verify(&t), Err(AuthError::InvalidToken { reason: "wrong audience" })));

        // Time.
        let (t, claims) = issuer.issue("a", "registry", &[]).expect("issue");
        assert!(verifier.verify_at(&t, claims.exp + 31).is_err(), "expired beyond the leeway");
        assert!(verifier.verify_at(&t, claims.exp + 29).is_ok(), "within the leeway");
        assert!(matches!(
            verifier.verify_at(&t, claims.nbf - 31),
            Err(AuthError::InvalidToken { reason: "not yet valid" })
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
        let public = PublicKey::from_jwk(&key.public_key().jwk()).expect("from jwk");
        assert_eq!(public, key.public_key());
        assert_eq!(jwks(&[public])["keys"][0]["kid"], key.kid());

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
        let public = PublicKey::from_jwk(&rsa_key.public_key().jwk()).expect("jwk");
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
            Err(AuthError::InvalidToken { reason: "algorithm not accepted" })
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
