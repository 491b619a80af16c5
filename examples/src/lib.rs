//! Helpers the examples share: a minimal HTTP/1.1 client on hyper, so the examples need nothing
//! beyond the crates they demonstrate.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// The response parts the examples look at.
pub type Reply = (http::StatusCode, http::HeaderMap, Bytes);

/// Sends one request to `addr` and returns the status, headers and body.
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    send_with(addr, method, path, body, &[]).await
}

/// [`send`] with extra headers.
pub async fn send_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut request = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(Full::new(body.into()))?).await?;
    let (parts, body) = response.into_parts();
    Ok((parts.status, parts.headers, body.collect().await?.to_bytes()))
}
