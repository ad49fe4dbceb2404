//! Reading mirror.yaml (or a ChartMirror manifest) into a [`ChartMirrorSpec`]. Pure apart
//! from reading the file and checking that local chart paths exist.
//!
//! Every problem is collected, with its key path and line, before anything is returned:
//! a config is either entirely valid or reported entirely, and nothing touches a network
//! before that.

mod extract;
mod read;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::{ChartMirrorSpec, Field, SourceType};
use extract::Extract;

/// Config files larger than this are refused before parsing.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `upstreams.vault.repo`.
    pub path: String,
    /// Line in the file (0 when not known).
    pub line: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        // Messages quote what was written; a 4 MiB value is not worth printing whole.
        const MAX: usize = 1000;
        let mut message = self.message.as_str();
        let mut cut = "";
        if message.len() > MAX {
            let mut end = MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message = &message[..end];
            cut = "… (cut)";
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{message}{cut}")
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("invalid config {}:\n{}", file.display(), render_problems(problems))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// At most this many problems are printed; a hostile file can have a hundred thousand.
const MAX_SHOWN_PROBLEMS: usize = 50;

fn render_problems(problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems
        .iter()
        .take(MAX_SHOWN_PROBLEMS)
        .map(|p| format!("  - {p}"))
        .collect();
    if problems.len() > MAX_SHOWN_PROBLEMS {
        lines.push(format!(
            "  … and {} more problems",
            problems.len() - MAX_SHOWN_PROBLEMS
        ));
    }
    lines.join("\n")
}

/// Which form a config file was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigForm {
    /// mirror.yaml: kebab-case keys, upstreams as a map.
    MirrorYaml,
    /// A ChartMirror manifest: camelCase keys under `spec`, upstreams as a list.
    ChartMirror,
}

/// Load and validate a config file. Local chart paths are resolved against the file's
/// directory and must exist.
pub fn load(file: &Path) -> Result<(ChartMirrorSpec, ConfigForm), ConfigError> {
    let bytes = read_limited(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let base = file
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&bytes, &base).map_err(|problems| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    })
}

fn read_limited(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(file)?;
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::other("it is a directory, not a file"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB; a mirror config is a few kilobytes",
            MAX_CONFIG_BYTES / 1024 / 1024
        )));
    }
    Ok(bytes)
}

/// Parse config bytes; `base` is the directory local paths are relative to.
pub fn parse(bytes: &[u8], base: &Path) -> Result<(ChartMirrorSpec, ConfigForm), Vec<Problem>> {
    let whole = |message: String| {
        vec![Problem {
            path: String::new(),
            line: 0,
            message,
        }]
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        vec![Problem {
            path: String::new(),
            line: 1 + bytes[..at].iter().filter(|b| **b == b'\n').count(),
            message: format!(
                "not UTF-8 text (invalid byte 0x{:02x} at offset {at}); save the file as UTF-8",
                bytes[at]
            ),
        }]
    })?;
    let docs = yaml::parse_documents(text).map_err(|e| {
        vec![Problem {
            message: if e.path.is_empty() {
                format!("YAML syntax: {}", e.message)
            } else {
                e.message
            },
            path: e.path,
            line: e.pos.line,
        }]
    })?;
    let doc = match docs.as_slice() {
        [] => {
            return Err(whole(
                "the file is empty: expected a mapping with `target` and `upstreams`".into(),
            ));
        }
        [doc] if doc.is_null() => {
            return Err(whole(
                "the file is empty: expected a mapping with `target` and `upstreams`".into(),
            ));
        }
        [doc] => doc,
        [_, second, ..] => {
            return Err(vec![Problem {
                path: String::new(),
                line: second.pos.line,
                message: format!("{} YAML documents; a config holds exactly one", docs.len()),
            }]);
        }
    };
    let is_manifest = doc.get("kind").is_some() || doc.get("apiVersion").is_some();
    let mut x = Extract::default();
    let (spec, form) = if is_manifest {
        (x.manifest(doc), ConfigForm::ChartMirror)
    } else {
        (x.mirror_yaml(doc), ConfigForm::MirrorYaml)
    };
    let Some(mut spec) = spec else {
        x.problems.sort_by_key(|p| p.line);
        return Err(x.problems);
    };
    for p in spec.problems() {
        x.problem_at(&p.field, form, p.message);
    }
    for (i, u) in spec.upstreams.iter_mut().enumerate() {
        if u.source_type != SourceType::Local {
            continue;
        }
        let Some(p) = u.path.as_deref().filter(|p| !p.is_empty()) else {
            continue;
        };
        let resolved = resolve(base, p);
        if !resolved.join("Chart.yaml").is_file() {
            x.problem_at(
                &Field::Upstream(i, "path"),
                form,
                format!(
                    "{} is not a chart directory (no Chart.yaml there); paths are relative to the config file",
                    resolved.display()
                ),
            );
        } else {
            u.path = Some(resolved.to_string_lossy().into_owned());
        }
    }
    for (i, u) in spec.upstreams.iter_mut().enumerate() {
        for entry in u.values_files.iter_mut() {
            if !crate::pipeline::is_local_values_file(entry) {
                continue;
            }
            let resolved = resolve(base, entry);
            if resolved.is_file() {
                *entry = resolved.to_string_lossy().into_owned();
            } else {
                x.problem_at(
                    &Field::Upstream(i, "valuesFiles"),
                    form,
                    format!(
                        "{} is not a file; paths starting with ./, ../ or / are relative to the config file, other names are files inside the chart",
                        resolved.display()
                    ),
                );
            }
        }
    }
    // Credentials and TLS files are read now, so that a missing variable or an unreadable
    // file stops the run before any request (and is read again when the run starts).
    for (i, u) in spec.upstreams.iter_mut().enumerate() {
        let Some(auth) = u.auth.as_mut() else {
            continue;
        };
        for (_, file) in auth.files_mut() {
            if let Some(f) = file.as_mut() {
                *f = resolve(base, f).to_string_lossy().into_owned();
            }
        }
        if let Err(problems) = crate::access::resolve(auth, "") {
            for (field, message) in problems {
                x.problem_at(&Field::Auth(i, field), form, message);
            }
        }
    }
    x.problems.sort_by_key(|p| p.line);
    if x.problems.is_empty() {
        Ok((spec, form))
    } else {
        Err(x.problems)
    }
}

/// What a CLI run of a ChartMirror manifest leaves out: the `secretRef`s and
/// `certSecretRef`s the operator reads from Kubernetes Secrets, each with what to use on
/// the CLI instead. One line per field, for the CLI to print as warnings. Pure.
pub fn ignored_by_cli(spec: &ChartMirrorSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |path: String, secret: &str, instead: &str| {
        out.push(format!(
            "{path} (Secret {secret:?}) is ignored: the CLI reads no Kubernetes Secrets; {instead}"
        ));
    };
    let t = &spec.target;
    if let Some(r) = &t.secret_ref {
        say(
            "spec.target.secretRef".into(),
            &r.name,
            "the target's credentials come from the docker config (docker login, $DOCKER_CONFIG) or $REGISTRY_AUTH_FILE",
        );
    }
    if let Some(r) = &t.cert_secret_ref {
        say(
            "spec.target.certSecretRef".into(),
            &r.name,
            "pass the target's CA with --ca-file",
        );
    }
    for (i, u) in spec.upstreams.iter().enumerate() {
        let at = |f: &str| format!("spec.upstreams[{i}].{f} ({})", u.name);
        if let Some(r) = &u.secret_ref {
            let instead = match u.source_type {
                SourceType::Repo => {
                    "give this upstream `auth:` (usernameEnv/passwordEnv, tokenEnv, …) in a mirror.yaml, or helm's repositories.yaml with --repository-config"
                }
                _ => {
                    "give this upstream `auth:` in a mirror.yaml, or log in with the docker config (docker login) or $REGISTRY_AUTH_FILE"
                }
            };
            say(at("secretRef"), &r.name, instead);
        }
        if let Some(r) = &u.cert_secret_ref {
            let instead = match u.source_type {
                SourceType::Repo => {
                    "give this upstream `auth:` with caFile/certFile/keyFile in a mirror.yaml, or helm's repositories.yaml with --repository-config, or --ca-file for a CA"
                }
                _ => {
                    "give this upstream `auth:` with caFile/certFile/keyFile in a mirror.yaml, or --ca-file for a CA"
                }
            };
            say(at("certSecretRef"), &r.name, instead);
        }
    }
    out
}

/// `path` relative to the config file's directory, without `.` components (so messages and
/// the stored path read cleanly).
fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests;
