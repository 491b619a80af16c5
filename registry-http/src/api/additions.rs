//! Harbor's additions of an artifact (`…/artifacts/{reference}/additions/{name}`): an image's
//! `build_history`; a chart's `readme.md`, `values.yaml` and `dependencies` — and the
//! `extra_attrs` and `addition_links` each artifact carries. What they read is cached by digest
//! in [`registry_platform::additions::Additions`].

use std::sync::Arc;

use http::StatusCode;
use registry_auth::Project;
use registry_core::RepositoryName;
use registry_core::kind::ArtifactKind;
use registry_core::scope::Action;
use registry_platform::additions::{AdditionError, kind_of};
use registry_storage::ManifestRecord;
use serde_json::{Value, json};

use super::artifacts::{record_of, repository_of, require};
use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::response::{ResponseBody, json as json_response, set};

/// What one of Harbor's addition names answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addition {
    BuildHistory,
    Readme,
    Values,
    Dependencies,
}

impl Addition {
    fn name(self) -> &'static str {
        match self {
            Addition::BuildHistory => "build_history",
            Addition::Readme => "readme.md",
            Addition::Values => "values.yaml",
            Addition::Dependencies => "dependencies",
        }
    }
}

/// The error an addition's failure is to a client: broken or hostile content is 422 naming the
/// artifact and the limit, another kind of artifact 404, a store's failure its own status.
fn addition_error(name: &RepositoryName, record: &ManifestRecord, e: AdditionError) -> ApiError {
    match e {
        AdditionError::Unreadable(m) => {
            ApiError::harbor(StatusCode::UNPROCESSABLE_ENTITY, format!("{name}@{}: {m}", record.digest))
        }
        AdditionError::NotApplicable(m) => ApiError::harbor(StatusCode::NOT_FOUND, m),
        AdditionError::Store(e) => e.into(),
    }
}

async fn answer(api: Arc<Api>, call: ApiCall, addition: Addition) -> ApiResult {
    let (project, name) = repository_of(&api, &call).await?;
    require(&api, &call, &project, name.as_str(), Action::Pull).await?;
    let (record, _) = record_of(&api, &call, &name).await?;
    let kind = kind_of(&record);
    if !kind.additions().contains(&addition.name()) {
        return Err(ApiError::harbor(
            StatusCode::NOT_FOUND,
            format!("{name}@{} is of type {}, which has no {}", record.digest, kind.harbor_name(), addition.name()),
        ));
    }
    let failed = |e| addition_error(&name, &record, e);
    let additions = &api.additions;
    match addition {
        Addition::BuildHistory => {
            let image = additions.image(&api.registry, &name, &record).await.map_err(failed)?;
            Ok(json_response(StatusCode::OK, &Value::Array(image.history.clone())))
        }
        Addition::Dependencies => {
            let chart = additions.chart_archive(&api.registry, &name, &record).await.map_err(failed)?;
            let list: Vec<Value> = chart
                .dependencies
                .iter()
                .map(|d| json!({"name": d.name, "version": d.version, "repository": d.repository}))
                .collect();
            Ok(json_response(StatusCode::OK, &Value::Array(list)))
        }
        Addition::Readme | Addition::Values => {
            let chart = additions.chart_archive(&api.registry, &name, &record).await.map_err(failed)?;
            let (text, content_type, what) = match addition {
                Addition::Readme => (&chart.readme, "text/markdown; charset=utf-8", "a README"),
                _ => (&chart.values, "text/yaml; charset=utf-8", "a values.yaml"),
            };
            let text = text.clone().ok_or_else(|| {
                ApiError::harbor(StatusCode::NOT_FOUND, format!("the chart {name}@{} has no {what}", record.digest))
            })?;
            Ok(typed_text(text, content_type))
        }
    }
}

/// A text response of `content_type`.
fn typed_text(text: String, content_type: &str) -> http::Response<ResponseBody> {
    let mut response = crate::response::text(StatusCode::OK, text);
    set(response.headers_mut(), http::header::CONTENT_TYPE, content_type);
    response
}

/// `GET …/additions/build_history`: the image config's `history`.
pub(crate) async fn build_history(api: Arc<Api>, call: ApiCall) -> ApiResult {
    answer(api, call, Addition::BuildHistory).await
}

/// `GET …/additions/readme.md`: the chart's README (`text/markdown`).
pub(crate) async fn readme(api: Arc<Api>, call: ApiCall) -> ApiResult {
    answer(api, call, Addition::Readme).await
}

/// `GET …/additions/values.yaml`: the chart's values (`text/yaml`).
pub(crate) async fn values(api: Arc<Api>, call: ApiCall) -> ApiResult {
    answer(api, call, Addition::Values).await
}

/// `GET …/additions/dependencies`: `[{name, version, repository}]` of the chart.
pub(crate) async fn dependencies(api: Arc<Api>, call: ApiCall) -> ApiResult {
    answer(api, call, Addition::Dependencies).await
}

/// The `addition_links` of an artifact of `kind` (Harbor lists them by kind, without reading).
pub(crate) fn links(
    kind: ArtifactKind,
    project: &Project,
    repository: &str,
    digest: &str,
) -> serde_json::Map<String, Value> {
    kind.additions()
        .iter()
        .map(|a| {
            let href = format!(
                "/api/v2.0/projects/{}/repositories/{repository}/artifacts/{digest}/additions/{a}",
                project.name
            );
            ((*a).to_owned(), json!({"href": href, "absolute": false}))
        })
        .collect()
}

/// An artifact's `extra_attrs`: an image's platform, author, creation time, config and layers;
/// a chart's metadata (its `Chart.yaml`); `{}` for other kinds and for content that cannot be
/// read (its additions say why).
pub(crate) async fn extra_attrs(api: &Api, name: &RepositoryName, record: &ManifestRecord) -> Result<Value, ApiError> {
    let additions = &api.additions;
    let outcome = match kind_of(record) {
        ArtifactKind::Image if record.artifact_type.is_some() => {
            additions.image(&api.registry, name, record).await.map(|i| serde_json::to_value(&*i))
        }
        ArtifactKind::Chart => {
            additions.chart(&api.registry, name, record).await.map(|c| serde_json::to_value(&c.metadata))
        }
        _ => return Ok(json!({})),
    };
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) | Err(AdditionError::Unreadable(_) | AdditionError::NotApplicable(_)) => Ok(json!({})),
        Err(AdditionError::Store(e)) => Err(e.into()),
    }
}
