//! The reference server's data directory: what lives where, and the first start.
//!
//! ```text
//! <data_dir>/blobs/ uploads/ tmp/   the filesystem blob store (registry_storage::blob::fs)
//! <data_dir>/metadata.redb          metadata and accounts (registry_redb)
//! <data_dir>/token-key.pem          the token service's signing key (PKCS#8, mode 0600)
//! <data_dir>/token-cert.pem         its self-signed certificate: the root bundle for other registries
//! <data_dir>/admin.sock             the local admin socket while the server runs (mode 0600)
//! <data_dir>/accounts.redb.imported the accounts file of layouts before version 3, once moved in
//! ```

use std::path::Path;

use registry_auth::{Accounts, AuthError, TokenKey};

/// What the first start created.
#[derive(Debug, Default)]
pub(crate) struct Bootstrap {
    /// The generated admin password, to be shown once (None when it came from the environment
    /// or the admin already existed).
    pub(crate) generated_admin_password: Option<String>,
    /// Whether the `admin` account was created now.
    pub(crate) created_admin: bool,
    /// Whether the public `library` project was created now.
    pub(crate) created_library: bool,
}

/// On accounts with no enabled system administrator, creates `admin` with `admin_password`
/// (or a random one, returned to be shown once: there is no default password); with no
/// projects, creates the public project `library`, as Harbor does.
pub(crate) async fn bootstrap(accounts: &Accounts, admin_password: Option<&str>) -> Result<Bootstrap, AuthError> {
    let mut out = Bootstrap::default();
    let users = accounts.users().await?;
    if !users.iter().any(|u| u.admin && u.enabled) {
        if users.iter().any(|u| u.name == "admin") {
            return Err(AuthError::Precondition(
                "no enabled system administrator, and a user named admin exists: enable it or make it one \
                 (registry user enable admin)"
                    .into(),
            ));
        }
        let password = match admin_password {
            Some(p) => p.to_owned(),
            None => {
                let p = registry_auth::token::random_id(18)?;
                out.generated_admin_password = Some(p.clone());
                p
            }
        };
        match accounts.add_user("admin", &password, true).await {
            Ok(_) => out.created_admin = true,
            // Another replica starting at the same time made it first: its password stands.
            Err(AuthError::Conflict { .. }) => out.generated_admin_password = None,
            Err(e) => return Err(e),
        }
    }
    if accounts.projects().await?.is_empty() {
        match accounts.create_project("library", true).await {
            Ok(_) => out.created_library = true,
            Err(AuthError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Loads the token signing key from `<data_dir>/token-key.pem`, creating it (mode 0600) on the
/// first start: RS256 (RSA) when `rs256`, else ES256 (P-256). An existing key keeps its algorithm.
pub(crate) fn token_key(data_dir: &Path, rs256: bool) -> Result<TokenKey, AuthError> {
    let path = data_dir.join("token-key.pem");
    match std::fs::read_to_string(&path) {
        Ok(pem) => TokenKey::from_pem(&pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = if rs256 { TokenKey::generate_rs256()? } else { TokenKey::generate()? };
            registry_storage::durable::write_file(&path, key.to_pem()?.as_bytes(), Some(0o600))
                .map_err(|e| AuthError::Config(format!("{}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(AuthError::Config(format!("{}: {e}", path.display()))),
    }
}

/// The token key's certificate from `<data_dir>/token-cert.pem` (PEM, DER), created on the first
/// start, and again whenever it no longer matches the key.
pub(crate) fn token_certificate(data_dir: &Path, key: &TokenKey) -> Result<(String, Vec<u8>), AuthError> {
    use rustls_pki_types::pem::PemObject;
    let path = data_dir.join("token-cert.pem");
    let spki = key.public_key().spki_der();
    if let Ok(pem) = std::fs::read_to_string(&path)
        && let Ok(der) = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        && der.as_ref().windows(spki.len()).any(|w| w == spki.as_slice())
    {
        return Ok((pem, der.to_vec()));
    }
    let (pem, der) = key.certificate(registry_http::token::ISSUER)?;
    registry_storage::durable::write_file(&path, pem.as_bytes(), None)
        .map_err(|e| AuthError::Config(format!("{}: {e}", path.display())))?;
    Ok((pem, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_start_creates_admin_and_library_once() {
        let accounts = Accounts::in_memory();
        let first = bootstrap(&accounts, None).await.expect("bootstrap");
        let password = first.generated_admin_password.expect("a random password, shown once");
        assert!(password.len() >= 20);
        assert!(first.created_library);
        use registry_auth::Authenticator;
        assert!(accounts.authenticate("admin", &password).await.is_ok());
        let second = bootstrap(&accounts, None).await.expect("bootstrap");
        assert!(second.generated_admin_password.is_none() && !second.created_admin && !second.created_library);
        assert!(accounts.project("library").await.expect("project").expect("library").public);
    }

    #[test]
    fn certificates_for_both_algorithms() {
        for rs256 in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = token_key(dir.path(), rs256).expect("key");
            let (pem, der) = token_certificate(dir.path(), &key).expect("certificate");
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
            let (_, again) = token_certificate(dir.path(), &key).expect("reuse");
            assert_eq!(der, again, "kept while it matches the key");
        }
    }

    #[test]
    fn token_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = token_key(dir.path(), false).expect("create");
        let b = token_key(dir.path(), true).expect("load: the existing key wins");
        assert_eq!(b.algorithm(), "ES256");
        assert_eq!(a.kid(), b.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("token-key.pem")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
