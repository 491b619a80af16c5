//! The router: `/v2/<name>/(manifests|blobs|tags|referrers)/…` parsed from the right of the path
//! into a [`Route`], validating the name, reference, digest and upload id at the boundary.
//!
//! Parsing from the right is what makes multi-component names work (`a/b/c/manifests/latest`):
//! the endpoint is fixed by the last one or two segments, the name is everything before them.
//! A name that fails the grammar (uppercase, `..`, percent-encoded bytes, …) never reaches the
//! engine.

use http::Method;
use registry_core::{Action, Digest, Reference, RepositoryName, Scope};
use registry_storage::UploadId;

pub use crate::error::RouteError;

/// An endpoint of the distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags {
        /// The repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/manifests/<reference>`
    Manifest {
        /// The repository.
        name: RepositoryName,
        /// Tag or digest.
        reference: Reference,
    },
    /// `/v2/<name>/blobs/<digest>`
    Blob {
        /// The repository.
        name: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// `/v2/<name>/blobs/uploads/`
    StartUpload {
        /// The repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload {
        /// The repository.
        name: RepositoryName,
        /// The session.
        id: UploadId,
    },
    /// `/v2/<name>/referrers/<digest>`
    Referrers {
        /// The repository.
        name: RepositoryName,
        /// The subject.
        digest: Digest,
    },
}

/// Decodes the `%3A`/`%3a` some clients write for `:` in a reference; anything else
/// percent-encoded stays as it is and fails validation.
fn decode_colon(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains('%') { segment.replace("%3A", ":").replace("%3a", ":").into() } else { segment.into() }
}

/// One thing a request needs of its token (see [`Route::needs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// These actions on this repository.
    Repository(&'a RepositoryName, &'static [Action]),
    /// The catalog (`registry:catalog:*`).
    Catalog,
}

impl Need<'_> {
    /// As a token scope.
    pub fn scope(self) -> Scope {
        match self {
            Need::Repository(name, actions) => Scope::repository(name.as_str(), actions.iter().cloned()),
            Need::Catalog => Scope::catalog(),
        }
    }
}

impl Route {
    /// Parses a request path (without query).
    pub fn parse(path: &str) -> Result<Route, RouteError> {
        let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
        if rest.is_empty() || rest == "/" {
            return Ok(Route::Base);
        }
        let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let name = |s: &str| RepositoryName::parse(s).map_err(RouteError::from);
        if let Some(n) = rest.strip_suffix("/tags/list") {
            return Ok(Route::Tags { name: name(n)? });
        }
        if let Some(n) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
            return Ok(Route::StartUpload { name: name(n)? });
        }
        let (head, last) = rest.rsplit_once('/').ok_or(RouteError::NotFound)?;
        let (n, kind) = head.rsplit_once('/').ok_or(RouteError::NotFound)?;
        match kind {
            "manifests" => {
                let name = name(n)?;
                let reference = Reference::parse(&decode_colon(last)).map_err(RouteError::BadReference)?;
                Ok(Route::Manifest { name, reference })
            }
            "blobs" => Ok(Route::Blob { name: name(n)?, digest: Digest::parse(&decode_colon(last))? }),
            "referrers" => Ok(Route::Referrers { name: name(n)?, digest: Digest::parse(&decode_colon(last))? }),
            "uploads" => {
                let n = n.strip_suffix("/blobs").ok_or(RouteError::NotFound)?;
                Ok(Route::Upload { name: name(n)?, id: UploadId::parse(last)? })
            }
            _ => Err(RouteError::NotFound),
        }
    }

    /// What a request needs, borrowed from the route (no allocation: this runs on every
    /// authenticated request): `pull` to read, `pull,push` to write, `delete` to delete, the
    /// catalog scope for the catalog, and `pull` on the source of a cross-repository mount
    /// (`mount_from`). Nothing for `/v2/`, which needs only a valid token.
    pub fn needs<'a>(&'a self, method: &Method, mount_from: Option<&'a RepositoryName>) -> [Option<Need<'a>>; 2] {
        const PULL: &[Action] = &[Action::Pull];
        const PULL_PUSH: &[Action] = &[Action::Pull, Action::Push];
        const DELETE: &[Action] = &[Action::Delete];
        let repo = |name, actions| Some(Need::Repository(name, actions));
        match self {
            Route::Base => [None, None],
            Route::Catalog => [Some(Need::Catalog), None],
            Route::Tags { name } | Route::Referrers { name, .. } => [repo(name, PULL), None],
            Route::Manifest { name, .. } | Route::Blob { name, .. } => match *method {
                Method::GET | Method::HEAD => [repo(name, PULL), None],
                Method::DELETE => [repo(name, DELETE), None],
                _ => [repo(name, PULL_PUSH), None],
            },
            // Cancelling an upload is part of pushing, not a deletion of content.
            Route::Upload { name, .. } => [repo(name, PULL_PUSH), None],
            Route::StartUpload { name } => {
                [repo(name, PULL_PUSH), mount_from.filter(|from| *from != name).and_then(|from| repo(from, PULL))]
            }
        }
    }

    /// [`Route::needs`] as token scopes (for a challenge, which names them).
    pub fn required_scopes(&self, method: &Method, mount_from: Option<&RepositoryName>) -> Vec<Scope> {
        self.needs(method, mount_from).into_iter().flatten().map(Need::scope).collect()
    }

    /// The repository the route is about, if any.
    pub fn name(&self) -> Option<&RepositoryName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::StartUpload { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).expect("valid")
    }

    #[test]
    fn every_endpoint() {
        assert_eq!(Route::parse("/v2/").expect("base"), Route::Base);
        assert_eq!(Route::parse("/v2").expect("base"), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").expect("catalog"), Route::Catalog);
        assert_eq!(Route::parse("/v2/a/b/c/tags/list").expect("tags"), Route::Tags { name: name("a/b/c") });
        assert!(matches!(
            Route::parse("/v2/library/app/manifests/latest").expect("manifest"),
            Route::Manifest { reference: Reference::Tag(_), .. }
        ));
        assert!(matches!(
            Route::parse(&format!("/v2/library/app/manifests/{D}")).expect("manifest"),
            Route::Manifest { reference: Reference::Digest(_), .. }
        ));
        assert!(matches!(Route::parse(&format!("/v2/a/blobs/{D}")).expect("blob"), Route::Blob { .. }));
        assert!(matches!(
            Route::parse(&format!("/v2/a/blobs/{}", D.replace(':', "%3A"))).expect("encoded colon"),
            Route::Blob { .. }
        ));
        assert_eq!(Route::parse("/v2/a/blobs/uploads/").expect("start"), Route::StartUpload { name: name("a") });
        assert_eq!(Route::parse("/v2/a/blobs/uploads").expect("start"), Route::StartUpload { name: name("a") });
        let id = UploadId::new_random();
        assert_eq!(
            Route::parse(&format!("/v2/a/b/blobs/uploads/{id}")).expect("upload"),
            Route::Upload { name: name("a/b"), id }
        );
        assert!(matches!(Route::parse(&format!("/v2/a/referrers/{D}")).expect("referrers"), Route::Referrers { .. }));
    }

    #[test]
    fn names_that_look_like_endpoints() {
        // A repository may be called "blobs", "manifests" or "tags".
        assert_eq!(
            Route::parse("/v2/blobs/manifests/tags/list").expect("tags"),
            Route::Tags { name: name("blobs/manifests") }
        );
        assert!(matches!(
            Route::parse("/v2/manifests/blobs/manifests/v1").expect("manifest"),
            Route::Manifest { ref name, .. } if name.as_str() == "manifests/blobs"
        ));
    }

    #[test]
    fn every_route_names_its_scopes() {
        let s = |r: &str, m: Method| {
            Route::parse(r)
                .expect("route")
                .required_scopes(&m, None)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(s("/v2/", Method::GET).is_empty());
        assert_eq!(s("/v2/_catalog", Method::GET), ["registry:catalog:*"]);
        assert_eq!(s("/v2/a/b/tags/list", Method::GET), ["repository:a/b:pull"]);
        assert_eq!(s("/v2/a/manifests/v1", Method::HEAD), ["repository:a:pull"]);
        assert_eq!(s("/v2/a/manifests/v1", Method::PUT), ["repository:a:pull,push"]);
        assert_eq!(s("/v2/a/manifests/v1", Method::DELETE), ["repository:a:delete"]);
        assert_eq!(s(&format!("/v2/a/blobs/{D}"), Method::DELETE), ["repository:a:delete"]);
        assert_eq!(s(&format!("/v2/a/referrers/{D}"), Method::GET), ["repository:a:pull"]);
        assert_eq!(
            s(&format!("/v2/a/blobs/uploads/{}", UploadId::new_random()), Method::PATCH),
            ["repository:a:pull,push"]
        );
        let mount =
            Route::parse("/v2/a/blobs/uploads/").expect("route").required_scopes(&Method::POST, Some(&name("src/x")));
        let mount: Vec<String> = mount.iter().map(ToString::to_string).collect();
        assert_eq!(mount, ["repository:a:pull,push", "repository:src/x:pull"]);
    }

    #[test]
    fn bad_paths() {
        for p in ["/", "/v1/", "/v2x", "/v2/a", "/v2/a/unknown/x", "/v2/a/tags", "/v2/a/blobs/uploads/x/y/z"] {
            assert!(Route::parse(p).is_err(), "{p}");
        }
        for p in ["/v2/A/tags/list", "/v2/a/../b/tags/list", "/v2/a/%2e%2e/b/tags/list", "/v2//a/tags/list"] {
            assert!(matches!(Route::parse(p), Err(RouteError::Core(registry_core::Error::InvalidName { .. }))), "{p}");
        }
        assert!(matches!(Route::parse("/v2/a/blobs/sha256:abc"), Err(RouteError::Core(_))));
        assert!(matches!(Route::parse("/v2/a/blobs/uploads/not-a-uuid"), Err(RouteError::Storage(_))));
        assert!(matches!(Route::parse("/v2/a/manifests/.INVALID_MANIFEST_NAME"), Err(RouteError::BadReference(_))));
        assert!(matches!(Route::parse("/v2/A/manifests/.bad"), Err(RouteError::Core(_))), "the name is checked first");
    }
}
