//! `lazyoci.json`: what a bundle carries, in lazyoci's terms. Pure.
//!
//! Charts and images come from the run's report; names are relative to the target
//! (`<repository>:<tag>`), as in `index.json`'s ref names. `blobs` lists every blob the
//! bundle holds (manifests included); `since` lists what the bundles it was made `--since`
//! carried, so that a delta can be checked and pushed knowing what it relies on.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::BUNDLE_HOST;
use crate::result::{AttachedKind, ChartStatus, ImageStatus, MirrorReport, Provenance};

/// The format written in `format`.
pub const FORMAT: &str = "lazyoci-bundle/v1";

/// The contents of `lazyoci.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// `lazyoci <version>`.
    pub created_by: String,
    /// Chart artifacts carried.
    #[serde(default)]
    pub charts: Vec<ChartEntry>,
    /// Images carried.
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    /// Every blob the bundle holds (manifests included).
    #[serde(default)]
    pub blobs: BTreeSet<String>,
    /// Every ref name the bundle tags, and its digest.
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
    /// What the bundles this one was made `--since` carried (all of them, transitively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
}

/// What a target that received the base bundles holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Since {
    /// Blobs.
    #[serde(default)]
    pub blobs: BTreeSet<String>,
    /// Ref names and their digests.
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
}

/// A chart version carried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChartEntry {
    /// The upstream's key in the config.
    pub key: String,
    /// Chart name.
    pub chart: String,
    /// Chart version.
    pub version: String,
    /// Repository relative to the target (charts prefix included).
    pub repository: String,
    /// Tag (the version, `+` as `_`).
    pub tag: String,
    /// Manifest digest.
    pub digest: String,
}

/// An image carried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// Where it came from.
    pub source: String,
    /// Repository relative to the target.
    pub repository: String,
    /// Tag, unless referenced by digest only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Manifest digest.
    pub digest: String,
    /// The chart versions using it, as `key:version`.
    #[serde(default)]
    pub used_by: Vec<String>,
    /// Where discovery found it.
    #[serde(default)]
    pub provenance: Vec<Provenance>,
    /// Signatures, attestations and referrers carried with it.
    #[serde(default)]
    pub attached: Vec<AttachedEntry>,
}

/// An artifact attached to an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedEntry {
    /// What it is.
    pub kind: AttachedKind,
    /// Its tag, unless stored by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Manifest digest.
    pub digest: String,
}

/// `host/repo:tag` or `host/repo@digest` under [`BUNDLE_HOST`] → the repository.
fn relative(target: &str) -> Option<&str> {
    let rest = target.strip_prefix(BUNDLE_HOST)?.strip_prefix('/')?;
    let rest = rest.split('@').next().unwrap_or(rest);
    Some(super::split_ref_name(rest).map_or(rest, |(r, _)| r))
}

impl BundleMeta {
    /// What a bundle written by `report` carries: charts pushed and images copied into it
    /// (what was skipped is in its base).
    pub fn from_report(report: &MirrorReport) -> BundleMeta {
        let mut meta = BundleMeta {
            format: FORMAT.into(),
            created_by: concat!("lazyoci ", env!("CARGO_PKG_VERSION")).into(),
            ..Default::default()
        };
        let mut images: BTreeMap<String, ImageEntry> = BTreeMap::new();
        for c in &report.charts {
            for v in &c.versions {
                if v.chart_status == ChartStatus::Pushed
                    && let (Some(r), Some(d)) = (&v.chart_ref, &v.chart_digest)
                    && let Some(rest) = r
                        .strip_prefix("oci://")
                        .and_then(|r| r.strip_prefix(BUNDLE_HOST))
                        .and_then(|r| r.strip_prefix('/'))
                    && let Some((repo, tag)) = super::split_ref_name(rest)
                {
                    meta.charts.push(ChartEntry {
                        key: c.key.clone(),
                        chart: c.chart.clone(),
                        version: v.version.clone(),
                        repository: repo.into(),
                        tag: tag.into(),
                        digest: d.clone(),
                    });
                }
                for i in v.images.iter().filter(|i| i.status == ImageStatus::Copied) {
                    let (Some(repo), Some(digest)) = (relative(&i.target), &i.digest) else {
                        continue;
                    };
                    let tag = i
                        .target
                        .rsplit_once('/')
                        .and_then(|(_, last)| last.split('@').next())
                        .and_then(|last| last.split_once(':'))
                        .map(|(_, t)| t.to_string());
                    let e = images
                        .entry(i.target.clone())
                        .or_insert_with(|| ImageEntry {
                            source: i.source.clone(),
                            repository: repo.into(),
                            tag,
                            digest: digest.clone(),
                            used_by: Vec::new(),
                            provenance: Vec::new(),
                            attached: i
                                .attached
                                .iter()
                                .filter(|a| a.status == ImageStatus::Copied)
                                .map(|a| AttachedEntry {
                                    kind: a.kind,
                                    tag: a
                                        .target
                                        .rsplit_once('/')
                                        .and_then(|(_, l)| l.split_once(':'))
                                        .filter(|_| !a.target.contains('@'))
                                        .map(|(_, t)| t.to_string()),
                                    digest: a.digest.clone(),
                                })
                                .collect(),
                        });
                    e.used_by.push(format!("{}:{}", c.key, v.version));
                    e.provenance.extend(i.provenance.iter().cloned());
                }
            }
        }
        meta.images = images.into_values().collect();
        meta
    }

    /// What a target holds once this bundle and its bases are pushed: the base of a delta
    /// made `--since` this bundle.
    pub fn as_base(&self) -> Since {
        let mut s = self.since.clone().unwrap_or_default();
        s.blobs.extend(self.blobs.iter().cloned());
        s.refs
            .extend(self.refs.iter().map(|(k, v)| (k.clone(), v.clone())));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_drop_the_bundle_host() {
        assert_eq!(relative(&format!("{BUNDLE_HOST}/a/b:1")), Some("a/b"));
        assert_eq!(
            relative(&format!("{BUNDLE_HOST}/a/b@sha256:00")),
            Some("a/b")
        );
        assert_eq!(relative("other.io/a:1"), None);
    }

    #[test]
    fn a_base_holds_its_own_blobs_and_its_bases() {
        let mut m = BundleMeta {
            blobs: ["b".to_string()].into(),
            refs: [("x:1".to_string(), "d1".to_string())].into(),
            since: Some(Since {
                blobs: ["a".to_string()].into(),
                refs: [("y:1".to_string(), "d0".to_string())].into(),
            }),
            ..Default::default()
        };
        let base = m.as_base();
        assert_eq!(base.blobs.len(), 2);
        assert_eq!(base.refs.len(), 2);
        m.since = None;
        assert_eq!(m.as_base().blobs.len(), 1);
    }
}
