//! The one spec type shared by mirror.yaml and the ChartMirror resource. Pure.
//!
//! mirror.yaml (kebab-case, upstreams as a map) and a ChartMirror manifest (camelCase,
//! upstreams as a list keyed by `name`) both convert into [`ChartMirrorSpec`]; the
//! pipeline only ever sees this type. [`ChartMirrorSpec::problems`] holds the semantic
//! checks both forms share, so a spec is judged the same wherever it came from.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod images;
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
    /// Exact chart versions to mirror.
    #[schemars(length(min = 1))]
    pub versions: Vec<String>,
    /// Secret with credentials for this upstream (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
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
        if self.versions.is_empty() {
            out.push(("versions", "must list at least one version".into()));
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

/// A chart version as accepted in configs: it must be usable as an OCI tag once `+` is
/// written `_` (what Helm does).
pub fn check_version(v: &str) -> Result<(), String> {
    let tag = version_tag(v);
    let ok = !v.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a chart version: expected something like \"1.2.3\" (letters, digits, '.', '-', '+', '_')"
        ))
    }
}

/// The OCI tag Helm uses for a chart version (`+` is not allowed in tags).
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

fn valid_chart_name(name: &str) -> bool {
    name.len() <= 250
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn check_repo_url(v: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            // WHATWG parsing turns `https:///charts` into host `charts`; what was written
            // has no host.
            let after_scheme = v.split_once("://").map_or("", |(_, rest)| rest);
            if after_scheme.is_empty() || after_scheme.starts_with(['/', '\\', '?', '#']) {
                Err(format!(
                    "{v:?} has no host: expected http:// or https://host/path"
                ))
            } else if u.port() == Some(0) {
                Err(format!("{v:?}: the port must be a number from 1 to 65535"))
            } else if u.query().is_some() || u.fragment().is_some() {
                Err(format!(
                    "{v:?}: a Helm repository URL takes no query or fragment"
                ))
            } else {
                Ok(())
            }
        }
        Ok(u) if u.scheme() == "oci" => Err(format!(
            "{v:?} is an OCI registry: use type: oci with registry: {v}"
        )),
        _ => Err(format!(
            "{v:?} is not a Helm repository URL: expected http:// or https://host/path"
        )),
    }
}

/// Check a registry host (`name`, `name:port`, `1.2.3.4:5000`, `[::1]:5000`).
fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None), // bare IPv6 is not allowed
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().map(|p| p == 0).unwrap_or(true)
    {
        return Err(format!(
            "{host:?}: the port must be a number from 1 to 65535"
        ));
    }
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if name.is_empty() {
        Err("no registry host: expected a host such as registry.example.com or 127.0.0.1:5000 before any path".into())
    } else if name_ok {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a registry host name: expected letters, digits, '-' and '.' (and an optional :port)"
        ))
    }
}

/// Check a repository path (`a/b-c/d_e`), as OCI allows.
fn check_repo_path(path: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !c.is_empty()
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    };
    if path.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a repository path: expected lowercase segments like \"team/charts\""
        ))
    }
}

/// The parsed target URL: a host and an optional repository path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl {
    /// `host[:port]`.
    pub host: String,
    /// Path under the host, without leading or trailing `/` (may be empty).
    pub path: String,
}

impl TargetUrl {
    /// Parse `host[:port][/path]`, optionally prefixed with `oci://`.
    pub fn parse(raw: &str) -> Result<TargetUrl, String> {
        if raw.is_empty() {
            return Err(
                "required: the registry host and optional path, e.g. registry.example.com/ns"
                    .into(),
            );
        }
        let rest = raw.strip_prefix("oci://").unwrap_or(raw);
        if rest.contains("://") {
            return Err(format!(
                "{raw:?}: expected a registry host and optional path like registry.example.com/ns, without http:// or https:// (use insecure: true for plain HTTP)"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_host(host).map_err(|m| format!("{raw:?}: {m}"))?;
        if path.contains('@')
            || path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            return Err(format!(
                "{raw:?} carries a tag or digest: the target is a registry and path prefix, images keep their own tags"
            ));
        }
        if !path.is_empty() {
            check_repo_path(path).map_err(|m| format!("{raw:?}: {m}"))?;
        }
        Ok(TargetUrl {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// `host/path/child` (or `host/child` with no path).
    pub fn join(&self, child: &str) -> String {
        let mut s = self.host.clone();
        for part in [self.path.as_str(), child] {
            if !part.is_empty() {
                s.push('/');
                s.push_str(part);
            }
        }
        s
    }
}

/// A parsed `oci://host/path` chart location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciLocation {
    /// `host[:port]`.
    pub host: String,
    /// Repository path prefix (may be empty).
    pub path: String,
}

impl OciLocation {
    /// Parse `oci://host[:port][/path]`.
    pub fn parse(raw: &str) -> Result<OciLocation, String> {
        let Some(rest) = raw.strip_prefix("oci://") else {
            return Err(format!(
                "{raw:?}: an OCI registry must be written oci://host/path"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_host(host).map_err(|m| format!("{raw:?}: {m}"))?;
        if path.contains('@') || path.contains(':') {
            return Err(format!(
                "{raw:?}: the registry URL must not carry a tag or digest; versions come from the versions list"
            ));
        }
        if !path.is_empty() {
            check_repo_path(path).map_err(|m| format!("{raw:?}: {m}"))?;
        }
        Ok(OciLocation {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// The repository holding `chart`.
    pub fn repository(&self, chart: &str) -> String {
        if self.path.is_empty() {
            chart.to_string()
        } else {
            format!("{}/{chart}", self.path)
        }
    }
}

/// Parse a Go-style duration (`90s`, `1h30m`, `500ms`, `1.5h`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * factor;
    }
    (total.is_finite() && total < 1e9).then(|| std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(ty: SourceType) -> UpstreamSpec {
        UpstreamSpec {
            name: "x".into(),
            source_type: ty,
            chart: "vault".into(),
            versions: vec!["1.0.0".into()],
            ..Default::default()
        }
    }

    #[test]
    fn target_url_accepts_host_port_and_path_and_rejects_tags_and_schemes() {
        let t = TargetUrl::parse("127.0.0.1:5000/mirror/ns").unwrap();
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:5000", "mirror/ns")
        );
        assert_eq!(t.join("charts"), "127.0.0.1:5000/mirror/ns/charts");
        assert_eq!(TargetUrl::parse("oci://reg.example.com").unwrap().path, "");
        assert!(
            TargetUrl::parse("reg.example.com/ns:v1")
                .unwrap_err()
                .contains("tag")
        );
        assert!(
            TargetUrl::parse("reg.example.com/ns@sha256:00")
                .unwrap_err()
                .contains("tag")
        );
        assert!(
            TargetUrl::parse("https://reg.example.com")
                .unwrap_err()
                .contains("https://")
        );
        assert!(TargetUrl::parse("reg.example.com:99999").is_err());
        assert!(TargetUrl::parse("reg.example.com/UPPER").is_err());
        assert!(TargetUrl::parse("").is_err());
    }

    #[test]
    fn each_type_requires_its_own_location_field() {
        let u = upstream(SourceType::Repo);
        assert_eq!(
            u.problems(),
            vec![("repo", "required for type=repo".to_string())]
        );
        let mut u = upstream(SourceType::Oci);
        u.registry = Some("registry-1.docker.io/bitnamicharts".into());
        u.repo = Some("https://x".into());
        let p = u.problems();
        assert!(p[0].1.contains("oci://"), "{p:?}");
        assert_eq!(p[1].0, "repo");
        let mut u = upstream(SourceType::Local);
        u.path = Some("./c".into());
        assert!(u.problems().is_empty());
    }

    #[test]
    fn versions_must_be_present_unique_and_tag_safe() {
        let mut u = upstream(SourceType::Local);
        u.path = Some(".".into());
        u.versions = vec![];
        assert_eq!(u.problems()[0].0, "versions");
        u.versions = vec!["1.0.0+build.1".into(), "1.0.0+build.1".into(), "a b".into()];
        let p = u.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|(_, m)| m.contains("twice")));
        assert_eq!(version_tag("1.0.0+build.1"), "1.0.0_build.1");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert!(parse_duration("10").is_none());
        assert!(parse_duration("1d").is_none());
    }
}
