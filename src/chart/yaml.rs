//! The reader for YAML that comes inside charts (Chart.yaml, values files, Images.lock,
//! Chart.lock, annotation values, helm's rendered output). It accepts what helm accepts.
//!
//! Chart content is not the user's input: a chart that helm installs must be readable
//! here, however its authors wrote it. So, unlike the strict mirror.yaml reader
//! (`config::yaml`), this one:
//! - does not keep comments (serde-saphyr buffers them for look-ahead by default and gives
//!   up after 96, which a commented-out block of a values file passes easily);
//! - lets the last of duplicate keys win, as helm's YAML library does when it fills a map;
//! - expands anchors, aliases and `<<` merge keys;
//! - has budgets sized for `helm template` of a large chart, not for a hand-written file.

use serde_json::Value;

/// Anything larger is refused (helm's own limit for a chart archive is of this order).
pub const MAX_BYTES: usize = 256 * 1024 * 1024;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        emit_comments: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        budget: serde_saphyr::budget! {
            max_events: 50_000_000,
            max_nodes: 20_000_000,
            max_documents: 100_000,
            max_total_scalar_bytes: MAX_BYTES,
        },
    }
}

/// The first line of a parser error: the rest is a source excerpt.
fn first_line(e: &serde_saphyr::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Parse one YAML document (an empty one is `null`).
pub fn parse(text: &str) -> Result<Value, String> {
    if text.len() > MAX_BYTES {
        return Err("larger than 256 MiB".into());
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| first_line(&e))
}

/// Parse every document of a multi-document stream (helm's rendered output).
pub fn parse_all(text: &str) -> Result<Vec<Value>, String> {
    if text.len() > MAX_BYTES {
        return Err("larger than 256 MiB".into());
    }
    serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| first_line(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pathological but valid chart files, each accepted by `helm template`
    /// (tests/it/yaml_charts.rs renders them with the real helm).
    const CASES: [(&str, &str); 5] = [
        (
            "long-comments.yaml",
            include_str!("../../tests/yaml/long-comments.yaml"),
        ),
        (
            "anchors-merge.yaml",
            include_str!("../../tests/yaml/anchors-merge.yaml"),
        ),
        ("tabs.yaml", include_str!("../../tests/yaml/tabs.yaml")),
        (
            "odd-indent.yaml",
            include_str!("../../tests/yaml/odd-indent.yaml"),
        ),
        (
            "duplicate-keys.yaml",
            include_str!("../../tests/yaml/duplicate-keys.yaml"),
        ),
    ];

    #[test]
    fn reads_what_helm_reads() {
        for (name, text) in CASES {
            let v = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let image = v.pointer("/image/repository").and_then(Value::as_str);
            assert_eq!(image, Some("team/api"), "{name}: {v:#}");
        }
        let v = parse(CASES[1].1).unwrap();
        assert_eq!(
            v.pointer("/worker/image/repository")
                .and_then(Value::as_str),
            Some("team/worker"),
            "merge keys expand: {v:#}"
        );
        assert_eq!(
            v.pointer("/worker/image/tag").and_then(Value::as_str),
            Some("2.0"),
            "local keys override merged ones"
        );
        let v = parse(CASES[2].1).unwrap();
        assert_eq!(
            v.pointer("/description").and_then(Value::as_str),
            Some("a\tb")
        );
        let v = parse(CASES[4].1).unwrap();
        assert_eq!(
            v.pointer("/image/tag").and_then(Value::as_str),
            Some("1.0"),
            "the last duplicate wins"
        );
    }

    #[test]
    fn the_default_reader_fails_on_long_comment_runs() {
        // Why this module exists: serde-saphyr's defaults refuse jenkins' values.yaml.
        let e = serde_saphyr::from_str::<Value>(CASES[0].1).unwrap_err();
        assert!(e.to_string().contains("buffered comments"), "{e}");
    }

    #[test]
    fn streams_and_errors() {
        let docs =
            parse_all(include_str!("../../tests/yaml/multi-doc.yaml")).expect("multi-document");
        let kinds: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.get("kind").and_then(Value::as_str))
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment"]);
        assert_eq!(parse("  \n").unwrap(), Value::Null);
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }
}
