//! The image phase: each distinct image once, existence by digest (HEAD only), then the
//! copies — largest first, at most `concurrency` in flight — each in its own task. IO.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::{FutureExt, StreamExt};

use super::{Ctx, Env, Event, attached, events, failed, result};
use crate::reference::ImageRef;
use crate::registry::copy::{CopyJob, CopyStats};
use crate::registry::endpoint::Sink;
use crate::registry::manifest::{Parsed, RawManifest};
use crate::registry::{RegistryError, Scope};
use crate::result::{ImageResult, ImageStatus, MovedTag};

/// The images of a run: key → (source, target, units using it).
pub(super) type Jobs = HashMap<String, (ImageRef, ImageRef, Vec<usize>)>;

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
    let d = env.dest(&dst.registry).await?;
    let digest = source_digest(env, src).await?;
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

/// The digest a source reference names (HEAD for a tag).
async fn source_digest(env: &Env, src: &ImageRef) -> Result<String, RegistryError> {
    if let Some(dg) = &src.digest {
        return Ok(dg.clone());
    }
    let s = env.registries.client(&src.registry).await?;
    s.head_manifest(
        &src.repository,
        src.reference(),
        &Scope::Pull(src.repository.clone()),
    )
    .await?
    .ok_or_else(|| not_at_source(src))
}

fn not_at_source(src: &ImageRef) -> RegistryError {
    RegistryError::Protocol {
        host: src.registry.clone(),
        reason: format!("{src} not found at the source"),
    }
}

/// Children of an index whose sizes are looked up to order the copies; beyond that the
/// rest are assumed the size of the ones seen.
const SIZED_CHILDREN: usize = 8;

/// The source manifest of `digest` and how many blob bytes the image holds (all platforms).
/// Read before copying so that the largest images start first.
async fn prefetch(
    env: &Env,
    src: &ImageRef,
    digest: &str,
) -> Result<(RawManifest, u64), RegistryError> {
    let s = env.registries.client(&src.registry).await?;
    let scope = Scope::Pull(src.repository.clone());
    let root = s
        .get_manifest(&src.repository, digest, &scope)
        .await?
        .ok_or_else(|| not_at_source(src))?;
    let blobs = |p: &Parsed| match p {
        Parsed::Image { config, layers } => {
            config.size + layers.iter().map(|l| l.size).sum::<u64>()
        }
        Parsed::Index(_) => 0,
    };
    let size = match Parsed::parse(&root.bytes, Some(&root.media_type)) {
        Ok((Parsed::Index(children), _)) => {
            let mut seen = 0u64;
            for c in children.iter().take(SIZED_CHILDREN) {
                if let Ok(Some(m)) = s.get_manifest(&src.repository, &c.digest, &scope).await
                    && let Ok((p, _)) = Parsed::parse(&m.bytes, Some(&m.media_type))
                {
                    seen += blobs(&p);
                }
            }
            let sized = children.len().clamp(1, SIZED_CHILDREN) as u64;
            seen * children.len() as u64 / sized
        }
        Ok((p, _)) => blobs(&p),
        // The copy reports what is wrong with it.
        Err(_) => 0,
    };
    Ok((root, size))
}

async fn copy(
    env: &Env,
    src: &ImageRef,
    dst: &ImageRef,
    root: &RawManifest,
    streamed: Arc<AtomicU64>,
) -> Result<(String, u64), RegistryError> {
    let s = env.registries.client(&src.registry).await?;
    let d = env.dest(&dst.registry).await?;
    let stats = CopyStats {
        streamed,
        ..Default::default()
    };
    let job = CopyJob {
        src: &*s,
        src_repo: &src.repository,
        dst: &d,
        dst_repo: &dst.repository,
        blob_parallelism: 3,
        blobs: env.registries.blob_index(),
    };
    let digest = job.copy(root, dst.tag.as_deref(), &stats).await?;
    Ok((digest, stats.bytes.load(Ordering::Relaxed)))
}

/// An image that needs copying.
struct Pending {
    /// Where it is read from, when `sourceMirrors` names its host.
    source: Option<super::mirrors::Source>,
    digest: String,
    previous: Option<String>,
    root: RawManifest,
    size: u64,
}

#[allow(clippy::large_enum_variant)] // one per image, short-lived
enum Planned {
    Done(ImageResult),
    Copy(Box<Pending>),
}

/// How the sources that share a target are handled: those that cannot be copied (an
/// error each), and those with the same content as another (alias → the one copied).
#[derive(Default)]
pub(super) struct Shared {
    pub refused: HashMap<String, String>,
    pub aliases: HashMap<String, String>,
}

impl Ctx<'_> {
    /// Sources that would land on one target: when they hold the same digest, the first
    /// is copied and the others are satisfied by it; when they differ, all are refused
    /// (neither may silently replace the other). A source whose digest cannot be read
    /// fails on its own and leaves the others to share the target.
    pub(super) async fn share_targets(
        &self,
        groups: Vec<(String, Vec<String>)>,
        jobs: &Jobs,
    ) -> Shared {
        let mut shared = Shared::default();
        for (dst, keys) in groups {
            let mut digests: Vec<(String, String)> = Vec::new();
            for key in keys {
                let src = &jobs[&key].0;
                // Read where the copy will read it: through the host's mirrors, so that
                // mirrorsOnly holds here too.
                let digest = match self.source_for(src).await {
                    Ok(from) => source_digest(self.env, &from.from)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match digest {
                    Ok(d) => digests.push((key, d)),
                    Err(e) => {
                        shared.refused.insert(key, e);
                    }
                }
            }
            let Some((first, digest)) = digests.first().cloned() else {
                continue;
            };
            if digests.iter().all(|(_, d)| *d == digest) {
                for (k, _) in digests.into_iter().skip(1) {
                    shared.aliases.insert(k, first.clone());
                }
                continue;
            }
            let listed: Vec<String> = digests.iter().map(|(k, d)| format!("{k} ({d})")).collect();
            for (k, _) in &digests {
                shared.refused.insert(
                    k.clone(),
                    format!(
                        "refused: {} would all be copied to {dst} but hold different content; exclude all but one of them (images.exclude) or mirror them in separate runs",
                        listed.join(", ")
                    ),
                );
            }
        }
        shared
    }

    /// Check every image, then copy the missing ones, largest first: the run ends when its
    /// longest copy does, so that one starts at once. Every result is reported to each
    /// unit that uses the image as soon as it is known.
    pub(super) async fn copy_all(
        &self,
        order: &[String],
        jobs: &Jobs,
        shared: &Shared,
        remaining: &[AtomicUsize],
    ) -> HashMap<String, ImageResult> {
        let concurrency = self.req.concurrency.max(1);
        let finish = |key: &String, result: ImageResult| {
            for &u in &jobs[key].2 {
                self.progress.event(Event::Image {
                    unit: u,
                    result: result.clone(),
                });
                if remaining[u].fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.progress.event(Event::UnitDone(u));
                }
            }
            (key.clone(), result)
        };
        let plans: Vec<_> = order
            .iter()
            .filter(|key| !shared.aliases.contains_key(*key))
            .map(|key| {
                let (src, dst, _) = &jobs[key];
                let collision = shared.refused.get(key).cloned();
                async move {
                    let planned = match collision {
                        Some(error) => Planned::Done(failed(src, dst, error)),
                        None => match self.source_for(src).await {
                            Err(error) => Planned::Done(failed(src, dst, error)),
                            Ok(from) => match self.plan(&from.from, dst).await {
                                Planned::Done(r) => Planned::Done(from.report(src, r)),
                                Planned::Copy(mut p) => {
                                    p.source = Some(from);
                                    Planned::Copy(p)
                                }
                            },
                        },
                    };
                    (key, planned)
                }
                .boxed()
            })
            .collect();
        let planned: Vec<(&String, Planned)> = futures::stream::iter(plans)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut outcomes = HashMap::new();
        let mut pending = Vec::new();
        for (key, p) in planned {
            match p {
                Planned::Done(r) => {
                    let (k, r) = finish(key, r);
                    outcomes.insert(k, r);
                }
                Planned::Copy(p) => pending.push((key, p)),
            }
        }
        pending.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(a.0.cmp(b.0)));
        let copies: Vec<_> = pending
            .into_iter()
            .map(|(key, mut p)| {
                let (src, dst, users) = &jobs[key];
                async move {
                    let r = match p.source.take() {
                        Some(from) => from.report(
                            src,
                            self.copy_one(&from.from.clone(), src, dst, users, *p).await,
                        ),
                        None => self.copy_one(src, src, dst, users, *p).await,
                    };
                    finish(key, r)
                }
                .boxed()
            })
            .collect();
        let copied: Vec<(String, ImageResult)> = futures::stream::iter(copies)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        outcomes.extend(copied);
        for key in order {
            let Some(primary) = shared.aliases.get(key) else {
                continue;
            };
            let Some(done) = outcomes.get(primary) else {
                continue;
            };
            let status = match done.status {
                ImageStatus::Copied => ImageStatus::Skipped,
                s => s,
            };
            let r = ImageResult {
                source: key.clone(),
                status,
                bytes: 0,
                note: Some(format!(
                    "the same content as {primary} ({}), which was mirrored to this target once",
                    done.digest.as_deref().unwrap_or("same digest")
                )),
                ..done.clone()
            };
            let (k, r) = finish(key, r);
            outcomes.insert(k, r);
        }
        outcomes
    }

    /// Existence by digest, the moved-tag policy, dry runs; what remains is a copy.
    async fn plan(&self, src: &ImageRef, dst: &ImageRef) -> Planned {
        if self.cancel.is_cancelled() {
            return Planned::Done(failed(src, dst, "cancelled".into()));
        }
        let checked = tokio::select! {
            _ = self.cancel.cancelled() => return Planned::Done(failed(src, dst, "cancelled".into())),
            p = check(self.env, src, dst) => p,
        };
        let (digest, previous) = match checked {
            Err(e) => return Planned::Done(failed(src, dst, e.to_string())),
            Ok(Check::Present(d)) => {
                let skipped = result(src, dst, ImageStatus::Skipped, Some(d.clone()));
                return Planned::Done(self.with_attached(src, dst, &d, skipped).await);
            }
            Ok(Check::Missing(d)) => (d, None),
            Ok(Check::Moved { digest, previous }) => match self.req.on_moved_tag {
                MovedTag::Overwrite => (digest, Some(previous)),
                MovedTag::Skip => {
                    return Planned::Done(ImageResult {
                        previous_digest: Some(previous),
                        note: Some("the source tag moved since it was mirrored; the target keeps its digest (--on-moved-tag skip)".into()),
                        ..result(src, dst, ImageStatus::Skipped, Some(digest))
                    });
                }
                MovedTag::Fail => {
                    return Planned::Done(ImageResult {
                        previous_digest: Some(previous.clone()),
                        ..failed(
                            src,
                            dst,
                            format!(
                                "the source tag moved: it now points to {digest}, the target tag holds {previous} (--on-moved-tag fail); the target was left as it is"
                            ),
                        )
                    });
                }
            },
        };
        if self.req.dry_run {
            let would = ImageResult {
                previous_digest: previous.clone(),
                note: moved_note(&previous),
                ..result(src, dst, ImageStatus::WouldCopy, Some(digest.clone()))
            };
            return Planned::Done(self.with_attached(src, dst, &digest, would).await);
        }
        let fetched = tokio::select! {
            _ = self.cancel.cancelled() => return Planned::Done(failed(src, dst, "cancelled".into())),
            f = prefetch(self.env, src, &digest) => f,
        };
        match fetched {
            Ok((root, size)) => Planned::Copy(Box::new(Pending {
                source: None,
                digest,
                previous,
                root,
                size,
            })),
            Err(e) => Planned::Done(failed(src, dst, e.to_string())),
        }
    }

    /// Copy one image from `src` (its attached artifacts first, the tag last) in its own
    /// task: a panic there is one failed image, not a crashed run. Progress names `shown`,
    /// the image as the chart references it.
    async fn copy_one(
        &self,
        src: &ImageRef,
        shown: &ImageRef,
        dst: &ImageRef,
        users: &[usize],
        p: Pending,
    ) -> ImageResult {
        let env = self.env.clone();
        let permits = tokio::select! {
            _ = self.cancel.cancelled() => return failed(src, dst, "cancelled".into()),
            p = env.registries.host_permit(&src.registry) => p,
        };
        for &u in users {
            self.progress.event(Event::ImageCopying {
                unit: u,
                source: shown.to_string(),
            });
        }
        let streamed = Arc::new(AtomicU64::new(0));
        let counter = streamed.clone();
        let signatures = self.req.signatures;
        let (src2, dst2) = (src.clone(), dst.clone());
        let Pending {
            digest,
            previous,
            root,
            ..
        } = p;
        let wanted = digest.clone();
        let task = tokio::spawn(async move {
            let _permits = permits;
            let attached = match signatures {
                true => attached::sync(&env, &src2, &dst2, &digest, false, counter.clone()).await,
                false => attached::Attached::default(),
            };
            if attached.failed() {
                return (attached, None);
            }
            (
                attached,
                Some(copy(&env, &src2, &dst2, &root, counter).await),
            )
        });
        let abort = task.abort_handle();
        let source = shown.to_string();
        let joined = tokio::select! {
            _ = self.cancel.cancelled() => { abort.abort(); return failed(src, dst, "cancelled".into()) }
            j = events::sample_bytes(task, &streamed, self.progress, &source) => j,
        };
        let note = moved_note(&previous);
        match joined {
            Ok((attached, Some(Ok((digest, bytes))))) => attached.apply(ImageResult {
                bytes,
                previous_digest: previous,
                note,
                ..result(src, dst, ImageStatus::Copied, Some(digest))
            }),
            Ok((attached, Some(Err(e)))) => attached.apply(failed(src, dst, e.to_string())),
            Ok((attached, None)) => {
                attached.apply(result(src, dst, ImageStatus::Copied, Some(wanted)))
            }
            Err(e) if e.is_panic() => failed(
                src,
                dst,
                "internal error while copying (a panic); please report it".into(),
            ),
            Err(_) => failed(src, dst, "cancelled".into()),
        }
    }
}

fn moved_note(previous: &Option<String>) -> Option<String> {
    previous
        .as_ref()
        .map(|p| format!("the source tag moved since it was mirrored; replaced {p}"))
}
