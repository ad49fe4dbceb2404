//! Artifacts attached to an image by digest: cosign's tag scheme (`sha256-<hex>.sig`, `.att`,
//! `.sbom`) and OCI 1.1 referrers, listed through the referrers API or, where a registry lacks
//! it, through the referrers tag schema (a `sha256-<hex>` tag holding an index of referrer
//! descriptors). IO.

use bytes::Bytes;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client::RegistryClient;
use super::endpoint::Sink;
use super::http::read_limited;
use super::manifest::{self, RawManifest};
use super::{RegistryError, Scope};

/// The tag derived from a digest by cosign and by the referrers tag schema:
/// `sha256:<hex>` → `sha256-<hex>` followed by `suffix` (`.sig`, `.att`, `.sbom` or nothing).
pub fn digest_tag(digest: &str, suffix: &str) -> String {
    format!("{}{suffix}", digest.replacen(':', "-", 1))
}

/// One entry of a referrers index: the raw descriptor (kept whole when an index is rebuilt)
/// and the fields lazyoci reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Referrer {
    /// The descriptor as the registry served it.
    pub raw: Value,
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// `artifactType`, if any.
    pub artifact_type: Option<String>,
}

/// The `manifests` of an OCI index, as referrers. Entries without a sha256 digest are refused.
pub fn parse_referrers(bytes: &[u8]) -> Result<Vec<Referrer>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("referrers index is not JSON: {e}"))?;
    let Some(entries) = doc.get("manifests").and_then(Value::as_array) else {
        return Err("referrers index has no manifests list".into());
    };
    entries
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let digest = text("digest")
                .filter(|d| crate::digest::is_sha256(d))
                .ok_or_else(|| format!("referrer descriptor without a sha256 digest: {e}"))?;
            Ok(Referrer {
                raw: e.clone(),
                digest,
                media_type: text("mediaType").unwrap_or_default(),
                artifact_type: text("artifactType"),
            })
        })
        .collect()
}

/// `existing` (an index's bytes, if any) with `add` appended where their digests are new;
/// `None` when nothing is new. Every other field of the existing index is kept.
pub fn merge_index(existing: Option<&[u8]>, add: &[Referrer]) -> Result<Option<Bytes>, String> {
    let mut doc = match existing {
        Some(b) => serde_json::from_slice::<Value>(b)
            .map_err(|e| format!("referrers index is not JSON: {e}"))?,
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": [],
        }),
    };
    let have = existing
        .map(parse_referrers)
        .transpose()?
        .unwrap_or_default();
    let new: Vec<Value> = add
        .iter()
        .filter(|r| !have.iter().any(|h| h.digest == r.digest))
        .map(|r| r.raw.clone())
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    match doc.get_mut("manifests").and_then(Value::as_array_mut) {
        Some(list) => list.extend(new),
        None => return Err("referrers index has no manifests list".into()),
    }
    serde_json::to_vec(&doc)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| e.to_string())
}

impl RegistryClient {
    /// The referrers of `digest` from the OCI referrers API, or `None` when the registry does
    /// not offer the API (any 4xx answer; remembered for the host, so it is asked once; a
    /// 401/403 counts as no API but is not remembered).
    pub async fn referrers_api(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        // Until the first answer, probes take turns; after it, nothing waits.
        let mut known = self.referrers_api.lock().await;
        match *known {
            Some(false) => return Ok(None),
            Some(true) => drop(known),
            None => {
                let answer = self.ask_referrers_api(repo, digest).await;
                match &answer {
                    Ok(list) => *known = Some(list.is_some()),
                    // Some registries refuse unknown endpoints with 401/403: no API, then.
                    Err(RegistryError::Auth { .. }) => return Ok(None),
                    Err(_) => {}
                }
                return answer;
            }
        }
        match self.ask_referrers_api(repo, digest).await {
            Err(RegistryError::Auth { .. }) => Ok(None),
            r => r,
        }
    }

    async fn ask_referrers_api(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let url = self.url(&format!("{repo}/referrers/{digest}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(manifest::OCI_INDEX));
        let resp = self
            .send(
                Method::GET,
                &url,
                &Scope::Pull(repo.to_string()),
                headers,
                None,
                self.opts.request_timeout,
            )
            .await?;
        let status = resp.status();
        if status.is_client_error() {
            return Ok(None);
        }
        let body = read_limited(resp, manifest::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| self.read_error(&format!("referrers of {repo}@{digest}"), e))?;
        if status != StatusCode::OK {
            return Err(self.status_error(&Method::GET, &url, status, &body));
        }
        parse_referrers(&body)
            .map(Some)
            .map_err(|reason| RegistryError::Protocol {
                host: self.host.clone(),
                reason: format!("referrers of {repo}@{digest}: {reason}"),
            })
    }
}

/// Make the referrers tag schema index of `subject` in `repo` of `d` list `referrers`. When
/// the tag is absent and `exact` (the source's own index, listing the same referrers) is
/// given, it is stored byte for byte so its digest is kept; otherwise the index is merged.
/// Returns whether anything was written.
pub async fn update_referrers_tag<D: Sink>(
    d: &D,
    repo: &str,
    subject: &str,
    referrers: &[Referrer],
    exact: Option<&RawManifest>,
) -> Result<bool, RegistryError> {
    let tag = digest_tag(subject, "");
    let scope = Scope::Push(repo.to_string());
    let existing = d.get_manifest(repo, &tag, &scope).await?;
    if existing.is_none()
        && let Some(m) = exact
    {
        d.put_manifest(repo, &tag, m).await?;
        return Ok(true);
    }
    let merged =
        merge_index(existing.as_ref().map(|m| &m.bytes[..]), referrers).map_err(|reason| {
            RegistryError::Protocol {
                host: d.host().to_string(),
                reason: format!("{repo}:{tag}: {reason}"),
            }
        })?;
    let Some(bytes) = merged else {
        return Ok(false);
    };
    let m = RawManifest {
        digest: crate::digest::sha256(&bytes),
        bytes,
        media_type: manifest::OCI_INDEX.to_string(),
    };
    d.put_manifest(repo, &tag, &m).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn index(digests: &[&str]) -> Vec<u8> {
        let entries: Vec<Value> = digests
            .iter()
            .map(|d| serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "digest": d, "size": 10, "artifactType": "application/example", "annotations": {"k": "v"}}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries, "annotations": {"keep": "me"}})).unwrap()
    }

    #[test]
    fn digest_tags_follow_cosign() {
        assert_eq!(digest_tag(A, ".sig"), format!("sha256-{}.sig", &A[7..]));
        assert_eq!(digest_tag(A, ""), format!("sha256-{}", &A[7..]));
    }

    #[test]
    fn referrers_parse_and_refuse_bad_digests() {
        let r = parse_referrers(&index(&[A, B])).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].digest, B);
        assert_eq!(r[0].artifact_type.as_deref(), Some("application/example"));
        assert!(parse_referrers(br#"{"manifests":[{"digest":"md5:00"}]}"#).is_err());
        assert!(parse_referrers(b"{}").is_err());
    }

    #[test]
    fn merging_appends_only_new_referrers_and_keeps_the_rest() {
        let have = index(&[A]);
        let add = parse_referrers(&index(&[A, B])).unwrap();
        let merged = merge_index(Some(&have), &add).unwrap().unwrap();
        let doc: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(doc["annotations"]["keep"], "me");
        let digests: Vec<&str> = doc["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, vec![A, B]);
        assert_eq!(doc["manifests"][1]["annotations"]["k"], "v");
        assert!(merge_index(Some(&merged), &add).unwrap().is_none());
        let fresh = merge_index(None, &add[1..]).unwrap().unwrap();
        assert_eq!(parse_referrers(&fresh).unwrap()[0].digest, B);
    }
}
