//! Writing a bundle: an OCI image layout directory as the destination of a mirror run. IO.
//!
//! Blobs stream into a temporary file next to their final name and are renamed into
//! `blobs/sha256/<hex>` only once the whole stream arrived with the right size; the copy
//! that feeds them ([`crate::registry::copy`]) has checked the digest by then. Manifests are
//! stored the same way, byte for byte. `index.json` and `lazyoci.json` are written last, by
//! [`Layout::finish`], so a layout without them is an unfinished one. A blob or manifest the
//! `--since` base carried counts as present and is left out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::meta::{BundleMeta, Since};
use super::{BundleError, META_FILE, REF_NAME, REPOSITORY};
use crate::registry::endpoint::Sink;
use crate::registry::manifest::{self, Parsed, RawManifest};
use crate::registry::referrers::Referrer;
use crate::registry::{RegistryError, Scope};
use crate::result::MirrorReport;

/// The `oci-layout` file's content.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout being written.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    name: String,
    base: Since,
    state: Mutex<State>,
    seq: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Ref name → manifest.
    tagged: BTreeMap<String, Entry>,
    /// Manifests stored by digest, with their repository, in the order written.
    untagged: Vec<(String, Entry)>,
    /// Digests of the manifests stored in this run.
    manifests: HashSet<String>,
    /// Digests an index stored in this run lists (not worth an `index.json` entry).
    children: HashSet<String>,
    /// Every blob the layout holds for this run.
    carried: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    digest: String,
    media_type: String,
    size: u64,
    artifact_type: Option<String>,
}

/// `blobs/sha256/<hex>` under `dir`, for a valid sha256 digest only.
pub fn blob_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    crate::digest::is_sha256(digest).then(|| dir.join("blobs/sha256").join(&digest[7..]))
}

impl Layout {
    /// Start writing a layout into `dir` (created; an existing lazyoci layout there is
    /// reused, so a re-run does not fetch its blobs again), leaving out what `base` carried.
    pub fn create(dir: &Path, base: Option<Since>) -> Result<Layout, BundleError> {
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| BundleError::io(dir, e))?
                .next()
                .is_none();
            if !empty && !dir.join("oci-layout").exists() {
                return Err(BundleError::Io {
                    path: dir.display().to_string(),
                    reason: "exists and is not an OCI layout; choose a new path or remove it"
                        .into(),
                });
            }
        }
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| BundleError::io(dir, e))?;
        std::fs::write(dir.join("oci-layout"), OCI_LAYOUT).map_err(|e| BundleError::io(dir, e))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            name: dir.display().to_string(),
            base: base.unwrap_or_default(),
            state: Mutex::default(),
            seq: AtomicU64::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, reason: String) -> RegistryError {
        RegistryError::Protocol {
            host: self.name.clone(),
            reason,
        }
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        blob_path(&self.dir, digest)
            .ok_or_else(|| self.error(format!("{digest:?} is not a sha256 digest")))
    }

    fn temp_path(&self, digest: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join("blobs/sha256").join(format!(
            ".partial-{}-{n}",
            digest.trim_start_matches("sha256:")
        ))
    }

    /// The digest `repo:reference` names in this run or in the base.
    fn resolve(&self, repo: &str, reference: &str) -> Option<String> {
        let st = self.state();
        if crate::digest::is_sha256(reference) {
            return (st.manifests.contains(reference) || self.base.blobs.contains(reference))
                .then(|| reference.to_string());
        }
        let name = format!("{repo}:{reference}");
        st.tagged
            .get(&name)
            .map(|e| e.digest.clone())
            .or_else(|| self.base.refs.get(&name).cloned())
    }

    async fn write_blob(
        &self,
        digest: &str,
        size: u64,
        mut body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Result<(), RegistryError> {
        let path = self.path_of(digest)?;
        let tmp = self.temp_path(digest);
        let io = |e: std::io::Error| self.error(format!("writing {digest}: {e}"));
        let written = async {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
            let mut len = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| self.error(format!("blob {digest}: {e}")))?;
                len += chunk.len() as u64;
                f.write_all(&chunk).await.map_err(io)?;
            }
            f.flush().await.map_err(io)?;
            if len != size {
                return Err(self.error(format!(
                    "blob {digest}: {len} bytes arrived, its descriptor says {size}"
                )));
            }
            tokio::fs::rename(&tmp, &path).await.map_err(io)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written?;
        self.state().carried.insert(digest.to_string());
        Ok(())
    }

    /// Write `index.json` and `lazyoci.json` (describing `report`'s charts and images) and
    /// remove blobs no longer referenced from an earlier run into the same directory.
    pub fn finish(&self, report: &MirrorReport) -> Result<BundleMeta, BundleError> {
        let st = self.state();
        let descriptor = |e: &Entry, annotations: Value| {
            let mut d = json!({
                "mediaType": e.media_type,
                "digest": e.digest,
                "size": e.size,
                "annotations": annotations,
            });
            if let Some(t) = &e.artifact_type {
                d["artifactType"] = json!(t);
            }
            d
        };
        let tagged_digests: HashSet<&str> = st.tagged.values().map(|e| e.digest.as_str()).collect();
        let mut manifests: Vec<Value> = st
            .untagged
            .iter()
            .filter(|(_, e)| {
                !st.children.contains(&e.digest) && !tagged_digests.contains(e.digest.as_str())
            })
            // Named `repo@digest`, so layout readers that look entries up by name find them.
            .map(|(repo, e)| {
                let name = format!("{repo}@{}", e.digest);
                descriptor(e, json!({ REF_NAME: name, REPOSITORY: repo }))
            })
            .collect();
        for (name, e) in &st.tagged {
            let repo = super::split_ref_name(name).map_or(name.as_str(), |(r, _)| r);
            manifests.push(descriptor(e, json!({ REF_NAME: name, REPOSITORY: repo })));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": manifests,
        });
        let mut meta = BundleMeta::from_report(report);
        meta.blobs = st.carried.clone();
        meta.refs = st
            .tagged
            .iter()
            .map(|(k, e)| (k.clone(), e.digest.clone()))
            .collect();
        if !self.base.blobs.is_empty() || !self.base.refs.is_empty() {
            meta.since = Some(self.base.clone());
        }
        let carried = st.carried.clone();
        drop(st);
        let write = |name: &str, v: &dyn erased::Json| -> Result<(), BundleError> {
            let tmp = self.dir.join(format!(".{name}.partial"));
            let bytes = v.to_bytes().map_err(|e| BundleError::io(&tmp, e))?;
            std::fs::write(&tmp, bytes).map_err(|e| BundleError::io(&tmp, e))?;
            std::fs::rename(&tmp, self.dir.join(name)).map_err(|e| BundleError::io(&tmp, e))
        };
        write(META_FILE, &meta)?;
        write("index.json", &index)?;
        let blobs = self.dir.join("blobs/sha256");
        for f in std::fs::read_dir(&blobs)
            .map_err(|e| BundleError::io(&blobs, e))?
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if !carried.contains(&format!("sha256:{name}")) {
                let _ = std::fs::remove_file(f.path());
            }
        }
        Ok(meta)
    }
}

mod erased {
    /// Anything serialisable as pretty JSON, behind `dyn`.
    pub trait Json {
        fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec_pretty(self)
        }
    }
}

impl Sink for Layout {
    fn host(&self) -> &str {
        &self.name
    }

    async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        _scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        Ok(self.resolve(repo, reference))
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        _scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let Some(digest) = self.resolve(repo, reference) else {
            return Ok(None);
        };
        let path = self.path_of(&digest)?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            // Carried by the base only: not readable here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("reading {digest}: {e}"))),
        };
        if crate::digest::sha256(&bytes) != digest {
            return Err(self.error(format!(
                "manifest {digest} on disk does not match its digest"
            )));
        }
        let (_, media_type) = Parsed::parse(&bytes, None).map_err(|e| self.error(e))?;
        Ok(Some(RawManifest {
            bytes,
            media_type,
            digest,
        }))
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        let (parsed, _) =
            Parsed::parse(&m.bytes, Some(&m.media_type)).map_err(|e| self.error(e))?;
        let path = self.path_of(&m.digest)?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let body = futures::stream::iter([Ok(m.bytes.clone())]).boxed();
            self.write_blob(&m.digest, m.bytes.len() as u64, body)
                .await?;
        }
        let artifact_type = serde_json::from_slice::<Value>(&m.bytes)
            .ok()
            .and_then(|v| v.get("artifactType")?.as_str().map(str::to_string));
        let entry = Entry {
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            size: m.bytes.len() as u64,
            artifact_type,
        };
        let mut st = self.state();
        st.carried.insert(m.digest.clone());
        if let Parsed::Index(children) = parsed {
            st.children.extend(children.into_iter().map(|c| c.digest));
        }
        if reference == m.digest {
            if st.manifests.insert(m.digest.clone()) {
                st.untagged.push((repo.to_string(), entry));
            }
        } else {
            st.manifests.insert(m.digest.clone());
            st.tagged.insert(format!("{repo}:{reference}"), entry);
        }
        Ok(())
    }

    async fn blob_exists(
        &self,
        _repo: &str,
        digest: &str,
        _scope: &Scope,
    ) -> Result<bool, RegistryError> {
        if self.base.blobs.contains(digest) {
            return Ok(true);
        }
        let path = self.path_of(digest)?;
        let there = tokio::fs::try_exists(&path).await.unwrap_or(false);
        if there {
            self.state().carried.insert(digest.to_string());
        }
        Ok(there)
    }

    async fn mount_blob(
        &self,
        repo: &str,
        _from: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        // One layout holds every repository's blobs.
        self.blob_exists(repo, digest, &Scope::Pull(repo.to_string()))
            .await
    }

    async fn push_blob_bytes(
        &self,
        _repo: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        if crate::digest::sha256(&bytes) != digest {
            return Err(self.error(format!("blob {digest}: content does not match its digest")));
        }
        let size = bytes.len() as u64;
        self.write_blob(digest, size, futures::stream::iter([Ok(bytes)]).boxed())
            .await
    }

    async fn push_blob_stream(
        &self,
        _repo: &str,
        digest: &str,
        size: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Result<(), RegistryError> {
        self.write_blob(digest, size, body).await
    }

    async fn referrers_api(
        &self,
        _repo: &str,
        _digest: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        // A layout has no referrers API: referrers are listed by the tag schema index.
        Ok(None)
    }
}
