//! Local chart directories, packaged deterministically into an archive helm accepts. Blocking
//! file IO, run on the blocking pool.
//!
//! The same directory always gives the same bytes: entries sorted, fixed modes, owners and
//! times, a gzip header without name or time. `.helmignore` is honoured (plus Helm's own
//! default rule, `templates/.?*`).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::store::ArtifactStore;
use super::{FetchError, FetchedChart, Origin};
use crate::chart::archive;

/// Package the chart at `dir` as `chart` at `version`. When Chart.yaml says another
/// version, the requested one is stamped in (as `helm package --version` does) and noted.
/// The archive is also kept in `store`, by digest.
pub async fn fetch(
    dir: &Path,
    chart: &str,
    version: &str,
    store: &ArtifactStore,
) -> Result<FetchedChart, FetchError> {
    let dir = dir.to_path_buf();
    let chart = chart.to_string();
    let version = version.to_string();
    let fetched = tokio::task::spawn_blocking(move || package(&dir, &chart, &version))
        .await
        .map_err(|e| FetchError::Package {
            path: String::new(),
            reason: e.to_string(),
        })??;
    store.put(&fetched.archive).await?;
    Ok(fetched)
}

fn package(dir: &Path, chart: &str, version: &str) -> Result<FetchedChart, FetchError> {
    let fail = |reason: String| FetchError::Package {
        path: dir.display().to_string(),
        reason,
    };
    let chart_yaml_path = dir.join("Chart.yaml");
    let chart_yaml = std::fs::read(&chart_yaml_path)
        .map_err(|e| fail(format!("cannot read Chart.yaml: {e}")))?;
    let meta = archive::parse_chart_yaml(&chart_yaml).map_err(|e| fail(e.to_string()))?;
    if meta.name != chart {
        return Err(fail(format!(
            "Chart.yaml names chart {:?}, but the config says {chart:?}",
            meta.name
        )));
    }
    let (chart_yaml, note) = if meta.version == version {
        (chart_yaml, None)
    } else {
        let stamped = stamp_version(&chart_yaml, version).map_err(fail)?;
        (
            stamped,
            Some(format!(
                "version {version} stamped into Chart.yaml (the directory says {})",
                meta.version
            )),
        )
    };
    let files = collect(dir).map_err(&fail)?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for rel in &files {
        let data = if rel == Path::new("Chart.yaml") {
            chart_yaml.clone()
        } else {
            std::fs::read(dir.join(rel))
                .map_err(|e| fail(format!("cannot read {}: {e}", rel.display())))?
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let name = Path::new(chart).join(rel);
        tar.append_data(&mut header, &name, data.as_slice())
            .map_err(|e| fail(format!("cannot add {}: {e}", rel.display())))?;
    }
    let tar_bytes = tar.into_inner().map_err(|e| fail(e.to_string()))?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_bytes).map_err(|e| fail(e.to_string()))?;
    let bytes = Bytes::from(gz.finish().map_err(|e| fail(e.to_string()))?);
    let meta = archive::inspect(&bytes).map_err(|e| fail(e.to_string()))?;
    Ok(FetchedChart {
        digest: crate::digest::sha256(&bytes),
        archive: bytes,
        meta,
        origin: Origin::Archive,
        note,
    })
}

/// Replace the top-level `version:` of a Chart.yaml, keeping everything else as written.
fn stamp_version(chart_yaml: &[u8], version: &str) -> Result<Vec<u8>, String> {
    let text =
        std::str::from_utf8(chart_yaml).map_err(|_| "Chart.yaml is not UTF-8".to_string())?;
    let mut found = false;
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        if !found && line.starts_with("version:") {
            found = true;
            out.push_str(&format!("version: {version}\n"));
        } else {
            out.push_str(line);
        }
    }
    if !found {
        return Err("Chart.yaml has no top-level `version:` line to stamp".into());
    }
    Ok(out.into_bytes())
}

/// Files to package, relative to `dir`, sorted; `.helmignore` applied; links refused.
fn collect(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    builder
        .add_line(None, "templates/.?*")
        .map_err(|e| e.to_string())?;
    let helmignore = dir.join(".helmignore");
    if helmignore.is_file()
        && let Some(e) = builder.add(&helmignore)
    {
        return Err(format!(".helmignore: {e}"));
    }
    let rules = builder.build().map_err(|e| format!(".helmignore: {e}"))?;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&abs)
            .map_err(|e| format!("cannot list {}: {e}", abs.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = rel.join(entry.file_name());
            let ft = entry.file_type().map_err(|e| e.to_string())?;
            if ft.is_symlink() {
                return Err(format!(
                    "{} is a symbolic link; copy the file into the chart instead",
                    child.display()
                ));
            }
            if rules
                .matched_path_or_any_parents(&child, ft.is_dir())
                .is_ignore()
            {
                continue;
            }
            if ft.is_dir() {
                stack.push(child);
            } else if ft.is_file() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("templates")).unwrap();
        std::fs::create_dir_all(p.join("charts/sub/templates")).unwrap();
        std::fs::write(
            p.join("Chart.yaml"),
            "apiVersion: v2\nname: app\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(p.join("values.yaml"), "image: nginx\n").unwrap();
        std::fs::write(p.join("templates/a.yaml"), "kind: ConfigMap\n").unwrap();
        std::fs::write(p.join("templates/.hidden"), "x").unwrap();
        std::fs::write(
            p.join("charts/sub/Chart.yaml"),
            "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
        )
        .unwrap();
        std::fs::write(p.join("notes.txt"), "ignored").unwrap();
        std::fs::write(p.join(".helmignore"), "notes.txt\n").unwrap();
        d
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        let mut t = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        t.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn packaging_is_deterministic_and_honours_helmignore() {
        let d = chart_dir();
        let a = package(d.path(), "app", "0.1.0").unwrap();
        let b = package(d.path(), "app", "0.1.0").unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.archive, b.archive);
        assert!(a.note.is_none());
        let n = names(&a.archive);
        assert!(
            n.contains(&"app/charts/sub/Chart.yaml".to_string()),
            "{n:?}"
        );
        assert!(n.contains(&"app/.helmignore".to_string()), "{n:?}");
        assert!(
            !n.iter()
                .any(|x| x.contains("notes.txt") || x.contains(".hidden")),
            "{n:?}"
        );
    }

    #[test]
    fn stamps_a_requested_version_and_says_so() {
        let d = chart_dir();
        let f = package(d.path(), "app", "9.9.9").unwrap();
        assert_eq!(f.meta.version, "9.9.9");
        assert!(f.note.unwrap().contains("stamped"));
        assert!(package(d.path(), "other", "0.1.0").is_err());
    }
}
