//! A classic Helm chart repository per project (`helm repo add <name> <url>/chartrepo/<project>`),
//! outside `/api/v2.0` at Harbor 1.x's address: `index.yaml` made from the project's OCI charts
//! (those of the repositories the caller may pull) and the chart archives it points to. The
//! callers are the API's (Basic credentials, sessions; anonymous for a public project). A download
//! is a pull of the chart: refused by the project's pull policies as `helm pull oci://` would be,
//! and counted.

use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use registry_auth::Project;
use registry_core::scope::Action;
use registry_core::{Reference, RepositoryName};
use registry_platform::chart_repository::{ChartVersion, chart_versions, index_yaml};

use super::router::{Endpoint, endpoint};
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::set;

/// The chart repository's endpoints (paths from the server root).
pub(crate) fn endpoints() -> &'static [Endpoint] {
    static TABLE: std::sync::OnceLock<Vec<Endpoint>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        vec![
            endpoint!(GET "/chartrepo/{project}/index.yaml" => index),
            endpoint!(GET "/chartrepo/{project}/charts/{file}" => archive),
        ]
    })
}

/// The chart versions of the project the caller may pull.
async fn versions(api: &Api, call: &ApiCall) -> Result<(Project, Vec<ChartVersion>), ApiError> {
    let project = api.project(call, "project").await?;
    api.require_see(call, &project).await?;
    let mut readable = Vec::new();
    for name in super::projects::repositories(api, &project.name).await? {
        if api.may(call.caller(), &name, Action::Pull).await?
            && let Ok(name) = RepositoryName::parse(&name)
        {
            readable.push(name);
        }
    }
    Ok((project, chart_versions(&api.registry, &api.additions, &readable).await?))
}

/// `GET /chartrepo/{project}/index.yaml`.
async fn index(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let (_, versions) = versions(&api, &call).await?;
    let now = api.registry.clock().now_secs();
    let mut response = crate::response::text(StatusCode::OK, index_yaml(&versions, now));
    set(response.headers_mut(), http::header::CONTENT_TYPE, "application/x-yaml");
    Ok(response)
}

/// `GET /chartrepo/{project}/charts/{name}-{version}.tgz`: the chart's archive, streamed — a pull
/// of its manifest as far as the registry is concerned: the project's pull policies (content
/// trust, vulnerability prevention) are asked first, and the pull is counted and recorded.
/// `….tgz.prov`: its provenance file (what `helm pull --verify` fetches beside the archive), when
/// one was pushed; not a pull of its own.
async fn archive(api: Arc<Api>, call: ApiCall) -> ApiResult {
    let file = call.params.get("file")?.to_owned();
    let (project, versions) = versions(&api, &call).await?;
    let missing =
        || ApiError::harbor(StatusCode::NOT_FOUND, format!("project {} has no chart file {file:?}", project.name));
    let (version, blob, content_type) = match file.strip_suffix(".prov") {
        Some(archive) => {
            let version = versions.iter().find(|v| v.file_name() == archive).ok_or_else(missing)?;
            (version, version.provenance.as_ref().ok_or_else(missing)?, "application/pgp-signature")
        }
        None => {
            let version = versions.iter().find(|v| v.file_name() == file).ok_or_else(missing)?;
            // The archive is the chart: its download is the pull (the provenance file beside it
            // is not counted again).
            let manifest = Reference::Digest(version.manifest.clone());
            api.registry.pull_manifest(&version.repository, &manifest, &call.operator).await?;
            (version, &version.archive, "application/gzip")
        }
    };
    let read = api.registry.read_blob(&version.repository, &blob.digest, None).await?;
    let len = read.size;
    let mut response =
        http::Response::new(StreamBody::new(read.body.map(|c| c.map(http_body::Frame::data))).boxed_unsync());
    set(response.headers_mut(), http::header::CONTENT_TYPE, content_type);
    set(response.headers_mut(), http::header::CONTENT_LENGTH, &len.to_string());
    set(response.headers_mut(), http::header::ETAG, &format!("\"{}\"", blob.digest));
    Ok(response)
}
