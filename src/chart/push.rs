//! Pushing a chart to the target as a Helm OCI artifact. IO.
//!
//! Archives from Helm repositories and local directories become a manifest with Helm's
//! media types, built deterministically so re-runs give the same digest and are skipped.
//! Charts that already are OCI artifacts are copied byte for byte, so the target digest
//! equals the source digest.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::json;

use crate::registry::copy::{CopyJob, CopyStats};
use crate::registry::endpoint::Sink;
use crate::registry::manifest::{HELM_CHART_LAYER, HELM_CONFIG, OCI_MANIFEST, RawManifest};
use crate::registry::{Registries, RegistryError, Scope};
use crate::source::{FetchedChart, Origin};

/// The artifact to push for a chart archive.
#[derive(Clone, Debug)]
pub struct ChartArtifact {
    /// Config blob (Chart.yaml as JSON).
    pub config: Bytes,
    /// The archive (the only layer).
    pub layer: Bytes,
    /// The manifest.
    pub manifest: RawManifest,
}

/// Build the Helm OCI artifact for a chart archive. Pure and deterministic.
pub fn build_artifact(chart: &FetchedChart) -> ChartArtifact {
    let config = Bytes::from(serde_json::to_vec(&chart.meta.json).unwrap_or_default());
    let mut annotations = BTreeMap::new();
    annotations.insert("org.opencontainers.image.title", chart.meta.name.clone());
    annotations.insert(
        "org.opencontainers.image.version",
        chart.meta.version.clone(),
    );
    if let Some(d) = chart.meta.description.as_ref().filter(|d| !d.is_empty()) {
        annotations.insert("org.opencontainers.image.description", d.clone());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": HELM_CONFIG, "digest": crate::digest::sha256(&config), "size": config.len()},
        "layers": [{"mediaType": HELM_CHART_LAYER, "digest": chart.digest, "size": chart.archive.len()}],
        "annotations": annotations,
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default());
    ChartArtifact {
        config,
        layer: chart.archive.clone(),
        manifest: RawManifest {
            digest: crate::digest::sha256(&bytes),
            bytes,
            media_type: OCI_MANIFEST.to_string(),
        },
    }
}

/// The manifest digest the target should hold for this chart.
pub fn expected_digest(chart: &FetchedChart) -> String {
    match &chart.origin {
        Origin::Oci { manifest, .. } => manifest.digest.clone(),
        Origin::Archive => build_artifact(chart).manifest.digest,
    }
}

/// Push `chart` to `repo:tag` on `dst`. The caller has already checked that the tag does
/// not hold the expected digest.
pub async fn push<D: Sink>(
    registries: &Registries,
    dst: &D,
    repo: &str,
    tag: &str,
    chart: &FetchedChart,
) -> Result<String, RegistryError> {
    match &chart.origin {
        Origin::Oci {
            host,
            repo: src_repo,
            manifest,
        } => {
            let src = registries.client(host).await?;
            let job = CopyJob {
                src: &*src,
                src_repo,
                dst,
                dst_repo: repo,
                blob_parallelism: 2,
                blobs: registries.blob_index(),
            };
            job.copy(manifest, Some(tag), &CopyStats::default()).await
        }
        Origin::Archive => {
            let art = build_artifact(chart);
            let scope = Scope::Push(repo.to_string());
            for blob in [&art.config, &art.layer] {
                let digest = crate::digest::sha256(blob);
                if !dst.blob_exists(repo, &digest, &scope).await? {
                    dst.push_blob_bytes(repo, &digest, blob.clone()).await?;
                }
            }
            dst.put_manifest(repo, tag, &art.manifest).await?;
            Ok(art.manifest.digest)
        }
    }
}
