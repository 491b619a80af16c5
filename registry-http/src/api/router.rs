//! The management API's router: a table of `(method, path pattern, handler)`, one handler
//! function per endpoint. Patterns are `/`-separated; `{name}` captures one segment, decoded.
//!
//! Repository names carry slashes; Harbor's clients encode them twice in the path
//! (`team/a%252Fb`). A capture is decoded once; [`Params::repository`] decodes a remaining
//! `%2F` too, so both the single and the double encoding work.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Method;

use super::{Api, ApiCall, ApiResult};
use crate::error::ApiError;
use crate::request::percent_decode;

/// A handler's future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
/// A handler.
pub(crate) type Handler = fn(Arc<Api>, ApiCall) -> HandlerFuture;

/// One endpoint.
pub(crate) struct Endpoint {
    pub(crate) method: Method,
    pub(crate) pattern: &'static str,
    pub(crate) handler: Handler,
}

/// Builds an [`Endpoint`] from an async handler function.
macro_rules! endpoint {
    ($method:ident $pattern:literal => $handler:path) => {
        $crate::api::router::Endpoint {
            method: http::Method::$method,
            pattern: $pattern,
            handler: |api, call| Box::pin($handler(api, call)),
        }
    };
}
pub(crate) use endpoint;

/// The captures of a matched pattern.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl Params {
    /// A capture (decoded once).
    pub(crate) fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::harbor(http::StatusCode::BAD_REQUEST, format!("missing path parameter {name}")))
    }

    /// A capture that is a numeric id.
    pub(crate) fn id(&self, name: &str) -> Result<u64, ApiError> {
        let text = self.get(name)?;
        text.parse().map_err(|_| {
            ApiError::harbor(http::StatusCode::BAD_REQUEST, format!("{name} must be a number, not {text:?}"))
        })
    }

    /// A capture that is a repository name inside a project (slashes encoded once or twice).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn repository(&self, name: &str) -> Result<String, ApiError> {
        let text = self.get(name)?;
        Ok(if text.contains('%') { percent_decode(text) } else { text.to_owned() })
    }
}

/// How a path matched the table.
pub(crate) enum Match<'a> {
    /// An endpoint, with its captures.
    Found(&'a Endpoint, Params),
    /// The path exists with other methods (405).
    WrongMethod,
    /// No such path (404).
    None,
}

/// Finds the endpoint of `method` and `path` (relative to `/api/v2.0`).
pub(crate) fn find<'a>(table: &'a [Endpoint], method: &Method, path: &str) -> Match<'a> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let mut path_exists = false;
    for endpoint in table {
        let Some(params) = matches(endpoint.pattern, &segments) else { continue };
        // HEAD is answered by a GET handler where no HEAD handler exists.
        if endpoint.method == *method {
            return Match::Found(endpoint, params);
        }
        path_exists = true;
    }
    if path_exists && *method == Method::HEAD {
        for endpoint in table.iter().filter(|e| e.method == Method::GET) {
            if let Some(params) = matches(endpoint.pattern, &segments) {
                return Match::Found(endpoint, params);
            }
        }
    }
    if path_exists { Match::WrongMethod } else { Match::None }
}

fn matches(pattern: &'static str, segments: &[&str]) -> Option<Params> {
    let parts: Vec<&'static str> = pattern.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            params.push((name, percent_decode(segment)));
        } else if part != segment {
            return None;
        }
    }
    Some(Params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn nothing(_: Arc<Api>, _: ApiCall) -> ApiResult {
        Err(ApiError::no_such_endpoint())
    }

    #[test]
    fn captures_and_methods() {
        let table = [
            endpoint!(GET "/projects" => nothing),
            endpoint!(GET "/projects/{project}" => nothing),
            endpoint!(DELETE "/projects/{project}" => nothing),
            endpoint!(GET "/projects/{project}/repositories/{repository}" => nothing),
        ];
        let Match::Found(e, p) = find(&table, &Method::GET, "/projects/team/repositories/a%252Fb") else {
            panic!("no match")
        };
        assert_eq!(e.pattern, "/projects/{project}/repositories/{repository}");
        assert_eq!(p.get("project").expect("project"), "team");
        assert_eq!(p.repository("repository").expect("repository"), "a/b", "twice encoded");
        let Match::Found(_, p) = find(&table, &Method::GET, "/projects/team/repositories/a%2Fb") else {
            panic!("no match")
        };
        assert_eq!(p.repository("repository").expect("repository"), "a/b", "once encoded");
        assert!(matches!(find(&table, &Method::PUT, "/projects/team"), Match::WrongMethod));
        assert!(matches!(find(&table, &Method::HEAD, "/projects/team"), Match::Found(..)), "HEAD by GET");
        assert!(matches!(find(&table, &Method::GET, "/nothing"), Match::None));
        assert!(matches!(find(&table, &Method::GET, "/projects/"), Match::Found(..)), "trailing slash");
    }
}
