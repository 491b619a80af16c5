//! Signing tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use registry_core::Scope;
use serde::Serialize;

use super::claims::{AccessEntry, Claims, Header};
use super::key::{KidFormat, TokenKey};
use super::random_id;
use crate::error::AuthError;

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
        let kid = key.kid().to_owned();
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
            KidFormat::Rfc7638 => self.key.kid().to_owned(),
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
        let now = registry_core::time::now_secs();
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
    serde_json::to_vec(value)
        .map(|b| B64.encode(b))
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("encoding a token", e)))
}
