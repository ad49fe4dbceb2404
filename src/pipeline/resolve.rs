//! Resolving each upstream's versions for a run: its exact `versions` plus whatever its
//! selector picks from what the source publishes now (index.yaml entries, the OCI tag
//! list, a chart directory's own version). IO.

use super::{Ctx, MirrorRequest};
use crate::result::{ChartResult, SelectorReport};
use crate::select::{Selector, newest, sort_versions};
use crate::source::FetchError;
use crate::spec::{OciLocation, SourceType, UpstreamSpec};

/// How many of the newest published versions a "nothing matches" failure names.
const NEWEST_SHOWN: usize = 5;

/// The versions of one upstream in this run, and how they were chosen.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Index of the upstream in the spec.
    pub upstream: usize,
    /// Every version to mirror: exact ones and selected ones.
    pub versions: Vec<String>,
    /// The selector, when the upstream has one (and `--version` did not replace it).
    pub selector: Option<SelectorReport>,
    /// Remarks (published entries that are not versions, skipped).
    pub warnings: Vec<String>,
    /// Why the versions could not be resolved (the upstream fails; nothing is mirrored).
    pub error: Option<String>,
}

impl Resolved {
    /// The upstream's entry in the report, before any version ran.
    pub(super) fn chart_result(&self, req: &MirrorRequest) -> ChartResult {
        let up = &req.spec.upstreams[self.upstream];
        ChartResult {
            key: up.name.clone(),
            chart: up.chart.clone(),
            versions: Vec::new(),
            selector: self.selector.clone(),
            resolved_versions: if self.error.is_none() {
                self.versions.clone()
            } else {
                Vec::new()
            },
            warnings: self.warnings.clone(),
            error: self.error.clone(),
        }
    }
}

/// The selector of `up` as reported.
pub(super) fn report_of(up: &UpstreamSpec) -> Option<SelectorReport> {
    up.semver.as_ref().map(|semver| SelectorReport {
        semver: semver.clone(),
        latest: up.latest,
        prereleases: up.prereleases,
        exclude: up.exclude.clone(),
    })
}

fn in_run(req: &MirrorRequest) -> impl Iterator<Item = (usize, &UpstreamSpec)> {
    req.spec
        .upstreams
        .iter()
        .enumerate()
        .filter(|(_, u)| req.only.as_ref().is_none_or(|n| *n == u.name))
}

/// `--version` means exactly those versions.
fn overridden(req: &MirrorRequest, u: &UpstreamSpec) -> bool {
    req.only.as_ref() == Some(&u.name) && !req.versions.is_empty()
}

fn selects(req: &MirrorRequest, u: &UpstreamSpec) -> bool {
    u.semver.is_some() && !overridden(req, u)
}

/// The exact versions of every upstream in the run, without looking anything up. Pure.
pub(super) fn plan_exact(req: &MirrorRequest) -> Vec<Resolved> {
    in_run(req)
        .map(|(i, u)| Resolved {
            upstream: i,
            versions: if overridden(req, u) {
                req.versions.clone()
            } else {
                u.versions.clone()
            },
            selector: None,
            warnings: Vec::new(),
            error: None,
        })
        .collect()
}

impl Ctx<'_> {
    /// Resolve every upstream of the run, one at a time (each is a single request, and an
    /// index is fetched once per run whichever upstreams share it).
    pub(super) async fn resolve_all(&self) -> Vec<Resolved> {
        let mut out = plan_exact(self.req);
        for r in &mut out {
            let up = &self.req.spec.upstreams[r.upstream];
            if !selects(self.req, up) {
                continue;
            }
            r.selector = report_of(up);
            let selector = match Selector::of(up) {
                Ok(Some(s)) => s,
                // Validated before the run; kept total anyway.
                Ok(None) => continue,
                Err(p) => {
                    r.error = Some(p.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "));
                    continue;
                }
            };
            let published = match self.published(up).await {
                Ok(p) => p,
                Err(e) => {
                    r.error = Some(format!(
                        "cannot resolve semver {:?}: {e}",
                        up.semver.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
            };
            let selected = selector.select(&published);
            if !selected.not_versions.is_empty() {
                let mut shown = selected.not_versions.clone();
                let more = shown.len().saturating_sub(5);
                shown.truncate(5);
                let warning = format!(
                    "skipped {} published entr{} that {} not a version: {}{}",
                    selected.not_versions.len(),
                    if selected.not_versions.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    if selected.not_versions.len() == 1 {
                        "is"
                    } else {
                        "are"
                    },
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
                tracing::warn!(upstream = %up.name, "{warning}");
                r.warnings.push(warning);
            }
            if selected.versions.is_empty() {
                let newest = newest(&published, NEWEST_SHOWN);
                r.error = Some(format!(
                    "no published version of {} matches semver {:?}{}{}; widen the range (or set prereleases: true)",
                    up.chart,
                    up.semver.as_deref().unwrap_or_default(),
                    if up.exclude.is_empty() {
                        ""
                    } else {
                        " after exclude"
                    },
                    if newest.is_empty() {
                        " (nothing is published)".to_string()
                    } else {
                        format!(" (newest published: {})", newest.join(", "))
                    },
                ));
                continue;
            }
            for v in selected.versions {
                if !r.versions.contains(&v) {
                    r.versions.push(v);
                }
            }
            sort_versions(&mut r.versions);
        }
        out
    }

    /// Every version the upstream's source publishes now.
    async fn published(&self, up: &UpstreamSpec) -> Result<Vec<String>, FetchError> {
        match up.source_type {
            SourceType::Repo => {
                self.repos
                    .versions(up.repo.as_deref().unwrap_or_default(), &up.chart)
                    .await
            }
            SourceType::Oci => {
                let loc = OciLocation::parse(up.registry.as_deref().unwrap_or_default()).map_err(
                    |reason| FetchError::Download {
                        url: String::new(),
                        reason,
                    },
                )?;
                let repo = crate::reference::ImageRef::in_repository(
                    &loc.host,
                    &loc.repository(&up.chart),
                    None,
                );
                let tags = self.tags_for(&repo).await?;
                // Helm writes `+` as `_` in tags.
                Ok(tags.into_iter().map(|t| t.replace('_', "+")).collect())
            }
            SourceType::Local => {
                let dir = std::path::Path::new(up.path.as_deref().unwrap_or_default());
                let file = dir.join("Chart.yaml");
                let bytes = tokio::fs::read(&file)
                    .await
                    .map_err(|e| FetchError::Package {
                        path: dir.display().to_string(),
                        reason: format!("cannot read Chart.yaml: {e}"),
                    })?;
                let meta = crate::chart::archive::parse_chart_yaml(&bytes).map_err(|e| {
                    FetchError::Package {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(vec![meta.version])
            }
        }
    }
}
