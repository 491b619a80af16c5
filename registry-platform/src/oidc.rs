//! Signing in through an OpenID Connect provider (Harbor's `oidc_auth`), with `openidconnect`
//! over this crate's reqwest on rustls. Today: the provider's discovery (its metadata and its
//! signing keys, fetched and checked as a sign-in will), behind `POST /system/oidc/ping`. Next:
//! the authorization-code flow with PKCE and a nonce, ID token checks, CLI secrets and groups.

use std::time::Duration;

use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;

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

/// Discovers the provider at `issuer` (`/.well-known/openid-configuration` and its JWKS): what
/// a sign-in needs, or why it cannot be used.
pub async fn discover(issuer: &str, verify_cert: bool) -> Result<ProviderInfo, OidcError> {
    let fail = |why: String| OidcError(format!("OIDC provider {issuer}: {why}"));
    let url = issuer.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(fail("use the provider's https:// issuer URL".into()));
    }
    let issuer_url = IssuerUrl::new(url.to_owned()).map_err(|e| fail(format!("not a URL ({e})")))?;
    let http = Http(client(verify_cert)?);
    let metadata = CoreProviderMetadata::discover_async(issuer_url, &http)
        .await
        .map_err(|e| fail(format!("discovery failed ({})", registry_core::fault::chain(&e))))?;
    Ok(ProviderInfo {
        issuer: metadata.issuer().to_string(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        token_endpoint: metadata.token_endpoint().map(|t| t.to_string()),
        keys: metadata.jwks().keys().len(),
    })
}
