//! Copying artifacts between two sides — this registry ([`Local`], through the engine, as an
//! operator of its own) and a remote ([`Remote`], through a session) — exactly and
//! incrementally: the manifest's own bytes under its own digest, an index's children first, the
//! blobs a manifest needs unless the destination holds them already (streamed, never held whole),
//! then the tag, then the referrers (signatures, SBOMs) and cosign's `sha256-<hex>.sig/.att/.sbom`
//! tags. A destination tag is written last, so a copy cut short leaves content without a tag
//! pointing at anything missing, and a rerun resumes where it stopped.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::event::Operator;
use registry_core::{Digest, Manifest, Reference, RepositoryName, Tag};
use registry_storage::Registry;

use crate::remote::session::Session;

/// Manifests followed below one artifact (an index's children, referrers of referrers).
const MAX_DEPTH: usize = 4;
/// The size of a chunk when a policy copies by chunk (Harbor's default, 10 MiB).
pub const CHUNK: usize = 10 << 20;

/// A manifest read from a side.
#[derive(Debug, Clone)]
pub struct Read {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Their digest.
    pub digest: Digest,
}

/// A blob's bytes, streaming.
pub type Blob = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// One side of a copy.
#[async_trait]
pub trait Side: Send + Sync {
    /// The manifest `reference` of `repository`, if present.
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Read>, String>;
    /// The digest `tag` names in `repository`, if any.
    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<Digest>, String>;
    /// Whether blob `digest` is in `repository`.
    async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, String>;
    /// Blob `digest` of `repository`.
    async fn read_blob(&self, repository: &str, digest: &Digest) -> Result<Blob, String>;
    /// Stores blob `digest` (`size` bytes) in `repository`.
    async fn write_blob(&self, repository: &str, digest: &Digest, size: u64, body: Blob) -> Result<(), String>;
    /// Stores a manifest as `reference` of `repository`.
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), String>;
    /// The tags of `repository`.
    async fn tags(&self, repository: &str) -> Result<Vec<String>, String>;
    /// The referrers of `subject` in `repository`.
    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>, String>;
    /// Deletes manifest `reference` (a digest: the artifact; a tag: only the tag) of
    /// `repository`; whether it was there.
    async fn delete(&self, repository: &str, reference: &str) -> Result<bool, String>;
}

/// This registry, written as `operator`.
pub struct Local {
    /// The engine.
    pub registry: Registry,
    /// Who the copies are recorded for.
    pub operator: Operator,
}

fn name(repository: &str) -> Result<RepositoryName, String> {
    RepositoryName::parse(repository).map_err(|e| format!("repository {repository:?}: {e}"))
}

/// `Ok(None)` for what the repository does not hold (or a repository that does not exist),
/// else the answer or the error's text.
fn unless_unknown<T>(result: registry_storage::Result<T>) -> Result<Option<T>, String> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(
            registry_storage::Error::ManifestUnknown { .. }
            | registry_storage::Error::BlobUnknown { .. }
            | registry_storage::Error::NameUnknown { .. },
        ) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[async_trait]
impl Side for Local {
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Read>, String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        let found = unless_unknown(self.registry.get_manifest(&name(repository)?, &reference).await)?;
        Ok(found.map(|(record, bytes)| Read { media_type: record.media_type, bytes, digest: record.digest }))
    }

    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<Digest>, String> {
        let tag = Tag::parse(tag).map_err(|e| e.to_string())?;
        let found = unless_unknown(self.registry.stat_manifest(&name(repository)?, &Reference::Tag(tag)).await)?;
        Ok(found.map(|record| record.digest))
    }

    async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, String> {
        Ok(unless_unknown(self.registry.stat_blob(&name(repository)?, digest).await)?.is_some())
    }

    async fn read_blob(&self, repository: &str, digest: &Digest) -> Result<Blob, String> {
        let read = self.registry.read_blob(&name(repository)?, digest, None).await.map_err(|e| e.to_string())?;
        Ok(read.body)
    }

    async fn write_blob(&self, repository: &str, digest: &Digest, _size: u64, body: Blob) -> Result<(), String> {
        let mut body = body.map(|chunk| chunk.map_err(|e| Box::new(e) as registry_storage::BodyError));
        self.registry
            .push_blob(&name(repository)?, digest, &mut body, &self.operator)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        self.registry
            .put_manifest(&name(repository)?, &reference, Some(media_type), bytes.clone(), &self.operator)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn tags(&self, repository: &str) -> Result<Vec<String>, String> {
        let repository = name(repository)?;
        let mut out: Vec<String> = Vec::new();
        loop {
            let page = match self.registry.tags(&repository, out.last().map(String::as_str), None).await {
                Ok(page) => page,
                Err(registry_storage::Error::NameUnknown { .. }) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            };
            out.extend(page.entries);
            if !page.more {
                return Ok(out);
            }
        }
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>, String> {
        let found = self.registry.referrers(&name(repository)?, subject, None).await.map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(|r| r.digest).collect())
    }

    async fn delete(&self, repository: &str, reference: &str) -> Result<bool, String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        let deleted = self.registry.delete_manifest(&name(repository)?, &reference, &self.operator).await;
        Ok(unless_unknown(deleted)?.is_some())
    }
}

/// A remote registry, through a session.
pub struct Remote<'s> {
    /// The session.
    pub session: &'s Session,
    /// Blobs are sent in chunks of this many bytes (else each in one request).
    pub chunk: Option<usize>,
}

#[async_trait]
impl Side for Remote<'_> {
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Read>, String> {
        let found = self.session.manifest(repository, reference).await.map_err(|e| e.0)?;
        Ok(found.map(|m| Read { media_type: m.media_type, bytes: m.bytes, digest: m.digest }))
    }

    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<Digest>, String> {
        self.session.manifest_digest(repository, tag).await.map_err(|e| e.0)
    }

    async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, String> {
        self.session.has_blob(repository, digest).await.map_err(|e| e.0)
    }

    async fn read_blob(&self, repository: &str, digest: &Digest) -> Result<Blob, String> {
        let response = self.session.blob(repository, digest).await.map_err(|e| e.0)?;
        Ok(response.bytes_stream().map(|c| c.map_err(std::io::Error::other)).boxed())
    }

    async fn write_blob(&self, repository: &str, digest: &Digest, size: u64, body: Blob) -> Result<(), String> {
        match self.chunk {
            Some(chunk) => self.session.push_blob_chunked(repository, digest, body, chunk).await,
            None => self.session.push_blob(repository, digest, size, move || reqwest::Body::wrap_stream(body)).await,
        }
        .map_err(|e| e.0)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), String> {
        self.session.put_manifest(repository, reference, media_type, bytes).await.map_err(|e| e.0)
    }

    async fn tags(&self, repository: &str) -> Result<Vec<String>, String> {
        self.session.tags(repository).await.map_err(|e| e.0)
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>, String> {
        self.session.referrers(repository, subject).await.map_err(|e| e.0)
    }

    async fn delete(&self, repository: &str, reference: &str) -> Result<bool, String> {
        self.session.delete_manifest(repository, reference).await.map_err(|e| e.0)
    }
}

/// What a copy moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Blob bytes sent.
    pub bytes: u64,
    /// Blobs sent.
    pub blobs: u64,
    /// Blobs the destination held already.
    pub skipped: u64,
    /// Manifests stored.
    pub manifests: u64,
}

/// A copy of one repository's content from `from` to `to`.
pub struct Copy<'a> {
    /// The source.
    pub from: &'a dyn Side,
    /// The destination.
    pub to: &'a dyn Side,
    /// The source repository.
    pub source: &'a str,
    /// The destination repository.
    pub destination: &'a str,
    /// A bandwidth limit for blob bytes, in bytes per second.
    pub limit: Option<u64>,
}

impl Copy<'_> {
    /// Copies the artifact tagged `tag` (with its referrers) and tags it; what moved.
    pub async fn tag(&self, tag: &str) -> Result<Moved, String> {
        let mut moved = Moved::default();
        let read = self
            .from
            .manifest(self.source, tag)
            .await?
            .ok_or_else(|| format!("{}:{tag} is gone from the source", self.source))?;
        self.tree(&read, 0, &mut moved).await?;
        self.to.put_manifest(self.destination, tag, &read.media_type, &read.bytes).await?;
        moved.manifests += 1;
        self.referrers(&read.digest, 0, &mut moved).await?;
        Ok(moved)
    }

    /// Stores `read` by digest after what it needs: an index's children, a manifest's blobs.
    async fn tree(&self, read: &Read, depth: usize, moved: &mut Moved) -> Result<(), String> {
        let manifest = Manifest::parse(&read.bytes, Some(&read.media_type))
            .map_err(|e| format!("{}@{} does not parse: {e}", self.source, read.digest))?;
        for child in &manifest.manifests {
            if depth >= MAX_DEPTH {
                return Err(format!("{}@{} nests deeper than {MAX_DEPTH} indexes", self.source, read.digest));
            }
            if self.to.manifest(self.destination, &child.digest.to_string()).await?.is_some() {
                continue;
            }
            let Some(child_read) = self.from.manifest(self.source, &child.digest.to_string()).await? else {
                // An index may list what its repository does not hold (a platform left out).
                continue;
            };
            Box::pin(self.tree(&child_read, depth + 1, moved)).await?;
            moved.manifests += 1;
        }
        for blob in manifest.blobs() {
            if self.to.has_blob(self.destination, &blob.digest).await? {
                moved.skipped += 1;
                continue;
            }
            let mut body = self.from.read_blob(self.source, &blob.digest).await?;
            if let Some(rate) = self.limit {
                body = throttled(body, rate);
            }
            self.to.write_blob(self.destination, &blob.digest, blob.size, body).await?;
            moved.blobs += 1;
            moved.bytes += blob.size;
        }
        if depth > 0 || manifest.subject.is_some() {
            self.to.put_manifest(self.destination, &read.digest.to_string(), &read.media_type, &read.bytes).await?;
        }
        Ok(())
    }

    /// Copies the referrers of `subject` and cosign's tags of it.
    async fn referrers(&self, subject: &Digest, depth: usize, moved: &mut Moved) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        for referrer in self.from.referrers(self.source, subject).await? {
            if self.to.manifest(self.destination, &referrer.to_string()).await?.is_some() {
                continue;
            }
            let Some(read) = self.from.manifest(self.source, &referrer.to_string()).await? else { continue };
            // Stored by digest at this depth, after what it needs.
            Box::pin(self.tree(&read, depth + 1, moved)).await?;
            moved.manifests += 1;
            Box::pin(self.referrers(&referrer, depth + 1, moved)).await?;
        }
        for suffix in ["sig", "att", "sbom"] {
            let tag = format!("{}-{}.{suffix}", subject.algorithm(), subject.hex());
            if Tag::parse(&tag).is_err() {
                continue;
            }
            let Some(digest) = self.from.tag_digest(self.source, &tag).await? else { continue };
            if self.to.tag_digest(self.destination, &tag).await? == Some(digest) {
                continue;
            }
            let Some(read) = self.from.manifest(self.source, &tag).await? else { continue };
            Box::pin(self.tree(&read, depth + 1, moved)).await?;
            self.to.put_manifest(self.destination, &tag, &read.media_type, &read.bytes).await?;
            moved.manifests += 1;
        }
        Ok(())
    }
}

/// `body` at no more than `rate` bytes per second on average since its start: the bytes are
/// passed on in pieces of a twentieth of a second's worth at most, each once the bytes before it
/// would have taken that long (so a limit holds whatever the chunk sizes of the source).
pub fn throttled(body: Blob, rate: u64) -> Blob {
    let rate = rate.max(1);
    let piece = usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1024);
    let start = tokio::time::Instant::now();
    body.flat_map(move |chunk| {
        let pieces: Vec<Result<Bytes, std::io::Error>> = match chunk {
            Ok(bytes) => {
                let mut bytes = bytes;
                let mut out = Vec::with_capacity(bytes.len() / piece + 1);
                while bytes.len() > piece {
                    out.push(Ok(bytes.split_to(piece)));
                }
                out.push(Ok(bytes));
                out
            }
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(pieces)
    })
    .scan(0u64, move |sent, chunk| {
        let due = start + std::time::Duration::from_secs_f64(*sent as f64 / rate as f64);
        if let Ok(bytes) = &chunk {
            *sent += bytes.len() as u64;
        }
        async move {
            tokio::time::sleep_until(due).await;
            Some(chunk)
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_throttled_blob_takes_its_size_over_the_rate() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..10).map(|_| Ok(Bytes::from(vec![0u8; 1000]))).collect();
        let start = tokio::time::Instant::now();
        let out: Vec<_> = throttled(futures::stream::iter(chunks).boxed(), 2000).collect().await;
        assert_eq!(out.len(), 10);
        // The tenth chunk leaves once 9,000 bytes had 4.5 s at 2,000 bytes/s.
        assert_eq!(start.elapsed(), std::time::Duration::from_millis(4500));
    }

    #[tokio::test(start_paused = true)]
    async fn one_large_chunk_is_paced_too() {
        let one: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(vec![0u8; 1 << 20]))];
        let start = tokio::time::Instant::now();
        let out: Vec<_> = throttled(futures::stream::iter(one).boxed(), 512 * 1024).collect().await;
        let total: usize = out.iter().map(|c| c.as_ref().map_or(0, Bytes::len)).sum();
        assert_eq!(total, 1 << 20);
        // Pieces of 26,214 bytes: the last (16 bytes) leaves once the 40 before it had their time,
        // 2 s at 512 KiB/s (to the millisecond the timer keeps).
        let took = start.elapsed();
        assert!(took > std::time::Duration::from_millis(1990) && took <= std::time::Duration::from_secs(2), "{took:?}");
    }
}
