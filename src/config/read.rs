//! Typed readers over the YAML tree for [`Extract`]: each returns the value or records a
//! problem with its key path and line. Pure.

use super::Problem;
use super::extract::Extract;
use super::yaml::{self, Node, Pos, Value};

impl Extract {
    pub(super) fn problem(
        &mut self,
        path: impl Into<String>,
        pos: Pos,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path: path.into(),
            line: pos.line,
            message: message.into(),
        });
    }

    pub(super) fn map<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(String, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ if path.is_empty() => {
                self.problem(
                    path,
                    node.pos,
                    format!(
                        "the top level must be a mapping (target and upstreams, or a ChartMirror manifest), found {}",
                        node.kind()
                    ),
                );
                None
            }
            _ => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a mapping, found {}", node.kind()),
                );
                None
            }
        }
    }

    pub(super) fn unknown_keys(
        &mut self,
        entries: &[(String, Node)],
        allowed: &[&str],
        path: &str,
    ) {
        for (k, v) in entries {
            if !allowed.contains(&k.as_str()) {
                let at = join(path, k);
                let hint = suggest(k, allowed)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("; expected one of: {}", allowed.join(", ")));
                self.problem(at, v.pos, format!("unknown key{hint}"));
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            _ if node.is_null() => {
                self.problem(path, node.pos, "expected a string, found nothing (null)");
                None
            }
            Value::Scalar { text, plain } if *plain && yaml::as_bool(text).is_some() => {
                self.problem(
                    path,
                    node.pos,
                    format!(
                        "expected a string, found boolean {text}; quote it if you mean the text"
                    ),
                );
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.problem(
                    path,
                    node.pos,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    pub(super) fn opt_string(
        &mut self,
        entries: &[(String, Node)],
        key: &str,
        path: &str,
    ) -> Option<String> {
        let node = find(entries, key)?;
        if node.is_null() {
            return None;
        }
        self.string(node, &join(path, key))
    }

    pub(super) fn boolean(&mut self, entries: &[(String, Node)], key: &str, path: &str) -> bool {
        let Some(node) = find(entries, key) else {
            return false;
        };
        match &node.value {
            _ if node.is_null() => false,
            Value::Scalar { text, plain: true } if yaml::as_bool(text).is_some() => {
                yaml::as_bool(text).unwrap_or(false)
            }
            _ => {
                let found = match &node.value {
                    Value::Scalar { text, .. } => format!("{} {text:?}", node.kind()),
                    _ => node.kind().to_string(),
                };
                self.problem(
                    join(path, key),
                    node.pos,
                    format!("expected true or false, found {found}"),
                );
                false
            }
        }
    }

    pub(super) fn number(
        &mut self,
        entries: &[(String, Node)],
        key: &str,
        path: &str,
    ) -> Option<u32> {
        let node = find(entries, key)?;
        match &node.value {
            Value::Scalar { text, plain: true } if text.parse::<u32>().is_ok() => text.parse().ok(),
            Value::Scalar { text, .. } => {
                self.problem(
                    join(path, key),
                    node.pos,
                    format!("expected a whole number, found {} {text:?}", node.kind()),
                );
                None
            }
            _ => {
                self.problem(
                    join(path, key),
                    node.pos,
                    format!("expected a whole number, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// `true`/`false`, or `None` when absent or null.
    pub(super) fn versions(&mut self, entries: &[(String, Node)], path: &str) -> Vec<String> {
        self.string_list(
            entries,
            "versions",
            path,
            "a list of versions like [\"1.2.3\"]",
        )
    }

    pub(super) fn string_list(
        &mut self,
        entries: &[(String, Node)],
        key: &str,
        path: &str,
        what: &str,
    ) -> Vec<String> {
        let key_path = join(path, key);
        let Some(node) = find(entries, key) else {
            return Vec::new();
        };
        match &node.value {
            _ if node.is_null() => Vec::new(),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(item, &format!("{key_path}[{i}]")))
                .collect(),
            _ => {
                self.problem(
                    &key_path,
                    node.pos,
                    format!("expected {what}, found {}", node.kind()),
                );
                Vec::new()
            }
        }
    }
}

pub(super) fn find<'n>(entries: &'n [(String, Node)], key: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The allowed key closest to `key` (same letters ignoring case and `-`/`_`, or one edit away).
pub(super) fn suggest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    allowed
        .iter()
        .copied()
        .find(|a| squash(a) == squash(key))
        .or_else(|| {
            allowed
                .iter()
                .copied()
                .find(|a| edit_distance(a, key) <= 2 && a.len() > 3)
        })
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}
