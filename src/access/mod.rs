//! Reaching private sources: credentials and TLS material per upstream, resolved from a
//! mirror.yaml `auth` block (environment variables and files), helm's `repositories.yaml`
//! (CLI) or the Secrets a ChartMirror references (operator). Reads the environment and
//! files; never prints a secret.
//!
//! The result, an [`AccessMap`], is keyed the way the fetchers look things up: Helm
//! repositories by URL, OCI registries by host.

pub mod repositories;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::credentials::Credential;
use crate::spec::{AuthSpec, ChartMirrorSpec, OciLocation, SourceType};

/// A secret that authenticates to a source. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceCredential {
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A token: `Authorization: Bearer` for a Helm repository, an identity (OAuth2
    /// refresh) token for an OCI registry.
    Token(String),
}

impl fmt::Debug for SourceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceCredential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            SourceCredential::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl SourceCredential {
    /// The registry form: a token becomes docker's identity-token login (`<token>`).
    pub fn registry_credential(&self) -> Credential {
        match self {
            SourceCredential::Basic { username, password } => Credential {
                username: username.clone(),
                password: password.clone(),
            },
            SourceCredential::Token(t) => Credential {
                username: crate::credentials::IDENTITY_TOKEN_USER.into(),
                password: t.clone(),
            },
        }
    }
}

/// How one source is reached, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceAccess {
    /// Credentials, if any.
    pub credential: Option<SourceCredential>,
    /// CA certificates (PEM) trusted for this source only.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key (PEM, concatenated), checked to belong together.
    pub identity_pem: Option<Vec<u8>>,
    /// Credentials also go to archive hosts other than the repository's own.
    pub pass_credentials: bool,
    /// Where the credentials came from, for messages (never the secret itself), e.g.
    /// `upstreams.internal.auth (username robot, password from $CHARTS_PASS)`.
    pub origin: String,
}

impl SourceAccess {
    /// Whether this carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.credential.is_none() && self.ca_pem.is_none() && self.identity_pem.is_none()
    }
}

/// Resolved access for every source of a run.
#[derive(Clone, Debug, Default)]
pub struct AccessMap {
    /// Helm repositories, keyed by [`repo_key`].
    pub repos: HashMap<String, Arc<SourceAccess>>,
    /// OCI registry hosts (chart sources, and image sources that share them).
    pub hosts: HashMap<String, Arc<SourceAccess>>,
}

/// How a Helm repository URL is looked up: without trailing slashes.
pub fn repo_key(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn read_env(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Err(format!("environment variable {name} is empty")),
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => Err(format!(
            "environment variable {name} is not set; export it before running lazyoci"
        )),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not UTF-8"))
        }
    }
}

/// Files holding secrets or certificates larger than this are refused.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{path} is larger than 1 MiB"));
    }
    Ok(bytes)
}

fn read_secret_file(path: &str) -> Result<String, String> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))?;
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(text)
}

/// Check that `pem` holds at least one CA certificate.
pub fn check_ca(pem: &[u8]) -> Result<(), String> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(c) if !c.is_empty() => Ok(()),
        Ok(_) => Err("holds no PEM certificate".into()),
        Err(e) => Err(format!("is not a PEM certificate bundle: {e}")),
    }
}

/// Check that `cert` (PEM, a chain starting with the client certificate) and `key` (PEM)
/// belong together, and return them concatenated for [`reqwest::Identity::from_pem`].
pub fn client_identity(cert: &[u8], key: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the client certificate file holds no PEM certificate".into());
    }
    let private = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| format!("the key file holds no PEM private key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    match rustls::sign::CertifiedKey::new(certs, signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(
                "the client certificate does not match the private key (they are not a pair); check certFile and keyFile"
                    .into(),
            );
        }
    }
    let mut out = cert.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(key);
    reqwest::Identity::from_pem(&out)
        .map_err(|e| format!("the client certificate cannot be used: {e}"))?;
    Ok(out)
}

/// Resolve a mirror.yaml `auth` block (file paths already absolute). `label` names the
/// block in messages (`upstreams.internal.auth`). Problems come as (camelCase key, message).
pub fn resolve(auth: &AuthSpec, label: &str) -> Result<SourceAccess, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let mut said = Vec::new();
    let mut take = |key: &'static str, r: Result<String, String>| match r {
        Ok(v) => Some(v),
        Err(m) => {
            problems.push((key, m));
            None
        }
    };
    let username = match (&auth.username, &auth.username_env) {
        (Some(u), _) => {
            said.push(format!("username {u}"));
            Some(u.clone())
        }
        (None, Some(var)) => {
            said.push(format!("username from ${var}"));
            take("usernameEnv", read_env(var))
        }
        _ => None,
    };
    let password = match (&auth.password_env, &auth.password_file) {
        (Some(var), _) => {
            said.push(format!("password from ${var}"));
            take("passwordEnv", read_env(var))
        }
        (None, Some(f)) => {
            said.push(format!("password from file {f}"));
            take("passwordFile", read_secret_file(f))
        }
        _ => None,
    };
    let token = match (&auth.token_env, &auth.token_file) {
        (Some(var), _) => {
            said.push(format!("token from ${var}"));
            take("tokenEnv", read_env(var))
        }
        (None, Some(f)) => {
            said.push(format!("token from file {f}"));
            take("tokenFile", read_secret_file(f))
        }
        _ => None,
    };
    let ca_pem = auth.ca_file.as_ref().and_then(|f| {
        take(
            "caFile",
            read_file(f).and_then(|pem| {
                check_ca(&pem).map_err(|m| format!("{f} {m}"))?;
                String::from_utf8(pem).map_err(|_| format!("{f} is not PEM text"))
            }),
        )
        .map(String::into_bytes)
    });
    let identity_pem = match (&auth.cert_file, &auth.key_file) {
        (Some(c), Some(k)) => {
            said.push(format!("client certificate {c}"));
            match (read_file(c), read_file(k)) {
                (Ok(cert), Ok(key)) => match client_identity(&cert, &key) {
                    Ok(id) => Some(id),
                    Err(m) => {
                        problems.push(("certFile", format!("{c} and {k}: {m}")));
                        None
                    }
                },
                (Err(m), _) => {
                    problems.push(("certFile", m));
                    None
                }
                (_, Err(m)) => {
                    problems.push(("keyFile", m));
                    None
                }
            }
        }
        _ => None,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let credential = match (username, password, token) {
        (Some(username), Some(password), _) => Some(SourceCredential::Basic { username, password }),
        (_, _, Some(t)) => Some(SourceCredential::Token(t)),
        _ => None,
    };
    Ok(SourceAccess {
        credential,
        ca_pem,
        identity_pem,
        pass_credentials: auth.pass_credentials,
        origin: format!("{label} ({})", said.join(", ")),
    })
}

/// The CLI's access map: each upstream's `auth`; for a Helm repository without one, the
/// `repositories.yaml` entry whose URL equals its `repo`.
pub fn for_cli(
    spec: &ChartMirrorSpec,
    repositories: Option<&repositories::RepositoryConfig>,
) -> Result<AccessMap, String> {
    let mut map = AccessMap::default();
    for u in &spec.upstreams {
        let label = format!("upstreams.{}.auth", u.name);
        let access = match &u.auth {
            Some(auth) => Some(resolve(auth, &label).map_err(|problems| {
                problems
                    .into_iter()
                    .map(|(k, m)| format!("{label}.{k}: {m}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?),
            None => match (u.source_type, u.repo.as_deref(), repositories) {
                (SourceType::Repo, Some(repo), Some(rc)) => rc.access_for(repo)?,
                _ => None,
            },
        };
        if let Some(a) = access {
            insert(&mut map, u, Arc::new(a));
        }
    }
    Ok(map)
}

/// File `access` under the key its upstream's fetcher looks up.
pub fn insert(map: &mut AccessMap, u: &crate::spec::UpstreamSpec, access: Arc<SourceAccess>) {
    match u.source_type {
        SourceType::Repo => {
            if let Some(repo) = &u.repo {
                map.repos.entry(repo_key(repo)).or_insert(access);
            }
        }
        SourceType::Oci => {
            if let Some(loc) = u
                .registry
                .as_deref()
                .and_then(|r| OciLocation::parse(r).ok())
            {
                map.hosts.entry(loc.host).or_insert(access);
            }
        }
        SourceType::Local => {}
    }
}

#[cfg(test)]
mod tests;
