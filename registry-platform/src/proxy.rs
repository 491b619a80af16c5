//! Proxy-cache projects (Harbor's projects bound to a registry endpoint at creation,
//! `registry_id`): a pull of `<project>/<path>` that misses is served from the upstream's
//! `<path>` and cached, later pulls are served locally, and pushes are refused.
//!
//! - A manifest by tag is checked upstream with a `HEAD` (short timeout): when the upstream names
//!   what the cache holds, or cannot be reached, the cache serves it; otherwise the upstream's
//!   bytes are served as they are, and a fill task stores the manifest (by digest and tag) once
//!   the blobs it needs are here — those the client pulls arrive through the blob path, the rest
//!   the fill fetches itself after a short wait. An index is stored once its children are.
//! - A blob that misses is streamed from the upstream to the client while it is written to the
//!   store (the client does not wait for it to land); concurrent pulls of one blob fetch it once:
//!   in this process the first streams it and the others wait for it to land and read it here;
//!   across replicas sharing a database, the fetching one holds the store's lock named after the
//!   blob ([`MetadataStore::lock_job`]) and the others wait for the blob to land (or the lock to
//!   be let go, when its holder failed or died) before reading it, fetching it only then.
//!
//! [`MetadataStore::lock_job`]: registry_storage::MetadataStore::lock_job
//!
//! Content served straight from the upstream (before it is cached) is not checked by the
//! project's pull policies; once cached, it is.

use registry_core::cache_stats::CacheStats;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use registry_auth::{Accounts, SecretKey};
use registry_core::event::Operator;
use registry_core::{Digest, Manifest, Reference, RepositoryName};
use registry_storage::{ByteStream, Error, Registry, Result};

use crate::remote::client::Remote;
use crate::remote::session::Session;

/// The project metadata naming the registry endpoint a proxy-cache project fronts.
pub const REGISTRY_ID: &str = "registry_id";
/// How long a session with an upstream is kept (an endpoint's changes reach the cache within it).
const SESSION_TTL: Duration = Duration::from_secs(30);
/// How long an upstream's `HEAD` of a tag may take before the cache answers.
const TAG_CHECK: Duration = Duration::from_secs(5);
/// How long a fill waits for the client's blob pulls before fetching the rest itself.
const FILL_GRACE: Duration = Duration::from_secs(2);
/// How often a replica waiting for another's fetch of a blob looks again.
const FLIGHT_POLL: Duration = Duration::from_millis(100);
/// How long a replica waits for another's fetch of a blob before fetching it too.
const FLIGHT_WAIT: Duration = Duration::from_secs(120);

/// Where a repository's content comes from.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The project.
    pub project: String,
    /// The registry endpoint's id.
    pub registry_id: u64,
    /// The repository at the upstream (the path after the project).
    pub repository: String,
}

/// A manifest served from the upstream.
#[derive(Debug, Clone)]
pub struct Proxied {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Their digest.
    pub digest: Digest,
}

fn backend(what: impl std::fmt::Display) -> Error {
    Error::Backend(registry_core::BackendError::message(what.to_string(), false))
}

/// The proxy cache of this process.
pub struct ProxyCache {
    registry: Registry,
    accounts: Accounts,
    key: SecretKey,
    sessions: quick_cache::sync::Cache<u64, (Instant, Arc<Session>)>,
    /// Blobs being fetched here: each waiter's signal that it landed (or failed).
    inflight: Arc<Mutex<HashMap<Digest, tokio::sync::watch::Receiver<bool>>>>,
}

impl std::fmt::Debug for ProxyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCache").finish_non_exhaustive()
    }
}

fn operator() -> Operator {
    Operator::named("proxy-cache", None)
}

impl ProxyCache {
    /// The proxy cache over `registry`, its projects in `accounts`, endpoints' credentials
    /// opened with `key`.
    pub fn new(registry: Registry, accounts: Accounts, key: SecretKey) -> Arc<ProxyCache> {
        Arc::new(ProxyCache {
            registry,
            accounts,
            key,
            sessions: quick_cache::sync::Cache::new(64),
            inflight: Arc::default(),
        })
    }

    /// Its cache's figures (sessions with upstreams), for metrics.
    pub fn cache_stats(&self) -> CacheStats {
        let s = &self.sessions;
        CacheStats::counted("proxy_sessions", s.hits(), s.misses(), s.len())
    }

    /// The upstream of `repository`, when its project is a proxy cache.
    pub async fn upstream(&self, repository: &RepositoryName) -> Result<Option<Upstream>> {
        let Some((project, rest)) = repository.as_str().split_once('/') else { return Ok(None) };
        // The project as every pull reads it (within `RECENT_PROJECT`), shared with the access
        // layer and the pull policies.
        let found =
            self.accounts.recent_project(project).await.map_err(|e| backend(format!("reading a project: {e}")))?;
        let bound = found.and_then(|p| p.metadata.get(REGISTRY_ID).and_then(|v| v.parse::<u64>().ok()));
        Ok(bound.map(|registry_id| Upstream { project: project.to_owned(), registry_id, repository: rest.to_owned() }))
    }

    /// Refuses a push into a proxy-cache project, saying why.
    pub async fn refuse_push(&self, repository: &RepositoryName) -> Result<()> {
        match self.upstream(repository).await? {
            Some(up) => Err(Error::PushDenied {
                reason: format!(
                    "project {} is a proxy cache of registry {}: it takes content only from there, not from pushes",
                    up.project, up.registry_id
                ),
            }),
            None => Ok(()),
        }
    }

    /// A session with the upstream of `up`: one per endpoint, kept for [`SESSION_TTL`] (its
    /// connections and tokens reused), then made again from the endpoint as stored.
    async fn session(&self, up: &Upstream) -> Result<Arc<Session>> {
        if let Some((_, session)) = self.sessions.get(&up.registry_id).filter(|(at, _)| at.elapsed() < SESSION_TTL) {
            return Ok(session);
        }
        let endpoint = crate::remote::by_id(&**self.registry.metadata_store(), up.registry_id)
            .await?
            .ok_or_else(|| backend(format!("registry {} of proxy project {} was deleted", up.registry_id, up.project)))?
            .doc;
        let remote = Remote::of(&endpoint, &self.key).map_err(|e| backend(e.0))?;
        let session = Arc::new(remote.session().await.map_err(|e| backend(e.0))?);
        self.sessions.insert(up.registry_id, (Instant::now(), session.clone()));
        Ok(session)
    }

    /// The manifest `reference` of `repository` from the upstream, when the cache should not
    /// serve it itself (see the module docs); `None`: serve the local one.
    pub async fn manifest(
        self: &Arc<Self>,
        up: &Upstream,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Proxied>> {
        let local = match self.registry.stat_manifest(repository, reference).await {
            Ok(record) => Some(record),
            Err(Error::ManifestUnknown { .. } | Error::NameUnknown { .. }) => None,
            Err(e) => return Err(e),
        };
        let session = match self.session(up).await {
            Ok(s) => s,
            Err(e) if local.is_some() => {
                tracing::info!(%repository, error = %e, "the upstream is unreachable: serving the cache");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let reference_text = reference.to_string();
        if let (Reference::Tag(tag), Some(local)) = (reference, &local) {
            match tokio::time::timeout(TAG_CHECK, session.manifest_digest(&up.repository, &reference_text)).await {
                Ok(Ok(Some(digest))) if digest == local.digest => return Ok(None),
                Ok(Ok(Some(digest))) => {
                    // Moved upstream: to content cached already, the tag follows locally.
                    if self.registry.stat_manifest(repository, &Reference::Digest(digest.clone())).await.is_ok() {
                        self.registry.tag_manifest(repository, &digest, tag, &operator()).await?;
                        return Ok(None);
                    }
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => {
                    tracing::info!(%repository, error = %e, "the upstream did not answer: serving the cache");
                    return Ok(None);
                }
                Err(_) => return Ok(None),
            }
        } else if local.is_some() {
            return Ok(None);
        }
        let read = match session.manifest(&up.repository, &reference_text).await {
            Ok(Some(read)) => read,
            Ok(None) => return Err(Error::ManifestUnknown { reference: reference_text }),
            Err(e) => return Err(backend(e.0)),
        };
        let proxied = Proxied { media_type: read.media_type, bytes: read.bytes, digest: read.digest };
        let tag = match reference {
            Reference::Tag(t) => Some(t.clone()),
            Reference::Digest(_) => None,
        };
        let this = self.clone();
        let (up, repository, fill) = (up.clone(), repository.clone(), proxied.clone());
        tokio::spawn(async move {
            if let Err(e) = this.fill(&up, &repository, &fill, tag.as_ref(), 0).await {
                tracing::warn!(%repository, digest = %fill.digest, error = %e, "caching a proxied manifest failed");
            }
        });
        Ok(Some(proxied))
    }

    /// Stores `proxied` (and `tag`) once what it needs is here: the client's pulls bring blobs,
    /// the rest is fetched after a short wait; an index's children are filled first.
    async fn fill(
        self: &Arc<Self>,
        up: &Upstream,
        repository: &RepositoryName,
        proxied: &Proxied,
        tag: Option<&registry_core::Tag>,
        depth: usize,
    ) -> Result<()> {
        let manifest = Manifest::parse(&proxied.bytes, Some(&proxied.media_type)).map_err(Error::from)?;
        if depth < 4 {
            for child in &manifest.manifests {
                if self.registry.stat_manifest(repository, &Reference::Digest(child.digest.clone())).await.is_ok() {
                    continue;
                }
                let session = self.session(up).await?;
                let Some(read) =
                    session.manifest(&up.repository, &child.digest.to_string()).await.map_err(|e| backend(e.0))?
                else {
                    continue;
                };
                let child = Proxied { media_type: read.media_type, bytes: read.bytes, digest: read.digest };
                Box::pin(self.fill(up, repository, &child, None, depth + 1)).await?;
            }
        }
        tokio::time::sleep(FILL_GRACE).await;
        for blob in manifest.blobs() {
            if self.registry.stat_blob(repository, &blob.digest).await.is_ok() {
                continue;
            }
            if let Some((_, mut stream)) = self.blob(up, repository, &blob.digest).await? {
                while stream.next().await.is_some() {}
            }
            self.landed(repository, &blob.digest).await;
        }
        let by_digest = Reference::Digest(proxied.digest.clone());
        self.registry
            .put_manifest(repository, &by_digest, Some(&proxied.media_type), proxied.bytes.clone(), &operator())
            .await?;
        if let Some(tag) = tag {
            self.registry.tag_manifest(repository, &proxied.digest, tag, &operator()).await?;
        }
        Ok(())
    }

    /// Waits for a blob being fetched here to land (or fail).
    async fn landed(&self, _repository: &RepositoryName, digest: &Digest) {
        let waiting = self.inflight.lock().unwrap_or_else(|p| p.into_inner()).get(digest).cloned();
        if let Some(mut done) = waiting {
            let _ = done.wait_for(|d| *d).await;
        }
    }

    /// Blob `digest` of `repository` from the upstream, streamed while it is stored: its size
    /// (when the upstream says) and the bytes; `None` when another pull here fetched it
    /// meanwhile (read it locally).
    pub async fn blob(
        &self,
        up: &Upstream,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(Option<u64>, ByteStream)>> {
        // Single flight: one fetch per blob in this process; the others wait for it to land.
        let leader = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(digest) {
                Some(waiting) => Err(waiting.clone()),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    inflight.insert(digest.clone(), rx);
                    Ok(tx)
                }
            }
        };
        let done = match leader {
            Err(mut waiting) => {
                let _ = waiting.wait_for(|d| *d).await;
                return Ok(None);
            }
            Ok(done) => done,
        };
        let fetched = match self.replicas_flight(repository, digest).await {
            Ok(Some(lock)) => self.fetch(up, repository, digest, done, lock).await.map(Some),
            Ok(None) => {
                let _ = done.send(true);
                Ok(None)
            }
            Err(e) => Err(e),
        };
        if !matches!(fetched, Ok(Some(_))) {
            self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(digest);
        }
        fetched
    }

    /// Across replicas: the lock to fetch blob `digest` with (held until it is stored), or
    /// `None` once another replica's fetch has stored it.
    async fn replicas_flight(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<registry_storage::JobLock>> {
        let meta = self.registry.metadata_store();
        let name = format!("proxy-blob:{digest}");
        let since = Instant::now();
        loop {
            let lock = meta.lock_job(&name).await?;
            match self.registry.stat_blob(repository, digest).await {
                Ok(_) => {
                    if let Some(lock) = lock {
                        lock.release().await;
                    }
                    return Ok(None);
                }
                Err(Error::BlobUnknown { .. } | Error::NameUnknown { .. }) => {}
                Err(e) => return Err(e),
            }
            match lock {
                Some(lock) => return Ok(Some(lock)),
                None if since.elapsed() >= FLIGHT_WAIT => return Ok(Some(registry_storage::JobLock::default())),
                None => tokio::time::sleep(FLIGHT_POLL).await,
            }
        }
    }

    async fn fetch(
        &self,
        up: &Upstream,
        repository: &RepositoryName,
        digest: &Digest,
        done: tokio::sync::watch::Sender<bool>,
        lock: registry_storage::JobLock,
    ) -> Result<(Option<u64>, ByteStream)> {
        let session = self.session(up).await?;
        let response = session.blob(&up.repository, digest).await.map_err(|e| match e.0.contains("has no blob") {
            true => Error::BlobUnknown { digest: digest.clone() },
            false => backend(e.0),
        })?;
        let size = response.content_length();
        let mut upstream = response.bytes_stream();
        let (to_client, client) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(8);
        let (to_store, store) =
            tokio::sync::mpsc::channel::<std::result::Result<Bytes, registry_storage::BodyError>>(64);
        let (registry, repository_name, blob) = (self.registry.clone(), repository.clone(), digest.clone());
        // The store's side: the engine checks the digest as the bytes arrive.
        let stored = tokio::spawn(async move {
            let mut body = tokio_stream_of(store);
            registry.push_blob(&repository_name, &blob, &mut body, &operator()).await
        });
        let (inflight_digest, inflight) = (digest.clone(), self.inflight.clone());
        tokio::spawn(async move {
            let mut client_gone = false;
            while let Some(chunk) = upstream.next().await {
                match chunk {
                    Ok(bytes) => {
                        if !client_gone && to_client.send(Ok(bytes.clone())).await.is_err() {
                            // The client went away: the cache still gets the blob.
                            client_gone = true;
                        }
                        if to_store.send(Ok(bytes)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let why = crate::ssrf::root_cause(&e);
                        let _ = to_client.send(Err(std::io::Error::other(why.clone()))).await;
                        let _ = to_store.send(Err(why.into())).await;
                        break;
                    }
                }
            }
            drop(to_store);
            drop(to_client);
            if let Ok(Err(e)) = stored.await {
                tracing::warn!(digest = %inflight_digest, error = %e, "caching a proxied blob failed");
            }
            lock.release().await;
            let _ = done.send(true);
            inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&inflight_digest);
        });
        let stream: ByteStream =
            Box::pin(futures::stream::unfold(client, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }));
        Ok((size, stream))
    }
}

/// A receiver as the stream the engine reads a body from.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::result::Result<Bytes, registry_storage::BodyError>>,
) -> impl futures::Stream<Item = std::result::Result<Bytes, registry_storage::BodyError>> + Send + Unpin {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}
