//! Classic Helm repositories: `index.yaml` (fetched once per repository per run) and
//! archive downloads verified against the index digest. IO.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

mod kept_index;

use super::store::ArtifactStore;
use super::{FetchError, FetchedChart, Origin};
use crate::chart::archive;

/// index.yaml files larger than this are refused.
pub const MAX_INDEX_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    entries: HashMap<String, Vec<IndexEntry>>,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    #[serde(default)]
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

type IndexCell = Arc<OnceCell<Result<Arc<Index>, String>>>;

/// Fetches Helm repository indexes (each once per run, parsed once) and archives.
pub struct RepoSource {
    http: reqwest::Client,
    indexes: Mutex<HashMap<String, IndexCell>>,
    timeout: Duration,
    /// Where indexes are kept between runs, for conditional requests.
    kept: Option<PathBuf>,
}

impl RepoSource {
    /// A source using `http` for all requests, keeping indexes under `kept` (when given) so
    /// that an unchanged index.yaml is not downloaded again (`ETag` / `Last-Modified`).
    pub fn new(http: reqwest::Client, timeout: Duration, kept: Option<PathBuf>) -> Self {
        RepoSource {
            http,
            indexes: Mutex::new(HashMap::new()),
            timeout,
            kept,
        }
    }

    async fn index(&self, repo: &str) -> Result<Arc<Index>, FetchError> {
        let url = format!("{}/index.yaml", repo.trim_end_matches('/'));
        let cell = self
            .indexes
            .lock()
            .await
            .entry(url.clone())
            .or_default()
            .clone();
        let result = cell
            .get_or_init(|| async {
                let body = self.download_index(&url).await?;
                let text = std::str::from_utf8(&body)
                    .map_err(|_| "index.yaml is not UTF-8".to_string())?;
                let options = serde_saphyr::options! {
                    budget: serde_saphyr::budget! {
                        max_reader_input_bytes: Some(MAX_INDEX_BYTES),
                        max_events: 50_000_000,
                        max_nodes: 20_000_000,
                        max_total_scalar_bytes: MAX_INDEX_BYTES,
                        max_documents: 1,
                    },
                };
                serde_saphyr::from_str_with_options::<Index>(text, options)
                    .map(Arc::new)
                    .map_err(|e| {
                        format!(
                            "index.yaml is not a valid Helm index: {}",
                            e.to_string().lines().next().unwrap_or_default()
                        )
                    })
            })
            .await;
        result
            .clone()
            .map_err(|reason| FetchError::Index { url, reason })
    }

    async fn download(&self, url: &str, limit: usize) -> Result<Bytes, String> {
        let resp = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| crate::error_chain(&e))?;
        read_body(resp, limit).await
    }

    /// index.yaml at `url`: the kept copy when the server says it has not changed (304),
    /// else downloaded whole and kept with its validators.
    async fn download_index(&self, url: &str) -> Result<Bytes, String> {
        let Some(dir) = &self.kept else {
            return self.download(url, MAX_INDEX_BYTES).await;
        };
        let kept = kept_index::load(dir, url).await;
        let mut request = self.http.get(url).timeout(self.timeout);
        if let Some(k) = &kept {
            if let Some(etag) = &k.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &k.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let resp = request.send().await.map_err(|e| crate::error_chain(&e))?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED
            && let Some(k) = kept
        {
            return Ok(k.body);
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let (etag, last_modified) = (
            header(reqwest::header::ETAG),
            header(reqwest::header::LAST_MODIFIED),
        );
        let body = read_body(resp, MAX_INDEX_BYTES).await?;
        if etag.is_some() || last_modified.is_some() {
            kept_index::store(dir, url, &body, etag, last_modified).await;
        }
        Ok(body)
    }

    /// Every version of `chart` the repository at `repo` publishes.
    pub async fn versions(&self, repo: &str, chart: &str) -> Result<Vec<String>, FetchError> {
        let index = self.index(repo).await?;
        Ok(index
            .entries
            .get(chart)
            .map(|v| v.iter().map(|e| e.version.clone()).collect())
            .unwrap_or_default())
    }

    /// Fetch `chart` at `version` from the repository at `repo`.
    pub async fn fetch(
        &self,
        repo: &str,
        chart: &str,
        version: &str,
        store: &ArtifactStore,
    ) -> Result<FetchedChart, FetchError> {
        let index = self.index(repo).await?;
        let versions = index
            .entries
            .get(chart)
            .ok_or_else(|| FetchError::NotFound {
                what: format!("chart {chart}"),
                location: repo.to_string(),
                hint: String::new(),
            })?;
        let entry = versions
            .iter()
            .find(|e| e.version == version)
            .ok_or_else(|| FetchError::NotFound {
                what: format!("{chart} version {version}"),
                location: repo.to_string(),
                hint: {
                    let mut known: Vec<&str> =
                        versions.iter().map(|e| e.version.as_str()).collect();
                    known.sort_by(|a, b| {
                        match (semver::Version::parse(a), semver::Version::parse(b)) {
                            (Ok(a), Ok(b)) => b.cmp(&a),
                            _ => b.cmp(a),
                        }
                    });
                    known.truncate(5);
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(" (newest published: {})", known.join(", "))
                    }
                },
            })?;
        let raw_url = entry.urls.first().ok_or_else(|| FetchError::Download {
            url: repo.into(),
            reason: format!("the index lists no URL for {chart} {version}"),
        })?;
        let base = url::Url::parse(&format!("{}/", repo.trim_end_matches('/'))).map_err(|e| {
            FetchError::Download {
                url: repo.into(),
                reason: e.to_string(),
            }
        })?;
        let url = base.join(raw_url).map_err(|e| FetchError::Download {
            url: raw_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Download {
                url: url.to_string(),
                reason: "only http and https archive URLs are supported".into(),
            });
        }
        let shown = url
            .as_str()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        let expected = entry.digest.as_deref().filter(|d| !d.is_empty()).map(|d| {
            if d.starts_with("sha256:") {
                d.to_string()
            } else {
                format!("sha256:{d}")
            }
        });
        let cached = match &expected {
            Some(d) => store.get(d).await,
            None => None,
        };
        let bytes = match cached {
            Some(b) => b,
            None => {
                let b = self
                    .download(url.as_str(), archive::MAX_ARCHIVE_BYTES)
                    .await
                    .map_err(|reason| FetchError::Download {
                        url: shown.clone(),
                        reason,
                    })?;
                let actual = crate::digest::sha256(&b);
                if let Some(exp) = &expected
                    && *exp != actual
                {
                    return Err(FetchError::DigestMismatch {
                        url: shown,
                        expected: exp.clone(),
                        actual,
                    });
                }
                store.put(&b).await?;
                b
            }
        };
        let meta = archive::inspect(&bytes)
            .and_then(|m| archive::expect(&m, chart, version).map(|_| m))
            .map_err(|source| FetchError::Archive {
                location: shown,
                source,
            })?;
        Ok(FetchedChart {
            digest: crate::digest::sha256(&bytes),
            archive: bytes,
            meta,
            origin: Origin::Archive,
            note: None,
        })
    }
}

async fn read_body(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    crate::registry::http::read_limited(resp, limit)
        .await
        .map_err(|e| match e {
            crate::registry::http::LimitedReadError::TooLarge => {
                format!("larger than {} MiB", limit >> 20)
            }
            crate::registry::http::LimitedReadError::Http(e) => crate::error_chain(&e),
        })
}
