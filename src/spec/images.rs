//! The image-discovery part of the spec: rendering inputs, which discovery sources count,
//! extra images and exclusions. Pure.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an image reference was found.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverySource {
    /// The manifests `helm template` renders (a structural walk of every `image` field).
    Rendered,
    /// Chart.yaml annotations: `artifacthub.io/images`, `helm.sh/images`, Bitnami's `images`
    /// (the chart's and every subchart's).
    Annotations,
    /// An `Images.lock` file in the chart or a subchart.
    Lockfile,
    /// A scan of the values (values.yaml merged with the configured values), including
    /// sections that are disabled by default.
    Values,
    /// Images listed by the user in `images.extra`.
    Extra,
}

impl DiscoverySource {
    /// Every source, in the order they are reported.
    pub const ALL: [DiscoverySource; 5] = [
        DiscoverySource::Rendered,
        DiscoverySource::Annotations,
        DiscoverySource::Lockfile,
        DiscoverySource::Values,
        DiscoverySource::Extra,
    ];

    /// The name used in configs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoverySource::Rendered => "rendered",
            DiscoverySource::Annotations => "annotations",
            DiscoverySource::Lockfile => "lockfile",
            DiscoverySource::Values => "values",
            DiscoverySource::Extra => "extra",
        }
    }

    /// Parse a configured name.
    pub fn parse(s: &str) -> Option<DiscoverySource> {
        DiscoverySource::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DiscoverySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Image selection, globally (`images` at the top level) and per upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagesSpec {
    /// Discovery sources that count: any of rendered, annotations, lockfile, values, extra.
    /// Default: all of them. An upstream's list replaces the global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub sources: Option<Vec<DiscoverySource>>,
    /// Images to mirror besides the ones discovered (full references such as
    /// `quay.io/org/tool:v1`). Global and per-upstream lists add up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// Regular expressions matched against each image's normalised reference
    /// (`docker.io/library/busybox:1.36`); a match is not mirrored. Global and per-upstream
    /// lists add up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl ImagesSpec {
    /// Problems as (field under `images`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.sources
            && s.is_empty()
        {
            out.push((
                "sources",
                "must name at least one source (rendered, annotations, lockfile, values, extra); leave it out for all".into(),
            ));
        }
        for e in &self.extra {
            if let Err(err) = crate::reference::ImageRef::parse(e) {
                out.push(("extra", format!("{err}; expected e.g. quay.io/org/tool:v1")));
            }
        }
        for x in &self.exclude {
            if let Err(err) = regex::Regex::new(x) {
                let first = err.to_string();
                let last = first.lines().last().unwrap_or_default().trim();
                let detail = last.strip_prefix("error: ").unwrap_or(last).to_string();
                out.push((
                    "exclude",
                    format!("{x:?} is not a regular expression: {detail}"),
                ));
            }
        }
        out
    }
}

/// Problems with the rendering inputs of an upstream, as (field, message).
pub fn render_problems(
    values: Option<&serde_json::Value>,
    values_files: &[String],
    kube_version: Option<&str>,
    api_versions: &[String],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(v) = values
        && !v.is_object()
    {
        out.push((
            "values",
            "expected a mapping of chart values, like values.yaml".into(),
        ));
    }
    for f in values_files {
        if f.trim().is_empty() {
            out.push(("valuesFiles", "entries must not be empty".into()));
        }
    }
    if let Some(k) = kube_version
        && !valid_kube_version(k)
    {
        out.push((
            "kubeVersion",
            format!("{k:?} is not a Kubernetes version: expected e.g. 1.34 or v1.34.0"),
        ));
    }
    for a in api_versions {
        if !valid_api_version(a) {
            out.push((
                "apiVersions",
                format!(
                    "{a:?} is not an API version: expected group/version (monitoring.coreos.com/v1), group/version/Kind or v1"
                ),
            ));
        }
    }
    out
}

fn valid_kube_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let parts: Vec<&str> = v.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_api_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('/').collect();
    !v.is_empty()
        && parts.len() <= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        })
}

/// The JSON schema of free-form chart values: any mapping, kept as is.
pub fn values_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Chart values passed to helm template (like a values.yaml), merged over valuesFiles."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_rendering_inputs() {
        assert!(render_problems(None, &[], Some("1.34"), &["v1".into()]).is_empty());
        assert!(render_problems(None, &[], Some("v1.30.2"), &[]).is_empty());
        let p = render_problems(
            Some(&serde_json::json!([1])),
            &["".into()],
            Some("latest"),
            &[
                "monitoring.coreos.com/v1/Prometheus/x".into(),
                "a b/v1".into(),
            ],
        );
        let fields: Vec<&str> = p.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "values",
                "valuesFiles",
                "kubeVersion",
                "apiVersions",
                "apiVersions"
            ]
        );
    }

    #[test]
    fn checks_image_selection() {
        let ok = ImagesSpec {
            sources: Some(vec![DiscoverySource::Rendered]),
            extra: vec!["quay.io/x/y:v1".into()],
            exclude: vec!["^docker\\.io/library/busybox:".into()],
        };
        assert!(ok.problems().is_empty());
        let bad = ImagesSpec {
            sources: Some(vec![]),
            extra: vec!["Not An Image".into()],
            exclude: vec!["(unclosed".into()],
        };
        let p = bad.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].1.contains("not a regular expression"), "{p:?}");
        assert_eq!(
            DiscoverySource::parse("lockfile"),
            Some(DiscoverySource::Lockfile)
        );
        assert_eq!(DiscoverySource::parse("render"), None);
    }
}
