//! Reading requests: the body type every service takes, bounded reads of small bodies, the body
//! as the engine's stream, and query strings.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::Body;
use http_body_util::BodyExt;
use registry_storage::BodyError;

use crate::error::ApiError;

/// The address of the client a request came from (in the request's extensions; none on the
/// admin socket). Behind a proxy it is the proxy's.
///
/// Made once per connection, with the IP address as text: every pull names its client in its
/// event, and formatting an address costs more than the rest of naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    socket: std::net::SocketAddr,
    ip: std::sync::Arc<str>,
}

impl ClientAddress {
    /// The client at `socket`.
    pub fn new(socket: std::net::SocketAddr) -> ClientAddress {
        ClientAddress { socket, ip: socket.ip().to_string().into() }
    }

    /// The client's address and port.
    pub fn socket(&self) -> std::net::SocketAddr {
        self.socket
    }

    /// The client's IP address as text.
    pub fn ip(&self) -> &str {
        &self.ip
    }
}

/// The client's IP address as text, where the server recorded one.
pub fn client_ip<B>(req: &http::Request<B>) -> Option<String> {
    req.extensions().get::<ClientAddress>().map(|a| a.ip().to_owned())
}

/// The request body inside the service stack: any body, boxed once at the entrance.
pub type RequestBody = http_body_util::combinators::BoxBody<Bytes, BodyError>;

/// Boxes any body as a [`RequestBody`].
pub fn boxed<B>(body: B) -> RequestBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BodyError>,
{
    body.map_err(Into::into).boxed()
}

/// The body as the engine's stream of chunks.
pub(crate) fn body_stream(body: RequestBody) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + Unpin {
    http_body_util::BodyStream::new(body).filter_map(|frame| {
        std::future::ready(match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        })
    })
}

/// Reads a small body whole, refusing more than `limit` bytes (413).
pub(crate) async fn read_limited(body: RequestBody, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body_stream(body);
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(registry_storage::Error::Body)?;
        if bytes.len() + chunk.len() > limit {
            return Err(registry_storage::Error::TooLarge { what: "request body", limit: limit as u64 }.into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// The `Content-Length` header, when present and valid.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A decoded query string (or `application/x-www-form-urlencoded` body): pairs in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `a=b&c=d`.
    pub fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The query of a request.
    pub fn of<B>(req: &http::Request<B>) -> Query {
        Query::parse(req.uri().query().unwrap_or(""))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Decodes `%XX` and `+` (space); malformed escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value or path segment (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("sha256%3Aabc"), "sha256:abc");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode(&percent_encode("a/b c:d")), "a/b c:d");
        let q = Query::parse("scope=a&scope=b%20c&n=");
        assert_eq!(q.all("scope").collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(q.get("n"), Some(""));
        assert_eq!(q.get("missing"), None);
    }
}
