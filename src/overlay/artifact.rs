//! The overlay as an OCI artifact next to the chart: a manifest whose `subject` is the
//! chart's manifest, so whoever pulls the chart finds its overlay through the referrers API
//! or, where the registry lacks it, the referrers tag schema (`sha256-<chart hex>`). IO.
//!
//! The manifest is built deterministically (no timestamps), so an unchanged overlay has the
//! same digest and a re-run writes nothing. When an overlay changes, the index entry of the
//! old one is replaced, not added to: a chart version has one current overlay.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::registry::manifest::{OCI_INDEX, OCI_MANIFEST, RawManifest};
use crate::registry::referrers::{Referrer, digest_tag, parse_referrers};
use crate::registry::{RegistryClient, RegistryError, Scope};

/// `artifactType` of an overlay manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.lazyoci.helm.values-overlay.v1";
/// Media type of the overlay layer (the values file).
pub const LAYER_TYPE: &str = "application/vnd.lazyoci.helm.values-overlay.v1+yaml";
/// The OCI empty config.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// The overlay manifest for `text` (file `name`) referring to the chart manifest `subject`.
/// Pure and deterministic.
pub fn build(text: &str, name: &str, subject: &RawManifest) -> (Bytes, Bytes, RawManifest) {
    let config = Bytes::from_static(b"{}");
    let layer = Bytes::from(text.as_bytes().to_vec());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": crate::digest::sha256(&config), "size": config.len()},
        "layers": [{
            "mediaType": LAYER_TYPE,
            "digest": crate::digest::sha256(&layer),
            "size": layer.len(),
            "annotations": {"org.opencontainers.image.title": name},
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.bytes.len()},
        "annotations": {"org.opencontainers.image.title": name},
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default());
    let m = RawManifest {
        digest: crate::digest::sha256(&bytes),
        bytes,
        media_type: OCI_MANIFEST.to_string(),
    };
    (config, layer, m)
}

/// The referrers index `existing` with every other overlay of the subject replaced by
/// `entry`; `None` when it already lists exactly that.
pub fn replace_in_index(existing: Option<&[u8]>, entry: &Value) -> Result<Option<Bytes>, String> {
    let mut doc = match existing {
        Some(b) => serde_json::from_slice::<Value>(b)
            .map_err(|e| format!("referrers index is not JSON: {e}"))?,
        None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let digest = entry["digest"].as_str().unwrap_or_default();
    if let Some(b) = existing {
        let have = parse_referrers(b)?;
        let ours: Vec<&Referrer> = have
            .iter()
            .filter(|r| r.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
            .collect();
        if ours.len() == 1 && ours[0].digest == digest {
            return Ok(None);
        }
    }
    let Some(list) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err("referrers index has no manifests list".into());
    };
    list.retain(|m| m.get("artifactType").and_then(Value::as_str) != Some(ARTIFACT_TYPE));
    list.push(entry.clone());
    serde_json::to_vec(&doc)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| e.to_string())
}

/// Push the overlay `text` next to the chart `repo@chart_digest` on `dst`; returns the
/// overlay manifest's digest. Writes nothing that is already there.
pub async fn push(
    dst: &RegistryClient,
    repo: &str,
    chart_digest: &str,
    text: &str,
    name: &str,
) -> Result<String, RegistryError> {
    let scope = Scope::Push(repo.to_string());
    let protocol = |reason: String| RegistryError::Protocol {
        host: dst.host().to_string(),
        reason: format!("{repo}: {reason}"),
    };
    let subject = dst
        .get_manifest(repo, chart_digest, &scope)
        .await?
        .ok_or_else(|| protocol(format!("the chart manifest {chart_digest} is not there")))?;
    let (config, layer, manifest) = build(text, name, &subject);
    if dst.head_manifest(repo, &manifest.digest, &scope).await? != Some(manifest.digest.clone()) {
        for blob in [&config, &layer] {
            let digest = crate::digest::sha256(blob);
            if !dst.blob_exists(repo, &digest, &scope).await? {
                dst.push_blob_bytes(repo, &digest, blob.clone()).await?;
            }
        }
        dst.put_manifest(repo, &manifest.digest, &manifest).await?;
    }
    // A registry with the referrers API lists it by its subject already.
    if let Some(list) = dst.referrers_api(repo, chart_digest).await?
        && list.iter().any(|r| r.digest == manifest.digest)
    {
        return Ok(manifest.digest);
    }
    let entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
        "artifactType": ARTIFACT_TYPE,
        "annotations": {"org.opencontainers.image.title": name},
    });
    let tag = digest_tag(chart_digest, "");
    let existing = dst.get_manifest(repo, &tag, &scope).await?;
    if let Some(bytes) =
        replace_in_index(existing.as_ref().map(|m| &m.bytes[..]), &entry).map_err(protocol)?
    {
        let index = RawManifest {
            digest: crate::digest::sha256(&bytes),
            bytes,
            media_type: OCI_INDEX.to_string(),
        };
        dst.put_manifest(repo, &tag, &index).await?;
    }
    Ok(manifest.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_keeps_other_referrers_and_one_overlay() {
        let sig = json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "a".repeat(64)), "size": 1, "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"});
        let old = json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "b".repeat(64)), "size": 1, "artifactType": ARTIFACT_TYPE});
        let new = json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "c".repeat(64)), "size": 1, "artifactType": ARTIFACT_TYPE});
        let have = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sig, old]}),
        )
        .unwrap();
        let out = replace_in_index(Some(&have), &new).unwrap().unwrap();
        let list = parse_referrers(&out).unwrap();
        let digests: Vec<&str> = list.iter().map(|r| &r.digest[7..8]).collect();
        assert_eq!(digests, ["a", "c"]);
        assert!(replace_in_index(Some(&out), &new).unwrap().is_none());
        let fresh = replace_in_index(None, &new).unwrap().unwrap();
        assert_eq!(parse_referrers(&fresh).unwrap().len(), 1);
    }

    #[test]
    fn the_manifest_is_deterministic_and_refers_to_the_chart() {
        let subject = RawManifest {
            digest: format!("sha256:{}", "d".repeat(64)),
            bytes: Bytes::from_static(b"{\"x\":1}"),
            media_type: OCI_MANIFEST.into(),
        };
        let (_, layer, a) = build("image: x\n", "app-1.0.0.values.yaml", &subject);
        let (_, _, b) = build("image: x\n", "app-1.0.0.values.yaml", &subject);
        assert_eq!(a.digest, b.digest);
        assert_eq!(&layer[..], b"image: x\n");
        let doc: Value = serde_json::from_slice(&a.bytes).unwrap();
        assert_eq!(doc["subject"]["digest"], subject.digest);
        assert_eq!(doc["subject"]["size"], 7);
        assert_eq!(doc["artifactType"], ARTIFACT_TYPE);
    }
}
