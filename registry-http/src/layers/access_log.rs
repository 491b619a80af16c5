//! One log line per request (method, path, status, bytes, duration), the API version header on
//! every response, and a handler that panics answered with a 500 JSON error instead of a dropped
//! connection.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use http::HeaderValue;
use http::header::CONTENT_LENGTH;
use registry_core::ErrorCode;

use super::{BoxService, FnLayer, Layer, call, service_fn};
use crate::error::ApiError;
use crate::metrics::{Metrics, route_class};
use crate::response::API_VERSION;

/// The layer; with `metrics`, each request is also counted there.
pub fn layer(metrics: Option<Arc<Metrics>>) -> impl Layer<BoxService, Service = BoxService> + Clone {
    FnLayer(move |inner: BoxService| {
        let metrics = metrics.clone();
        service_fn(move |req: http::Request<crate::request::RequestBody>| {
            let (inner, metrics) = (inner.clone(), metrics.clone());
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let head = method == http::Method::HEAD;
                let announced = |h: &http::HeaderMap| -> u64 {
                    h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
                };
                // Counted only when metrics are on: nothing of this on the path otherwise.
                let counted = metrics.as_ref().map(|m| {
                    let route = route_class(&method, &path);
                    (m, route, m.begin(route, announced(req.headers())))
                });
                let mut response = match std::panic::AssertUnwindSafe(call(&inner, req)).catch_unwind().await {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::error!(method = %method, path = %path, "a handler panicked");
                        ApiError::new(ErrorCode::Unknown, "internal error").into_response(head)
                    }
                };
                response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
                if let Some((m, route, in_flight)) = counted {
                    drop(in_flight);
                    let sent = if head { 0 } else { announced(response.headers()) };
                    m.answered(route, &method, response.status(), started.elapsed(), sent);
                }
                let bytes =
                    response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                tracing::info!(
                    method = %method,
                    path = %path,
                    status = response.status().as_u16(),
                    bytes = %bytes,
                    duration_ms = started.elapsed().as_secs_f64() * 1e3,
                    "request"
                );
                response
            }
        })
    })
}
