//! Signing in through an OpenID Connect provider in the browser (Harbor's `oidc_auth`):
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /c/oidc/login?redirect_url=/path` | to the provider, with PKCE, a nonce and a state kept in a sealed cookie |
//! | `GET /c/oidc/callback?code&state` | the code exchanged, the ID token verified; signed in, or asked for a user name |
//! | `POST /c/oidc/onboard` | `{username}`: the user made with the name chosen (when onboarding is not automatic) |
//!
//! What a sign-in carries between these steps lives in cookies sealed with the registry's key
//! (`SameSite=Lax`, so the provider's redirect brings them back; `Path=/c/oidc`): any replica
//! finishes a sign-in another began, and nothing is stored until it succeeds. Every outcome is in
//! the audit log as a login success or failure, without secrets.

use http::{Request, Response, StatusCode, header};
use registry_auth::{AuthError, OidcLink, Profile, SecretKey};
use registry_platform::oidc::{OidcConfig, Pending};
use registry_platform::settings::SystemSettings;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Portal;
use crate::error::ApiError;
use crate::request::{Query, RequestBody, read_limited};
use crate::response::{ResponseBody, set, status_only};

/// The cookie of a sign-in begun.
const PENDING: &str = "oidc_pending";
/// The cookie of a person choosing their user name.
const ONBOARDING: &str = "oidc_onboarding";
/// How long a sign-in may take, in seconds.
const FLOW_SECS: u64 = 600;

/// A person the provider signed in who is choosing a user name here.
#[derive(Serialize, Deserialize)]
struct Onboarding {
    suggested: String,
    email: String,
    realname: String,
    admin: bool,
    groups: Vec<String>,
    link: OidcLink,
    then: String,
    expires_at: u64,
}

fn now() -> u64 {
    registry_core::time::now_secs()
}

fn bad(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::harbor(status, message)
}

/// The provider's configuration, when it is the sign-in mode.
async fn config(portal: &Portal) -> Result<(OidcConfig, &SecretKey), ApiError> {
    let settings = SystemSettings::load(&**portal.events.metadata_store()).await?;
    if settings.auth_mode != registry_platform::signin::OIDC_AUTH {
        return Err(bad(StatusCode::NOT_FOUND, "this registry does not sign in through an OIDC provider (auth_mode)"));
    }
    let config = OidcConfig::of(&settings, Some(&portal.key)).map_err(|e| bad(StatusCode::SERVICE_UNAVAILABLE, e.0))?;
    Ok((config, &portal.key))
}

fn redirect_uri(portal: &Portal) -> String {
    format!("{}/c/oidc/callback", portal.base)
}

/// A path of this registry to return to (anything else: the start page).
fn local_path(wanted: Option<&str>) -> String {
    match wanted {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.contains(['\r', '\n']) => {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A cookie of the flow holding `value` (empty and expired: removed).
fn flow_cookie(portal: &Portal, name: &str, value: &str) -> String {
    let secure = if portal.base.starts_with("https://") { "; Secure" } else { "" };
    let age = if value.is_empty() { 0 } else { FLOW_SECS };
    format!("{name}={value}; Path=/c/oidc; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
}

/// The sealed JSON a flow cookie holds, if it opens and has not expired.
fn opened<T: serde::de::DeserializeOwned>(portal: &Portal, req: &Request<RequestBody>, name: &str) -> Option<T> {
    let value = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v)?;
    let text = portal.key.open(value).ok()?;
    serde_json::from_str(&text).ok()
}

fn sealed(portal: &Portal, value: &impl Serialize) -> Result<String, ApiError> {
    let text = serde_json::to_string(value).map_err(|e| registry_core::BackendError::permanent("a cookie", e))?;
    portal.key.seal(&text).map_err(|_| ApiError::from(registry_core::BackendError::message("sealing a cookie", false)))
}

fn redirect(to: &str) -> Response<ResponseBody> {
    let mut response = status_only(StatusCode::FOUND);
    set(response.headers_mut(), header::LOCATION, to);
    set(response.headers_mut(), header::CACHE_CONTROL, "no-store");
    response
}

/// `GET /c/oidc/login`.
pub(super) async fn login(portal: &Portal, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let (config, _) = config(portal).await?;
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let (url, mut pending) = registry_platform::oidc::begin(&config, &redirect_uri(portal))
        .await
        .map_err(|e| bad(StatusCode::SERVICE_UNAVAILABLE, e.0))?;
    pending.then = local_path(query.get("redirect_url"));
    pending.expires_at = now() + FLOW_SECS;
    let mut response = redirect(&url);
    set(response.headers_mut(), header::SET_COOKIE, &flow_cookie(portal, PENDING, &sealed(portal, &pending)?));
    Ok(response)
}

/// Records a failed sign-in in the audit log and answers `status` with `message`.
fn refused(portal: &Portal, who: &str, address: Option<String>, status: StatusCode, message: String) -> ApiError {
    crate::token::record_login(&portal.events, who, address, Err(&AuthError::InvalidCredentials));
    tracing::info!(user = who, reason = %message, "an OIDC sign-in was refused");
    bad(status, message)
}

/// `GET /c/oidc/callback`.
pub(super) async fn callback(portal: &Portal, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let address = crate::request::client_ip(&req);
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let Some(pending) = opened::<Pending>(portal, &req, PENDING).filter(|p| p.expires_at > now()) else {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "this sign-in expired or was begun in another browser: sign in again from the portal",
        ));
    };
    if let Some(error) = query.get("error") {
        let why = query.get("error_description").unwrap_or(error);
        return Err(refused(
            portal,
            "(oidc)",
            address,
            StatusCode::UNAUTHORIZED,
            format!("the provider refused the sign-in: {why}"),
        ));
    }
    let state = query.get("state").unwrap_or_default();
    if !same_secret(state, &pending.state) {
        return Err(refused(
            portal,
            "",
            address,
            StatusCode::BAD_REQUEST,
            "the sign-in's state does not match the one this browser began: sign in again".into(),
        ));
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return Err(bad(StatusCode::BAD_REQUEST, "the provider returned no code"));
    };
    let (config, key) = config(portal).await?;
    // A provider that cannot be reached is a 503 naming it, not a refused sign-in.
    registry_platform::oidc::discover(&config.endpoint, config.verify_cert)
        .await
        .map_err(|e| bad(StatusCode::SERVICE_UNAVAILABLE, e.0))?;
    let profile = registry_platform::oidc::finish(
        &config,
        key,
        &pending,
        code,
        &redirect_uri(portal),
        portal.events.clock().now_secs(),
    )
    .await
    .map_err(|e| refused(portal, "(oidc)", address.clone(), StatusCode::UNAUTHORIZED, e.0))?;
    let accounts = accounts(portal)?;
    let Some(link) = profile.oidc.clone() else {
        return Err(bad(StatusCode::UNAUTHORIZED, "the provider did not say who signed in"));
    };
    let user = match accounts.provider_user(&link.issuer, &link.subject).await? {
        Some(user) => {
            if !user.enabled {
                return Err(refused(
                    portal,
                    &user.name,
                    address,
                    StatusCode::FORBIDDEN,
                    format!("{} is disabled here", user.name),
                ));
            }
            accounts.update_provider_user(user, &profile).await?
        }
        None if config.auto_onboard => match onboard(portal, profile.clone()).await {
            Ok(user) => user,
            Err(e) => {
                let message = match e {
                    AuthError::Conflict { .. } => format!(
                        "the user name {:?} (claim {}) is taken here: ask an administrator, or turn automatic onboarding off to choose one",
                        profile.username,
                        if config.user_claim.is_empty() { "preferred_username" } else { &config.user_claim }
                    ),
                    AuthError::Invalid(why) => format!("the provider's user name cannot be used here: {why}"),
                    other => return Err(other.into()),
                };
                return Err(refused(portal, &profile.username, address, StatusCode::CONFLICT, message));
            }
        },
        None => {
            // The person chooses a user name (Harbor's onboarding page).
            let onboarding = Onboarding {
                suggested: profile.username.clone(),
                email: profile.email,
                realname: profile.realname,
                admin: profile.admin,
                groups: profile.groups,
                link,
                then: pending.then,
                expires_at: now() + FLOW_SECS,
            };
            let to = format!("/#/oidc-onboard?username={}", crate::request::percent_encode(&onboarding.suggested));
            let mut response = redirect(&to);
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, header_value(&flow_cookie(portal, PENDING, ""))?);
            headers.append(
                header::SET_COOKIE,
                header_value(&flow_cookie(portal, ONBOARDING, &sealed(portal, &onboarding)?))?,
            );
            return Ok(response);
        }
    };
    crate::token::record_login(&portal.events, &user.name, address, Ok(()));
    let mut response = redirect(&pending.then);
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, header_value(&flow_cookie(portal, PENDING, ""))?);
    headers.append(header::SET_COOKIE, header_value(&session_cookie(portal, &user.name)?)?);
    Ok(response)
}

#[derive(Deserialize)]
struct OnboardReq {
    username: String,
}

/// `POST /c/oidc/onboard` (JSON, so another site cannot send it from a form).
pub(super) async fn onboard_chosen(
    portal: &Portal,
    req: Request<RequestBody>,
) -> Result<Response<ResponseBody>, ApiError> {
    let address = crate::request::client_ip(&req);
    if !super::sends_json(&req) {
        return Err(bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send {\"username\": …} as application/json"));
    }
    let Some(onboarding) = opened::<Onboarding>(portal, &req, ONBOARDING).filter(|o| o.expires_at > now()) else {
        return Err(bad(StatusCode::BAD_REQUEST, "no sign-in is waiting for a user name (it expired?): sign in again"));
    };
    let body = read_limited(req.into_body(), 4 << 10).await?;
    let chosen: OnboardReq =
        serde_json::from_slice(&body).map_err(|e| bad(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    let profile = Profile {
        username: chosen.username.trim().to_owned(),
        dn: onboarding.link.subject.clone(),
        email: onboarding.email,
        realname: onboarding.realname,
        admin: onboarding.admin,
        groups: onboarding.groups,
        oidc: Some(onboarding.link),
    };
    let user = match onboard(portal, profile).await {
        Ok(user) => user,
        Err(AuthError::Conflict { .. }) => {
            return Err(bad(
                StatusCode::CONFLICT,
                format!("the user name {:?} is taken: choose another", chosen.username),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    crate::token::record_login(&portal.events, &user.name, address, Ok(()));
    let mut response = super::signed_in_answer(portal, &user.name, user.admin, json!({"then": onboarding.then}))?;
    response.headers_mut().append(header::SET_COOKIE, header_value(&flow_cookie(portal, ONBOARDING, ""))?);
    Ok(response)
}

/// Makes the provider's person a user here with a new CLI secret.
async fn onboard(portal: &Portal, mut profile: Profile) -> Result<registry_auth::User, AuthError> {
    let secret = registry_auth::token::random_id(24)?;
    let sealed = portal.key.seal(&secret).map_err(|e| AuthError::Unavailable(format!("sealing a CLI secret: {e}")))?;
    if let Some(link) = profile.oidc.as_mut() {
        link.secret = sealed;
    }
    accounts(portal)
        .map_err(|_| AuthError::Unavailable("no accounts".into()))?
        .onboard_provider_user(&profile, &secret)
        .await
}

fn accounts(portal: &Portal) -> Result<&registry_auth::Accounts, ApiError> {
    portal.accounts.as_ref().ok_or_else(|| bad(StatusCode::NOT_FOUND, "this registry has no accounts to sign in with"))
}

fn session_cookie(portal: &Portal, user: &str) -> Result<String, ApiError> {
    Ok(portal.sessions.set_cookie(&super::new_session(portal, user)?))
}

fn header_value(text: &str) -> Result<http::HeaderValue, ApiError> {
    http::HeaderValue::from_str(text).map_err(|e| registry_core::BackendError::permanent("a cookie header", e).into())
}

/// Whether two secrets are equal, compared by their digests (the time taken says nothing of
/// either).
fn same_secret(a: &str, b: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    !b.is_empty() && digest(a).as_ref() == digest(b).as_ref()
}
