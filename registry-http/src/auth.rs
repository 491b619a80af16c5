//! Token authentication on the HTTP side: the `WWW-Authenticate` challenge, bearer verification
//! on every request, and the token endpoint's HTTP face (`GET` per Docker's token spec and the
//! OAuth2 `POST` form that containerd tries first).
//!
//! Every auth failure looks the same to the client (401 `UNAUTHORIZED`, with
//! `error="invalid_token"` or `error="insufficient_scope"` when a token was sent, which tells
//! containerd to fetch a new one); the reason goes to the log only.
//!
//! **Long pushes.** A request on an existing upload session (`PATCH`, `PUT`, `GET`, `DELETE` of
//! `/blobs/uploads/<id>`) is accepted with a token that expired less than [`UPLOAD_GRACE`] ago,
//! provided it is otherwise valid and grants push on the repository: the session id is an
//! unguessable capability obtained under a valid token, so a multi-GB push is not lost to a
//! 5-minute token. Nothing else gets the grace.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use registry_auth::{AuthError, Credentials, Grant, TokenRequest, TokenService, TokenVerifier, token::jwks};
use registry_core::{ErrorCode, Scope};

use crate::response::{API_VERSION, ApiError, ResponseBody, full};

/// How long after expiry a token still authorizes requests on an upload session it could have
/// started.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(3600);

/// Path of the token endpoint inside the server (the realm, when the server issues tokens).
pub const TOKEN_PATH: &str = "/auth/token";
/// Path of the JWKS with the token service's public keys.
pub const JWKS_PATH: &str = "/auth/jwks";

/// Token authentication for a [`RegistryService`](crate::RegistryService).
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The token endpoint clients are sent to (absolute URL).
    pub realm: String,
    /// The service name: the tokens' audience.
    pub service: String,
    /// Verifies tokens (holds the trusted public keys).
    pub verifier: TokenVerifier,
    /// The token service, when this server issues tokens itself.
    pub token_service: Option<Arc<TokenService>>,
    /// The projects, when this server knows them: a token is then refused for a project that no
    /// longer exists or was created after the token was issued, so a deleted and re-created
    /// project is never opened by old tokens.
    pub projects: Option<registry_auth::Accounts>,
}

/// Whether a token issued at `issued_at` predates a project created at `created_at` (both in
/// seconds). Tokens carry second precision: one issued within the very second a project was
/// re-created is accepted.
pub fn predates(issued_at: u64, created_at: u64) -> bool {
    issued_at < created_at
}

impl AuthSettings {
    fn challenge(&self, scopes: &[Scope], error: Option<&str>) -> String {
        let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", self.realm, self.service);
        if !scopes.is_empty() {
            let list: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            value.push_str(&format!(",scope=\"{}\"", list.join(" ")));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        value
    }

    fn unauthorized(&self, scopes: &[Scope], error: Option<&str>, message: &str) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, message).with_header(WWW_AUTHENTICATE, self.challenge(scopes, error))
    }

    /// Checks a request's bearer token against the scopes its route needs.
    pub(crate) async fn authorize(
        &self,
        headers: &HeaderMap,
        required: &[Scope],
        upload_session: bool,
    ) -> Result<registry_auth::VerifiedToken, ApiError> {
        let header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Credentials::Bearer(token) = Credentials::from_authorization(header) else {
            return Err(self.unauthorized(required, None, "authentication required"));
        };
        let now = registry_auth::token::now_secs();
        let verified = match self.verifier.verify_at(&token, now) {
            Ok(v) => v,
            Err(AuthError::InvalidToken { reason: "expired" }) if upload_session => {
                self.verifier.verify_with_grace(&token, now, UPLOAD_GRACE.as_secs()).map_err(|e| {
                    tracing::info!(reason = %e, "token refused");
                    self.unauthorized(required, Some("invalid_token"), "authentication required")
                })?
            }
            Err(e) => {
                tracing::info!(reason = %e, "token refused");
                return Err(self.unauthorized(required, Some("invalid_token"), "authentication required"));
            }
        };
        if let Some(missing) = required.iter().find(|s| !verified.covers(s)) {
            tracing::info!(subject = %verified.claims.sub, needed = %missing, "insufficient scope");
            return Err(self.unauthorized(required, Some("insufficient_scope"), "authentication required"));
        }
        if let Some(projects) = &self.projects {
            for scope in required.iter().filter(|s| s.resource_type == "repository") {
                let name = scope.name.split('/').next().unwrap_or_default();
                let project = projects.project(name).await.map_err(|e| {
                    tracing::error!(error = %e, "project lookup failed");
                    ApiError::new(ErrorCode::Unknown, "internal error; retry later")
                })?;
                if project.is_none_or(|p| predates(verified.claims.iat, p.created_at)) {
                    tracing::info!(subject = %verified.claims.sub, project = name, "token predates the project");
                    return Err(self.unauthorized(required, Some("invalid_token"), "authentication required"));
                }
            }
        }
        Ok(verified)
    }

    /// Answers the token service's endpoints ([`TOKEN_PATH`], [`JWKS_PATH`]) for `req`, whose
    /// path (after any prefix) is `path`; `None` for any other path.
    pub(crate) async fn token_paths<B>(
        &self,
        path: &str,
        req: http::Request<B>,
    ) -> Option<Result<Response<ResponseBody>, ApiError>>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<registry_storage::BodyError>,
    {
        if path == JWKS_PATH {
            return self.jwks().map(Ok);
        }
        if path != TOKEN_PATH {
            return None;
        }
        let query = crate::service::parse_query(req.uri().query().unwrap_or(""));
        let method = req.method().clone();
        let (parts, body) = req.into_parts();
        let form = if method == Method::POST {
            match crate::service::read_limited(body, 64 << 10).await {
                Ok(b) => Some(b),
                Err(e) => return Some(Err(e)),
            }
        } else {
            None
        };
        Some(self.token_endpoint(&method, &query, &parts.headers, form).await)
    }

    /// Keeps of `names` those the token's subject may pull, when this server knows the accounts
    /// (the built-in token service); all of them otherwise (the token's catalog scope decided).
    pub(crate) async fn visible_repositories(
        &self,
        token: &registry_auth::VerifiedToken,
        names: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        use registry_auth::AccessPolicy;
        let Some(accounts) = &self.projects else { return Ok(names) };
        let fault = |e: AuthError| {
            tracing::error!(error = %e, "catalog filtering failed");
            ApiError::new(ErrorCode::Unknown, "internal error; retry later")
        };
        let who = match accounts.active_identity(&token.claims.sub).await {
            Ok(who) => who,
            Err(AuthError::InvalidCredentials) => return Ok(Vec::new()),
            Err(e) => return Err(fault(e)),
        };
        if matches!(who, registry_auth::Identity::User { admin: true, .. }) {
            return Ok(names);
        }
        let mut visible = Vec::with_capacity(names.len());
        for name in names {
            let pull = Scope::repository(name.clone(), [registry_core::Action::Pull]);
            if !accounts.grant(&who, &pull).await.map_err(fault)?.actions.is_empty() {
                visible.push(name);
            }
        }
        Ok(visible)
    }

    /// The JWKS document of the trusted keys this server issues with.
    pub(crate) fn jwks(&self) -> Option<Response<ResponseBody>> {
        let service = self.token_service.as_ref()?;
        Some(json_response(StatusCode::OK, jwks(&[service.issuer().key().public_key()]).to_string()))
    }

    /// The token endpoint.
    pub(crate) async fn token_endpoint(
        &self,
        method: &Method,
        query: &[(String, String)],
        headers: &HeaderMap,
        form: Option<Bytes>,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let Some(service) = &self.token_service else {
            return Err(ApiError::new(ErrorCode::Unsupported, "this server issues no tokens")
                .with_status(StatusCode::NOT_FOUND));
        };
        let bad = |m: String| ApiError::new(ErrorCode::Unsupported, m).with_status(StatusCode::BAD_REQUEST);
        let request = match *method {
            Method::GET => {
                let header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let grant = match Credentials::from_authorization(header) {
                    Credentials::Basic { username, password } => Grant::Password { username, password },
                    _ => Grant::Anonymous,
                };
                let mut scopes = Vec::new();
                for (_, s) in query.iter().filter(|(k, _)| k == "scope") {
                    scopes.extend(Scope::parse_list(s).map_err(|e| bad(e.to_string()))?);
                }
                TokenRequest {
                    grant,
                    service: param(query, "service"),
                    scopes,
                    offline: param(query, "offline_token").as_deref() == Some("true"),
                }
            }
            Method::POST => {
                let form = crate::service::parse_query(&String::from_utf8_lossy(&form.unwrap_or_default()));
                let grant = match param(&form, "grant_type").as_deref() {
                    Some("password") => Grant::Password {
                        username: param(&form, "username").unwrap_or_default(),
                        password: param(&form, "password").unwrap_or_default(),
                    },
                    Some("refresh_token") => Grant::RefreshToken(param(&form, "refresh_token").unwrap_or_default()),
                    other => return Err(bad(format!("unsupported grant_type {other:?}"))),
                };
                TokenRequest {
                    grant,
                    service: param(&form, "service"),
                    scopes: Scope::parse_list(&param(&form, "scope").unwrap_or_default())
                        .map_err(|e| bad(e.to_string()))?,
                    offline: param(&form, "access_type").as_deref() == Some("offline"),
                }
            }
            _ => return Err(ApiError::new(ErrorCode::Unsupported, "use GET or POST")),
        };
        match service.issue(request).await {
            Ok(response) => {
                let body =
                    serde_json::to_string(&response).map_err(|e| ApiError::new(ErrorCode::Unknown, e.to_string()))?;
                Ok(json_response(StatusCode::OK, body))
            }
            Err(AuthError::RateLimited { retry_after_secs }) => {
                Err(ApiError::new(ErrorCode::TooManyRequests, "too many failed logins; retry later")
                    .with_header(RETRY_AFTER, retry_after_secs.to_string()))
            }
            Err(AuthError::Invalid(m)) => Err(bad(m)),
            Err(AuthError::Backend(m)) => {
                tracing::error!(error = %m, "token service fault");
                Err(ApiError::new(ErrorCode::Unknown, "internal error; retry later"))
            }
            Err(e) => {
                tracing::info!(reason = %e, "login refused");
                Err(ApiError::new(ErrorCode::Unauthorized, "invalid credentials")
                    .with_header(WWW_AUTHENTICATE, format!("Basic realm=\"{}\"", self.service)))
            }
        }
    }
}

fn param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn json_response(status: StatusCode, body: String) -> Response<ResponseBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// The token service alone, as its own server (`registry token-server`): `/auth/token`,
/// `/auth/jwks` and `/healthz`. Registries that trust it need only its public keys.
#[derive(Clone, Debug)]
pub struct TokenServer {
    auth: Arc<AuthSettings>,
}

impl TokenServer {
    /// A token server for `auth`, which must carry a token service.
    pub fn new(auth: AuthSettings) -> TokenServer {
        TokenServer { auth: Arc::new(auth) }
    }

    async fn handle<B>(&self, req: http::Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<registry_storage::BodyError>,
    {
        let head = req.method() == Method::HEAD;
        let path = req.uri().path().to_owned();
        let mut response = if path == "/healthz" {
            json_response(StatusCode::OK, "{}".into())
        } else {
            match self.auth.token_paths(&path, req).await {
                Some(Ok(r)) => r,
                Some(Err(e)) => e.into_response(head),
                None => ApiError::new(ErrorCode::Unsupported, "no such endpoint")
                    .with_status(StatusCode::NOT_FOUND)
                    .into_response(head),
            }
        };
        response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        tracing::info!(path = %path, status = response.status().as_u16(), "token service request");
        response
    }
}

impl<B> tower_service::Service<http::Request<B>> for TokenServer
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<registry_storage::BodyError>,
{
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// Settings for a registry that trusts an external token service: it verifies tokens with the
/// public keys of `jwks` (a JWKS document, e.g. a token server's `/auth/jwks`) and sends clients
/// to `realm`.
pub fn external(
    realm: String,
    service: String,
    issuer: &str,
    jwks: &serde_json::Value,
) -> Result<AuthSettings, AuthError> {
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| AuthError::Config("JWKS: no \"keys\" array".into()))?
        .iter()
        .map(registry_auth::PublicKey::from_jwk)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(AuthError::Config("JWKS: no keys".into()));
    }
    let verifier = TokenVerifier::new(keys, issuer, service.clone());
    Ok(AuthSettings { realm, service, verifier, token_service: None, projects: None })
}

/// Name of the built-in token service (the tokens' `iss`).
pub const ISSUER: &str = "registry-token-service";

/// The built-in token service: accounts as authenticator and policy, a signing key, and the
/// names under which clients reach it.
#[derive(Debug, Clone)]
pub struct BuiltInTokenService {
    /// Users, projects, members, robots.
    pub accounts: registry_auth::Accounts,
    /// The signing key.
    pub key: registry_auth::TokenKey,
    /// The key's certificate (DER), sent as the tokens' `x5c` so that registries verifying
    /// against a root bundle (distribution) accept them.
    pub certificate_der: Option<Vec<u8>>,
    /// The token endpoint URL given to clients.
    pub realm: String,
    /// This registry's service name (the default audience).
    pub service: String,
    /// Other registries' service names this token service also issues for.
    pub also_issue_for: Vec<String>,
    /// Access token lifetime.
    pub token_lifetime: Duration,
    /// How tokens name the key (`kid`).
    pub kid_format: registry_auth::KidFormat,
}

impl BuiltInTokenService {
    /// The settings for a server that issues and verifies its own tokens.
    pub fn into_settings(self) -> AuthSettings {
        let verifier = TokenVerifier::new([self.key.public_key()], ISSUER, self.service.clone());
        let mut issuer =
            registry_auth::TokenIssuer::new(self.key, ISSUER, self.token_lifetime).with_kid_format(self.kid_format);
        if let Some(der) = self.certificate_der {
            issuer = issuer.with_certificate_chain(&[der]);
        }
        let projects = self.accounts.clone();
        let accounts = Arc::new(self.accounts);
        let token_service = TokenService::new(issuer, self.service.clone(), accounts.clone(), accounts)
            .with_services(self.also_issue_for);
        AuthSettings {
            realm: self.realm,
            service: self.service,
            verifier,
            token_service: Some(Arc::new(token_service)),
            projects: Some(projects),
        }
    }
}

/// A self-signed certificate for the token signing key (PEM and DER), valid for a century: the
/// root bundle other registries use to verify this service's tokens.
pub fn token_certificate(key: &registry_auth::TokenKey) -> Result<(String, Vec<u8>), AuthError> {
    let config = |e: rcgen::Error| AuthError::Config(format!("token certificate: {e}"));
    let key_pair = rcgen::KeyPair::from_pem(&key.to_pem()?).map_err(config)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(config)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, ISSUER);
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    let cert = params.self_signed(&key_pair).map_err(config)?;
    Ok((cert.pem(), cert.der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_older_than_their_project_are_refused() {
        assert!(predates(1_000, 1_001), "issued before the (re-)creation");
        assert!(!predates(1_001, 1_001), "same second: accepted");
        assert!(!predates(2_000, 1_001));
    }
}
