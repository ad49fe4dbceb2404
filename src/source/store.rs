//! The content-addressed artifact directory (`--artifact-dir`): chart archives kept between
//! runs under `blobs/sha256/<hex>`. Blocking file IO runs on the blocking pool.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::FetchError;

/// Write `bytes` to `path` so that a reader sees the old file or the new one, never half:
/// into a temporary file beside it (its directory created), then renamed over it. On the
/// blocking pool.
pub(crate) async fn write_atomic(path: PathBuf, bytes: Bytes) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let parent = path.parent().ok_or_else(|| {
            std::io::Error::other(format!("{} has no parent directory", path.display()))
        })?;
        std::fs::create_dir_all(parent)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        tmp.write_all(&bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A content-addressed store of chart archives.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
}

impl ArtifactStore {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactStore { dir: dir.into() }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        crate::digest::is_sha256(digest).then(|| self.dir.join("blobs/sha256").join(&digest[7..]))
    }

    fn err(&self, reason: impl ToString) -> FetchError {
        FetchError::Store {
            path: self.dir.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The archive with this digest, if stored and intact (a corrupted file is removed).
    pub async fn get(&self, digest: &str) -> Option<Bytes> {
        let path = self.path(digest)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        if crate::digest::sha256(&bytes) == digest {
            Some(Bytes::from(bytes))
        } else {
            let _ = tokio::fs::remove_file(&path).await;
            None
        }
    }

    /// Store `bytes`; returns their digest.
    pub async fn put(&self, bytes: &Bytes) -> Result<String, FetchError> {
        let digest = crate::digest::sha256(bytes);
        let path = self.path(&digest).ok_or_else(|| self.err("bad digest"))?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(digest);
        }
        write_atomic(path, bytes.clone())
            .await
            .map_err(|e| self.err(e))?;
        Ok(digest)
    }
}
