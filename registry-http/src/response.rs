//! Building responses: the body type, JSON and empty responses, the headers clients rely on.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// The body of every response: full, empty or streamed.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// `Docker-Distribution-API-Version`, on every response.
pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
/// `Docker-Content-Digest`.
pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`.
pub const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`.
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Filters-Applied`.
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
/// Harbor's `X-Total-Count`.
pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// No body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A response with `status` and no body (`Content-Length: 0`).
pub fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// A JSON response of `body`.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<ResponseBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// A JSON response of a value.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    json_bytes(status, value.to_string().into_bytes())
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<ResponseBody> {
    let body = body.into();
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Sets a header whose value is valid (an invalid value is skipped: values come from our own
/// formatting of validated names and digests).
pub fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The `Range` header value for an upload at `offset`: `0-<offset-1>`, and `0-0` when empty (as
/// distribution answers).
pub fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}
