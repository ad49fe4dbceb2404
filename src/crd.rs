//! The `ChartMirror` custom resource's status, and how a [`MirrorReport`] folds into it.
//! Pure.
//!
//! Conditions follow Flux/kstatus: `Ready` is always present; `Reconciling` and `Stalled`
//! only while true; `FetchFailed`, `RenderFailed` and `PushFailed` add detail while true.
//! One compact entry per chart version keeps 250 versions far below etcd's object limit.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::result::{ChartStatus, ImageStatus, MirrorReport};
use crate::spec::ChartMirror;

/// Condition types.
pub mod conditions {
    /// The last run finished and everything is mirrored.
    pub const READY: &str = "Ready";
    /// A run is in flight.
    pub const RECONCILING: &str = "Reconciling";
    /// Nothing will change until the spec does.
    pub const STALLED: &str = "Stalled";
    /// Fetching a chart failed.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// Rendering a chart failed.
    pub const RENDER_FAILED: &str = "RenderFailed";
    /// Pushing a chart or copying an image failed.
    pub const PUSH_FAILED: &str = "PushFailed";
}

/// Condition and event reasons (CamelCase, as metav1.Condition requires).
pub mod reasons {
    /// Everything mirrored.
    pub const SUCCEEDED: &str = "Succeeded";
    /// A run is in flight.
    pub const PROGRESSING: &str = "Progressing";
    /// Some chart versions or images failed.
    pub const PARTIALLY_MIRRORED: &str = "PartiallyMirrored";
    /// The spec cannot work.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A referenced Secret is missing or unusable.
    pub const SECRET_ERROR: &str = "SecretError";
    /// A chart could not be pulled.
    pub const CHART_PULL_FAILED: &str = "ChartPullFailed";
    /// A chart could not be rendered.
    pub const RENDER_FAILED: &str = "RenderFailed";
    /// A chart push or image copy failed.
    pub const PUSH_FAILED: &str = "PushFailed";
    /// Runs are suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// A version appeared upstream (one event per version).
    pub const NEW_VERSION: &str = "NewVersion";
    /// An upstream's versions could not be resolved (e.g. its selector matches nothing).
    pub const RESOLVE_FAILED: &str = "ResolveFailed";
}

/// At most this many failed images are listed per chart version.
pub const MAX_FAILED_IMAGES: usize = 5;
/// Errors in status are cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = 1024;
/// Discovery warnings kept per chart version in status, and their length.
pub const MAX_WARNINGS: usize = 3;
/// See [`MAX_WARNINGS`].
pub const MAX_WARNING_BYTES: usize = 300;

/// Status of a `ChartMirror`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartMirrorStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and detail conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Counts over the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// One entry per chart version.
    #[serde(default)]
    pub charts: Vec<ChartVersionStatus>,
    /// Per upstream: the versions its last resolution gave, and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamStatus>,
    /// The last `reconcile.fluxcd.io/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// When the last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_start_time: Option<Time>,
    /// When the last run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_completion_time: Option<Time>,
}

/// Counts over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Chart versions.
    pub chart_versions: VersionCounts,
    /// Images.
    pub images: ImageCounts,
}

/// Chart version counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VersionCounts {
    /// All chart versions.
    pub total: u32,
    /// Pushed this run.
    pub pushed: u32,
    /// Already present.
    pub skipped: u32,
    /// Failed.
    pub failed: u32,
}

/// Image counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageCounts {
    /// Distinct images (run summary) or images of the version (per entry).
    pub total: u32,
    /// Copied this run.
    pub copied: u32,
    /// Already present.
    pub skipped: u32,
    /// Failed.
    pub failed: u32,
}

/// One chart version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartVersionStatus {
    /// Upstream name.
    pub upstream: String,
    /// Chart name.
    pub chart: String,
    /// Version.
    pub version: String,
    /// `Pushed`, `Skipped`, `Failed` or `Pending`.
    pub result: String,
    /// `<version>@sha256:<digest>` of the chart artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Where the chart is, `oci://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Image counts of this version.
    pub images: ImageCounts,
    /// Some failed images (at most five).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_images: Vec<String>,
    /// The last error, truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Some image-discovery warnings (at most three, truncated), e.g. sources that disagree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The values overlay of this version: which ConfigMap holds it and what it relocates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayStatus>,
}

/// A chart version's values overlay, in status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayStatus {
    /// The ConfigMap (same namespace; key `values.yaml`) a Flux HelmRelease reads with
    /// `valuesFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Images a render with the overlay pulls from the target.
    pub relocated: u32,
    /// Images the values cannot move (listed in the ConfigMap's header).
    pub not_relocatable: u32,
    /// The overlay artifact next to the chart, `host/repo@digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// Versions kept in `noLongerSelected` at most (the oldest are forgotten first).
pub const MAX_NO_LONGER_SELECTED: usize = 100;

/// What one upstream resolved to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamStatus {
    /// Upstream name.
    pub name: String,
    /// The `semver` selector, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// The versions mirrored for it: its exact versions and what the selector picked.
    #[serde(default)]
    pub resolved_versions: Vec<String>,
    /// When those versions were resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// Versions selected before that the selector no longer picks. They stay in the target
    /// registry: nothing is pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_longer_selected: Vec<String>,
    /// Why the last resolution failed (the versions above are from the one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A version that an upstream's selector picked for the first time in this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVersion {
    /// Upstream name.
    pub upstream: String,
    /// Chart name.
    pub chart: String,
    /// The version.
    pub version: String,
    /// Whether it mirrored without failure.
    pub mirrored: bool,
}

/// The upstream entries after a run, and the versions that appeared since the last one
/// (none on an upstream's first run: nothing "appeared" then).
pub fn fold_upstreams(
    old: &[UpstreamStatus],
    report: &MirrorReport,
    now: &Time,
) -> (Vec<UpstreamStatus>, Vec<NewVersion>) {
    let mut out = Vec::new();
    let mut appeared = Vec::new();
    for c in &report.charts {
        let before = old.iter().find(|u| u.name == c.key);
        let semver = c.selector.as_ref().map(|s| s.semver.clone());
        if let Some(e) = &c.error {
            let mut kept = before.cloned().unwrap_or_else(|| UpstreamStatus {
                name: c.key.clone(),
                ..Default::default()
            });
            kept.semver = semver;
            kept.last_error = Some(truncate(e, MAX_ERROR_BYTES));
            out.push(kept);
            continue;
        }
        let mut gone: Vec<String> = Vec::new();
        if let Some(b) = before {
            for v in b.no_longer_selected.iter().chain(&b.resolved_versions) {
                if !c.resolved_versions.contains(v) && !gone.contains(v) {
                    gone.push(v.clone());
                }
            }
            if semver.is_some() {
                for v in c
                    .resolved_versions
                    .iter()
                    .filter(|v| !b.resolved_versions.contains(v))
                {
                    appeared.push(NewVersion {
                        upstream: c.key.clone(),
                        chart: c.chart.clone(),
                        version: v.clone(),
                        mirrored: c.versions.iter().any(|r| &r.version == v && !r.failed()),
                    });
                }
            }
        }
        if gone.len() > MAX_NO_LONGER_SELECTED {
            gone.drain(..gone.len() - MAX_NO_LONGER_SELECTED);
        }
        out.push(UpstreamStatus {
            name: c.key.clone(),
            semver,
            resolved_versions: c.resolved_versions.clone(),
            resolved_at: Some(now.clone()),
            no_longer_selected: gone,
            last_error: None,
        });
    }
    (out, appeared)
}

/// The CRD as YAML, as `lazyoci crd` prints it and `crds/chartmirror.yaml` holds it.
pub fn crd_yaml() -> String {
    let crd = ChartMirror::crd();
    let body = serde_saphyr::to_string(&crd).unwrap_or_default();
    format!(
        "# Generated by `lazyoci crd` from src/spec.rs and src/crd.rs; do not edit.\n---\n{body}"
    )
}

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The per-version entries and summary of a finished run.
pub fn fold_report(report: &MirrorReport) -> (Summary, Vec<ChartVersionStatus>) {
    let mut entries = Vec::new();
    for c in &report.charts {
        for v in &c.versions {
            let failed: Vec<String> = v
                .images
                .iter()
                .filter(|i| i.status == ImageStatus::Failed)
                .map(|i| i.source.clone())
                .collect();
            let error = v
                .chart_error
                .clone()
                .or_else(|| v.images_error.clone())
                .or_else(|| v.images.iter().find_map(|i| i.error.clone()))
                .or_else(|| v.overlay.as_ref().and_then(|o| o.error.clone()));
            let result = if v.failed() {
                "Failed"
            } else {
                match v.chart_status {
                    ChartStatus::Pushed | ChartStatus::WouldPush => "Pushed",
                    ChartStatus::Skipped | ChartStatus::NotRequested => "Skipped",
                    ChartStatus::Failed => "Failed",
                }
            };
            entries.push(ChartVersionStatus {
                upstream: c.key.clone(),
                chart: c.chart.clone(),
                version: v.version.clone(),
                result: result.into(),
                revision: v
                    .chart_digest
                    .as_ref()
                    .map(|d| format!("{}@{d}", v.version)),
                url: v.chart_ref.clone(),
                images: ImageCounts {
                    total: v.images.len() as u32,
                    copied: v.images_copied as u32,
                    skipped: v.images_skipped as u32,
                    failed: v.images_failed as u32,
                },
                failed_images: failed.into_iter().take(MAX_FAILED_IMAGES).collect(),
                last_error: error.map(|e| truncate(&e, MAX_ERROR_BYTES)),
                warnings: v
                    .warnings
                    .iter()
                    .take(MAX_WARNINGS)
                    .map(|w| truncate(w, MAX_WARNING_BYTES))
                    .collect(),
                overlay: v.overlay.as_ref().map(|o| OverlayStatus {
                    config_map: o.config_map.clone(),
                    relocated: o.relocated as u32,
                    not_relocatable: o.not_relocatable.len() as u32,
                    artifact: o.artifact.clone(),
                }),
            });
        }
    }
    let count = |r: &str| entries.iter().filter(|e| e.result == r).count() as u32;
    let summary = Summary {
        chart_versions: VersionCounts {
            total: entries.len() as u32,
            pushed: count("Pushed"),
            skipped: count("Skipped"),
            failed: count("Failed"),
        },
        images: ImageCounts {
            total: report.unique_images as u32,
            copied: report.images_copied as u32,
            skipped: report.images_skipped as u32,
            failed: report.images_failed as u32,
        },
    };
    (summary, entries)
}

/// A condition to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// Type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human message.
    pub message: String,
}

/// Replace the conditions with `wanted`, keeping `lastTransitionTime` of those whose status did
/// not change. Conditions not in `wanted` are dropped (abnormal-true ones vanish when false).
pub fn set_conditions(
    old: &[Condition],
    wanted: &[Want],
    generation: i64,
    now: &Time,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let previous = old.iter().find(|c| c.type_ == w.type_);
            let since = match previous {
                Some(p) if p.status == w.status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: w.type_.to_string(),
                status: w.status.to_string(),
                reason: w.reason.to_string(),
                message: truncate(&w.message, MAX_ERROR_BYTES),
                observed_generation: Some(generation),
                last_transition_time: since,
            }
        })
        .collect()
}

/// The conditions after a finished run.
pub fn conditions_for(report: &MirrorReport) -> Vec<Want> {
    let versions: Vec<_> = report.charts.iter().flat_map(|c| &c.versions).collect();
    let fetch_failed = versions.iter().filter(|v| v.not_fetched()).count();
    let render_failed = versions.iter().filter(|v| v.not_discovered()).count();
    let push_failed = versions
        .iter()
        .filter(|v| {
            (v.chart_status == ChartStatus::Failed && v.images_error.is_none())
                || v.images_failed > 0
        })
        .count();
    let mut out = Vec::new();
    if !report.has_failures() {
        out.push(Want {
            type_: conditions::READY,
            status: "True",
            reason: reasons::SUCCEEDED,
            message: format!(
                "{} chart versions mirrored; {} images copied, {} already present",
                versions.len(),
                report.images_copied,
                report.images_skipped
            ),
        });
        return out;
    }
    let failed_versions = versions.iter().filter(|v| v.failed()).count();
    let reason = match (fetch_failed > 0, render_failed > 0, push_failed > 0) {
        (true, false, false) => reasons::CHART_PULL_FAILED,
        (false, true, false) => reasons::RENDER_FAILED,
        (false, false, true) => reasons::PUSH_FAILED,
        _ => reasons::PARTIALLY_MIRRORED,
    };
    out.push(Want {
        type_: conditions::READY,
        status: "False",
        reason,
        message: format!(
            "{failed_versions} of {} chart versions failed; {} images failed, {} copied, {} already present",
            versions.len(),
            report.images_failed,
            report.images_copied,
            report.images_skipped
        ),
    });
    for (n, type_, reason, what) in [
        (
            fetch_failed,
            conditions::FETCH_FAILED,
            reasons::CHART_PULL_FAILED,
            "could not be fetched",
        ),
        (
            render_failed,
            conditions::RENDER_FAILED,
            reasons::RENDER_FAILED,
            "could not be rendered",
        ),
        (
            push_failed,
            conditions::PUSH_FAILED,
            reasons::PUSH_FAILED,
            "had push or copy failures",
        ),
    ] {
        if n > 0 {
            out.push(Want {
                type_,
                status: "True",
                reason,
                message: format!("{n} chart versions {what}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
