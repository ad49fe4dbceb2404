//! The content-addressed artifact directory (`--artifact-dir`): chart archives kept between
//! runs under `blobs/sha256/<hex>`. Blocking file IO runs on the blocking pool.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::FetchError;

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
        let bytes = bytes.clone();
        let parent = path
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| self.err("bad path"))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&parent)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&parent)?;
            tmp.write_all(&bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })
        .await
        .map_err(|e| self.err(e))?
        .map_err(|e| self.err(e))?;
        Ok(digest)
    }
}
