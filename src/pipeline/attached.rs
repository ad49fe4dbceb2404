//! Signatures, attestations, SBOMs and other referrers that travel with an image. IO.
//!
//! For an image's manifest digest: cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom`
//! (HEAD at the source; absent means none), and the OCI 1.1 referrers, from the source's
//! referrers API or, where it has none, from its referrers tag schema index (`sha256-<hex>`).
//! Whatever exists goes to the image's repository on the target through the same verified,
//! deduplicated copy as the image, unless the target already has that digest. When nothing
//! changed, every request is a HEAD (plus one referrers API probe per source host).

use futures::future::join_all;

use super::{Ctx, Env};
use crate::reference::ImageRef;
use crate::registry::copy::{CopyJob, CopyStats};
use crate::registry::endpoint::Sink;
use crate::registry::manifest;
use crate::registry::referrers::{Referrer, digest_tag, update_referrers_tag};
use crate::registry::{RegistryClient, RegistryError, Scope};
use crate::result::{AttachedKind, AttachedResult, ImageResult, ImageStatus};

/// What happened to the artifacts attached to one image.
#[derive(Debug, Default)]
pub(super) struct Attached {
    entries: Vec<AttachedResult>,
    bytes: u64,
    error: Option<String>,
}

impl Attached {
    /// Whether something could not be copied.
    pub(super) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Fold into the image's result: the entries, their bytes, and a failure if any.
    pub(super) fn apply(self, mut r: ImageResult) -> ImageResult {
        r.bytes += self.bytes;
        r.attached = self.entries;
        if let Some(e) = self.error
            && r.status != ImageStatus::Failed
        {
            let what = if r.status == ImageStatus::Skipped {
                "the image is on the target, but its signatures/attestations could not be copied"
            } else {
                "its signatures/attestations could not be copied, so the image was not copied either"
            };
            r.status = ImageStatus::Failed;
            r.error = Some(format!("{what}: {e}"));
        }
        r
    }
}

impl Ctx<'_> {
    /// `r` (an image checked or copied at `digest`) with its attached artifacts synced, unless
    /// `--no-signatures`. Cancellation fails the image.
    pub(super) async fn with_attached(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        digest: &str,
        r: ImageResult,
    ) -> ImageResult {
        if !self.req.signatures {
            return r;
        }
        tokio::select! {
            _ = self.cancel.cancelled() => super::failed(src, dst, "cancelled".into()),
            a = sync(self.env, src, dst, digest, self.req.dry_run, Default::default()) => a.apply(r),
        }
    }
}

/// One artifact to bring over, found at the source.
struct Found {
    kind: AttachedKind,
    /// Tag on both sides (`None` for a referrer, stored by digest).
    tag: Option<String>,
    digest: String,
    artifact_type: Option<String>,
}

/// Sync the artifacts attached to `digest` from `src`'s repository to `dst`'s (HEADs only in
/// a dry run), counting blob bytes into `streamed` as they go (for live progress). Never
/// fails as a whole: problems are in the entries and `error`.
pub(super) async fn sync(
    env: &Env,
    src: &ImageRef,
    dst: &ImageRef,
    digest: &str,
    dry_run: bool,
    streamed: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Attached {
    let mut out = Attached::default();
    let clients = async {
        Ok::<_, RegistryError>((
            env.registries.client(&src.registry).await?,
            env.dest(&dst.registry).await?,
        ))
    };
    let (s, d) = match clients.await {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let side = Side {
        s: &s,
        d: &d,
        src,
        dst,
        env,
        stats: CopyStats {
            streamed,
            ..Default::default()
        },
    };
    let cosign = [
        (AttachedKind::Signature, ".sig"),
        (AttachedKind::Attestation, ".att"),
        (AttachedKind::Sbom, ".sbom"),
    ]
    .map(|(kind, suffix)| side.tagged(kind, digest_tag(digest, suffix), dry_run));
    let (tagged, referrers) = futures::join!(join_all(cosign), side.referrers(digest, dry_run));
    for r in tagged.into_iter().chain(std::iter::once(referrers)) {
        match r {
            Ok(entries) => out.entries.extend(entries),
            Err((entries, e)) => {
                out.entries.extend(entries);
                out.error.get_or_insert(e);
            }
        }
    }
    out.bytes = side.stats.bytes.load(std::sync::atomic::Ordering::Relaxed);
    out
}

type Outcome = Result<Vec<AttachedResult>, (Vec<AttachedResult>, String)>;

struct Side<'a> {
    s: &'a RegistryClient,
    d: &'a super::Dest,
    src: &'a ImageRef,
    dst: &'a ImageRef,
    env: &'a Env,
    stats: CopyStats,
}

impl Side<'_> {
    fn pull(r: &ImageRef) -> Scope {
        Scope::Pull(r.repository.clone())
    }

    fn entry(&self, f: &Found, status: ImageStatus, error: Option<String>) -> AttachedResult {
        let target = match &f.tag {
            Some(t) => format!("{}/{}:{t}", self.dst.registry, self.dst.repository),
            None => format!("{}/{}@{}", self.dst.registry, self.dst.repository, f.digest),
        };
        AttachedResult {
            kind: f.kind,
            target,
            digest: f.digest.clone(),
            status,
            artifact_type: f.artifact_type.clone(),
            error,
        }
    }

    /// Copy one manifest tree from the source to the target, under its tag or by digest.
    async fn copy(&self, f: &Found) -> Result<(), RegistryError> {
        let raw = self
            .s
            .get_manifest(&self.src.repository, &f.digest, &Self::pull(self.src))
            .await?
            .ok_or_else(|| RegistryError::Protocol {
                host: self.src.registry.clone(),
                reason: format!("{} vanished from {}", f.digest, self.src.repository),
            })?;
        let job = CopyJob {
            src: self.s,
            src_repo: &self.src.repository,
            dst: self.d,
            dst_repo: &self.dst.repository,
            blob_parallelism: 3,
            blobs: self.env.registries.blob_index(),
        };
        job.copy(&raw, f.tag.as_deref(), &self.stats)
            .await
            .map(|_| ())
    }

    /// Bring `f` over unless the target holds it (`present`); the entry says what happened.
    async fn bring(
        &self,
        f: &Found,
        present: bool,
        dry_run: bool,
    ) -> Result<AttachedResult, (AttachedResult, String)> {
        if present {
            return Ok(self.entry(f, ImageStatus::Skipped, None));
        }
        if dry_run {
            return Ok(self.entry(f, ImageStatus::WouldCopy, None));
        }
        match self.copy(f).await {
            Ok(()) => Ok(self.entry(f, ImageStatus::Copied, None)),
            Err(e) => {
                let entry = self.entry(f, ImageStatus::Failed, Some(e.to_string()));
                let msg = format!("{}: {e}", entry.target);
                Err((entry, msg))
            }
        }
    }

    /// A cosign tag: HEAD at the source, HEAD at the target, copy when they differ.
    async fn tagged(&self, kind: AttachedKind, tag: String, dry_run: bool) -> Outcome {
        let lookup = async {
            let Some(digest) = self
                .s
                .head_manifest(&self.src.repository, &tag, &Self::pull(self.src))
                .await?
            else {
                return Ok(None);
            };
            let at_target =
                Sink::head_manifest(self.d, &self.dst.repository, &tag, &Self::pull(self.dst))
                    .await?;
            Ok::<_, RegistryError>(Some((digest, at_target)))
        };
        let (digest, at_target) = match lookup.await {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err((Vec::new(), format!("{tag}: {e}"))),
        };
        let present = at_target.as_deref() == Some(digest.as_str());
        let f = Found {
            kind,
            tag: Some(tag),
            digest,
            artifact_type: None,
        };
        self.bring(&f, present, dry_run)
            .await
            .map(|e| vec![e])
            .map_err(|(e, msg)| (vec![e], msg))
    }

    /// The referrers of `subject`: through the referrers API, else the tag schema index.
    async fn referrers(&self, subject: &str, dry_run: bool) -> Outcome {
        let fail = |e: RegistryError| (Vec::new(), format!("referrers of {subject}: {e}"));
        match self
            .s
            .referrers_api(&self.src.repository, subject)
            .await
            .map_err(fail)?
        {
            Some(list) => self.referrers_listed(subject, list, None, dry_run).await,
            None => self.referrers_by_tag(subject, dry_run).await,
        }
    }

    /// The source has no referrers API: its `sha256-<hex>` index, if any. When the target's
    /// tag holds the same digest, so does everything it lists (it is written last).
    async fn referrers_by_tag(&self, subject: &str, dry_run: bool) -> Outcome {
        let tag = digest_tag(subject, "");
        let fail = |e: RegistryError| (Vec::new(), format!("{tag}: {e}"));
        let Some(index) = self
            .s
            .head_manifest(&self.src.repository, &tag, &Self::pull(self.src))
            .await
            .map_err(fail)?
        else {
            return Ok(Vec::new());
        };
        let at_target =
            Sink::head_manifest(self.d, &self.dst.repository, &tag, &Self::pull(self.dst))
                .await
                .map_err(fail)?;
        let f = Found {
            kind: AttachedKind::ReferrersIndex,
            tag: Some(tag.clone()),
            digest: index.clone(),
            artifact_type: None,
        };
        if at_target.as_deref() == Some(index.as_str()) {
            return Ok(vec![self.entry(&f, ImageStatus::Skipped, None)]);
        }
        let raw = self
            .s
            .get_manifest(&self.src.repository, &index, &Self::pull(self.src))
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                (
                    Vec::new(),
                    format!("{tag}: {index} vanished from the source"),
                )
            })?;
        let list = crate::registry::referrers::parse_referrers(&raw.bytes)
            .map_err(|e| (Vec::new(), format!("{tag}: {e}")))?;
        self.referrers_listed(subject, list, Some((f, raw)), dry_run)
            .await
    }

    /// Bring each listed referrer over, then make the target's tag schema index list them
    /// (byte for byte the source's index when the target has none). A target with the
    /// referrers API lists them by itself.
    async fn referrers_listed(
        &self,
        subject: &str,
        list: Vec<Referrer>,
        index: Option<(Found, manifest::RawManifest)>,
        dry_run: bool,
    ) -> Outcome {
        let mut entries = Vec::new();
        let mut error = None;
        // Referrers the target holds once this is done; the index lists only these.
        let mut held: Vec<Referrer> = Vec::new();
        let mut exact = index.as_ref().map(|(_, raw)| raw);
        for r in &list {
            if !manifest::is_manifest_type(&r.media_type) {
                tracing::warn!(digest = %r.digest, media_type = %r.media_type, "skipping a referrer of a media type lazyoci does not copy");
                exact = None;
                continue;
            }
            let f = Found {
                kind: AttachedKind::Referrer,
                tag: None,
                digest: r.digest.clone(),
                artifact_type: r.artifact_type.clone(),
            };
            let present = match Sink::head_manifest(
                self.d,
                &self.dst.repository,
                &r.digest,
                &Self::pull(self.dst),
            )
            .await
            {
                Ok(p) => p.is_some(),
                Err(e) => {
                    entries.push(self.entry(&f, ImageStatus::Failed, Some(e.to_string())));
                    error.get_or_insert(format!("referrer {}: {e}", r.digest));
                    continue;
                }
            };
            match self.bring(&f, present, dry_run).await {
                Ok(e) => {
                    held.push(r.clone());
                    entries.push(e);
                }
                Err((e, msg)) => {
                    entries.push(e);
                    error.get_or_insert(msg);
                }
            }
        }
        if let Some(e) = error {
            return Err((entries, e));
        }
        let index_entry = |status, error| index.as_ref().map(|(f, _)| self.entry(f, status, error));
        if dry_run {
            entries.extend(index_entry(ImageStatus::WouldCopy, None));
            return Ok(entries);
        }
        // Listed by the source's API: the target needs an index only if it lacks the API.
        let needs_index = match &index {
            Some(_) => true,
            None if held.is_empty() => false,
            None => Sink::referrers_api(self.d, &self.dst.repository, subject)
                .await
                .map_err(|e| {
                    let msg = format!("referrers of {subject} at the target: {e}");
                    (entries.clone(), msg)
                })?
                .is_none(),
        };
        if needs_index {
            match update_referrers_tag(self.d, &self.dst.repository, subject, &held, exact).await {
                Ok(wrote) => entries.extend(index_entry(
                    if wrote {
                        ImageStatus::Copied
                    } else {
                        ImageStatus::Skipped
                    },
                    None,
                )),
                Err(e) => {
                    let msg = format!("referrers index of {subject}: {e}");
                    entries.extend(index_entry(ImageStatus::Failed, Some(e.to_string())));
                    return Err((entries, msg));
                }
            }
        }
        Ok(entries)
    }
}
