//! The portal's sessions: a cookie that proves a user signed in, and the CSRF token that goes
//! with it.
//!
//! The cookie (`sid`) is the user's name and the session's expiry sealed with the registry's
//! [`SecretKey`] (AES-256-GCM): unreadable and unforgeable without the key, and valid on every
//! replica that shares the key, so no session table and no sticky clients. It is `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, and `Secure` when the registry is served over TLS. The user is
//! looked up again on every request (a deleted or disabled account's session ends at once).
//!
//! Every request that changes something and is authenticated by the cookie must carry the CSRF
//! token in `X-Harbor-CSRF-Token` (Harbor's header): the SHA-256 of the cookie, which a page can
//! learn only from the registry (`/c/session`, the login answer), never from another site.

use registry_auth::SecretKey;
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const COOKIE: &str = "sid";

/// The request header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-harbor-csrf-token";

/// What a session cookie holds.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The user.
    u: String,
    /// Expiry, seconds since the Unix epoch.
    exp: u64,
}

/// Issues and opens session cookies.
#[derive(Clone)]
pub struct Sessions {
    key: SecretKey,
    lifetime_secs: u64,
    secure: bool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("lifetime_secs", &self.lifetime_secs).finish_non_exhaustive()
    }
}

/// An opened session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The user who signed in.
    pub(crate) user: String,
    /// The CSRF token of this session.
    pub(crate) csrf: String,
}

impl Sessions {
    /// Sessions sealed with `key`, lasting `lifetime_secs`; `secure` when served over TLS.
    pub(crate) fn new(key: SecretKey, lifetime_secs: u64, secure: bool) -> Sessions {
        Sessions { key, lifetime_secs, secure }
    }

    /// A new session's cookie value for `user`.
    pub(crate) fn issue(&self, user: &str, now_secs: u64) -> Option<String> {
        let claims = Claims { u: user.to_owned(), exp: now_secs + self.lifetime_secs };
        let text = serde_json::to_string(&claims).ok()?;
        self.key.seal(&text).ok()
    }

    /// The session a cookie value proves, if it is ours and not expired.
    pub(crate) fn open(&self, value: &str, now_secs: u64) -> Option<Session> {
        let text = self.key.open(value).ok()?;
        let claims: Claims = serde_json::from_str(&text).ok()?;
        (claims.exp > now_secs).then(|| Session { user: claims.u, csrf: csrf_of(value) })
    }

    /// The `Set-Cookie` value that stores `value`.
    pub(crate) fn set_cookie(&self, value: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", self.lifetime_secs)
    }

    /// The `Set-Cookie` value that removes the session.
    pub(crate) fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// The CSRF token of a session cookie.
pub(crate) fn csrf_of(cookie: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, format!("csrf\0{cookie}").as_bytes()))
}

/// The user a request's session cookie proves, with the session: looked up again each time (a
/// deleted or disabled account's session ends at once; robots have no sessions).
pub(crate) async fn signed_in(
    authenticator: &dyn registry_auth::Authenticator,
    sessions: &Sessions,
    headers: &http::HeaderMap,
) -> Result<Option<(registry_auth::Identity, Session)>, registry_auth::AuthError> {
    use registry_auth::{AuthError, Identity};
    let Some(cookie) = cookie_of(headers) else { return Ok(None) };
    let Some(session) = sessions.open(cookie, registry_core::time::now_secs()) else { return Ok(None) };
    match authenticator.lookup(&session.user).await {
        Ok(who @ Identity::User { .. }) => Ok(Some((who, session))),
        Ok(_) | Err(AuthError::InvalidCredentials | AuthError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The session cookie of a request, if it sent one.
pub(crate) fn cookie_of(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// Whether a request's CSRF header matches the session's (compared in constant time).
pub(crate) fn csrf_matches(headers: &http::HeaderMap, session: &Session) -> bool {
    let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    let expected = session.csrf.as_bytes();
    // Every byte compared, whatever the first difference.
    sent.len() == expected.len() && sent.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(SecretKey::generate().expect("key"), 3600, false)
    }

    #[test]
    fn a_session_opens_until_it_expires_and_only_with_its_key() {
        let s = sessions();
        let cookie = s.issue("alice", 1000).expect("issue");
        let opened = s.open(&cookie, 1000).expect("opens");
        assert_eq!(opened.user, "alice");
        assert_eq!(opened.csrf, csrf_of(&cookie));
        assert!(s.open(&cookie, 4600).is_none(), "expired");
        assert!(sessions().open(&cookie, 1000).is_none(), "another key");
        let mut tampered = cookie.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(s.open(&String::from_utf8(tampered).expect("utf8"), 1000).is_none(), "tampered");
        assert!(!s.set_cookie(&cookie).contains("Secure"));
        assert!(Sessions::new(SecretKey::generate().expect("key"), 60, true).set_cookie("x").ends_with("; Secure"));
    }

    #[test]
    fn cookies_and_csrf_headers_are_read_exactly() {
        let s = sessions();
        let cookie = s.issue("bob", 0).expect("issue");
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, format!("theme=dark; {COOKIE}={cookie}").parse().expect("header"));
        assert_eq!(cookie_of(&headers), Some(cookie.as_str()));
        let session = s.open(&cookie, 0).expect("opens");
        assert!(!csrf_matches(&headers, &session), "no header");
        headers.insert(CSRF_HEADER, "0".repeat(64).parse().expect("header"));
        assert!(!csrf_matches(&headers, &session), "wrong token");
        headers.insert(CSRF_HEADER, session.csrf.parse().expect("header"));
        assert!(csrf_matches(&headers, &session));
    }
}
