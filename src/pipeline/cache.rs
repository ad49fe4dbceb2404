//! The discovery cache: a chart version whose archive and render inputs are unchanged is
//! not rendered again. Entries live in memory (the operator keeps one cache for its whole
//! life) and under `<artifact-dir>/discovery/` (the CLI's runs, and the operator's volume
//! when one is mounted). IO.
//!
//! An entry is found by the sha256 of everything that can change what discovery finds: the
//! archive rendered (dependencies included), values and values files' content, kubeVersion,
//! apiVersions, the image discovery settings, and lazyoci's and helm's versions. Each entry
//! carries the sha256 of its own payload; an entry that does not check out (truncated,
//! corrupted, from another format) is ignored and rebuilt, never trusted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::discover::{DiscoveredImage, Discovery, RenderInputs};
use crate::reference::ImageRef;
use crate::result::Provenance;

/// Bump when the meaning of a cached discovery changes.
const FORMAT: u32 = 1;
/// Entries kept in memory at most (then the memory layer starts over; disk stays).
const MAX_IN_MEMORY: usize = 20_000;
/// Entry files larger than this are not read.
const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;

/// Cached discovery results, shared by every run that holds it.
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Arc<Discovery>>>,
}

/// What goes into a cache key, besides the archive.
pub(super) struct KeyInputs<'a> {
    /// helm's version line (`None` when nothing is rendered).
    pub helm: Option<&'a str>,
    /// Chart name.
    pub chart: &'a str,
    /// Digest of the archive as rendered (with fetched dependencies).
    pub archive_digest: String,
    /// Values, values files, kubeVersion, apiVersions.
    pub inputs: &'a RenderInputs,
    /// The global and the upstream's image discovery settings, as JSON.
    pub images: serde_json::Value,
}

/// The key of a discovery: hex sha256 over every input, in a fixed order.
pub(super) fn key(k: &KeyInputs<'_>) -> String {
    let values: Vec<(String, String)> = k
        .inputs
        .values
        .iter()
        .map(|(name, content)| (name.clone(), crate::digest::sha256(content)))
        .collect();
    let doc = serde_json::json!({
        "format": FORMAT,
        "lazyoci": env!("CARGO_PKG_VERSION"),
        "helm": k.helm,
        "chart": k.chart,
        "archive": k.archive_digest,
        "values": values,
        "kubeVersion": k.inputs.kube_version,
        "apiVersions": k.inputs.api_versions,
        "images": k.images,
    });
    let digest = crate::digest::sha256(doc.to_string().as_bytes());
    digest.trim_start_matches("sha256:").to_string()
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    /// sha256 of `payload`.
    sha256: String,
    /// The discovery, as JSON text.
    payload: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    images: Vec<StoredImage>,
    excluded: Vec<StoredImage>,
    warnings: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredImage {
    image: String,
    provenance: Vec<Provenance>,
}

fn store_images(images: &[DiscoveredImage]) -> Vec<StoredImage> {
    images
        .iter()
        .map(|d| StoredImage {
            image: d.image.to_string(),
            provenance: d.provenance.clone(),
        })
        .collect()
}

fn load_images(images: Vec<StoredImage>) -> Option<Vec<DiscoveredImage>> {
    images
        .into_iter()
        .map(|s| {
            Some(DiscoveredImage {
                image: ImageRef::parse(&s.image).ok()?,
                provenance: s.provenance,
            })
        })
        .collect()
}

fn encode(d: &Discovery) -> Option<Vec<u8>> {
    let payload = serde_json::to_string(&Stored {
        images: store_images(&d.images),
        excluded: store_images(&d.excluded),
        warnings: d.warnings.clone(),
    })
    .ok()?;
    serde_json::to_vec(&Entry {
        format: FORMAT,
        sha256: crate::digest::sha256(payload.as_bytes()),
        payload,
    })
    .ok()
}

fn decode(bytes: &[u8]) -> Option<Discovery> {
    let entry: Entry = serde_json::from_slice(bytes).ok()?;
    if entry.format != FORMAT || crate::digest::sha256(entry.payload.as_bytes()) != entry.sha256 {
        return None;
    }
    let stored: Stored = serde_json::from_str(&entry.payload).ok()?;
    Some(Discovery {
        images: load_images(stored.images)?,
        excluded: load_images(stored.excluded)?,
        warnings: stored.warnings,
    })
}

impl DiscoveryCache {
    /// A cache in memory and, when `dir` is given, in files under it.
    pub fn new(dir: Option<PathBuf>) -> Self {
        DiscoveryCache {
            dir,
            memory: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(&key[..2]).join(format!("{key}.json")))
    }

    /// The discovery stored under `key`, if any and intact. A damaged file is removed.
    pub(super) async fn get(&self, key: &str) -> Option<Discovery> {
        if let Some(d) = self.memory.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Some((*d).clone());
        }
        let path = self.path(key)?;
        let meta = tokio::fs::metadata(&path).await.ok()?;
        if meta.len() > MAX_ENTRY_BYTES {
            let _ = tokio::fs::remove_file(&path).await;
            return None;
        }
        let bytes = tokio::fs::read(&path).await.ok()?;
        match decode(&bytes) {
            Some(d) => {
                self.remember(key, &d);
                Some(d)
            }
            None => {
                tracing::warn!(file = %path.display(), "ignoring a damaged discovery cache entry; it is rebuilt");
                let _ = tokio::fs::remove_file(&path).await;
                None
            }
        }
    }

    fn remember(&self, key: &str, d: &Discovery) {
        if let Ok(mut m) = self.memory.lock() {
            if m.len() >= MAX_IN_MEMORY {
                m.clear();
            }
            m.insert(key.to_string(), Arc::new(d.clone()));
        }
    }

    /// Store `d` under `key` (a failed write only costs a render next time).
    pub(super) async fn put(&self, key: &str, d: &Discovery) {
        self.remember(key, d);
        let (Some(path), Some(bytes)) = (self.path(key), encode(d)) else {
            return;
        };
        if let Err(e) = crate::source::store::write_atomic(path, bytes.into()).await {
            tracing::warn!(error = %e, "cannot write a discovery cache entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery() -> Discovery {
        Discovery {
            images: vec![DiscoveredImage {
                image: ImageRef::parse("docker.io/library/nginx:1.27").expect("ref"),
                provenance: vec![Provenance {
                    from: crate::spec::DiscoverySource::Rendered,
                    at: "templates/deploy.yaml: spec.containers[0].image".into(),
                }],
            }],
            excluded: Vec::new(),
            warnings: vec!["a warning".into()],
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let bytes = encode(&discovery()).expect("encodes");
        assert_eq!(decode(&bytes), Some(discovery()));
        assert_eq!(decode(&bytes[..bytes.len() / 2]), None, "truncated");
        let mut tampered = String::from_utf8(bytes).expect("utf8");
        tampered = tampered.replace("nginx", "evilx");
        assert_eq!(decode(tampered.as_bytes()), None, "payload altered");
    }

    #[test]
    fn every_input_changes_the_key() {
        let inputs = RenderInputs {
            values: vec![("values.yaml".into(), b"a: 1".to_vec())],
            kube_version: None,
            api_versions: vec![],
        };
        let base = KeyInputs {
            helm: Some("v4.3.1"),
            chart: "c",
            archive_digest: "sha256:aa".into(),
            inputs: &inputs,
            images: serde_json::json!(null),
        };
        let k0 = key(&base);
        assert_eq!(k0, key(&base), "stable");
        // Each render input on its own: the values, kubeVersion, apiVersions.
        let others = [
            RenderInputs {
                values: vec![("values.yaml".into(), b"a: 2".to_vec())],
                ..inputs.clone()
            },
            RenderInputs {
                kube_version: Some("1.30.0".into()),
                ..inputs.clone()
            },
            RenderInputs {
                api_versions: vec!["monitoring.coreos.com/v1".into()],
                ..inputs.clone()
            },
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(
                k0,
                key(&KeyInputs {
                    inputs: other,
                    ..clone(&base)
                }),
                "render input {i}"
            );
        }
        assert_ne!(
            k0,
            key(&KeyInputs {
                helm: Some("v4.3.2"),
                ..clone(&base)
            })
        );
        assert_ne!(
            k0,
            key(&KeyInputs {
                archive_digest: "sha256:bb".into(),
                ..clone(&base)
            })
        );
        assert_ne!(
            k0,
            key(&KeyInputs {
                images: serde_json::json!({"exclude": ["x"]}),
                ..clone(&base)
            })
        );
    }

    fn clone<'a>(k: &KeyInputs<'a>) -> KeyInputs<'a> {
        KeyInputs {
            helm: k.helm,
            chart: k.chart,
            archive_digest: k.archive_digest.clone(),
            inputs: k.inputs,
            images: k.images.clone(),
        }
    }
}
