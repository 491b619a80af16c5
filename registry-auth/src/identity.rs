//! Credentials as they arrive, and the identity they prove.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::model::RobotPermission;

/// Credentials from an `Authorization` header or a token request.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: anonymous.
    None,
    /// User name (or robot name) and password (or secret).
    Basic {
        /// The account name.
        username: String,
        /// The password or robot secret.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach Debug output or logs.
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parses an `Authorization` header value; anything unparsable is `None` (and so treated as
    /// anonymous, which can only ever grant less).
    pub fn from_authorization(value: Option<&str>) -> Credentials {
        let Some(value) = value else { return Credentials::None };
        if let Some(token) = Credentials::bearer(Some(value)) {
            return Credentials::Bearer(token.to_owned());
        }
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD.decode(rest.trim()).ok().and_then(|b| String::from_utf8(b).ok());
            if let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Credentials::Basic { username: username.to_owned(), password: password.to_owned() };
            }
        }
        Credentials::None
    }

    /// The bearer token of an `Authorization` header value, borrowed (what a registry reads on
    /// every request: no copy of the token).
    pub fn bearer(value: Option<&str>) -> Option<&str> {
        let value = value?.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user account.
    User {
        /// The user name.
        name: String,
        /// Whether the user is a system administrator.
        admin: bool,
    },
    /// A robot account.
    Robot {
        /// The full name, `robot$<project>+<name>` or `robot$<name>`.
        name: String,
        /// What it may do.
        permissions: Vec<RobotPermission>,
    },
}

impl Identity {
    /// The name put in a token's `sub` (empty for anonymous).
    pub fn subject(&self) -> &str {
        match self {
            Identity::Anonymous => "",
            Identity::User { name, .. } | Identity::Robot { name, .. } => name,
        }
    }

    /// Whether this is a system administrator.
    pub fn is_admin(&self) -> bool {
        matches!(self, Identity::User { admin: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_headers() {
        let basic = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        assert_eq!(
            Credentials::from_authorization(Some(&basic)),
            Credentials::Basic { username: "alice".into(), password: "pa:ss".into() }
        );
        assert_eq!(Credentials::from_authorization(Some("Bearer abc")), Credentials::Bearer("abc".into()));
        assert_eq!(Credentials::from_authorization(Some("bearer  abc ")), Credentials::Bearer("abc".into()));
        assert_eq!(Credentials::bearer(Some(" bearer  abc ")), Some("abc"));
        assert_eq!(Credentials::bearer(Some("Basic abc")), None);
        assert_eq!(Credentials::bearer(None), None);
        for bad in ["Basic !!!", "Basic YWxpY2U=", "Digest x", ""] {
            assert_eq!(Credentials::from_authorization(Some(bad)), Credentials::None, "{bad}");
        }
        assert!(!format!("{:?}", Credentials::from_authorization(Some(&basic))).contains("pa:ss"));
    }
}
