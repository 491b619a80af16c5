//! # registry-core
//!
//! The pure types an OCI registry speaks, shared by every other crate of the workspace. No async
//! runtime, no I/O: everything here is a value, a parser or a hash.
//!
//! | module | what it holds |
//! |---|---|
//! | [`digest`] | [`Digest`] (`algorithm:encoded`, sha256 and sha512) and [`Algorithm`] |
//! | [`verifier`] | the streaming [`DigestVerifier`], its resumable [`VerifierState`], Stream and AsyncRead adapters |
//! | [`name`] | [`RepositoryName`], [`Tag`], [`Reference`] |
//! | [`scope`] | token-auth [`Scope`] and [`Action`], union and intersection |
//! | [`manifest`] | [`Manifest`] parsing and validation for OCI and Docker schema 2 kinds |
//! | [`media_type`] | the media types the registry knows |
//! | [`error`] | the crate's [`Error`], the spec's [`ErrorCode`]s and JSON [`ErrorBody`] |
//! | [`fault`] | [`BackendError`]: a store's failure with its cause and whether a retry can succeed |
//! | [`time`] | the injectable [`Clock`] and RFC 3339 timestamps |
//! | [`units`] | byte counts for people (`1.5 MiB`) |
//! | [`kind`] | [`kind::ArtifactKind`]: image, chart, signature, SBOM… told from a manifest's types |
//! | [`chart`] | Helm chart archives read as a bounded stream: metadata, README, values, dependencies |
//! | [`glob`] | doublestar [`glob::Pattern`]s (`*`, `**`, `?`, classes, braces) for selectors |
//!
//! Every parser returns a typed [`Error`] on bad input and never panics; [`Error::code`] maps each
//! error to the distribution spec's code, and [`ErrorCode::status`] to its HTTP status.
//!
//! ```
//! use registry_core::{Digest, DigestVerifier, RepositoryName, Scope};
//!
//! let name: RepositoryName = "library/app".parse()?;
//! let scope: Scope = "repository:library/app:pull,push".parse()?;
//! assert_eq!(scope.name, name.as_str());
//!
//! let expected = Digest::sha256_of(b"hello world");
//! let mut verifier = DigestVerifier::expecting(&expected, Some(11));
//! verifier.update(b"hello ")?;
//! verifier.update(b"world")?;
//! assert_eq!(verifier.finish()?.digest, expected);
//! # Ok::<(), registry_core::Error>(())
//! ```

pub mod cache_stats;
pub mod chart;
pub mod digest;
pub mod error;
pub mod event;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod kind;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod scope;
pub mod time;
pub mod units;
pub mod verifier;

pub use digest::{Algorithm, Digest};
pub use error::{Detail, Error, ErrorBody, ErrorCode, ErrorInfo};
pub use fault::BackendError;
pub use manifest::{Descriptor, Manifest, ManifestKind};
pub use name::{Reference, RepositoryName, Tag};
pub use scope::{Action, Scope};
pub use time::{Clock, ManualClock, SharedClock, SystemClock};
pub use verifier::{DigestVerifier, Verified, VerifierState, VerifyingReader, VerifyingStream};
