//! # registry-http
//!
//! The registry's HTTP face, on hyper 1.x.
//!
//! | piece | what it is |
//! |---|---|
//! | [`RegistryService`] | the OCI Distribution API as a `tower::Service` (error type `Infallible`: every failure is the spec's JSON error) |
//! | [`serve`] | serves a service on a TCP listener with graceful shutdown |
//! | [`TestRegistry`] | an in-process registry on an ephemeral port, for other crates' tests |
//! | [`route`] | the right-to-left router |
//! | the `registry` binary | `registry serve`: config file, flags, environment, logs, signals |
//!
//! ```no_run
//! use registry_http::{RegistryService, ServerOptions, serve};
//! use registry_storage::Registry;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::in_memory()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! serve(listener, RegistryService::new(registry), ServerOptions::default(), std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod data_dir;
pub mod deadline;
pub mod gc;
pub mod response;
pub mod route;
pub mod server;
pub mod service;
pub mod test_registry;
pub mod tls;

pub use auth::AuthSettings;
pub use data_dir::open_data_dir;
pub use deadline::Timeouts;
pub use gc::GarbageCollector;
pub use response::{ApiError, ResponseBody};
pub use route::Route;
pub use server::{ServerOptions, serve};
pub use service::RegistryService;
pub use test_registry::{TestRegistry, TestRegistryBuilder};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
