//! Listings: `GET /v2/<name>/tags/list`, `GET /v2/_catalog` (filtered to what the caller may
//! pull) and `GET /v2/<name>/referrers/<digest>`.

use http::StatusCode;
use http::header::{CONTENT_TYPE, LINK};
use registry_core::{ErrorCode, media_type};

use super::route::Route;
use super::{Call, Distribution, Handled};
use crate::error::ApiError;
use crate::layers::Authentication;
use crate::response::{OCI_FILTERS_APPLIED, json, set};

fn page_size(call: &Call) -> Result<Option<usize>, ApiError> {
    match call.query.get("n") {
        None | Some("") => Ok(None),
        Some(n) => n.parse().map(Some).map_err(|_| {
            ApiError::new(ErrorCode::Unsupported, "n must be a non-negative integer")
                .with_status(StatusCode::BAD_REQUEST)
        }),
    }
}

/// The `Link` to the page after `last`.
fn next_link(dist: &Distribution, call: &Call, n: Option<usize>, path: &str, last: &str) -> String {
    let max = dist.registry.limits().max_page;
    let limit = n.unwrap_or(max).min(max);
    format!("<{}>; rel=\"next\"", call.prefix.location(&format!("{path}?n={limit}&last={last}")))
}

/// A page of a repository's tags.
pub(super) async fn tags(dist: &Distribution, call: Call) -> Handled {
    let Route::Tags { name } = &call.route else { return Err(ApiError::no_such_endpoint()) };
    let n = page_size(&call)?;
    let page = dist.registry.tags(name, call.query.get("last"), n).await?;
    let mut r = json(StatusCode::OK, &serde_json::json!({ "name": name.as_str(), "tags": page.entries }));
    if page.more
        && let Some(last) = page.entries.last()
    {
        let link = next_link(dist, &call, n, &format!("/v2/{name}/tags/list"), last);
        set(r.headers_mut(), LINK, &link);
    }
    Ok(r)
}

/// A page of the catalog, filtered to what the token's subject may pull when auth is on. The
/// `Link` continues after the last repository examined, so a filtered page may be short.
pub(super) async fn catalog(dist: &Distribution, call: Call) -> Handled {
    let n = page_size(&call)?;
    let page = dist.registry.catalog(call.query.get("last"), n).await?;
    let last_examined = page.entries.last().cloned();
    let entries = match (&dist.auth, call.req.extensions().get::<Authentication>()) {
        (Some(auth), Some(Authentication::Token(token))) => auth.visible(&token.claims.sub, page.entries).await?,
        _ => page.entries,
    };
    let mut r = json(StatusCode::OK, &serde_json::json!({ "repositories": entries }));
    if page.more
        && let Some(last) = last_examined
    {
        let link = next_link(dist, &call, n, "/v2/_catalog", &last);
        set(r.headers_mut(), LINK, &link);
    }
    Ok(r)
}

/// The referrers of a manifest, optionally of one artifact type.
pub(super) async fn referrers(dist: &Distribution, call: Call) -> Handled {
    let Route::Referrers { name, digest } = &call.route else { return Err(ApiError::no_such_endpoint()) };
    let filter = call.query.get("artifactType");
    let records = dist.registry.referrers(name, digest, filter).await?;
    let manifests: Vec<serde_json::Value> = records
        .into_iter()
        .map(|m| {
            let mut d =
                serde_json::json!({ "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.size });
            if let Some(t) = m.artifact_type {
                d["artifactType"] = t.into();
            }
            if !m.annotations.is_empty() {
                d["annotations"] = serde_json::json!(m.annotations);
            }
            d
        })
        .collect();
    let body = serde_json::json!({ "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests });
    let mut r = json(StatusCode::OK, &body);
    set(r.headers_mut(), CONTENT_TYPE, media_type::OCI_INDEX);
    if filter.is_some() {
        set(r.headers_mut(), OCI_FILTERS_APPLIED, "artifactType");
    }
    Ok(r)
}
