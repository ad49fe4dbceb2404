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

/// The effective values of every chart in the tree, with the name it is known by.
pub fn effective<'a>(
    root: &'a ChartNode,
    overrides: &Value,
) -> Vec<(&'a ChartNode, String, Value)> {
    let mut values = root.values.clone();
    merge(&mut values, overrides);
    let mut out = Vec::new();
    descend(root, root.name.clone(), values, &mut out);
    out
}

fn descend<'a>(
    node: &'a ChartNode,
    label: String,
    values: Value,
    out: &mut Vec<(&'a ChartNode, String, Value)>,
) {
    out.push((node, label, values.clone()));
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
            descend(sub, shown, v, out);
        }
    }
}

/// Image references in the effective values of every chart of the tree.
pub fn scan(root: &ChartNode, overrides: &Value) -> Vec<Found> {
    let mut out = Vec::new();
    let mut charts = effective(root, overrides);
    charts.sort_by(|a, b| a.0.path.cmp(&b.0.path).then(a.1.cmp(&b.1)));
    for (node, label, values) in charts {
        let ctx = Ctx {
            app_version: node.app_version(),
            global_registry: values
                .get("global")
                .and_then(|g| g.get("imageRegistry"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            label: &label,
        };
        walk(&values, "", "", "", &ctx, &mut out, 0);
    }
    out
}

struct Ctx<'a> {
    app_version: Option<String>,
    global_registry: Option<String>,
    label: &'a str,
}

fn walk(
    v: &Value,
    path: &str,
    key: &str,
    parent: &str,
    ctx: &Ctx,
    out: &mut Vec<Found>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    let at = |p: &str| format!("values of {}: {p}", ctx.label);
    match v {
        Value::Object(map) => {
            if let Some((image, guessed)) = from_map(map, key, ctx) {
                let suffix = if guessed { APP_VERSION_TAG } else { "" };
                out.push(Found {
                    raw: image,
                    at: format!("{}{suffix}", at(path)),
                });
                return;
            }
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, &p, k, key, ctx, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(
                    item,
                    &format!("{path}[{i}]"),
                    key,
                    parent,
                    ctx,
                    out,
                    depth + 1,
                );
            }
        }
        Value::String(s) => {
            if let Some(s) = expand(s.trim(), ctx.app_version.as_deref())
                && string_is_image(key, parent, &s)
            {
                out.push(Found {
                    raw: s,
                    at: at(path),
                });
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
/// and whether its tag is the appVersion guess.
fn from_map(map: &Map<String, Value>, key: &str, ctx: &Ctx) -> Option<(String, bool)> {
    let app = ctx.app_version.as_deref();
    // Ok(None): absent; Err: a template that cannot be evaluated here.
    let field = |k: &str| -> Result<Option<String>, ()> {
        match text(map.get(k)) {
            Some(t) => expand(&t, app).map(Some).ok_or(()),
            None => Ok(None),
        }
    };
    // `repository`, or `image` next to `registry` (ingress-nginx's layout).
    let repository = match field("repository").ok()? {
        Some(r) => r,
        None if map.contains_key("registry") || map.contains_key("tag") => {
            field("image").ok()??
        }
        None => return None,
    };
    if repository.contains("://") || repository.contains(char::is_whitespace) {
        return None;
    }
    if !(image_like(key) || map.contains_key("tag") || map.contains_key("digest")) {
        return None;
    }
    let registry = field("registry")
        .ok()?
        .or_else(|| ctx.global_registry.clone());
    let mut r = match registry {
        Some(reg) if !repository.starts_with(&format!("{reg}/")) => format!("{reg}/{repository}"),
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
        .map(|_| (r, guessed))
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
    fn merge_follows_helm() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut a, &json!({"a": {"c": 3, "b": null}, "d": [2]}));
        assert_eq!(a, json!({"a": {"c": 3}, "d": [2]}));
    }
}
