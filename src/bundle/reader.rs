//! Reading a bundle: an OCI image layout directory, or a `.tar` of one read in place
//! (entries are located once, then read by offset; nothing is extracted). IO.
//!
//! Nothing read is trusted: paths come from digests that must be sha256, tar entries with
//! `..`, absolute paths, links or special types are refused (and named in
//! [`Bundle::problems`]), symbolic links in a directory are refused, and every manifest and
//! blob is checked against its digest by whoever reads it (the copy, `bundle verify`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::meta::BundleMeta;
use super::{BundleError, META_FILE, REF_NAME, REPOSITORY};
use crate::registry::endpoint::{BlobBody, Source};
use crate::registry::manifest::{self, Parsed, RawManifest};
use crate::registry::{RegistryError, Scope};

/// A bundle opened for reading.
#[derive(Debug)]
pub struct Bundle {
    name: String,
    files: Files,
    /// What was refused while opening (tar entries), one line each.
    pub problems: Vec<String>,
    /// Blobs the base bundles carried (from `lazyoci.json`), for clearer errors.
    since: BTreeSet<String>,
}

#[derive(Debug)]
enum Files {
    Dir(PathBuf),
    Tar { file: PathBuf, entries: TarEntries },
}

/// One entry of `index.json`.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
    /// `org.opencontainers.image.ref.name`.
    pub ref_name: Option<String>,
    /// lazyoci's repository annotation (manifests stored by digest).
    pub repository: Option<String>,
}

#[derive(Deserialize)]
struct RawIndex {
    manifests: Vec<serde_json::Value>,
}

/// Why a tar entry is refused, if it is.
fn refuse_entry(path: &str, kind: tar::EntryType) -> Option<&'static str> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Some("has an absolute path");
    }
    if p.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::Prefix(_) | Component::RootDir
        )
    }) {
        return Some("has a path with ..");
    }
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => None,
        tar::EntryType::Symlink => Some("is a symbolic link"),
        tar::EntryType::Link => Some("is a hard link"),
        _ => Some("is not a regular file"),
    }
}

/// Tar entries: path → (offset of the data, size).
type TarEntries = HashMap<String, (u64, u64)>;

/// Index the entries of a tar file (headers only; data is skipped by seeking), with the
/// entries refused.
fn index_tar(file: &Path) -> Result<(TarEntries, Vec<String>), BundleError> {
    let f = std::fs::File::open(file).map_err(|e| BundleError::io(file, e))?;
    let mut archive = tar::Archive::new(f);
    let mut entries = HashMap::new();
    let mut problems = Vec::new();
    let bad = |e: std::io::Error| BundleError::Layout {
        path: file.display().to_string(),
        reason: format!("not a readable tar file: {e}"),
    };
    for entry in archive.entries_with_seek().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if let Some(why) = refuse_entry(&raw, kind) {
            problems.push(format!("tar entry {raw:?} {why}; refused"));
            continue;
        }
        if kind == tar::EntryType::Directory {
            continue;
        }
        let path = raw.trim_start_matches("./").to_string();
        entries.insert(path, (entry.raw_file_position(), entry.size()));
    }
    Ok((entries, problems))
}

impl Bundle {
    /// Open a bundle directory or `.tar` file (blocking: a tar is indexed).
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        let meta = std::fs::metadata(path).map_err(|e| BundleError::io(path, e))?;
        let (files, problems) = if meta.is_dir() {
            (Files::Dir(path.to_path_buf()), Vec::new())
        } else {
            let (entries, problems) = index_tar(path)?;
            (
                Files::Tar {
                    file: path.to_path_buf(),
                    entries,
                },
                problems,
            )
        };
        Ok(Bundle {
            name: path.display().to_string(),
            files,
            problems,
            since: BTreeSet::new(),
        })
    }

    /// The bundle's path, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Name blobs of these base bundles in errors about missing blobs.
    pub fn set_since(&mut self, blobs: BTreeSet<String>) {
        self.since = blobs;
    }

    /// Open a file of the bundle: its size and a reader, or `None` when absent or refused.
    pub async fn open_file(
        &self,
        rel: &str,
    ) -> std::io::Result<Option<(u64, Box<dyn AsyncRead + Send + Unpin>)>> {
        match &self.files {
            Files::Dir(dir) => {
                let p = dir.join(rel);
                match tokio::fs::symlink_metadata(&p).await {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => return Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                }
                let f = tokio::fs::File::open(&p).await?;
                let len = f.metadata().await?.len();
                Ok(Some((len, Box::new(f))))
            }
            Files::Tar { file, entries } => {
                let Some(&(offset, size)) = entries.get(rel) else {
                    return Ok(None);
                };
                let mut f = tokio::fs::File::open(file).await?;
                f.seek(std::io::SeekFrom::Start(offset)).await?;
                Ok(Some((size, Box::new(f.take(size)))))
            }
        }
    }

    /// A small file's bytes (at most `limit`), or `None` when absent.
    pub async fn read_small(&self, rel: &str, limit: u64) -> Result<Option<Bytes>, BundleError> {
        let io = |e: std::io::Error| BundleError::Io {
            path: format!("{}: {rel}", self.name),
            reason: e.to_string(),
        };
        let Some((len, mut r)) = self.open_file(rel).await.map_err(io)? else {
            return Ok(None);
        };
        if len > limit {
            return Err(BundleError::Layout {
                path: self.name.clone(),
                reason: format!("{rel} is {len} bytes, more than the {limit} lazyoci accepts"),
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        r.read_to_end(&mut buf).await.map_err(io)?;
        Ok(Some(Bytes::from(buf)))
    }

    /// The digests of the blob files the bundle holds.
    pub async fn blob_digests(&self) -> Result<Vec<String>, BundleError> {
        let names: Vec<String> = match &self.files {
            Files::Dir(dir) => {
                let blobs = dir.join("blobs/sha256");
                let mut out = Vec::new();
                let mut rd = match tokio::fs::read_dir(&blobs).await {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(BundleError::io(&blobs, e)),
                };
                while let Some(e) = rd
                    .next_entry()
                    .await
                    .map_err(|e| BundleError::io(&blobs, e))?
                {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
                out
            }
            Files::Tar { entries, .. } => entries
                .keys()
                .filter_map(|k| k.strip_prefix("blobs/sha256/"))
                .map(str::to_string)
                .collect(),
        };
        let mut out: Vec<String> = names
            .into_iter()
            .map(|n| format!("sha256:{n}"))
            .filter(|d| crate::digest::is_sha256(d))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Check `oci-layout` and read `index.json`'s entries; an entry that is not a usable
    /// descriptor is a problem (`Err` in its place), the rest are read.
    pub async fn index(&self) -> Result<Vec<Result<IndexEntry, String>>, BundleError> {
        let layout_err = |reason: String| BundleError::Layout {
            path: self.name.clone(),
            reason,
        };
        let version = self
            .read_small("oci-layout", 64 * 1024)
            .await?
            .ok_or_else(|| {
                layout_err("it has no oci-layout file (is this an OCI image layout?)".into())
            })?;
        let v: serde_json::Value = serde_json::from_slice(&version)
            .map_err(|e| layout_err(format!("oci-layout is not JSON: {e}")))?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(layout_err(format!(
                "oci-layout says imageLayoutVersion {}, lazyoci reads 1.0.0",
                v.get("imageLayoutVersion")
                    .unwrap_or(&serde_json::Value::Null)
            )));
        }
        let bytes = self
            .read_small("index.json", manifest::MAX_MANIFEST_BYTES as u64)
            .await?
            .ok_or_else(|| layout_err("it has no index.json".into()))?;
        let raw: RawIndex = serde_json::from_slice(&bytes).map_err(|e| {
            layout_err(format!(
                "index.json is not an OCI image index ({e}); re-create the bundle or copy it again"
            ))
        })?;
        Ok(raw
            .manifests
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
                let note = |k: &str| {
                    m.get("annotations")
                        .and_then(|a| a.get(k))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                };
                let digest = text("digest")
                    .filter(|d| crate::digest::is_sha256(d))
                    .ok_or_else(|| {
                        format!("index.json manifests[{i}] has no sha256 digest; skipped")
                    })?;
                let size = m.get("size").and_then(|v| v.as_u64()).ok_or_else(|| {
                    format!("index.json manifests[{i}] ({digest}) has no size; skipped")
                })?;
                Ok(IndexEntry {
                    media_type: text("mediaType").unwrap_or_default(),
                    digest,
                    size,
                    ref_name: note(REF_NAME),
                    repository: note(REPOSITORY),
                })
            })
            .collect())
    }

    /// `lazyoci.json`, if the bundle has one (`Err` when it is unreadable).
    pub async fn meta(&self) -> Result<Option<BundleMeta>, BundleError> {
        let Some(bytes) = self.read_small(META_FILE, 256 * 1024 * 1024).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BundleError::Layout {
                path: self.name.clone(),
                reason: format!("{META_FILE} is not readable: {e}"),
            })
    }

    fn error(&self, reason: String) -> RegistryError {
        RegistryError::Protocol {
            host: self.name.clone(),
            reason,
        }
    }

    fn missing(&self, what: &str, digest: &str) -> RegistryError {
        if self.since.contains(digest) {
            self.error(format!(
                "{what} {digest} is not in this bundle: the bundle it was made --since carried it, and the target does not have it; push that bundle first"
            ))
        } else {
            self.error(format!("{what} {digest} is missing from the bundle"))
        }
    }
}

fn blob_rel(digest: &str) -> Option<String> {
    crate::digest::is_sha256(digest).then(|| format!("blobs/sha256/{}", &digest[7..]))
}

impl Source for Bundle {
    fn host(&self) -> &str {
        &self.name
    }

    fn retries(&self) -> u32 {
        0
    }

    async fn get_manifest(
        &self,
        _repo: &str,
        reference: &str,
        _scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let rel = blob_rel(reference).ok_or_else(|| {
            self.error(format!(
                "{reference:?}: bundle manifests are read by digest"
            ))
        })?;
        let bytes = self
            .read_small(&rel, manifest::MAX_MANIFEST_BYTES as u64)
            .await
            .map_err(|e| self.error(e.to_string()))?
            .ok_or_else(|| self.missing("manifest", reference))?;
        let digest = crate::digest::sha256(&bytes);
        if digest != reference {
            return Err(self.error(format!(
                "manifest {reference} has content with digest {digest}: the bundle is damaged"
            )));
        }
        let (_, media_type) = Parsed::parse(&bytes, None)
            .map_err(|e| self.error(format!("manifest {reference}: {e}")))?;
        Ok(Some(RawManifest {
            bytes,
            media_type,
            digest,
        }))
    }

    async fn get_blob_body(&self, _repo: &str, digest: &str) -> Result<BlobBody, RegistryError> {
        let rel = blob_rel(digest)
            .ok_or_else(|| self.error(format!("{digest:?} is not a sha256 digest")))?;
        let (len, reader) = self
            .open_file(&rel)
            .await
            .map_err(|e| self.error(format!("blob {digest}: {e}")))?
            .ok_or_else(|| self.missing("blob", digest))?;
        Ok(BlobBody {
            len: Some(len),
            stream: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                reader,
                256 * 1024,
            )),
        })
    }
}

/// What `--since PATH` names: a bundle (directory or `.tar`) or its `lazyoci.json`. Returns
/// what a target holds once that bundle and its own bases are pushed.
pub async fn load_base(path: &Path) -> Result<super::meta::Since, BundleError> {
    let meta = if path.is_file() && path.extension().is_some_and(|e| e == "json") {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| BundleError::io(path, e))?;
        serde_json::from_slice::<BundleMeta>(&bytes).map_err(|e| BundleError::Layout {
            path: path.display().to_string(),
            reason: format!("not a {META_FILE}: {e}"),
        })?
    } else {
        let p = path.to_path_buf();
        let bundle = tokio::task::spawn_blocking(move || Bundle::open(&p))
            .await
            .map_err(|e| BundleError::io(path, e))??;
        bundle.meta().await?.ok_or_else(|| BundleError::Layout {
            path: path.display().to_string(),
            reason: format!(
                "it has no {META_FILE}; --since needs a bundle made by lazyoci bundle create (or its {META_FILE})"
            ),
        })?
    };
    Ok(meta.as_base())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_that_escape_or_link_are_refused() {
        use tar::EntryType::*;
        assert_eq!(refuse_entry("blobs/sha256/ab", Regular), None);
        assert_eq!(refuse_entry("./index.json", Regular), None);
        assert!(refuse_entry("../etc/passwd", Regular).is_some());
        assert!(refuse_entry("blobs/../../x", Regular).is_some());
        assert!(refuse_entry("/etc/passwd", Regular).is_some());
        assert!(refuse_entry("blobs/sha256/ab", Symlink).is_some());
        assert!(refuse_entry("blobs/sha256/ab", Link).is_some());
        assert!(refuse_entry("dev", Char).is_some());
    }
}
