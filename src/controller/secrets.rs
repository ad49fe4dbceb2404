//! Registry credentials and CA certificates from the Secrets a ChartMirror references (same
//! namespace). Secret contents never reach logs, status or events.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::credentials::{Credential, StaticCredentials, parse_docker_config_auths};
use crate::spec::ChartMirrorSpec;

/// What the referenced Secrets provide.
#[derive(Debug, Default)]
pub struct SecretMaterial {
    /// Credentials per registry host.
    pub credentials: StaticCredentials,
    /// Extra CA certificates (PEM).
    pub ca_pem: Vec<Vec<u8>>,
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

fn dockerconfig(secret: &Secret, name: &str) -> Result<HashMap<String, Credential>, SecretError> {
    let data = secret.data.as_ref();
    let bytes = data
        .and_then(|d| d.get(".dockerconfigjson").or_else(|| d.get(".dockercfg")))
        .ok_or_else(|| SecretError::Content {
            name: name.into(),
            reason: "expected a kubernetes.io/dockerconfigjson Secret with a .dockerconfigjson key"
                .into(),
        })?;
    parse_docker_config_auths(&bytes.0).map_err(|_| SecretError::Content {
        name: name.into(),
        reason: ".dockerconfigjson is not valid docker config JSON".into(),
    })
}

/// Read every Secret `spec` references.
pub async fn load(
    api: &Api<Secret>,
    spec: &ChartMirrorSpec,
) -> Result<SecretMaterial, SecretError> {
    let mut out = SecretMaterial::default();
    let mut refs: Vec<&str> = spec
        .target
        .secret_ref
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    refs.extend(
        spec.upstreams
            .iter()
            .filter_map(|u| u.secret_ref.as_ref())
            .map(|r| r.name.as_str()),
    );
    for name in refs {
        let secret = get(api, name).await?;
        for (host, cred) in dockerconfig(&secret, name)? {
            out.credentials.0.entry(host).or_insert(cred);
        }
    }
    if let Some(r) = &spec.target.cert_secret_ref {
        let secret = get(api, &r.name).await?;
        let ca = secret
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .ok_or_else(|| SecretError::Content {
                name: r.name.clone(),
                reason: "expected a ca.crt key".into(),
            })?;
        out.ca_pem.push(ca.0.clone());
    }
    Ok(out)
}
