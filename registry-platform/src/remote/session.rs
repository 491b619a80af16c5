//! A session with a remote registry: the distribution API's reads and writes (manifests, blobs,
//! tags, cross-repository mounts), each request authorized as the remote's challenge asks for
//! the repository it touches — Basic, or a bearer token for exactly that repository's scope,
//! fetched once and reused until the remote refuses it. What replication and the proxy cache copy
//! with. A blob download the remote redirects (to object storage) is followed once, to an address
//! the SSRF guard allows, without the credential.

use std::collections::HashMap;

use bytes::Bytes;
use registry_core::Digest;

use super::client::{Challenge, Remote, RemoteError, challenge};
use crate::ssrf::{self, Reach};

/// What a manifest request accepts.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
                                  application/vnd.oci.image.index.v1+json, \
                                  application/vnd.docker.distribution.manifest.v2+json, \
                                  application/vnd.docker.distribution.manifest.list.v2+json";
/// Largest manifest read.
const MAX_MANIFEST: usize = 4 << 20;

/// A session: one HTTP client pinned to the remote's checked addresses, and the authorization
/// each scope was granted.
pub struct Session {
    remote: std::sync::Arc<Remote>,
    client: reqwest::Client,
    granted: tokio::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("remote", &self.remote).finish_non_exhaustive()
    }
}

/// A manifest read from a remote.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    /// Its media type (`Content-Type`).
    pub media_type: String,
    /// Its bytes, exactly.
    pub bytes: Bytes,
    /// Their digest.
    pub digest: Digest,
}

impl Remote {
    /// A session with this remote (which it keeps).
    pub async fn session(self) -> Result<Session, RemoteError> {
        let client = self.client_for(self.base()).await?;
        Ok(Session { remote: std::sync::Arc::new(self), client, granted: tokio::sync::Mutex::default() })
    }
}

fn pull(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

fn push(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn delete(repository: &str) -> String {
    format!("repository:{repository}:delete")
}

impl Session {
    fn url(&self, path: &str) -> Result<reqwest::Url, RemoteError> {
        self.remote.base().join(path.trim_start_matches('/')).map_err(|e| self.remote.fail(e))
    }

    /// Sends what `build` makes, authorized for `scope`: with the authorization granted before,
    /// else as the remote's challenge asks (once).
    async fn send(
        &self,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RemoteError> {
        let known = self.granted.lock().await.get(scope).cloned();
        let first = match &known {
            Some(auth) => build(&self.client).header("authorization", auth),
            None => build(&self.client),
        };
        let response = self.remote.send(first).await?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        let header = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let auth = match challenge(header) {
            Some(Challenge::Basic) => {
                self.remote.basic().ok_or_else(|| self.remote.fail("it asks for credentials and none are set"))?
            }
            Some(Challenge::Bearer { realm, service }) => {
                format!("Bearer {}", self.remote.token(&realm, service.as_deref(), &[scope]).await?)
            }
            None => return Ok(response),
        };
        self.granted.lock().await.insert(scope.to_owned(), auth.clone());
        let retried = self.remote.send(build(&self.client).header("authorization", auth)).await?;
        if retried.status().as_u16() == 401 {
            self.granted.lock().await.remove(scope);
            return Err(self.remote.fail(match self.remote.user() {
                Some(user) => format!("it refuses the credentials of {user:?} for {scope}"),
                None => format!("it wants credentials for {scope}"),
            }));
        }
        Ok(retried)
    }

    /// The manifest `reference` of `repository`, if the remote has it.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<RemoteManifest>, RemoteError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self.send(&pull(repository), |c| c.get(url.clone()).header("accept", MANIFEST_TYPES)).await?;
        match response.status().as_u16() {
            404 => return Ok(None),
            200 => {}
            s => return Err(self.remote.fail(format!("GET {repository}:{reference} answered {s}"))),
        }
        let media_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let bytes = response.bytes().await.map_err(|e| self.remote.fail(ssrf::root_cause(&e)))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(self.remote.fail(format!("the manifest {repository}:{reference} is larger than 4 MiB")));
        }
        let digest = Digest::sha256_of(&bytes);
        if let Ok(by_digest) = Digest::parse(reference)
            && Digest::compute(by_digest.algorithm(), &bytes) != by_digest
        {
            return Err(self.remote.fail(format!("the manifest {repository}@{reference} does not match its digest")));
        }
        Ok(Some(RemoteManifest { media_type, bytes, digest }))
    }

    /// The digest of the manifest `reference` of `repository` (`HEAD`), if the remote has it.
    pub async fn manifest_digest(&self, repository: &str, reference: &str) -> Result<Option<Digest>, RemoteError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self.send(&pull(repository), |c| c.head(url.clone()).header("accept", MANIFEST_TYPES)).await?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let header = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok());
                match header.and_then(|d| Digest::parse(d).ok()) {
                    Some(d) => Ok(Some(d)),
                    // Without the header: the bytes say.
                    None => Ok(self.manifest(repository, reference).await?.map(|m| m.digest)),
                }
            }
            s => Err(self.remote.fail(format!("HEAD {repository}:{reference} answered {s}"))),
        }
    }

    /// Whether the remote holds blob `digest` in `repository`.
    pub async fn has_blob(&self, repository: &str, digest: &Digest) -> Result<bool, RemoteError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let response = self.send(&pull(repository), |c| c.head(url.clone())).await?;
        match response.status().as_u16() {
            200 | 307 => Ok(true),
            404 => Ok(false),
            s => Err(self.remote.fail(format!("HEAD blob {digest} of {repository} answered {s}"))),
        }
    }

    /// Blob `digest` of `repository`: its response, streaming (a redirect followed once).
    pub async fn blob(&self, repository: &str, digest: &Digest) -> Result<reqwest::Response, RemoteError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let response = self.send(&pull(repository), |c| c.get(url.clone())).await?;
        let status = response.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| self.remote.fail("a redirect without a location"))?;
            let target = url.join(location).map_err(|e| self.remote.fail(e))?;
            let target = ssrf::check_address(target.as_str(), Reach::Internal)
                .map_err(|e| self.remote.fail(format!("its blob redirect: {e}")))?;
            let client = self.remote.client_for(&target).await?;
            let moved = self.remote.send(client.get(target)).await?;
            if !moved.status().is_success() {
                return Err(self.remote.fail(format!("its blob redirect answered {}", moved.status())));
            }
            return Ok(moved);
        }
        match status {
            200 => Ok(response),
            404 => Err(self.remote.fail(format!("it has no blob {digest} in {repository}"))),
            s => Err(self.remote.fail(format!("GET blob {digest} of {repository} answered {s}"))),
        }
    }

    /// Mounts blob `digest` from `from` into `repository`; whether the remote mounted it (else
    /// it must be uploaded).
    pub async fn mount(&self, repository: &str, digest: &Digest, from: &str) -> Result<bool, RemoteError> {
        let mut url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        url.query_pairs_mut().append_pair("mount", &digest.to_string()).append_pair("from", from);
        let scope = push(repository);
        let response = self.send(&scope, |c| c.post(url.clone()).header("content-length", "0")).await?;
        Ok(response.status().as_u16() == 201)
    }

    /// Uploads blob `digest` (`size` bytes of `body`) to `repository` in one request after
    /// opening the upload.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        body: impl FnOnce() -> reqwest::Body,
    ) -> Result<(), RemoteError> {
        let mut target = self.open_upload(repository).await?;
        let scope = push(repository);
        target.query_pairs_mut().append_pair("digest", &digest.to_string());
        let auth = self.granted.lock().await.get(&scope).cloned();
        let mut put = self
            .client
            .put(target)
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string())
            .body(body());
        if let Some(auth) = auth {
            put = put.header("authorization", auth);
        }
        let done = self.remote.send(put).await?;
        if done.status().as_u16() != 201 {
            return Err(self
                .remote
                .fail(format!("uploading blob {digest} to {repository} answered {}", done.status())));
        }
        Ok(())
    }

    /// Opens an upload to `repository`: the upload's URL (checked to be on the remote).
    async fn open_upload(&self, repository: &str) -> Result<reqwest::Url, RemoteError> {
        let url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        let opened = self.send(&push(repository), |c| c.post(url.clone()).header("content-length", "0")).await?;
        if opened.status().as_u16() != 202 {
            return Err(self.remote.fail(format!("opening an upload to {repository} answered {}", opened.status())));
        }
        self.upload_location(&url, &opened)
    }

    /// Where `response` says the upload continues, on the remote's own host.
    fn upload_location(&self, base: &reqwest::Url, response: &reqwest::Response) -> Result<reqwest::Url, RemoteError> {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.remote.fail("an upload without a location"))?;
        let target = base.join(location).map_err(|e| self.remote.fail(e))?;
        if target.host_str() != self.remote.base().host_str()
            || target.port_or_known_default() != self.remote.base().port_or_known_default()
        {
            return Err(self.remote.fail("its upload location is on another host"));
        }
        Ok(target)
    }

    /// Uploads blob `digest` of `repository` in chunks of up to `chunk` bytes read from `body`:
    /// one `PATCH` per chunk (with its `Content-Range`), then the closing `PUT`.
    pub async fn push_blob_chunked(
        &self,
        repository: &str,
        digest: &Digest,
        body: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
        chunk: usize,
    ) -> Result<(), RemoteError> {
        use futures::StreamExt;
        let mut target = self.open_upload(repository).await?;
        let auth = self.granted.lock().await.get(&push(repository)).cloned();
        let authorized = |request: reqwest::RequestBuilder| match &auth {
            Some(auth) => request.header("authorization", auth),
            None => request,
        };
        let mut body = body;
        let mut sent = 0u64;
        let mut buffer = bytes::BytesMut::new();
        let mut eof = false;
        loop {
            while !eof && buffer.len() < chunk {
                match body.next().await {
                    Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                    Some(Err(e)) => return Err(self.remote.fail(format!("reading blob {digest}: {e}"))),
                    None => eof = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            let take = buffer.len().min(chunk);
            let part = buffer.split_to(take).freeze();
            let len = part.len() as u64;
            let range = format!("{sent}-{}", sent + len - 1);
            let patched = self
                .remote
                .send(
                    authorized(self.client.patch(target.clone()))
                        .header("content-type", "application/octet-stream")
                        .header("content-range", range)
                        .header("content-length", len.to_string())
                        .body(part),
                )
                .await?;
            if patched.status().as_u16() != 202 {
                return Err(self.remote.fail(format!(
                    "sending bytes {sent}.. of blob {digest} to {repository} answered {}",
                    patched.status()
                )));
            }
            sent += len;
            target = self.upload_location(&target, &patched)?;
        }
        target.query_pairs_mut().append_pair("digest", &digest.to_string());
        let done = self.remote.send(authorized(self.client.put(target)).header("content-length", "0")).await?;
        if done.status().as_u16() != 201 {
            return Err(self
                .remote
                .fail(format!("closing the upload of blob {digest} to {repository} answered {}", done.status())));
        }
        Ok(())
    }

    /// Deletes the manifest `reference` (a digest, or a tag where the remote deletes tags) of
    /// `repository`; whether it was there.
    pub async fn delete_manifest(&self, repository: &str, reference: &str) -> Result<bool, RemoteError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self.send(&delete(repository), |c| c.delete(url.clone())).await?;
        match response.status().as_u16() {
            200 | 202 | 204 => Ok(true),
            404 => Ok(false),
            status => {
                let body = response.text().await.unwrap_or_default();
                let why = if Digest::parse(reference).is_err() && matches!(status, 400 | 405) {
                    "; it does not delete tags (distribution 2.8 deletes manifests by digest only)"
                } else {
                    ""
                };
                Err(self.remote.fail(format!(
                    "DELETE {repository}:{reference} answered {status}{why}: {}",
                    body.chars().take(300).collect::<String>()
                )))
            }
        }
    }

    /// Stores a manifest as `reference` (a tag or its digest) of `repository`.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), RemoteError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let response = self
            .send(&push(repository), |c| c.put(url.clone()).header("content-type", media_type).body(bytes.clone()))
            .await?;
        if response.status().as_u16() != 201 {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(self.remote.fail(format!(
                "storing the manifest {repository}:{reference} answered {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        Ok(())
    }

    /// The referrers of `subject` in `repository` (OCI 1.1's API); none where the remote does
    /// not offer it (distribution 2.8 answers 404).
    pub async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>, RemoteError> {
        let url = self.url(&format!("v2/{repository}/referrers/{subject}"))?;
        let response = self.send(&pull(repository), |c| c.get(url.clone())).await?;
        if response.status().as_u16() != 200 {
            return Ok(Vec::new());
        }
        let index: serde_json::Value =
            response.json().await.map_err(|_| self.remote.fail("its referrers answer is not JSON"))?;
        Ok(index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["digest"].as_str().and_then(|d| Digest::parse(d).ok()))
            .collect())
    }

    /// Every repository of the remote (`/v2/_catalog`, following its pages).
    pub async fn catalog(&self) -> Result<Vec<String>, RemoteError> {
        self.paged("v2/_catalog?n=1000", "registry:catalog:*", "repositories").await
    }

    /// Every tag of `repository` (following the `Link` pages), none when it does not exist.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RemoteError> {
        self.paged(&format!("v2/{repository}/tags/list?n=1000"), &pull(repository), "tags").await
    }

    /// The strings of `field` of every page from `path` on (following `Link`); none when the
    /// first answers 404.
    async fn paged(&self, path: &str, scope: &str, field: &str) -> Result<Vec<String>, RemoteError> {
        let mut out = Vec::new();
        let mut next = Some(self.url(path)?);
        while let Some(url) = next.take() {
            let response = self.send(scope, |c| c.get(url.clone())).await?;
            match response.status().as_u16() {
                404 => return Ok(out),
                200 => {}
                s => return Err(self.remote.fail(format!("GET {} answered {s}", url.path()))),
            }
            let link = response.headers().get("link").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let page: serde_json::Value = response
                .json()
                .await
                .map_err(|_| self.remote.fail(format!("its answer to {} is not JSON", url.path())))?;
            out.extend(page[field].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)));
            next = link
                .and_then(|l| {
                    l.split(';').next().map(|u| u.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
                })
                .and_then(|u| url.join(&u).ok())
                .filter(|u| u.host_str() == self.remote.base().host_str());
        }
        Ok(out)
    }
}
