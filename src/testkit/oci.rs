//! A tiny plain-HTTP registry client for seeding and for assertions in tests. Independent
//! of lazyoci's own registry code, so tests do not check lazyoci with itself.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;

/// Every manifest media type, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// A registry address with optional basic-auth credentials.
#[derive(Clone, Debug)]
pub struct Conn {
    addr: String,
    basic: Option<(String, String)>,
}

impl Conn {
    /// Anonymous access to `addr`.
    pub fn new(addr: &str) -> Self {
        Conn {
            addr: addr.to_string(),
            basic: None,
        }
    }

    /// Basic auth with `user` and `password`.
    pub fn with_basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.to_string(), password.to_string()));
        self
    }

    fn req(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let r = http().request(method, url);
        match &self.basic {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Upload a blob (POST then PUT); returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: impl Into<Bytes>) -> anyhow::Result<String> {
        let addr = &self.addr;
        let bytes = bytes.into();
        let d = digest(&bytes);
        if self
            .req(
                reqwest::Method::HEAD,
                format!("http://{addr}/v2/{repo}/blobs/{d}"),
            )
            .send()
            .await?
            .status()
            .is_success()
        {
            return Ok(d);
        }
        let resp = self
            .req(
                reqwest::Method::POST,
                format!("http://{addr}/v2/{repo}/blobs/uploads/"),
            )
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().as_u16() == 202,
            "upload start: HTTP {}",
            resp.status()
        );
        let loc = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("no Location")?
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("http://{addr}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let resp = self
            .req(reqwest::Method::PUT, format!("{loc}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().as_u16() == 201,
            "blob PUT: HTTP {}",
            resp.status()
        );
        Ok(d)
    }

    /// PUT a manifest under `reference`; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> anyhow::Result<String> {
        let bytes = bytes.into();
        let d = digest(&bytes);
        let resp = self
            .req(
                reqwest::Method::PUT,
                format!("http://{}/v2/{repo}/manifests/{reference}", self.addr),
            )
            .header("content-type", media_type)
            .body(bytes)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().as_u16() == 201,
            "manifest PUT {repo}:{reference}: HTTP {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        Ok(d)
    }
}

/// `sha256:<hex>` of bytes.
pub fn digest(bytes: &[u8]) -> String {
    crate::digest::sha256(bytes)
}

/// Upload a blob anonymously; returns its digest.
pub async fn push_blob(addr: &str, repo: &str, bytes: impl Into<Bytes>) -> anyhow::Result<String> {
    Conn::new(addr).push_blob(repo, bytes).await
}

/// PUT a manifest anonymously; returns its digest.
pub async fn push_manifest(
    addr: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: impl Into<Bytes>,
) -> anyhow::Result<String> {
    Conn::new(addr)
        .push_manifest(repo, reference, media_type, bytes)
        .await
}

/// The digest `reference` resolves to, or `None`.
pub async fn manifest_digest(
    addr: &str,
    repo: &str,
    reference: &str,
) -> anyhow::Result<Option<String>> {
    Ok(get_manifest(addr, repo, reference)
        .await?
        .map(|(_, b)| digest(&b)))
}

/// A manifest's content type and exact bytes, or `None`.
pub async fn get_manifest(
    addr: &str,
    repo: &str,
    reference: &str,
) -> anyhow::Result<Option<(String, Bytes)>> {
    let resp = http()
        .get(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT)
        .send()
        .await?;
    if resp.status().as_u16() == 404 {
        return Ok(None);
    }
    anyhow::ensure!(
        resp.status().is_success(),
        "manifest GET {repo}:{reference}: HTTP {}",
        resp.status()
    );
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(Some((ct, resp.bytes().await?)))
}

/// Whether the repository has the blob.
pub async fn blob_exists(addr: &str, repo: &str, digest: &str) -> anyhow::Result<bool> {
    Ok(http()
        .head(format!("http://{addr}/v2/{repo}/blobs/{digest}"))
        .send()
        .await?
        .status()
        .is_success())
}

/// Tags of a repository (empty when it does not exist).
pub async fn list_tags(addr: &str, repo: &str) -> anyhow::Result<Vec<String>> {
    let resp = http()
        .get(format!("http://{addr}/v2/{repo}/tags/list"))
        .send()
        .await?;
    if resp.status().as_u16() == 404 {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = resp.json().await?;
    Ok(sorted_strings(&v["tags"]))
}

/// The strings of a JSON array, sorted (empty for anything else).
fn sorted_strings(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Repositories in the registry.
pub async fn catalog(addr: &str) -> anyhow::Result<Vec<String>> {
    let resp = http()
        .get(format!("http://{addr}/v2/_catalog?n=1000"))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "catalog: HTTP {}",
        resp.status()
    );
    let v: serde_json::Value = resp.json().await?;
    Ok(sorted_strings(&v["repositories"]))
}

/// Delete a manifest by digest.
pub async fn delete_manifest(addr: &str, repo: &str, digest: &str) -> anyhow::Result<()> {
    let resp = http()
        .delete(format!("http://{addr}/v2/{repo}/manifests/{digest}"))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "manifest DELETE: HTTP {}",
        resp.status()
    );
    Ok(())
}
