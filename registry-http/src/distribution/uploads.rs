//! Uploads: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic push, or a cross-repository
//! mount), and `GET`, `PATCH`, `PUT`, `DELETE` of `/v2/<name>/blobs/uploads/<id>`.

use http::header::{CONTENT_LENGTH, LOCATION, RANGE, TRANSFER_ENCODING};
use http::{HeaderValue, Response, StatusCode};
use registry_core::{Digest, ErrorCode, RepositoryName};
use registry_storage::UploadId;

use super::headers::content_range;
use super::route::Route;
use super::{Call, Distribution, Handled};
use crate::error::ApiError;
use crate::layers::Authentication;
use crate::layers::prefix::PathPrefix;
use crate::request::{body_stream, content_length};
use crate::response::{DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, ResponseBody, empty, range_value, set};

fn session(call: &Call) -> Result<(&RepositoryName, &UploadId), ApiError> {
    match &call.route {
        Route::Upload { name, id } => Ok((name, id)),
        _ => Err(ApiError::no_such_endpoint()),
    }
}

fn digest_param(call: &Call) -> Result<Digest, ApiError> {
    let value = call
        .query
        .get("digest")
        .ok_or_else(|| ApiError::new(ErrorCode::DigestInvalid, "the digest query parameter is required"))?;
    Ok(Digest::parse(value)?)
}

/// The response naming an upload session and its offset.
fn session_response(
    prefix: &PathPrefix,
    status: StatusCode,
    name: &RepositoryName,
    id: &UploadId,
    offset: u64,
) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    set(h, LOCATION, &prefix.location(&format!("/v2/{name}/blobs/uploads/{id}")));
    set(h, RANGE, &range_value(offset));
    set(h, DOCKER_UPLOAD_UUID, id.as_str());
    h.insert(CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// The response to a blob that now exists in the repository.
pub(super) fn blob_created(prefix: &PathPrefix, name: &RepositoryName, digest: &Digest) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    set(h, LOCATION, &prefix.location(&format!("/v2/{name}/blobs/{digest}")));
    set(h, DOCKER_CONTENT_DIGEST, &digest.to_string());
    h.insert(CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// `POST`: mount (`?mount=&from=`), push whole (`?digest=`), or open a session.
pub(super) async fn start(dist: &Distribution, call: Call) -> Handled {
    let Route::StartUpload { name } = &call.route else { return Err(ApiError::no_such_endpoint()) };
    dist.refuse_push(name).await?;
    let operator = Authentication::operator_of(&call.req);
    if let Some(mount) = call.query.get("mount") {
        let digest = Digest::parse(mount)?;
        // A `from` that is not a valid name cannot hold the blob: fall back to an upload.
        if let Some(from) = call.query.get("from").and_then(|f| RepositoryName::parse(f).ok())
            && dist.registry.mount_blob(name, &from, &digest, &operator).await?.is_some()
        {
            return Ok(blob_created(&call.prefix, name, &digest));
        }
    } else if call.query.get("digest").is_some() {
        let digest = digest_param(&call)?;
        let mut stream = body_stream(call.req.into_body());
        dist.registry.push_blob(name, &digest, &mut stream, &operator).await?;
        return Ok(blob_created(&call.prefix, name, &digest));
    }
    let status = dist.registry.start_upload(name).await?;
    Ok(session_response(&call.prefix, StatusCode::ACCEPTED, name, &status.id, 0))
}

/// `GET`: where the upload is.
pub(super) async fn status(dist: &Distribution, call: Call) -> Handled {
    let (name, id) = session(&call)?;
    let status = dist.registry.upload_status(name, id).await?;
    Ok(session_response(&call.prefix, StatusCode::NO_CONTENT, name, id, status.offset))
}

/// `PATCH`: a chunk.
pub(super) async fn patch(dist: &Distribution, call: Call) -> Handled {
    let (name, id) = session(&call)?;
    let (name, id) = (name.clone(), id.clone());
    let range = content_range(call.req.headers())?;
    let mut stream = body_stream(call.req.into_body());
    let status = dist.registry.append_upload(&name, &id, range, &mut stream).await?;
    Ok(session_response(&call.prefix, StatusCode::ACCEPTED, &name, &id, status.offset))
}

/// `PUT ?digest=`: the last chunk, if any, and completion.
pub(super) async fn put(dist: &Distribution, call: Call) -> Handled {
    let (name, id) = session(&call)?;
    let (name, id) = (name.clone(), id.clone());
    let digest = digest_param(&call)?;
    let operator = Authentication::operator_of(&call.req);
    let headers = call.req.headers();
    let range = content_range(headers)?;
    let declared = content_length(headers);
    let has_body = !matches!(declared, Some(0)) && (declared.is_some() || headers.contains_key(TRANSFER_ENCODING));
    let mut stream = body_stream(call.req.into_body());
    let last = if has_body { Some(&mut stream as &mut registry_storage::BodyStream<'_>) } else { None };
    dist.registry.finish_upload(&name, &id, &digest, range, last, &operator).await?;
    Ok(blob_created(&call.prefix, &name, &digest))
}

/// `DELETE`: cancels the upload.
pub(super) async fn cancel(dist: &Distribution, call: Call) -> Handled {
    let (name, id) = session(&call)?;
    dist.registry.cancel_upload(name, id).await?;
    Ok(crate::response::status_only(StatusCode::NO_CONTENT))
}
