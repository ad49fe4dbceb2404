//! The mirror pipeline: spec in, [`MirrorReport`] out. The only thing the CLI and the
//! operator call.
//!
//! Two phases. First, per chart version (in parallel, order kept): fetch the chart, push it
//! to the target, render it and collect its images. Then, once every image of the run is
//! known: refuse target collisions, check each distinct image once by digest, and copy the
//! missing ones largest first, with at most `concurrency` copies in flight across the whole
//! run ([`image`]). Failures are recorded per chart
//! version and per image; the run goes on. [`run`] returns `Err` only when it cannot start.

mod attached;
mod cache;
mod dest;
mod discovery;
mod events;
mod image;
mod mirrors;
mod overlay;
mod plan;
mod resolve;

pub use cache::DiscoveryCache;
pub use dest::Dest;
pub use discovery::{images, is_local_values_file};
pub use events::{Event, NoProgress, Progress, Unit};
pub use overlay::file_name as overlay_file_name;
pub use plan::{plan, validate};
pub use resolve::Resolved;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::chart::push;
use crate::discover::{DiscoveredImage, RenderError, Renderer};
use crate::reference::ImageRef;
use crate::registry::endpoint::Sink;
use crate::registry::{Registries, RegistryError, Scope};
use crate::result::{ChartStatus, ImageResult, ImageStatus, MirrorReport, MovedTag, VersionResult};
use crate::source::repo::RepoSource;
use crate::source::store::ArtifactStore;
use crate::source::{FetchError, FetchedChart};
use crate::spec::{ChartMirrorSpec, OciLocation, SourceType, TargetUrl, version_tag};
use plan::{chart_repo, collisions};
/// What to mirror in one run.
#[derive(Clone, Debug)]
pub struct MirrorRequest {
    /// The validated spec.
    pub spec: ChartMirrorSpec,
    /// Only this upstream (`--chart`); all when `None`.
    pub only: Option<String>,
    /// Versions overriding the spec's list (`--version`), for `only`.
    pub versions: Vec<String>,
    /// Write nothing.
    pub dry_run: bool,
    /// Skip images.
    pub charts_only: bool,
    /// Skip chart artifacts.
    pub images_only: bool,
    /// Image copies in flight across the run.
    pub concurrency: usize,
    /// What to do when a source tag moved since it was mirrored.
    pub on_moved_tag: MovedTag,
    /// Copy each image's signatures, attestations, SBOMs and referrers with it.
    pub signatures: bool,
    /// Make a values overlay per chart version, verified by a second render.
    pub overlays: bool,
    /// Write each overlay to `<dir>/<chart>-<version>.values.yaml` (also in a dry run).
    pub overlay_dir: Option<std::path::PathBuf>,
}

impl MirrorRequest {
    /// Everything in `spec`, with the spec's own options.
    pub fn all(spec: ChartMirrorSpec) -> Self {
        MirrorRequest {
            charts_only: spec.charts_only,
            images_only: spec.images_only,
            concurrency: spec
                .concurrency
                .unwrap_or(crate::spec::DEFAULT_CONCURRENCY)
                .max(1) as usize,
            only: None,
            versions: Vec::new(),
            dry_run: false,
            on_moved_tag: spec.on_moved_tag.unwrap_or_default(),
            signatures: spec.signatures.unwrap_or(true),
            overlays: false,
            overlay_dir: None,
            spec,
        }
    }
}

/// What the pipeline runs with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Env {
    /// Registry clients and credentials.
    pub registries: Arc<Registries>,
    /// HTTP client for Helm repositories.
    pub http: reqwest::Client,
    /// Helm repositories reached with their own credentials and TLS material, by URL.
    pub repo_access: Arc<HashMap<String, crate::source::repo::RepoAccess>>,
    /// helm.
    pub renderer: Renderer,
    /// Chart archive cache.
    pub store: ArtifactStore,
    /// Timeout for each Helm repository request.
    pub timeout: Duration,
    /// Discovery results kept between runs (`None`: every chart version is rendered).
    pub discovery_cache: Option<Arc<DiscoveryCache>>,
    /// Where Helm repository indexes are kept for conditional requests (`None`: always
    /// downloaded whole).
    pub index_cache: Option<std::path::PathBuf>,
    /// Write into this bundle instead of the target registry (`bundle create`).
    pub bundle: Option<Arc<crate::bundle::layout::Layout>>,
}

impl Env {
    /// Turn both caches off (`--no-cache`).
    pub fn without_caches(mut self) -> Env {
        self.discovery_cache = None;
        self.index_cache = None;
        self
    }
}

impl Env {
    /// The environment for `opts` (whose CA certificates also apply to Helm repositories),
    /// with `helm` and chart archives kept under `artifact_dir`.
    pub fn new(
        opts: crate::registry::RegistryOptions,
        credentials: Arc<dyn crate::credentials::CredentialSource>,
        helm: std::path::PathBuf,
        artifact_dir: std::path::PathBuf,
    ) -> Result<Env, RegistryError> {
        Self::with_access(
            opts,
            credentials,
            crate::access::AccessMap::default(),
            helm,
            artifact_dir,
        )
    }

    /// [`Env::new`], reaching the sources in `access` with their own credentials and TLS
    /// material: Helm repositories by URL, OCI registries by host (ahead of `credentials`).
    pub fn with_access(
        mut opts: crate::registry::RegistryOptions,
        credentials: Arc<dyn crate::credentials::CredentialSource>,
        access: crate::access::AccessMap,
        helm: std::path::PathBuf,
        artifact_dir: std::path::PathBuf,
    ) -> Result<Env, RegistryError> {
        let mut hosts = HashMap::new();
        for (host, a) in &access.hosts {
            if let Some(c) = &a.credential {
                hosts.insert(host.clone(), (c.registry_credential(), a.origin.clone()));
            }
            if a.ca_pem.is_some() || a.identity_pem.is_some() {
                opts.host_tls.insert(
                    host.clone(),
                    crate::registry::HostTls {
                        ca_pem: a.ca_pem.clone(),
                        identity_pem: a.identity_pem.clone(),
                    },
                );
            }
        }
        let credentials: Arc<dyn crate::credentials::CredentialSource> = if hosts.is_empty() {
            credentials
        } else {
            Arc::new(crate::credentials::Overrides {
                hosts,
                then: credentials,
            })
        };
        // Registries::new checks the CA bundles first and names what is wrong with them.
        let pems = opts.extra_ca_pem.clone();
        let registries = Registries::new(opts, credentials)?;
        let cas: Vec<&[u8]> = pems.iter().map(Vec::as_slice).collect();
        let http = crate::source::repo::http_client(&cas, None).map_err(RegistryError::Setup)?;
        let repo_access =
            crate::source::repo::repo_access(&access, &pems).map_err(RegistryError::Setup)?;
        Ok(Env {
            registries: Arc::new(registries),
            http,
            repo_access: Arc::new(repo_access),
            renderer: Renderer::new(
                helm,
                artifact_dir.join("tmp"),
                crate::discover::RenderOptions::default(),
            ),
            discovery_cache: Some(Arc::new(DiscoveryCache::new(Some(
                artifact_dir.join("discovery"),
            )))),
            index_cache: Some(artifact_dir.join("indexes")),
            store: ArtifactStore::new(artifact_dir),
            timeout: Duration::from_secs(120),
            bundle: None,
        })
    }

    /// Where a run writes for the target `host`: the bundle being written, else the registry.
    pub async fn dest(&self, host: &str) -> Result<Dest, RegistryError> {
        match &self.bundle {
            Some(b) => Ok(Dest::Bundle(b.clone())),
            None => Ok(Dest::Registry(self.registries.client(host).await?)),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The spec is invalid.
    #[error("invalid spec:\n{}", .0.join("\n"))]
    InvalidSpec(Vec<String>),
    /// `--chart` names no upstream.
    #[error("no upstream named {name:?} in the config; it defines: {known}")]
    UnknownChart {
        /// The name asked for.
        name: String,
        /// The names defined.
        known: String,
    },
    /// The target registry does not answer its API root (checked before any work).
    #[error("the target registry cannot be used, so nothing was mirrored: {0}")]
    Target(RegistryError),
    /// helm is needed but cannot run.
    #[error(transparent)]
    Helm(#[from] RenderError),
    /// The target registry client could not be set up.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}
/// What every run starts with: the request checked, helm checked (and its version read)
/// when it will render, rate-limit pauses tied to `cancel`, a Helm repository source for
/// the run.
async fn start(
    req: &MirrorRequest,
    env: &Env,
    cancel: &CancellationToken,
    renders: bool,
) -> Result<(TargetUrl, RepoSource, Option<String>), PipelineError> {
    let target = validate(req)?;
    let helm = if renders {
        Some(env.renderer.check().await?)
    } else {
        None
    };
    env.registries.cancel_pauses_with(cancel.clone());
    Ok((
        target,
        RepoSource::new(env.http.clone(), env.timeout, env.index_cache.clone())
            .with_access(env.repo_access.clone()),
        helm,
    ))
}

/// Mirror everything the request asks for.
pub async fn run(
    req: &MirrorRequest,
    env: &Env,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<MirrorReport, PipelineError> {
    let started = Instant::now();
    let (target, repos, helm) = start(req, env, cancel, discovery::renders(req)).await?;
    let dst = env.dest(&target.host).await?;
    let ctx = &Ctx {
        req,
        env,
        target: &target,
        repos: &repos,
        helm: helm.as_deref(),
        progress,
        cancel,
        mirrors_down: Default::default(),
    };
    // Versions are resolved at the start of the run (from the upstreams, not the target).
    let resolved = ctx.resolve_all().await;
    // One probe before any chart or image work: an unreachable or refusing target is one
    // message, not a failure per chart and image.
    dst.ping().await.map_err(PipelineError::Target)?;
    let units = plan(req, &target, &resolved);
    progress.event(Event::Plan(units.clone()));

    // Phase 1: charts and discovery, per unit, order kept.
    // Futures are collected first (not mapped lazily) so the run stays `Send` for the
    // operator's `tokio::spawn` (rust-lang/rust#64552).
    let prepares: Vec<_> = units
        .iter()
        .enumerate()
        .map(|(i, u)| ctx.prepare(i, u, &dst).boxed())
        .collect();
    let prepared: Vec<(VersionResult, Vec<DiscoveredImage>)> = futures::stream::iter(prepares)
        .buffered(req.concurrency.max(1))
        .collect()
        .await;
    let (mut versions, images): (Vec<VersionResult>, Vec<Vec<DiscoveredImage>>) =
        prepared.into_iter().unzip();

    // Phase 2: images, each distinct one once, bounded across the run.
    let mut order: Vec<String> = Vec::new();
    let mut jobs: image::Jobs = HashMap::new();
    for (unit, imgs) in images.iter().enumerate() {
        for img in imgs.iter().map(|d| &d.image) {
            let key = img.to_string();
            jobs.entry(key.clone())
                .or_insert_with(|| {
                    order.push(key.clone());
                    (img.clone(), img.remap(&target), Vec::new())
                })
                .2
                .push(unit);
        }
    }
    let shared = ctx
        .share_targets(
            collisions(order.iter().map(|k| (&jobs[k].0, &jobs[k].1))),
            &jobs,
        )
        .await;
    let remaining: Vec<std::sync::atomic::AtomicUsize> = images
        .iter()
        .map(|i| std::sync::atomic::AtomicUsize::new(i.len()))
        .collect();
    for (i, r) in remaining.iter().enumerate() {
        if r.load(Ordering::Relaxed) == 0 {
            progress.event(Event::UnitDone(i));
        }
    }
    let outcomes = ctx.copy_all(&order, &jobs, &shared, &remaining).await;

    let mut report = MirrorReport {
        dry_run: req.dry_run,
        unique_images: order.len(),
        charts: resolved.iter().map(|r| r.chart_result(req)).collect(),
        ..Default::default()
    };
    report.bytes_copied = outcomes.values().map(|r| r.bytes).sum();
    for (i, (vr, imgs)) in versions.iter_mut().zip(&images).enumerate() {
        vr.images = imgs
            .iter()
            .filter_map(|d| {
                let mut r = outcomes.get(&d.image.to_string()).cloned()?;
                r.provenance = d.provenance.clone();
                Some(r)
            })
            .collect();
        vr.recount();
        if let Some(c) = report.charts.iter_mut().find(|c| c.key == units[i].key) {
            c.versions.push(vr.clone());
        }
    }
    report.recount();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
fn result(
    src: &ImageRef,
    dst: &ImageRef,
    status: ImageStatus,
    digest: Option<String>,
) -> ImageResult {
    ImageResult {
        source: src.to_string(),
        target: dst.to_string(),
        status,
        digest,
        bytes: 0,
        error: None,
        previous_digest: None,
        note: None,
        provenance: Vec::new(),
        attached: Vec::new(),
        served_by: None,
    }
}

fn failed(src: &ImageRef, dst: &ImageRef, error: String) -> ImageResult {
    ImageResult {
        error: Some(error),
        ..result(src, dst, ImageStatus::Failed, None)
    }
}

struct Ctx<'a> {
    req: &'a MirrorRequest,
    env: &'a Env,
    target: &'a TargetUrl,
    repos: &'a RepoSource,
    /// helm's version line, when this run renders.
    helm: Option<&'a str>,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    /// Mirror hosts found unreachable so far in this run.
    mirrors_down: mirrors::Down,
}

impl Ctx<'_> {
    /// The chart of `u`, and the host that served it when `sourceMirrors` lists mirrors
    /// for its (OCI) source host.
    async fn fetch(&self, u: &Unit) -> Result<(FetchedChart, Option<String>), FetchError> {
        let up = &self.req.spec.upstreams[u.upstream];
        let store = &self.env.store;
        match up.source_type {
            SourceType::Repo => self
                .repos
                .fetch(
                    up.repo.as_deref().unwrap_or_default(),
                    &u.chart,
                    &u.version,
                    store,
                )
                .await
                .map(|f| (f, None)),
            SourceType::Oci => {
                let loc = OciLocation::parse(up.registry.as_deref().unwrap_or_default()).map_err(
                    |reason| FetchError::Download {
                        url: String::new(),
                        reason,
                    },
                )?;
                // Read through the source's mirrors as its images are.
                let chart = ImageRef::in_repository(
                    &loc.host,
                    &loc.repository(&u.chart),
                    Some(version_tag(&u.version)),
                );
                let from = self.source_for(&chart).await.map_err(FetchError::Mirrors)?;
                let at = &from.from;
                crate::source::oci::fetch_at(
                    &self.env.registries,
                    &at.registry,
                    &at.repository,
                    &u.chart,
                    &u.version,
                    store,
                )
                .await
                .map(|f| (f, from.served_by()))
            }
            SourceType::Local => crate::source::local::fetch(
                std::path::Path::new(up.path.as_deref().unwrap_or_default()),
                &u.chart,
                &u.version,
                store,
            )
            .await
            .map(|f| (f, None)),
        }
    }

    async fn prepare(
        &self,
        i: usize,
        u: &Unit,
        dst: &Dest,
    ) -> (VersionResult, Vec<DiscoveredImage>) {
        let mut vr = VersionResult {
            version: u.version.clone(),
            chart_status: ChartStatus::NotRequested,
            chart_ref: None,
            chart_digest: None,
            chart_error: None,
            previous_digest: None,
            note: None,
            images_error: None,
            warnings: Vec::new(),
            excluded_images: Vec::new(),
            discovery_cached: false,
            images: Vec::new(),
            images_copied: 0,
            images_skipped: 0,
            images_failed: 0,
            overlay: None,
            served_by: None,
        };
        if self.cancel.is_cancelled() {
            vr.chart_status = ChartStatus::Failed;
            vr.chart_error = Some("cancelled".into());
            return (vr, Vec::new());
        }
        let fetched = match self.fetch(u).await {
            Ok((f, served_by)) => {
                vr.served_by = served_by;
                f
            }
            Err(e) => {
                vr.chart_status = ChartStatus::Failed;
                vr.chart_error = Some(e.to_string());
                self.progress.event(Event::Chart {
                    unit: i,
                    status: ChartStatus::Failed,
                    detail: vr.chart_error.clone(),
                    served_by: None,
                });
                if !self.req.charts_only {
                    vr.images_error =
                        Some("images not discovered: the chart could not be fetched".into());
                }
                return (vr, Vec::new());
            }
        };
        vr.note = fetched.note.clone();
        if !self.req.images_only {
            let repo = chart_repo(
                self.target,
                self.req.spec.target.charts_prefix.as_deref(),
                &u.chart,
            );
            let tag = version_tag(&u.version);
            vr.chart_ref = Some(format!("oci://{}/{repo}:{tag}", self.target.host));
            let expected = push::expected_digest(&fetched);
            vr.chart_digest = Some(expected.clone());
            let scope = if self.req.dry_run {
                Scope::Pull(repo.clone())
            } else {
                Scope::Push(repo.clone())
            };
            let outcome = match dst.head_manifest(&repo, &tag, &scope).await {
                Ok(Some(d)) if d == expected => Ok(ChartStatus::Skipped),
                Ok(Some(previous)) => {
                    // The tag holds other content: a chart edited but not re-versioned, or
                    // republished upstream. The moved-tag policy decides, as for images.
                    let policy = self.req.on_moved_tag;
                    vr.previous_digest = Some(previous.clone());
                    let mut add_note = |m: String| {
                        vr.note = Some(match vr.note.take() {
                            Some(n) => format!("{n}; {m}"),
                            None => m,
                        });
                    };
                    let said = |what: &str| {
                        format!(
                            "the target tag {tag} held other content ({previous}); {what} (--on-moved-tag {})",
                            serde_json::to_value(policy)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default()
                        )
                    };
                    match policy {
                        MovedTag::Fail => Err(said("the target was left as it is")),
                        MovedTag::Skip => {
                            add_note(said("it was kept"));
                            Ok(ChartStatus::Skipped)
                        }
                        MovedTag::Overwrite if self.req.dry_run => {
                            add_note(said("it would be overwritten"));
                            Ok(ChartStatus::WouldPush)
                        }
                        MovedTag::Overwrite => {
                            add_note(said("it was overwritten"));
                            self.progress.event(Event::ChartPushing(i));
                            push::push(&self.env.registries, dst, &repo, &tag, &fetched)
                                .await
                                .map(|_| ChartStatus::Pushed)
                                .map_err(|e| {
                                    format!("cannot push chart {}:{}: {e}", u.chart, u.version)
                                })
                        }
                    }
                }
                Ok(None) if self.req.dry_run => Ok(ChartStatus::WouldPush),
                Ok(None) => {
                    self.progress.event(Event::ChartPushing(i));
                    push::push(&self.env.registries, dst, &repo, &tag, &fetched)
                        .await
                        .map(|_| ChartStatus::Pushed)
                        .map_err(|e| format!("cannot push chart {}:{}: {e}", u.chart, u.version))
                }
                Err(e) => Err(format!("cannot push chart {}:{}: {e}", u.chart, u.version)),
            };
            match outcome {
                Ok(s) => vr.chart_status = s,
                Err(e) => {
                    vr.chart_status = ChartStatus::Failed;
                    vr.chart_error = Some(e);
                }
            }
            let detail = vr.chart_error.clone().or_else(|| vr.note.clone());
            self.progress.event(Event::Chart {
                unit: i,
                status: vr.chart_status,
                detail,
                served_by: vr.served_by.clone(),
            });
        }
        if self.req.charts_only {
            return (vr, Vec::new());
        }
        let mut found = self.discover(u, &fetched).await;
        self.drop_missing_optional(&mut found.discovery).await;
        if self.req.overlays {
            // Next to the chart only when the chart is there (not in a dry run).
            let repo = chart_repo(
                self.target,
                self.req.spec.target.charts_prefix.as_deref(),
                &u.chart,
            );
            let chart = match (vr.chart_status, &vr.chart_digest) {
                (ChartStatus::Pushed | ChartStatus::Skipped, Some(d)) => {
                    Some((repo.as_str(), d.as_str()))
                }
                _ => None,
            };
            vr.overlay = Some(self.overlay_of(u, &found, chart).await);
        }
        let d = found.discovery;
        vr.discovery_cached = found.cached;
        vr.warnings = d.warnings;
        vr.excluded_images = d.excluded.iter().map(|x| x.image.to_string()).collect();
        if let Some(error) = found.error {
            vr.images_error = Some(error.clone());
            self.progress.event(Event::ImagesFailed { unit: i, error });
        }
        if d.images.is_empty() && vr.images_error.is_some() {
            return (vr, Vec::new());
        }
        self.progress.event(Event::ImagesFound {
            unit: i,
            count: d.images.len(),
        });
        for w in &vr.warnings {
            self.progress.event(Event::ImagesRemark {
                unit: i,
                label: "Warning",
                text: w.clone(),
            });
        }
        for x in &vr.excluded_images {
            self.progress.event(Event::ImagesRemark {
                unit: i,
                label: "Excluded",
                text: format!("{x} (images.exclude)"),
            });
        }
        (vr, d.images)
    }
}
