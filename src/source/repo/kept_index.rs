//! Helm repository indexes kept between runs under `<artifact-dir>/indexes/`, with the
//! validators (`ETag`, `Last-Modified`) that let the next run ask "changed since?". A kept
//! body is used only if its digest checks out. IO.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::source::store::write_atomic;

/// A kept index and its validators.
pub(super) struct Kept {
    pub body: Bytes,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    url: String,
    sha256: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

fn paths(dir: &Path, url: &str) -> (PathBuf, PathBuf) {
    let name = crate::digest::sha256(url.as_bytes());
    let name = name.trim_start_matches("sha256:");
    (
        dir.join(format!("{name}.yaml")),
        dir.join(format!("{name}.json")),
    )
}

/// The kept copy of `url`, if any and intact.
pub(super) async fn load(dir: &Path, url: &str) -> Option<Kept> {
    let (body_path, meta_path) = paths(dir, url);
    let meta: Meta = serde_json::from_slice(&tokio::fs::read(&meta_path).await.ok()?).ok()?;
    if meta.url != url {
        return None;
    }
    let body = tokio::fs::read(&body_path).await.ok()?;
    if crate::digest::sha256(&body) != meta.sha256 {
        tracing::warn!(
            url,
            "ignoring a damaged kept index.yaml; downloading it again"
        );
        return None;
    }
    Some(Kept {
        body: Bytes::from(body),
        etag: meta.etag,
        last_modified: meta.last_modified,
    })
}

/// Keep `body` of `url` with its validators (a failed write only costs a download).
pub(super) async fn store(
    dir: &Path,
    url: &str,
    body: &Bytes,
    etag: Option<String>,
    last_modified: Option<String>,
) {
    let (body_path, meta_path) = paths(dir, url);
    let meta = Meta {
        url: url.to_string(),
        sha256: crate::digest::sha256(body),
        etag,
        last_modified,
    };
    let Ok(meta) = serde_json::to_vec(&meta) else {
        return;
    };
    // Body first, then the metadata naming its digest: a crash in between leaves a pair
    // that does not check out, which is ignored.
    let written = match write_atomic(body_path, body.clone()).await {
        Ok(()) => write_atomic(meta_path, meta.into()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot keep index.yaml for conditional requests");
    }
}
