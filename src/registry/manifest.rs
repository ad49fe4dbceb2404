//! Manifest media types and a minimal, read-only view of manifests and indexes. Pure.
//!
//! Manifests are always copied as the exact bytes the source served, so digests survive;
//! this module only reads them to find children and blobs.

use bytes::Bytes;
use serde::Deserialize;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type we copy; sent as `Accept` on every manifest request (without the
/// OCI types some registries 404 OCI manifests, without any they downgrade to schema 1).
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Helm chart config media type.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm chart content layer media type.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A manifest exactly as served, with its media type and digest.
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// Media type, from the body's `mediaType`, else the response, else sniffed.
    pub media_type: String,
    /// `sha256:` digest of `bytes`.
    pub digest: String,
}

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// External URLs (non-distributable layers).
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// Platform of an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Platform of an index entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(rename = "fsLayers", default)]
    fs_layers: Option<serde_json::Value>,
}

/// What a manifest points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An index or manifest list: child manifests.
    Index(Vec<Descriptor>),
    /// An image (or artifact) manifest: config and layers.
    Image {
        /// The config blob.
        config: Descriptor,
        /// Layer blobs.
        layers: Vec<Descriptor>,
    },
}

impl Parsed {
    /// Parse manifest bytes; `declared` is the media type the registry sent, if any.
    /// Returns the effective media type too.
    pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<(Parsed, String), String> {
        let doc: Doc = serde_json::from_slice(bytes)
            .map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        if doc.fs_layers.is_some() || doc.schema_version == Some(1) {
            return Err("Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image with a current tool".into());
        }
        let sniffed = if doc.manifests.is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        };
        let media_type = doc
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| {
                declared
                    .map(|d| d.split(';').next().unwrap_or(d).trim().to_string())
                    .filter(|d| is_manifest_type(d))
            })
            .unwrap_or_else(|| sniffed.to_string());
        let check = |d: &Descriptor| {
            if crate::digest::is_sha256(&d.digest) {
                Ok(())
            } else {
                Err(format!(
                    "descriptor digest {:?} is not a sha256 digest",
                    d.digest
                ))
            }
        };
        let parsed = match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let children = doc.manifests.ok_or("index has no manifests list")?;
                children.iter().try_for_each(check)?;
                Parsed::Index(children)
            }
            _ => {
                let config = doc
                    .config
                    .ok_or_else(|| format!("manifest of type {media_type} has no config"))?;
                let layers = doc.layers.unwrap_or_default();
                check(&config)?;
                layers.iter().try_for_each(check)?;
                Parsed::Image { config, layers }
            }
        };
        Ok((parsed, media_type))
    }
}

/// Whether `t` is one of the manifest media types we handle.
pub fn is_manifest_type(t: &str) -> bool {
    matches!(t, OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST)
}

/// Whether a layer must not be copied (Windows foreign layers and other non-distributable content).
pub fn is_non_distributable(d: &Descriptor) -> bool {
    d.media_type.contains("foreign")
        || d.media_type.contains("nondistributable")
        || d.urls.as_ref().is_some_and(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn sniffs_types_when_the_body_has_no_media_type() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D}","size":1,"mediaType":"{OCI_MANIFEST}"}}]}}"#
        );
        let (p, t) = Parsed::parse(idx.as_bytes(), None).unwrap();
        assert_eq!(t, OCI_INDEX);
        assert!(matches!(p, Parsed::Index(c) if c.len() == 1));
        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":1,"mediaType":"{HELM_CONFIG}"}},"layers":[]}}"#
        );
        assert_eq!(
            Parsed::parse(helm.as_bytes(), Some("text/plain"))
                .unwrap()
                .1,
            OCI_MANIFEST
        );
        assert_eq!(
            Parsed::parse(helm.as_bytes(), Some(DOCKER_MANIFEST))
                .unwrap()
                .1,
            DOCKER_MANIFEST
        );
    }

    #[test]
    fn refuses_schema1_and_bad_digests() {
        assert!(
            Parsed::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
                .unwrap_err()
                .contains("schema 1")
        );
        let bad = r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(
            Parsed::parse(bad.as_bytes(), None)
                .unwrap_err()
                .contains("not a sha256")
        );
        assert!(Parsed::parse(b"not json", None).is_err());
    }
}
