//! `bundle verify`: every blob's content against its digest, and every manifest's references
//! present (in the bundle, or for a delta in the bundles it was made `--since`). IO.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use futures::StreamExt;
use serde::Serialize;

use super::BundleError;
use super::reader::Bundle;
use crate::registry::manifest::{self, Parsed};

/// What `bundle verify` found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The bundle.
    pub bundle: String,
    /// No problems.
    pub ok: bool,
    /// Blob files checked (manifests included).
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Manifests reached from `index.json`.
    pub manifests: usize,
    /// Blobs referenced but left to the base bundles (`--since`).
    pub from_base: usize,
    /// What is wrong, one line each, naming the item.
    pub problems: Vec<String>,
}

/// Hash a blob file; `Err` describes a mismatch or a read error.
async fn check_blob(bundle: &Bundle, digest: &str) -> Result<u64, String> {
    let rel = format!("blobs/sha256/{}", &digest[7..]);
    let Some((_, reader)) = bundle
        .open_file(&rel)
        .await
        .map_err(|e| format!("blob {digest}: {e}"))?
    else {
        return Err(format!("blob {digest} is not a regular file; refused"));
    };
    let mut stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let mut h = crate::digest::Hasher::default();
    while let Some(chunk) = stream.next().await {
        h.update(&chunk.map_err(|e| format!("blob {digest}: {e}"))?);
    }
    let len = h.len();
    let got = h.finish();
    if got != digest {
        return Err(format!(
            "blob {digest} has content with digest {got} ({len} bytes): it was changed or truncated"
        ));
    }
    Ok(len)
}

/// Verify the bundle at `path`. `Err` only when it cannot be read as an OCI layout at all.
pub async fn verify(path: &Path) -> Result<VerifyReport, BundleError> {
    let p = path.to_path_buf();
    let bundle = tokio::task::spawn_blocking(move || Bundle::open(&p))
        .await
        .map_err(|e| BundleError::io(path, e))??;
    let mut r = VerifyReport {
        bundle: bundle.name().to_string(),
        problems: bundle.problems.clone(),
        ..Default::default()
    };
    let entries = bundle.index().await?;
    let meta = match bundle.meta().await {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(e.to_string());
            None
        }
    };
    let since: BTreeSet<String> = meta
        .as_ref()
        .and_then(|m| m.since.as_ref())
        .map(|s| s.blobs.clone())
        .unwrap_or_default();
    let mut good: HashSet<String> = HashSet::new();
    let digests = bundle.blob_digests().await?;
    let checks = futures::stream::iter(digests.iter().map(|d| {
        let bundle = &bundle;
        async move { (d, check_blob(bundle, d).await) }
    }))
    .buffer_unordered(2)
    .collect::<Vec<_>>()
    .await;
    for (d, c) in checks {
        match c {
            Ok(len) => {
                r.blobs += 1;
                r.bytes += len;
                good.insert(d.clone());
            }
            Err(p) => r.problems.push(p),
        }
    }
    let present: HashSet<&String> = digests.iter().collect();
    let mut from_base = HashSet::new();
    let mut walked = HashSet::new();
    // (digest, size, who refers to it, is a manifest)
    let mut todo: Vec<(String, u64, String, bool)> = Vec::new();
    for e in entries {
        match e {
            Ok(e) => {
                let who = e
                    .ref_name
                    .clone()
                    .unwrap_or_else(|| format!("index.json entry {}", e.digest));
                todo.push((e.digest, e.size, who, true));
            }
            Err(p) => r.problems.push(p),
        }
    }
    while let Some((digest, size, who, is_manifest)) = todo.pop() {
        if !present.contains(&digest) {
            if since.contains(&digest) {
                from_base.insert(digest);
            } else {
                r.problems.push(format!(
                    "{who} refers to {digest}, which is missing from the bundle"
                ));
            }
            continue;
        }
        if !good.contains(&digest) || !is_manifest || !walked.insert(digest.clone()) {
            continue; // bad content is already listed; blobs need no walk
        }
        r.manifests += 1;
        let rel = format!("blobs/sha256/{}", &digest[7..]);
        let bytes = match bundle
            .read_small(&rel, manifest::MAX_MANIFEST_BYTES as u64)
            .await
        {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                r.problems.push(format!("{who}: {e}"));
                continue;
            }
        };
        if bytes.len() as u64 != size {
            r.problems.push(format!(
                "{who}: manifest {digest} is {} bytes, its descriptor says {size}",
                bytes.len()
            ));
        }
        let here = format!("manifest {digest} ({who})");
        match Parsed::parse(&bytes, None) {
            Ok((Parsed::Index(children), _)) => {
                for c in children {
                    todo.push((c.digest, c.size, here.clone(), true));
                }
            }
            Ok((Parsed::Image { config, layers }, _)) => {
                for b in std::iter::once(config)
                    .chain(layers)
                    .filter(|d| !manifest::is_non_distributable(d))
                {
                    todo.push((b.digest, b.size, here.clone(), false));
                }
            }
            Err(e) => r.problems.push(format!("{here}: {e}")),
        }
    }
    if let Some(m) = &meta {
        for b in m.blobs.iter().filter(|b| !present.contains(b)) {
            r.problems.push(format!(
                "{} lists blob {b}, which is missing from the bundle",
                super::META_FILE
            ));
        }
    }
    r.from_base = from_base.len();
    r.ok = r.problems.is_empty();
    Ok(r)
}
