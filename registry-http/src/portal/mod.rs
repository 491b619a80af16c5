//! The web portal: its pages (embedded in the binary, see [`assets`]) at `/` and `/portal/…`,
//! and Harbor's session endpoints for the browser:
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /c/login` | `principal`, `password` (form or JSON): sets the session cookie; the user and the CSRF token |
//! | `POST /c/log_out` | removes the cookie (with the CSRF token) |
//! | `GET /c/session` | who the cookie proves and its CSRF token, or `user: null`; the first-start hint; the sign-in mode |
//! | `/c/oidc/…` | signing in through an OpenID Connect provider (see `oidc`) |
//!
//! Everything else the pages show comes from the management API, which takes the session cookie
//! (see [`crate::session`]). Signing in is checked by the same authenticator, with the same lockout
//! and the same login events, as the token service. Every answer carries a strict
//! Content-Security-Policy: scripts, styles and images from this origin only, no inline code, no
//! framing.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use registry_auth::{Accounts, AuthError, Authenticator, Identity};
use registry_storage::Registry;
use serde_json::json;

use crate::error::ApiError;
use crate::layers::{BoxService, service_fn};
use crate::request::{Query, RequestBody, read_limited};
use crate::response::{ResponseBody, full, json, set};
use crate::session::{Sessions, cookie_of};

pub mod assets;
#[cfg(feature = "oidc")]
mod oidc;

/// The policy every portal answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Whether a path belongs to the portal.
pub(crate) fn owns(path: &str) -> bool {
    path == "/" || path.starts_with("/portal/") || path.starts_with("/c/")
}

/// What the portal's endpoints need.
pub(crate) struct Portal {
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) sessions: Sessions,
    pub(crate) accounts: Option<Accounts>,
    /// Where login events go (and the settings are read).
    pub(crate) events: Registry,
    /// The registry's external URL (the provider returns to it).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) base: String,
    /// The key the sign-in flow's cookies are sealed with.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) key: registry_auth::SecretKey,
}

/// The portal as one service.
pub(crate) fn service(portal: Arc<Portal>) -> BoxService {
    service_fn(move |req: Request<RequestBody>| {
        let portal = portal.clone();
        async move {
            let head = req.method() == Method::HEAD;
            let mut response = route(&portal, req).await.unwrap_or_else(|e| e.into_response(head));
            secure_headers(response.headers_mut());
            response
        }
    })
}

fn secure_headers(headers: &mut http::HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

async fn route(portal: &Portal, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/") => asset("index.html", req.headers()),
        (Method::GET | Method::HEAD, p) if p.starts_with("/portal/") => asset(&p["/portal/".len()..], req.headers()),
        (Method::POST, "/c/login") => login(portal, req).await,
        (Method::POST, "/c/log_out") => log_out(portal, &req),
        (Method::GET, "/c/session") => session(portal, &req).await,
        #[cfg(feature = "oidc")]
        (Method::GET, "/c/oidc/login") => oidc::login(portal, req).await,
        #[cfg(feature = "oidc")]
        (Method::GET, "/c/oidc/callback") => oidc::callback(portal, req).await,
        #[cfg(feature = "oidc")]
        (Method::POST, "/c/oidc/onboard") => oidc::onboard_chosen(portal, req).await,
        (_, "/c/login" | "/c/log_out" | "/c/session") => {
            Err(ApiError::harbor(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed here", req.method())))
        }
        _ => Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("no such page {path}"))),
    }
}

fn asset(name: &str, headers: &http::HeaderMap) -> Result<Response<ResponseBody>, ApiError> {
    let Some(found) = assets::find(name) else {
        return Err(ApiError::harbor(StatusCode::NOT_FOUND, format!("no such file {name}")));
    };
    let etag = format!("\"{}\"", found.etag);
    let unchanged = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if unchanged {
        crate::response::status_only(StatusCode::NOT_MODIFIED)
    } else {
        let mut r = Response::new(full(Bytes::from_static(found.bytes)));
        set(r.headers_mut(), header::CONTENT_TYPE, found.content_type);
        r
    };
    // The page revalidates each time (so a new binary's portal shows at once); its parts too,
    // cheaply, by their ETag.
    set(response.headers_mut(), header::CACHE_CONTROL, "no-cache");
    set(response.headers_mut(), header::ETAG, &etag);
    Ok(response)
}

/// Whether a request says its body is JSON (a form from another site cannot).
fn sends_json(req: &Request<RequestBody>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `POST /c/login`.
async fn login(portal: &Portal, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let Some(authenticator) = &portal.authenticator else {
        return Err(ApiError::harbor(StatusCode::NOT_FOUND, "this registry has no accounts to sign in with"));
    };
    let address = crate::request::client_ip(&req);
    let is_json = sends_json(&req);
    let body = read_limited(req.into_body(), 16 << 10).await?;
    let (principal, password) = if is_json {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::harbor(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
        (field("principal"), field("password"))
    } else {
        let form = Query::parse(&String::from_utf8_lossy(&body));
        (form.get("principal").unwrap_or_default().to_owned(), form.get("password").unwrap_or_default().to_owned())
    };
    if principal.is_empty() || password.is_empty() {
        return Err(ApiError::harbor(StatusCode::BAD_REQUEST, "principal (the user name) and password are required"));
    }
    let outcome = authenticator.authenticate(&principal, &password).await;
    crate::token::record_login(&portal.events, &principal, address, outcome.as_ref().map(|_| ()));
    let who = match outcome {
        Ok(who @ Identity::User { .. }) => who,
        Ok(_) => {
            return Err(ApiError::harbor(StatusCode::FORBIDDEN, "robot accounts cannot sign in to the portal"));
        }
        Err(AuthError::RateLimited { retry_after_secs }) => {
            return Err(ApiError::harbor(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed sign-ins for {principal}; try again in {retry_after_secs} s"),
            )
            .with_header(header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        Err(AuthError::InvalidCredentials | AuthError::NotFound { .. }) => {
            return Err(ApiError::harbor(StatusCode::UNAUTHORIZED, "invalid user name or password"));
        }
        Err(e) => return Err(e.into()),
    };
    signed_in_answer(portal, &principal, who.is_admin(), json!({}))
}

/// A new session cookie's value for `user`.
fn new_session(portal: &Portal, user: &str) -> Result<String, ApiError> {
    portal
        .sessions
        .issue(user, registry_core::time::now_secs())
        .ok_or_else(|| ApiError::from(registry_core::BackendError::message("sealing a session", false)))
}

/// The answer to a sign-in: the session cookie set, the user, their CSRF token, and `extra`'s
/// fields.
fn signed_in_answer(
    portal: &Portal,
    user: &str,
    admin: bool,
    mut extra: serde_json::Value,
) -> Result<Response<ResponseBody>, ApiError> {
    let cookie = new_session(portal, user)?;
    extra["username"] = json!(user);
    extra["sysadmin_flag"] = json!(admin);
    extra["csrf_token"] = json!(crate::session::csrf_of(&cookie));
    let mut response = json(StatusCode::OK, &extra);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&portal.sessions.set_cookie(&cookie))
            .map_err(|e| registry_core::BackendError::permanent("a cookie header", e))?,
    );
    set(response.headers_mut(), header::CACHE_CONTROL, "no-store");
    Ok(response)
}

/// `POST /c/log_out`: a cookie that still opens needs its CSRF token (another site cannot sign
/// the user out).
fn log_out(portal: &Portal, req: &Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    if let Some(session) =
        cookie_of(req.headers()).and_then(|c| portal.sessions.open(c, registry_core::time::now_secs()))
        && !crate::session::csrf_matches(req.headers(), &session)
    {
        return Err(ApiError::harbor(StatusCode::FORBIDDEN, "CSRF token invalid: send X-Harbor-CSRF-Token"));
    }
    let mut response = crate::response::status_only(StatusCode::OK);
    set(response.headers_mut(), header::SET_COOKIE, &portal.sessions.clear_cookie());
    Ok(response)
}

/// `GET /c/session`.
async fn session(portal: &Portal, req: &Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let signed = match &portal.authenticator {
        Some(authenticator) => {
            crate::session::signed_in(authenticator.as_ref(), &portal.sessions, req.headers()).await?
        }
        None => None,
    };
    let user = signed.as_ref().map(|(who, s)| json!({"username": s.user, "sysadmin_flag": who.is_admin()}));
    let settings = registry_platform::settings::SystemSettings::load(&**portal.events.metadata_store()).await?;
    let csrf = signed.map(|(_, s)| s.csrf);
    let mut response = json(
        StatusCode::OK,
        &json!({
            "user": user,
            "csrf_token": csrf,
            "first_start": first_start(portal).await?,
            "accounts": portal.authenticator.is_some(),
            "auth_mode": settings.auth_mode,
            "oidc_name": if settings.auth_mode == registry_platform::signin::OIDC_AUTH { Some(settings.oidc_name) } else { None },
        }),
    );
    set(response.headers_mut(), header::CACHE_CONTROL, "no-store");
    Ok(response)
}

/// Whether the admin made at the first start still has the password printed then.
async fn first_start(portal: &Portal) -> Result<bool, ApiError> {
    let Some(accounts) = &portal.accounts else { return Ok(false) };
    Ok(accounts.user("admin").await?.is_some_and(|u| u.password_changed_at <= u.created_at))
}
