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
//!
//! | module | what it holds |
//! |---|---|
//! | [`key`] | [`TokenKey`] (ES256 or RS256 signing key), [`PublicKey`], JWK and JWKS, the key's certificate |
//! | [`claims`] | [`Claims`] and [`AccessEntry`] |
//! | [`issuer`] | [`TokenIssuer`]: signs tokens |
//! | [`verifier`] | [`TokenVerifier`]: checks them, remembering verified tokens |

pub mod claims;
pub mod issuer;
pub mod key;
pub mod verifier;

pub use claims::{AccessEntry, Claims};
pub use issuer::TokenIssuer;
pub use key::{ALGORITHM, KidFormat, PublicKey, RS256, TokenKey, jwks, parse_jwks};
pub use verifier::{TokenVerifier, VerifiedToken};

pub use crate::error::TokenError;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::error::AuthError;

/// A random identifier of `bytes` random bytes, base64url.
pub fn random_id(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| AuthError::Backend(registry_core::BackendError::permanent("no randomness", e)))?;
    Ok(B64.encode(buf))
}
