//! Request deadlines: a request whose response is not ready in time (a backend that hangs, a
//! database that stopped answering) gets 503 with `Retry-After` instead of holding its client.
//!
//! Only requests with a bounded amount of work are timed (management calls, manifests,
//! listings, token requests): a blob upload or download lasts as long as its bytes take, and is
//! bounded instead by the connection's inactivity limits (`server::conn`), which fire only when
//! no byte moves.

use std::time::Duration;

use http::StatusCode;
use http::header::RETRY_AFTER;
use registry_core::ErrorCode;

use super::{BoxService, FnLayer, Layer, call, service_fn};
use crate::error::ApiError;
use crate::request::RequestBody;

/// Decides whether a request is timed.
pub type Applies = fn(&http::Request<RequestBody>) -> bool;

/// Times every request.
pub fn always(_: &http::Request<RequestBody>) -> bool {
    true
}

/// The layer: requests `applies` selects must have their response within `limit`.
pub fn layer(limit: Duration, applies: Applies) -> impl Layer<BoxService, Service = BoxService> + Clone {
    FnLayer(move |inner: BoxService| {
        service_fn(move |req: http::Request<RequestBody>| {
            let inner = inner.clone();
            async move {
                if !applies(&req) {
                    return call(&inner, req).await;
                }
                let head = req.method() == http::Method::HEAD;
                let path = req.uri().path().to_owned();
                match tokio::time::timeout(limit, call(&inner, req)).await {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::warn!(path = %path, limit_secs = limit.as_secs(), "request deadline passed");
                        ApiError::new(
                            ErrorCode::Unknown,
                            format!("the request took longer than {} s; retry shortly", limit.as_secs()),
                        )
                        .with_status(StatusCode::SERVICE_UNAVAILABLE)
                        .with_header(RETRY_AFTER, "1")
                        .into_response(head)
                    }
                }
            }
        })
    })
}
