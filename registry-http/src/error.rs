//! [`ApiError`]: an error on its way to the client, and the one place where every error type of
//! the crates below becomes an HTTP status, a code and a message.
//!
//! The body is always the spec's JSON: `{"errors":[{"code","message","detail"}]}`. The
//! distribution API speaks the OCI codes; the management API speaks Harbor's codes (`NOT_FOUND`,
//! `CONFLICT`, `PRECONDITION`, …) in the same envelope, as Harbor does. Server faults are logged
//! here with their cause and shown to the client without it; a fault that may clear is 503 with
//! `Retry-After`.

use std::borrow::Cow;

use http::header::{CONTENT_RANGE, HeaderName, RANGE, RETRY_AFTER};
use http::{Response, StatusCode};
use registry_auth::AuthError;
use registry_core::{BackendError, ErrorCode};

use crate::response::{ResponseBody, empty, full, range_value};

/// An error response: status, code, message, optional detail and extra headers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An OCI error with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: Cow::Borrowed(code.as_str()),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// A management API error in Harbor's shape: the code follows the status.
    pub fn harbor(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Cow::Borrowed(harbor_code(status)),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// 404 for a path no endpoint has.
    pub fn no_such_endpoint() -> ApiError {
        ApiError::new(ErrorCode::Unsupported, "no such endpoint").with_status(StatusCode::NOT_FOUND)
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

    /// The same error with the body's `detail`.
    pub(crate) fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: the JSON body (none for HEAD, with the right Content-Length).
    pub fn into_response(self, head: bool) -> Response<ResponseBody> {
        let mut entry = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(detail) = self.detail {
            entry["detail"] = detail;
        }
        let body = serde_json::json!({ "errors": [entry] }).to_string();
        let len = body.len();
        let mut response = Response::new(if head { empty() } else { full(body) });
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        for (name, value) in self.headers {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// Harbor's code for a status (`src/lib/errors/const.go`).
fn harbor_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        412 => "PRECONDITION",
        413 => "REQUEST_ENTITY_TOO_LARGE",
        422 => "UNPROCESSABLE_ENTITY",
        429 => "TOO_MANY_REQUEST",
        _ => "UNKNOWN",
    }
}

/// A backend fault: logged with its cause; 503 with `Retry-After` when it may clear, else 500.
fn fault(e: &dyn std::error::Error, retryable: bool, code: &'static str) -> ApiError {
    let chain = registry_core::fault::chain(e);
    if retryable {
        tracing::warn!(error = %chain, "backend unavailable");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: Cow::Borrowed(code),
            message: "the registry's storage is unavailable; retry shortly".into(),
            detail: None,
            headers: vec![(RETRY_AFTER, "1".into())],
        }
    } else {
        tracing::error!(error = %chain, "backend fault");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: Cow::Borrowed(code),
            message: "internal storage error; retry later".into(),
            detail: None,
            headers: Vec::new(),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        fault(&e, e.is_retryable(), "UNKNOWN")
    }
}

impl From<registry_storage::Error> for ApiError {
    fn from(e: registry_storage::Error) -> ApiError {
        use registry_storage::Error as E;
        let code = e.code();
        match &e {
            E::Backend(b) => return fault(b, b.is_retryable(), code.as_str()),
            E::Corrupt { .. } => return fault(&e, false, code.as_str()),
            E::JobRunning { .. } | E::Conflict { .. } => {
                return ApiError::harbor(StatusCode::CONFLICT, e.to_string());
            }
            E::NotFound { .. } => {
                return ApiError::harbor(StatusCode::NOT_FOUND, e.to_string());
            }
            E::Collecting { .. } | E::UploadBusy => {
                return ApiError::new(code, e.to_string())
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
                    .with_header(RETRY_AFTER, "1");
            }
            _ => {}
        }
        let api = ApiError::new(code, e.to_string());
        match &e {
            E::RangeInvalid { offset } => {
                api.with_status(StatusCode::RANGE_NOT_SATISFIABLE).with_header(RANGE, range_value(*offset))
            }
            E::RangeNotSatisfiable { size } => {
                api.with_status(StatusCode::RANGE_NOT_SATISFIABLE).with_header(CONTENT_RANGE, format!("bytes */{size}"))
            }
            E::TooLarge { .. } => api.with_status(StatusCode::PAYLOAD_TOO_LARGE),
            // An unsupported digest algorithm, schema 1 or an unknown manifest type: the spec's
            // 400 with the code, rather than the 405 of UNSUPPORTED.
            _ if code == ErrorCode::Unsupported => api.with_status(StatusCode::BAD_REQUEST),
            _ => api,
        }
    }
}

impl From<registry_core::Error> for ApiError {
    fn from(e: registry_core::Error) -> ApiError {
        ApiError::from(registry_storage::Error::from(e))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let status = match &e {
            AuthError::InvalidCredentials | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::RateLimited { retry_after_secs } => {
                return ApiError::harbor(StatusCode::TOO_MANY_REQUESTS, e.to_string())
                    .with_header(RETRY_AFTER, retry_after_secs.to_string());
            }
            AuthError::Invalid(_) => StatusCode::BAD_REQUEST,
            AuthError::NotFound { .. } => StatusCode::NOT_FOUND,
            AuthError::Conflict { .. } => StatusCode::CONFLICT,
            AuthError::Precondition(_) => StatusCode::PRECONDITION_FAILED,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Backend(b) => return fault(b, b.is_retryable(), "UNKNOWN"),
            _ => return fault(&e, false, "UNKNOWN"),
        };
        ApiError::harbor(status, e.to_string())
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        match e {
            RouteError::NotFound => ApiError::no_such_endpoint(),
            RouteError::Core(e) => e.into(),
            RouteError::Storage(e) => e.into(),
            RouteError::BadReference(e) => e.into(),
        }
    }
}

/// Why a path is not a route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No endpoint has this shape.
    #[error("no such endpoint")]
    NotFound,
    /// The endpoint is known but a part of the path is invalid.
    #[error(transparent)]
    Core(#[from] registry_core::Error),
    /// The upload id is not one this registry issues.
    #[error(transparent)]
    Storage(#[from] registry_storage::Error),
    /// `/v2/<name>/manifests/<reference>` with a reference that is neither a tag nor a digest:
    /// unknown to a reader (404 `MANIFEST_UNKNOWN`), invalid to a writer (400 `TAG_INVALID`).
    #[error("invalid manifest reference: {0}")]
    BadReference(registry_core::Error),
}

#[cfg(feature = "webhooks")]
impl From<registry_platform::webhook::policy::PolicyError> for ApiError {
    fn from(e: registry_platform::webhook::policy::PolicyError) -> ApiError {
        use registry_platform::webhook::policy::PolicyError;
        match e {
            PolicyError::Invalid(message) => ApiError::harbor(StatusCode::BAD_REQUEST, message),
            other => fault(&other, false, "UNKNOWN"),
        }
    }
}
