//! Helpers the examples share: a minimal HTTP/1.1 client on hyper, so the examples need nothing
//! beyond the crates they demonstrate.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Sends one request to `addr` and returns the status, headers and body.
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request =
        Request::builder().method(method).uri(path).header("host", addr.to_string()).body(Full::new(body.into()))?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    Ok((parts.status, parts.headers, body.collect().await?.to_bytes()))
}
