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

#[async_trait]
impl Side for Local {
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Read>, String> {
        let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
        match self.registry.get_manifest(&name(repository)?, &reference).await {
            Ok((record, bytes)) => Ok(Some(Read { media_type: record.media_type, bytes, digest: record.digest })),
            Err(registry_storage::Error::ManifestUnknown { .. } | registry_storage::Error::NameUnknown { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<Digest>, String> {
        let tag = Tag::parse(tag).map_err(|e| e.to_string())?;
        match self.registry.stat_manifest(&name(repository)?, &Reference::Tag(tag)).await {
            Ok(record) => Ok(Some(record.digest)),
            Err(registry_storage::Error::ManifestUnknown { .. } | registry_storage::Error::NameUnknown { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, String> {
        match self.registry.stat_blob(&name(repository)?, digest).await {
            Ok(_) => Ok(true),
            Err(registry_storage::Error::BlobUnknown { .. } | registry_storage::Error::NameUnknown { .. }) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
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
}

/// A remote registry, through a session.
pub struct Remote<'s> {
    /// The session.
    pub session: &'s Session<'s>,
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
        self.session
            .push_blob(repository, digest, size, move || reqwest::Body::wrap_stream(body))
            .await
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
            let body = self.from.read_blob(self.source, &blob.digest).await?;
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
