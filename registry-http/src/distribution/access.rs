//! Authorization of distribution requests: the bearer token must cover every scope the route
//! needs, else 401 with the `WWW-Authenticate` challenge naming them.
//!
//! Every auth failure looks the same to the client (401 `UNAUTHORIZED`, with
//! `error="invalid_token"` or `error="insufficient_scope"` when a token was sent, which tells
//! containerd to fetch a new one); the reason goes to the log only. One exception, for people:
//! an authenticated caller whose request names a project that does not exist gets 404
//! `NAME_UNKNOWN` saying so (podman, skopeo and containerd print it), instead of a bare
//! "denied".
//!
//! **Long pushes.** A request on an existing upload session (`/blobs/uploads/<id>`) is accepted
//! with a token that expired less than [`UPLOAD_GRACE`] ago, provided it is otherwise valid and
//! grants push on the repository: the session id is an unguessable capability obtained under a
//! valid token, so a multi-GB push is not lost to a 5-minute token. Nothing else gets the grace.
//!
//! **Deleted projects.** A token is refused for a project created after it was issued: a deleted
//! and re-created project is never opened by old tokens. The project is read as the pull policies
//! read it (`Accounts::recent_project`): a deletion or re-creation through another replica is
//! seen within `RECENT_PROJECT` (2 s), one through this replica at once.

use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::{Method, Request, StatusCode};
use registry_auth::{ProjectState, VerifiedToken};
use registry_core::{Action, ErrorCode, RepositoryName, Scope};

use super::Routed;
use super::route::{Need, Route};
use crate::error::ApiError;
use crate::layers::authenticate::UPLOAD_GRACE;
use crate::layers::{Authentication, BoxService, FnLayer, Layer, call, service_fn};
use crate::request::RequestBody;
use crate::token::TokenAuth;

/// Whether a token issued at `issued_at` predates a project created at `created_at` (both in
/// seconds). Tokens carry second precision: one issued within the very second a project was
/// re-created is accepted.
pub fn predates(issued_at: u64, created_at: u64) -> bool {
    issued_at < created_at
}

fn challenge(auth: &TokenAuth, scopes: &[Scope], error: Option<&str>) -> ApiError {
    let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", auth.realm, auth.service);
    if !scopes.is_empty() {
        let list: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        value.push_str(&format!(",scope=\"{}\"", list.join(" ")));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    ApiError::new(ErrorCode::Unauthorized, "authentication required").with_header(WWW_AUTHENTICATE, value)
}

/// The answer for a request on a project that does not exist, to a caller who logged in.
fn missing_project(project: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NameUnknown,
        format!("project {project} not found: create it first (POST /api/v2.0/projects, or in the portal)"),
    )
    .with_status(StatusCode::NOT_FOUND)
    .with_detail(serde_json::json!({ "project": project }))
}

/// Checks a request against its token.
async fn authorize(auth: &TokenAuth, req: &Request<RequestBody>) -> Result<(), ApiError> {
    let Some(Routed { route, query }) = req.extensions().get::<Routed>() else { return Ok(()) };
    let from = query.get("from").and_then(|f| RepositoryName::parse(f).ok());
    let mount_from = if query.get("mount").is_some() { from.as_ref() } else { None };
    let needs = route.needs(req.method(), mount_from);
    // The scopes, for a challenge (built only then: the allowed path allocates nothing for them).
    let required = || route.required_scopes(req.method(), mount_from);
    let on_session = matches!(route, Route::Upload { .. });
    let token: &VerifiedToken = match req.extensions().get::<Authentication>() {
        Some(Authentication::Token(t)) => t,
        Some(Authentication::ExpiredToken(t)) if on_session => {
            tracing::debug!(subject = %t.claims.sub, grace_secs = UPLOAD_GRACE.as_secs(), "expired token on an upload");
            t
        }
        Some(Authentication::ExpiredToken(_)) | Some(Authentication::InvalidToken(_)) => {
            if let Some(Authentication::InvalidToken(reason)) = req.extensions().get::<Authentication>() {
                tracing::info!(reason = %reason, "token refused");
            } else {
                tracing::info!("token refused: expired");
            }
            return Err(challenge(auth, &required(), Some("invalid_token")));
        }
        _ => return Err(challenge(auth, &required(), None)),
    };
    let signed_in = !token.claims.sub.is_empty();
    for need in needs.into_iter().flatten() {
        let (resource_type, name, actions) = match need {
            Need::Repository(name, actions) => ("repository", name.as_str(), actions),
            Need::Catalog => ("registry", "catalog", &[Action::All][..]),
        };
        let state = match (&auth.policy, need) {
            (Some(policy), Need::Repository(..)) => policy.project_state(name).await?,
            _ => ProjectState::Unmanaged,
        };
        match state {
            ProjectState::Missing { project } if signed_in => return Err(missing_project(&project)),
            ProjectState::Missing { project } => {
                tracing::info!(project = %project, "request for a missing project");
                return Err(challenge(auth, &required(), Some("insufficient_scope")));
            }
            ProjectState::Exists { project, created_at } if predates(token.claims.iat, created_at) => {
                tracing::info!(subject = %token.claims.sub, project = %project, "token predates the project");
                return Err(challenge(auth, &required(), Some("invalid_token")));
            }
            _ => {}
        }
        if !actions.iter().all(|action| token.allows(resource_type, name, action)) {
            tracing::info!(subject = %token.claims.sub, needed = %need.scope(), "insufficient scope");
            return Err(challenge(auth, &required(), Some("insufficient_scope")));
        }
    }
    Ok(())
}

/// The layer.
pub(crate) fn layer(auth: Arc<TokenAuth>) -> impl Layer<BoxService, Service = BoxService> + Clone {
    FnLayer(move |inner: BoxService| {
        let auth = auth.clone();
        service_fn(move |req: Request<RequestBody>| {
            let (inner, auth) = (inner.clone(), auth.clone());
            async move {
                match authorize(&auth, &req).await {
                    Ok(()) => call(&inner, req).await,
                    Err(e) => e.into_response(req.method() == Method::HEAD),
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_older_than_their_project_are_refused() {
        assert!(predates(1_000, 1_001), "issued before the (re-)creation");
        assert!(!predates(1_001, 1_001), "same second: accepted");
        assert!(!predates(2_000, 1_001));
    }
}
