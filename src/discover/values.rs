//! The values scan: image references written in chart values, found without rendering.
//! Pure.
//!
//! Each chart's values.yaml is merged with what its parent passes down (its alias
//! section and `global`), the root's with the configured values, the way helm coalesces
//! them. Then every section is scanned, including those a condition or `enabled: false`
//! switches off, since that is where the images a default render misses live:
//! - maps with a `repository` (plus `registry`, `tag`, `digest`) under an image-like key
//!   or next to a `tag`/`digest`: Bitnami's and the common `image:` layouts; an empty tag
//!   means the chart's appVersion, as the usual templates do;
//! - strings under an `image` key, or under image-like keys (`initImage`,
//!   `defaultImages.reloader`) when they look like references (have a `/`, `:` or `@`).

use serde_json::{Map, Value};

use super::Found;
use super::tree::ChartNode;

/// Merge `over` into `base` as helm coalesces values: mappings merge key by key, anything
/// else replaces, and `null` removes the key.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(existing) = b.get_mut(k) {
                    merge(existing, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// One chart of the tree with its effective values.
#[derive(Clone, Debug)]
pub struct Effective<'a> {
    /// The chart.
    pub node: &'a ChartNode,
    /// The name it is known by, for messages: `app`, `app/charts/redis (as cache)`.
    pub label: String,
    /// Where its values sit in the root chart's values: `[]` for the root,
    /// `["cache"]` for a subchart aliased `cache`.
    pub prefix: Vec<String>,
    /// Its values: its own defaults, what its parent passes down, and the globals.
    pub values: Value,
}

/// The effective values of every chart in the tree, with the name it is known by.
pub fn effective<'a>(root: &'a ChartNode, overrides: &Value) -> Vec<Effective<'a>> {
    let mut values = root.values.clone();
    merge(&mut values, overrides);
    let mut out = Vec::new();
    descend(root, root.name.clone(), Vec::new(), values, &mut out);
    out
}

fn descend<'a>(
    node: &'a ChartNode,
    label: String,
    prefix: Vec<String>,
    values: Value,
    out: &mut Vec<Effective<'a>>,
) {
    out.push(Effective {
        node,
        label,
        prefix: prefix.clone(),
        values: values.clone(),
    });
    let deps = node.dependencies();
    let global = values.get("global").cloned();
    for sub in &node.subcharts {
        let mut names: Vec<String> = deps
            .iter()
            .filter(|d| d.name == sub.name)
            .map(|d| d.alias.clone().unwrap_or_else(|| d.name.clone()))
            .collect();
        if names.is_empty() {
            names.push(sub.name.clone());
        }
        names.dedup();
        for name in names {
            let mut v = sub.values.clone();
            if let Some(section) = values.get(&name) {
                merge(&mut v, section);
            }
            if let Some(g) = &global {
                let mut merged = v.get("global").cloned().unwrap_or(Value::Null);
                if merged.is_null() {
                    merged = Value::Object(Map::new());
                }
                merge(&mut merged, g);
                if let Value::Object(m) = &mut v {
                    m.insert("global".into(), merged);
                }
            }
            let shown = if name == sub.name {
                sub.path.clone()
            } else {
                format!("{} (as {name})", sub.path)
            };
            let mut sub_prefix = prefix.clone();
            sub_prefix.push(name.clone());
            descend(sub, shown, sub_prefix, v, out);
        }
    }
}

/// Image references in the effective values of every chart of the tree.
pub fn scan(root: &ChartNode, overrides: &Value) -> Vec<Found> {
    sites(root, overrides)
        .into_iter()
        .map(|site| {
            let suffix = if site.guessed { APP_VERSION_TAG } else { "" };
            Found {
                at: format!(
                    "values of {}: {}{suffix}",
                    site.label,
                    show_path(&site.path)
                ),
                raw: site.raw,
            }
        })
        .collect()
}

/// One step of a values path: a mapping key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A values path written the way messages show it: `sidecars[0].image`.
pub fn show_path(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// How an image is written at a values site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteForm {
    /// A string holding the whole reference (as written, before `{{ .Chart.AppVersion }}`
    /// is expanded).
    Whole(String),
    /// A map with `repository` (or `image`, `name_key`), maybe `registry`, `tag`, `digest`.
    Map {
        /// The key holding the repository: `repository` or `image`.
        name_key: String,
        /// The repository as written.
        repository: String,
        /// Whether the map has a `registry` key (even an empty one).
        has_registry_key: bool,
        /// Whether the registry came from `global.imageRegistry`.
        global_registry: bool,
    },
}

/// One place in the values where an image is written.
#[derive(Clone, Debug)]
pub struct Site {
    /// The chart it belongs to, as messages name it.
    pub label: String,
    /// Where that chart's values sit in the root chart's values.
    pub prefix: Vec<String>,
    /// The path within that chart's values.
    pub path: Vec<Step>,
    /// The reference it makes.
    pub raw: String,
    /// Whether the tag is the appVersion guess.
    pub guessed: bool,
    /// How it is written.
    pub form: SiteForm,
}

/// Every image site in the effective values of every chart of the tree, ordered by chart.
pub fn sites(root: &ChartNode, overrides: &Value) -> Vec<Site> {
    let mut out = Vec::new();
    let mut charts = effective(root, overrides);
    charts.sort_by(|a, b| a.node.path.cmp(&b.node.path).then(a.label.cmp(&b.label)));
    for chart in &charts {
        let ctx = Ctx {
            app_version: chart.node.app_version(),
            global_registry: global_registry(&chart.values),
            // Rancher's charts (kubewarden, cattle-*) join every image to this one.
            enclosing_registry: chart
                .values
                .pointer("/global/cattle/systemDefaultRegistry")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|h| is_host(h))
                .map(str::to_string),
            label: &chart.label,
            prefix: &chart.prefix,
        };
        walk(&chart.values, &mut Vec::new(), "", "", &ctx, &mut out, 0);
    }
    out
}

/// `global.imageRegistry`, when set and not empty.
pub fn global_registry(values: &Value) -> Option<String> {
    values
        .get("global")
        .and_then(|g| g.get("imageRegistry"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[derive(Clone)]
struct Ctx<'a> {
    app_version: Option<String>,
    global_registry: Option<String>,
    /// The nearest `registry: <host>` of an enclosing mapping (`registry` at the top of
    /// the values, which templates join as `{{ .Values.registry }}/{{ .Values.image.repository }}`).
    enclosing_registry: Option<String>,
    label: &'a str,
    prefix: &'a [String],
}

impl Ctx<'_> {
    fn site(&self, path: &[Step], raw: String, guessed: bool, form: SiteForm) -> Site {
        Site {
            label: self.label.to_string(),
            prefix: self.prefix.to_vec(),
            path: path.to_vec(),
            raw,
            guessed,
            form,
        }
    }
}

fn walk(
    v: &Value,
    path: &mut Vec<Step>,
    key: &str,
    parent: &str,
    ctx: &Ctx,
    out: &mut Vec<Site>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some((image, guessed, form)) = from_map(map, key, ctx) {
                out.push(ctx.site(path, image, guessed, form));
                return;
            }
            let inner;
            let ctx = match map.get("registry").and_then(Value::as_str).map(str::trim) {
                Some(host) if is_host(host) => {
                    inner = Ctx {
                        enclosing_registry: Some(host.to_string()),
                        ..ctx.clone()
                    };
                    &inner
                }
                _ => ctx,
            };
            for (k, child) in map {
                path.push(Step::Key(k.clone()));
                walk(child, path, k, key, ctx, out, depth + 1);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                walk(item, path, key, parent, ctx, out, depth + 1);
                path.pop();
            }
        }
        Value::String(s) => {
            if let Some(x) = expand(s.trim(), ctx.app_version.as_deref())
                && string_is_image(key, parent, &x)
            {
                let form = SiteForm::Whole(s.trim().to_string());
                out.push(ctx.site(path, x, false, form));
            }
        }
        _ => {}
    }
}

fn image_like(key: &str) -> bool {
    key.to_ascii_lowercase().contains("image")
}

/// Keys next to images that hold something else (`imagePullPolicy`, `imageTag`…).
fn not_a_reference_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "pull",
        "policy",
        "secret",
        "tag",
        "digest",
        "registry",
        "repository",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn string_is_image(key: &str, parent: &str, s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.contains("{{") || s.contains(char::is_whitespace) || s.contains("://") {
        return false;
    }
    let lower = key.to_ascii_lowercase();
    let direct = lower == "image" || lower.ends_with("image") || lower.ends_with("images");
    let near = (image_like(key) || image_like(parent)) && s.contains(['/', ':', '@']);
    (direct || near) && !not_a_reference_key(key) && crate::reference::ImageRef::parse(s).is_ok()
}

/// Whether `s` reads as a registry host (`quay.io`, `127.0.0.1:5000`, `localhost`), not a
/// setting that happens to be called `registry`.
fn is_host(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '{', ' ']) && (s.contains(['.', ':']) || s == "localhost")
}

/// The text of a scalar value; `None` when empty or absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Expand `{{ .Chart.AppVersion }}` (charts pass such values through `tpl`); `None` when
/// any other template is left, since its value cannot be known without rendering.
fn expand(s: &str, app_version: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}")? + start;
        let inner: String = rest[start + 2..end]
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if inner != ".Chart.AppVersion" && inner != "$.Chart.AppVersion" {
            return None;
        }
        out.push_str(&rest[..start]);
        out.push_str(app_version?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// Appended to where a values image was found when its tag is the appVersion because the
/// map has none: a guess that a declared tag for the same repository overrides.
pub const APP_VERSION_TAG: &str = " (no tag: appVersion assumed)";

/// A reference from an image map (`registry`/`repository`/`tag`/`digest`), if `map` is one,
/// whether its tag is the appVersion guess, and how it is written.
fn from_map(map: &Map<String, Value>, key: &str, ctx: &Ctx) -> Option<(String, bool, SiteForm)> {
    let app = ctx.app_version.as_deref();
    // Ok(None): absent; Err: a template that cannot be evaluated here.
    let field = |k: &str| -> Result<Option<String>, ()> {
        match text(map.get(k)) {
            Some(t) => expand(&t, app).map(Some).ok_or(()),
            None => Ok(None),
        }
    };
    // `repository`, or `image` next to `registry` (ingress-nginx's layout).
    let (name_key, repository) = match field("repository").ok()? {
        Some(r) => ("repository", r),
        None if map.contains_key("registry") || map.contains_key("tag") => {
            ("image", field("image").ok()??)
        }
        None => return None,
    };
    if repository.contains("://") || repository.contains(char::is_whitespace) {
        return None;
    }
    if !(image_like(key) || map.contains_key("tag") || map.contains_key("digest")) {
        return None;
    }
    let own_registry = field("registry").ok()?;
    let global_registry = own_registry.is_none() && ctx.global_registry.is_some();
    let form = SiteForm::Map {
        name_key: name_key.to_string(),
        repository: text(map.get(name_key)).unwrap_or_default(),
        has_registry_key: map.contains_key("registry"),
        global_registry,
    };
    let registry = own_registry.or_else(|| ctx.global_registry.clone());
    let mut r = match registry {
        Some(reg) if !repository.starts_with(&format!("{reg}/")) => format!("{reg}/{repository}"),
        None => match &ctx.enclosing_registry {
            Some(reg) if !super::names_registry(&repository) => format!("{reg}/{repository}"),
            _ => repository,
        },
        _ => repository,
    };
    let digest = field("digest").ok()?;
    // Without a tag, the usual templates use the appVersion, unless a digest pins it.
    let tag_given = field("tag").ok()?;
    let guessed = tag_given.is_none() && digest.is_none() && ctx.app_version.is_some();
    let tag = tag_given.or_else(|| digest.is_none().then(|| ctx.app_version.clone()).flatten());
    if let Some(t) = tag {
        r = format!("{r}:{t}");
    }
    if let Some(d) = digest {
        r = format!("{r}@{d}");
    }
    crate::reference::ImageRef::parse(&r)
        .ok()
        .map(|_| (r, guessed, form))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::tree;
    use serde_json::json;

    fn node(name: &str, app: Option<&str>, values: Value) -> ChartNode {
        let mut chart_yaml = json!({"name": name, "version": "1.0.0"});
        if let Some(a) = app {
            chart_yaml["appVersion"] = json!(a);
        }
        ChartNode {
            name: name.into(),
            version: "1.0.0".into(),
            path: name.into(),
            chart_yaml,
            values,
            ..Default::default()
        }
    }

    fn raws(found: &[Found]) -> Vec<&str> {
        found.iter().map(|f| f.raw.as_str()).collect()
    }

    #[test]
    fn finds_split_maps_strings_and_disabled_sections() {
        let root = node(
            "app",
            Some("2.1.0"),
            json!({
                "global": {"imageRegistry": ""},
                "image": {"registry": "docker.io", "repository": "bitnami/nginx", "tag": "1.25.3", "pullPolicy": "IfNotPresent"},
                "metrics": {"enabled": false, "image": {"repository": "quay.io/x/exporter", "tag": ""}},
                "init": {"image": "busybox:1.36", "imagePullPolicy": "Always"},
                "operator": {"defaultImages": {"reloader": "quay.io/prom/reloader:v0.72.0", "logLevel": "info"}},
                "pinned": {"image": {"repository": "ghcr.io/a/b", "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
                "git": {"repository": "https://github.com/example/repo", "ref": "main"},
                "policy": {"image": {"pullPolicy": "IfNotPresent"}},
                "templated": {"image": "{{ .Values.registry }}/x:1"},
                "runner": {"image": {"registry": "registry.gitlab.com", "repository": "org/runner", "tag": "alpine-v{{.Chart.AppVersion}}"}},
                "helper": {"image": {"repository": "org/helper", "tag": "{{ .Values.x }}"}},
                "controller": {"image": {"registry": "registry.k8s.io", "image": "ingress-nginx/controller", "tag": "v1.10.0", "digestChroot": "sha256:x"}},
                "imageTag": "1.2.3",
                "imageRegistry": "docker.io",
                "extraImages": ["ghcr.io/x/tool:v2"]
            }),
        );
        let got = scan(&root, &json!({}));
        let mut found = raws(&got);
        found.sort();
        assert_eq!(
            found,
            [
                "busybox:1.36",
                "docker.io/bitnami/nginx:1.25.3",
                "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "ghcr.io/x/tool:v2",
                "quay.io/prom/reloader:v0.72.0",
                "quay.io/x/exporter:2.1.0",
                "registry.gitlab.com/org/runner:alpine-v2.1.0",
                "registry.k8s.io/ingress-nginx/controller:v1.10.0",
            ]
        );
        let metrics = got.iter().find(|f| f.raw.contains("exporter")).unwrap();
        assert_eq!(
            metrics.at,
            format!("values of app: metrics.image{APP_VERSION_TAG}")
        );
    }

    #[test]
    fn overrides_aliases_and_globals_reach_subcharts() {
        let mut root = node("app", None, json!({"cache": {"image": {"tag": "7.4"}}}));
        root.chart_yaml["dependencies"] =
            json!([{"name": "redis", "version": "1.0.0", "alias": "cache"}]);
        root.subcharts.push(ChartNode {
            path: "app/charts/redis".into(),
            ..node(
                "redis",
                Some("7.2"),
                json!({"image": {"repository": "library/redis", "tag": "7.2"}}),
            )
        });
        let got = scan(
            &root,
            &json!({"global": {"imageRegistry": "mirror.example.com"}}),
        );
        assert_eq!(raws(&got), ["mirror.example.com/library/redis:7.4"]);
        assert_eq!(got[0].at, "values of app/charts/redis (as cache): image");
        let _ = tree::read; // the tree module builds these nodes from archives
    }

    #[test]
    fn an_enclosing_registry_key_names_the_registry() {
        let root = node(
            "app",
            None,
            json!({
                "registry": "127.0.0.1:5000",
                "image": {"repository": "team/api", "tag": "1.0"},
                "other": {"image": {"repository": "quay.io/x/y", "tag": "1"}},
                "cache": {"registry": "mirror.example.com", "image": {"repository": "library/redis", "tag": "7"}},
                "settings": {"registry": "enabled", "image": {"repository": "team/s", "tag": "2"}}
            }),
        );
        let rancher = node(
            "kw",
            None,
            json!({
                "global": {"cattle": {"systemDefaultRegistry": "ghcr.io"}},
                "policyServer": {"image": {"repository": "kubewarden/policy-server", "tag": "v1"}}
            }),
        );
        assert_eq!(
            raws(&scan(&rancher, &json!({}))),
            ["ghcr.io/kubewarden/policy-server:v1"]
        );
        let mut found: Vec<String> = raws(&scan(&root, &json!({})))
            .into_iter()
            .map(String::from)
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                "127.0.0.1:5000/team/api:1.0",
                "127.0.0.1:5000/team/s:2",
                "mirror.example.com/library/redis:7",
                "quay.io/x/y:1",
            ]
        );
    }

    #[test]
    fn merge_follows_helm() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut a, &json!({"a": {"c": 3, "b": null}, "d": [2]}));
        assert_eq!(a, json!({"a": {"c": 3}, "d": [2]}));
    }
}
