//! A small YAML document tree with source positions, built from granit-parser events.
//! Pure.
//!
//! serde reports one error at a time and forgets where keys were; config validation
//! wants every problem at once, each with its line. This tree keeps positions, rejects
//! duplicate keys and refuses aliases outright (configs never need them, and refusing
//! them makes alias bombs impossible).

use granit_parser::{Event, Parser, ScalarStyle};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub value: Value,
}

/// The content of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, with its text and whether it was quoted (quoted scalars are always strings).
    Scalar {
        /// The text after escape processing.
        text: String,
        /// Written plain (unquoted, not a block scalar).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order; keys are strings.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A plain scalar that YAML 1.2 reads as null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The type name used in error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { text, plain: true } if as_bool(text).is_some() => "boolean",
            Value::Scalar { text, plain: true } if text.parse::<f64>().is_ok() => "number",
            Value::Scalar { .. } => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// The node as JSON, with YAML 1.2 core-schema typing of plain scalars (chart values).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            _ if self.is_null() => J::Null,
            Value::Scalar { text, plain: true } => {
                if let Some(b) = as_bool(text) {
                    J::Bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    J::from(i)
                } else if let Some(n) = text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && !text.starts_with(['+', '.']))
                    .and_then(serde_json::Number::from_f64)
                {
                    J::Number(n)
                } else {
                    J::String(text.clone())
                }
            }
            Value::Scalar { text, .. } => J::String(text.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The value of `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Interpret a plain scalar as a YAML 1.2 core-schema boolean.
pub fn as_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Why a document could not be read into a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// Key path of the offending node (`upstreams.vault`), when known.
    pub path: String,
    /// What.
    pub message: String,
}

/// Limits that keep hostile input cheap.
const MAX_DEPTH: usize = 64;
const MAX_NODES: usize = 200_000;

/// Parse every document in `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            path: String::new(),
            message: e.info(),
        })?;
        let pos = Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        builder.event(event, pos)?;
    }
    Ok(builder.docs)
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<Frame>,
    nodes: usize,
}

enum Frame {
    Seq(Pos, Vec<Node>),
    /// Entries, the key whose value is being read, and each key's line (so duplicate
    /// detection stays linear however many keys a hostile mapping has).
    Map(
        Pos,
        Vec<(String, Node)>,
        Option<(String, Pos)>,
        std::collections::HashMap<String, usize>,
    ),
}

impl Builder {
    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), SyntaxError> {
        let err = |message: String| SyntaxError {
            pos,
            path: String::new(),
            message,
        };
        match event {
            Event::Alias(_) | Event::Anchor(..) | Event::UnresolvedAlias(_) => {
                return Err(err(
                    "YAML anchors and aliases (&name, *name) are not supported here; write the value out".into(),
                ));
            }
            Event::Scalar(text, style, anchor, _tag) => {
                if anchor != 0 {
                    return Err(err(
                        "YAML anchors and aliases (&name, *name) are not supported here; write the value out".into(),
                    ));
                }
                let node = Node {
                    pos,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                self.add(node)?;
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _)
                if anchor != 0 =>
            {
                return Err(err(
                    "YAML anchors and aliases (&name, *name) are not supported here; write the value out".into(),
                ));
            }
            Event::SequenceStart(..) => self.open(Frame::Seq(pos, Vec::new()), pos)?,
            Event::MappingStart(..) => {
                self.open(Frame::Map(pos, Vec::new(), None, Default::default()), pos)?
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, items)) = self.stack.pop() {
                    self.add(Node {
                        pos: p,
                        value: Value::Seq(items),
                    })?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, entries, _, _)) = self.stack.pop() {
                    self.add(Node {
                        pos: p,
                        value: Value::Map(entries),
                    })?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                path: String::new(),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        // A collection used as a mapping key cannot be a config key.
        if let Some(Frame::Map(_, _, None, _)) = self.stack.last() {
            return Err(SyntaxError {
                pos,
                path: self.path(),
                message: "mapping keys must be plain strings".into(),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn add(&mut self, node: Node) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos: node.pos,
                path: String::new(),
                message: format!("more than {MAX_NODES} YAML nodes"),
            });
        }
        let parent = self.path();
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending, lines)) => match pending.take() {
                None => {
                    let Value::Scalar { text, .. } = node.value else {
                        return Err(SyntaxError {
                            pos: node.pos,
                            path: parent,
                            message: "mapping keys must be plain strings".into(),
                        });
                    };
                    if let Some(first) = lines.get(&text) {
                        return Err(SyntaxError {
                            pos: node.pos,
                            path: join_key(&parent, &text),
                            message: format!(
                                "duplicate key {text:?} (first defined on line {first}); each key may appear once"
                            ),
                        });
                    }
                    lines.insert(text.clone(), node.pos.line);
                    *pending = Some((text, node.pos));
                }
                Some((key, _)) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    /// Key path of the collection being built (`upstreams.vault`, `spec.upstreams[0]`).
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq(_, items) => path.push_str(&format!("[{}]", items.len())),
                Frame::Map(_, _, Some((key, _)), _) => path = join_key(&path, key),
                Frame::Map(..) => {}
            }
        }
        path
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_positions() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        assert_eq!(docs.len(), 1);
        let b = docs[0].get("b").unwrap();
        assert_eq!(b.pos.line, 3);
        let Value::Seq(items) = &b.value else {
            panic!("{b:?}")
        };
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                plain: false
            }
        );
        assert_eq!(docs[0].get("a").unwrap().kind(), "number");
    }

    #[test]
    fn rejects_duplicate_keys_with_both_lines() {
        let e = parse_documents("upstreams:\n  a: {}\n  a: {}\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert_eq!(e.path, "upstreams.a");
        assert!(e.message.contains("first defined on line 2"), "{e:?}");
    }

    #[test]
    fn many_keys_in_one_mapping_stay_cheap() {
        // Duplicate detection used to scan every earlier key: 100k keys took a minute.
        let text: String = (0..90_000).map(|i| format!("k{i}: 1\n")).collect();
        let start = std::time::Instant::now();
        let docs = parse_documents(&text).unwrap();
        assert!(matches!(&docs[0].value, Value::Map(e) if e.len() == 90_000));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn rejects_aliases_so_alias_bombs_cannot_expand() {
        let bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n";
        assert!(
            parse_documents(bomb)
                .unwrap_err()
                .message
                .contains("aliases")
        );
    }

    #[test]
    fn reports_syntax_errors_with_a_line() {
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
