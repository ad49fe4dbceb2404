//! A chart archive read into a tree of charts: the chart and its subcharts (vendored as
//! directories or nested archives under `charts/`), with what discovery reads from each.
//! Pure (in memory); nothing is unpacked to disk.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::chart::archive::{self, ArchiveError};

/// Nesting deeper than this is refused (charts of charts of charts…).
const MAX_DEPTH: usize = 6;
/// Any one file discovery reads is at most this large.
const MAX_FILE: u64 = 8 * 1024 * 1024;

/// One chart of the tree.
#[derive(Clone, Debug, Default)]
pub struct ChartNode {
    /// `name` from Chart.yaml.
    pub name: String,
    /// `version` from Chart.yaml.
    pub version: String,
    /// Where it sits, for messages: `demo`, `demo/charts/redis`.
    pub path: String,
    /// Chart.yaml as JSON.
    pub chart_yaml: Value,
    /// values.yaml as JSON (an empty mapping when absent).
    pub values: Value,
    /// Images.lock, parsed, if present.
    pub images_lock: Option<Value>,
    /// Chart.lock, parsed, if present.
    pub chart_lock: Option<Value>,
    /// Files of this chart that are there but could not be read (`values.yaml`,
    /// `Images.lock`, `Chart.lock`), with why; what they would have told is missing.
    pub unreadable: Vec<(String, String)>,
    /// Subcharts.
    pub subcharts: Vec<ChartNode>,
}

/// A dependency declared in Chart.yaml.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dependency {
    /// Chart name.
    pub name: String,
    /// Version or range.
    pub version: String,
    /// Repository URL (`https://…`, `oci://…`, `file://…`, `@alias`) or empty.
    pub repository: String,
    /// Alias, if any.
    pub alias: Option<String>,
}

impl ChartNode {
    /// `appVersion`, if any.
    pub fn app_version(&self) -> Option<String> {
        match self.chart_yaml.get("appVersion") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Chart.yaml annotations with string values.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.chart_yaml
            .get("annotations")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `dependencies` from Chart.yaml.
    pub fn dependencies(&self) -> Vec<Dependency> {
        let text = |d: &Value, k: &str| match d.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        self.chart_yaml
            .get("dependencies")
            .and_then(Value::as_array)
            .map(|deps| {
                deps.iter()
                    .filter(|d| !text(d, "name").is_empty())
                    .map(|d| Dependency {
                        name: text(d, "name"),
                        version: text(d, "version"),
                        repository: text(d, "repository"),
                        alias: Some(text(d, "alias")).filter(|a| !a.is_empty()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The version Chart.lock pins for dependency `name` from `repository`, if any.
    pub fn locked_version(&self, name: &str, repository: &str) -> Option<String> {
        self.chart_lock
            .as_ref()?
            .get("dependencies")?
            .as_array()?
            .iter()
            .find(|d| {
                d.get("name").and_then(Value::as_str) == Some(name)
                    && d.get("repository")
                        .and_then(Value::as_str)
                        .is_none_or(|r| r == repository)
            })
            .and_then(|d| d.get("version"))
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Every node of the tree, depth first, with its depth.
    pub fn walk(&self) -> Vec<&ChartNode> {
        let mut out = vec![self];
        for s in &self.subcharts {
            out.extend(s.walk());
        }
        out
    }
}

fn wanted(rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    // Only the chart's own files and those of charts below `charts/`.
    let in_chart_dir = !rel.contains('/') || rel.starts_with("charts/");
    in_chart_dir
        && (matches!(
            base,
            "Chart.yaml" | "values.yaml" | "Images.lock" | "Chart.lock"
        ) || (rel.starts_with("charts/") && rel.ends_with(".tgz")))
}

/// Read a chart archive into a tree. The chart and every nested subchart archive together
/// may unpack to at most [`archive::MAX_UNPACKED_BYTES`] (archives of decompression bombs).
pub fn read(archive_bytes: &[u8]) -> Result<ChartNode, ArchiveError> {
    read_within(archive_bytes, archive::MAX_UNPACKED_BYTES)
}

/// [`read`] with another unpacking budget.
pub fn read_within(archive_bytes: &[u8], budget: u64) -> Result<ChartNode, ArchiveError> {
    let mut left = budget;
    read_at(archive_bytes, "", 0, &mut left)
}

fn read_at(
    archive_bytes: &[u8],
    parent: &str,
    depth: usize,
    left: &mut u64,
) -> Result<ChartNode, ArchiveError> {
    if depth > MAX_DEPTH {
        return Err(ArchiveError::TooLarge(format!(
            "subcharts nested more than {MAX_DEPTH} deep"
        )));
    }
    let (top, files, used) =
        archive::files(archive_bytes, &wanted, MAX_FILE, *left).map_err(|e| match e {
            ArchiveError::TooLarge(m) if depth > 0 => ArchiveError::TooLarge(format!(
                "{m} (the chart and its subchart archives together)"
            )),
            e => e,
        })?;
    *left = left.saturating_sub(used);
    let base = if parent.is_empty() {
        top.clone()
    } else {
        format!("{parent}/{top}")
    };
    build(&files, "", &base, depth, left)
}

/// Build the node whose files sit under `prefix` (`""` or `charts/x/`) in `files`.
fn build(
    files: &[(String, Vec<u8>)],
    prefix: &str,
    path: &str,
    depth: usize,
    left: &mut u64,
) -> Result<ChartNode, ArchiveError> {
    let get = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p.strip_prefix(prefix) == Some(name))
            .map(|(_, d)| d.as_slice())
    };
    let mut unreadable = Vec::new();
    let mut parse = |what: &str| -> Option<Value> {
        let bytes = get(what)?;
        let parsed = std::str::from_utf8(bytes)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(crate::chart::yaml::parse);
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                unreadable.push((format!("{path}/{what}"), e));
                None
            }
        }
    };
    let chart_yaml = get("Chart.yaml")
        .ok_or_else(|| ArchiveError::ChartYaml(format!("no Chart.yaml in {path}")))?;
    let meta = archive::parse_chart_yaml(chart_yaml).map_err(|e| match e {
        ArchiveError::ChartYaml(m) => ArchiveError::ChartYaml(format!("{path}/Chart.yaml: {m}")),
        e => e,
    })?;
    let values = match parse("values.yaml") {
        Some(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    };
    let images_lock = parse("Images.lock");
    let chart_lock = parse("Chart.lock");
    let mut node = ChartNode {
        name: meta.name,
        version: meta.version,
        path: path.to_string(),
        chart_yaml: meta.json,
        values,
        images_lock,
        chart_lock,
        unreadable,
        subcharts: Vec::new(),
    };
    // Direct children: `charts/<dir>/Chart.yaml` and `charts/<file>.tgz`.
    let sub_prefix = format!("{prefix}charts/");
    let mut dirs: Vec<&str> = Vec::new();
    for (p, data) in files {
        let Some(rest) = p.strip_prefix(&sub_prefix) else {
            continue;
        };
        if let Some(dir) = rest.strip_suffix("/Chart.yaml")
            && !dir.contains('/')
        {
            dirs.push(dir);
        } else if !rest.contains('/') && rest.ends_with(".tgz") {
            let child = read_at(data, &format!("{path}/charts"), depth + 1, left)?;
            node.subcharts.push(child);
        }
    }
    for dir in dirs {
        let child = build(
            files,
            &format!("{sub_prefix}{dir}/"),
            &format!("{path}/charts/{dir}"),
            depth + 1,
            left,
        )?;
        node.subcharts.push(child);
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive with `entries` under the chart directory `top`.
    fn tgz(top: &str, entries: &[(&str, &[u8])]) -> Vec<u8> {
        let paths: Vec<String> = entries.iter().map(|(p, _)| format!("{top}/{p}")).collect();
        let full: Vec<(&str, &[u8])> = paths
            .iter()
            .zip(entries)
            .map(|(p, (_, d))| (p.as_str(), *d))
            .collect();
        crate::chart::archive::tests::tgz(&full)
    }

    #[test]
    fn nested_archives_share_one_unpacking_budget() {
        let zeros = vec![0u8; 300 * 1024];
        let nested = |name: &str| {
            tgz(
                name,
                &[
                    (
                        "Chart.yaml",
                        format!("name: {name}\nversion: 1.0.0\n").as_bytes(),
                    ),
                    ("files/blob", &zeros),
                ],
            )
        };
        let (a, b, c) = (nested("a"), nested("b"), nested("c"));
        let parent = tgz(
            "app",
            &[
                ("Chart.yaml", b"name: app\nversion: 1.0.0\n"),
                ("charts/a-1.0.0.tgz", &a),
                ("charts/b-1.0.0.tgz", &b),
                ("charts/c-1.0.0.tgz", &c),
            ],
        );
        // Each alone fits in 700 KiB; together they do not.
        assert!(read_within(&parent, 2 * 1024 * 1024).is_ok());
        let err = read_within(&parent, 700 * 1024).unwrap_err().to_string();
        assert!(
            err.contains("the chart and its subchart archives together"),
            "{err}"
        );
    }

    #[test]
    fn reads_subcharts_as_directories_and_nested_archives() {
        let nested = tgz(
            "db",
            &[
                (
                    "Chart.yaml",
                    b"name: db\nversion: 2.0.0\nappVersion: \"16\"\n",
                ),
                ("values.yaml", b"image: {repository: postgres}\n"),
            ],
        );
        let a = tgz(
            "app",
            &[
                ("Chart.yaml", b"apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- {name: cache, version: 1.x, repository: https://x, alias: redis}\n"),
                ("values.yaml", b"image: nginx\n"),
                ("templates/values.yaml", b"not: read\n"),
                ("charts/cache/Chart.yaml", b"name: cache\nversion: 1.1.0\n"),
                ("charts/cache/Images.lock", b"images: []\n"),
                ("charts/db-2.0.0.tgz", &nested),
            ],
        );
        let t = read(&a).unwrap();
        assert_eq!(t.path, "app");
        assert_eq!(t.values["image"], "nginx");
        assert_eq!(t.dependencies()[0].alias.as_deref(), Some("redis"));
        let names: Vec<(&str, &str)> = t
            .walk()
            .iter()
            .map(|n| (n.name.as_str(), n.path.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("app", "app"),
                ("db", "app/charts/db"),
                ("cache", "app/charts/cache")
            ]
        );
        assert!(t.subcharts[1].images_lock.is_some());
        assert_eq!(t.subcharts[0].app_version().as_deref(), Some("16"));
    }
}
