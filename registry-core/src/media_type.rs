//! Media types the registry recognises, and the RFC 6838 check for descriptor media types.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifest (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 manifest (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// The deprecated OCI artifact manifest of image-spec 1.1 release candidates (refused).
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The Docker schema 2 image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The OCI empty descriptor's media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The media type without parameters, trimmed and lowercased: `Application/JSON; charset=utf-8` ->
/// `application/json`.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether `media_type` is `type/subtype` per RFC 6838 section 4.2 (restricted names of at most
/// 127 characters, no parameters).
pub fn is_valid(media_type: &str) -> bool {
    let Some((ty, sub)) = media_type.split_once('/') else { return false };
    let restricted_name = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
    };
    restricted_name(ty) && restricted_name(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essence_strips_parameters() {
        assert_eq!(essence("Application/JSON; charset=utf-8"), "application/json");
        assert_eq!(essence(OCI_MANIFEST), OCI_MANIFEST);
    }

    #[test]
    fn rfc6838_names() {
        for ok in [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, "application/vnd.example+type", "text/plain"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "application", "/x", "x/", "a/b/c", "a b/c", "application/x;y=z", "é/x"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
