//! # registry-object-store
//!
//! Blobs in object storage, for replicas that share one bucket: [`ObjectBlobStore`] implements
//! the engine's [`BlobStore`](registry_storage::BlobStore) over the `object_store` crate, built
//! for S3 and S3-compatible servers (AWS S3, MinIO, Garage, Ceph RGW, R2) by
//! [`ObjectBlobStore::s3`], or over any other `object_store` backend by
//! [`ObjectBlobStore::with_store`].
//!
//! | piece | what it holds |
//! |---|---|
//! | [`S3Config`] | bucket, endpoint, region, addressing style, credentials (else the AWS chain) |
//! | `layout` | the keys: `blobs/<algorithm>/<hex>`, `uploads/<id>/…` |
//! | `state` | an upload's state: multipart id, parts, tail |
//! | `upload` | appending, reading back, publishing and removing uploads |
//! | `published` | reading, listing and deleting published blobs |
//!
//! # Uploads
//!
//! An upload is a multipart upload of fixed-size parts (8 MiB by default; S3 wants at least 5
//! MiB for every part but the last, R2 wants them equal) plus a *tail* object holding the bytes
//! after the last full part. An append reads the tail back, streams on, sends each full part
//! as it fills (two in flight), and writes the new tail under a new name; its result is the new
//! state, which the engine saves with the new offset in the metadata store (PostgreSQL), so the
//! next chunk can land on any replica. An append that was never acknowledged leaves the saved
//! state intact: its parts are rewritten at the same part numbers by the retry, its tail is an
//! object nobody names (removed with the upload).
//!
//! **Publishing** never exposes unverified bytes and never replaces an object with different
//! bytes: the engine has verified the digest before it asks. The tail becomes the last part, the
//! multipart upload completes at its target, and a chunked upload's target is copied to the
//! blob's key (a client that announced a sha256 digest up front had its parts sent to the
//! blob's key directly: completion is the publication). Same digest, same bytes: replacing an
//! existing copy is harmless, and makes it fresh for garbage collection.
//!
//! **Deleting** a published blob is a HEAD then a DELETE: S3 has no generally available
//! conditional delete. The engine holds every digest in the metadata store while it writes and
//! links it (`MetadataStore::hold_digest`); garbage collection does not mark a held digest, and
//! a digest it has marked cannot be held (the push gets a retryable 503). So a collection's HEAD
//! and DELETE never overlap a write of the same digest, and no manifest ever names a deleted
//! blob. (Found by the shared garbage-collection suite, whose racing pushes lost blobs to the
//! HEAD-then-DELETE before the holds existed.)
//!
//! Connection failures and server errors are retried by the client (bounded); what remains is a
//! retryable fault (503 with `Retry-After`), and the store recovers with the server, without a
//! restart.

use std::sync::Arc;
use std::time::Duration;

use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use registry_core::BackendError;

mod layout;
mod published;
mod state;
mod store;
mod upload;

use layout::Layout;

/// The part size, by default.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 2;

/// How long a presigned download URL is valid (distribution's default).
const REDIRECT_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// The largest object one S3 copy request takes; larger ones are copied by streaming.
const MAX_COPY: u64 = 5 << 30;

/// Where blobs are kept in S3 (or an S3-compatible server), and how to reach it.
///
/// Credentials left out come from the standard AWS chain: `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, web identity (EKS), the container credentials
/// endpoint (ECS), then the instance metadata service.
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket (must exist).
    pub bucket: String,
    /// A key prefix, to share a bucket (default: none).
    pub prefix: String,
    /// The endpoint, for servers other than AWS (`http://127.0.0.1:3900`); plain HTTP is allowed
    /// only to an endpoint given here.
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`; Garage's is `garage`).
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), as most self-hosted servers want.
    pub path_style: bool,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret key (never printed).
    pub secret_access_key: Option<String>,
    /// The session token, with temporary credentials.
    pub session_token: Option<String>,
    /// Answer blob downloads with a redirect to a presigned URL (distribution's `redirect`),
    /// instead of streaming them through the registry. Off by default.
    pub redirect: bool,
    /// The part size (default [`DEFAULT_PART_SIZE`]; at least [`MIN_PART_SIZE`]).
    pub part_size: Option<u64>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("redirect", &self.redirect)
            .finish()
    }
}

/// Why the store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is incomplete or contradictory.
    #[error("object storage configuration: {0}")]
    Config(String),
    /// The bucket does not answer, does not exist, or refuses the credentials.
    #[error("bucket {bucket} at {endpoint}: {source}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// Where it was looked for.
        endpoint: String,
        /// Why.
        #[source]
        source: BackendError,
    },
}

/// Blobs and uploads in object storage. Cheap to clone.
#[derive(Clone)]
pub struct ObjectBlobStore {
    objects: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    signer: Option<Arc<dyn Signer>>,
    layout: Layout,
    part_size: u64,
    /// What the store is, for messages.
    describe: Arc<str>,
}

impl std::fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore").field("store", &self.describe).finish_non_exhaustive()
    }
}

/// Client retries: a few, within seconds, so that an outage surfaces as a 503 the client retries
/// rather than a request held for minutes.
fn retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(10),
    }
}

impl ObjectBlobStore {
    /// Connects to an S3 bucket and checks that it answers (a listing of the prefix).
    pub async fn s3(config: S3Config) -> Result<ObjectBlobStore, ConnectError> {
        // reqwest's rustls needs a process-wide provider; ours is ring (a no-op when installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        if config.bucket.is_empty() {
            return Err(ConnectError::Config("no bucket given".into()));
        }
        let part_size = config.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(ConnectError::Config(format!(
                "part_size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes"
            )));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(retries());
        let endpoint = config.endpoint.clone().unwrap_or_else(|| "AWS S3".into());
        if let Some(url) = &config.endpoint {
            builder = builder.with_endpoint(url).with_allow_http(url.starts_with("http://"));
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let s3 = Arc::new(builder.build().map_err(|e| ConnectError::Config(e.to_string()))?);
        let describe = format!("bucket {} at {endpoint}", config.bucket);
        let signer: Option<Arc<dyn Signer>> = config.redirect.then(|| s3.clone() as Arc<dyn Signer>);
        let store = ObjectBlobStore {
            objects: s3.clone(),
            multipart: s3,
            signer,
            layout: Layout::new(&config.prefix),
            part_size,
            describe: describe.into(),
        };
        store.check().await.map_err(|source| ConnectError::Bucket { bucket: config.bucket, endpoint, source })?;
        Ok(store)
    }

    /// A store over any `object_store` backend with multipart uploads (GCS, Azure, a local
    /// directory, memory), with keys under `prefix`.
    pub fn with_store<S>(store: S, prefix: &str) -> ObjectBlobStore
    where
        S: ObjectStore + MultipartStore,
    {
        let store = Arc::new(store);
        ObjectBlobStore {
            describe: store.to_string().into(),
            objects: store.clone(),
            multipart: store,
            signer: None,
            layout: Layout::new(prefix),
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// The same store with parts of `bytes` (at least [`MIN_PART_SIZE`] for S3; smaller only
    /// for tests on stores that allow it).
    pub fn with_part_size(mut self, bytes: u64) -> ObjectBlobStore {
        self.part_size = bytes.max(1);
        self
    }

    /// What the store is (bucket and endpoint), for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether the bucket answers now: lists one key of the prefix.
    pub async fn check(&self) -> Result<(), BackendError> {
        use futures::StreamExt;
        let mut listing = self.objects.list(Some(&self.layout.blobs()));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(store::backend("listing the bucket", e)),
        }
    }
}
