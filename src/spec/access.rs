//! How a source is reached: the `auth` block of a mirror.yaml upstream (credentials from
//! environment variables or files, client certificates, a CA), and registry mirrors for
//! image sources. Declarations only, never secrets. Pure.

use serde::{Deserialize, Serialize};

/// Credentials and TLS files for one upstream (mirror.yaml `upstreams.<key>.auth`). Secrets
/// are never written inline: each comes from an environment variable or a file (paths are
/// relative to the config file). The operator uses `secretRef`/`certSecretRef` instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// User name, written inline (a user name is not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Environment variable holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// Environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// File holding the password (a trailing newline is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Environment variable holding a token: a bearer token for a Helm repository, an
    /// identity (OAuth2 refresh) token for an OCI registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Client certificate (PEM) for mutual TLS; needs `keyFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// CA certificates (PEM) trusted for this upstream only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Send the credentials also to chart archives that index.yaml places on another host
    /// (Helm's `--pass-credentials`). Default false.
    #[serde(default)]
    pub pass_credentials: bool,
}

/// The `auth` keys, camelCase (mirror.yaml also accepts them kebab-case).
pub const AUTH_KEYS: &[&str] = &[
    "username",
    "usernameEnv",
    "passwordEnv",
    "passwordFile",
    "tokenEnv",
    "tokenFile",
    "certFile",
    "keyFile",
    "caFile",
    "passCredentials",
];

impl AuthSpec {
    /// The file-valued fields, as (camelCase key, mutable value), for path resolution.
    pub fn files_mut(&mut self) -> [(&'static str, &mut Option<String>); 5] {
        [
            ("passwordFile", &mut self.password_file),
            ("tokenFile", &mut self.token_file),
            ("certFile", &mut self.cert_file),
            ("keyFile", &mut self.key_file),
            ("caFile", &mut self.ca_file),
        ]
    }

    /// Semantic problems as (camelCase key, message): combinations that cannot work.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let user = self.username.is_some() || self.username_env.is_some();
        let password = self.password_env.is_some() || self.password_file.is_some();
        let token = self.token_env.is_some() || self.token_file.is_some();
        let pairs = [
            (
                "usernameEnv",
                "username",
                &self.username_env,
                &self.username,
            ),
            (
                "passwordFile",
                "passwordEnv",
                &self.password_file,
                &self.password_env,
            ),
            ("tokenFile", "tokenEnv", &self.token_file, &self.token_env),
        ];
        for (key, other, a, b) in pairs {
            if a.is_some() && b.is_some() {
                out.push((key, format!("set either {other} or {key}, not both")));
            }
        }
        if user && !password {
            out.push((
                if self.username.is_some() {
                    "username"
                } else {
                    "usernameEnv"
                },
                "a user name needs a password: set passwordEnv or passwordFile".into(),
            ));
        }
        if password && !user {
            out.push((
                if self.password_env.is_some() {
                    "passwordEnv"
                } else {
                    "passwordFile"
                },
                "a password needs a user name: set username or usernameEnv".into(),
            ));
        }
        if token && (user || password) {
            out.push((
                if self.token_env.is_some() {
                    "tokenEnv"
                } else {
                    "tokenFile"
                },
                "a token replaces the user name and password: set one or the other".into(),
            ));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => out.push((
                "certFile",
                "a client certificate needs its private key: set keyFile".into(),
            )),
            (None, Some(_)) => out.push((
                "keyFile",
                "a private key needs its client certificate: set certFile".into(),
            )),
            _ => {}
        }
        for (key, value) in [
            ("username", &self.username),
            ("usernameEnv", &self.username_env),
            ("passwordEnv", &self.password_env),
            ("tokenEnv", &self.token_env),
        ] {
            if value.as_deref() == Some("") {
                out.push((key, "must not be empty".into()));
            }
        }
        for (key, value) in [
            ("usernameEnv", &self.username_env),
            ("passwordEnv", &self.password_env),
            ("tokenEnv", &self.token_env),
        ] {
            if let Some(v) = value
                && !v.is_empty()
                && !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                out.push((
                    key,
                    format!(
                        "{v:?} is not an environment variable name (letters, digits and '_'); name the variable, not its value"
                    ),
                ));
            }
        }
        if !user && !password && !token && self.cert_file.is_none() && self.ca_file.is_none() {
            out.push((
                "username",
                "auth sets nothing: give username and passwordEnv/passwordFile, tokenEnv/tokenFile, certFile and keyFile, or caFile".into(),
            ));
        }
        out
    }
}

/// Registry hosts whose images are pulled through mirrors first (containerd `hosts.toml`,
/// `registries.conf`): `docker.io: [artifactory.corp.example/dockerhub-remote]`.
pub fn mirror_problems(mirrors: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (host, list) in mirrors {
        if let Err(m) = super::checks::check_host(host) {
            out.push(format!("{host:?}: {m}"));
        }
        if list.is_empty() {
            out.push(format!("{host}: list at least one mirror"));
        }
        for m in list {
            let (h, path) = m.split_once('/').unwrap_or((m.as_str(), ""));
            if let Err(e) = super::checks::check_host(h) {
                out.push(format!("{host}: mirror {m:?}: {e}"));
            } else if !path.is_empty()
                && let Err(e) = super::checks::check_repo_path(path.trim_end_matches('/'))
            {
                out.push(format!("{host}: mirror {m:?}: {e}"));
            }
        }
    }
    out
}
