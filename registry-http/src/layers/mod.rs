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
//! stack can be assembled at run time from the builder's choices.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

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

/// Every service of the stack, boxed.
pub type BoxService = tower::util::BoxCloneSyncService<Request<RequestBody>, Response<ResponseBody>, Infallible>;

/// The future of a [`BoxService`].
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// A service from an async function of the request.
pub fn service_fn<F, Fut>(f: F) -> BoxService
where
    F: Fn(Request<RequestBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    BoxService::new(tower::service_fn(move |req| {
        let response = f(req);
        async move { Ok::<_, Infallible>(response.await) }
    }))
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

/// Calls a boxed service (every service of the stack is always ready).
pub(crate) fn call(
    service: &BoxService,
    req: Request<RequestBody>,
) -> impl Future<Output = Response<ResponseBody>> + Send + 'static {
    use futures::FutureExt;
    let mut service = service.clone();
    tower::Service::call(&mut service, req).map(|result: Result<Response<ResponseBody>, Infallible>| match result {
        Ok(response) => response,
        Err(never) => match never {},
    })
}
