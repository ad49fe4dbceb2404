//! Helm's `repositories.yaml` (`helm repo add` writes it; `--repository-config`): an entry
//! whose URL equals an upstream's `repo` supplies its credentials and TLS files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{SourceAccess, SourceCredential, client_identity, read_file, repo_key};

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    repositories: Vec<Entry>,
}

#[derive(Default, Deserialize)]
struct Entry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "certFile")]
    cert_file: String,
    #[serde(default, rename = "keyFile")]
    key_file: String,
    #[serde(default, rename = "caFile")]
    ca_file: String,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    pass_credentials_all: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A parsed `repositories.yaml`.
#[derive(Debug)]
pub struct RepositoryConfig {
    file: PathBuf,
    entries: Vec<Entry>,
}

impl RepositoryConfig {
    /// Read `file`. A missing or malformed file is an error naming it.
    pub fn load(file: &Path) -> Result<RepositoryConfig, String> {
        let shown = file.display();
        let bytes =
            read_file(&file.to_string_lossy()).map_err(|m| format!("--repository-config: {m}"))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("--repository-config {shown}: not UTF-8 text"))?;
        let parsed: File = serde_saphyr::from_str(text).map_err(|e| {
            format!(
                "--repository-config {shown}: not a helm repositories.yaml: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
        Ok(RepositoryConfig {
            file: file.to_path_buf(),
            entries: parsed.repositories,
        })
    }

    /// The access the entry for `repo` grants (`None` when no entry has that URL).
    pub fn access_for(&self, repo: &str) -> Result<Option<SourceAccess>, String> {
        let Some(e) = self
            .entries
            .iter()
            .find(|e| repo_key(&e.url) == repo_key(repo))
        else {
            return Ok(None);
        };
        let at = format!(
            "repositories.yaml entry {:?} ({})",
            e.name,
            self.file.display()
        );
        if e.insecure_skip_tls_verify {
            return Err(format!(
                "{at}: insecure_skip_tls_verify is set; lazyoci always verifies TLS: give the entry a caFile instead"
            ));
        }
        let base = self.file.parent().unwrap_or(Path::new("."));
        let path = |p: &str| base.join(p).to_string_lossy().into_owned();
        let mut said = Vec::new();
        let credential = if e.username.is_empty() {
            None
        } else {
            said.push(format!("username {}", e.username));
            Some(SourceCredential::Basic {
                username: e.username.clone(),
                password: e.password.clone(),
            })
        };
        let ca_pem = if e.ca_file.is_empty() {
            None
        } else {
            let pem = read_file(&path(&e.ca_file)).map_err(|m| format!("{at}: caFile: {m}"))?;
            super::check_ca(&pem).map_err(|m| format!("{at}: caFile {} {m}", e.ca_file))?;
            Some(pem)
        };
        let identity_pem = match (e.cert_file.is_empty(), e.key_file.is_empty()) {
            (true, true) => None,
            (false, false) => {
                said.push(format!("client certificate {}", e.cert_file));
                let cert =
                    read_file(&path(&e.cert_file)).map_err(|m| format!("{at}: certFile: {m}"))?;
                let key =
                    read_file(&path(&e.key_file)).map_err(|m| format!("{at}: keyFile: {m}"))?;
                Some(client_identity(&cert, &key).map_err(|m| format!("{at}: {m}"))?)
            }
            _ => {
                return Err(format!(
                    "{at}: certFile and keyFile go together; set both or neither"
                ));
            }
        };
        Ok(Some(SourceAccess {
            credential,
            ca_pem,
            identity_pem,
            pass_credentials: e.pass_credentials_all,
            origin: if said.is_empty() {
                at
            } else {
                format!("{at} ({})", said.join(", "))
            },
        }))
    }
}
