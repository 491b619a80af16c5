//! Signing keys and the public keys that verify their tokens: ES256 (P-256) or RS256 (RSA), as
//! PEM, JWK and JWKS, and the self-signed certificate other registries take as their root bundle.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::Digest as _;

use crate::error::AuthError;

/// The default signing algorithm.
pub const ALGORITHM: &str = "ES256";
/// The RSA signing algorithm.
pub const RS256: &str = "RS256";

#[derive(Clone)]
enum Signer {
    Es256(SigningKey),
    #[cfg(feature = "rs256")]
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
            getrandom::fill(&mut scalar)
                .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("no randomness", e)))?;
            // A random 32-byte string is a valid scalar except with negligible probability.
            if let Ok(key) = SigningKey::from_slice(&scalar) {
                return Ok(TokenKey::from_signer(Signer::Es256(key)));
            }
        }
    }

    /// A fresh random RS256 key (RSA, 2048-bit modulus or the rsa crate's larger default).
    /// (Feature `rs256`.)
    #[cfg(feature = "rs256")]
    pub fn generate_rs256() -> Result<TokenKey, AuthError> {
        use rsa::Generate;
        let key = rsa::PrivateKey::try_generate()
            .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("RSA key generation", e)))?;
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
        #[cfg(feature = "rs256")]
        {
            let key = rsa::PrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| AuthError::Config(format!("signing key: neither P-256 nor RSA PKCS#8: {e}")))?;
            Ok(TokenKey::from_signer(Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key)))))
        }
        #[cfg(not(feature = "rs256"))]
        Err(AuthError::Config("signing key: not a P-256 PKCS#8 key (RSA keys need the `rs256` feature)".into()))
    }

    /// The key as PKCS#8 PEM (store it with mode 0600).
    pub fn to_pem(&self) -> Result<String, AuthError> {
        let pem = match &self.key {
            Signer::Es256(k) => k.to_pkcs8_pem(LineEnding::LF),
            #[cfg(feature = "rs256")]
            Signer::Rs256(k) => k.as_ref().as_ref().to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|p| p.to_string()).map_err(|e| AuthError::Config(format!("signing key: {e}")))
    }

    /// The JWS algorithm: `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Signer::Es256(_) => ALGORITHM,
            #[cfg(feature = "rs256")]
            Signer::Rs256(_) => RS256,
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A self-signed certificate for this key (PEM and DER), valid for a century and named after
    /// `issuer`: the root bundle other registries (distribution) verify this service's tokens
    /// with, and the `x5c` chain tokens carry. (Feature `x5c`.)
    #[cfg(feature = "x5c")]
    pub fn certificate(&self, issuer: &str) -> Result<(String, Vec<u8>), AuthError> {
        let config = |e: rcgen::Error| AuthError::Config(format!("token certificate: {e}"));
        let key_pair = rcgen::KeyPair::from_pem(&self.to_pem()?).map_err(config)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(config)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, issuer);
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        let cert = params.self_signed(&key_pair).map_err(config)?;
        Ok((cert.pem(), cert.der().to_vec()))
    }

    /// The public half, for verifiers.
    pub fn public_key(&self) -> PublicKey {
        match &self.key {
            Signer::Es256(k) => PublicKey { key: Verifier::Es256(*k.verifying_key()) },
            #[cfg(feature = "rs256")]
            Signer::Rs256(k) => PublicKey { key: Verifier::Rs256(Box::new(k.as_ref().as_ref().to_public_key())) },
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Signer::Es256(k) => {
                let signature: Signature = k.sign(message);
                signature.to_bytes().to_vec()
            }
            #[cfg(feature = "rs256")]
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
    #[cfg(feature = "rs256")]
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

#[cfg(feature = "rs256")]
fn trimmed_b64(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1));
    B64.encode(&bytes[start..])
}

impl PublicKey {
    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Verifier::Es256(_) => ALGORITHM,
            #[cfg(feature = "rs256")]
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
            #[cfg(feature = "rs256")]
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
            #[cfg(feature = "rs256")]
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

    /// The key as a JWK (JSON text).
    pub fn to_jwk(&self) -> String {
        self.jwk().to_string()
    }

    pub(crate) fn jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::Map::new();
        for (k, v) in self.members() {
            jwk.insert(k.into(), v.into());
        }
        jwk.insert("kid".into(), self.thumbprint().into());
        jwk.insert("alg".into(), self.algorithm().into());
        jwk.insert("use".into(), "sig".into());
        serde_json::Value::Object(jwk)
    }

    /// Reads a JWK (JSON text, as [`PublicKey::to_jwk`] writes it): EC P-256 or RSA.
    pub fn from_jwk(text: &str) -> Result<PublicKey, AuthError> {
        let jwk: serde_json::Value =
            serde_json::from_str(text).map_err(|e| AuthError::Config(format!("JWK: not JSON: {e}")))?;
        Self::from_jwk_value(&jwk)
    }

    pub(crate) fn from_jwk_value(jwk: &serde_json::Value) -> Result<PublicKey, AuthError> {
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
            #[cfg(feature = "rs256")]
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
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Verifier::Es256(k) => Signature::from_slice(signature).is_ok_and(|s| k.verify(message, &s).is_ok()),
            #[cfg(feature = "rs256")]
            Verifier::Rs256(k) => {
                let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.as_ref().clone());
                rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|s| verifier.verify(message, &s).is_ok())
            }
        }
    }
}

/// RFC 4648 base32 (standard alphabet, no padding).
pub(crate) fn base32(bytes: &[u8]) -> String {
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

/// A JWKS document (JSON text) of `keys`.
pub fn jwks(keys: &[PublicKey]) -> String {
    serde_json::json!({ "keys": keys.iter().map(PublicKey::jwk).collect::<Vec<_>>() }).to_string()
}

/// The keys of a JWKS document (JSON text), e.g. a token server's `/auth/jwks`; at least one.
pub fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, AuthError> {
    let jwks: serde_json::Value =
        serde_json::from_str(text).map_err(|e| AuthError::Config(format!("JWKS: not JSON: {e}")))?;
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| AuthError::Config("JWKS: no \"keys\" array".into()))?
        .iter()
        .map(PublicKey::from_jwk_value)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(AuthError::Config("JWKS: no keys".into()));
    }
    Ok(keys)
}
