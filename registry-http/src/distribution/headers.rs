//! The distribution API's request headers: `Content-Range` of a chunk, `Range` of a read, `Accept`
//! of a manifest GET; and the headers of a blob response.

use http::header::{ACCEPT, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE};
use http::{HeaderMap, HeaderValue, StatusCode};
use registry_core::{Digest, ErrorCode, media_type};
use registry_storage::ChunkRange;

use crate::error::ApiError;
use crate::request::content_length;
use crate::response::{DOCKER_CONTENT_DIGEST, set};

/// A chunk's `Content-Range: <start>-<end>` (also accepted with a `bytes ` prefix). A malformed
/// header, or one whose length disagrees with Content-Length, is 416.
pub(crate) fn content_range(headers: &HeaderMap) -> Result<Option<ChunkRange>, ApiError> {
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
    Ok(Some(ChunkRange { start, len }))
}

/// A `Range: bytes=…` of a read.
pub(crate) enum ByteRange {
    /// `start-` or `start-end` (inclusive).
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// A single `Range: bytes=…` of a GET. Malformed or multi-range headers are ignored, as RFC 9110
/// allows: the whole blob is served.
pub(crate) fn parse_range(headers: &HeaderMap) -> Option<ByteRange> {
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
pub(crate) fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
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

/// The headers of a blob response.
pub(crate) fn blob_headers(h: &mut HeaderMap, digest: &Digest, len: u64) {
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(h, DOCKER_CONTENT_DIGEST, &digest.to_string());
    set(h, ETAG, &format!("\"{digest}\""));
}

#[cfg(test)]
mod tests {
    use super::*;

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
