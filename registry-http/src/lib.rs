//! # registry-http
//!
//! The registry's HTTP face, on hyper 1.x and tower: the OCI Distribution API, the token
//! service, and Harbor's management API, as a stack of small layers in front of thin services.
//!
//! | piece | what it is |
//! |---|---|
//! | [`RegistryBuilder`] | the one way to assemble a server: storage, accounts or an authenticator and policy, tokens, TLS, limits, listener |
//! | [`Server`] | a bound server: [`Server::serve`] until a shutdown signal |
//! | [`TestRegistry`] | a server started on an ephemeral port of 127.0.0.1, for other crates' tests |
//! | [`RegistryService`] | the assembled `tower::Service` (error type `Infallible`), to mount in a larger application |
//! | [`layers`] | access log, path prefix, request deadlines, authentication, upload admission |
//! | [`distribution`] | `/v2/…`: the router, authorization, and the handlers |
//! | [`token`] | `/auth/token` and `/auth/jwks` |
//! | [`api`] | `/api/v2.0/…` in Harbor's shapes |
//! | [`portal`] | the web portal at `/` and Harbor's session endpoints `/c/…` |
//! | [`error`] | [`ApiError`] and the one mapping of every error type to HTTP |
//! | [`server`] | serving on TCP (plain or TLS) or a Unix socket, connection limits, graceful shutdown |
//!
//! An embedder with its own authentication writes the two decisions and assembles:
//!
//! ```no_run
//! # use registry_http::RegistryBuilder;
//! # use registry_auth::{AccessPolicy, Authenticator};
//! # async fn run(my_authenticator: impl Authenticator, my_policy: impl AccessPolicy) -> Result<(), Box<dyn std::error::Error>> {
//! RegistryBuilder::new()
//!     .authenticator(my_authenticator)
//!     .access_policy(my_policy)
//!     .bind("127.0.0.1:5000").await?
//!     .serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod builder;
pub mod distribution;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod portal;
pub mod request;
pub mod response;
pub mod server;
pub mod service;
pub mod session;
pub mod test_registry;
pub mod token;

pub use builder::{BuildError, RegistryBuilder, Server};
pub use error::ApiError;
pub use registry_platform::GarbageCollector;
pub use request::RequestBody;
pub use response::ResponseBody;
pub use server::timeouts::Timeouts;
pub use server::tls::TlsConfig;
pub use server::{ServerOptions, serve};
pub use service::RegistryService;
pub use test_registry::TestRegistry;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
