//! The layers every request passes on its way to a service, each a small tower [`Layer`]:
//!
//! | layer | what it does |
//! |---|---|
//! | [`access_log`] | one log line per request, `Docker-Distribution-API-Version`, a panic becomes a 500 JSON error |
//! | [`prefix`] | strips the path prefix a registry is mounted under, and remembers it for `Location` headers |
//! | [`deadline`] | a request that does not produce its response in time gets 503 (a hung backend) |
//! | [`authenticate`] | the caller's credentials, verified, as an [`Authentication`] in the request's extensions |
//! | [`admission`] | at most N upload bodies streaming at once; 429 `TOOMANYREQUESTS` beyond |
//!
//! Every service and layer here is a `tower::Service<Request<RequestBody>>` whose error is
//! `Infallible`: every failure is already a response. They are boxed ([`BoxService`]) so the
//! stack can be assembled at run time from the builder's choices, and shared, so that passing a
//! request down the stack allocates nothing but each layer's future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};
pub use tower::Layer;

use crate::request::RequestBody;
use crate::response::ResponseBody;

pub mod access_log;
pub mod admission;
pub mod authenticate;
pub mod deadline;
pub mod prefix;

pub use authenticate::Authentication;

/// Every service of the stack: a shared handler, so that cloning one (every layer does, once per
/// request, to move it into the request's future) is a reference count, not a copy of the stack
/// behind it.
#[derive(Clone)]
pub struct BoxService(Arc<Handler>);

type Handler = dyn Fn(Request<RequestBody>) -> BoxFuture + Send + Sync;

/// The future of a [`BoxService`].
pub type BoxFuture = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

impl BoxService {
    /// Handles one request.
    pub fn call(&self, req: Request<RequestBody>) -> BoxFuture {
        (self.0)(req)
    }
}

impl std::fmt::Debug for BoxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxService")
    }
}

impl tower::Service<Request<RequestBody>> for BoxService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let response = BoxService::call(self, req);
        Box::pin(async move { Ok(response.await) })
    }
}

/// A service from an async function of the request.
pub fn service_fn<F, Fut>(f: F) -> BoxService
where
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    BoxService(Arc::new(move |req| Box::pin(f(req))))
}

/// A layer from a function wrapping a service.
#[derive(Clone)]
pub struct FnLayer<F>(pub F);

impl<F> Layer<BoxService> for FnLayer<F>
where
    F: Fn(BoxService) -> BoxService,
{
    type Service = BoxService;

    fn layer(&self, inner: BoxService) -> BoxService {
        (self.0)(inner)
    }
}

/// Calls a boxed service.
pub(crate) fn call(service: &BoxService, req: Request<RequestBody>) -> BoxFuture {
    service.call(req)
}
