//! What an artifact shows besides its manifest (Harbor's "additions" and `extra_attrs`), read on
//! demand from the stored blobs and cached by digest — blobs never change, so neither does what
//! is read from them, on any replica:
//!
//! - an image's platform, author, creation time, build history and layers (its manifest and
//!   config blob, each read within [`Limits::config_bytes`]);
//! - a chart's metadata (the config blob `helm push` writes) and the layer holding its archive;
//! - a chart's README, values and dependencies, read from its archive as one pass over the blob's
//!   stream ([`registry_core::chart`]), within [`Limits::chart`].
//!
//! A hostile or broken artifact gives [`AdditionError::Unreadable`] naming the limit or the
//! entry; that outcome is cached like a good one (the same bytes always give it), while a store
//! that fails gives [`AdditionError::Store`] and caches nothing: no entry is ever half-made.

use registry_core::cache_stats::CacheStats;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::chart::{self, Chart, ChartMetadata};
use registry_core::kind::{ArtifactKind, HELM_CHART_CONTENT};
use registry_core::{Descriptor, Digest, Manifest, Reference, RepositoryName};
use registry_storage::{ManifestRecord, Registry};
use serde::Serialize;
use serde_json::Value;

/// How much is read of an artifact's blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A config blob (image or chart).
    pub config_bytes: u64,
    /// A chart's archive.
    pub chart: chart::Limits,
    /// What the caches hold, in bytes (each of the two).
    pub cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { config_bytes: 8 << 20, chart: chart::Limits::default(), cache_bytes: 64 << 20 }
    }
}

/// Why an addition could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdditionError {
    /// The artifact's content is broken or hostile (the same bytes always give this).
    #[error("{0}")]
    Unreadable(String),
    /// The artifact is not of a kind that has this addition.
    #[error("{0}")]
    NotApplicable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] registry_storage::Error),
}

/// An image's details (Harbor's `extra_attrs` of an image, with its layers and history).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageDetails {
    /// `architecture` of the config.
    pub architecture: String,
    /// `os` of the config.
    pub os: String,
    /// `variant` of the config.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// `author` of the config.
    pub author: String,
    /// `created` of the config.
    pub created: Option<String>,
    /// The config's `config` (entrypoint, env, labels…).
    pub config: Value,
    /// The config's `history`, as written (the `build_history` addition).
    #[serde(skip)]
    pub history: Vec<Value>,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// A layer of an image or an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

/// A chart artifact's metadata and where its archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSummary {
    /// What `helm push` wrote in the config blob (the chart's `Chart.yaml` as JSON).
    pub metadata: ChartMetadata,
    /// The layer holding the archive.
    pub archive: Descriptor,
    /// The layer holding its provenance file (`helm package --sign`), if pushed.
    pub provenance: Option<Descriptor>,
}

type Outcome<T> = Result<Arc<T>, String>;

/// The caches of what was read, by digest.
pub struct Additions {
    limits: Limits,
    images: quick_cache::sync::Cache<Digest, Outcome<ImageDetails>, Weight>,
    charts: quick_cache::sync::Cache<Digest, Outcome<ChartSummary>, Weight>,
    archives: quick_cache::sync::Cache<Digest, Outcome<Chart>, Weight>,
}

impl std::fmt::Debug for Additions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Additions").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// A cache entry's weight: the bytes it holds, roughly.
#[derive(Clone)]
struct Weight;

impl<T: Weighed> quick_cache::Weighter<Digest, Outcome<T>> for Weight {
    fn weight(&self, _: &Digest, value: &Outcome<T>) -> u64 {
        match value {
            Ok(v) => v.weight() as u64,
            Err(message) => 128 + message.len() as u64,
        }
    }
}

/// What a cached value weighs.
trait Weighed {
    fn weight(&self) -> usize;
}

impl Weighed for ImageDetails {
    fn weight(&self) -> usize {
        let json = |v: &Value| v.to_string().len();
        512 + json(&self.config) + self.history.iter().map(json).sum::<usize>() + 160 * self.layers.len()
    }
}

impl Weighed for ChartSummary {
    fn weight(&self) -> usize {
        1024 + serde_json::to_string(&self.metadata).map_or(0, |s| s.len())
    }
}

impl Weighed for Chart {
    fn weight(&self) -> usize {
        Chart::weight(self)
    }
}

impl Additions {
    /// Empty caches reading within `limits`.
    pub fn new(limits: Limits) -> Additions {
        Additions {
            limits,
            images: quick_cache::sync::Cache::with_weighter(4096, limits.cache_bytes / 4, Weight),
            charts: quick_cache::sync::Cache::with_weighter(4096, limits.cache_bytes / 4, Weight),
            archives: quick_cache::sync::Cache::with_weighter(1024, limits.cache_bytes, Weight),
        }
    }

    /// The caches' figures, for metrics.
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        let (i, c, a) = (&self.images, &self.charts, &self.archives);
        vec![
            CacheStats::weighed("image_details", i.hits(), i.misses(), i.len(), i.weight()),
            CacheStats::weighed("chart_summaries", c.hits(), c.misses(), c.len(), c.weight()),
            CacheStats::weighed("chart_archives", a.hits(), a.misses(), a.len(), a.weight()),
        ]
    }

    /// The limits it reads within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// An image manifest's details; [`AdditionError::NotApplicable`] for another kind.
    pub async fn image(
        &self,
        registry: &Registry,
        repository: &RepositoryName,
        record: &ManifestRecord,
    ) -> Result<Arc<ImageDetails>, AdditionError> {
        if kind_of(record) != ArtifactKind::Image || record.artifact_type.is_none() {
            return Err(AdditionError::NotApplicable(format!("{} is not an image manifest", record.digest)));
        }
        cached(&self.images, &record.digest, || async {
            let manifest = manifest_of(registry, repository, record).await?;
            let Some(config) = &manifest.config else {
                return Err(AdditionError::NotApplicable(format!("{} has no config", record.digest)));
            };
            let bytes =
                small_blob(registry, repository, config, "the image's config", self.limits.config_bytes).await?;
            image_details(&bytes, &manifest)
        })
        .await
    }

    /// A chart manifest's metadata (its config blob) and archive layer; NotApplicable for
    /// another kind.
    pub async fn chart(
        &self,
        registry: &Registry,
        repository: &RepositoryName,
        record: &ManifestRecord,
    ) -> Result<Arc<ChartSummary>, AdditionError> {
        if kind_of(record) != ArtifactKind::Chart {
            return Err(AdditionError::NotApplicable(format!("{} is not a Helm chart", record.digest)));
        }
        cached(&self.charts, &record.digest, || async {
            let manifest = manifest_of(registry, repository, record).await?;
            let config = manifest.config.as_ref().ok_or_else(|| unreadable("the chart's manifest has no config"))?;
            let layer = |media_type: &str| {
                manifest
                    .layers
                    .iter()
                    .find(|l| registry_core::media_type::essence(&l.media_type) == media_type)
                    .cloned()
            };
            let archive = layer(HELM_CHART_CONTENT)
                .ok_or_else(|| unreadable(format!("the chart's manifest has no layer of type {HELM_CHART_CONTENT}")))?;
            let provenance = layer(registry_core::kind::HELM_PROVENANCE);
            let bytes =
                small_blob(registry, repository, config, "the chart's config", self.limits.config_bytes).await?;
            let metadata: ChartMetadata = serde_json::from_slice(&bytes)
                .map_err(|e| unreadable(format!("the chart's config is not Helm's chart metadata: {e}")))?;
            metadata.check().map_err(|e| unreadable(e.to_string().replacen("Chart.yaml", "the config", 1)))?;
            Ok(ChartSummary { metadata, archive, provenance })
        })
        .await
    }

    /// A chart's archive read (README, values, dependencies), from its layer's stream.
    pub async fn chart_archive(
        &self,
        registry: &Registry,
        repository: &RepositoryName,
        record: &ManifestRecord,
    ) -> Result<Arc<Chart>, AdditionError> {
        let summary = self.chart(registry, repository, record).await?;
        let layer = &summary.archive;
        let limits = self.limits.chart;
        cached(&self.archives, &layer.digest, || async move {
            if layer.size > limits.archive_bytes {
                return Err(unreadable(chart::ChartError::ArchiveTooLarge { limit: limits.archive_bytes }.to_string()));
            }
            stream_chart(registry, repository, &layer.digest, limits).await
        })
        .await
    }
}

/// The kind of a stored manifest.
pub fn kind_of(record: &ManifestRecord) -> ArtifactKind {
    ArtifactKind::of(&record.media_type, record.artifact_type.as_deref(), &record.annotations)
}

fn unreadable(message: impl Into<String>) -> AdditionError {
    AdditionError::Unreadable(message.into())
}

/// The cached outcome for `digest`, else `read`'s, cached unless the store failed.
async fn cached<T, F, Fut>(
    cache: &quick_cache::sync::Cache<Digest, Outcome<T>, Weight>,
    digest: &Digest,
    read: F,
) -> Result<Arc<T>, AdditionError>
where
    T: Weighed,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, AdditionError>>,
{
    if let Some(outcome) = cache.get(digest) {
        return outcome.map_err(AdditionError::Unreadable);
    }
    match read().await {
        Ok(value) => {
            let value = Arc::new(value);
            cache.insert(digest.clone(), Ok(value.clone()));
            Ok(value)
        }
        Err(AdditionError::Unreadable(message)) => {
            cache.insert(digest.clone(), Err(message.clone()));
            Err(AdditionError::Unreadable(message))
        }
        Err(other) => Err(other),
    }
}

/// The stored manifest, parsed.
async fn manifest_of(
    registry: &Registry,
    repository: &RepositoryName,
    record: &ManifestRecord,
) -> Result<Manifest, AdditionError> {
    let (_, bytes) = registry.get_manifest(repository, &Reference::Digest(record.digest.clone())).await?;
    Manifest::parse(&bytes, Some(&record.media_type)).map_err(|e| unreadable(format!("the manifest: {e}")))
}

/// A small blob read whole, refused past `limit`.
async fn small_blob(
    registry: &Registry,
    repository: &RepositoryName,
    blob: &Descriptor,
    what: &str,
    limit: u64,
) -> Result<Bytes, AdditionError> {
    let too_large = |size: u64| {
        unreadable(format!(
            "{what} is {}, more than the limit of {}",
            registry_core::units::bytes(size),
            registry_core::units::bytes(limit)
        ))
    };
    if blob.size > limit {
        return Err(too_large(blob.size));
    }
    let read = registry.read_blob(repository, &blob.digest, None).await?;
    if read.size > limit {
        return Err(too_large(read.size));
    }
    let mut body = read.body;
    let mut out = Vec::with_capacity(read.size as usize);
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(registry_storage::Error::from)?);
        if out.len() as u64 > limit {
            return Err(too_large(out.len() as u64));
        }
    }
    Ok(Bytes::from(out))
}

/// An image's details from its config blob and manifest.
fn image_details(config: &[u8], manifest: &Manifest) -> Result<ImageDetails, AdditionError> {
    let doc: Value =
        serde_json::from_slice(config).map_err(|e| unreadable(format!("the image's config is not JSON: {e}")))?;
    let text = |key: &str| doc.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(ImageDetails {
        architecture: text("architecture"),
        os: text("os"),
        variant: text("variant"),
        author: text("author"),
        created: doc.get("created").and_then(Value::as_str).map(str::to_owned),
        config: doc.get("config").cloned().unwrap_or_else(|| Value::Object(Default::default())),
        history: history(&doc),
        layers: manifest
            .layers
            .iter()
            .map(|l| Layer { digest: l.digest.to_string(), size: l.size, media_type: l.media_type.clone() })
            .collect(),
    })
}

/// The config's `history` as written, each step with a `created` (Harbor's clients require one):
/// a step without one takes the image's own creation time, the latest it can have run.
fn history(doc: &Value) -> Vec<Value> {
    let image_created = doc.get("created").cloned().unwrap_or(Value::Null);
    let steps = doc.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    steps
        .into_iter()
        .map(|mut step| {
            if let Some(fields) = step.as_object_mut() {
                fields.entry("created").or_insert_with(|| image_created.clone());
            }
            step
        })
        .collect()
}

/// Reads a chart archive from the blob's stream on a blocking thread, the bytes handed over as
/// they arrive (at most a few chunks in flight); the reader stops the stream when it is done or
/// refuses the archive.
async fn stream_chart(
    registry: &Registry,
    repository: &RepositoryName,
    digest: &Digest,
    limits: chart::Limits,
) -> Result<Chart, AdditionError> {
    let read = registry.read_blob(repository, digest, None).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let parse = tokio::task::spawn_blocking(move || chart::read(ChannelReader { rx, current: Bytes::new() }, &limits));
    let mut body = read.body;
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let parsed = parse.await.map_err(|e| unreadable(format!("reading the chart stopped: {e}")))?;
    if let Some(e) = failed {
        return Err(AdditionError::Store(e.into()));
    }
    parsed.map_err(|e| unreadable(e.to_string()))
}

/// A blocking reader over chunks sent through a channel (end of stream when it closes).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
