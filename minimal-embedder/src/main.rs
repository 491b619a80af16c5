//! A program that embeds only the distribution API, with its own authenticator: it starts a test
//! registry on 127.0.0.1, times the start, logs in through the token flow, pushes a blob and
//! reads it back, and exits non-zero if anything fails. `cargo run` here; CI does.

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use registry_auth::{AuthError, Authenticator, Identity};
use registry_core::Digest;
use registry_http::TestRegistry;

/// One API key, compared in constant time; any user name.
struct ApiKey(&'static str);

#[async_trait]
impl Authenticator for ApiKey {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        let (a, b) = (password.as_bytes(), self.0.as_bytes());
        let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(Identity::User { name: username.to_owned(), admin: false })
        } else {
            Err(AuthError::InvalidCredentials)
        }
    }

    async fn lookup(&self, username: &str) -> Result<Identity, AuthError> {
        Ok(Identity::User { name: username.to_owned(), admin: false })
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One request on a fresh connection: status, headers and body.
async fn send(
    registry: &TestRegistry,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(u16, hyper::HeaderMap, Bytes), Error> {
    let stream = tokio::net::TcpStream::connect(registry.addr()).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("host", registry.addr().to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let (parts, body) = response.into_parts();
    Ok((parts.status.as_u16(), parts.headers, body.collect().await?.to_bytes()))
}

fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    format!("Basic {out}")
}

/// The `"token"` string of a token response.
fn token_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"token\":\"")? + 9;
    Some(text[start..].split('"').next()?.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut starts = Vec::new();
    for _ in 0..20 {
        let begun = Instant::now();
        let registry = TestRegistry::builder().authenticator(ApiKey("s3cret")).start().await?;
        starts.push(begun.elapsed());
        registry.stop().await;
    }
    let first = starts[0];
    starts.sort();
    let median = starts[starts.len() / 2];
    println!("test registry start: first {first:?}, median of {} {median:?}", starts.len());

    let registry = TestRegistry::builder().authenticator(ApiKey("s3cret")).start().await?;
    let (status, headers, _) = send(&registry, "GET", "/v2/", &[], Bytes::new()).await?;
    let challenge = headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if status != 401 || !challenge.starts_with("Bearer realm=") {
        return Err(format!("GET /v2/ without a token: {status} {challenge:?}").into());
    }
    let scope = "repository:team/app:pull,push";
    let (status, _, body) = send(
        &registry,
        "GET",
        &format!("/auth/token?scope={scope}"),
        &[("authorization", basic("ci", "wrong"))],
        Bytes::new(),
    )
    .await?;
    if status != 401 {
        return Err(format!("a wrong key got {status}").into());
    }
    let (status, _, body_ok) = send(
        &registry,
        "GET",
        &format!("/auth/token?scope={scope}"),
        &[("authorization", basic("ci", "s3cret"))],
        Bytes::new(),
    )
    .await?;
    let token = token_of(&body_ok).ok_or_else(|| format!("token response {status}: {body:?}"))?;
    let bearer = [("authorization", format!("Bearer {token}"))];
    let blob = Bytes::from_static(b"the minimal embedder's blob");
    let digest = Digest::sha256_of(&blob);
    let (status, _, body) =
        send(&registry, "POST", &format!("/v2/team/app/blobs/uploads/?digest={digest}"), &bearer, blob.clone()).await?;
    if status != 201 {
        return Err(format!("monolithic push: {status} {body:?}").into());
    }
    let (status, _, body) =
        send(&registry, "GET", &format!("/v2/team/app/blobs/{digest}"), &bearer, Bytes::new()).await?;
    if status != 200 || body != blob {
        return Err(format!("pull: {status}, {} bytes", body.len()).into());
    }
    registry.stop().await;
    println!("pushed and pulled {digest} through the token flow");
    Ok(())
}
