//! Upload admission: at most N upload requests stream their bodies at once (monolithic `POST`,
//! `PATCH`, `PUT`); beyond, 429 `TOOMANYREQUESTS` with `Retry-After`, which clients retry. The
//! slot is held while the body streams in, and released with the response.

use std::sync::Arc;

use http::StatusCode;
use registry_core::ErrorCode;
use tokio::sync::Semaphore;

use super::{BoxService, FnLayer, Layer, call, service_fn};
use crate::error::ApiError;
use crate::request::RequestBody;

/// Upload requests streaming at once, by default.
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 256;

/// Says whether a request streams an upload body.
pub type IsUpload = fn(&http::Request<RequestBody>) -> bool;

/// The layer: at most `limit` requests `is_upload` selects at once (0: no limit).
pub fn layer(limit: usize, streams_upload: IsUpload) -> impl Layer<BoxService, Service = BoxService> + Clone {
    let slots = (limit > 0).then(|| Arc::new(Semaphore::new(limit)));
    FnLayer(move |inner: BoxService| {
        let slots = slots.clone();
        service_fn(move |req: http::Request<RequestBody>| {
            let (inner, slots) = (inner.clone(), slots.clone());
            async move {
                let _slot = match (&slots, streams_upload(&req)) {
                    (Some(slots), true) => match slots.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            return ApiError::new(
                                ErrorCode::TooManyRequests,
                                "too many uploads in progress; retry shortly",
                            )
                            .with_status(StatusCode::TOO_MANY_REQUESTS)
                            .with_header(http::header::RETRY_AFTER, "1")
                            .into_response(false);
                        }
                    },
                    _ => None,
                };
                call(&inner, req).await
            }
        })
    })
}
