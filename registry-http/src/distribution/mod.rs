//! The OCI Distribution API (`/v2/…`): a stack of small steps in front of thin handlers.
//!
//! ```text
//! route      the path parsed from the right into a [`Route`], the query decoded      (Routed)
//! deadline   manifests, listings and metadata calls answer in time, or 503
//! authenticate   the bearer token verified                                       (Authentication)
//! access     the token covers the route's scopes, else the 401 challenge         (access.rs)
//! admission  at most N upload bodies at once
//! handlers   blobs.rs, uploads.rs, manifests.rs, listing.rs: HTTP <-> engine calls
//! ```
//!
//! Handlers translate between HTTP and [`Registry`] calls; no registry rule lives here.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use registry_core::ErrorCode;
use registry_storage::Registry;
use tower::ServiceBuilder;

use crate::error::ApiError;
use crate::layers::prefix::PathPrefix;
use crate::layers::{BoxService, FnLayer, Layer, admission, authenticate, call, deadline, service_fn};
use crate::request::{Query, RequestBody};
use crate::response::{ResponseBody, json};
use crate::token::TokenAuth;

pub mod access;
mod blobs;
mod headers;
mod listing;
mod manifests;
pub mod route;
mod uploads;

use route::{Route, RouteError};

/// A request's route and query, parsed once at the entrance of the distribution API.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The endpoint.
    pub route: Route,
    /// The decoded query string.
    pub query: Query,
}

/// What the distribution handlers share.
pub(crate) struct Distribution {
    pub(crate) registry: Registry,
    pub(crate) auth: Option<Arc<TokenAuth>>,
    /// Proxy-cache projects: misses fetched upstream, pushes refused.
    #[cfg(feature = "replication")]
    pub(crate) proxy: Option<Arc<registry_platform::proxy::ProxyCache>>,
}

impl Distribution {
    /// The upstream of `name`, when it is in a proxy-cache project.
    #[cfg(feature = "replication")]
    pub(crate) async fn upstream(
        &self,
        name: &registry_core::RepositoryName,
    ) -> Result<Option<(Arc<registry_platform::proxy::ProxyCache>, registry_platform::proxy::Upstream)>, ApiError> {
        let Some(proxy) = &self.proxy else { return Ok(None) };
        Ok(proxy.upstream(name).await?.map(|up| (proxy.clone(), up)))
    }

    /// Refuses a write into a proxy-cache project.
    pub(crate) async fn refuse_push(&self, name: &registry_core::RepositoryName) -> Result<(), ApiError> {
        #[cfg(feature = "replication")]
        if let Some(proxy) = &self.proxy {
            proxy.refuse_push(name).await?;
        }
        let _ = name;
        Ok(())
    }
}

/// Settings of the distribution stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) deadline: Duration,
    pub(crate) upload_limit: usize,
}

/// The distribution API as one service.
pub(crate) fn service(dist: Arc<Distribution>, settings: Settings) -> BoxService {
    let handlers = handlers(dist.clone());
    let inner = match &dist.auth {
        Some(auth) => ServiceBuilder::new()
            .layer(authenticate::layer(authenticate::Mode::Bearer(auth.verifier.clone())))
            .layer(access::layer(auth.clone()))
            .layer(admission::layer(settings.upload_limit, streams_upload))
            .service(handlers),
        None => admission::layer(settings.upload_limit, streams_upload).layer(handlers),
    };
    ServiceBuilder::new().layer(route_layer()).layer(deadline::layer(settings.deadline, bounded_work)).service(inner)
}

/// Parses the route and the query into [`Routed`]; answers what no route matches.
fn route_layer() -> impl Layer<BoxService, Service = BoxService> + Clone {
    FnLayer(|inner: BoxService| {
        service_fn(move |mut req: Request<RequestBody>| {
            let inner = inner.clone();
            async move {
                let head = req.method() == Method::HEAD;
                let route = match Route::parse(req.uri().path()) {
                    Ok(route) => route,
                    // A reference that is neither tag nor digest names no manifest: readers get
                    // 404, as clients and conformance tests expect; a writer gets TAG_INVALID.
                    Err(RouteError::BadReference(e)) if req.method() != Method::PUT => {
                        return ApiError::new(ErrorCode::ManifestUnknown, format!("manifest unknown: {e}"))
                            .into_response(head);
                    }
                    Err(e) => return ApiError::from(e).into_response(head),
                };
                let query = Query::of(&req);
                req.extensions_mut().insert(Routed { route, query });
                call(&inner, req).await
            }
        })
    })
}

/// Whether a request's work is bounded (timed by the deadline layer): everything but moving a
/// blob's bytes.
fn bounded_work(req: &Request<RequestBody>) -> bool {
    let Some(routed) = req.extensions().get::<Routed>() else { return true };
    match (&routed.route, req.method()) {
        (Route::Blob { .. }, &Method::GET) => false,
        (Route::StartUpload { .. }, &Method::POST) => routed.query.get("digest").is_none(),
        (Route::Upload { .. }, &Method::PATCH | &Method::PUT) => false,
        _ => true,
    }
}

/// Whether a request streams an upload body (admission's question).
fn streams_upload(req: &Request<RequestBody>) -> bool {
    let Some(routed) = req.extensions().get::<Routed>() else { return false };
    match (&routed.route, req.method()) {
        (Route::StartUpload { .. }, &Method::POST) => routed.query.get("digest").is_some(),
        (Route::Upload { .. }, &Method::PATCH | &Method::PUT) => true,
        _ => false,
    }
}

/// What a handler gets.
pub(crate) struct Call {
    pub(crate) route: Route,
    pub(crate) query: Query,
    pub(crate) prefix: PathPrefix,
    pub(crate) req: Request<RequestBody>,
}

type Handled = Result<Response<ResponseBody>, ApiError>;

fn handlers(dist: Arc<Distribution>) -> BoxService {
    service_fn(move |mut req: Request<RequestBody>| {
        let dist = dist.clone();
        async move {
            let head = req.method() == Method::HEAD;
            let Some(Routed { route, query }) = req.extensions_mut().remove::<Routed>() else {
                return ApiError::no_such_endpoint().into_response(head);
            };
            let prefix = req.extensions().get::<PathPrefix>().cloned().unwrap_or_default();
            match dispatch(&dist, Call { route, query, prefix, req }).await {
                Ok(response) => response,
                Err(e) => e.into_response(head),
            }
        }
    })
}

async fn dispatch(dist: &Distribution, call: Call) -> Handled {
    let method = call.req.method().clone();
    match (&call.route, &method) {
        (Route::Base, &Method::GET | &Method::HEAD) => Ok(json(StatusCode::OK, &serde_json::json!({}))),
        (Route::Catalog, &Method::GET) => listing::catalog(dist, call).await,
        (Route::Tags { .. }, &Method::GET) => listing::tags(dist, call).await,
        (Route::Referrers { .. }, &Method::GET) => listing::referrers(dist, call).await,
        (Route::Manifest { .. }, &Method::GET | &Method::HEAD) => manifests::get(dist, call).await,
        (Route::Manifest { .. }, &Method::PUT) => manifests::put(dist, call).await,
        (Route::Manifest { .. }, &Method::DELETE) => manifests::delete(dist, call).await,
        (Route::Blob { .. }, &Method::GET) => blobs::get(dist, call).await,
        (Route::Blob { .. }, &Method::HEAD) => blobs::head(dist, call).await,
        (Route::Blob { .. }, &Method::DELETE) => blobs::delete(dist, call).await,
        (Route::StartUpload { .. }, &Method::POST) => uploads::start(dist, call).await,
        (Route::Upload { .. }, &Method::GET) => uploads::status(dist, call).await,
        (Route::Upload { .. }, &Method::PATCH) => uploads::patch(dist, call).await,
        (Route::Upload { .. }, &Method::PUT) => uploads::put(dist, call).await,
        (Route::Upload { .. }, &Method::DELETE) => uploads::cancel(dist, call).await,
        (_, method) => Err(ApiError::new(ErrorCode::Unsupported, format!("method {method} not allowed here"))),
    }
}
