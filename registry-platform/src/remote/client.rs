//! The client of a registry endpoint: the distribution API's version check and its
//! authentication as the remote's challenge asks — none, Basic, or a bearer token from the realm
//! it names (fetched with the endpoint's credential, or anonymously). Every address it contacts,
//! the realm's included, is checked against the SSRF guard ([`Reach::Internal`]) and pinned to
//! the checked addresses; redirects are not followed; every failure says which endpoint and why.

use std::time::Duration;

use base64::Engine as _;
use registry_auth::SecretKey;
use serde_json::Value;

use super::Endpoint;
use crate::ssrf::{self, Reach, root_cause};

/// How long one request to a remote may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest token response read.
const MAX_TOKEN: usize = 64 << 10;

/// A failed exchange with a remote, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError(pub String);

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RemoteError {}

/// A remote registry to talk to.
pub struct Remote {
    name: String,
    base: reqwest::Url,
    credential: Option<(String, String)>,
    insecure: bool,
    /// A PEM certificate authority to trust (checked when the remote is made).
    ca_pem: Option<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("name", &self.name).field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Parses a `WWW-Authenticate` header (`Basic realm="…"`, `Bearer realm="…",service="…"`).
pub(crate) fn challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params;
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').map_or((after, ""), |(v, n)| (v, n)),
        };
        match name.as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            _ => {}
        }
        rest = next;
    }
    Some(Challenge::Bearer { realm: realm?, service })
}

impl Remote {
    /// The remote of `endpoint`, its credential opened with `key`.
    pub fn of(endpoint: &Endpoint, key: &SecretKey) -> Result<Remote, RemoteError> {
        let fail = |why: String| RemoteError(format!("registry {:?}: {why}", endpoint.name));
        let base = ssrf::check_address(&endpoint.url, Reach::Internal).map_err(|e| fail(e.to_string()))?;
        let credential = endpoint.credential(key).map_err(fail)?;
        let ca_pem = match endpoint.ca_certificate.is_empty() {
            true => None,
            false => {
                reqwest::Certificate::from_pem(endpoint.ca_certificate.as_bytes())
                    .map_err(|e| fail(format!("its CA certificate: {e}")))?;
                Some(endpoint.ca_certificate.clone())
            }
        };
        Ok(Remote { name: endpoint.name.clone(), base, credential, insecure: endpoint.insecure, ca_pem })
    }

    /// Its base URL.
    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    pub(crate) fn fail(&self, what: impl std::fmt::Display) -> RemoteError {
        RemoteError(format!("registry {:?} at {}: {what}", self.name, self.base.as_str().trim_end_matches('/')))
    }

    /// A client pinned to `url`'s checked addresses.
    pub(crate) async fn client_for(&self, url: &reqwest::Url) -> Result<reqwest::Client, RemoteError> {
        let addrs = ssrf::resolve(url, Reach::Internal).await.map_err(|e| self.fail(e))?;
        let options =
            ssrf::ClientOptions { timeout: REQUEST_TIMEOUT, insecure: self.insecure, ca_pem: self.ca_pem.clone() };
        ssrf::pinned_client(url, &addrs, &options).map_err(|e| self.fail(e))
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, RemoteError> {
        request.send().await.map_err(|e| {
            self.fail(if e.is_timeout() {
                "it did not answer in time".to_owned()
            } else if e.is_connect() {
                format!("it cannot be reached ({})", root_cause(&e))
            } else {
                root_cause(&e)
            })
        })
    }

    /// The user it signs in as, if any.
    pub fn user(&self) -> Option<&str> {
        self.credential.as_ref().map(|(user, _)| user.as_str())
    }

    pub(crate) fn basic(&self) -> Option<String> {
        self.credential.as_ref().map(|(user, secret)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
        })
    }

    /// A bearer token from `realm` for `service` and `scopes` (with the credential when there
    /// is one).
    pub(crate) async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[&str],
    ) -> Result<String, RemoteError> {
        let mut url = ssrf::check_address(realm, Reach::Internal)
            .map_err(|e| self.fail(format!("its token realm {realm:?}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let client = self.client_for(&url).await?;
        let mut request = client.get(url.clone());
        if let Some(basic) = self.basic() {
            request = request.header("authorization", basic);
        }
        let response = self.send(request).await?;
        let status = response.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(self.fail(match self.credential {
                Some((ref user, _)) => format!("its token service refuses the credentials of {user:?} ({status})"),
                None => format!("its token service wants credentials ({status})"),
            }));
        }
        let body = response.bytes().await.map_err(|e| self.fail(format!("reading its token: {}", root_cause(&e))))?;
        if !status.is_success() {
            return Err(self.fail(format!("its token service answered {status}")));
        }
        if body.len() > MAX_TOKEN {
            return Err(self.fail("its token answer is too large"));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| self.fail("its token answer is not JSON"))?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| self.fail("its token answer has no token"))
    }

    /// Checks that the remote speaks the distribution API and accepts the credential: `GET
    /// /v2/`, answering the challenge it makes.
    pub async fn ping(&self) -> Result<(), RemoteError> {
        let url = self.base.join("v2/").map_err(|e| self.fail(e))?;
        let client = self.client_for(&url).await?;
        let first = self.send(client.get(url.clone())).await?;
        if first.status().is_success() {
            return Ok(());
        }
        if first.status().as_u16() != 401 {
            return Err(self.fail(format!(
                "GET /v2/ answered {}: it does not look like a registry (is the URL its base URL?)",
                first.status()
            )));
        }
        let header = first.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let authorization = match challenge(header) {
            Some(Challenge::Basic) => {
                self.basic().ok_or_else(|| self.fail("it asks for credentials and none are set"))?
            }
            Some(Challenge::Bearer { realm, service }) => {
                format!("Bearer {}", self.token(&realm, service.as_deref(), &[]).await?)
            }
            None => return Err(self.fail(format!("it asks for an authentication it does not name ({header:?})"))),
        };
        let second = self.send(client.get(url).header("authorization", authorization)).await?;
        match second.status() {
            s if s.is_success() => Ok(()),
            s if s.as_u16() == 401 || s.as_u16() == 403 => Err(self.fail(match &self.credential {
                Some((user, _)) => format!("it refuses the credentials of {user:?} ({s})"),
                None => format!("it wants credentials ({s})"),
            })),
            s => Err(self.fail(format!("GET /v2/ answered {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_as_registries_write_them() {
        assert_eq!(challenge("Basic realm=\"Registry Realm\""), Some(Challenge::Basic));
        assert_eq!(
            challenge("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\""),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            challenge("Bearer realm=\"http://h/auth/token\", service=\"x\", scope=\"repository:a:pull\""),
            Some(Challenge::Bearer { realm: "http://h/auth/token".into(), service: Some("x".into()) })
        );
        assert_eq!(challenge("Bearer service=\"x\""), None, "no realm");
        assert_eq!(challenge("Negotiate"), None);
    }
}
