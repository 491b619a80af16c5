//! Mounting under a path prefix: `/registry` answers `/registry/v2/…`. The prefix is stripped
//! before routing and kept in the request's extensions ([`PathPrefix`]) for the `Location` and
//! `Link` headers, which must carry it.

use http::Uri;

use super::{BoxService, FnLayer, Layer, call, service_fn};
use crate::error::ApiError;

/// The prefix a request arrived under (empty when none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPrefix(pub std::sync::Arc<str>);

impl PathPrefix {
    /// `path` as the client must see it.
    pub fn location(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// The layer; `prefix` without a trailing slash (`""` for none).
pub fn layer(prefix: &str) -> impl Layer<BoxService, Service = BoxService> + Clone {
    let prefix: std::sync::Arc<str> = prefix.trim_end_matches('/').into();
    FnLayer(move |inner: BoxService| {
        let prefix = prefix.clone();
        service_fn(move |mut req: http::Request<crate::request::RequestBody>| {
            let (inner, prefix) = (inner.clone(), prefix.clone());
            async move {
                if !prefix.is_empty() {
                    let path = req.uri().path();
                    let Some(rest) = path.strip_prefix(&*prefix).filter(|r| r.is_empty() || r.starts_with('/')) else {
                        return ApiError::no_such_endpoint().into_response(req.method() == http::Method::HEAD);
                    };
                    let rest = if rest.is_empty() { "/" } else { rest };
                    let path_and_query = match req.uri().query() {
                        Some(q) => format!("{rest}?{q}"),
                        None => rest.to_owned(),
                    };
                    let mut parts = req.uri().clone().into_parts();
                    parts.path_and_query = path_and_query.parse().ok();
                    if let Ok(uri) = Uri::from_parts(parts) {
                        *req.uri_mut() = uri;
                    }
                }
                req.extensions_mut().insert(PathPrefix(prefix));
                call(&inner, req).await
            }
        })
    })
}
