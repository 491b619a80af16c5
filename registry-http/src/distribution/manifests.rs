//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION};
use http::{HeaderValue, Method, Response, StatusCode};

use super::route::Route;
use super::{Call, Distribution, Handled};
use crate::error::ApiError;
use crate::layers::Authentication;
use crate::request::{content_length, read_limited};
use crate::response::{DOCKER_CONTENT_DIGEST, OCI_SUBJECT, empty, full, set, status_only};

fn target(call: &Call) -> Result<(&registry_core::RepositoryName, &registry_core::Reference), ApiError> {
    match &call.route {
        Route::Manifest { name, reference } => Ok((name, reference)),
        _ => Err(ApiError::no_such_endpoint()),
    }
}

/// The manifest (GET) or its headers (HEAD), if the client accepts its media type.
pub(super) async fn get(dist: &Distribution, call: Call) -> Handled {
    let (name, reference) = target(&call)?;
    let head = call.req.method() == Method::HEAD;
    #[cfg(feature = "replication")]
    if let Some((proxy, up)) = dist.upstream(name).await?
        && let Some(proxied) = proxy.manifest(&up, name, reference).await?
    {
        if !super::headers::accepts(call.req.headers(), &proxied.media_type) {
            return Err(registry_storage::Error::ManifestNotAcceptable { media_type: proxied.media_type }.into());
        }
        let size = proxied.bytes.len() as u64;
        let mut r = Response::new(if head { empty() } else { full(proxied.bytes) });
        let h = r.headers_mut();
        set(h, CONTENT_TYPE, &proxied.media_type);
        h.insert(CONTENT_LENGTH, HeaderValue::from(size));
        digest_headers(h, &proxied.digest);
        return Ok(r);
    }
    let (record, bytes) = if head {
        (dist.registry.stat_manifest(name, reference).await?, Bytes::new())
    } else {
        dist.registry.pull_manifest(name, reference, &Authentication::operator_of(&call.req)).await?
    };
    if !super::headers::accepts(call.req.headers(), &record.media_type) {
        return Err(registry_storage::Error::ManifestNotAcceptable { media_type: record.media_type }.into());
    }
    let mut r = Response::new(if head { empty() } else { full(bytes) });
    let h = r.headers_mut();
    set(h, CONTENT_TYPE, &record.media_type);
    h.insert(CONTENT_LENGTH, HeaderValue::from(record.size));
    digest_headers(h, &record.digest);
    Ok(r)
}

/// `Docker-Content-Digest` and the `ETag` (the digest quoted), the digest written once.
fn digest_headers(h: &mut http::HeaderMap, digest: &registry_core::Digest) {
    let quoted = format!("\"{digest}\"");
    set(h, DOCKER_CONTENT_DIGEST, &quoted[1..quoted.len() - 1]);
    set(h, ETAG, &quoted);
}

/// Stores a manifest, bounded by the engine's manifest limit (413 beyond).
pub(super) async fn put(dist: &Distribution, call: Call) -> Handled {
    let (name, reference) = target(&call)?;
    let (name, reference) = (name.clone(), reference.clone());
    let limit = dist.registry.limits().max_manifest_bytes;
    let too_large = || registry_storage::Error::TooLarge { what: "manifest", limit: limit as u64 };
    if content_length(call.req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(too_large().into());
    }
    dist.refuse_push(&name).await?;
    let content_type = call.req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let operator = Authentication::operator_of(&call.req);
    let bytes = read_limited(call.req.into_body(), limit)
        .await
        .map_err(|e| if e.status() == StatusCode::PAYLOAD_TOO_LARGE { too_large().into() } else { e })?;
    let pushed = dist.registry.put_manifest(&name, &reference, content_type.as_deref(), bytes, &operator).await?;
    let mut r = status_only(StatusCode::CREATED);
    let h = r.headers_mut();
    set(h, LOCATION, &call.prefix.location(&format!("/v2/{name}/manifests/{}", pushed.digest)));
    set(h, DOCKER_CONTENT_DIGEST, &pushed.digest.to_string());
    if let Some(subject) = &pushed.subject {
        set(h, OCI_SUBJECT, &subject.to_string());
    }
    Ok(r)
}

/// Deletes a manifest by digest, or only a tag.
pub(super) async fn delete(dist: &Distribution, call: Call) -> Handled {
    let (name, reference) = target(&call)?;
    dist.refuse_push(name).await?;
    dist.registry.delete_manifest(name, reference, &Authentication::operator_of(&call.req)).await?;
    Ok(status_only(StatusCode::ACCEPTED))
}
