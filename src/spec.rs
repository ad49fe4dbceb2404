//! The one spec type shared by mirror.yaml and the ChartMirror resource. Pure.
//!
//! mirror.yaml (kebab-case, upstreams as a map) and a ChartMirror manifest (camelCase,
//! upstreams as a list keyed by `name`) both convert into [`ChartMirrorSpec`]; the
//! pipeline only ever sees this type. [`ChartMirrorSpec::problems`] holds the semantic
//! checks both forms share, so a spec is judged the same wherever it came from.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod access;
mod checks;
mod images;
pub use access::{AUTH_KEYS, AuthSpec};
pub use checks::{
    OciLocation, TargetUrl, check_repo_path, check_version, parse_duration, version_tag,
};
use checks::{check_repo_url, valid_chart_name};
pub use images::{DiscoverySource, ImagesSpec, render_problems};

/// What to mirror, and where to. The spec of the `ChartMirror` resource (group
/// `lazyoci.io`, version `v1alpha1`) and the internal form of mirror.yaml.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "lazyoci.io",
    version = "v1alpha1",
    kind = "ChartMirror",
    namespaced,
    status = "crate::crd::ChartMirrorStatus",
    shortname = "chmir",
    annotation("kustomize.toolkit.fluxcd.io/substitute", "disabled"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Charts","type":"integer","jsonPath":".status.summary.chartVersions.total"}"#,
    printcolumn = r#"{"name":"Images","type":"integer","jsonPath":".status.summary.images.unique"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!(has(self.chartsOnly) && has(self.imagesOnly) && self.chartsOnly && self.imagesOnly)").message("chartsOnly and imagesOnly cannot both be true"))]
#[serde(rename_all = "camelCase")]
pub struct ChartMirrorSpec {
    /// The registry that receives charts and images.
    pub target: TargetSpec,
    /// Where charts come from, one entry per chart, keyed by `name`.
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub upstreams: Vec<UpstreamSpec>,
    /// How often the operator re-runs the mirror (Go duration such as `1h`, `30m`). Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// Stop scheduling runs while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// Timeout for each remote operation (Go duration). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub timeout: Option<String>,
    /// Image copies in flight across the whole run. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,
    /// Mirror chart artifacts only, no images.
    #[serde(default, skip_serializing_if = "is_false")]
    pub charts_only: bool,
    /// Mirror images only, no chart artifacts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub images_only: bool,
    /// Image discovery for every upstream: which sources count, extra images, exclusions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesSpec>,
    /// Image copies in flight per source registry host, within `concurrency` (e.g. to stay
    /// within a public registry's rate limits). Default: no per-host limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub per_host_concurrency: Option<u32>,
    /// When a source tag now points elsewhere than the target tag mirrored before:
    /// `overwrite` (copy the new content, the default), `skip` (keep the target's) or `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_moved_tag: Option<crate::result::MovedTag>,
    /// Retries after the first attempt of each registry request and of each blob transfer,
    /// for transient failures (timeouts, connection resets, HTTP 408/429/5xx). Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub retries: Option<u32>,
    /// Copy each image's cosign signatures, attestations and SBOMs (`sha256-<digest>.sig`,
    /// `.att`, `.sbom` tags) and its OCI referrers along with it. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<bool>,
    /// Registry mirrors for image and OCI chart sources (charts, and the tag lists
    /// selectors read), as containerd's `hosts.toml` and `registries.conf` have them: a
    /// source host → mirrors (`host[:port][/path]`) tried in order, e.g.
    /// `docker.io: [artifactory.corp.example/dockerhub-remote]`. Target names do not
    /// change: an image is remapped from its original reference.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_mirrors: std::collections::BTreeMap<String, Vec<String>>,
    /// Never contact a host that has mirrors; fail the image (or chart) when no mirror
    /// serves it.
    /// Default false: after the mirrors, the original host is tried.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mirrors_only: bool,
}

/// The most retries `retries` / `--retries` accept.
pub const MAX_RETRIES: u32 = 20;

/// The destination registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Registry host and optional path, e.g. `registry.example.com/ns` (an `oci://` prefix is accepted).
    #[schemars(regex(pattern = r"^(oci://)?[A-Za-z0-9.\[\]:-]+(/[a-z0-9._-]+)*/?$"))]
    pub url: String,
    /// Allow plain HTTP to the target (and only to the target).
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Path segment between the URL and chart names; applies to charts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charts_prefix: Option<String>,
    /// Secret of type `kubernetes.io/dockerconfigjson` with credentials for the target (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Secret holding `ca.crt` (and optionally `tls.crt`/`tls.key`) for the target (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
}

/// One upstream chart.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("self.type != 'repo' || (has(self.repo) && self.repo.matches('^https?://'))").message("type repo needs repo: an http(s):// Helm repository URL"))]
#[x_kube(validation = Rule::new("self.type != 'oci' || (has(self.registry) && self.registry.startsWith('oci://'))").message("type oci needs registry: oci://host/path"))]
#[x_kube(validation = Rule::new("self.type != 'local' || has(self.path)").message("type local needs path"))]
#[x_kube(validation = Rule::new("[has(self.repo), has(self.registry), has(self.path)].filter(x, x).size() <= 1").message("set only the location field of the chosen type (repo, registry or path)"))]
#[x_kube(validation = Rule::new("has(self.semver) || (has(self.versions) && size(self.versions) > 0)").message("list versions, or give semver: a range of versions to follow (or both)"))]
#[serde(rename_all = "camelCase")]
pub struct UpstreamSpec {
    /// Key of this upstream (the map key in mirror.yaml).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Source type.
    #[serde(rename = "type")]
    pub source_type: SourceType,
    /// Helm repository URL (`type: repo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// OCI registry URL, `oci://host/path` (`type: oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Chart directory (`type: local`); relative paths resolve against the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Chart name as published upstream.
    #[schemars(length(min = 1))]
    pub chart: String,
    /// Exact chart versions to mirror. Optional when `semver` is given; the union of both
    /// is mirrored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Follow every published version matching this constraint, in Helm's syntax
    /// (`>=0.28.0 <1.0.0`, `^1.2`, `~0.3`, `1.x`, `1.2 - 1.4`, `^1 || ^2`). Re-resolved on
    /// every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub semver: Option<String>,
    /// Only the N highest versions matching `semver` (default: every match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub latest: Option<u32>,
    /// Let `semver` match prereleases (default false, as Helm: a prerelease matches only a
    /// range that names one).
    #[serde(default, skip_serializing_if = "is_false")]
    pub prereleases: bool,
    /// Versions never selected by `semver`: exact versions, or regular expressions searched
    /// in the version string (`^0\\.29\\.0-`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Secret with credentials for this upstream (operator): for `type: repo`, Flux's
    /// HelmRepository format (`username` and `password`, or `bearerToken`; optionally
    /// `tls.crt`, `tls.key`, `ca.crt`); for `type: oci`, a `kubernetes.io/dockerconfigjson`
    /// Secret or `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Secret with `ca.crt` and/or `tls.crt` + `tls.key` (a client certificate) for this
    /// upstream only (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Credentials and TLS files from the environment or files (mirror.yaml only; never part
    /// of the ChartMirror resource, whose `secretRef` does this job).
    /// (Never deserialized from a ChartMirror, so absent from its schema.)
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub auth: Option<AuthSpec>,
    /// Values for rendering (like a values.yaml), merged over `valuesFiles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "images::values_schema")]
    pub values: Option<serde_json::Value>,
    /// Values files for rendering, applied in order: a name inside the chart
    /// (`values-production.yaml`), or, in mirror.yaml, a path starting with `./`, `../` or
    /// `/` (relative to the config file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// Kubernetes version to render for (`--kube-version`). Default 1.34.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// API versions the render may assume (`--api-versions`), e.g. `monitoring.coreos.com/v1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// Image discovery for this upstream; `sources` replaces the global list, `extra` and
    /// `exclude` add to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesSpec>,
}

/// Where an upstream chart comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// A classic Helm repository serving `index.yaml`.
    #[default]
    Repo,
    /// An OCI registry holding chart artifacts.
    Oci,
    /// A chart directory on the local filesystem.
    Local,
}

impl SourceType {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Repo => "repo",
            SourceType::Oci => "oci",
            SourceType::Local => "local",
        }
    }
}

/// A reference to a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the Secret.
    pub name: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Which field of the spec a semantic problem is about; callers turn it into a key path
/// in their own naming (`upstreams.vault.repo` or `spec.upstreams[0].repo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A field of `target` (camelCase name).
    Target(&'static str),
    /// A field of the upstream at this index (camelCase name).
    Upstream(usize, &'static str),
    /// A top-level spec field (camelCase name).
    Spec(&'static str),
    /// A field of `images`: the global one (`None`) or an upstream's.
    Images(Option<usize>, &'static str),
    /// A field of an upstream's `auth` (camelCase name).
    Auth(usize, &'static str),
}

/// A semantic problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// Where.
    pub field: Field,
    /// What was expected, in words.
    pub message: String,
}

/// The default image-copy concurrency.
pub const DEFAULT_CONCURRENCY: u32 = 4;

impl ChartMirrorSpec {
    /// Every semantic problem in the spec (empty when valid). Structural problems (wrong
    /// types, unknown keys) are the parser's job; this judges values.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let mut push = |field: Field, message: String| out.push(SpecProblem { field, message });
        if let Err(m) = TargetUrl::parse(&self.target.url) {
            push(Field::Target("url"), m);
        }
        if let Some(prefix) = &self.target.charts_prefix
            && !prefix.is_empty()
            && let Err(m) = check_repo_path(prefix)
        {
            push(Field::Target("chartsPrefix"), m);
        }
        if self.concurrency == Some(0) {
            push(Field::Spec("concurrency"), "must be at least 1".into());
        }
        match self.per_host_concurrency {
            Some(0) => push(
                Field::Spec("perHostConcurrency"),
                "must be at least 1".into(),
            ),
            Some(n) if n > 256 => push(
                Field::Spec("perHostConcurrency"),
                format!("must be at most 256, found {n}"),
            ),
            _ => {}
        }
        if let Some(n) = self.retries
            && n > MAX_RETRIES
        {
            push(
                Field::Spec("retries"),
                format!("must be at most {MAX_RETRIES}, found {n}"),
            );
        }
        if self.charts_only && self.images_only {
            push(
                Field::Spec("imagesOnly"),
                "chartsOnly and imagesOnly cannot both be true".into(),
            );
        }
        for (key, value) in [("interval", &self.interval), ("timeout", &self.timeout)] {
            if let Some(v) = value
                && parse_duration(v).is_none()
            {
                push(
                    Field::Spec(key),
                    format!("expected a duration such as 30s, 10m or 1h, found {v:?}"),
                );
            }
        }
        if let Some(images) = &self.images {
            for (f, m) in images.problems() {
                push(Field::Images(None, f), m);
            }
        }
        for m in access::mirror_problems(&self.source_mirrors) {
            push(Field::Spec("sourceMirrors"), m);
        }
        if self.mirrors_only && self.source_mirrors.is_empty() {
            push(
                Field::Spec("mirrorsOnly"),
                "mirrorsOnly needs sourceMirrors: the hosts whose images come only from mirrors"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            if u.name.is_empty() {
                push(Field::Upstream(i, "name"), "must not be empty".into());
            } else if !seen.insert(u.name.as_str()) {
                push(
                    Field::Upstream(i, "name"),
                    format!("duplicate upstream name {:?}", u.name),
                );
            }
            for p in u.problems() {
                push(Field::Upstream(i, p.0), p.1);
            }
            if let Some(images) = &u.images {
                for (f, m) in images.problems() {
                    push(Field::Images(Some(i), f), m);
                }
            }
            if let Some(auth) = &u.auth {
                if u.source_type == SourceType::Local {
                    push(
                        Field::Upstream(i, "auth"),
                        "not used with type=local (a local chart needs no credentials)".into(),
                    );
                }
                for (f, m) in auth.problems() {
                    push(Field::Auth(i, f), m);
                }
            }
        }
        out
    }
}

impl UpstreamSpec {
    /// Semantic problems of this upstream as (camelCase field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let ty = self.source_type.as_str();
        let (wanted, fields): (&str, [(&str, &Option<String>); 3]) = match self.source_type {
            SourceType::Repo => (
                "repo",
                [
                    ("repo", &self.repo),
                    ("registry", &self.registry),
                    ("path", &self.path),
                ],
            ),
            SourceType::Oci => (
                "registry",
                [
                    ("registry", &self.registry),
                    ("repo", &self.repo),
                    ("path", &self.path),
                ],
            ),
            SourceType::Local => (
                "path",
                [
                    ("path", &self.path),
                    ("repo", &self.repo),
                    ("registry", &self.registry),
                ],
            ),
        };
        let static_name = |n: &str| -> &'static str {
            match n {
                "repo" => "repo",
                "registry" => "registry",
                _ => "path",
            }
        };
        match fields[0].1.as_deref() {
            None | Some("") => out.push((static_name(wanted), format!("required for type={ty}"))),
            Some(v) => {
                let checked = match self.source_type {
                    SourceType::Repo => check_repo_url(v),
                    SourceType::Oci => OciLocation::parse(v).map(|_| ()),
                    SourceType::Local => Ok(()),
                };
                if let Err(m) = checked {
                    out.push((static_name(wanted), m));
                }
            }
        }
        for (name, value) in &fields[1..] {
            if value.is_some() {
                out.push((
                    static_name(name),
                    format!("not used with type={ty} (set {wanted} instead)"),
                ));
            }
        }
        if self.chart.is_empty() {
            out.push((
                "chart",
                "required: the chart name as published upstream".into(),
            ));
        } else if !valid_chart_name(&self.chart) {
            out.push((
                "chart",
                format!(
                    "{:?} is not a chart name: expected lowercase letters, digits, '-', '_' or '.', without '/'",
                    self.chart
                ),
            ));
        }
        if self.versions.is_empty() && self.semver.is_none() {
            out.push((
                "versions",
                "must list at least one version, or give semver: a range of versions to follow"
                    .into(),
            ));
        }
        if let Err(problems) = crate::select::Selector::of(self) {
            out.extend(problems);
        }
        out.extend(render_problems(
            self.values.as_ref(),
            &self.values_files,
            self.kube_version.as_deref(),
            &self.api_versions,
        ));
        let mut seen = std::collections::HashSet::new();
        for v in &self.versions {
            if let Err(m) = check_version(v) {
                out.push(("versions", m));
            } else if !seen.insert(v.as_str()) {
                out.push(("versions", format!("version {v:?} is listed twice")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
