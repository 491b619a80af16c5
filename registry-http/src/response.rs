//! Responses: the body type, the spec's error body, and the one place errors become statuses.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use registry_core::{ErrorBody, ErrorCode};

use crate::route::RouteError;

/// The body of every response: full, empty or streamed.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// `Docker-Distribution-API-Version`, on every response.
pub(crate) const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An error on its way to the client: status, spec code, message and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The spec's code.
    pub code: ErrorCode,
    /// The message for the client.
    pub message: String,
    /// Headers the spec wants with this error (e.g. `Range` on a 416).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// The same error with an extra header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// The response: the spec's JSON body (none for HEAD, with the right Content-Length).
    pub fn into_response(self, head: bool) -> Response<ResponseBody> {
        let body = ErrorBody::new(self.code, self.message, None).to_json();
        let mut response = Response::new(if head { empty() } else { full(body.clone()) });
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

impl From<registry_storage::Error> for ApiError {
    fn from(e: registry_storage::Error) -> ApiError {
        use registry_storage::Error as E;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut api = ApiError::new(e.code(), e.to_string()).with_status(status);
        match &e {
            E::RangeInvalid { offset } => api = api.with_header(http::header::RANGE, range_value(*offset)),
            E::RangeNotSatisfiable { size } => {
                api = api.with_header(http::header::CONTENT_RANGE, format!("bytes */{size}"))
            }
            E::Unavailable(_) => api = api.with_header(http::header::RETRY_AFTER, "1".to_owned()),
            E::Backend(_) | E::Corrupt(_) => {
                tracing::error!(error = %e, "storage fault");
                api.message = "internal storage error; retry later".into();
            }
            _ => {}
        }
        api
    }
}

impl From<registry_core::Error> for ApiError {
    fn from(e: registry_core::Error) -> ApiError {
        ApiError::from(registry_storage::Error::from(e))
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        match e {
            RouteError::NotFound => {
                ApiError::new(ErrorCode::Unsupported, "no such endpoint").with_status(StatusCode::NOT_FOUND)
            }
            RouteError::Core(e) => e.into(),
            RouteError::Storage(e) => e.into(),
        }
    }
}

/// The `Range` header value for an upload at `offset`: `0-<offset-1>`, and `0-0` when empty (as
/// distribution answers).
pub(crate) fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}
