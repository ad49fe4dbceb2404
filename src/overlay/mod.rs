//! Values overlays: from the values sites discovery found, a values file that points every
//! image the values can move at its mirrored name under the target (tag and digest kept),
//! so that `helm install -f <overlay>` pulls only from the mirror and the chart itself
//! stays byte-identical. Pure but for [`artifact`] (the overlay pushed next to the chart);
//! [`verify`] checks a render made with the overlay.
//!
//! Each site is rewritten in the form it is written in:
//! - a whole reference string (`image: busybox:1.36`) becomes the mirrored reference, with
//!   whatever follows the repository (`:{{ .Chart.AppVersion }}`, `@sha256:…`) kept as written;
//! - an image map with a `registry` key (or a registry from `global.imageRegistry`) gets
//!   `registry: <target host>` and `repository: <target path>/<repository>`; when any chart
//!   sets `global.imageRegistry`, the root's `global.imageRegistry` is set to the target host
//!   too, since Bitnami-style templates let it win over the map's;
//! - an image map without a registry gets the whole mirrored name in `repository`.
//!
//! Sites inside lists are written as the whole list (helm replaces lists, it cannot set
//! one item). Subchart sites sit under the subchart's name or alias.

pub mod artifact;
pub mod verify;

use serde_json::{Map, Value};

use crate::discover::tree::ChartNode;
use crate::discover::values::{self, Site, SiteForm, Step};
use crate::reference::ImageRef;
use crate::spec::TargetUrl;

/// The limit Kubernetes puts on a ConfigMap's data; overlays larger than this are refused
/// everywhere, so the file, the artifact and the ConfigMap are always the same bytes.
pub const MAX_OVERLAY_BYTES: usize = 1024 * 1024;

/// One values site the overlay rewrites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Where, as discovery provenance names it (`values of app: image`).
    pub at: String,
    /// The image the site makes today.
    pub source: String,
    /// The image it makes with the overlay.
    pub target: String,
}

/// A values overlay for one chart version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlay {
    /// The values to apply after the user's own (a mapping; empty when nothing moves).
    pub values: Map<String, Value>,
    /// The sites it rewrites.
    pub moved: Vec<Moved>,
    /// Sites it leaves alone, with why (a template in the name, an image not mirrored).
    pub left: Vec<String>,
    /// What else it sets and why, for the file's header.
    pub remarks: Vec<String>,
}

impl Overlay {
    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Build the overlay for the chart tree `root` rendered with `overrides` (the user's values,
/// merged), moving the sites whose image is one of `mirrored` (same registry and
/// repository) under `target`.
pub fn build(
    root: &ChartNode,
    overrides: &Value,
    mirrored: &[ImageRef],
    target: &TargetUrl,
) -> Overlay {
    let charts = values::effective(root, overrides);
    let any_global = charts
        .iter()
        .any(|c| values::global_registry(&c.values).is_some());
    let mut out = Overlay::default();
    let mut split_used = false;
    // Edits per chart (by prefix), applied to that chart's effective values.
    let mut edits: Vec<(Vec<String>, Vec<Step>)> = Vec::new();
    let mut edited: Vec<(Vec<String>, Value)> = charts
        .iter()
        .map(|c| (c.prefix.clone(), c.values.clone()))
        .collect();
    for site in values::sites(root, overrides) {
        let at = format!(
            "values of {}: {}",
            site.label,
            values::show_path(&site.path)
        );
        let Ok(image) = ImageRef::parse(&site.raw) else {
            continue;
        };
        let direct = mirrored
            .iter()
            .any(|m| m.registry == image.registry && m.repository == image.repository);
        // A site naming no registry whose image the render shows under one: the registry
        // is written elsewhere in the values (`registry: …`, `global.image.registry: …`).
        // The render is the truth, so this wins over the Docker Hub reading of the name.
        let elsewhere = implicit_registry(&site, &image, mirrored).and_then(|m| {
            let chart = charts.iter().find(|c| c.prefix == site.prefix)?;
            let paths = registry_keys(&chart.values, &m.registry);
            (!paths.is_empty()).then_some((m, paths))
        });
        let (dst, registry_paths) = match elsewhere {
            Some((m, paths)) => (m.remap(target), paths),
            None if direct => (image.remap(target), Vec::new()),
            None => {
                out.left.push(format!("{at}: {image} is not mirrored"));
                continue;
            }
        };
        let Some((writes, split)) = rewrite(&site, &dst, !registry_paths.is_empty()) else {
            out.left.push(format!(
                "{at}: the repository is a template lazyoci cannot rewrite"
            ));
            continue;
        };
        for path in registry_paths {
            // Globals are set at the root, where helm passes them down from.
            let prefix = match path.first() {
                Some(Step::Key(k)) if k == "global" => Vec::new(),
                _ => site.prefix.clone(),
            };
            if let Some((_, v)) = edited.iter_mut().find(|(p, _)| *p == prefix) {
                set(v, &path, Value::String(dst.registry.clone()));
                edits.push((prefix, path));
            }
        }
        split_used |= split;
        let Some((_, chart_values)) = edited.iter_mut().find(|(p, _)| *p == site.prefix) else {
            continue;
        };
        for (key, value) in writes {
            let mut path = site.path.clone();
            if let Some(k) = key {
                path.push(Step::Key(k));
            }
            set(chart_values, &path, value);
            edits.push((site.prefix.clone(), path));
        }
        out.moved.push(Moved {
            at,
            source: image.to_string(),
            target: dst.to_string(),
        });
    }
    // Emit each edit from the edited values: a leaf, or the whole list it sits in.
    for (prefix, path) in &edits {
        let cut = path
            .iter()
            .position(|s| matches!(s, Step::Index(_)))
            .unwrap_or(path.len());
        let Some((_, chart_values)) = edited.iter().find(|(p, _)| p == prefix) else {
            continue;
        };
        let Some(v) = get(chart_values, &path[..cut]) else {
            continue;
        };
        let keys: Vec<String> = prefix
            .iter()
            .cloned()
            .chain(path[..cut].iter().filter_map(|s| match s {
                Step::Key(k) => Some(k.clone()),
                Step::Index(_) => None,
            }))
            .collect();
        insert(&mut out.values, &keys, v.clone());
    }
    // Bitnami charts refuse images they do not recognise by name, mirrored ones included,
    // unless told to accept them.
    let bitnami_check = charts.iter().any(|c| {
        c.values
            .pointer("/global/security/allowInsecureImages")
            .is_some_and(Value::is_boolean)
    });
    if bitnami_check && !out.moved.is_empty() {
        insert(
            &mut out.values,
            &["global", "security", "allowInsecureImages"].map(String::from),
            Value::Bool(true),
        );
        out.remarks.push("global.security.allowInsecureImages: true, since the chart refuses images it does not recognise by name, and mirrored names are not recognised; the digests and tags are the chart's own".into());
    }
    if split_used && any_global {
        insert(
            &mut out.values,
            &["global".to_string(), "imageRegistry".to_string()],
            Value::String(target.host.clone()),
        );
    }
    out
}

/// The keys to write at a site (`None`: the site itself) and whether the registry is
/// written apart from the repository; `None` when the name is a template.
#[allow(clippy::type_complexity)]
fn rewrite(
    site: &Site,
    dst: &ImageRef,
    registry_elsewhere: bool,
) -> Option<(Vec<(Option<String>, Value)>, bool)> {
    let full = if registry_elsewhere {
        dst.repository.clone()
    } else {
        format!("{}/{}", dst.registry, dst.repository)
    };
    match &site.form {
        SiteForm::Whole(written) => {
            let (name, rest) = split_name(written);
            if name.contains("{{") {
                return None;
            }
            Some((vec![(None, Value::String(format!("{full}{rest}")))], false))
        }
        SiteForm::Map {
            name_key,
            repository,
            has_registry_key,
            global_registry,
        } => {
            if repository.contains("{{") {
                return None;
            }
            if registry_elsewhere {
                Some((vec![(Some(name_key.clone()), Value::String(full))], false))
            } else if (*has_registry_key || *global_registry) && !names_registry(repository) {
                let mut writes = vec![(
                    Some(name_key.clone()),
                    Value::String(dst.repository.clone()),
                )];
                if *has_registry_key {
                    writes.push((
                        Some("registry".to_string()),
                        Value::String(dst.registry.clone()),
                    ));
                }
                Some((writes, true))
            } else {
                let mut writes = vec![(Some(name_key.clone()), Value::String(full))];
                if *has_registry_key {
                    // The repository names its registry; an empty registry keeps it so.
                    writes.push((Some("registry".to_string()), Value::String(String::new())));
                }
                Some((writes, false))
            }
        }
    }
}

/// Whether a written name starts with a registry host (`quay.io/x`, `localhost:5000/x`).
fn names_registry(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// For a site that names no registry, the mirrored image the render made of it under a
/// registry set elsewhere (same repository, tag and digest, another registry).
fn implicit_registry<'a>(
    site: &Site,
    image: &ImageRef,
    mirrored: &'a [ImageRef],
) -> Option<&'a ImageRef> {
    let written = match &site.form {
        SiteForm::Whole(written) => split_name(written).0,
        SiteForm::Map {
            repository,
            has_registry_key: false,
            global_registry: false,
            ..
        } => repository.as_str(),
        SiteForm::Map { .. } => return None,
    };
    if names_registry(written) {
        return None;
    }
    // `nginx` reads as docker.io/library/nginx, but under another registry it is `nginx`.
    mirrored.iter().find(|m| {
        m.registry != image.registry
            && (m.repository == image.repository || m.repository == written)
            && m.tag == image.tag
            && m.digest == image.digest
    })
}

/// Paths of string values equal to `host` under keys that name a registry
/// (`registry`, `imageRegistry`, `global.image.registry`).
fn registry_keys(values: &Value, host: &str) -> Vec<Vec<Step>> {
    fn walk(v: &Value, path: &mut Vec<Step>, host: &str, out: &mut Vec<Vec<Step>>) {
        let Value::Object(map) = v else { return };
        if path.len() > 16 {
            return;
        }
        for (k, child) in map {
            path.push(Step::Key(k.clone()));
            match child {
                Value::String(s)
                    if s.trim().trim_end_matches('/') == host
                        && k.to_ascii_lowercase().contains("registry") =>
                {
                    out.push(path.clone())
                }
                Value::Object(_) => walk(child, path, host, out),
                _ => {}
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(values, &mut Vec::new(), host, &mut out);
    out
}

/// A written reference split into its name and what follows it (`:tag`, `@digest`).
fn split_name(written: &str) -> (&str, &str) {
    let at = written.find('@').unwrap_or(written.len());
    let slash = written[..at].rfind('/').map_or(0, |i| i + 1);
    let colon = written[slash..at].find(':').map_or(at, |i| slash + i);
    written.split_at(colon)
}

fn get<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

fn set(v: &mut Value, path: &[Step], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return;
    };
    let mut cur = v;
    for s in parents {
        let next = match s {
            Step::Key(k) => match cur {
                Value::Object(m) => Some(
                    m.entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new())),
                ),
                _ => None,
            },
            Step::Index(i) => cur.get_mut(*i),
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(m)) => {
            m.insert(k.clone(), value);
        }
        (Step::Index(i), Value::Array(a)) if *i < a.len() => a[*i] = value,
        _ => {}
    }
}

fn insert(map: &mut Map<String, Value>, keys: &[String], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut cur = map;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(m) = entry else { return };
        cur = m;
    }
    cur.insert(last.clone(), value);
}

/// The overlay file: a comment header saying what it is, how to use it and what it cannot
/// move, then the values as YAML.
pub fn to_yaml(
    overlay: &Overlay,
    chart: &str,
    version: &str,
    chart_ref: Option<&str>,
    not_relocatable: &[crate::result::NotRelocatable],
) -> Result<String, String> {
    let mut s = format!(
        "# Values overlay written by lazyoci for chart {chart} {version}: the images these\n# values set point at the mirror. Apply it after your own values, e.g.\n"
    );
    let chart_ref = chart_ref.unwrap_or(chart);
    s.push_str(&format!(
        "#   helm install RELEASE {chart_ref} --version {version} -f YOUR-VALUES -f THIS-FILE\n"
    ));
    if overlay.is_empty() {
        s.push_str("# It is empty: no image of this chart is set by its values.\n");
    }
    for r in &overlay.remarks {
        s.push_str(&format!("# Also sets {r}.\n"));
    }
    if !not_relocatable.is_empty() {
        s.push_str(&format!(
            "# Not relocatable by values ({}):\n",
            not_relocatable.len()
        ));
        for n in not_relocatable {
            let at = n.at.first().map(String::as_str).unwrap_or("?");
            s.push_str(&format!("#   {} ({at})\n", n.image.replace('\n', " ")));
        }
    }
    if overlay.is_empty() {
        s.push_str("{}\n");
    } else {
        let body = serde_saphyr::to_string(&Value::Object(overlay.values.clone()))
            .map_err(|e| format!("cannot write the overlay as YAML: {e}"))?;
        s.push_str(&body);
        if !s.ends_with('\n') {
            s.push('\n');
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
