//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use futures::StreamExt;
use http::header::CONTENT_RANGE;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};

use super::headers::{ByteRange, blob_headers, parse_range};
use super::route::Route;
use super::{Call, Distribution, Handled};
use crate::error::ApiError;
use crate::response::{empty, set, status_only};

fn target(call: &Call) -> Result<(&registry_core::RepositoryName, &registry_core::Digest), ApiError> {
    match &call.route {
        Route::Blob { name, digest } => Ok((name, digest)),
        _ => Err(ApiError::no_such_endpoint()),
    }
}

/// Streams a blob, whole or one range; or, when the store redirects downloads, sends the client
/// to a presigned URL (307, as distribution's `redirect` option: the client repeats its `Range`
/// there).
pub(super) async fn get(dist: &Distribution, call: Call) -> Handled {
    let (name, digest) = target(&call)?;
    if let Some(url) = dist.registry.blob_redirect(name, digest).await? {
        let mut r = status_only(StatusCode::TEMPORARY_REDIRECT);
        set(r.headers_mut(), http::header::LOCATION, &url);
        set(r.headers_mut(), http::header::HeaderName::from_static("docker-content-digest"), &digest.to_string());
        return Ok(r);
    }
    let range = match parse_range(call.req.headers()) {
        Some(ByteRange::Suffix(n)) => {
            let size = dist.registry.stat_blob(name, digest).await?;
            if n == 0 {
                return Err(registry_storage::Error::RangeNotSatisfiable { size }.into());
            }
            Some((size.saturating_sub(n), None))
        }
        Some(ByteRange::From(start, end)) => Some((start, end)),
        None => None,
    };
    let read = match dist.registry.read_blob(name, digest, range).await {
        #[cfg(feature = "replication")]
        Err(registry_storage::Error::BlobUnknown { .. } | registry_storage::Error::NameUnknown { .. })
            if let Some((proxy, up)) = dist.upstream(name).await? =>
        {
            match proxy.blob(&up, name, digest).await? {
                // Streamed from the upstream while it is stored (a range asked for is not
                // honoured: the whole blob comes, with 200, as clients accept).
                Some((size, body)) => {
                    let mut r =
                        Response::new(StreamBody::new(body.map(|c| c.map(http_body::Frame::data))).boxed_unsync());
                    match size {
                        Some(size) => blob_headers(r.headers_mut(), digest, size),
                        None => set(
                            r.headers_mut(),
                            http::header::HeaderName::from_static("docker-content-digest"),
                            &digest.to_string(),
                        ),
                    }
                    return Ok(r);
                }
                // Another pull here fetched it meanwhile.
                None => dist.registry.read_blob(name, digest, range).await?,
            }
        }
        other => other?,
    };
    let len = read.range.end - read.range.start;
    let mut r = Response::new(StreamBody::new(read.body.map(|c| c.map(http_body::Frame::data))).boxed_unsync());
    blob_headers(r.headers_mut(), digest, len);
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{}", read.range.start, read.range.end - 1, read.size);
        set(r.headers_mut(), CONTENT_RANGE, &value);
    }
    Ok(r)
}

/// Whether the repository holds the blob, and its size.
pub(super) async fn head(dist: &Distribution, call: Call) -> Handled {
    let (name, digest) = target(&call)?;
    let size = dist.registry.stat_blob(name, digest).await?;
    let mut r = Response::new(empty());
    blob_headers(r.headers_mut(), digest, size);
    Ok(r)
}

/// Removes the blob from the repository (the bytes go with garbage collection).
pub(super) async fn delete(dist: &Distribution, call: Call) -> Handled {
    let (name, digest) = target(&call)?;
    dist.registry.delete_blob(name, digest).await?;
    Ok(status_only(StatusCode::ACCEPTED))
}
