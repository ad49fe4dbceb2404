//! `bundle push`: load a bundle into a registry. IO.
//!
//! Every manifest tree named by `index.json` goes through the mirror's copy
//! ([`CopyJob`]) with the bundle as its source: each blob is hashed while it streams and an
//! upload whose bytes do not match is aborted; what the target already has (by digest) is
//! skipped; children are written before their parents and the tag last, so nothing is tagged
//! whose content is not all there. An image's signatures and referrers go first; if any of
//! them fails, the image is not tagged. Interrupted, a re-run finishes the job: every write
//! is content-addressed and verified, so nothing half-written is ever tagged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::BundleError;
use super::meta::{BundleMeta, ImageEntry};
use super::reader::{Bundle, IndexEntry};
use crate::registry::copy::{CopyJob, CopyStats};
use crate::registry::endpoint::Source;
use crate::registry::{Registries, RegistryClient, Scope};
use crate::result::{
    AttachedResult, ChartResult, ChartStatus, ImageResult, ImageStatus, MirrorReport, VersionResult,
};
use crate::spec::TargetUrl;

/// What to push where.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// The bundle: a directory or a `.tar`.
    pub bundle: PathBuf,
    /// The registry and path prefix to load it under.
    pub target: TargetUrl,
    /// Put charts under this prefix instead of the one they were bundled with.
    pub charts_prefix: Option<String>,
    /// Manifest trees pushed at the same time.
    pub concurrency: usize,
}

/// One manifest tree to push.
#[derive(Clone, Debug)]
struct Job {
    /// Repository relative to the target, as the bundle names it.
    repo: String,
    /// Repository on the target.
    dst_repo: String,
    tag: Option<String>,
    digest: String,
    size: u64,
}

impl Job {
    fn target(&self, host: &str) -> String {
        match &self.tag {
            Some(t) => format!("{host}/{}:{t}", self.dst_repo),
            None => format!("{host}/{}@{}", self.dst_repo, self.digest),
        }
    }
}

/// What was pushed, per job.
type Outcome = Result<(ImageStatus, u64), String>;

struct Pusher<'a> {
    bundle: &'a Bundle,
    dst: &'a RegistryClient,
    registries: &'a Registries,
    cancel: &'a CancellationToken,
}

impl Pusher<'_> {
    /// Push one manifest tree: skipped when the target holds it, else copied, tag last.
    async fn push(&self, job: &Job) -> Outcome {
        if self.cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        let reference = job.tag.as_deref().unwrap_or(&job.digest);
        let scope = Scope::Push(job.dst_repo.clone());
        let fail = |e: crate::registry::RegistryError| e.to_string();
        if self
            .dst
            .head_manifest(&job.dst_repo, reference, &scope)
            .await
            .map_err(fail)?
            .as_deref()
            == Some(job.digest.as_str())
        {
            return Ok((ImageStatus::Skipped, 0));
        }
        let root = Source::get_manifest(self.bundle, &job.repo, &job.digest, &scope)
            .await
            .map_err(fail)?
            .ok_or_else(|| format!("manifest {} is missing from the bundle", job.digest))?;
        if root.bytes.len() as u64 != job.size {
            return Err(format!(
                "index.json says {} is {} bytes, the bundle holds {}; the bundle is damaged",
                job.digest,
                job.size,
                root.bytes.len()
            ));
        }
        let stats = CopyStats::default();
        let copy = CopyJob {
            src: self.bundle,
            src_repo: &job.repo,
            dst: self.dst,
            dst_repo: &job.dst_repo,
            blob_parallelism: 3,
            blobs: self.registries.blob_index(),
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Err("cancelled".into()),
            r = copy.copy(&root, job.tag.as_deref(), &stats) => {
                r.map_err(fail)?;
                Ok((ImageStatus::Copied, stats.bytes.load(Ordering::Relaxed)))
            }
        }
    }

    /// An image with its attached artifacts: those first (by digest before tags), the
    /// image only if they all landed.
    async fn push_image(
        &self,
        host: &str,
        image: &Job,
        attached: &[(Job, AttachedResult)],
    ) -> ImageResult {
        let mut order: Vec<&(Job, AttachedResult)> = attached.iter().collect();
        order.sort_by_key(|(j, _)| j.tag.is_some());
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut failure = None;
        for (job, proto) in order {
            let mut e = proto.clone();
            match self.push(job).await {
                Ok((status, b)) => {
                    e.status = status;
                    bytes += b;
                }
                Err(err) => {
                    e.status = ImageStatus::Failed;
                    failure.get_or_insert(format!("{}: {err}", e.target));
                    e.error = Some(err);
                }
            }
            entries.push(e);
        }
        let mut r = image_result(host, image, &image.target(host));
        r.attached = entries;
        r.bytes = bytes;
        if let Some(f) = failure {
            r.status = ImageStatus::Failed;
            r.error = Some(format!(
                "its signatures/attestations could not be pushed, so the image was not tagged: {f}"
            ));
            return r;
        }
        match self.push(image).await {
            Ok((status, b)) => {
                r.status = status;
                r.bytes += b;
            }
            Err(e) => {
                r.status = ImageStatus::Failed;
                r.error = Some(e);
            }
        }
        r
    }
}

fn image_result(_host: &str, job: &Job, target: &str) -> ImageResult {
    ImageResult {
        source: match &job.tag {
            Some(t) => format!("{}:{t}", job.repo),
            None => format!("{}@{}", job.repo, job.digest),
        },
        target: target.to_string(),
        status: ImageStatus::Failed,
        digest: Some(job.digest.clone()),
        bytes: 0,
        error: None,
        previous_digest: None,
        note: None,
        served_by: None,
        provenance: Vec::new(),
        attached: Vec::new(),
    }
}

/// The jobs `index.json` names, keyed by `(repo, tag or digest)`, in index order; problems
/// for the entries that cannot be placed.
fn jobs(
    entries: Vec<Result<IndexEntry, String>>,
    req: &PushRequest,
    meta: Option<&BundleMeta>,
    problems: &mut Vec<String>,
) -> Vec<((String, String), Job)> {
    let mut out = Vec::new();
    for e in entries {
        let e = match e {
            Ok(e) => e,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let (repo, tag) = match (&e.ref_name, &e.repository) {
            (Some(name), _) => {
                let placed = match (super::split_ref_name(name), super::split_digest_name(name)) {
                    (Some((r, t)), _) => Ok((r, Some(t))),
                    (None, Some((r, d))) if d == e.digest => Ok((r, None)),
                    (None, Some((_, d))) => Err(format!("which names another digest ({d})")),
                    (None, None) => Err("which has no repository (expected <repository>:<tag> or <repository>@<digest>)".to_string()),
                };
                match placed {
                    Ok((r, t)) => (r.to_string(), t.map(String::from)),
                    Err(why) => {
                        problems.push(format!(
                            "index.json entry {} is named {name:?}, {why}; skipped",
                            e.digest
                        ));
                        continue;
                    }
                }
            }
            (None, Some(r)) => (r.clone(), None),
            (None, None) => {
                problems.push(format!(
                    "index.json entry {} has no {} annotation, so it has no name to push under; skipped",
                    e.digest,
                    super::REF_NAME
                ));
                continue;
            }
        };
        if let Err(m) = crate::spec::check_repo_path(&repo) {
            problems.push(format!("index.json entry {}: {m}; skipped", e.digest));
            continue;
        }
        let chart = meta.and_then(|m| {
            m.charts
                .iter()
                .find(|c| c.repository == repo && Some(&c.tag) == tag.as_ref())
        });
        let placed = match (chart, &req.charts_prefix) {
            (Some(c), Some(p)) => [p.as_str(), c.chart.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/"),
            _ => repo.clone(),
        };
        let dst_repo = [req.target.path.as_str(), placed.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let key = (
            repo.clone(),
            tag.clone().unwrap_or_else(|| e.digest.clone()),
        );
        out.push((
            key,
            Job {
                repo,
                dst_repo,
                tag,
                digest: e.digest,
                size: e.size,
            },
        ));
    }
    out
}

/// One push and the report slots (chart, version) that show it.
enum Group {
    Chart((usize, usize), Job),
    Image(Vec<(usize, usize)>, Job, Vec<(Job, AttachedResult)>),
}

enum Pushed {
    Chart(Result<ChartStatus, String>),
    Image(Box<ImageResult>),
}

/// Push a bundle into the target registry. `Err` only when the bundle cannot be read at all.
pub async fn push(
    req: &PushRequest,
    registries: &Registries,
    cancel: &CancellationToken,
) -> Result<MirrorReport, BundleError> {
    let started = Instant::now();
    let path = req.bundle.clone();
    let mut bundle = tokio::task::spawn_blocking(move || Bundle::open(&path))
        .await
        .map_err(|e| BundleError::io(&req.bundle, e))??;
    let mut problems = std::mem::take(&mut bundle.problems);
    let entries = bundle.index().await?;
    let meta = match bundle.meta().await {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("{e}; pushing what index.json names"));
            None
        }
    };
    if let Some(s) = meta.as_ref().and_then(|m| m.since.as_ref()) {
        bundle.set_since(s.blobs.clone());
    }
    let dst = registries
        .client(&req.target.host)
        .await
        .map_err(|e| BundleError::Io {
            path: req.target.host.clone(),
            reason: e.to_string(),
        })?;
    let host = req.target.host.as_str();
    let mut by_key: HashMap<(String, String), Job> = HashMap::new();
    let mut order = Vec::new();
    for (k, j) in jobs(entries, req, meta.as_ref(), &mut problems) {
        order.push(k.clone());
        by_key.insert(k, j);
    }

    // Charts and images lazyoci.json describes, with their attached artifacts; the rest of
    // index.json stands alone.
    let mut charts: Vec<ChartResult> = Vec::new();
    let mut groups = Vec::new();
    let mut claimed = std::collections::HashSet::new();
    let version_of = |charts: &mut Vec<ChartResult>, key: &str, chart: &str, version: &str| {
        let ci = charts.iter().position(|c| c.key == key).unwrap_or_else(|| {
            charts.push(ChartResult {
                key: key.into(),
                chart: chart.into(),
                versions: Vec::new(),
                ..Default::default()
            });
            charts.len() - 1
        });
        let vi = charts[ci]
            .versions
            .iter()
            .position(|v| v.version == version)
            .unwrap_or_else(|| {
                charts[ci].versions.push(empty_version(version));
                charts[ci].versions.len() - 1
            });
        (ci, vi)
    };
    if let Some(m) = &meta {
        for c in &m.charts {
            let key = (c.repository.clone(), c.tag.clone());
            let Some(job) = by_key.get(&key) else {
                problems.push(format!(
                    "{} lists chart {}:{} ({}:{}), which index.json does not name",
                    super::META_FILE,
                    c.chart,
                    c.version,
                    c.repository,
                    c.tag
                ));
                continue;
            };
            claimed.insert(key);
            let slot = version_of(&mut charts, &c.key, &c.chart, &c.version);
            groups.push(Group::Chart(slot, job.clone()));
        }
        for i in &m.images {
            let key = (
                i.repository.clone(),
                i.tag.clone().unwrap_or_else(|| i.digest.clone()),
            );
            let Some(job) = by_key.get(&key) else {
                problems.push(format!(
                    "{} lists image {}, which index.json does not name",
                    super::META_FILE,
                    i.source
                ));
                continue;
            };
            claimed.insert(key);
            let attached = attached_jobs(i, &by_key, host, &mut claimed);
            let slots = i
                .used_by
                .iter()
                .map(|user| {
                    let (k, v) = user.rsplit_once(':').unwrap_or((user, ""));
                    let chart = m
                        .charts
                        .iter()
                        .find(|c| c.key == k)
                        .map_or(k, |c| c.chart.as_str());
                    version_of(&mut charts, k, chart, v)
                })
                .collect();
            groups.push(Group::Image(slots, job.clone(), attached));
        }
    }
    let lone: Vec<&(String, String)> = order.iter().filter(|k| !claimed.contains(*k)).collect();
    if !lone.is_empty() {
        let slot = version_of(&mut charts, "bundle", bundle.name(), "-");
        for k in lone {
            groups.push(Group::Image(vec![slot], by_key[k].clone(), Vec::new()));
        }
    }

    let pusher = Pusher {
        bundle: &bundle,
        dst: &dst,
        registries,
        cancel,
    };
    let results: Vec<(usize, Pushed)> =
        futures::stream::iter(groups.iter().enumerate().map(|(gi, g)| {
            let pusher = &pusher;
            async move {
                let out = match g {
                    Group::Chart(_, job) => Pushed::Chart(match pusher.push(job).await {
                        Ok((ImageStatus::Skipped, _)) => Ok(ChartStatus::Skipped),
                        Ok(_) => Ok(ChartStatus::Pushed),
                        Err(e) => Err(e),
                    }),
                    Group::Image(_, job, attached) => {
                        Pushed::Image(Box::new(pusher.push_image(host, job, attached).await))
                    }
                };
                (gi, out)
            }
        }))
        .buffer_unordered(req.concurrency.max(1))
        .collect()
        .await;
    let mut results: Vec<Option<Pushed>> = {
        let mut v: Vec<Option<Pushed>> = groups.iter().map(|_| None).collect();
        for (gi, r) in results {
            v[gi] = Some(r);
        }
        v
    };
    let mut bytes = 0;
    let mut unique = 0;
    for (g, r) in groups.iter().zip(results.iter_mut()) {
        match (g, r.take()) {
            (Group::Chart((ci, vi), job), Some(Pushed::Chart(status))) => {
                let v = &mut charts[*ci].versions[*vi];
                v.chart_ref = Some(format!("oci://{}", job.target(host)));
                v.chart_digest = Some(job.digest.clone());
                match status {
                    Ok(s) => v.chart_status = s,
                    Err(e) => {
                        v.chart_status = ChartStatus::Failed;
                        v.chart_error = Some(e);
                    }
                }
            }
            (Group::Image(slots, _, _), Some(Pushed::Image(img))) => {
                bytes += img.bytes;
                unique += 1;
                for (ci, vi) in slots {
                    charts[*ci].versions[*vi].images.push((*img).clone());
                }
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        let (ci, vi) = version_of(&mut charts, "bundle", bundle.name(), "-");
        charts[ci].versions[vi].images_error = Some(problems.join("; "));
    }
    let mut report = MirrorReport {
        charts,
        bytes_copied: bytes,
        unique_images: unique,
        ..Default::default()
    };
    for v in report.charts.iter_mut().flat_map(|c| c.versions.iter_mut()) {
        v.recount();
    }
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn empty_version(version: &str) -> VersionResult {
    VersionResult {
        version: version.into(),
        chart_status: ChartStatus::NotRequested,
        chart_ref: None,
        chart_digest: None,
        chart_error: None,
        note: None,
        images_error: None,
        warnings: Vec::new(),
        excluded_images: Vec::new(),
        images: Vec::new(),
        images_copied: 0,
        images_skipped: 0,
        images_failed: 0,
        previous_digest: None,
        overlay: None,
        served_by: None,
        discovery_cached: false,
    }
}

/// The jobs of an image's attached artifacts (claimed, so they do not also stand alone).
fn attached_jobs(
    image: &ImageEntry,
    by_key: &HashMap<(String, String), Job>,
    host: &str,
    claimed: &mut std::collections::HashSet<(String, String)>,
) -> Vec<(Job, AttachedResult)> {
    image
        .attached
        .iter()
        .filter_map(|a| {
            let key = (
                image.repository.clone(),
                a.tag.clone().unwrap_or_else(|| a.digest.clone()),
            );
            let job = by_key.get(&key)?.clone();
            claimed.insert(key);
            let target = job.target(host);
            Some((
                job,
                AttachedResult {
                    kind: a.kind,
                    target,
                    digest: a.digest.clone(),
                    status: ImageStatus::Failed,
                    artifact_type: None,
                    error: None,
                },
            ))
        })
        .collect()
}
