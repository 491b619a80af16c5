//! [`RegistryService`]: the whole HTTP face as one tower service, assembled from the builder's
//! choices.
//!
//! ```text
//! access log      one line per request, API version header, panics as 500
//!   prefix        the mount point stripped and remembered
//!     /healthz /readyz       liveness, and readiness (database answers, storage writable)
//!     /auth/token /auth/jwks the token service                     (token.rs)
//!     /api/v2.0/…            the management API                    (api/)
//!     /chartrepo/…           Helm repositories made from OCI charts (api/chartrepo.rs)
//!     /v2/…                  the distribution API                  (distribution/)
//!     /, /portal/…, /c/…     the web portal and its sessions       (portal/)
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use registry_storage::{BodyError, Registry};
use tower::ServiceBuilder;

use crate::api::{API_PREFIX, Api, Callers};
use crate::distribution::{self, Distribution};
use crate::error::ApiError;
use crate::layers::{BoxService, access_log, call, prefix, service_fn};
use crate::request::{RequestBody, boxed};
use crate::response::{ResponseBody, json, text};
use crate::token::{JWKS_PATH, TOKEN_PATH, TokenAuth};

/// The registry as an HTTP service. Cheap to clone.
///
/// It implements [`tower::Service`] for any request body of [`Bytes`], with `Error =
/// Infallible`: every failure is a response (the spec's JSON error).
#[derive(Clone)]
pub struct RegistryService {
    inner: BoxService,
    /// Behind an `Arc`: the service is cloned for every request (hyper's and tower's way), and a
    /// `Registry`'s clone is an increment of each of its shared parts and a copy of its pull
    /// policies (both showed in the profile of a manifest GET).
    registry: Arc<Registry>,
}

impl std::fmt::Debug for RegistryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryService").finish_non_exhaustive()
    }
}

impl RegistryService {
    /// The engine behind the service.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles one request. Never fails: errors become the spec's error responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BodyError>,
    {
        let (parts, body) = req.into_parts();
        call(&self.inner, Request::from_parts(parts, boxed(body))).await
    }
}

impl<B> tower::Service<Request<B>> for RegistryService
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BodyError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// What the stack is assembled from.
pub(crate) struct Parts {
    pub(crate) registry: Registry,
    pub(crate) token: Option<Arc<TokenAuth>>,
    /// The management API (none on a token server).
    pub(crate) api: Option<Arc<Api>>,
    /// The distribution API is served (not on a token server).
    pub(crate) distribution: bool,
    pub(crate) prefix: String,
    pub(crate) settings: distribution::Settings,
    /// Metrics, counted when on.
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The metrics are also served at `/metrics` here.
    pub(crate) serve_metrics: bool,
    /// The web portal, when served.
    pub(crate) portal: Option<Arc<crate::portal::Portal>>,
    /// Proxy-cache projects.
    #[cfg(feature = "replication")]
    pub(crate) proxy: Option<Arc<registry_platform::proxy::ProxyCache>>,
}

/// Assembles the service; `callers` says how the management API authenticates.
pub(crate) fn assemble(parts: Parts, callers: Callers) -> RegistryService {
    let registry = parts.registry.clone();
    let token = parts.token.as_ref().map(|auth| crate::token::service(auth.clone()));
    let api = parts.api.clone().map(|api| crate::api::service(api, callers, parts.settings.deadline));
    let v2 = parts.distribution.then(|| {
        distribution::service(
            Arc::new(Distribution {
                registry: registry.clone(),
                auth: parts.token.clone(),
                #[cfg(feature = "replication")]
                proxy: parts.proxy.clone(),
            }),
            parts.settings,
        )
    });
    let metrics = parts.metrics.clone();
    let served = metrics.clone().filter(|_| parts.serve_metrics);
    let portal = parts.portal.clone().map(crate::portal::service);
    let branches = Arc::new(Branches { token, api, v2, portal, registry: registry.clone(), metrics: served });
    let router = service_fn(move |req: Request<RequestBody>| {
        let branches = branches.clone();
        async move {
            let path = req.uri().path();
            let head = req.method() == Method::HEAD;
            let branch = if path == "/healthz" {
                return text(StatusCode::OK, "ok");
            } else if path == "/readyz" {
                return readiness(&branches.registry).await;
            } else if path == "/metrics"
                && let Some(metrics) = &branches.metrics
            {
                let text = metrics.render(&branches.registry).await;
                let mut response = crate::response::text(StatusCode::OK, text);
                crate::response::set(response.headers_mut(), http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE);
                return response;
            } else if path == TOKEN_PATH || path == JWKS_PATH {
                &branches.token
            } else if path.strip_prefix(API_PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                || path.starts_with("/chartrepo/")
            {
                &branches.api
            } else if path == "/v2" || path.starts_with("/v2/") {
                &branches.v2
            } else if crate::portal::owns(path) {
                &branches.portal
            } else {
                &None
            };
            match branch {
                Some(service) => call(service, req).await,
                None => ApiError::no_such_endpoint().into_response(head),
            }
        }
    });
    let inner =
        ServiceBuilder::new().layer(access_log::layer(metrics)).layer(prefix::layer(&parts.prefix)).service(router);
    RegistryService { inner, registry: Arc::new(registry) }
}

/// Where the router sends a request, by path.
struct Branches {
    token: Option<BoxService>,
    api: Option<BoxService>,
    v2: Option<BoxService>,
    portal: Option<BoxService>,
    registry: Registry,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// `/readyz`: 200 when the metadata store answers and the blob store takes a write (an upload
/// of a few bytes, then removed), 503 naming the problems otherwise.
async fn readiness(registry: &Registry) -> Response<ResponseBody> {
    let meta = registry.metadata_store().list_repositories(None, 1).await.err();
    let blobs = probe_write(registry.blob_store().as_ref()).await.err();
    let problems: Vec<String> = meta.into_iter().chain(blobs).map(|e| e.to_string()).collect();
    if problems.is_empty() {
        json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({"status": "unavailable", "problems": problems}))
    }
}

/// Writes a few bytes to a new upload of the blob store and removes it.
async fn probe_write(blobs: &dyn registry_storage::BlobStore) -> registry_storage::Result<()> {
    let id = registry_storage::UploadId::new_random();
    let state = blobs.upload_create(&id, None).await?;
    let mut body = futures::stream::iter([Ok::<_, BodyError>(Bytes::from_static(b"readiness probe"))]);
    let appended = blobs.upload_append(&id, &state, 0, &mut body).await;
    let removed = match &appended {
        Ok((_, state)) => blobs.upload_delete(&id, Some(state)).await,
        Err(_) => blobs.upload_delete(&id, Some(&state)).await,
    };
    appended?;
    removed
}
