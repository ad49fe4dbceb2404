//! Reading chart archives without trusting them. Pure (in memory).
//!
//! Only what lazyoci needs is read (Chart.yaml), but every entry is checked on the way:
//! no absolute paths, no `..`, no links, bounded sizes, one top-level directory. Archives
//! are never unpacked to disk; helm reads them itself.

use std::io::Read;

/// Compressed archives larger than this are refused.
pub const MAX_ARCHIVE_BYTES: usize = 64 * 1024 * 1024;
/// Uncompressed content larger than this is refused (decompression bombs).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
/// More entries than this are refused.
pub const MAX_ENTRIES: usize = 20_000;

/// What Chart.yaml says, plus its JSON form (the OCI config blob).
#[derive(Clone, Debug, PartialEq)]
pub struct ChartMeta {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// `annotations`, if any.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The whole Chart.yaml as JSON.
    pub json: serde_json::Value,
}

/// Why an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Not gzip, or not tar inside.
    #[error("not a gzip-compressed tar archive: {0}")]
    Format(String),
    /// Over a size or count limit.
    #[error("archive too large: {0}")]
    TooLarge(String),
    /// An entry that could escape or confuse extraction.
    #[error("unsafe archive entry {path:?}: {reason}")]
    UnsafeEntry {
        /// Entry path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Chart.yaml is missing or invalid.
    #[error("bad Chart.yaml: {0}")]
    ChartYaml(String),
    /// The archive holds another chart or version than asked for.
    #[error("archive holds chart {found}, expected {expected}")]
    WrongChart {
        /// What was asked for.
        expected: String,
        /// What is inside.
        found: String,
    },
}

/// Check every entry of a chart archive and read its Chart.yaml.
pub fn inspect(archive: &[u8]) -> Result<ChartMeta, ArchiveError> {
    let mut chart_yaml: Option<Vec<u8>> = None;
    let (top, _) = walk(archive, MAX_UNPACKED_BYTES, &mut |rel, entry, size| {
        if rel == "Chart.yaml" {
            chart_yaml = Some(read_small(entry, size, "Chart.yaml", 1024 * 1024)?);
        }
        Ok(())
    })?;
    let Some(yaml) = chart_yaml else {
        return Err(ArchiveError::ChartYaml(format!(
            "no Chart.yaml in the chart directory {top:?}"
        )));
    };
    let meta = parse_chart_yaml(&yaml)?;
    if meta.name != top {
        // Helm packages charts under their own name; a mismatch is a wrong or tampered archive.
        return Err(ArchiveError::WrongChart {
            expected: top,
            found: meta.name,
        });
    }
    Ok(meta)
}

/// Files read from an archive: (path relative to the chart directory, content).
pub type ArchiveFiles = Vec<(String, Vec<u8>)>;

/// Called for every regular file of an archive: path, content reader, size.
type Visit<'a> = dyn FnMut(&str, &mut dyn Read, u64) -> Result<(), ArchiveError> + 'a;

/// The files of a chart archive whose path (relative to the chart directory, e.g.
/// `values.yaml`, `charts/redis/Chart.yaml`) `want` accepts, each at most `max_each`
/// bytes, with every entry checked as [`inspect`] does and at most `budget` bytes
/// unpacked in all. Returns the chart directory name, the files in archive order, and the
/// bytes the archive unpacks to.
pub fn files(
    archive: &[u8],
    want: &dyn Fn(&str) -> bool,
    max_each: u64,
    budget: u64,
) -> Result<(String, ArchiveFiles, u64), ArchiveError> {
    let mut out = Vec::new();
    let (top, used) = walk(archive, budget, &mut |rel, entry, size| {
        if want(rel) {
            out.push((rel.to_string(), read_small(entry, size, rel, max_each)?));
        }
        Ok(())
    })?;
    Ok((top, out, used))
}

/// A copy of `archive` with `extra` files (paths relative to the chart directory) added,
/// replacing entries of the same path. Used to vendor fetched dependencies for rendering.
pub fn append(archive: &[u8], extra: &[(String, Vec<u8>)]) -> Result<Vec<u8>, ArchiveError> {
    let mut kept: Vec<(String, Vec<u8>)> = Vec::new();
    let (top, _) = walk(archive, MAX_UNPACKED_BYTES, &mut |rel, entry, size| {
        if !rel.is_empty() && !extra.iter().any(|(p, _)| p == rel) && !rel.ends_with('/') {
            kept.push((
                rel.to_string(),
                read_small(entry, size, rel, MAX_UNPACKED_BYTES)?,
            ));
        }
        Ok(())
    })?;
    let io = |e: std::io::Error| ArchiveError::Format(e.to_string());
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in kept.iter().chain(extra) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("{top}/{path}"), data.as_slice())
            .map_err(io)?;
    }
    b.into_inner().map_err(io)?.finish().map_err(io)
}

fn read_small(
    entry: &mut dyn Read,
    size: u64,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, ArchiveError> {
    if size > limit {
        return Err(ArchiveError::TooLarge(format!(
            "{what} is over {} KiB",
            limit >> 10
        )));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| ArchiveError::Format(e.to_string()))?;
    Ok(buf)
}

/// Walk every entry, refusing anything unsafe; `visit` gets each regular file's path
/// relative to the chart directory. More than `limit` bytes unpacked is refused. Returns the
/// chart directory name and the bytes unpacked.
fn walk(archive: &[u8], limit: u64, visit: &mut Visit<'_>) -> Result<(String, u64), ArchiveError> {
    if archive.len() > MAX_ARCHIVE_BYTES {
        return Err(ArchiveError::TooLarge(format!(
            "{} bytes compressed, the limit is {MAX_ARCHIVE_BYTES}",
            archive.len()
        )));
    }
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err(ArchiveError::Format("missing gzip header".into()));
    }
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz.take(limit.saturating_add(1)));
    let mut top: Option<String> = None;
    let mut total = 0u64;
    let entries = tar
        .entries()
        .map_err(|e| ArchiveError::Format(e.to_string()))?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(ArchiveError::TooLarge(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        let mut entry = entry.map_err(|e| ArchiveError::Format(e.to_string()))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = |reason: &str| ArchiveError::UnsafeEntry {
            path: raw_path.clone(),
            reason: reason.into(),
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(unsafe_entry("links are not allowed in chart archives"));
        }
        if !(kind.is_file()
            || kind.is_dir()
            || kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname())
        {
            return Err(unsafe_entry("only files and directories are allowed"));
        }
        if raw_path.starts_with('/') || raw_path.starts_with('\\') || raw_path.contains(":\\") {
            return Err(unsafe_entry("absolute paths are not allowed"));
        }
        if raw_path.split(['/', '\\']).any(|c| c == "..") {
            return Err(unsafe_entry("'..' is not allowed"));
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| ArchiveError::Format(e.to_string()))?;
        total = total.saturating_add(size);
        if total > limit {
            return Err(ArchiveError::TooLarge(format!(
                "more than {} MiB uncompressed",
                MAX_UNPACKED_BYTES >> 20
            )));
        }
        let trimmed = raw_path.trim_start_matches("./");
        let first = trimmed.split('/').next().unwrap_or_default().to_string();
        if first.is_empty() || (!trimmed.contains('/') && kind.is_file()) {
            return Err(unsafe_entry(
                "every entry must sit inside the chart's directory",
            ));
        }
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(unsafe_entry(&format!(
                    "a chart archive has one top-level directory, found {t:?} and {first:?}"
                )));
            }
            _ => {}
        }
        if kind.is_file() {
            let rel = trimmed[first.len()..].trim_start_matches('/').to_string();
            visit(&rel, &mut entry, size)?;
        }
    }
    top.map(|t| (t, total))
        .ok_or_else(|| ArchiveError::ChartYaml("the archive is empty".into()))
}

/// Parse Chart.yaml bytes.
pub fn parse_chart_yaml(yaml: &[u8]) -> Result<ChartMeta, ArchiveError> {
    let text =
        std::str::from_utf8(yaml).map_err(|_| ArchiveError::ChartYaml("not UTF-8".into()))?;
    let json: serde_json::Value = super::yaml::parse(text).map_err(ArchiveError::ChartYaml)?;
    let field = |k: &str| match json.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let name = field("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ArchiveError::ChartYaml("no name".into()))?;
    let version = field("version")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ArchiveError::ChartYaml("no version".into()))?;
    let annotations = json
        .get("annotations")
        .and_then(|a| a.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(ChartMeta {
        name,
        version,
        description: field("description"),
        annotations,
        json,
    })
}

/// Check that an archive holds `chart` at `version`.
pub fn expect(meta: &ChartMeta, chart: &str, version: &str) -> Result<(), ArchiveError> {
    if meta.name != chart || meta.version != version {
        return Err(ArchiveError::WrongChart {
            expected: format!("{chart}:{version}"),
            found: format!("{}:{}", meta.name, meta.version),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A gzipped tar of `entries` (full paths), for tests.
    pub(crate) fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn reads_chart_yaml_from_a_good_archive() {
        let a = tgz(&[
            (
                "app/Chart.yaml",
                b"apiVersion: v2\nname: app\nversion: 1.2.3\ndescription: d\n",
            ),
            ("app/values.yaml", b""),
        ]);
        let m = inspect(&a).unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.version.as_str(),
                m.description.as_deref()
            ),
            ("app", "1.2.3", Some("d"))
        );
        assert!(expect(&m, "app", "1.2.4").is_err());
    }

    #[test]
    fn refuses_non_gzip_and_missing_chart_yaml() {
        assert!(matches!(
            inspect(b"PK\x03\x04"),
            Err(ArchiveError::Format(_))
        ));
        assert!(matches!(
            inspect(&tgz(&[("app/values.yaml", b"")])),
            Err(ArchiveError::ChartYaml(_))
        ));
        let other = tgz(&[("app/Chart.yaml", b"name: other\nversion: 1.0.0\n")]);
        assert!(matches!(
            inspect(&other),
            Err(ArchiveError::WrongChart { .. })
        ));
    }

    #[test]
    fn refuses_two_top_level_directories() {
        let a = tgz(&[
            ("app/Chart.yaml", b"name: app\nversion: 1\n"),
            ("evil/x", b""),
        ]);
        assert!(matches!(inspect(&a), Err(ArchiveError::UnsafeEntry { .. })));
    }
}
