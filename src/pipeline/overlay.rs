//! The overlay stage: after discovery, build the values overlay of a chart version, render
//! the chart again with it (same inputs as discovery, the overlay last) and check what the
//! render pulls, then write it where the request says.

use std::path::Path;

use super::discovery::{Discovered, RenderedWith};
use super::{Ctx, Unit};
use crate::discover::{DiscoveredImage, manifests};
use crate::overlay::{self, MAX_OVERLAY_BYTES, artifact, verify};
use crate::reference::ImageRef;
use crate::result::OverlayResult;

/// A finished overlay: the report entry and the file's bytes (`None` when none was made).
type Made = (OverlayResult, Option<String>);

/// The file name of a chart version's overlay.
pub fn file_name(chart: &str, version: &str) -> String {
    format!("{chart}-{version}.values.yaml")
}

impl Ctx<'_> {
    /// The overlay entry of a chart version whose discovery is `found`; with `chart`
    /// (its repository and manifest digest on the target), the overlay is also pushed next
    /// to it.
    pub(super) async fn overlay_of(
        &self,
        u: &Unit,
        found: &Discovered,
        chart: Option<(&str, &str)>,
    ) -> OverlayResult {
        let Some(with) = &found.rendered_with else {
            return OverlayResult {
                note: Some(
                    "no overlay: image discovery did not finish (see the error above)".into(),
                ),
                ..Default::default()
            };
        };
        let (mut result, text) = self.overlay(u, with, &found.discovery.images).await;
        if let (Some(text), Some((repo, digest))) = (&text, chart) {
            let name = file_name(&u.chart, &u.version);
            let pushed = match self.env.registries.client(&self.target.host).await {
                Ok(dst) => artifact::push(&dst, repo, digest, text, &name).await,
                Err(e) => Err(e),
            };
            match pushed {
                Ok(d) => result.artifact = Some(format!("{}/{repo}@{d}", self.target.host)),
                Err(e) => {
                    result.error = Some(format!(
                        "cannot push the overlay next to the chart ({}/{repo}): {e}",
                        self.target.host
                    ))
                }
            }
        }
        result.content = text;
        result
    }

    /// Build, verify and (with `--overlays DIR`) write the overlay of one chart version.
    pub(super) async fn overlay(
        &self,
        u: &Unit,
        with: &RenderedWith,
        images: &[DiscoveredImage],
    ) -> Made {
        let repo = super::plan::chart_repo(
            self.target,
            self.req.spec.target.charts_prefix.as_deref(),
            &u.chart,
        );
        let chart_ref = format!("oci://{}/{repo}", self.target.host);
        let mut result = OverlayResult::default();
        let mirrored: Vec<ImageRef> = images.iter().map(|d| d.image.clone()).collect();
        let built = overlay::build(&with.root, &with.overrides, &mirrored, self.target);
        if with.rendered {
            match self.verify_render(u, with, &built, &mirrored).await {
                Ok(v) => {
                    result.relocated = v.relocated.len();
                    result.not_relocatable = v.not_relocatable;
                    let mut unverified: Vec<String> = built
                        .moved
                        .iter()
                        .filter(|m| !v.relocated.contains(&m.target))
                        .map(|m| m.target.clone())
                        .collect();
                    unverified.sort();
                    unverified.dedup();
                    result.unverified = unverified;
                }
                Err(e) => {
                    result.error = Some(format!(
                        "the chart does not render with its overlay: {e}; the overlay was not written"
                    ));
                    return (result, None);
                }
            }
        } else {
            result.note = Some(
                "not verified: rendered discovery is off for this chart (images.sources), so no render shows what the overlay moves".into(),
            );
        }
        if built.is_empty() {
            result.note = Some(if images.is_empty() {
                "empty: the chart has no images".into()
            } else {
                "empty: no image of this chart is set by its values (its templates write them); use runtime-config for a node-level mirror instead".into()
            });
        }
        let text = match overlay::to_yaml(
            &built,
            &u.chart,
            &u.version,
            Some(&chart_ref),
            &result.not_relocatable,
        ) {
            Ok(t) => t,
            Err(e) => {
                result.error = Some(e);
                return (result, None);
            }
        };
        if text.len() > MAX_OVERLAY_BYTES {
            result.error = Some(format!(
                "the overlay is {} bytes, above the 1 MiB limit of a ConfigMap; it was not written (nor truncated): exclude images or split the chart's values",
                text.len()
            ));
            return (result, None);
        }
        if let Some(dir) = &self.req.overlay_dir {
            match write_file(dir, &file_name(&u.chart, &u.version), &text).await {
                Ok(p) => result.path = Some(p),
                Err(e) => result.error = Some(e),
            }
        }
        (result, Some(text))
    }

    async fn verify_render(
        &self,
        u: &Unit,
        with: &RenderedWith,
        built: &overlay::Overlay,
        mirrored: &[ImageRef],
    ) -> Result<verify::Verification, String> {
        let mut inputs = with.inputs.clone();
        let body = serde_json::to_vec(&serde_json::Value::Object(built.values.clone()))
            .map_err(|e| e.to_string())?;
        inputs.values.push(("the values overlay".into(), body));
        let text = self
            .env
            .renderer
            .render(&u.chart, &with.archive, &inputs)
            .await
            .map_err(|e| e.to_string())?;
        let found = manifests::located_images(&text)?;
        Ok(verify::verify(&found, self.target, mirrored))
    }
}

async fn write_file(dir: &Path, name: &str, text: &str) -> Result<String, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create --overlays {}: {e}", dir.display()))?;
    let path = dir.join(name);
    // Write beside and rename, so a reader never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}
