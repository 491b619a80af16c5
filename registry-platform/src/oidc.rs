//! Signing in through an OpenID Connect provider (Harbor's `oidc_auth`), with `openidconnect`
//! over this crate's reqwest on rustls:
//!
//! - [`discover`]: the provider's metadata and signing keys, fetched and checked as a sign-in
//!   will (behind `POST /system/oidc/ping`);
//! - [`OidcConfig`]: the configuration, from the system settings (the client secret sealed there);
//! - [`begin`] and [`finish`]: the authorization-code flow with PKCE (S256) and a nonce; the ID
//!   token verified (issuer, audience, signature by the provider's keys, expiry, nonce), its
//!   claims read into a [`Profile`] with the link to keep (subject, sealed refresh token, when the
//!   session must be checked again);
//! - [`recheck`]: a CLI sign-in's check of the provider session (the refresh-token grant): the
//!   profile as the provider says now, or `None` once it has ended.
//!
//! Discovery runs at each of these (a browser sign-in, a session check once per access-token
//! lifetime), so keys the provider rotates are picked up.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse,
};
use registry_auth::{OidcLink, Profile, SecretKey, User};
use serde::{Deserialize, Serialize};

use crate::selectors::Invalid;
use crate::settings::SystemSettings;

/// How long a session is trusted when the provider does not say how long its access token lasts.
const DEFAULT_ACCESS_SECS: u64 = 300;

/// How long the provider may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A provider that cannot be used: it cannot be reached, does not answer as a provider, or its
/// metadata or keys are wrong (the text names it and says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcError(pub String);

impl std::fmt::Display for OidcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OidcError {}

/// What discovery found of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The issuer, as the provider names itself (it must be the URL asked).
    pub issuer: String,
    /// Where people are sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Option<String>,
    /// How many signing keys its JWKS holds.
    pub keys: usize,
}

/// The HTTP client the provider is asked with (certificates verified unless `verify_cert` is
/// off; no redirects followed, as the OAuth 2.0 security advice says).
fn client(verify_cert: bool) -> Result<reqwest::Client, OidcError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(!verify_cert)
        .build()
        .map_err(|e| OidcError(format!("making an HTTP client: {e}")))
}

/// openidconnect's HTTP client: ours.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one of openidconnect's requests with `client`.
async fn send(
    client: &reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let (head, body) = request.into_parts();
    let mut outgoing = client.request(head.method, head.uri.to_string()).body(body);
    for (name, value) in &head.headers {
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing.send().await?;
    let mut response = http::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let body = answer.bytes().await?.to_vec();
    // A builder fed only a status and headers that came from a response cannot fail.
    Ok(response.body(body).unwrap_or_default())
}

/// The provider's metadata, or why it cannot be used.
async fn metadata(issuer: &str, http: &Http) -> Result<CoreProviderMetadata, OidcError> {
    let fail = |why: String| OidcError(format!("OIDC provider {issuer}: {why}"));
    let url = issuer.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(fail("use the provider's https:// issuer URL".into()));
    }
    let issuer_url = IssuerUrl::new(url.to_owned()).map_err(|e| fail(format!("not a URL ({e})")))?;
    CoreProviderMetadata::discover_async(issuer_url, http)
        .await
        .map_err(|e| fail(format!("discovery failed ({})", registry_core::fault::chain(&e))))
}

/// Discovers the provider at `issuer` (`/.well-known/openid-configuration` and its JWKS): what
/// a sign-in needs, or why it cannot be used.
pub async fn discover(issuer: &str, verify_cert: bool) -> Result<ProviderInfo, OidcError> {
    let metadata = metadata(issuer, &Http(client(verify_cert)?)).await?;
    Ok(ProviderInfo {
        issuer: metadata.issuer().to_string(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        token_endpoint: metadata.token_endpoint().map(|t| t.to_string()),
        keys: metadata.jwks().keys().len(),
    })
}

/// How to sign people in through the provider.
#[derive(Clone, Default)]
pub struct OidcConfig {
    /// The provider's name (the sign-in button's).
    pub name: String,
    /// Its issuer URL.
    pub endpoint: String,
    /// The client this registry signs in as.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim naming the user (empty: `preferred_username`, `name`, the e-mail's local part).
    pub user_claim: String,
    /// The claim listing their groups.
    pub groups_claim: String,
    /// The group whose members are system admins (empty: none).
    pub admin_group: String,
    /// Whether the provider's certificate is verified.
    pub verify_cert: bool,
    /// Whether people become users at their first sign-in without choosing a name.
    pub auto_onboard: bool,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl OidcConfig {
    /// The configuration in `settings`, the client secret opened with `key`.
    pub fn of(settings: &SystemSettings, key: Option<&SecretKey>) -> Result<OidcConfig, OidcError> {
        let client_secret = match (&settings.oidc_client_secret, key) {
            (Some(sealed), Some(key)) => {
                key.open(sealed).map_err(|e| OidcError(format!("opening the OIDC client secret: {e}")))?
            }
            (Some(_), None) => return Err(OidcError("the OIDC client secret is sealed and no key is set".into())),
            (None, _) => String::new(),
        };
        let scopes = settings
            .oidc_scope
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "openid")
            .map(str::to_owned)
            .collect();
        Ok(OidcConfig {
            name: settings.oidc_name.clone(),
            endpoint: settings.oidc_endpoint.trim().trim_end_matches('/').to_owned(),
            client_id: settings.oidc_client_id.clone(),
            client_secret,
            scopes,
            user_claim: settings.oidc_user_claim.trim().to_owned(),
            groups_claim: settings.oidc_groups_claim.trim().to_owned(),
            admin_group: settings.oidc_admin_group.clone(),
            verify_cert: settings.oidc_verify_cert,
            auto_onboard: settings.oidc_auto_onboard,
        })
    }

    /// Checks what can be checked without the provider: an issuer URL, a client, claim names.
    pub fn checked(&self) -> Result<(), Invalid> {
        if !(self.endpoint.starts_with("https://") || self.endpoint.starts_with("http://")) {
            return Err(Invalid(format!("oidc_endpoint {:?}: use the provider's https:// issuer URL", self.endpoint)));
        }
        if self.client_id.trim().is_empty() {
            return Err(Invalid("oidc_auth needs oidc_client_id: the client registered at the provider".into()));
        }
        if self.client_secret.is_empty() {
            return Err(Invalid("oidc_auth needs oidc_client_secret: the client's secret at the provider".into()));
        }
        for (name, claim) in [("oidc_user_claim", &self.user_claim), ("oidc_groups_claim", &self.groups_claim)] {
            if claim.chars().any(|c| c.is_whitespace() || c.is_control()) || claim.len() > 255 {
                return Err(Invalid(format!("{name} {claim:?} is not a claim name")));
            }
        }
        if let Some(bad) =
            self.scopes.iter().find(|s| !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        {
            return Err(Invalid(format!("oidc_scope: {bad:?} is not a scope")));
        }
        Ok(())
    }

    fn fail(&self, what: impl std::fmt::Display) -> OidcError {
        OidcError(format!("OIDC provider {}: {what}", self.endpoint))
    }

    /// The provider's client, after its discovery.
    async fn client(&self, http: &Http) -> Result<ProviderClient, OidcError> {
        let metadata = metadata(&self.endpoint, http).await?;
        if metadata.token_endpoint().is_none() {
            return Err(self.fail("its metadata names no token endpoint"));
        }
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        ))
    }
}

/// The client discovery gives (authorization and token endpoints known, the token endpoint
/// checked to be there).
type ProviderClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The claims of an ID token openidconnect has no field for (the groups claim, custom user
/// claims).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AllClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for AllClaims {}

/// An ID token whose claims can all be read.
type FullIdToken =
    openidconnect::IdToken<AllClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// A sign-in begun in the browser: what its return needs, kept by the browser sealed (so any
/// replica finishes it). Its `Debug` shows nothing of it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The state sent (compared with the one returned).
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// Where the browser goes after signing in (a path of this registry).
    pub then: String,
    /// Until when it may be finished (seconds since the epoch).
    pub expires_at: u64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("then", &self.then).finish_non_exhaustive()
    }
}

/// Begins a sign-in: the provider's authorization URL to send the browser to (returning to
/// `redirect_uri`), and what [`finish`] will need.
pub async fn begin(config: &OidcConfig, redirect_uri: &str) -> Result<(String, Pending), OidcError> {
    let http = Http(client(config.verify_cert)?);
    let client = config
        .client(&http)
        .await?
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| config.fail(e))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.url();
    let pending = Pending {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        then: String::new(),
        expires_at: 0,
    };
    Ok((url.to_string(), pending))
}

/// Finishes a sign-in with the `code` the provider returned: the code exchanged (with the PKCE
/// verifier), the ID token verified, the person's profile with the link to keep (the refresh
/// token sealed with `key`; `checked_until` the access token's expiry from `now`).
pub async fn finish(
    config: &OidcConfig,
    key: &SecretKey,
    pending: &Pending,
    code: &str,
    redirect_uri: &str,
    now: u64,
) -> Result<Profile, OidcError> {
    let http = Http(client(config.verify_cert)?);
    let client = config
        .client(&http)
        .await?
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| config.fail(e))?);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| config.fail(e))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| config.fail(format!("the code was not accepted ({})", token_error(&e))))?;
    let nonce = Nonce::new(pending.nonce.clone());
    profile_of(config, &client, key, &response, &nonce, now, None)
}

/// Asks the provider whether `user`'s session still holds (the refresh-token grant): their
/// profile as it says now with the link to keep, `None` when it has ended (`invalid_grant`, or
/// no refresh token to ask with), an error when the provider cannot be asked.
pub async fn recheck(
    config: &OidcConfig,
    key: &SecretKey,
    user: &User,
    now: u64,
) -> Result<Option<Profile>, OidcError> {
    let Some(link) = &user.oidc else { return Ok(None) };
    let Some(sealed) = &link.refresh_token else { return Ok(None) };
    let refresh = key.open(sealed).map_err(|e| OidcError(format!("opening {}'s refresh token: {e}", user.name)))?;
    let http = Http(client(config.verify_cert)?);
    let client = config.client(&http).await?;
    let refresh = RefreshToken::new(refresh);
    let answer = client.exchange_refresh_token(&refresh).map_err(|e| config.fail(e))?.request_async(&http).await;
    let response = match answer {
        Ok(response) => response,
        Err(RequestTokenError::ServerResponse(e))
            if matches!(e.error(), CoreErrorResponseType::InvalidGrant | CoreErrorResponseType::UnauthorizedClient) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(config.fail(format!("the session could not be checked ({})", token_error(&e)))),
    };
    // A refresh may or may not bring a new ID token (and its nonce, if any, is the first one's).
    let any_nonce = |_: Option<&Nonce>| Ok(());
    let mut profile = profile_of(config, &client, key, &response, any_nonce, now, Some(user))?;
    if let Some(link) = profile.oidc.as_mut()
        && link.refresh_token.is_none()
    {
        // The provider kept the refresh token it had given.
        link.refresh_token = Some(sealed.clone());
    }
    Ok(Some(profile))
}

/// The text of a token endpoint's refusal or failure.
fn token_error<RE: std::error::Error + 'static>(
    e: &RequestTokenError<RE, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error_description() {
            Some(d) => format!("{}: {d}", r.error().as_ref()),
            None => r.error().as_ref().to_owned(),
        },
        other => registry_core::fault::chain(other),
    }
}

/// The profile a token response gives (its ID token verified with `nonce`); for a refresh
/// without an ID token, `known`'s profile with the new session.
fn profile_of(
    config: &OidcConfig,
    client: &ProviderClient,
    key: &SecretKey,
    response: &CoreTokenResponse,
    nonce: impl openidconnect::NonceVerifier,
    now: u64,
    known: Option<&User>,
) -> Result<Profile, OidcError> {
    let refresh_token = match response.refresh_token() {
        Some(t) => Some(key.seal(t.secret()).map_err(|e| OidcError(format!("sealing a refresh token: {e}")))?),
        None => None,
    };
    let checked_until = now + response.expires_in().map_or(DEFAULT_ACCESS_SECS, |d| d.as_secs().max(1));
    let Some(id_token) = response.id_token() else {
        let Some((user, mut link)) = known.and_then(|u| u.oidc.clone().map(|link| (u, link))) else {
            return Err(config.fail("its token answer has no ID token (is the openid scope allowed?)"));
        };
        link.refresh_token = refresh_token;
        link.checked_until = checked_until;
        return Ok(Profile {
            username: user.name.clone(),
            dn: link.subject.clone(),
            email: user.email.clone(),
            realname: user.realname.clone(),
            admin: !config.admin_group.is_empty() && link.groups.contains(&config.admin_group),
            groups: link.groups.clone(),
            oidc: Some(link),
        });
    };
    let raw = serde_json::to_value(id_token).map_err(|e| config.fail(e))?;
    let token: FullIdToken = serde_json::from_value(raw).map_err(|e| config.fail(format!("its ID token: {e}")))?;
    let verifier = client.id_token_verifier();
    let claims = token.claims(&verifier, nonce).map_err(|e| config.fail(format!("its ID token was refused ({e})")))?;
    // Every claim by name, the standard ones (which openidconnect reads into their own fields) too.
    let mut all = claims.additional_claims().claims.clone();
    if let Ok(serde_json::Value::Object(standard)) = serde_json::to_value(claims) {
        all.extend(standard);
    }
    let all = &all;
    let text = |name: &str| all.get(name).and_then(|v| v.as_str()).map(str::to_owned).unwrap_or_default();
    let subject = claims.subject().as_str().to_owned();
    let email = claims.email().map(|e| e.as_str().to_owned()).unwrap_or_else(|| text("email"));
    let realname = text("name");
    let username = match known {
        Some(user) => user.name.clone(),
        None => username_of(config, all, &email),
    };
    let groups: Vec<String> = match all.get(&config.groups_claim) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let link = OidcLink {
        issuer: claims.issuer().as_str().trim_end_matches('/').to_owned(),
        subject: subject.clone(),
        secret: String::new(),
        refresh_token,
        checked_until,
        groups: groups.clone(),
    };
    Ok(Profile {
        username,
        dn: subject,
        email,
        realname,
        admin: !config.admin_group.is_empty() && groups.contains(&config.admin_group),
        groups,
        oidc: Some(link),
    })
}

/// The user name the claims suggest: the configured claim's, else `preferred_username`, `name`,
/// the e-mail's local part.
fn username_of(config: &OidcConfig, claims: &serde_json::Map<String, serde_json::Value>, email: &str) -> String {
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::trim).unwrap_or_default().to_owned();
    if !config.user_claim.is_empty() {
        return text(&config.user_claim);
    }
    [text("preferred_username"), text("name"), email.split('@').next().unwrap_or_default().to_owned()]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_default()
}
