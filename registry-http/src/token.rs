//! Token authentication on the HTTP side: [`TokenAuth`] (how this server verifies tokens and,
//! when it issues them, its token service), the token endpoint (`GET` per Docker's token spec and
//! the OAuth2 `POST` form that containerd tries first) and the JWKS.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use registry_auth::{
    AccessPolicy, AccessPolicyExt, AuthError, Authenticator, Credentials, Grant, ProjectState, PublicKey, TokenRequest,
    TokenService, TokenVerifier,
};
use registry_core::event::{Event, EventAction, Operator, Resource};
use registry_core::{Action, ErrorCode, Scope};

use crate::error::ApiError;
use crate::layers::{BoxService, service_fn};
use crate::request::{Query, RequestBody, read_limited};
use crate::response::{ResponseBody, json_bytes};

/// Path of the token endpoint inside the server (the realm, when the server issues tokens).
pub const TOKEN_PATH: &str = "/auth/token";
/// Path of the JWKS with the token service's public keys.
pub const JWKS_PATH: &str = "/auth/jwks";
/// Name of the built-in token service (the tokens' `iss`).
pub const ISSUER: &str = "registry-token-service";

/// Token authentication of a server: where clients get tokens, how they are verified, and what
/// the server knows of accounts to answer questions tokens cannot (the catalog's filter, missing
/// projects).
pub struct TokenAuth {
    /// The token endpoint clients are sent to (absolute URL).
    pub(crate) realm: String,
    /// The service name: the tokens' audience.
    pub(crate) service: String,
    /// Verifies tokens (holds the trusted public keys).
    pub(crate) verifier: TokenVerifier,
    /// The keys published at [`JWKS_PATH`].
    pub(crate) public_keys: Vec<PublicKey>,
    /// The token service, when this server issues tokens.
    pub(crate) issuer: Option<Arc<TokenService>>,
    /// Who accounts are, when this server knows them.
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// What they may do, when this server knows it.
    pub(crate) policy: Option<Arc<dyn AccessPolicy>>,
    /// Where login events go (the engine's batched events), when this server records them.
    pub(crate) events: Option<registry_storage::Registry>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("realm", &self.realm)
            .field("service", &self.service)
            .field("issues", &self.issuer.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenAuth {
    /// The token endpoint's URL.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The service name (audience).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Keeps of `names` those `subject` may pull, when this server knows the accounts; all of
    /// them otherwise (the token's catalog scope decided).
    pub(crate) async fn visible(&self, subject: &str, names: Vec<String>) -> Result<Vec<String>, ApiError> {
        let (Some(authenticator), Some(policy)) = (&self.authenticator, &self.policy) else { return Ok(names) };
        let who = match authenticator.lookup(subject).await {
            Ok(who) => who,
            Err(AuthError::InvalidCredentials) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if who.is_admin() {
            return Ok(names);
        }
        let mut visible = Vec::with_capacity(names.len());
        for name in names {
            if policy.may(&who, &name, Action::Pull).await? {
                visible.push(name);
            }
        }
        Ok(visible)
    }
}

/// The token endpoint and the JWKS as a service.
pub(crate) fn service(auth: Arc<TokenAuth>) -> BoxService {
    service_fn(move |req: Request<RequestBody>| {
        let auth = auth.clone();
        async move {
            let head = req.method() == Method::HEAD;
            let result = match req.uri().path() {
                JWKS_PATH => jwks(&auth),
                TOKEN_PATH => token_endpoint(&auth, req).await,
                _ => Err(ApiError::no_such_endpoint()),
            };
            result.unwrap_or_else(|e| e.into_response(head))
        }
    })
}

fn jwks(auth: &TokenAuth) -> Result<Response<ResponseBody>, ApiError> {
    if auth.issuer.is_none() {
        return Err(ApiError::no_such_endpoint());
    }
    Ok(json_bytes(StatusCode::OK, registry_auth::token::jwks(&auth.public_keys).into_bytes()))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, message).with_status(StatusCode::BAD_REQUEST)
}

fn scopes(values: impl Iterator<Item = impl AsRef<str>>) -> Result<Vec<Scope>, ApiError> {
    let mut out = Vec::new();
    for s in values {
        out.extend(Scope::parse_list(s.as_ref()).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

fn get_request(query: &Query, headers: &HeaderMap) -> Result<TokenRequest, ApiError> {
    let header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let grant = match Credentials::from_authorization(header) {
        Credentials::Basic { username, password } => Grant::Password { username, password },
        _ => Grant::Anonymous,
    };
    Ok(TokenRequest {
        grant,
        service: query.get("service").map(str::to_owned),
        scopes: scopes(query.all("scope"))?,
        offline: query.get("offline_token") == Some("true"),
    })
}

fn post_request(form: &Bytes) -> Result<TokenRequest, ApiError> {
    let form = Query::parse(&String::from_utf8_lossy(form));
    let field = |k: &str| form.get(k).unwrap_or_default().to_owned();
    let grant = match form.get("grant_type") {
        Some("password") => Grant::Password { username: field("username"), password: field("password") },
        Some("refresh_token") => Grant::RefreshToken(field("refresh_token")),
        other => return Err(bad(format!("unsupported grant_type {other:?}: use password or refresh_token"))),
    };
    Ok(TokenRequest {
        grant,
        service: form.get("service").map(str::to_owned),
        scopes: scopes(form.all("scope"))?,
        offline: form.get("access_type") == Some("offline"),
    })
}

/// Records a login with a password, success or not, never the password: the name tried (for a
/// failure, whether such an account exists is not said) and the client's address. Errors other
/// than wrong credentials and lockout (a store's fault) are not logins and are not recorded.
pub(crate) fn record_login(
    events: &registry_storage::Registry,
    name: &str,
    address: Option<String>,
    outcome: Result<(), &AuthError>,
) {
    let action = match outcome {
        Ok(()) => EventAction::LoginSuccess,
        Err(AuthError::InvalidCredentials | AuthError::RateLimited { .. }) => EventAction::LoginFailure,
        Err(_) => return,
    };
    let operator = Operator::named(name, address);
    let resource = Resource { name: Some(name.to_owned()), ..Resource::default() };
    events.record_event(Event::new(registry_core::time::now_millis(), operator, action, resource));
}

async fn token_endpoint(auth: &TokenAuth, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let address = crate::request::client_ip(&req);
    let Some(service) = &auth.issuer else {
        return Err(
            ApiError::new(ErrorCode::Unsupported, "this server issues no tokens").with_status(StatusCode::NOT_FOUND)
        );
    };
    let request = match *req.method() {
        Method::GET => get_request(&Query::of(&req), req.headers())?,
        Method::POST => post_request(&read_limited(req.into_body(), 64 << 10).await?)?,
        _ => return Err(ApiError::new(ErrorCode::Unsupported, "use GET or POST")),
    };
    let asked: Vec<Scope> = request.scopes.clone();
    let signed_in = !matches!(request.grant, Grant::Anonymous);
    let login = match &request.grant {
        Grant::Password { username, .. } => Some(username.clone()),
        _ => None,
    };
    let issued = service.issue(request).await;
    if let (Some(name), Some(events)) = (&login, &auth.events) {
        // Every login with a password (a `docker login`, each pull's token).
        record_login(events, name, address, issued.as_ref().map(|_| ()));
    }
    let response = match issued {
        Ok(response) => response,
        Err(AuthError::RateLimited { retry_after_secs }) => {
            return Err(ApiError::new(ErrorCode::TooManyRequests, "too many failed logins; retry later")
                .with_header(RETRY_AFTER, retry_after_secs.to_string()));
        }
        Err(AuthError::Invalid(m)) => return Err(bad(m)),
        Err(e @ (AuthError::Backend(_) | AuthError::Unavailable(_))) => return Err(e.into()),
        Err(e) => {
            tracing::info!(reason = %e, "login refused");
            return Err(ApiError::new(ErrorCode::Unauthorized, "invalid credentials")
                .with_header(WWW_AUTHENTICATE, format!("Basic realm=\"{}\"", auth.service)));
        }
    };
    let mut body = serde_json::to_value(&response)
        .map_err(|e| ApiError::from(registry_core::BackendError::permanent("encoding a token response", e)))?;
    // A signed-in caller asking for a project that does not exist is told so beside the token
    // (which grants nothing there): clients show only the registry's answer, which says it too
    // (`distribution::access`), but a person reading the token response learns it here.
    if let Some(policy) = auth.policy.as_ref().filter(|_| signed_in) {
        let mut denied = Vec::new();
        for scope in asked.iter().filter(|s| s.resource_type == "repository") {
            if let ProjectState::Missing { project } = policy.project_state(&scope.name).await? {
                tracing::info!(project = %project, scope = %scope, "token requested for a missing project");
                denied.push(serde_json::json!({
                    "scope": scope.to_string(),
                    "reason": format!("project {project} not found: create it first"),
                }));
            }
        }
        if !denied.is_empty() {
            body["denied"] = serde_json::Value::Array(denied);
        }
    }
    Ok(json_bytes(StatusCode::OK, body.to_string().into_bytes()))
}
