//! Registry credentials, resolved per registry host. Reads files and runs credential helpers.
//!
//! The CLI chain is: `$REGISTRY_AUTH_FILE` (podman and skopeo's auth.json), then
//! `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) — `credHelpers[host]`, then
//! `auths[host]`, then `credsStore` — then Helm's registry config
//! (`~/.config/helm/registry/config.json`, `$HELM_REGISTRY_CONFIG`), then anonymous.
//! Identity tokens (`identitytoken`, a helper's `<token>` user) are kept as a credential
//! whose user is [`IDENTITY_TOKEN_USER`]; the registry client trades them for access
//! tokens with the OAuth2 refresh flow.
//! The operator uses [`StaticCredentials`] built from Kubernetes Secrets, whose
//! `credHelpers` are never honoured (a Secret must not be able to run programs).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// The user name docker uses for an identity-token login; the password is the token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A username and password (or token) for one registry host. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A config file exists but is not valid.
    #[error("cannot read registry credentials from {}: {reason}", file.display())]
    BadFile {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {host}: {reason}")]
    Helper {
        /// Helper name.
        helper: String,
        /// Registry host.
        host: String,
        /// Why.
        reason: String,
    },
}

/// Something that knows credentials per registry host.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// Credentials for `host` (as written in references, e.g. `docker.io`, `ghcr.io:443`).
    fn get(
        &self,
        host: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Credential>, CredentialError>>;

    /// Where credentials for `host` come from, for messages (never the secret).
    fn origin(&self, _host: &str) -> String {
        "the docker credential chain".into()
    }
}

/// Per-host credentials that take precedence over another source (the `auth` of OCI
/// upstreams, identity tokens), each with a description of where it came from.
#[derive(Debug)]
pub struct Overrides {
    /// Host → (credential, origin).
    pub hosts: HashMap<String, (Credential, String)>,
    /// Everything else.
    pub then: std::sync::Arc<dyn CredentialSource>,
}

impl CredentialSource for Overrides {
    fn get(
        &self,
        host: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Credential>, CredentialError>> {
        match self.hosts.get(host) {
            Some((c, _)) => {
                let c = c.clone();
                Box::pin(async move { Ok(Some(c)) })
            }
            None => self.then.get(host),
        }
    }

    fn origin(&self, host: &str) -> String {
        match self.hosts.get(host) {
            Some((_, o)) => o.clone(),
            None => self.then.origin(host),
        }
    }
}

/// The same credential lookup keys docker uses for a host.
fn host_keys(host: &str) -> Vec<String> {
    let mut keys = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.extend(
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    keys
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

impl AuthEntry {
    fn credential(&self) -> Option<Credential> {
        if let Some(t) = self.identity_token.as_deref().filter(|t| !t.is_empty()) {
            return Some(Credential {
                username: IDENTITY_TOKEN_USER.into(),
                password: t.to_string(),
            });
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password)
            && !u.is_empty()
        {
            return Some(Credential {
                username: u.clone(),
                password: p.clone(),
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        (!u.is_empty()).then(|| Credential {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

/// Find the entry for `host` in an `auths` map, trying docker's key spellings and
/// tolerating a trailing path (`https://host/v1/`).
fn lookup<'a>(auths: &'a HashMap<String, AuthEntry>, host: &str) -> Option<&'a AuthEntry> {
    for key in host_keys(host) {
        if let Some(e) = auths.get(&key) {
            return Some(e);
        }
    }
    auths.iter().find_map(|(k, v)| {
        let bare = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        (bare.split('/').next() == Some(host)).then_some(v)
    })
}

/// Parse a `kubernetes.io/dockerconfigjson` payload (or any docker config) into
/// per-host credentials. Helpers are ignored on purpose.
pub fn parse_docker_config_auths(bytes: &[u8]) -> Result<HashMap<String, Credential>, String> {
    let cfg: DockerConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(cfg
        .auths
        .iter()
        .filter_map(|(k, v)| {
            let host = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or(host);
            let host = match host {
                "index.docker.io" | "registry-1.docker.io" => "docker.io",
                h => h,
            };
            v.credential().map(|c| (host.to_string(), c))
        })
        .collect())
}

/// Fixed per-host credentials (the operator's, from Secrets; tests).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(pub HashMap<String, Credential>);

impl CredentialSource for StaticCredentials {
    fn get(
        &self,
        host: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Credential>, CredentialError>> {
        let found = host_keys(host).iter().find_map(|k| self.0.get(k)).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn origin(&self, _host: &str) -> String {
        "the referenced Secrets".into()
    }
}

/// The CLI's credential chain: docker config (with helpers), then Helm's registry config.
#[derive(Debug, Clone)]
pub struct DockerCredentials {
    auth_file: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    helm_config: Option<PathBuf>,
    helper_timeout: Duration,
}

impl DockerCredentials {
    /// Use the standard locations (`DOCKER_CONFIG`, `HELM_REGISTRY_CONFIG`, home directory).
    pub fn from_env() -> Self {
        let docker_config = std::env::var_os("DOCKER_CONFIG")
            .map(|d| PathBuf::from(d).join("config.json"))
            .or_else(|| dirs::home_dir().map(|h| h.join(".docker/config.json")));
        let helm_config = std::env::var_os("HELM_REGISTRY_CONFIG")
            .map(PathBuf::from)
            .or_else(|| dirs::config_dir().map(|c| c.join("helm/registry/config.json")));
        DockerCredentials {
            auth_file: std::env::var_os("REGISTRY_AUTH_FILE")
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            docker_config,
            helm_config,
            helper_timeout: Duration::from_secs(30),
        }
    }

    /// Use explicit files (tests).
    pub fn with_files(docker_config: Option<PathBuf>, helm_config: Option<PathBuf>) -> Self {
        DockerCredentials {
            auth_file: None,
            docker_config,
            helm_config,
            helper_timeout: Duration::from_secs(30),
        }
    }

    async fn read(file: &Option<PathBuf>) -> Result<Option<DockerConfig>, CredentialError> {
        let Some(file) = file else { return Ok(None) };
        let bytes = match tokio::fs::read(file).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CredentialError::BadFile {
                    file: file.clone(),
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CredentialError::BadFile {
                file: file.clone(),
                reason: e.to_string(),
            })
    }

    async fn resolve(&self, host: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some(file) = &self.auth_file {
            // An explicitly named auth file must exist (podman and skopeo agree).
            let cfg =
                Self::read(&self.auth_file)
                    .await?
                    .ok_or_else(|| CredentialError::BadFile {
                        file: file.clone(),
                        reason: "REGISTRY_AUTH_FILE names a file that does not exist".into(),
                    })?;
            if let Some(c) = lookup(&cfg.auths, host).and_then(AuthEntry::credential) {
                return Ok(Some(c));
            }
        }
        if let Some(cfg) = Self::read(&self.docker_config).await? {
            let helper = host_keys(host)
                .iter()
                .find_map(|k| cfg.cred_helpers.get(k))
                .cloned();
            if let Some(helper) = helper {
                return run_helper(&helper, host, self.helper_timeout).await;
            }
            if let Some(c) = lookup(&cfg.auths, host).and_then(AuthEntry::credential) {
                return Ok(Some(c));
            }
            if let Some(store) = cfg.creds_store.filter(|s| !s.is_empty())
                && let Some(c) = run_helper(&store, host, self.helper_timeout).await?
            {
                return Ok(Some(c));
            }
        }
        if let Some(cfg) = Self::read(&self.helm_config).await?
            && let Some(c) = lookup(&cfg.auths, host).and_then(AuthEntry::credential)
        {
            return Ok(Some(c));
        }
        Ok(None)
    }
}

impl CredentialSource for DockerCredentials {
    fn get(
        &self,
        host: &str,
    ) -> futures::future::BoxFuture<'_, Result<Option<Credential>, CredentialError>> {
        let host = host.to_string();
        Box::pin(async move { self.resolve(&host).await })
    }

    fn origin(&self, host: &str) -> String {
        let mut files: Vec<String> = Vec::new();
        if let Some(f) = &self.auth_file {
            files.push(format!("REGISTRY_AUTH_FILE {}", f.display()));
        }
        if let Some(f) = &self.docker_config {
            files.push(f.display().to_string());
        }
        if let Some(f) = &self.helm_config {
            files.push(f.display().to_string());
        }
        format!(
            "the login for {host} in {} (`docker login {host}`)",
            files.join(", ")
        )
    }
}

/// Run `docker-credential-<name> get` with the host on stdin, with a timeout.
async fn run_helper(
    name: &str,
    host: &str,
    timeout: Duration,
) -> Result<Option<Credential>, CredentialError> {
    use tokio::io::AsyncWriteExt;
    let fail = |reason: String| CredentialError::Helper {
        helper: name.to_string(),
        host: host.to_string(),
        reason,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(fail(
            "helper names may only contain letters, digits, '-', '_' and '.'".into(),
        ));
    }
    let mut child = tokio::process::Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot start it ({e}); is it installed and on PATH?"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("exit status {}", out.status)));
    }
    #[derive(Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let parsed: HelperOut =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    Ok(Some(Credential {
        username: parsed.username,
        password: parsed.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[tokio::test]
    async fn docker_config_then_helm_config_then_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let docker = write(
            dir.path(),
            "docker.json",
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"},"ghcr.io":{"username":"u","password":"p"}}}"#,
        );
        let helm = write(
            dir.path(),
            "helm.json",
            r#"{"auths":{"quay.io":{"auth":"cTpxcHc="}}}"#,
        );
        let c = DockerCredentials::with_files(Some(docker), Some(helm));
        assert_eq!(c.get("docker.io").await.unwrap().unwrap().password, "hubpw");
        assert_eq!(c.get("ghcr.io").await.unwrap().unwrap().username, "u");
        assert_eq!(c.get("quay.io").await.unwrap().unwrap().password, "qpw");
        assert!(c.get("127.0.0.1:5000").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn helper_names_cannot_smuggle_paths_or_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let docker = write(
            dir.path(),
            "d.json",
            r#"{"credHelpers":{"evil.io":"../../bin/sh"}}"#,
        );
        let c = DockerCredentials::with_files(Some(docker), None);
        let e = c.get("evil.io").await.unwrap_err().to_string();
        assert!(e.contains("helper names may only contain"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = Credential {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn secret_payloads_ignore_helpers_and_normalise_docker_hub() {
        let m = parse_docker_config_auths(
            br#"{"auths":{"https://index.docker.io/v1/":{"username":"a","password":"b"}},"credHelpers":{"x.io":"sh"}}"#,
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["docker.io"].username, "a");
    }
}
