//! An [`Authenticator`] over an htpasswd file with bcrypt entries, as `htpasswd -B` writes them.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::AuthError;
use crate::identity::Identity;
use crate::policy::Authenticator;

/// Users and bcrypt hashes from an htpasswd file. Every user is an ordinary (non-admin) user.
#[derive(Clone)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd").field("users", &self.users.len()).finish()
    }
}

impl Htpasswd {
    /// Parses htpasswd content: `user:$2y$…` lines; blank lines and `#` comments are skipped;
    /// any other hash scheme (MD5, SHA1, crypt, plain) is refused.
    pub fn parse(content: &str) -> Result<Htpasswd, AuthError> {
        let mut users = HashMap::new();
        for (i, line) in content.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) =
                line.split_once(':').ok_or_else(|| AuthError::Config(format!("htpasswd line {}: no ':'", i + 1)))?;
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err(AuthError::Config(format!(
                    "htpasswd line {}: only bcrypt (htpasswd -B) is accepted",
                    i + 1
                )));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd { users })
    }

    /// Reads an htpasswd file.
    pub fn load(path: &std::path::Path) -> Result<Htpasswd, AuthError> {
        let content =
            std::fs::read_to_string(path).map_err(|e| AuthError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&content)
    }
}

#[async_trait]
impl Authenticator for Htpasswd {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        // Unknown users are checked against a fixed hash so both cases cost the same.
        const DUMMY: &str = "$2y$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z3ZKgcGLEkgP4FmIz1JuQTa.";
        let (known, hash) = match self.users.get(username) {
            Some(h) => (true, h.clone()),
            None => (false, DUMMY.to_owned()),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok && known {
            Ok(Identity::User { name: username.to_owned(), admin: false })
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        if self.users.contains_key(username) {
            Ok(Identity::User { name: username.to_owned(), admin: false })
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_entries() {
        let hash = bcrypt::hash("secret-pw", 4).expect("hash");
        let h = Htpasswd::parse(&format!("# comment\n\nalice:{hash}\n")).expect("parse");
        assert!(h.authenticate("alice", "secret-pw").await.is_ok());
        assert!(h.authenticate("alice", "wrong").await.is_err());
        assert!(h.authenticate("bob", "secret-pw").await.is_err());
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("alice:$apr1$x$y").is_err());
    }
}
