//! Registry credentials, Helm repository credentials and TLS material from the Secrets a
//! ChartMirror references (same namespace). Secret contents never reach logs, status or
//! events: messages name the Secret and key only.
//!
//! - `target.secretRef`: `kubernetes.io/dockerconfigjson`, for the target (and any host it
//!   lists). `target.certSecretRef`: `ca.crt`, optionally `tls.crt` + `tls.key`.
//! - `upstreams[].secretRef`: a dockerconfigjson Secret gives registry credentials by host
//!   (image sources, OCI charts), as before. Otherwise Flux's HelmRepository format:
//!   `username` + `password` or `bearerToken`, optionally `tls.crt` + `tls.key` and
//!   `ca.crt`, for that upstream's Helm repository (or OCI registry) only.
//! - `upstreams[].certSecretRef`: `ca.crt` and/or `tls.crt` + `tls.key` for that upstream.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::access::{AccessMap, SourceAccess, SourceCredential, client_identity};
use crate::credentials::{Credential, StaticCredentials, parse_docker_config_auths};
use crate::spec::{ChartMirrorSpec, SourceType, TargetUrl, UpstreamSpec};

/// What the referenced Secrets provide.
#[derive(Debug, Default)]
pub struct SecretMaterial {
    /// Credentials per registry host.
    pub credentials: StaticCredentials,
    /// Extra CA certificates (PEM) for every host.
    pub ca_pem: Vec<Vec<u8>>,
    /// Per-source access: Helm repositories by URL, registries by host.
    pub access: AccessMap,
}

/// Why a Secret could not be used. Names the Secret and key, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not found or not readable.
    #[error("secret {name}: {reason}")]
    Get {
        /// Secret name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Missing or malformed key.
    #[error("secret {name}: {reason}")]
    Content {
        /// Secret name.
        name: String,
        /// Why.
        reason: String,
    },
}

async fn get(api: &Api<Secret>, name: &str) -> Result<Secret, SecretError> {
    match tokio::time::timeout(std::time::Duration::from_secs(30), api.get(name)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 => Err(SecretError::Get {
            name: name.into(),
            reason: "not found in the ChartMirror's namespace".into(),
        }),
        Ok(Err(e)) => Err(SecretError::Get {
            name: name.into(),
            reason: e.to_string(),
        }),
        Err(_) => Err(SecretError::Get {
            name: name.into(),
            reason: "the API server did not answer within 30s".into(),
        }),
    }
}

fn key<'a>(secret: &'a Secret, k: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(k))
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
}

fn dockerconfig(
    secret: &Secret,
    name: &str,
) -> Option<Result<HashMap<String, Credential>, SecretError>> {
    let bytes = key(secret, ".dockerconfigjson").or_else(|| key(secret, ".dockercfg"))?;
    Some(
        parse_docker_config_auths(bytes).map_err(|_| SecretError::Content {
            name: name.into(),
            reason: ".dockerconfigjson is not valid docker config JSON".into(),
        }),
    )
}

fn text(secret: &Secret, name: &str, k: &str) -> Result<Option<String>, SecretError> {
    key(secret, k)
        .map(|b| {
            String::from_utf8(b.to_vec())
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|_| SecretError::Content {
                    name: name.into(),
                    reason: format!("{k} is not UTF-8 text"),
                })
        })
        .transpose()
}

/// TLS material (`tls.crt` + `tls.key`, `ca.crt`) of a Secret into `access`.
fn tls(secret: &Secret, name: &str, access: &mut SourceAccess) -> Result<bool, SecretError> {
    let bad = |reason: String| SecretError::Content {
        name: name.into(),
        reason,
    };
    let mut found = false;
    if let Some(ca) = key(secret, "ca.crt") {
        crate::access::check_ca(ca).map_err(|m| bad(format!("ca.crt {m}")))?;
        access.ca_pem = Some(ca.to_vec());
        found = true;
    }
    match (key(secret, "tls.crt"), key(secret, "tls.key")) {
        (Some(c), Some(k)) => {
            access.identity_pem =
                Some(client_identity(c, k).map_err(|m| bad(format!("tls.crt and tls.key: {m}")))?);
            found = true;
        }
        (None, None) => {}
        _ => {
            return Err(bad(
                "tls.crt and tls.key go together; set both or neither".into()
            ));
        }
    }
    Ok(found)
}

/// A Secret in Flux's HelmRepository format as `upstream`'s own access.
fn flux(secret: &Secret, name: &str, u: &UpstreamSpec) -> Result<SourceAccess, SecretError> {
    let mut access = SourceAccess {
        origin: format!("Secret {name}"),
        ..Default::default()
    };
    let username = text(secret, name, "username")?;
    let password = text(secret, name, "password")?;
    let token = text(secret, name, "bearerToken")?;
    access.credential = match (username, password, token) {
        (Some(username), Some(password), _) => {
            access.origin = format!("Secret {name} (username {username})");
            Some(SourceCredential::Basic { username, password })
        }
        (None, None, Some(t)) => {
            access.origin = format!("Secret {name} (bearerToken)");
            Some(SourceCredential::Token(t))
        }
        (None, None, None) => None,
        _ => {
            return Err(SecretError::Content {
                name: name.into(),
                reason: "expected username and password together, or bearerToken alone".into(),
            });
        }
    };
    let has_tls = tls(secret, name, &mut access)?;
    if access.credential.is_none() && !has_tls {
        return Err(SecretError::Content {
            name: name.into(),
            reason: format!(
                "no credentials found for upstream {}: expected username and password, or bearerToken (Flux HelmRepository format), tls.crt and tls.key, or a kubernetes.io/dockerconfigjson Secret",
                u.name
            ),
        });
    }
    Ok(access)
}

/// Read every Secret `spec` references.
pub async fn load(
    api: &Api<Secret>,
    spec: &ChartMirrorSpec,
) -> Result<SecretMaterial, SecretError> {
    let mut out = SecretMaterial::default();
    if let Some(r) = &spec.target.secret_ref {
        let secret = get(api, &r.name).await?;
        let auths = dockerconfig(&secret, &r.name).unwrap_or_else(|| {
            Err(SecretError::Content {
                name: r.name.clone(),
                reason:
                    "expected a kubernetes.io/dockerconfigjson Secret with a .dockerconfigjson key"
                        .into(),
            })
        })?;
        for (host, cred) in auths {
            out.credentials.0.entry(host).or_insert(cred);
        }
    }
    for u in &spec.upstreams {
        let mut access = None;
        if let Some(r) = &u.secret_ref {
            let secret = get(api, &r.name).await?;
            match dockerconfig(&secret, &r.name) {
                Some(auths) => {
                    for (host, cred) in auths? {
                        out.credentials.0.entry(host).or_insert(cred);
                    }
                }
                None if u.source_type == SourceType::Local => {
                    return Err(SecretError::Content {
                        name: r.name.clone(),
                        reason: format!(
                            "upstream {} is a local chart: its secretRef can only be a kubernetes.io/dockerconfigjson Secret (for its images)",
                            u.name
                        ),
                    });
                }
                None => access = Some(flux(&secret, &r.name, u)?),
            }
        }
        if let Some(r) = &u.cert_secret_ref {
            let secret = get(api, &r.name).await?;
            let a = access.get_or_insert_with(|| SourceAccess {
                origin: format!("Secret {}", r.name),
                ..Default::default()
            });
            if !tls(&secret, &r.name, a)? {
                return Err(SecretError::Content {
                    name: r.name.clone(),
                    reason: "expected ca.crt, or tls.crt and tls.key".into(),
                });
            }
        }
        if let Some(a) = access {
            crate::access::insert(&mut out.access, u, Arc::new(a));
        }
    }
    if let Some(r) = &spec.target.cert_secret_ref {
        let secret = get(api, &r.name).await?;
        let mut a = SourceAccess::default();
        if !tls(&secret, &r.name, &mut a)? {
            return Err(SecretError::Content {
                name: r.name.clone(),
                reason: "expected a ca.crt key (and optionally tls.crt and tls.key)".into(),
            });
        }
        // The target's CA is trusted everywhere (as before); its client certificate goes to
        // the target only.
        out.ca_pem.extend(a.ca_pem.take());
        if a.identity_pem.is_some()
            && let Ok(t) = TargetUrl::parse(&spec.target.url)
        {
            out.access.hosts.entry(t.host).or_insert(Arc::new(a));
        }
    }
    Ok(out)
}
