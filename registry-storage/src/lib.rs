//! # registry-storage
//!
//! The registry engine and the storage it runs on.
//!
//! | piece | what it is |
//! |---|---|
//! | [`BlobStore`] | immutable content-addressed bytes and the uploads that become them (an upload's store state travels with its offset): [`MemoryBlobStore`], [`FsBlobStore`]; object storage in `registry-object-store` |
//! | [`MetadataStore`] | blob links, manifests, tags, referrers, upload sessions: [`MemoryMetadataStore`] here; redb (`registry-redb`) and PostgreSQL in their crates |
//! | [`Registry`] | the engine over both: uploads, mounts, blobs, manifests, tags, catalog, referrers; garbage collection ([`gc`]); copying a registry into other stores and comparing ([`transfer`]) |
//! | [`listing`] | which manifests are artifacts, and the indexes and counts that keep listings at the cost of a page |
//! | [`quota`] | per-project storage usage kept by the stores in their transactions, and the limit rule |
//! | [`immutable`] | tag immutability rules as a value the stores apply in their transactions |
//! | [`pull_policy`] | the rules a pull must pass (content trust, vulnerability prevention), asked by the engine |
//! | [`reports`] | scan reports by artifact digest, scanner and format, written by compare and set |
//! | `lease` | coordination through the metadata store: upload leases between replicas, digest holds against garbage collection |
//! | `testing` (feature) | the suites every backend passes (blob store, metadata store, concurrent writers, garbage collection) and fault-injecting wrappers |
//!
//! The engine checks every rule of the distribution spec and hashes every pushed byte; the stores
//! only keep what they are given. Anything an embedder may replace is a trait object, chosen at
//! run time.

pub mod blob;
pub mod durable;
pub mod engine;
pub mod error;
pub mod gc;
mod hashing;
pub mod immutable;
pub mod jobs;
mod lease;
pub mod listing;
pub mod meta;
pub mod policies;
pub mod pull_policy;
pub mod quota;
mod recorder;
pub mod reports;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;

pub use blob::fs::FsBlobStore;
pub use blob::memory::MemoryBlobStore;
pub use blob::{BlobStore, BodyError, BodyStream, ByteStream, UploadId};
pub use engine::{ChunkRange, Limits, Registry};
pub use error::{Error, Result};
pub use gc::{GcOptions, GcReport};
pub use immutable::{Protection, Protections};
pub use jobs::runner::{JobContext, JobFailure, JobHandler, JobRunner, JobTimes, RunnerHandle};
pub use jobs::{Job, JobQueue, JobStatus, NewJob};
pub use meta::memory::MemoryMetadataStore;
pub use meta::{JobLock, ManifestEntry, ManifestRecord, MetadataStore, Page, Pulls, UploadRecord};
pub use policies::{PolicyRecord, PolicyStore};
pub use pull_policy::PullPolicies;
pub use quota::{Quota, QuotaStore};
pub use reports::{ReportStore, ScanReport};
pub use transfer::TransferReport;
