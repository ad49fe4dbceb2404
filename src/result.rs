//! The result of a mirror run: one value the CLI prints and the operator folds into
//! status. Pure. Field names follow the CLI contract's JSON.

use serde::{Deserialize, Serialize};

/// What happened to a chart artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChartStatus {
    /// Pushed to the target.
    Pushed,
    /// The target already held the same digest.
    Skipped,
    /// Fetching or pushing failed.
    Failed,
    /// Dry run: would be pushed.
    WouldPush,
    /// `--images-only`: the chart artifact was not mirrored.
    NotRequested,
}

/// What happened to an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStatus {
    /// Copied to the target.
    Copied,
    /// The target tag already held the source digest.
    Skipped,
    /// Copying failed.
    Failed,
    /// Dry run: would be copied.
    WouldCopy,
}

/// One image of one chart version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    /// Normalised source reference.
    pub source: String,
    /// Target reference.
    pub target: String,
    /// Outcome.
    pub status: ImageStatus,
    /// Manifest digest (the same on both sides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Blob bytes sent for this image in this run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The digest the target tag held before, when the source tag had moved since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    /// Something worth knowing (e.g. what a moved tag policy did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where discovery found this image in this chart version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Provenance>,
    /// Signatures, attestations, SBOMs and other referrers of the image found at the source,
    /// and what happened to each (absent when there are none or `--no-signatures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<AttachedResult>,
    /// The registry host that served the image, when `sourceMirrors` lists mirrors for its
    /// host: a mirror's host, or the original one after the mirrors failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// One place an image was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The discovery source.
    pub from: crate::spec::DiscoverySource,
    /// Where exactly: template and field, values key, annotation entry.
    pub at: String,
}

/// An artifact attached to an image by its digest, copied along with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedResult {
    /// What it is.
    pub kind: AttachedKind,
    /// Where it is on the target: `host/repo:sha256-<hex>.sig` for a tag, `host/repo@<digest>`
    /// for a referrer.
    pub target: String,
    /// Manifest digest (the same on both sides).
    pub digest: String,
    /// `copied`, `skipped` (the target has it), `failed` or `would-copy` (dry run).
    pub status: ImageStatus,
    /// The referrer's `artifactType`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Kinds of attached artifacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachedKind {
    /// cosign signature (`sha256-<hex>.sig`).
    Signature,
    /// cosign attestation (`sha256-<hex>.att`).
    Attestation,
    /// cosign SBOM (`sha256-<hex>.sbom`).
    Sbom,
    /// An OCI 1.1 referrer (a manifest whose `subject` is the image).
    Referrer,
    /// The referrers tag schema index (`sha256-<hex>`), for registries without the referrers API.
    ReferrersIndex,
}

impl AttachedKind {
    /// A short word for text output.
    pub fn short(self) -> &'static str {
        match self {
            AttachedKind::Signature => "sig",
            AttachedKind::Attestation => "att",
            AttachedKind::Sbom => "sbom",
            AttachedKind::Referrer => "referrer",
            AttachedKind::ReferrersIndex => "referrers index",
        }
    }
}

/// What to do when a source tag now points elsewhere than the target tag mirrored before:
/// `overwrite` (copy the new content, the default), `skip` (keep the target's) or `fail`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MovedTag {
    /// Copy the new content over the target tag (reported with the previous digest).
    #[default]
    Overwrite,
    /// Keep what the target has, and say so.
    Skip,
    /// Report the image as failed and leave the target as it is.
    Fail,
}

/// One chart version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    /// Chart version.
    pub version: String,
    /// Outcome for the chart artifact.
    pub chart_status: ChartStatus,
    /// Target reference of the chart, `oci://…:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_ref: Option<String>,
    /// Manifest digest of the chart artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_digest: Option<String>,
    /// Why the chart failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_error: Option<String>,
    /// The digest the target's chart tag held before, when it held other content (a chart
    /// changed without a new version); what happened is in `note` or `chartError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    /// Something worth knowing (e.g. a stamped version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why images could not be discovered (e.g. helm's error when the chart does not render).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_error: Option<String>,
    /// Non-fatal discovery remarks (e.g. sources that disagree).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Images discovered but dropped by `images.exclude`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_images: Vec<String>,
    /// Whether discovery came from the cache (the chart version was not rendered again).
    #[serde(default, skip_serializing_if = "is_false")]
    pub discovery_cached: bool,
    /// Images, sorted by source.
    pub images: Vec<ImageResult>,
    /// Images copied (in a dry run: that would be copied).
    pub images_copied: usize,
    /// Images already present.
    pub images_skipped: usize,
    /// Images that failed.
    pub images_failed: usize,
    /// The values overlay (`--overlays`), when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayResult>,
    /// The registry host that served the chart, when `sourceMirrors` lists mirrors for its
    /// (OCI) source host: a mirror's host, or the original one after the mirrors failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// The values overlay of one chart version, and what a render with it pulls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverlayResult {
    /// The file written (`--overlays DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Distinct images a render with the overlay pulls from the target.
    pub relocated: usize,
    /// Images a render with the overlay still pulls from elsewhere: the values cannot move
    /// them.
    #[serde(default)]
    pub not_relocatable: Vec<NotRelocatable>,
    /// Images the overlay moves that this render does not use (sections switched off),
    /// so the render could not check them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<String>,
    /// The overlay pushed next to the chart, `host/repo@digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Something worth knowing (e.g. why the overlay is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why no overlay could be made, written or pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The ConfigMap holding it (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// The overlay file's content (for the operator's ConfigMaps; not printed).
    #[serde(skip)]
    pub content: Option<String>,
}

/// An image the values cannot move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotRelocatable {
    /// The reference a render with the overlay writes.
    pub image: String,
    /// Where: template, object and field.
    pub at: Vec<String>,
    /// Why it is not relocated.
    pub reason: String,
}

impl VersionResult {
    /// Whether anything about this version failed.
    pub fn failed(&self) -> bool {
        self.chart_status == ChartStatus::Failed
            || self.images_error.is_some()
            || self.images_failed > 0
            || self.overlay.as_ref().is_some_and(|o| o.error.is_some())
    }

    /// Whether the chart could not be fetched (so nothing of it was discovered either).
    pub fn not_fetched(&self) -> bool {
        self.chart_status == ChartStatus::Failed && self.images_error.is_some()
    }

    /// Whether the chart was fetched but its images could not all be discovered (helm did
    /// not render it, or a file of it could not be read).
    pub fn not_discovered(&self) -> bool {
        self.images_error.is_some() && self.chart_status != ChartStatus::Failed
    }

    /// Recount the image counters from `images`.
    pub fn recount(&mut self) {
        let count =
            |s: &[ImageStatus]| self.images.iter().filter(|i| s.contains(&i.status)).count();
        self.images_copied = count(&[ImageStatus::Copied, ImageStatus::WouldCopy]);
        self.images_skipped = count(&[ImageStatus::Skipped]);
        self.images_failed = count(&[ImageStatus::Failed]);
    }
}

/// One upstream (chart key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartResult {
    /// Upstream key.
    pub key: String,
    /// Chart name.
    pub chart: String,
    /// Per version.
    pub versions: Vec<VersionResult>,
    /// The upstream's version selector, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorReport>,
    /// The versions this run resolved for the upstream (exact and selected), oldest first
    /// when a selector took part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_versions: Vec<String>,
    /// Remarks about resolving versions (published entries that are not versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the upstream's versions could not be resolved (e.g. nothing matches); nothing
    /// of it was mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A version selector as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorReport {
    /// The constraint (Helm syntax).
    pub semver: String,
    /// Only the N highest matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<u32>,
    /// Whether prereleases may match.
    #[serde(default)]
    pub prereleases: bool,
    /// Versions or patterns never selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorReport {
    /// Per upstream, in config order.
    pub charts: Vec<ChartResult>,
    /// Chart artifacts pushed (dry run: that would be pushed).
    pub charts_pushed: usize,
    /// Chart artifacts already present.
    pub charts_skipped: usize,
    /// Chart versions whose chart failed.
    pub charts_failed: usize,
    /// Images copied, summed over chart versions (dry run: that would be copied).
    pub images_copied: usize,
    /// Images already present, summed over chart versions.
    pub images_skipped: usize,
    /// Images failed, summed over chart versions.
    pub images_failed: usize,
    /// Chart versions whose images could not be discovered.
    #[serde(default)]
    pub discovery_failed: usize,
    /// Chart versions whose discovery came from the cache (not rendered again).
    #[serde(default)]
    pub discovery_cached: usize,
    /// Distinct images across the run.
    #[serde(default)]
    pub unique_images: usize,
    /// Blob bytes sent to the target.
    #[serde(default)]
    pub bytes_copied: u64,
    /// Whether this was a dry run (nothing written).
    #[serde(default)]
    pub dry_run: bool,
    /// Wall time in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}

impl MirrorReport {
    /// Recompute the totals from the per-version results.
    pub fn recount(&mut self) {
        let versions: Vec<&VersionResult> = self.charts.iter().flat_map(|c| &c.versions).collect();
        let charts = |s: ChartStatus| versions.iter().filter(|v| v.chart_status == s).count();
        self.charts_pushed = charts(ChartStatus::Pushed) + charts(ChartStatus::WouldPush);
        self.charts_skipped = charts(ChartStatus::Skipped);
        self.charts_failed = charts(ChartStatus::Failed);
        self.images_copied = versions.iter().map(|v| v.images_copied).sum();
        self.images_skipped = versions.iter().map(|v| v.images_skipped).sum();
        self.images_failed = versions.iter().map(|v| v.images_failed).sum();
        self.discovery_failed = versions.iter().filter(|v| v.images_error.is_some()).count();
        self.discovery_cached = versions.iter().filter(|v| v.discovery_cached).count();
    }

    /// Whether any chart, discovery or image failed (exit code 1).
    pub fn has_failures(&self) -> bool {
        self.charts.iter().any(|c| c.error.is_some())
            || self
                .charts
                .iter()
                .flat_map(|c| &c.versions)
                .any(VersionResult::failed)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What `lazyoci images` reports: the images of each chart version, with provenance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesReport {
    /// Per upstream, in config order.
    pub charts: Vec<ImagesChart>,
}

impl ImagesReport {
    /// Whether any chart version could not be fetched or fully discovered.
    pub fn has_failures(&self) -> bool {
        self.charts.iter().any(|c| c.error.is_some())
            || self
                .charts
                .iter()
                .flat_map(|c| &c.versions)
                .any(|v| v.error.is_some() || v.overlay.as_ref().is_some_and(|o| o.error.is_some()))
    }
}

/// One upstream in an [`ImagesReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesChart {
    /// Upstream key.
    pub key: String,
    /// Chart name.
    pub chart: String,
    /// Per version.
    pub versions: Vec<ImagesVersion>,
    /// Why the upstream's versions could not be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One chart version in an [`ImagesReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesVersion {
    /// Chart version.
    pub version: String,
    /// Images that would be mirrored, sorted.
    pub images: Vec<ListedImage>,
    /// Images found but dropped by `images.exclude`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ListedImage>,
    /// Discovery remarks (e.g. sources that disagree).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the chart could not be fetched or a source could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The values overlay (`--overlays`), when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayResult>,
    /// The registry host that served the chart, when `sourceMirrors` lists mirrors for its
    /// (OCI) source host: a mirror's host, or the original one after the mirrors failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// One image and where it was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedImage {
    /// Normalised source reference.
    pub source: String,
    /// Where it would be mirrored to.
    pub target: String,
    /// Where it was found.
    pub provenance: Vec<Provenance>,
}
