//! The HTTP service: one request in, one response out, every error the spec's JSON body.
//! Handlers translate between HTTP and [`Registry`] calls; no registry rule lives here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{ACCEPT, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LINK, LOCATION, RANGE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, StreamBody};
use registry_core::{Digest, ErrorCode, Reference, RepositoryName, media_type};
use registry_storage::{BodyError, Registry, UploadId};

use crate::auth::{AuthSettings, JWKS_PATH, TOKEN_PATH};
use crate::response::{
    API_VERSION, ApiError, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, OCI_FILTERS_APPLIED, OCI_SUBJECT, ResponseBody,
    empty, full, range_value,
};
use crate::route::Route;

/// The registry as an HTTP service. Cheap to clone.
///
/// It implements [`tower_service::Service`] for any request body of [`Bytes`], with
/// `Error = Infallible`: every failure is a response.
#[derive(Clone, Debug)]
pub struct RegistryService {
    registry: Registry,
    prefix: String,
    auth: Option<Arc<AuthSettings>>,
    gc: Option<Arc<crate::gc::GarbageCollector>>,
    upload_slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// Upload requests streaming at once, by default.
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 256;

type HandlerResult = Result<Response<ResponseBody>, ApiError>;

impl RegistryService {
    /// A service for `registry`, answering at `/v2/`.
    pub fn new(registry: Registry) -> RegistryService {
        RegistryService {
            registry,
            prefix: String::new(),
            auth: None,
            gc: None,
            upload_slots: Some(Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_CONCURRENT_UPLOADS))),
        }
    }

    /// Requires a valid bearer token granting each route's scopes (see [`crate::auth`]), and serves
    /// the token endpoint when `auth` carries a token service.
    pub fn with_auth(mut self, auth: AuthSettings) -> RegistryService {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// At most `limit` upload requests with a body (monolithic POST, PATCH, PUT) stream at once;
    /// beyond, 429 `TOOMANYREQUESTS` with `Retry-After` (clients retry). 0 lifts the limit.
    pub fn with_upload_limit(mut self, limit: usize) -> RegistryService {
        self.upload_slots = (limit > 0).then(|| Arc::new(tokio::sync::Semaphore::new(limit)));
        self
    }

    /// Serves garbage collection through the management API (`/api/v2.0/system/gc`, system
    /// admins; needs the built-in accounts).
    pub fn with_gc(mut self, gc: Arc<crate::gc::GarbageCollector>) -> RegistryService {
        self.gc = Some(gc);
        self
    }

    /// Serves under a path prefix (`/registry` answers `/registry/v2/…`); `Location` and `Link`
    /// headers carry the prefix.
    pub fn with_prefix(mut self, prefix: &str) -> RegistryService {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// The engine behind the service.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles one request. Never fails: errors become the spec's error responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let head = method == Method::HEAD;
        let mut response = match self.dispatch(req).await {
            Ok(r) => r,
            Err(e) => e.into_response(head),
        };
        response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        let bytes = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::info!(
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            bytes = %bytes,
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        );
        response
    }

    async fn dispatch<B>(&self, req: Request<B>) -> HandlerResult
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let path = req.uri().path();
        if path == "/healthz" {
            return Ok(text(StatusCode::OK, "ok"));
        }
        let path = if self.prefix.is_empty() {
            path
        } else {
            path.strip_prefix(self.prefix.as_str()).ok_or(crate::route::RouteError::NotFound)?
        };
        if let Some(accounts) = self.auth.as_ref().and_then(|a| a.projects.as_ref())
            && path.starts_with(crate::api::API_PREFIX)
        {
            let path = path.to_owned();
            let method = req.method().clone();
            let (parts, body) = req.into_parts();
            let body = read_limited(body, 1 << 20).await?;
            return crate::api::handle(accounts, self.gc.as_ref(), &method, &path, &parts.headers, body).await;
        }
        if let Some(auth) = &self.auth
            && (path == TOKEN_PATH || path == JWKS_PATH)
        {
            let path = path.to_owned();
            if let Some(result) = auth.token_paths(&path, req).await {
                return result;
            }
            return Err(crate::route::RouteError::NotFound.into());
        }
        let query = Query::parse(req.uri().query().unwrap_or(""));
        let route = Route::parse(path)?;
        let method = req.method().clone();
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        let mut token = None;
        if let Some(auth) = &self.auth {
            let from = query.get("from").and_then(|f| RepositoryName::parse(f).ok());
            let mount_from = if query.get("mount").is_some() { from.as_ref() } else { None };
            let required = route.required_scopes(&method, mount_from);
            token = Some(auth.authorize(&headers, &required, matches!(route, Route::Upload { .. })).await?);
        }
        let streams_upload = match (&route, &method) {
            (Route::StartUpload { .. }, &Method::POST) => query.get("digest").is_some(),
            (Route::Upload { .. }, &Method::PATCH | &Method::PUT) => true,
            _ => false,
        };
        // Held while the body streams in.
        let _upload_slot = match (&self.upload_slots, streams_upload) {
            (Some(slots), true) => Some(slots.clone().try_acquire_owned().map_err(|_| {
                ApiError::new(ErrorCode::TooManyRequests, "too many uploads in progress; retry shortly")
                    .with_status(StatusCode::TOO_MANY_REQUESTS)
                    .with_header(http::header::RETRY_AFTER, "1")
            })?),
            _ => None,
        };
        match (route, method) {
            (Route::Base, Method::GET | Method::HEAD) => Ok(json(StatusCode::OK, b"{}".to_vec())),
            (Route::Catalog, Method::GET) => self.catalog(&query, token.as_ref()).await,
            (Route::Tags { name }, Method::GET) => self.tags(&name, &query).await,
            (Route::Manifest { name, reference }, m @ (Method::GET | Method::HEAD)) => {
                self.get_manifest(&name, &reference, &headers, m == Method::HEAD).await
            }
            (Route::Manifest { name, reference }, Method::PUT) => {
                self.put_manifest(&name, &reference, &headers, body).await
            }
            (Route::Manifest { name, reference }, Method::DELETE) => {
                self.registry.delete_manifest(&name, &reference).await?;
                Ok(accepted())
            }
            (Route::Blob { name, digest }, Method::GET) => self.get_blob(&name, &digest, &headers).await,
            (Route::Blob { name, digest }, Method::HEAD) => {
                let size = self.registry.stat_blob(&name, &digest).await?;
                let mut r = Response::new(empty());
                blob_headers(r.headers_mut(), &digest, size);
                Ok(r)
            }
            (Route::Blob { name, digest }, Method::DELETE) => {
                self.registry.delete_blob(&name, &digest).await?;
                Ok(accepted())
            }
            (Route::StartUpload { name }, Method::POST) => self.start_upload(&name, &query, body).await,
            (Route::Upload { name, id }, Method::GET) => {
                let status = self.registry.upload_status(&name, &id).await?;
                let mut r = self.upload_response(StatusCode::NO_CONTENT, &name, &id, status.offset);
                r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(0));
                Ok(r)
            }
            (Route::Upload { name, id }, Method::PATCH) => {
                let range = content_range(&headers)?;
                let mut stream = body_stream(body);
                let status = self.registry.append_upload(&name, &id, range, &mut stream).await?;
                Ok(self.upload_response(StatusCode::ACCEPTED, &name, &id, status.offset))
            }
            (Route::Upload { name, id }, Method::PUT) => {
                let digest = query.digest()?;
                let range = content_range(&headers)?;
                let has_body = !matches!(content_length(&headers), Some(0))
                    && (content_length(&headers).is_some() || headers.contains_key(http::header::TRANSFER_ENCODING));
                let mut stream = body_stream(body);
                let last = if has_body { Some(&mut stream as &mut registry_storage::BodyStream<'_>) } else { None };
                self.registry.finish_upload(&name, &id, &digest, range, last).await?;
                Ok(self.blob_created(&name, &digest))
            }
            (Route::Upload { name, id }, Method::DELETE) => {
                self.registry.cancel_upload(&name, &id).await?;
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                Ok(r)
            }
            (Route::Referrers { name, digest }, Method::GET) => self.referrers(&name, &digest, &query).await,
            (_, method) => Err(ApiError::new(ErrorCode::Unsupported, format!("method {method} not allowed here"))),
        }
    }

    fn location(&self, path: String) -> String {
        format!("{}{path}", self.prefix)
    }

    fn upload_response(
        &self,
        status: StatusCode,
        name: &RepositoryName,
        id: &UploadId,
        offset: u64,
    ) -> Response<ResponseBody> {
        let mut r = Response::new(empty());
        *r.status_mut() = status;
        let h = r.headers_mut();
        set(h, LOCATION, &self.location(format!("/v2/{name}/blobs/uploads/{id}")));
        set(h, RANGE, &range_value(offset));
        set(h, DOCKER_UPLOAD_UUID, id.as_str());
        h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        r
    }

    fn blob_created(&self, name: &RepositoryName, digest: &Digest) -> Response<ResponseBody> {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::CREATED;
        let h = r.headers_mut();
        set(h, LOCATION, &self.location(format!("/v2/{name}/blobs/{digest}")));
        set(h, DOCKER_CONTENT_DIGEST, &digest.to_string());
        h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        r
    }

    async fn start_upload<B>(&self, name: &RepositoryName, query: &Query, body: B) -> HandlerResult
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        if let Some(mount) = query.get("mount") {
            let digest = Digest::parse(mount)?;
            // A `from` that is not a valid name cannot hold the blob: fall back to an upload.
            if let Some(from) = query.get("from").and_then(|f| RepositoryName::parse(f).ok())
                && self.registry.mount_blob(name, &from, &digest).await?.is_some()
            {
                return Ok(self.blob_created(name, &digest));
            }
        } else if query.get("digest").is_some() {
            let digest = query.digest()?;
            let mut stream = body_stream(body);
            self.registry.push_blob(name, &digest, &mut stream).await?;
            return Ok(self.blob_created(name, &digest));
        }
        let status = self.registry.start_upload(name).await?;
        Ok(self.upload_response(StatusCode::ACCEPTED, name, &status.id, 0))
    }

    async fn get_blob(&self, name: &RepositoryName, digest: &Digest, headers: &HeaderMap) -> HandlerResult {
        let range = match parse_range(headers) {
            Some(ByteRange::Suffix(n)) => {
                let size = self.registry.stat_blob(name, digest).await?;
                if n == 0 {
                    return Err(registry_storage::Error::RangeNotSatisfiable { size }.into());
                }
                Some((size.saturating_sub(n), None))
            }
            Some(ByteRange::From(start, end)) => Some((start, end)),
            None => None,
        };
        let read = self.registry.read_blob(name, digest, range).await?;
        let partial = range.is_some();
        let len = read.range.end - read.range.start;
        let mut r = Response::new(StreamBody::new(read.body.map(|c| c.map(http_body::Frame::data))).boxed_unsync());
        blob_headers(r.headers_mut(), digest, len);
        if partial {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                r.headers_mut(),
                CONTENT_RANGE,
                &format!("bytes {}-{}/{}", read.range.start, read.range.end - 1, read.size),
            );
        }
        Ok(r)
    }

    async fn get_manifest(
        &self,
        name: &RepositoryName,
        reference: &Reference,
        headers: &HeaderMap,
        head: bool,
    ) -> HandlerResult {
        let (record, bytes) = if head {
            (self.registry.stat_manifest(name, reference).await?, Bytes::new())
        } else {
            self.registry.get_manifest(name, reference).await?
        };
        if !accepts(headers, &record.media_type) {
            return Err(registry_storage::Error::ManifestNotAcceptable { media_type: record.media_type }.into());
        }
        let mut r = Response::new(if head { empty() } else { full(bytes) });
        let h = r.headers_mut();
        set(h, CONTENT_TYPE, &record.media_type);
        h.insert(CONTENT_LENGTH, HeaderValue::from(record.size));
        set(h, DOCKER_CONTENT_DIGEST, &record.digest.to_string());
        set(h, ETAG, &format!("\"{}\"", record.digest));
        Ok(r)
    }

    async fn put_manifest<B>(
        &self,
        name: &RepositoryName,
        reference: &Reference,
        headers: &HeaderMap,
        body: B,
    ) -> HandlerResult
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let limit = self.registry.limits().max_manifest_bytes;
        let too_large = || registry_storage::Error::TooLarge { what: "manifest", limit: limit as u64 };
        if content_length(headers).is_some_and(|n| n > limit as u64) {
            return Err(too_large().into());
        }
        let bytes = read_limited(body, limit)
            .await
            .map_err(|e| if e.status == StatusCode::PAYLOAD_TOO_LARGE { too_large().into() } else { e })?;
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let pushed = self.registry.put_manifest(name, reference, content_type, bytes).await?;
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::CREATED;
        let h = r.headers_mut();
        set(h, LOCATION, &self.location(format!("/v2/{name}/manifests/{}", pushed.digest)));
        set(h, DOCKER_CONTENT_DIGEST, &pushed.digest.to_string());
        if let Some(subject) = &pushed.subject {
            set(h, OCI_SUBJECT, &subject.to_string());
        }
        h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        Ok(r)
    }

    async fn tags(&self, name: &RepositoryName, query: &Query) -> HandlerResult {
        let n = query.page_size()?;
        let page = self.registry.tags(name, query.get("last"), n).await?;
        let body = serde_json::json!({ "name": name.as_str(), "tags": page.entries });
        let mut r = json(StatusCode::OK, body.to_string().into_bytes());
        if page.more
            && let Some(last) = page.entries.last()
        {
            let limit = n.unwrap_or(self.registry.limits().max_page).min(self.registry.limits().max_page);
            let link =
                format!("<{}>; rel=\"next\"", self.location(format!("/v2/{name}/tags/list?n={limit}&last={last}")));
            set(r.headers_mut(), LINK, &link);
        }
        Ok(r)
    }

    /// The catalog page, filtered to what the token's subject may pull when auth is on. The `Link`
    /// continues after the last repository examined, so a filtered page may be short.
    async fn catalog(&self, query: &Query, token: Option<&registry_auth::VerifiedToken>) -> HandlerResult {
        let n = query.page_size()?;
        let page = self.registry.catalog(query.get("last"), n).await?;
        let last_examined = page.entries.last().cloned();
        let entries = match (&self.auth, token) {
            (Some(auth), Some(token)) => auth.visible_repositories(token, page.entries).await?,
            _ => page.entries,
        };
        let body = serde_json::json!({ "repositories": entries });
        let mut r = json(StatusCode::OK, body.to_string().into_bytes());
        if page.more
            && let Some(last) = last_examined
        {
            let limit = n.unwrap_or(self.registry.limits().max_page).min(self.registry.limits().max_page);
            let link = format!("<{}>; rel=\"next\"", self.location(format!("/v2/_catalog?n={limit}&last={last}")));
            set(r.headers_mut(), LINK, &link);
        }
        Ok(r)
    }

    async fn referrers(&self, name: &RepositoryName, digest: &Digest, query: &Query) -> HandlerResult {
        let filter = query.get("artifactType");
        let records = self.registry.referrers(name, digest, filter).await?;
        let manifests: Vec<serde_json::Value> = records
            .into_iter()
            .map(|m| {
                let mut d = serde_json::json!({
                    "mediaType": m.media_type,
                    "digest": m.digest.to_string(),
                    "size": m.size,
                });
                if let Some(t) = m.artifact_type {
                    d["artifactType"] = t.into();
                }
                if !m.annotations.is_empty() {
                    d["annotations"] = serde_json::json!(m.annotations);
                }
                d
            })
            .collect();
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": manifests,
        });
        let mut r = json(StatusCode::OK, body.to_string().into_bytes());
        set(r.headers_mut(), CONTENT_TYPE, media_type::OCI_INDEX);
        if filter.is_some() {
            set(r.headers_mut(), OCI_FILTERS_APPLIED, "artifactType");
        }
        Ok(r)
    }
}

impl<B> tower_service::Service<Request<B>> for RegistryService
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BodyError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

fn set(headers: &mut HeaderMap, name: http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<ResponseBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn accepted() -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(0));
    r
}

fn blob_headers(h: &mut HeaderMap, digest: &Digest, len: u64) {
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(h, DOCKER_CONTENT_DIGEST, &digest.to_string());
    set(h, ETAG, &format!("\"{digest}\""));
}

/// The request body as the engine's stream type.
fn body_stream<B>(body: B) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + 'static
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BodyError>,
{
    http_body_util::BodyStream::new(body).filter_map(|frame| {
        std::future::ready(match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e.into())),
        })
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A chunk's `Content-Range: <start>-<end>` (also accepted with a `bytes ` prefix). A malformed
/// header, or one whose length disagrees with Content-Length, is 416.
fn content_range(headers: &HeaderMap) -> Result<Option<registry_storage::ChunkRange>, ApiError> {
    let Some(value) = headers.get(CONTENT_RANGE) else { return Ok(None) };
    let bad = || {
        ApiError::new(ErrorCode::BlobUploadInvalid, "malformed Content-Range; expected <start>-<end>")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    let len = end - start + 1;
    if let Some(declared) = content_length(headers)
        && declared != len
    {
        return Err(ApiError::new(ErrorCode::BlobUploadInvalid, "Content-Range and Content-Length disagree")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    }
    Ok(Some(registry_storage::ChunkRange { start, len }))
}

enum ByteRange {
    From(u64, Option<u64>),
    Suffix(u64),
}

/// A single `Range: bytes=…` of a GET. Malformed or multi-range headers are ignored, as RFC 9110
/// allows: the whole blob is served.
fn parse_range(headers: &HeaderMap) -> Option<ByteRange> {
    let spec = headers.get(RANGE)?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return end.parse().ok().map(ByteRange::Suffix);
    }
    let start = start.parse().ok()?;
    let end = if end.is_empty() { None } else { Some(end.parse().ok()?) };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(ByteRange::From(start, end))
}

/// Whether the Accept headers allow `media_type`. No Accept header accepts everything.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let essence = media_type::essence(item);
            if essence.is_empty() {
                continue;
            }
            any = true;
            if essence == media_type || essence == "*/*" || essence == "application/*" {
                return true;
            }
        }
    }
    !any
}

/// Reads a small body whole, refusing more than `limit` bytes.
pub(crate) async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BodyError>,
{
    let mut stream = body_stream(body);
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| registry_storage::Error::Body(e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(registry_storage::Error::TooLarge { what: "request body", limit: limit as u64 }.into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// Decodes `a=b&c=d` (a query string or an `application/x-www-form-urlencoded` body).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(parse_query(query))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn digest(&self) -> Result<Digest, ApiError> {
        let value = self
            .get("digest")
            .ok_or_else(|| ApiError::new(ErrorCode::DigestInvalid, "the digest query parameter is required"))?;
        Ok(Digest::parse(value)?)
    }

    fn page_size(&self) -> Result<Option<usize>, ApiError> {
        match self.get("n") {
            None | Some("") => Ok(None),
            Some(n) => n.parse().map(Some).map_err(|_| {
                ApiError::new(ErrorCode::Unsupported, "n must be a non-negative integer")
                    .with_status(StatusCode::BAD_REQUEST)
            }),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("sha256%3Aabc"), "sha256:abc");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert!(accepts(&h, media_type::OCI_INDEX), "no Accept takes anything");
        h.append(ACCEPT, HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"));
        assert!(!accepts(&h, media_type::OCI_INDEX));
        h.append(ACCEPT, HeaderValue::from_static("application/vnd.oci.image.index.v1+json; q=0.5, text/plain"));
        assert!(accepts(&h, media_type::OCI_INDEX));
    }
}
