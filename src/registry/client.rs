//! One registry host: HTTP transport, token and basic auth, retries with backoff. IO.
//!
//! Built on reqwest rather than `oci_client::Client` because mirroring needs what that
//! client does not expose: response headers (`Retry-After`, `Docker-Content-Digest`,
//! `Content-Type`), control over redirects (credentials must never follow a blob redirect
//! to another host), per-request timeouts and a hook for request metrics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Mutex;

use super::auth::{AuthState, Scope};
use super::http::{
    LimitedReadError, accept_manifests, backoff, error_detail, is_retryable, read_limited,
    retry_after_header, strip_query,
};
use super::manifest::{self, RawManifest};
use super::ratelimit::{PauseBudget, Pauses};
use super::{RegistryError, RegistryOptions};
use crate::credentials::Credential;

/// How often a request is sent again after a transient failure.
#[derive(Clone, Copy, Debug)]
pub(super) struct Retries {
    /// Retries after the first attempt.
    pub(super) max: u32,
    /// Whether a failed connection (refused, no such name, connect timeout) is retried
    /// too; a mirror probe moves on to the next candidate instead.
    pub(super) connect: bool,
}

/// A client for one registry host.
pub struct RegistryClient {
    pub(super) host: String,
    pub(super) base: String,
    pub(super) http: reqwest::Client,
    pub(super) credential: Option<Credential>,
    /// Where `credential` came from, for messages.
    pub(super) credential_origin: Option<String>,
    pub(super) auth: Mutex<AuthState>,
    pub(super) opts: Arc<RegistryOptions>,
    pub(super) pauses: Arc<Pauses>,
    /// Whether the registry offers the referrers API, once known (the first probe holds
    /// the lock, so concurrent images ask once).
    pub(super) referrers_api: Mutex<Option<bool>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("host", &self.host)
            .field("base", &self.base)
            .finish()
    }
}

/// The host a registry's API is served from (`docker.io` is served by `registry-1.docker.io`).
pub fn api_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        h => h,
    }
}

impl RegistryClient {
    pub(super) fn new(
        host: &str,
        http: reqwest::Client,
        credential: Option<Credential>,
        opts: Arc<RegistryOptions>,
        pauses: Arc<Pauses>,
    ) -> Self {
        let scheme = if opts.insecure_hosts.contains(host) {
            "http"
        } else {
            "https"
        };
        RegistryClient {
            host: host.to_string(),
            base: format!("{scheme}://{}", api_host(host)),
            http,
            credential,
            credential_origin: None,
            auth: Mutex::new(AuthState::default()),
            opts,
            pauses,
            referrers_api: Mutex::new(None),
        }
    }

    /// What to check after a refusal: the credentials used and where they came from.
    pub(super) fn check_credentials_hint(&self) -> String {
        match &self.credential_origin {
            Some(o) => format!("check the credentials for {} (from {o})", self.host),
            None => format!(
                "no credentials were sent; log in to {} (`docker login {}`) or set the upstream's auth",
                self.host, self.host
            ),
        }
    }

    /// The registry host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    pub(super) fn status_error(
        &self,
        method: &Method,
        url: &str,
        status: StatusCode,
        body: &[u8],
    ) -> RegistryError {
        RegistryError::Status {
            host: self.host.clone(),
            method: method.to_string(),
            path: strip_query(url).trim_start_matches(&self.base).to_string(),
            status: status.as_u16(),
            detail: error_detail(body),
        }
    }
    pub(super) fn read_error(&self, what: &str, e: LimitedReadError) -> RegistryError {
        match e {
            LimitedReadError::TooLarge => RegistryError::Protocol {
                host: self.host.clone(),
                reason: format!("{what} is larger than lazyoci accepts"),
            },
            LimitedReadError::Http(e) => RegistryError::transport(&self.host, what, e),
        }
    }

    pub(super) fn observe(&self, method: &str, status: StatusCode) {
        if let Some(o) = &self.opts.observer {
            o.observe(&self.host, method, status.as_u16());
        }
    }

    /// Send a request with auth, retries and backoff. `body` must be cheap to clone.
    /// Returns the final response, whatever its status (callers judge 404 etc.).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &Scope,
        headers: HeaderMap,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Response, RegistryError> {
        self.send_retrying(method, url, scope, headers, body, timeout, self.retries())
            .await
    }

    /// The options' retries, for every kind of transient failure.
    pub(super) fn retries(&self) -> Retries {
        Retries {
            max: self.opts.retries,
            connect: true,
        }
    }

    /// The options' retries, except that a failed connection is not retried.
    pub(super) fn probe_retries(&self) -> Retries {
        Retries {
            connect: false,
            ..self.retries()
        }
    }

    /// Check that the registry answers its API root (`GET /v2/`) with these credentials:
    /// one request (and the token exchange a 401 asks for), one retry at most, so that an
    /// unusable registry is told at once rather than per image.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = self.url("");
        let resp = self
            .send_retrying(
                Method::GET,
                &url,
                &Scope::None,
                HeaderMap::new(),
                None,
                self.opts.request_timeout.min(Duration::from_secs(30)),
                Retries {
                    max: self.opts.retries.min(1),
                    connect: true,
                },
            )
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        Err(self.status_error(&Method::GET, &url, status, &body))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_retrying(
        &self,
        method: Method,
        url: &str,
        scope: &Scope,
        headers: HeaderMap,
        body: Option<Bytes>,
        timeout: Duration,
        retries: Retries,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0u32;
        let mut authed = false;
        let mut rate_limit = PauseBudget::default();
        loop {
            self.rate_limit_wait().await?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone())
                .timeout(timeout);
            if let Some(h) = self.auth_header(scope).await {
                req = req.header(AUTHORIZATION, h);
            }
            if let Some(b) = &body {
                req = req.header(CONTENT_LENGTH, b.len()).body(b.clone());
            }
            let outcome = req.send().await;
            let retry_after = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    self.observe(method.as_str(), status);
                    if self.rate_limited(&resp, &mut rate_limit) {
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED && !authed {
                        authed = true;
                        let challenge = resp.headers().get(WWW_AUTHENTICATE).cloned();
                        self.authenticate(challenge.as_ref(), scope).await?;
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
                        return Err(RegistryError::Auth {
                            host: self.host.clone(),
                            reason: format!(
                                "{} {} was refused (HTTP {}{}); {}",
                                method,
                                strip_query(url).trim_start_matches(&self.base),
                                status.as_u16(),
                                error_detail(&body),
                                self.check_credentials_hint()
                            ),
                        });
                    }
                    if !is_retryable(status) || attempt >= retries.max {
                        return Ok(resp);
                    }
                    retry_after_header(resp.headers())
                }
                Err(e) => {
                    if attempt >= retries.max
                        || (e.is_connect() && !retries.connect)
                        || super::is_plain_http_answer(&e)
                        || super::is_untrusted_certificate(&e)
                        || !(e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
                    {
                        // A connect timeout is a host that cannot be reached.
                        return Err(if e.is_timeout() && !e.is_connect() {
                            RegistryError::Timeout {
                                host: self.host.clone(),
                                what: format!(
                                    "{method} {}",
                                    strip_query(url).trim_start_matches(&self.base)
                                ),
                                secs: timeout.as_secs(),
                            }
                        } else {
                            RegistryError::transport(
                                &self.host,
                                &format!(
                                    "{method} {}",
                                    strip_query(url).trim_start_matches(&self.base)
                                ),
                                e,
                            )
                        });
                    }
                    None
                }
            };
            tokio::time::sleep(backoff(attempt, retry_after, self.opts.backoff_base)).await;
            attempt += 1;
        }
    }

    /// The `Location` of a response, resolved against the request URL.
    fn location(&self, url: &str, resp: &Response, what: &str) -> Result<url::Url, RegistryError> {
        let protocol = |reason: String| RegistryError::Protocol {
            host: self.host.clone(),
            reason,
        };
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| protocol(format!("{what} answer without a Location")))?;
        url::Url::parse(url)
            .and_then(|u| u.join(location))
            .map_err(|_| protocol(format!("bad {what} Location {location:?}")))
    }

    /// Send a HEAD or GET for a manifest with every manifest type accepted.
    async fn manifest_request(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
        scope: &Scope,
        retries: Retries,
    ) -> Result<(String, Response), RegistryError> {
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let timeout = self.opts.request_timeout;
        let resp = self
            .send_retrying(
                method,
                &url,
                scope,
                accept_manifests(),
                None,
                timeout,
                retries,
            )
            .await?;
        Ok((url, resp))
    }

    /// HEAD a manifest: its digest, or `None` when absent.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        self.head_manifest_with(repo, reference, scope, self.retries())
            .await
    }

    /// [`Self::head_manifest`] for a mirror probe: a host that cannot be connected to
    /// fails at once ([`RegistryError::Unreachable`]) rather than after the retries.
    pub async fn probe_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<String>, RegistryError> {
        self.head_manifest_with(repo, reference, scope, self.probe_retries())
            .await
    }

    async fn head_manifest_with(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
        retries: Retries,
    ) -> Result<Option<String>, RegistryError> {
        let (url, resp) = self
            .manifest_request(Method::HEAD, repo, reference, scope, retries)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                if let Some(d) = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .filter(|d| crate::digest::is_sha256(d))
                {
                    return Ok(Some(d.to_string()));
                }
                // No digest header: fetch the body and hash it.
                Ok(self
                    .get_manifest(repo, reference, scope)
                    .await?
                    .map(|m| m.digest))
            }
            s => Err(self.status_error(&Method::HEAD, &url, s, b"")),
        }
    }

    /// GET a manifest's exact bytes, or `None` when absent. A digest reference is verified.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scope: &Scope,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let (url, resp) = self
            .manifest_request(Method::GET, repo, reference, scope, self.retries())
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(resp, manifest::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| self.read_error(&format!("manifest {repo}:{reference}"), e))?;
        if !status.is_success() {
            return Err(self.status_error(&Method::GET, &url, status, &body));
        }
        let digest = crate::digest::sha256(&body);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(RegistryError::Protocol {
                host: self.host.clone(),
                reason: format!(
                    "manifest {repo}@{reference} has content with digest {digest}: the registry served the wrong bytes"
                ),
            });
        }
        let (_, media_type) =
            manifest::Parsed::parse(&body, content_type.as_deref()).map_err(|reason| {
                RegistryError::Protocol {
                    host: self.host.clone(),
                    reason: format!("manifest {repo}:{reference}: {reason}"),
                }
            })?;
        Ok(Some(RawManifest {
            bytes: body,
            media_type,
            digest,
        }))
    }

    /// PUT a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&m.media_type) {
            headers.insert(CONTENT_TYPE, v);
        }
        let resp = self
            .send(
                Method::PUT,
                &url,
                &Scope::Push(repo.to_string()),
                headers,
                Some(m.bytes.clone()),
                self.opts.request_timeout,
            )
            .await?;
        self.expect_success(Method::PUT, &url, resp)
            .await
            .map(|_| ())
    }

    pub(super) async fn expect_success(
        &self,
        method: Method,
        url: &str,
        resp: Response,
    ) -> Result<Response, RegistryError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        Err(self.status_error(&method, url, status, &body))
    }

    /// Whether the repository has this blob.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let resp = self
            .send(
                Method::HEAD,
                &url,
                scope,
                HeaderMap::new(),
                None,
                self.opts.request_timeout,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(self.status_error(&Method::HEAD, &url, s, b"")),
        }
    }

    /// Start a blob download. Redirects are followed by hand: to the registry's own origin
    /// with auth, anywhere else without any credential.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Result<Response, RegistryError> {
        let mut url = self.url(&format!("{repo}/blobs/{digest}"));
        let scope = Scope::Pull(repo.to_string());
        for _ in 0..5 {
            let same_origin = url.starts_with(&format!("{}/", self.base));
            let resp = if same_origin {
                self.send(
                    Method::GET,
                    &url,
                    &scope,
                    HeaderMap::new(),
                    None,
                    self.opts.blob_timeout,
                )
                .await?
            } else {
                let r = self
                    .http
                    .get(&url)
                    .timeout(self.opts.blob_timeout)
                    .send()
                    .await
                    .map_err(|e| RegistryError::transport(&self.host, "blob redirect", e))?;
                self.observe("GET", r.status());
                r
            };
            if resp.status().is_redirection() {
                url = self.location(&url, &resp, "redirect")?.to_string();
                continue;
            }
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(RegistryError::Protocol {
                    host: self.host.clone(),
                    reason: format!("blob {digest} is missing from {repo}"),
                });
            }
            return self.expect_success(Method::GET, &url, resp).await;
        }
        Err(RegistryError::Protocol {
            host: self.host.clone(),
            reason: format!("too many redirects fetching blob {digest}"),
        })
    }

    /// Ask the registry to mount `digest` from another repository. `true` when mounted.
    pub async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/uploads/?mount={digest}&from={from}"));
        let scope = Scope::Mount {
            repo: repo.to_string(),
            from: from.to_string(),
        };
        let resp = self
            .send(
                Method::POST,
                &url,
                &scope,
                HeaderMap::new(),
                Some(Bytes::new()),
                self.opts.request_timeout,
            )
            .await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    async fn start_upload(&self, repo: &str) -> Result<String, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/uploads/"));
        let resp = self
            .send(
                Method::POST,
                &url,
                &Scope::Push(repo.to_string()),
                HeaderMap::new(),
                Some(Bytes::new()),
                self.opts.request_timeout,
            )
            .await?;
        let resp = self.expect_success(Method::POST, &url, resp).await?;
        let full = self.location(&url, &resp, "upload")?;
        if !full.as_str().starts_with(&format!("{}/", self.base)) {
            return Err(RegistryError::Protocol { host: self.host.clone(), reason: "the registry sent the upload to another host; refusing to send credentials there".into() });
        }
        Ok(full.to_string())
    }

    fn upload_url(location: &str, digest: &str) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    /// Upload a small blob held in memory.
    pub async fn push_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        let location = self.start_upload(repo).await?;
        let url = Self::upload_url(&location, digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self
            .send(
                Method::PUT,
                &url,
                &Scope::Push(repo.to_string()),
                headers,
                Some(bytes),
                self.opts.request_timeout,
            )
            .await?;
        self.expect_success(Method::PUT, &url, resp)
            .await
            .map(|_| ())
    }

    /// Upload a blob from a stream in one PUT with a known length (monolithic upload).
    /// The stream is consumed once; the caller retries the whole transfer on failure.
    pub async fn push_blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), RegistryError> {
        let location = self.start_upload(repo).await?;
        let url = Self::upload_url(&location, digest);
        let scope = Scope::Push(repo.to_string());
        self.rate_limit_wait().await?;
        let mut req = self
            .http
            .put(&url)
            .header(CONTENT_LENGTH, size)
            .header(CONTENT_TYPE, "application/octet-stream")
            .timeout(self.opts.blob_timeout)
            .body(body);
        if let Some(h) = self.auth_header(&scope).await {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryError::transport(&self.host, &format!("upload of {digest}"), e))?;
        self.observe("PUT", resp.status());
        // A 429 fails this transfer; the pause it sets holds back the retry.
        self.rate_limited(&resp, &mut PauseBudget::default());
        self.expect_success(Method::PUT, &url, resp)
            .await
            .map(|_| ())
    }
}

pub use super::tags::MAX_TAG_PAGES;
