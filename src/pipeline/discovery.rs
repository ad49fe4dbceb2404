//! Image discovery for one chart version: the IO around the pure `discover` module —
//! missing dependencies fetched, values files read, helm run — and the union assembled.

use bytes::Bytes;
use serde_json::Value;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{Ctx, MirrorRequest, NoProgress, PipelineError, Unit, cache};
use crate::chart::archive;
use crate::discover::{
    Discovery, Findings, RenderInputs, Selection, annotations, manifests, tree, values,
};
use crate::result::{ImagesChart, ImagesReport, ImagesVersion, ListedImage};
use crate::source::FetchedChart;
use crate::spec::{DiscoverySource, UpstreamSpec};

/// Values files larger than this are refused.
const MAX_VALUES_FILE: u64 = 8 * 1024 * 1024;

/// What discovery found, and the error that kept a source from running (the version is
/// reported failed, and whatever the other sources found is still mirrored).
pub(super) struct Discovered {
    pub discovery: Discovery,
    pub error: Option<String>,
    /// What the render used, for the overlay stage (absent when discovery stopped early).
    pub rendered_with: Option<RenderedWith>,
    /// Taken from the discovery cache (nothing was rendered).
    pub cached: bool,
}

/// The chart tree, the archive (with fetched dependencies) and the inputs discovery
/// rendered with: what the overlay stage renders again.
pub(super) struct RenderedWith {
    pub root: tree::ChartNode,
    pub archive: Bytes,
    pub inputs: RenderInputs,
    pub overrides: Value,
    /// Whether the rendered manifests count (else the overlay cannot be verified).
    pub rendered: bool,
}

/// Whether a `valuesFiles` entry names a local file rather than one inside the chart.
pub fn is_local_values_file(entry: &str) -> bool {
    entry.starts_with("./") || entry.starts_with("../") || entry.starts_with('/')
}

/// Whether any upstream of the request is rendered (so helm must be there).
pub(super) fn renders(req: &MirrorRequest) -> bool {
    !req.charts_only
        && req.spec.upstreams.iter().any(|u| {
            u.images
                .as_ref()
                .and_then(|i| i.sources.as_ref())
                .or_else(|| req.spec.images.as_ref().and_then(|i| i.sources.as_ref()))
                .is_none_or(|s| s.contains(&DiscoverySource::Rendered))
        })
}

/// The images of every chart version the request names, with provenance; nothing is
/// written anywhere. What `lazyoci images` prints.
pub async fn images(
    req: &MirrorRequest,
    env: &super::Env,
    cancel: &CancellationToken,
) -> Result<ImagesReport, PipelineError> {
    let (target, repos, helm) = super::start(req, env, cancel, renders(req)).await?;
    let ctx = &Ctx {
        req,
        env,
        target: &target,
        repos: &repos,
        helm: helm.as_deref(),
        progress: &NoProgress,
        cancel,
        mirrors_down: Default::default(),
    };
    let resolved = ctx.resolve_all().await;
    let units = super::plan(req, &target, &resolved);
    let listed = |d: &crate::discover::DiscoveredImage| ListedImage {
        source: d.image.to_string(),
        target: d.image.remap(&target).to_string(),
        provenance: d.provenance.clone(),
    };
    let jobs: Vec<_> = units
        .iter()
        .map(|u| {
            async move {
                if cancel.is_cancelled() {
                    return (None, Some("cancelled".to_string()), None, None);
                }
                match ctx.fetch(u).await {
                    Ok((fetched, served_by)) => {
                        let found = ctx.discover(u, &fetched).await;
                        let overlay = match req.overlays {
                            true => Some(ctx.overlay_of(u, &found, None).await),
                            false => None,
                        };
                        (Some(found.discovery), found.error, overlay, served_by)
                    }
                    Err(e) => (None, Some(e.to_string()), None, None),
                }
            }
            .boxed()
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(jobs)
        .buffered(req.concurrency.max(1))
        .collect()
        .await;
    let mut report = ImagesReport {
        charts: resolved
            .iter()
            .map(|r| {
                let c = r.chart_result(req);
                ImagesChart {
                    key: c.key,
                    chart: c.chart,
                    versions: Vec::new(),
                    error: c.error,
                }
            })
            .collect(),
    };
    for (u, (discovery, error, overlay, served_by)) in units.iter().zip(results) {
        let d = discovery.unwrap_or_default();
        let version = ImagesVersion {
            version: u.version.clone(),
            images: d.images.iter().map(listed).collect(),
            excluded: d.excluded.iter().map(listed).collect(),
            warnings: d.warnings,
            error,
            overlay,
            served_by,
        };
        if let Some(c) = report.charts.iter_mut().find(|c| c.key == u.key) {
            c.versions.push(version);
        }
    }
    Ok(report)
}

impl Ctx<'_> {
    pub(super) async fn discover(&self, u: &Unit, fetched: &FetchedChart) -> Discovered {
        let up = &self.req.spec.upstreams[u.upstream];
        let fail = |error: String| Discovered {
            discovery: Discovery::default(),
            error: Some(error),
            rendered_with: None,
            cached: false,
        };
        let selection = match Selection::new(self.req.spec.images.as_ref(), up.images.as_ref()) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let mut root = match read_tree(fetched.archive.clone()).await {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read the chart archive: {e}")),
        };
        let mut error = None;
        let mut archive = fetched.archive.clone();
        match crate::source::deps::vendor_missing(
            &root,
            &archive,
            self.repos,
            &self.env.registries,
            self,
            &self.env.store,
        )
        .await
        {
            Ok(Some(with_deps)) => match read_tree(with_deps.clone()).await {
                Ok(t) => {
                    root = t;
                    archive = with_deps;
                }
                Err(e) => error = Some(format!("a fetched dependency is unreadable: {e}")),
            },
            Ok(None) => {}
            Err(e) => error = Some(e.to_string()),
        }
        let (inputs, overrides) = match render_inputs(up, &archive).await {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let cache = self
            .env
            .discovery_cache
            .as_ref()
            .filter(|_| error.is_none());
        let key = cache.map(|_| {
            cache::key(&cache::KeyInputs {
                helm: self.helm,
                chart: &u.chart,
                archive_digest: if archive == fetched.archive {
                    fetched.digest.clone()
                } else {
                    crate::digest::sha256(&archive)
                },
                inputs: &inputs,
                images: serde_json::json!([self.req.spec.images, up.images]),
            })
        });
        if let (Some(c), Some(k)) = (cache, &key)
            && let Some(discovery) = c.get(k).await
        {
            return Discovered {
                discovery,
                error: None,
                rendered_with: Some(RenderedWith {
                    rendered: selection.counts(DiscoverySource::Rendered),
                    root,
                    archive,
                    inputs,
                    overrides,
                }),
                cached: true,
            };
        }
        let mut findings = Findings::default();
        let mut warnings = Vec::new();
        if selection.counts(DiscoverySource::Rendered) && error.is_none() {
            match self.env.renderer.render(&u.chart, &archive, &inputs).await {
                Ok(text) => match manifests::located_images(&text) {
                    Ok(found) => findings.rendered = Some(found),
                    Err(e) => error = Some(e),
                },
                Err(e) => error = Some(e.to_string()),
            }
        }
        if selection.counts(DiscoverySource::Annotations) {
            let (found, w) = annotations::annotated(&root);
            findings.annotations = Some(found);
            warnings.extend(w);
        }
        if selection.counts(DiscoverySource::Lockfile) {
            findings.lockfile = Some(annotations::locked(&root));
        }
        if selection.counts(DiscoverySource::Values) {
            findings.values = Some(values::scan(&root, &overrides));
        }
        // A file that could not be read costs what it would have told, nothing more.
        for node in root.walk() {
            for (file, e) in &node.unreadable {
                if file.ends_with("/values.yaml") {
                    let e = format!("cannot read {file}: {e} (its values are not scanned)");
                    error = Some(match error.take() {
                        Some(prev) => format!("{prev}; {e}"),
                        None => e,
                    });
                } else {
                    warnings.push(format!("cannot read {file}: {e}; ignored"));
                }
            }
        }
        let rendered = findings.rendered.is_some();
        let discovery = crate::discover::assemble(findings, &selection, warnings);
        if let (Some(c), Some(k), None) = (cache, &key, &error) {
            c.put(k, &discovery).await;
        }
        Discovered {
            discovery,
            rendered_with: error.is_none().then_some(RenderedWith {
                root,
                archive,
                inputs,
                overrides,
                rendered,
            }),
            error,
            cached: false,
        }
    }

    /// Images that may not exist, dropped with a warning when the source does not have
    /// them instead of failing the run: those only the values scan found, with a tag
    /// assumed from the appVersion (guesses), and those only the chart declares
    /// (annotations, Images.lock; an edition or operand the chart lists but not every
    /// release publishes). Lookup errors keep the image (the copy reports them). Mirror
    /// runs only: `lazyoci images` lists them as found and contacts no image registry.
    pub(super) async fn drop_missing_optional(&self, discovery: &mut Discovery) {
        let guessed = |d: &crate::discover::DiscoveredImage| {
            d.provenance.iter().all(|p| {
                p.from == DiscoverySource::Values && p.at.ends_with(values::APP_VERSION_TAG)
            })
        };
        let optional: Vec<usize> = (0..discovery.images.len())
            .filter(|&i| {
                let d = &discovery.images[i];
                guessed(d) || crate::discover::declared_only(d)
            })
            .collect();
        let mut missing = Vec::new();
        for i in optional {
            let image = &discovery.images[i].image;
            let Ok(client) = self.env.registries.client(&image.registry).await else {
                continue;
            };
            let scope = crate::registry::Scope::Pull(image.repository.clone());
            if let Ok(None) = client
                .head_manifest(&image.repository, image.reference(), &scope)
                .await
            {
                missing.push(i);
            }
        }
        for i in missing.into_iter().rev() {
            let d = discovery.images.remove(i);
            let at = d
                .provenance
                .first()
                .map(|p| p.at.as_str())
                .unwrap_or_default();
            discovery.warnings.push(if guessed(&d) {
                format!(
                    "{} ({at}) is not at the source: its tag was assumed from the appVersion; not mirrored (name it in images.extra if another tag is meant)",
                    d.image
                )
            } else {
                format!(
                    "{} (declared in {at}) is not at the source; not mirrored (the chart lists it, but it was not published)",
                    d.image
                )
            });
        }
    }
}

/// Read the chart tree off the runtime's threads (it decompresses whole archives).
async fn read_tree(archive: Bytes) -> Result<tree::ChartNode, String> {
    tokio::task::spawn_blocking(move || tree::read(&archive).map_err(|e| e.to_string()))
        .await
        .map_err(|e| format!("internal error reading the archive: {e}"))?
}

/// The values files and inline values of an upstream, for helm and merged for the scan.
async fn render_inputs(
    up: &UpstreamSpec,
    archive_bytes: &Bytes,
) -> Result<(RenderInputs, Value), String> {
    let mut inputs = RenderInputs {
        kube_version: up.kube_version.clone(),
        api_versions: up.api_versions.clone(),
        ..Default::default()
    };
    let mut merged = Value::Object(Default::default());
    // Every in-chart values file in one pass over the archive, off the runtime's threads.
    let in_chart: Vec<String> = up
        .values_files
        .iter()
        .filter(|n| !is_local_values_file(n))
        .cloned()
        .collect();
    let mut chart_files = Vec::new();
    if !in_chart.is_empty() {
        let bytes = archive_bytes.clone();
        let names = in_chart.clone();
        chart_files = tokio::task::spawn_blocking(move || {
            archive::files(
                &bytes,
                &|p| names.iter().any(|n| n == p),
                MAX_VALUES_FILE,
                archive::MAX_UNPACKED_BYTES,
            )
        })
        .await
        .map_err(|e| format!("internal error reading the archive: {e}"))?
        .map_err(|e| format!("valuesFiles {in_chart:?}: {e}"))?
        .1;
    }
    for name in &up.values_files {
        let content = if is_local_values_file(name) {
            read_local(name).await?
        } else {
            chart_files
                .iter()
                .find(|(p, _)| p == name)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| {
                    format!(
                        "valuesFiles {name:?} is not in the chart; name a file inside the chart (e.g. values-production.yaml) or, in mirror.yaml, a path starting with ./"
                    )
                })?
        };
        let text = std::str::from_utf8(&content)
            .map_err(|_| format!("valuesFiles {name:?} is not UTF-8"))?;
        let parsed = crate::chart::yaml::parse(text)
            .map_err(|e| format!("valuesFiles {name:?} is not YAML: {e}"))?;
        match parsed {
            Value::Object(_) => values::merge(&mut merged, &parsed),
            Value::Null => {}
            _ => return Err(format!("valuesFiles {name:?} is not a mapping of values")),
        }
        inputs.values.push((name.clone(), content));
    }
    if let Some(v) = up.values.as_ref().filter(|v| v.is_object()) {
        values::merge(&mut merged, v);
        let json = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        inputs
            .values
            .push(("values (from the config)".into(), json));
    }
    Ok((inputs, merged))
}

async fn read_local(path: &str) -> Result<Vec<u8>, String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("valuesFiles {path:?}: {e}"))?;
    if meta.len() > MAX_VALUES_FILE {
        return Err(format!("valuesFiles {path:?} is larger than 8 MiB"));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("valuesFiles {path:?}: {e}"))
}
