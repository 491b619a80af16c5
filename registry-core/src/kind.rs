//! What an artifact is, from its manifest's media type, its artifact type (`artifactType`, else
//! the config's media type) and its annotations: the one table the artifacts API (`type`,
//! `q=type=`), the accessories' kinds and the portal's views read.

use std::collections::BTreeMap;

use crate::media_type;

/// A Helm chart's config media type (`helm push`).
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// A Helm chart's archive layer (`.tgz`).
pub const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// A Helm chart's provenance layer (`.prov`).
pub const HELM_PROVENANCE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
/// A cosign signature pushed as a referrer.
pub const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// A Sigstore bundle (cosign 3 signatures and attestations).
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// A notation signature.
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A container image (OCI or Docker schema 2), or an index of them.
    Image,
    /// A Helm chart.
    Chart,
    /// A CNAB bundle.
    Cnab,
    /// A WebAssembly module.
    Wasm,
    /// A signature (cosign, notation, a Sigstore bundle).
    Signature,
    /// A software bill of materials (SPDX, CycloneDX, Syft).
    Sbom,
    /// An in-toto attestation (or a DSSE envelope holding one).
    Attestation,
    /// Anything else.
    Unknown,
}

impl ArtifactKind {
    /// Every kind, in the order the portal offers them as filters.
    pub const ALL: [ArtifactKind; 8] = [
        ArtifactKind::Image,
        ArtifactKind::Chart,
        ArtifactKind::Cnab,
        ArtifactKind::Wasm,
        ArtifactKind::Signature,
        ArtifactKind::Sbom,
        ArtifactKind::Attestation,
        ArtifactKind::Unknown,
    ];

    /// The kind of a manifest: `media_type` is the manifest's own, `artifact_type` its
    /// `artifactType` or else its config's media type (as the referrers API reports it).
    pub fn of(media_type: &str, artifact_type: Option<&str>, annotations: &BTreeMap<String, String>) -> ArtifactKind {
        if annotations.contains_key("io.cnab.runtime_version") {
            return ArtifactKind::Cnab;
        }
        match artifact_type.map(media_type::essence) {
            Some(t) => ArtifactKind::of_type(&t),
            None if is_manifest(media_type) => ArtifactKind::Image,
            None => ArtifactKind::Unknown,
        }
    }

    /// The kind an artifact type (or config media type) names.
    pub fn of_type(t: &str) -> ArtifactKind {
        match t {
            media_type::OCI_CONFIG | media_type::DOCKER_CONFIG => ArtifactKind::Image,
            HELM_CONFIG => ArtifactKind::Chart,
            COSIGN_SIGNATURE | SIGSTORE_BUNDLE | NOTATION_SIGNATURE => ArtifactKind::Signature,
            _ if t.starts_with("application/vnd.cnab.") => ArtifactKind::Cnab,
            _ if t.contains("wasm") => ArtifactKind::Wasm,
            _ if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") || t.contains("syft") => {
                ArtifactKind::Sbom
            }
            _ if t.contains("in-toto") || t.contains("dsse") || t.contains("attestation") => ArtifactKind::Attestation,
            _ if t.contains("signature") => ArtifactKind::Signature,
            _ => ArtifactKind::Unknown,
        }
    }

    /// Harbor's name of the kind (the artifacts API's `type`): `IMAGE`, `CHART`, `CNAB`, `WASM`,
    /// `SIGNATURE`, `SBOM`, `ATTESTATION`, `UNKNOWN`.
    pub fn harbor_name(self) -> &'static str {
        match self {
            ArtifactKind::Image => "IMAGE",
            ArtifactKind::Chart => "CHART",
            ArtifactKind::Cnab => "CNAB",
            ArtifactKind::Wasm => "WASM",
            ArtifactKind::Signature => "SIGNATURE",
            ArtifactKind::Sbom => "SBOM",
            ArtifactKind::Attestation => "ATTESTATION",
            ArtifactKind::Unknown => "UNKNOWN",
        }
    }

    /// The kind Harbor's name names (case-insensitively), if any.
    pub fn from_harbor_name(name: &str) -> Option<ArtifactKind> {
        ArtifactKind::ALL.into_iter().find(|k| k.harbor_name().eq_ignore_ascii_case(name))
    }

    /// The additions Harbor offers for the kind (`…/additions/{name}`), in its order.
    pub fn additions(self) -> &'static [&'static str] {
        match self {
            ArtifactKind::Image => &["build_history"],
            ArtifactKind::Chart => &["values.yaml", "readme.md", "dependencies"],
            _ => &[],
        }
    }
}

/// Whether a media type is one of the image manifest or index types.
fn is_manifest(media_type: &str) -> bool {
    crate::ManifestKind::from_media_type(&media_type::essence(media_type)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(media_type: &str, artifact_type: Option<&str>) -> ArtifactKind {
        ArtifactKind::of(media_type, artifact_type, &BTreeMap::new())
    }

    #[test]
    fn each_kind_is_told_from_its_types() {
        let cases = [
            (media_type::OCI_MANIFEST, Some(media_type::OCI_CONFIG), ArtifactKind::Image),
            (media_type::DOCKER_MANIFEST, Some(media_type::DOCKER_CONFIG), ArtifactKind::Image),
            (media_type::OCI_INDEX, None, ArtifactKind::Image),
            (media_type::DOCKER_MANIFEST_LIST, None, ArtifactKind::Image),
            (media_type::OCI_MANIFEST, Some(HELM_CONFIG), ArtifactKind::Chart),
            (media_type::OCI_MANIFEST, Some(COSIGN_SIGNATURE), ArtifactKind::Signature),
            (media_type::OCI_MANIFEST, Some(NOTATION_SIGNATURE), ArtifactKind::Signature),
            (media_type::OCI_MANIFEST, Some(SIGSTORE_BUNDLE), ArtifactKind::Signature),
            (media_type::OCI_MANIFEST, Some("application/spdx+json"), ArtifactKind::Sbom),
            (media_type::OCI_MANIFEST, Some("text/spdx"), ArtifactKind::Sbom),
            (media_type::OCI_MANIFEST, Some("application/vnd.cyclonedx+json"), ArtifactKind::Sbom),
            (media_type::OCI_MANIFEST, Some("application/vnd.goharbor.harbor.sbom.v1"), ArtifactKind::Sbom),
            (media_type::OCI_MANIFEST, Some("application/vnd.in-toto+json"), ArtifactKind::Attestation),
            (media_type::OCI_MANIFEST, Some("application/vnd.dsse.envelope.v1+json"), ArtifactKind::Attestation),
            (media_type::OCI_MANIFEST, Some("application/vnd.wasm.config.v0+json"), ArtifactKind::Wasm),
            (media_type::OCI_MANIFEST, Some("application/vnd.module.wasm.config.v1+json"), ArtifactKind::Wasm),
            (media_type::OCI_MANIFEST, Some("application/vnd.cnab.config.v1+json"), ArtifactKind::Cnab),
            (media_type::OCI_INDEX, Some("application/vnd.cnab.manifest.v1"), ArtifactKind::Cnab),
            (media_type::OCI_MANIFEST, Some("application/vnd.example.thing"), ArtifactKind::Unknown),
            ("application/vnd.example.manifest", None, ArtifactKind::Unknown),
        ];
        for (manifest, artifact, expected) in cases {
            assert_eq!(kind(manifest, artifact), expected, "{manifest} {artifact:?}");
        }
    }

    #[test]
    fn a_cnab_index_is_told_by_its_annotation() {
        let annotations = BTreeMap::from([("io.cnab.runtime_version".to_owned(), "v1.0.0".to_owned())]);
        assert_eq!(ArtifactKind::of(media_type::OCI_INDEX, None, &annotations), ArtifactKind::Cnab);
    }

    #[test]
    fn harbor_names_round_trip() {
        for k in ArtifactKind::ALL {
            assert_eq!(ArtifactKind::from_harbor_name(k.harbor_name()), Some(k));
            assert_eq!(ArtifactKind::from_harbor_name(&k.harbor_name().to_lowercase()), Some(k));
        }
        assert_eq!(ArtifactKind::from_harbor_name("TOASTER"), None);
    }
}
