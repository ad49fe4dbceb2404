//! Classic Helm repositories: `index.yaml` (fetched once per repository per run) and
//! archive downloads verified against the index digest. IO.
//!
//! A repository with [`SourceAccess`] gets its credentials and client certificate only on
//! its own host (scheme aside, host and port equal, as Helm decides); archives that
//! index.yaml places elsewhere get neither, unless `passCredentials` is set.

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
use crate::access::{AccessMap, SourceAccess, SourceCredential, repo_key};
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

/// An HTTP client for Helm repositories trusting `ca_pems` (on top of the system roots),
/// presenting `identity` (client certificate and key, PEM) when given.
pub fn http_client(ca_pems: &[&[u8]], identity: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("lazyoci/", env!("CARGO_PKG_VERSION")));
    for pem in ca_pems {
        for c in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
            http = http.add_root_certificate(c);
        }
    }
    if let Some(id) = identity {
        http = http.identity(
            reqwest::Identity::from_pem(id)
                .map_err(|e| format!("the client certificate cannot be used: {e}"))?,
        );
    }
    http.build().map_err(|e| e.to_string())
}

/// How one Helm repository is reached: its access, a client for its own host (its CA and
/// client certificate) and one for archives on other hosts (its CA only).
#[derive(Clone, Debug)]
pub struct RepoAccess {
    access: Arc<SourceAccess>,
    host: Option<String>,
    own: reqwest::Client,
    other: reqwest::Client,
}

/// `host:port` of a URL (default port filled in), how Helm tells hosts apart.
fn host_port(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

/// Clients for every Helm repository in `map`, trusting `ca_pems` besides each one's own.
pub fn repo_access(
    map: &AccessMap,
    ca_pems: &[Vec<u8>],
) -> Result<HashMap<String, RepoAccess>, String> {
    let mut out = HashMap::new();
    for (url, access) in &map.repos {
        let mut cas: Vec<&[u8]> = ca_pems.iter().map(Vec::as_slice).collect();
        cas.extend(access.ca_pem.as_deref());
        let fail = |e: String| format!("{url} ({}): {e}", access.origin);
        let own = http_client(&cas, access.identity_pem.as_deref()).map_err(fail)?;
        let other = http_client(&cas, None).map_err(fail)?;
        out.insert(
            url.clone(),
            RepoAccess {
                access: access.clone(),
                host: host_port(url),
                own,
                other,
            },
        );
    }
    Ok(out)
}

/// Fetches Helm repository indexes (each once per run, parsed once) and archives.
pub struct RepoSource {
    http: reqwest::Client,
    indexes: Mutex<HashMap<String, IndexCell>>,
    timeout: Duration,
    /// Where indexes are kept between runs, for conditional requests.
    kept: Option<PathBuf>,
    access: Arc<HashMap<String, RepoAccess>>,
}

/// What a request to a repository carried, for the message when it is refused.
type Sent<'a> = (
    Option<&'a RepoAccess>,
    Option<(&'a RepoAccess, &'a SourceCredential)>,
);

impl RepoSource {
    /// A source using `http` for all requests, keeping indexes under `kept` (when given) so
    /// that an unchanged index.yaml is not downloaded again (`ETag` / `Last-Modified`).
    pub fn new(http: reqwest::Client, timeout: Duration, kept: Option<PathBuf>) -> Self {
        RepoSource {
            http,
            indexes: Mutex::new(HashMap::new()),
            timeout,
            kept,
            access: Arc::default(),
        }
    }

    /// Reach the repositories in `access` with their credentials and TLS material.
    pub fn with_access(mut self, access: Arc<HashMap<String, RepoAccess>>) -> Self {
        self.access = access;
        self
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
                let body = self.download_index(repo, &url).await?;
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

    /// A GET of `url` for the repository `repo`: with its credentials and client
    /// certificate when `url` is on the repository's own host (or `passCredentials`),
    /// without them elsewhere.
    fn get(&self, repo: &str, url: &str) -> (reqwest::RequestBuilder, Sent<'_>) {
        let access = self.access.get(&repo_key(repo));
        let here = host_port(url);
        let own_host = access.is_some_and(|a| a.host.is_some() && a.host == here);
        let trusted = access.filter(|a| own_host || a.access.pass_credentials);
        let mut req = match (trusted, access) {
            (Some(a), _) => a.own.get(url),
            (None, Some(a)) => a.other.get(url),
            (None, None) => self.http.get(url),
        };
        let sent = trusted.and_then(|a| a.access.credential.as_ref().map(|c| (a, c)));
        match sent.map(|(_, c)| c) {
            Some(SourceCredential::Basic { username, password }) => {
                req = req.basic_auth(username, Some(password));
            }
            Some(SourceCredential::Token(t)) => req = req.bearer_auth(t),
            None => {}
        }
        (req.timeout(self.timeout), (access, sent))
    }

    async fn download(&self, repo: &str, url: &str, limit: usize) -> Result<Bytes, String> {
        let (req, sent) = self.get(repo, url);
        let resp = req.send().await.map_err(|e| crate::error_chain(&e))?;
        read_body(resp, url, sent, limit).await
    }

    /// index.yaml at `url`: the kept copy when the server says it has not changed (304),
    /// else downloaded whole and kept with its validators.
    async fn download_index(&self, repo: &str, url: &str) -> Result<Bytes, String> {
        let Some(dir) = &self.kept else {
            return self.download(repo, url, MAX_INDEX_BYTES).await;
        };
        let kept = kept_index::load(dir, url).await;
        let (mut request, sent) = self.get(repo, url);
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
        let body = read_body(resp, url, sent, MAX_INDEX_BYTES).await?;
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
                hint: super::newest_published(versions.iter().map(|e| e.version.as_str())),
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
                    .download(repo, url.as_str(), archive::MAX_ARCHIVE_BYTES)
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

/// The body of a successful answer to a GET of `url`; for a refusal, a message naming the
/// host and where the credentials sent (if any) came from.
async fn read_body(
    resp: reqwest::Response,
    url: &str,
    (access, sent): Sent<'_>,
    limit: usize,
) -> Result<Bytes, String> {
    let status = resp.status();
    if !status.is_success() {
        let here = host_port(url);
        let host = here.as_deref().unwrap_or(url);
        return Err(match status.as_u16() {
            401 | 403 => match (sent, access) {
                (Some((a, _)), _) => format!(
                    "HTTP {} from {host}: the credentials from {} were refused; check them",
                    status.as_u16(),
                    a.access.origin
                ),
                (None, Some(a)) if a.access.credential.is_some() => format!(
                    "HTTP {} from {host}: no credentials were sent, because index.yaml places this archive on another host than the repository's; set passCredentials: true if {host} should get them",
                    status.as_u16()
                ),
                _ => format!(
                    "HTTP {} from {host}: the repository wants credentials; give the upstream an auth block (mirror.yaml), a secretRef (ChartMirror) or an entry in --repository-config",
                    status.as_u16()
                ),
            },
            code => format!("HTTP {code}"),
        });
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
