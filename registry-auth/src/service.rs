//! The token service, per Docker's token-auth spec: credentials and requested scopes in, a signed
//! token granting what the policy allows out.
//!
//! Asking for more than the policy allows is not an error: the token grants less (possibly
//! nothing). Only bad credentials fail. With `offline_token=true` (GET) or `access_type=offline`
//! (POST) the response carries a refresh token: a JWT for the audience `<issuer>:refresh`, valid
//! for 30 days, which `grant_type=refresh_token` exchanges for a fresh access token after checking
//! that the account is still enabled.
//!
//! A *delegated credential* ([`TokenService::delegate`]) lets a program the registry calls (a
//! scanner adapter) pull what the registry chose and nothing else: a JWT for the audience
//! `<issuer>:delegated` naming its subject and access, short-lived. Presented as the password
//! of its subject at the token endpoint (Basic credentials, as Harbor's robot accounts are
//! handed to scanners), it is exchanged for tokens granting at most that access.

use std::sync::Arc;
use std::time::Duration;

use registry_core::Scope;
use serde::Serialize;

use crate::error::AuthError;
use crate::identity::Identity;
use crate::policy::{AccessPolicy, Authenticator};
use crate::token::{TokenIssuer, TokenVerifier};

/// Lifetime of refresh tokens.
pub const REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// How the client proves who it is.
#[derive(Clone)]
pub enum Grant {
    /// No credentials.
    Anonymous,
    /// User or robot name and password or secret.
    Password {
        /// The account.
        username: String,
        /// The password or secret.
        password: String,
    },
    /// A refresh token from an earlier response.
    RefreshToken(String),
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Anonymous => f.write_str("Anonymous"),
            Grant::Password { username, .. } => write!(f, "Password({username}, <redacted>)"),
            Grant::RefreshToken(_) => f.write_str("RefreshToken(<redacted>)"),
        }
    }
}

/// A token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The credentials.
    pub grant: Grant,
    /// The `service` parameter, which must name this registry when given.
    pub service: Option<String>,
    /// The requested scopes.
    pub scopes: Vec<Scope>,
    /// Whether a refresh token is wanted.
    pub offline: bool,
}

/// The token endpoint's JSON response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The token (Docker's name).
    pub token: String,
    /// The same token (OAuth2's name).
    pub access_token: String,
    /// Seconds the token is valid.
    pub expires_in: u64,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// A refresh token, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Issues tokens for one registry service.
#[derive(Clone)]
pub struct TokenService {
    issuer: TokenIssuer,
    refresh_issuer: TokenIssuer,
    refresh_verifier: TokenVerifier,
    delegated_verifier: TokenVerifier,
    /// The services tokens are issued for; the first is the default.
    audiences: Vec<String>,
    authenticator: Arc<dyn Authenticator>,
    policy: Arc<dyn AccessPolicy>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A token service for the registry `audience`.
    pub fn new(
        issuer: TokenIssuer,
        audience: impl Into<String>,
        authenticator: Arc<dyn Authenticator>,
        policy: Arc<dyn AccessPolicy>,
    ) -> TokenService {
        let refresh_audience = format!("{}:refresh", issuer.issuer());
        let refresh_issuer = TokenIssuer::new(issuer.key().clone(), issuer.issuer(), REFRESH_LIFETIME);
        let refresh_verifier = TokenVerifier::new([issuer.key().public_key()], issuer.issuer(), refresh_audience);
        let delegated_verifier =
            TokenVerifier::new([issuer.key().public_key()], issuer.issuer(), format!("{}:delegated", issuer.issuer()));
        TokenService {
            issuer,
            refresh_issuer,
            refresh_verifier,
            delegated_verifier,
            audiences: vec![audience.into()],
            authenticator,
            policy,
        }
    }

    /// Also issues tokens for these services (other registries that trust this token service,
    /// e.g. a distribution registry configured with this realm).
    pub fn with_services(mut self, services: impl IntoIterator<Item = String>) -> TokenService {
        for s in services {
            if !self.audiences.contains(&s) {
                self.audiences.push(s);
            }
        }
        self
    }

    /// The default audience (this registry's service name).
    pub fn audience(&self) -> &str {
        &self.audiences[0]
    }

    /// The issuer.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }

    /// A delegated credential: `subject` may pull (or otherwise act on) `scopes`, and nothing
    /// else, for `lifetime`; the password of `subject` at the token endpoint (see the module).
    pub fn delegate(&self, subject: &str, scopes: &[Scope], lifetime: Duration) -> Result<String, AuthError> {
        let issuer = TokenIssuer::new(self.issuer.key().clone(), self.issuer.issuer(), lifetime);
        Ok(issuer.issue(subject, &format!("{}:delegated", self.issuer.issuer()), scopes)?.0)
    }

    /// An access token for this registry granting `scopes` to `subject` for `lifetime`,
    /// outright (what a program the registry calls is handed when it takes bearer tokens).
    pub fn access_token(&self, subject: &str, scopes: &[Scope], lifetime: Duration) -> Result<String, AuthError> {
        let issuer = TokenIssuer::new(self.issuer.key().clone(), self.issuer.issuer(), lifetime);
        Ok(issuer.issue(subject, self.audience(), scopes)?.0)
    }

    /// Handles a token request.
    pub async fn issue(&self, request: TokenRequest) -> Result<TokenResponse, AuthError> {
        let audience = match &request.service {
            Some(service) if self.audiences.contains(service) => service.clone(),
            Some(service) => return Err(AuthError::Invalid(format!("unknown service {service:?}"))),
            None => self.audiences[0].clone(),
        };
        if let Grant::Password { username, password } = &request.grant
            && let Ok(delegated) = self.delegated_verifier.verify(password)
            && delegated.claims.sub == *username
        {
            // A delegated credential: what it names, of what is asked; never a refresh token.
            let granted: Vec<Scope> = Scope::merge(request.scopes)
                .into_iter()
                .map(|mut scope| {
                    scope.actions.retain(|a| delegated.allows(&scope.resource_type, &scope.name, a));
                    scope
                })
                .filter(|scope| !scope.actions.is_empty())
                .collect();
            let (token, claims) = self.issuer.issue(username, &audience, &granted)?;
            tracing::info!(subject = %username, granted = %granted.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "), "delegated token issued");
            return Ok(TokenResponse {
                access_token: token.clone(),
                token,
                expires_in: claims.exp - claims.iat,
                issued_at: registry_core::time::rfc3339(claims.iat),
                refresh_token: None,
            });
        }
        let identity = match &request.grant {
            Grant::Anonymous => Identity::Anonymous,
            Grant::Password { username, password } => self.authenticator.authenticate(username, password).await?,
            Grant::RefreshToken(token) => {
                let verified = self.refresh_verifier.verify(token).map_err(|_| AuthError::InvalidCredentials)?;
                self.authenticator.lookup(&verified.claims.sub).await?
            }
        };
        let mut granted = Vec::new();
        for scope in Scope::merge(request.scopes) {
            granted.push(self.policy.grant(&identity, &scope).await?);
        }
        let (token, claims) = self.issuer.issue(identity.subject(), &audience, &granted)?;
        tracing::info!(
            subject = identity.subject(),
            granted = %granted.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            "token issued"
        );
        let refresh_token = if request.offline && identity != Identity::Anonymous {
            Some(self.refresh_issuer.issue(identity.subject(), &format!("{}:refresh", self.issuer.issuer()), &[])?.0)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: claims.exp - claims.iat,
            issued_at: registry_core::time::rfc3339(claims.iat),
            refresh_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Accounts;
    use crate::model::Role;
    use crate::token::TokenKey;

    /// A token service over `accounts` and the verifier of its tokens.
    fn service_of(accounts: &Accounts) -> (TokenService, TokenVerifier) {
        let key = TokenKey::generate().expect("key");
        let verifier = TokenVerifier::new([key.public_key()], "tokens", "registry");
        let service = TokenService::new(
            TokenIssuer::new(key, "tokens", Duration::from_secs(300)),
            "registry",
            Arc::new(accounts.clone()),
            Arc::new(accounts.clone()),
        );
        (service, verifier)
    }

    #[tokio::test]
    async fn grants_the_intersection_and_refreshes() {
        let accounts = Accounts::in_memory();
        accounts.create_project("team", false).await.expect("project");
        accounts.add_user("dev", "password1", false).await.expect("user");
        accounts.add_member("team", "dev", Role::Developer, None).await.expect("member");
        let (service, verifier) = service_of(&accounts);
        let request = |grant: Grant, offline: bool| TokenRequest {
            grant,
            service: Some("registry".into()),
            scopes: vec![Scope::parse("repository:team/app:pull,push,delete").expect("scope")],
            offline,
        };
        let password = Grant::Password { username: "dev".into(), password: "password1".into() };
        let response = service.issue(request(password.clone(), true)).await.expect("token");
        assert_eq!(response.token, response.access_token);
        assert!(response.expires_in >= 60);
        let token = verifier.verify(&response.token).expect("verifies");
        assert_eq!(token.claims.access[0].actions, vec!["pull", "push"], "asking for more grants less");

        let refreshed = service
            .issue(request(Grant::RefreshToken(response.refresh_token.clone().expect("refresh token")), false))
            .await
            .expect("refresh");
        assert!(verifier.verify(&refreshed.token).is_ok());
        assert!(
            service.issue(request(Grant::RefreshToken(response.token.clone()), false)).await.is_err(),
            "an access token is not a refresh token"
        );
        accounts.set_user_enabled("dev", false).await.expect("disable");
        let refresh = Grant::RefreshToken(response.refresh_token.expect("refresh token"));
        assert!(service.issue(request(refresh, false)).await.is_err(), "disabled users cannot refresh");

        let anonymous = service.issue(request(Grant::Anonymous, true)).await.expect("anonymous token");
        assert!(verifier.verify(&anonymous.token).expect("verifies").claims.access.is_empty());
        assert!(anonymous.refresh_token.is_none());
        let bad = Grant::Password { username: "dev".into(), password: "nope".into() };
        assert!(matches!(service.issue(request(bad, false)).await, Err(AuthError::InvalidCredentials)));
        let mut other = request(Grant::Anonymous, false);
        other.service = Some("elsewhere".into());
        assert!(service.issue(other).await.is_err());
    }

    #[tokio::test]
    async fn a_delegated_credential_grants_what_it_names_and_nothing_else() {
        let (service, verifier) = service_of(&Accounts::in_memory());
        let pull = Scope::parse("repository:team/app:pull").expect("scope");
        let credential = service.delegate("scanner.7", &[pull], Duration::from_secs(60)).expect("delegate");
        let ask = |username: &str, password: &str, scopes: &[&str]| TokenRequest {
            grant: Grant::Password { username: username.into(), password: password.into() },
            service: None,
            scopes: scopes.iter().map(|s| Scope::parse(s).expect("scope")).collect(),
            offline: true,
        };
        let response = service
            .issue(ask("scanner.7", &credential, &["repository:team/app:pull,push", "repository:team/other:pull"]))
            .await
            .expect("exchanged");
        assert!(response.refresh_token.is_none());
        let token = verifier.verify(&response.token).expect("verifies");
        assert_eq!(token.claims.access.len(), 1, "{:?}", token.claims.access);
        assert_eq!(
            (token.claims.access[0].name.as_str(), token.claims.access[0].actions.clone()),
            ("team/app", vec!["pull".to_owned()])
        );
        assert!(
            matches!(
                service.issue(ask("someone", &credential, &["repository:team/app:pull"])).await,
                Err(AuthError::InvalidCredentials)
            ),
            "only for its subject"
        );
        assert!(verifier.verify(&credential).is_err(), "not an access token itself");
        let access = service.issue(ask("scanner.7", &response.token, &["repository:team/app:pull"])).await;
        assert!(matches!(access, Err(AuthError::InvalidCredentials)), "an access token is not a credential");
    }
}
