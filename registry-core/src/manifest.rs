//! Manifest parsing and validation: OCI image manifest and index, Docker schema 2 manifest and
//! manifest list.
//!
//! [`Manifest::parse`] takes the raw bytes and the request's Content-Type. The kind is the
//! Content-Type's when it names a manifest type; otherwise (absent, `application/json`,
//! `application/octet-stream`) the body's `mediaType`; otherwise it is inferred from the body
//! (`manifests` makes an index, `config` an image manifest), since clients such as podman push OCI
//! manifests without a `mediaType` field. When both the header and the body name a type they must
//! agree. Docker schema 1 and unknown types are refused. The result lists every referenced
//! descriptor (config, layers, child manifests, subject) as this crate's own types.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::Error;
use crate::media_type::{self, essence};

/// The kinds of manifest the registry stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
}

impl ManifestKind {
    /// The kind's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => media_type::OCI_MANIFEST,
            ManifestKind::OciIndex => media_type::OCI_INDEX,
            ManifestKind::DockerManifest => media_type::DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => media_type::DOCKER_MANIFEST_LIST,
        }
    }

    /// The kind of a media type, if it is one of the four.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        match media_type {
            media_type::OCI_MANIFEST => Some(ManifestKind::OciManifest),
            media_type::OCI_INDEX => Some(ManifestKind::OciIndex),
            media_type::DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            media_type::DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// Whether the kind lists other manifests (index, manifest list).
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerManifestList)
    }
}

/// A validated content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// The artifact type, if given.
    pub artifact_type: Option<String>,
    /// The annotations, if any.
    pub annotations: BTreeMap<String, String>,
}

/// A parsed and validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its kind.
    pub kind: ManifestKind,
    /// The config blob (image manifests only).
    pub config: Option<Descriptor>,
    /// The layer blobs (image manifests only).
    pub layers: Vec<Descriptor>,
    /// The child manifests (indexes only).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// The `artifactType` field.
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The fields read before the kind is known.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<serde_json::Value>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
}

/// Content-Types that say nothing about the manifest's kind.
fn is_generic(content_type: &str) -> bool {
    matches!(content_type, "" | "application/json" | "application/octet-stream")
}

fn refuse_unsupported(media_type: &str) -> Result<(), Error> {
    match media_type {
        media_type::DOCKER_SCHEMA1 | media_type::DOCKER_SCHEMA1_SIGNED => Err(Error::UnsupportedManifest {
            media_type: media_type.to_owned(),
            reason: "Docker schema 1 manifests are not supported; push with schema 2 or OCI",
        }),
        media_type::OCI_ARTIFACT_MANIFEST => Err(Error::UnsupportedManifest {
            media_type: media_type.to_owned(),
            reason: "the OCI artifact manifest was dropped from image-spec 1.1; use an image manifest with artifactType",
        }),
        _ => Ok(()),
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidManifest { reason: reason.into() }
}

impl Manifest {
    /// Parses and validates a manifest from its bytes and the request's Content-Type.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, Error> {
        let declared_type = content_type.map(essence).unwrap_or_default();
        refuse_unsupported(&declared_type)?;
        let declared = ManifestKind::from_media_type(&declared_type);
        if declared.is_none() && !is_generic(&declared_type) {
            return Err(Error::UnsupportedManifest {
                media_type: crate::error::quote(&declared_type),
                reason: "not a manifest media type this registry stores",
            });
        }

        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let body_type = match &probe.media_type {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid("mediaType must be a string")),
        };
        if let Some(body_type) = body_type {
            refuse_unsupported(body_type)?;
        }
        match &probe.schema_version {
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) if v.as_u64() == Some(1) => {
                return Err(Error::UnsupportedManifest {
                    media_type: body_type.unwrap_or(media_type::DOCKER_SCHEMA1).to_owned(),
                    reason: "Docker schema 1 manifests are not supported; push with schema 2 or OCI",
                });
            }
            Some(v) => return Err(invalid(format!("schemaVersion must be 2, not {v}"))),
            None => return Err(invalid("schemaVersion is missing")),
        }

        let kind = match (declared, body_type) {
            (Some(kind), Some(body)) if body != kind.media_type() => {
                return Err(invalid(format!(
                    "mediaType {body:?} in the body does not match the Content-Type {:?}",
                    kind.media_type()
                )));
            }
            (Some(kind), _) => kind,
            (None, Some(body)) => ManifestKind::from_media_type(body).ok_or_else(|| Error::UnsupportedManifest {
                media_type: crate::error::quote(body),
                reason: "not a manifest media type this registry stores",
            })?,
            (None, None) => match (&probe.manifests, &probe.config) {
                (Some(_), None) => ManifestKind::OciIndex,
                (None, Some(_)) => ManifestKind::OciManifest,
                _ => return Err(invalid("cannot tell the manifest's kind: give a Content-Type or mediaType")),
            },
        };

        if kind.is_index() {
            let index: RawIndex =
                serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a valid image index: {e}")))?;
            let manifests = index
                .manifests
                .iter()
                .enumerate()
                .map(|(i, d)| convert(d, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Manifest {
                kind,
                config: None,
                layers: Vec::new(),
                manifests,
                subject: index.subject.as_ref().map(|d| convert(d, "subject")).transpose()?,
                artifact_type: checked_type(index.artifact_type, "artifactType")?,
                annotations: sorted(&index.annotations),
            })
        } else {
            let m: RawManifest =
                serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a valid image manifest: {e}")))?;
            let layers = m
                .layers
                .iter()
                .enumerate()
                .map(|(i, d)| convert(d, &format!("layers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Manifest {
                kind,
                config: Some(convert(&m.config, "config")?),
                layers,
                manifests: Vec::new(),
                subject: m.subject.as_ref().map(|d| convert(d, "subject")).transpose()?,
                artifact_type: checked_type(m.artifact_type, "artifactType")?,
                annotations: sorted(&m.annotations),
            })
        }
    }

    /// The kind's media type: what the registry answers as Content-Type.
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }

    /// The blobs this manifest needs in its repository: config and layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }

    /// The artifact type the referrers API reports: `artifactType`, else the config's media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref().or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

fn sorted(map: &Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn checked_type(media_type: Option<String>, field: &str) -> Result<Option<String>, Error> {
    match media_type {
        Some(t) if !media_type::is_valid(&t) => Err(invalid(format!("{field}: {t:?} is not a valid media type"))),
        other => Ok(other),
    }
}

/// A descriptor as the JSON has it (image-spec `descriptor.md`): checked by [`convert`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

/// An image manifest as the JSON has it (image-spec `manifest.md`: config and layers required).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    config: RawDescriptor,
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

/// An image index as the JSON has it (image-spec `image-index.md`: manifests required).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    manifests: Vec<RawDescriptor>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

fn convert(d: &RawDescriptor, field: &str) -> Result<Descriptor, Error> {
    if !media_type::is_valid(&d.media_type) {
        return Err(invalid(format!("{field}.mediaType: {:?} is not a valid media type", d.media_type)));
    }
    let digest = Digest::parse(&d.digest).map_err(|e| invalid(format!("{field}.digest: {e}")))?;
    Ok(Descriptor {
        media_type: d.media_type.clone(),
        digest,
        size: d.size,
        artifact_type: checked_type(d.artifact_type.clone(), &format!("{field}.artifactType"))?,
        annotations: sorted(&d.annotations),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";
    const LAYER: &str = "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0";

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG}","size":7023}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{LAYER}","size":32654}}],"annotations":{{"com.example.key1":"value1"}}}}"#
        )
    }

    #[test]
    fn oci_image_manifest_from_the_spec() {
        let m = Manifest::parse(image(Some(media_type::OCI_MANIFEST)).as_bytes(), Some(media_type::OCI_MANIFEST))
            .expect("valid");
        assert_eq!(m.kind, ManifestKind::OciManifest);
        assert_eq!(m.blobs().count(), 2);
        assert_eq!(m.layers[0].size, 32654);
        assert_eq!(m.config.as_ref().expect("config").digest.to_string(), CONFIG);
        assert_eq!(m.annotations.get("com.example.key1").map(String::as_str), Some("value1"));
        assert_eq!(m.effective_artifact_type(), Some(media_type::OCI_CONFIG));
    }

    #[test]
    fn kind_from_header_body_or_shape() {
        // podman: no mediaType in the body, the header tells.
        let m = Manifest::parse(image(None).as_bytes(), Some(media_type::OCI_MANIFEST)).expect("valid");
        assert_eq!(m.kind, ManifestKind::OciManifest);
        // generic header: the body tells.
        let m = Manifest::parse(image(Some(media_type::DOCKER_MANIFEST)).as_bytes(), Some("application/json"))
            .expect("valid");
        assert_eq!(m.kind, ManifestKind::DockerManifest);
        // neither: the shape tells.
        assert_eq!(Manifest::parse(image(None).as_bytes(), None).expect("valid").kind, ManifestKind::OciManifest);
        // parameters on the header are ignored.
        let ct = format!("{}; charset=utf-8", media_type::OCI_MANIFEST);
        assert!(Manifest::parse(image(None).as_bytes(), Some(&ct)).is_ok());
    }

    #[test]
    fn header_and_body_must_agree() {
        let err = Manifest::parse(image(Some(media_type::DOCKER_MANIFEST)).as_bytes(), Some(media_type::OCI_MANIFEST))
            .expect_err("mismatch");
        assert!(matches!(err, Error::InvalidManifest { .. }));
        assert!(err.to_string().contains("does not match"));
    }

    #[test]
    fn index_with_subject_and_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.example+type","manifests":[{{"mediaType":"{}","digest":"{CONFIG}","size":7143,"platform":{{"architecture":"ppc64le","os":"linux"}}}}],"subject":{{"mediaType":"{}","digest":"{LAYER}","size":1}}}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            media_type::OCI_MANIFEST
        );
        let m = Manifest::parse(body.as_bytes(), Some(media_type::OCI_INDEX)).expect("valid");
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.blobs().count(), 0);
        assert_eq!(m.subject.as_ref().expect("subject").digest.to_string(), LAYER);
        assert_eq!(m.effective_artifact_type(), Some("application/vnd.example+type"));
    }

    #[test]
    fn schema1_and_unknown_types_are_refused() {
        let schema1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        for ct in [Some(media_type::DOCKER_SCHEMA1_SIGNED), Some(media_type::DOCKER_SCHEMA1), None] {
            let err = Manifest::parse(schema1.as_bytes(), ct).expect_err("schema1");
            assert!(matches!(err, Error::UnsupportedManifest { .. }), "{ct:?}: {err}");
            assert!(err.to_string().contains("schema 1"));
        }
        let err = Manifest::parse(image(None).as_bytes(), Some("text/plain")).expect_err("unknown");
        assert!(matches!(err, Error::UnsupportedManifest { .. }));
    }

    #[test]
    fn malformed_manifests_are_invalid_with_a_useful_detail() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "JSON"),
            ("[]".into(), "JSON object"),
            (r#"{"schemaVersion":3,"config":{}}"#.into(), "schemaVersion"),
            (r#"{"config":{}}"#.into(), "schemaVersion"),
            (image(None).replace(LAYER, "sha256:abc"), "digest"),
            (image(None).replace(LAYER, &format!("md5:{}", &LAYER[7..39])), "layers[0].digest"),
            (image(None).replace("tar+gzip", "tar gzip"), "layers[0].mediaType"),
            (image(None).replace("32654", "-1"), "image manifest"),
            (r#"{"schemaVersion":2}"#.into(), "kind"),
            (r#"{"schemaVersion":2,"mediaType":7,"config":{}}"#.into(), "mediaType"),
        ];
        for (body, needle) in cases {
            let err = Manifest::parse(body.as_bytes(), None).expect_err(&body);
            assert_eq!(err.code(), crate::ErrorCode::ManifestInvalid, "{body}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }
}
