//! Registry-to-registry copy of a manifest tree (index, manifests, blobs). IO.
//!
//! Manifests move as the exact bytes the source served, so every digest survives. Blobs
//! stream from the source GET into one PUT on the target and are hashed on the way: bytes
//! that do not match their digest abort the upload, so nothing unverified is committed.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};

use super::RegistryError;
use super::Scope;
use super::endpoint::{Sink, Source};
use super::manifest::{self, Descriptor, Parsed, RawManifest};

/// Byte and blob counts of one copy.
#[derive(Debug, Default)]
pub struct CopyStats {
    /// Blob bytes sent to the target.
    pub bytes: AtomicU64,
    /// Blobs uploaded.
    pub blobs_copied: AtomicU64,
    /// Blobs the target already had.
    pub blobs_present: AtomicU64,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: AtomicU64,
    /// Blob bytes streamed so far, counted chunk by chunk while uploads run (attempts that
    /// failed and were retried included), for live progress; `bytes` is the final count.
    pub streamed: std::sync::Arc<AtomicU64>,
}

/// Where to copy from and to: registry to registry, registry to bundle, bundle to registry.
pub struct CopyJob<'a, S: Source, D: Sink> {
    /// Source registry (or bundle).
    pub src: &'a S,
    /// Source repository.
    pub src_repo: &'a str,
    /// Target registry (or bundle).
    pub dst: &'a D,
    /// Target repository.
    pub dst_repo: &'a str,
    /// Blobs copied in parallel within this image.
    pub blob_parallelism: usize,
    /// Where the target registry already has which blob (for mounts and single uploads).
    pub blobs: &'a BlobIndex,
}

/// For each target host and blob digest: a repository that holds it. Shared by all copies of
/// a run, so a blob is uploaded to a registry once and mounted into other repositories.
#[derive(Default, Debug)]
pub struct BlobIndex {
    slots: std::sync::Mutex<
        std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<Option<String>>>>,
    >,
}

impl BlobIndex {
    fn slot(&self, host: &str, digest: &str) -> std::sync::Arc<tokio::sync::Mutex<Option<String>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(format!("{host}/{digest}")).or_default().clone()
    }
}

impl<S: Source, D: Sink> CopyJob<'_, S, D> {
    /// Copy the manifest tree rooted at `root` and tag it `tag` (or store it by digest when
    /// `tag` is `None`). Returns the root digest.
    pub async fn copy(
        &self,
        root: &RawManifest,
        tag: Option<&str>,
        stats: &CopyStats,
    ) -> Result<String, RegistryError> {
        self.copy_tree(root, stats, 0).await?;
        self.dst
            .put_manifest(self.dst_repo, tag.unwrap_or(&root.digest), root)
            .await?;
        Ok(root.digest.clone())
    }

    /// Copy everything `m` refers to (not `m` itself).
    fn copy_tree<'s>(
        &'s self,
        m: &'s RawManifest,
        stats: &'s CopyStats,
        depth: u8,
    ) -> futures::future::BoxFuture<'s, Result<(), RegistryError>> {
        Box::pin(async move {
            let protocol = |reason: String| RegistryError::Protocol {
                host: self.src.host().to_string(),
                reason,
            };
            if depth > 3 {
                return Err(protocol("index nesting deeper than 3 levels".into()));
            }
            let (parsed, _) = Parsed::parse(&m.bytes, Some(&m.media_type)).map_err(protocol)?;
            match parsed {
                Parsed::Index(children) => {
                    let mut seen = std::collections::HashSet::new();
                    for child in children.iter().filter(|c| seen.insert(c.digest.clone())) {
                        let dst_scope = Scope::Push(self.dst_repo.to_string());
                        if self
                            .dst
                            .head_manifest(self.dst_repo, &child.digest, &dst_scope)
                            .await?
                            == Some(child.digest.clone())
                        {
                            continue; // content-addressed: present means complete
                        }
                        let raw = self
                            .src
                            .get_manifest(
                                self.src_repo,
                                &child.digest,
                                &Scope::Pull(self.src_repo.to_string()),
                            )
                            .await?
                            .ok_or_else(|| {
                                protocol(format!(
                                    "index refers to {} which {} does not have",
                                    child.digest, self.src_repo
                                ))
                            })?;
                        self.copy_tree(&raw, stats, depth + 1).await?;
                        self.dst
                            .put_manifest(self.dst_repo, &raw.digest, &raw)
                            .await?;
                    }
                    Ok(())
                }
                Parsed::Image { config, layers } => {
                    let blobs: Vec<Descriptor> = std::iter::once(config)
                        .chain(layers)
                        .filter(|d| !manifest::is_non_distributable(d))
                        .collect();
                    let mut unique = std::collections::HashSet::new();
                    futures::stream::iter(
                        blobs
                            .into_iter()
                            .filter(|d| unique.insert(d.digest.clone()))
                            .map(|d| async move { self.copy_blob(&d, stats).await }),
                    )
                    .buffer_unordered(self.blob_parallelism.max(1))
                    .try_collect::<Vec<()>>()
                    .await?;
                    Ok(())
                }
            }
        })
    }

    async fn copy_blob(&self, d: &Descriptor, stats: &CopyStats) -> Result<(), RegistryError> {
        // One copy of a blob per target registry at a time; later ones find it and mount it.
        let slot = self.blobs.slot(self.dst.host(), &d.digest);
        let mut known = slot.lock().await;
        let dst_scope = Scope::Push(self.dst_repo.to_string());
        if self
            .dst
            .blob_exists(self.dst_repo, &d.digest, &dst_scope)
            .await?
        {
            known.get_or_insert_with(|| self.dst_repo.to_string());
            stats.blobs_present.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // A refused or failed mount falls through to an upload.
        if let Some(from) = known.clone().filter(|r| r != self.dst_repo)
            && let Ok(true) = self.dst.mount_blob(self.dst_repo, &from, &d.digest).await
        {
            stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let retries = self.src.retries();
        let mut attempt = 0;
        loop {
            match self.stream_blob(d, &stats.streamed).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < retries => {
                    tracing::debug!(digest = %d.digest, error = %e, "retrying blob transfer");
                    tokio::time::sleep(super::http::backoff(
                        attempt,
                        None,
                        std::time::Duration::from_millis(500),
                    ))
                    .await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        stats.bytes.fetch_add(d.size, Ordering::Relaxed);
        stats.blobs_copied.fetch_add(1, Ordering::Relaxed);
        *known = Some(self.dst_repo.to_string());
        Ok(())
    }

    async fn stream_blob(
        &self,
        d: &Descriptor,
        streamed: &std::sync::Arc<AtomicU64>,
    ) -> Result<(), RegistryError> {
        let body = self.src.get_blob_body(self.src_repo, &d.digest).await?;
        if let Some(len) = body.len
            && len != d.size
        {
            return Err(RegistryError::Protocol {
                host: self.src.host().to_string(),
                reason: format!(
                    "blob {} is {len} bytes, but its descriptor says {}",
                    d.digest, d.size
                ),
            });
        }
        let streamed = streamed.clone();
        let body =
            verified_stream(body.stream, d.digest.clone(), d.size).inspect_ok(move |chunk| {
                streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            });
        self.dst
            .push_blob_stream(self.dst_repo, &d.digest, d.size, Box::pin(body))
            .await
    }
}

/// Pass chunks through while hashing them, one chunk behind: the last chunk is only let
/// go once the whole blob has the expected size and digest. A mismatch ends the stream
/// with an error before the upload's declared length is reached, so the target never
/// receives a complete, wrong blob.
pub fn verified_stream<S, E>(
    inner: S,
    digest: String,
    size: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    struct State<S> {
        inner: S,
        pending: Option<bytes::Bytes>,
        hasher: crate::digest::Hasher,
        done: bool,
        digest: String,
        size: u64,
    }
    let state = State {
        inner,
        pending: None,
        hasher: crate::digest::Hasher::default(),
        done: false,
        digest,
        size,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    if st.hasher.len() > st.size {
                        st.done = true;
                        let e = std::io::Error::other(format!(
                            "blob is larger than the {} bytes its descriptor says",
                            st.size
                        ));
                        return Some((Err(e), st));
                    }
                    if let Some(previous) = st.pending.replace(chunk) {
                        return Some((Ok(previous), st));
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(std::io::Error::other(e)), st));
                }
                None => {
                    st.done = true;
                    let len = st.hasher.len();
                    let got = std::mem::take(&mut st.hasher).finish();
                    if len != st.size || got != st.digest {
                        let e = std::io::Error::other(format!(
                            "content does not match its digest: expected {} ({} bytes), got {got} ({len} bytes)",
                            st.digest, st.size
                        ));
                        return Some((Err(e), st));
                    }
                    return st.pending.take().map(|last| (Ok(last), st));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verified_stream_passes_good_bytes_and_fails_bad_ones() {
        let data = bytes::Bytes::from_static(b"hello world");
        let digest = crate::digest::sha256(&data);
        let good = futures::stream::iter(vec![
            Ok::<_, reqwest::Error>(data.slice(..5)),
            Ok(data.slice(5..)),
        ]);
        let out: Vec<_> = verified_stream(good, digest.clone(), 11)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"hello world");
        let bad = futures::stream::iter(vec![Ok::<_, reqwest::Error>(bytes::Bytes::from_static(
            b"hello w0rld",
        ))]);
        let err = verified_stream(bad, digest.clone(), 11)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        let long = futures::stream::iter(vec![Ok::<_, reqwest::Error>(bytes::Bytes::from_static(
            b"hello world!",
        ))]);
        assert!(
            verified_stream(long, digest, 11)
                .try_collect::<Vec<_>>()
                .await
                .is_err()
        );
    }
}
