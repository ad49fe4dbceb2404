//! Finding the images a chart version uses, from every source there is, each image tagged
//! with where it was found:
//! - [`manifests`]: the objects `helm template` renders ([`render`] runs helm);
//! - [`annotations`]: Chart.yaml image annotations and `Images.lock` files;
//! - [`values`]: a scan of the values, including sections disabled by default;
//! - user extras from the config.
//!
//! [`tree`] reads the chart archive (and its subcharts) once for all of them. Everything
//! here but [`render`] is pure.

pub mod annotations;
pub mod manifests;
pub mod render;
pub mod tree;
pub mod values;

use std::collections::BTreeMap;

use crate::reference::ImageRef;
use crate::result::Provenance;
use crate::spec::{DiscoverySource, ImagesSpec};

pub use render::{RenderError, RenderInputs, RenderOptions, Renderer};

/// A raw image string and where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The string as written.
    pub raw: String,
    /// Where: template and field, values key, annotation entry.
    pub at: String,
}

/// One image and every place it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveredImage {
    /// Normalised reference.
    pub image: ImageRef,
    /// Where it was found, sources in [`DiscoverySource::ALL`] order.
    pub provenance: Vec<Provenance>,
}

impl DiscoveredImage {
    /// Whether `source` found it.
    pub fn found_by(&self, source: DiscoverySource) -> bool {
        self.provenance.iter().any(|p| p.from == source)
    }
}

/// The images of one chart version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discovery {
    /// Images to mirror: unique, sorted.
    pub images: Vec<DiscoveredImage>,
    /// Images found but excluded by `images.exclude`.
    pub excluded: Vec<DiscoveredImage>,
    /// Remarks: unparseable references, sources that disagree.
    pub warnings: Vec<String>,
}

/// Which sources count, the extras and the exclusions, for one upstream.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Sources that count.
    pub sources: Vec<DiscoverySource>,
    /// `images.extra`, with where each was configured.
    pub extra: Vec<Found>,
    /// `images.exclude`.
    pub exclude: Vec<regex::Regex>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            sources: DiscoverySource::ALL.to_vec(),
            extra: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl Selection {
    /// The selection for an upstream: its `sources` replace the global ones; extras and
    /// exclusions add up. Fails on a bad regular expression (specs are validated first,
    /// so only an unvalidated spec gets here with one).
    pub fn new(global: Option<&ImagesSpec>, upstream: Option<&ImagesSpec>) -> Result<Self, String> {
        let mut sel = Selection::default();
        if let Some(s) = upstream
            .and_then(|u| u.sources.clone())
            .or_else(|| global.and_then(|g| g.sources.clone()))
        {
            sel.sources = s;
        }
        for (spec, label) in [
            (global, "images.extra"),
            (upstream, "upstream images.extra"),
        ] {
            let Some(spec) = spec else { continue };
            sel.extra.extend(spec.extra.iter().map(|e| Found {
                raw: e.clone(),
                at: label.to_string(),
            }));
            for x in &spec.exclude {
                sel.exclude
                    .push(regex::Regex::new(x).map_err(|e| format!("images.exclude {x:?}: {e}"))?);
            }
        }
        Ok(sel)
    }

    /// Whether `source` counts.
    pub fn counts(&self, source: DiscoverySource) -> bool {
        self.sources.contains(&source)
    }

    /// Only these sources (and nothing else) count.
    pub fn only(sources: &[DiscoverySource]) -> Self {
        Selection {
            sources: sources.to_vec(),
            ..Default::default()
        }
    }
}

/// What each source found for one chart version (`None`: not run, or it failed).
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// From the rendered manifests.
    pub rendered: Option<Vec<Found>>,
    /// From Chart.yaml annotations.
    pub annotations: Option<Vec<Found>>,
    /// From Images.lock files.
    pub lockfile: Option<Vec<Found>>,
    /// From the values scan.
    pub values: Option<Vec<Found>>,
}

/// Places kept per image and source; a chart using one image in 200 containers does not
/// need 200 lines of provenance.
const MAX_PLACES: usize = 8;

/// Union the findings the selection counts, apply extras and exclusions, and warn where
/// the sources disagree.
pub fn assemble(findings: Findings, selection: &Selection, mut warnings: Vec<String>) -> Discovery {
    let mut by_ref: BTreeMap<String, DiscoveredImage> = BTreeMap::new();
    let sets = [
        (DiscoverySource::Rendered, findings.rendered),
        (DiscoverySource::Annotations, findings.annotations),
        (DiscoverySource::Lockfile, findings.lockfile),
        (DiscoverySource::Values, findings.values),
        (DiscoverySource::Extra, Some(selection.extra.clone())),
    ];
    let produced_ran = sets.iter().any(|(s, f)| {
        matches!(s, DiscoverySource::Rendered | DiscoverySource::Values)
            && f.is_some()
            && selection.counts(*s)
    });
    // Values images written without a registry, whose registry the templates may add.
    let mut implicit: std::collections::BTreeSet<String> = Default::default();
    for (source, found) in sets {
        let Some(found) = found.filter(|_| selection.counts(source)) else {
            continue;
        };
        for f in found {
            if source == DiscoverySource::Values
                && !names_registry(&f.raw)
                && let Ok(r) = ImageRef::parse(&f.raw)
            {
                implicit.insert(r.to_string());
            }
            let image = match ImageRef::parse(&f.raw) {
                Ok(r) => r,
                Err(e) => {
                    warnings.push(format!("{} ({source}): {e}", f.at));
                    continue;
                }
            };
            let entry = by_ref
                .entry(image.to_string())
                .or_insert_with(|| DiscoveredImage {
                    image,
                    provenance: Vec::new(),
                });
            let places = entry.provenance.iter().filter(|p| p.from == source).count();
            if places < MAX_PLACES
                && !entry
                    .provenance
                    .iter()
                    .any(|p| p.from == source && p.at == f.at)
            {
                entry.provenance.push(Provenance {
                    from: source,
                    at: f.at,
                });
            }
        }
    }
    fold_implicit_registries(&mut by_ref, &implicit);
    let all: Vec<DiscoveredImage> = by_ref
        .into_values()
        .map(|mut d| {
            d.provenance.sort_by_key(|p| p.from);
            d
        })
        .collect();
    let all = drop_guessed_tags(all);
    let all = if produced_ran {
        let (kept, w) = disagreements(all);
        warnings.extend(w);
        kept
    } else {
        all
    };
    let (excluded, images): (Vec<_>, Vec<_>) = all.into_iter().partition(|d| {
        let s = d.image.to_string();
        selection.exclude.iter().any(|x| x.is_match(&s))
    });
    warnings.sort();
    warnings.dedup();
    Discovery {
        images,
        excluded,
        warnings,
    }
}

/// Whether a reference starts with a registry host (`quay.io/x`, `localhost:5000/x`).
pub(crate) fn names_registry(raw: &str) -> bool {
    match raw.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

/// A values image written without a registry (`repository: team/api`) that the render
/// shows under a registry set elsewhere (`{{ .Values.registry }}/team/api:1.0`) is that
/// rendered image, not a Docker Hub one: its provenance moves there.
fn fold_implicit_registries(
    by_ref: &mut BTreeMap<String, DiscoveredImage>,
    implicit: &std::collections::BTreeSet<String>,
) {
    for key in implicit {
        let Some(entry) = by_ref.get(key) else {
            continue;
        };
        if entry
            .provenance
            .iter()
            .any(|p| p.from != DiscoverySource::Values)
        {
            continue;
        }
        let img = entry.image.clone();
        let target = by_ref.iter().find_map(|(k, d)| {
            (k != key
                && d.found_by(DiscoverySource::Rendered)
                && d.image.repository == img.repository
                && d.image.tag == img.tag
                && d.image.digest == img.digest)
                .then(|| k.clone())
        });
        if let Some(target) = target
            && let Some(moved) = by_ref.remove(key)
            && let Some(t) = by_ref.get_mut(&target)
        {
            t.provenance.extend(moved.provenance);
        }
    }
}

/// Values images whose tag is only the appVersion guess give way to any other source's
/// image of the same repository (the template default or the declared tag is right).
fn drop_guessed_tags(all: Vec<DiscoveredImage>) -> Vec<DiscoveredImage> {
    let guessed_only = |d: &DiscoveredImage| {
        d.provenance
            .iter()
            .all(|p| p.from == DiscoverySource::Values && p.at.ends_with(values::APP_VERSION_TAG))
    };
    let keep: Vec<bool> = all
        .iter()
        .map(|d| {
            !guessed_only(d)
                || !all.iter().any(|o| {
                    !guessed_only(o)
                        && o.image.registry == d.image.registry
                        && o.image.repository == d.image.repository
                })
        })
        .collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|(d, k)| k.then_some(d))
        .collect()
}

/// Images the chart declares (annotations, Images.lock) that neither the render nor the
/// values produce are kept, with a warning: the chart's authors list them because the
/// chart needs them (operands started at runtime, the other editions of the image it
/// renders: `2026.4.0-developer` beside the rendered `2026.4.0-community`). Only a
/// declaration of another *version* of a repository the chart renders is dropped, with a
/// warning: that is a stale annotation (`vault:1.15.5` declared, `1.15.6` installed). A
/// declared image the source does not have is dropped with a warning by the mirror run.
fn disagreements(all: Vec<DiscoveredImage>) -> (Vec<DiscoveredImage>, Vec<String>) {
    let produced = |d: &DiscoveredImage| {
        d.found_by(DiscoverySource::Rendered) || d.found_by(DiscoverySource::Values)
    };
    let mut out = Vec::new();
    let mut stale = std::collections::BTreeSet::new();
    for d in &all {
        let declared = d.provenance.iter().find(|p| {
            matches!(
                p.from,
                DiscoverySource::Annotations | DiscoverySource::Lockfile
            )
        });
        let Some(declared) = declared else { continue };
        if produced(d) {
            continue;
        }
        let same_repo: Vec<&DiscoveredImage> = all
            .iter()
            .filter(|o| {
                produced(o)
                    && o.image.registry == d.image.registry
                    && o.image.repository == d.image.repository
            })
            .collect();
        let Some(o) = same_repo.first() else {
            out.push(format!(
                "{} is declared in {} but neither the rendered manifests nor the values use it; it is mirrored anyway (images.exclude drops it if it is stale)",
                d.image, declared.at
            ));
            continue;
        };
        let used = o
            .provenance
            .iter()
            .find(|p| matches!(p.from, DiscoverySource::Rendered | DiscoverySource::Values))
            .map(|p| p.at.as_str())
            .unwrap_or_default();
        let edition = same_repo
            .iter()
            .any(|o| same_version(d.image.tag.as_deref(), o.image.tag.as_deref()));
        let (what, mirroring) = if edition {
            ("another edition of", "both".to_string())
        } else {
            stale.insert(d.image.to_string());
            ("a stale entry for", o.image.reference().to_string())
        };
        out.push(format!(
            "sources disagree on {}/{}: {} declares {}, {what} the {} that {} uses; mirroring {mirroring} (images.extra or images.exclude changes that)",
            d.image.registry,
            d.image.repository,
            declared.at,
            d.image.reference(),
            o.image.reference(),
            used,
        ));
    }
    let kept = all
        .into_iter()
        .filter(|d| !stale.contains(&d.image.to_string()))
        .collect();
    (kept, out)
}

/// Whether two tags name the same version in different editions or variants: the same
/// text up to the first `-` (`2026.4.0-developer`, `2026.4.0-community`; `1.0`, `1.0-fips`).
fn same_version(a: Option<&str>, b: Option<&str>) -> bool {
    let core = |t: &str| t.split('-').next().unwrap_or_default().to_string();
    match (a, b) {
        (Some(a), Some(b)) => a != b && !core(a).is_empty() && core(a) == core(b),
        _ => false,
    }
}

/// Whether only the chart's declarations (annotations, Images.lock) name this image.
pub fn declared_only(d: &DiscoveredImage) -> bool {
    d.provenance.iter().all(|p| {
        matches!(
            p.from,
            DiscoverySource::Annotations | DiscoverySource::Lockfile
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(raw: &str, at: &str) -> Found {
        Found {
            raw: raw.into(),
            at: at.into(),
        }
    }

    fn findings() -> Findings {
        Findings {
            rendered: Some(vec![
                f("nginx:1.25", "t/deploy.yaml: Deployment/web c[0].image"),
                f("nginx:1.25", "t/job.yaml: Job/x c[0].image"),
                f("{{ bad }}", "t/bad.yaml: Pod/x image"),
            ]),
            annotations: Some(vec![
                f(
                    "docker.io/library/nginx:1.25",
                    "Chart.yaml of app: annotation images[0]",
                ),
                f(
                    "quay.io/x/exporter:1.0",
                    "Chart.yaml of app: annotation images[1]",
                ),
                f(
                    "ghcr.io/o/op:2.0",
                    "Chart.yaml of app: annotation images[2]",
                ),
            ]),
            lockfile: None,
            values: Some(vec![
                f("quay.io/x/exporter:1.1", "values of app: metrics.image"),
                f("busybox:1.36", "values of app: init.image"),
            ]),
        }
    }

    #[test]
    fn unions_sources_with_provenance_and_warns_on_disagreement() {
        let mut sel = Selection::default();
        sel.extra
            .push(f("registry.k8s.io/pause:3.10", "images.extra"));
        sel.exclude.push(regex::Regex::new("busybox").unwrap());
        let d = assemble(findings(), &sel, Vec::new());
        let names: Vec<String> = d.images.iter().map(|i| i.image.to_string()).collect();
        assert_eq!(
            names,
            [
                "docker.io/library/nginx:1.25",
                "ghcr.io/o/op:2.0",
                "quay.io/x/exporter:1.1",
                "registry.k8s.io/pause:3.10",
            ]
        );
        assert_eq!(d.excluded.len(), 1);
        let nginx = &d.images[0];
        let from: Vec<DiscoverySource> = nginx.provenance.iter().map(|p| p.from).collect();
        assert_eq!(
            from,
            [
                DiscoverySource::Rendered,
                DiscoverySource::Rendered,
                DiscoverySource::Annotations
            ]
        );
        assert_eq!(d.warnings.len(), 3, "{:#?}", d.warnings);
        assert!(
            d.warnings
                .iter()
                .any(|w| w.starts_with("sources disagree on quay.io/x/exporter")
                    && w.contains("declares 1.0")
                    && w.contains("a stale entry for the 1.1 that")
                    && w.contains("mirroring 1.1"))
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.starts_with("ghcr.io/o/op:2.0 is declared"))
        );
        assert!(d.warnings.iter().any(|w| w.contains("{{ bad }}")));
    }

    #[test]
    fn declared_editions_of_the_rendered_version_are_kept() {
        let found = Findings {
            rendered: Some(vec![f(
                "sonarqube:2026.4.0-community",
                "t/s.yaml: StatefulSet/s image",
            )]),
            annotations: Some(vec![
                f(
                    "sonarqube:2026.4.0-developer",
                    "Chart.yaml of s: annotation images[0]",
                ),
                f(
                    "sonarqube:2026.4.0-enterprise",
                    "Chart.yaml of s: annotation images[1]",
                ),
                f(
                    "sonarqube:2025.1.0-community",
                    "Chart.yaml of s: annotation images[2]",
                ),
            ]),
            ..Default::default()
        };
        let d = assemble(found, &Selection::default(), Vec::new());
        let tags: Vec<&str> = d
            .images
            .iter()
            .filter_map(|i| i.image.tag.as_deref())
            .collect();
        assert_eq!(
            tags,
            [
                "2026.4.0-community",
                "2026.4.0-developer",
                "2026.4.0-enterprise"
            ],
            "the other version is stale: {:#?}",
            d.warnings
        );
        assert_eq!(d.warnings.len(), 3, "{:#?}", d.warnings);
        assert!(
            d.warnings
                .iter()
                .filter(|w| w.contains("another edition of"))
                .count()
                == 2
        );
    }

    #[test]
    fn a_values_image_without_registry_joins_the_rendered_one() {
        let found = Findings {
            rendered: Some(vec![f(
                "127.0.0.1:5000/team/api:1.0",
                "t/d.yaml: Deployment/a image",
            )]),
            values: Some(vec![
                f("team/api:1.0", "values of app: image"),
                f("team/other:2", "values of app: other.image"),
            ]),
            ..Default::default()
        };
        let d = assemble(found, &Selection::default(), Vec::new());
        let names: Vec<String> = d.images.iter().map(|i| i.image.to_string()).collect();
        assert_eq!(
            names,
            ["127.0.0.1:5000/team/api:1.0", "docker.io/team/other:2"]
        );
        assert_eq!(d.images[0].provenance.len(), 2);
        assert!(d.images[0].found_by(DiscoverySource::Values));
    }

    #[test]
    fn rendered_only_ignores_the_rest_and_does_not_warn_about_it() {
        let d = assemble(
            findings(),
            &Selection::only(&[DiscoverySource::Rendered]),
            Vec::new(),
        );
        assert_eq!(d.images.len(), 1);
        assert_eq!(d.images[0].provenance.len(), 2);
        assert_eq!(
            d.warnings.len(),
            1,
            "only the bad reference: {:?}",
            d.warnings
        );
    }

    #[test]
    fn selection_merges_global_and_upstream() {
        let global = ImagesSpec {
            sources: Some(vec![DiscoverySource::Rendered]),
            extra: vec!["a:1".into()],
            exclude: vec!["x".into()],
        };
        let up = ImagesSpec {
            sources: Some(vec![DiscoverySource::Values, DiscoverySource::Rendered]),
            extra: vec!["b:1".into()],
            exclude: vec![],
        };
        let s = Selection::new(Some(&global), Some(&up)).unwrap();
        assert_eq!(
            s.sources,
            [DiscoverySource::Values, DiscoverySource::Rendered]
        );
        assert_eq!(s.extra.len(), 2);
        assert_eq!(s.exclude.len(), 1);
        let s = Selection::new(Some(&global), None).unwrap();
        assert_eq!(s.sources, [DiscoverySource::Rendered]);
        assert!(
            Selection::new(
                None,
                Some(&ImagesSpec {
                    exclude: vec!["(".into()],
                    ..Default::default()
                })
            )
            .is_err()
        );
    }
}
