//! Whom users sign in through, as the system settings say (`auth_mode`): [`SignIn`] is the
//! [`Directory`] the accounts ask, reading the settings at each sign-in (one read beside the
//! account's) so a change made on any replica holds at the next sign-in everywhere. It passes
//! password checks to the LDAP directory (`ldap_auth`) and session checks to the OpenID Connect
//! provider (`oidc_auth`), each when the registry is built with its feature.

use std::sync::Arc;

use async_trait::async_trait;
use registry_auth::{AuthError, Directory, Profile, SecretKey, SignInMode, User};
use registry_storage::MetadataStore;

use crate::settings::SystemSettings;

/// The authentication mode of the accounts here.
pub const DB_AUTH: &str = "db_auth";
/// The authentication mode of an LDAP directory.
pub const LDAP_AUTH: &str = "ldap_auth";
/// The authentication mode of an OpenID Connect provider.
pub const OIDC_AUTH: &str = "oidc_auth";

/// The modes this build offers.
pub fn offered_modes() -> Vec<&'static str> {
    let mut modes = vec![DB_AUTH];
    if cfg!(feature = "ldap") {
        modes.push(LDAP_AUTH);
    }
    if cfg!(feature = "oidc") {
        modes.push(OIDC_AUTH);
    }
    modes
}

/// The directory or provider of the system settings.
pub struct SignIn {
    meta: Arc<dyn MetadataStore>,
    /// Opens the settings' sealed secrets (unused in a build with neither directory nor provider).
    #[cfg_attr(not(any(feature = "ldap", feature = "oidc")), allow(dead_code))]
    key: Option<SecretKey>,
}

impl SignIn {
    /// Signing in as the settings in `meta` say (their secrets opened with `key`).
    pub fn new(meta: Arc<dyn MetadataStore>, key: Option<SecretKey>) -> Arc<SignIn> {
        Arc::new(SignIn { meta, key })
    }

    async fn settings(&self) -> Result<SystemSettings, AuthError> {
        SystemSettings::load(&*self.meta)
            .await
            .map_err(|e| AuthError::Backend(registry_core::BackendError::message(e.to_string(), true)))
    }
}

/// The sign-in mode `auth_mode` names in this build.
pub fn mode_of(auth_mode: &str) -> SignInMode {
    match auth_mode {
        LDAP_AUTH if cfg!(feature = "ldap") => SignInMode::Directory,
        OIDC_AUTH if cfg!(feature = "oidc") => SignInMode::Provider,
        _ => SignInMode::Local,
    }
}

#[async_trait]
impl Directory for SignIn {
    async fn mode(&self) -> SignInMode {
        self.settings().await.map_or(SignInMode::Local, |s| mode_of(&s.auth_mode))
    }

    #[allow(unused_variables)]
    async fn verify(&self, username: &str, password: &str) -> Result<Option<Profile>, AuthError> {
        let settings = self.settings().await?;
        #[cfg(feature = "ldap")]
        if settings.auth_mode == LDAP_AUTH {
            let unavailable = |e: crate::ldap::LdapError| AuthError::Unavailable(e.0);
            let config = crate::ldap::LdapConfig::of(&settings, self.key.as_ref()).map_err(unavailable)?;
            return config.verify(username, password).await.map_err(unavailable);
        }
        Ok(None)
    }

    #[allow(unused_variables)]
    async fn recheck(&self, user: &User, now: u64) -> Result<Option<Profile>, AuthError> {
        let settings = self.settings().await?;
        #[cfg(feature = "oidc")]
        if settings.auth_mode == OIDC_AUTH {
            let unavailable = |e: crate::oidc::OidcError| AuthError::Unavailable(e.0);
            let config = crate::oidc::OidcConfig::of(&settings, self.key.as_ref()).map_err(unavailable)?;
            let Some(key) = &self.key else {
                return Err(AuthError::Unavailable("no key opens the provider's refresh tokens".into()));
            };
            return crate::oidc::recheck(&config, key, user, now).await.map_err(unavailable);
        }
        Ok(None)
    }
}
