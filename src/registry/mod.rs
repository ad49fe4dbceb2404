//! Talking to OCI registries: one client per host, and registry-to-registry copies. IO.

pub mod auth;
pub mod client;
pub mod copy;
pub mod endpoint;
pub mod http;
pub mod manifest;
pub mod ratelimit;
pub mod referrers;
mod tags;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub use auth::Scope;
pub use client::RegistryClient;

use crate::credentials::{CredentialError, CredentialSource};

/// Receives one call per HTTP response, for metrics.
pub trait RequestObserver: Send + Sync {
    /// A response from `host` to `method` with `status`.
    fn observe(&self, host: &str, method: &str, status: u16);
}

/// How registry clients behave.
pub struct RegistryOptions {
    /// Hosts reached over plain HTTP (only ever the target, when `insecure: true`).
    pub insecure_hosts: HashSet<String>,
    /// Extra PEM CA certificates to trust.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Timeout for each small request (manifests, HEADs, tokens).
    pub request_timeout: Duration,
    /// Timeout for a whole blob transfer.
    pub blob_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for transient failures, of each request and of each
    /// whole blob transfer (`--retries`, `spec.retries`).
    pub retries: u32,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Metrics hook.
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Image copies in flight per source registry host, on top of the run's global limit
    /// (e.g. to stay within a public registry's rate limits). `None`: only the global limit.
    pub per_host_copies: Option<usize>,
    /// The longest a request waits on a host whose rate-limit budget is spent (Docker Hub's
    /// `RateLimit-Remaining: 0`, or a 429 carrying rate-limit headers) before such answers
    /// count as failed attempts.
    pub rate_limit_max_pause: Duration,
    /// TLS material for particular hosts (a source's own CA, a client certificate), on
    /// top of `extra_ca_pem`.
    pub host_tls: HashMap<String, HostTls>,
}

/// TLS material for one registry host.
#[derive(Clone, Debug, Default)]
pub struct HostTls {
    /// CA certificates (PEM) trusted for this host only.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key (PEM, concatenated).
    pub identity_pem: Option<Vec<u8>>,
}

/// Request retries when nothing else is configured.
pub const DEFAULT_RETRIES: u32 = 4;

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_hosts: HashSet::new(),
            extra_ca_pem: Vec::new(),
            request_timeout: Duration::from_secs(60),
            blob_timeout: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(15),
            retries: DEFAULT_RETRIES,
            backoff_base: Duration::from_millis(250),
            observer: None,
            per_host_copies: None,
            rate_limit_max_pause: Duration::from_secs(600),
            host_tls: HashMap::new(),
        }
    }
}

/// Errors talking to a registry. Messages name the host and never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an unexpected status.
    #[error("{method} {path} on {host} answered HTTP {status}{detail}")]
    Status {
        /// Registry host.
        host: String,
        /// HTTP method.
        method: String,
        /// URL path (no query).
        path: String,
        /// Status code.
        status: u16,
        /// The registry's error message, if any.
        detail: String,
    },
    /// The request could not be sent or the answer not read.
    #[error("cannot reach {host} ({what}): {reason}")]
    Transport {
        /// Registry host.
        host: String,
        /// What was being done.
        what: String,
        /// The underlying error, with its causes.
        reason: String,
    },
    /// No connection could be made: refused, a name that does not resolve, a connect
    /// timeout, a TLS handshake cut off. A mirror that answers so is skipped at once.
    #[error("cannot reach {host} ({what}): {reason}")]
    Unreachable {
        /// Registry host.
        host: String,
        /// What was being done.
        what: String,
        /// The underlying error, with its causes.
        reason: String,
    },
    /// No answer in time.
    #[error("{what} on {host} timed out after {secs}s")]
    Timeout {
        /// Registry host.
        host: String,
        /// What was being done.
        what: String,
        /// Seconds waited.
        secs: u64,
    },
    /// Authentication failed.
    #[error("authentication to {host} failed: {reason}")]
    Auth {
        /// Registry host.
        host: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The registry broke the protocol or served bad content.
    #[error("{host}: {reason}")]
    Protocol {
        /// Registry host.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The host answered an HTTPS request in plain HTTP: it serves plain HTTP only.
    #[error(
        "{host} speaks plain HTTP, not HTTPS ({what}); if that registry is meant to be used without TLS, pass --insecure-registry {host} (for a source) or set target.insecure: true (for the target)"
    )]
    PlainHttp {
        /// Registry host.
        host: String,
        /// What was being done.
        what: String,
    },
    /// Credentials could not be looked up.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The HTTP client could not be built (bad CA file, say).
    #[error("cannot set up HTTPS: {0}")]
    Setup(String),
    /// The run was cancelled while requests to the host were paused for its rate limit.
    #[error("cancelled while waiting out the rate limit of {host}")]
    Cancelled {
        /// Registry host.
        host: String,
    },
}

impl RegistryError {
    pub(crate) fn transport(host: &str, what: &str, e: reqwest::Error) -> Self {
        if is_plain_http_answer(&e) {
            return RegistryError::PlainHttp {
                host: host.to_string(),
                what: what.to_string(),
            };
        }
        let mut reason = crate::error_chain(&e);
        if is_untrusted_certificate(&e) {
            reason.push_str(
                " (the registry's certificate is not trusted here: pass --ca-file with the CA that signed it)",
            );
        } else if e.is_connect() {
            return RegistryError::Unreachable {
                host: host.to_string(),
                what: what.to_string(),
                reason,
            };
        }
        RegistryError::Transport {
            host: host.to_string(),
            what: what.to_string(),
            reason,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            RegistryError::Transport { .. }
            | RegistryError::Unreachable { .. }
            | RegistryError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether no connection to the host could be made at all (see
    /// [`RegistryError::Unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }

    /// A short, bounded label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            RegistryError::Status { .. } => "registry_status",
            RegistryError::Transport { .. } | RegistryError::Unreachable { .. } => "network",
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::Auth { .. } | RegistryError::Credentials(_) => "auth",
            RegistryError::Protocol { .. } | RegistryError::PlainHttp { .. } => "protocol",
            RegistryError::Setup(_) => "setup",
            RegistryError::Cancelled { .. } => "cancelled",
        }
    }
}

/// The registry HTTP client: no redirects followed (credentials must not follow a blob
/// redirect), the options' timeouts and CAs, plus `tls` for one host.
fn http_client(
    opts: &RegistryOptions,
    tls: Option<&HostTls>,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.request_timeout)
        .user_agent(concat!("lazyoci/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32);
    let own_ca = tls.and_then(|t| t.ca_pem.as_ref());
    for pem in opts.extra_ca_pem.iter().chain(own_ca) {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            RegistryError::Setup(format!("the CA file is not a PEM certificate bundle: {e}"))
        })?;
        if certs.is_empty() {
            return Err(RegistryError::Setup(
                "the CA file holds no PEM certificate".into(),
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    if let Some(id) = tls.and_then(|t| t.identity_pem.as_ref()) {
        let identity = reqwest::Identity::from_pem(id).map_err(|e| {
            RegistryError::Setup(format!("the client certificate cannot be used: {e}"))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| RegistryError::Setup(e.to_string()))
}

/// Whether a request failed because a TLS client got plain HTTP back (rustls reads the
/// `HTTP/1.1 400` line as a record of an unknown type). Not transient: retrying cannot help.
pub(crate) fn is_plain_http_answer(e: &reqwest::Error) -> bool {
    let chain = crate::error_chain(e);
    chain.contains("InvalidContentType") || chain.contains("corrupt message of type")
}

/// Whether a request failed because the server's certificate was refused. Not transient.
pub(crate) fn is_untrusted_certificate(e: &reqwest::Error) -> bool {
    crate::error_chain(e).contains("invalid peer certificate")
}

/// One [`RegistryClient`] per registry host, created on first use with that host's credentials.
pub struct Registries {
    blobs: copy::BlobIndex,
    pauses: Arc<ratelimit::Pauses>,
    host_limits: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    opts: Arc<RegistryOptions>,
    credentials: Arc<dyn CredentialSource>,
    http: reqwest::Client,
    host_http: HashMap<String, reqwest::Client>,
    clients: tokio::sync::Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries").finish_non_exhaustive()
    }
}

impl Registries {
    /// Build the shared HTTP client (and one per host with its own TLS material). Fails on
    /// an unusable CA certificate or client certificate.
    pub fn new(
        opts: RegistryOptions,
        credentials: Arc<dyn CredentialSource>,
    ) -> Result<Self, RegistryError> {
        let http = http_client(&opts, None)?;
        let mut host_http = HashMap::new();
        for (host, tls) in &opts.host_tls {
            let c = http_client(&opts, Some(tls))
                .map_err(|e| RegistryError::Setup(format!("{host}: {e}")))?;
            host_http.insert(host.clone(), c);
        }
        Ok(Registries {
            blobs: copy::BlobIndex::default(),
            pauses: Arc::default(),
            host_limits: Default::default(),
            opts: Arc::new(opts),
            credentials,
            http,
            host_http,
            clients: Default::default(),
        })
    }

    /// The client for `host`.
    pub async fn client(&self, host: &str) -> Result<Arc<RegistryClient>, RegistryError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let credential = self.credentials.get(host).await?;
        let mut client = RegistryClient::new(
            host,
            self.host_http.get(host).unwrap_or(&self.http).clone(),
            credential,
            self.opts.clone(),
            self.pauses.clone(),
        );
        if client.credential.is_some() {
            client.credential_origin = Some(self.credentials.origin(host));
        }
        let c = Arc::new(client);
        clients.insert(host.to_string(), c.clone());
        Ok(c)
    }

    /// Wait for a copy slot on source registry `host`; `None` when no per-host limit is set.
    pub async fn host_permit(&self, host: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let limit = self.opts.per_host_copies?;
        let sem = {
            let mut limits = self.host_limits.lock().unwrap_or_else(|p| p.into_inner());
            limits
                .entry(host.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit.max(1))))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    /// Let `token` (the run's cancellation) end rate-limit pauses early.
    pub fn cancel_pauses_with(&self, token: tokio_util::sync::CancellationToken) {
        self.pauses.cancel_with(token);
    }

    /// Where the target registries already hold which blobs, this run.
    pub fn blob_index(&self) -> &copy::BlobIndex {
        &self.blobs
    }

    /// The shared options.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }
}
