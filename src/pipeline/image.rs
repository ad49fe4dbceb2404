//! One image: compare digests (HEAD only), then copy the manifest tree. IO.

use std::sync::atomic::Ordering;

use super::Env;
use crate::reference::ImageRef;
use crate::registry::copy::{CopyJob, CopyStats};
use crate::registry::{RegistryError, Scope};

pub(super) enum Check {
    /// The target tag holds the source digest.
    Present(String),
    /// The target does not have the tag (or the digest, for digest references).
    Missing(String),
    /// The target tag holds another digest: the source tag moved since it was mirrored.
    Moved { digest: String, previous: String },
}

/// Resolve the source digest (HEAD) and compare with what the target tag holds.
pub(super) async fn check(
    env: &Env,
    src: &ImageRef,
    dst: &ImageRef,
) -> Result<Check, RegistryError> {
    let s = env.registries.client(&src.registry).await?;
    let d = env.registries.client(&dst.registry).await?;
    let digest = match &src.digest {
        Some(dg) => dg.clone(),
        None => s
            .head_manifest(
                &src.repository,
                src.reference(),
                &Scope::Pull(src.repository.clone()),
            )
            .await?
            .ok_or_else(|| RegistryError::Protocol {
                host: src.registry.clone(),
                reason: format!("{src} not found at the source"),
            })?,
    };
    let present = d
        .head_manifest(
            &dst.repository,
            dst.tag.as_deref().unwrap_or(&digest),
            &Scope::Pull(dst.repository.clone()),
        )
        .await?;
    Ok(match present {
        Some(p) if p == digest => Check::Present(digest),
        Some(previous) => Check::Moved { digest, previous },
        None => Check::Missing(digest),
    })
}

pub(super) async fn copy(
    env: &Env,
    src: &ImageRef,
    dst: &ImageRef,
    digest: &str,
    streamed: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<(String, u64), RegistryError> {
    let s = env.registries.client(&src.registry).await?;
    let d = env.registries.client(&dst.registry).await?;
    let root = s
        .get_manifest(
            &src.repository,
            digest,
            &Scope::Pull(src.repository.clone()),
        )
        .await?
        .ok_or_else(|| RegistryError::Protocol {
            host: src.registry.clone(),
            reason: format!("{src} not found at the source"),
        })?;
    let stats = CopyStats {
        streamed,
        ..Default::default()
    };
    let job = CopyJob {
        src: &s,
        src_repo: &src.repository,
        dst: &d,
        dst_repo: &dst.repository,
        blob_parallelism: 3,
        blobs: env.registries.blob_index(),
    };
    let digest = job.copy(&root, dst.tag.as_deref(), &stats).await?;
    Ok((digest, stats.bytes.load(Ordering::Relaxed)))
}
