//! A classic Helm repository served from a directory (index.yaml and archives), over HTTP
//! or HTTPS, optionally demanding basic auth, a bearer token or a client certificate;
//! recording every request path and its `Authorization` header. Files carry an `ETag`
//! (their digest); a request whose `If-None-Match` matches gets `304 Not Modified`, as from
//! real repositories.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

/// What the repository demands of a request.
#[derive(Clone, Debug, Default)]
pub enum RepoAuth {
    /// Nothing.
    #[default]
    None,
    /// HTTP basic auth with this user and password.
    Basic(String, String),
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// TLS for the repository: its certificate, and a CA whose client certificates it demands.
#[derive(Clone, Debug)]
pub struct RepoTls {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// When set, every connection must present a client certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

/// Options for [`HelmRepo::serve_with`].
#[derive(Clone, Debug, Default)]
pub struct RepoOptions {
    /// Credentials demanded.
    pub auth: RepoAuth,
    /// HTTPS instead of HTTP.
    pub tls: Option<RepoTls>,
}

/// One request the repository answered.
#[derive(Clone, Debug)]
pub struct RepoRequest {
    /// Path below `/`.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Clone)]
struct Shared {
    dir: PathBuf,
    auth: RepoAuth,
    requests: Arc<Mutex<Vec<RepoRequest>>>,
    not_modified: Arc<Mutex<Vec<String>>>,
}

/// A running Helm repository server, on its own thread and runtime so that it keeps
/// answering while a test blocks on a child process. Stops when dropped.
pub struct HelmRepo {
    url: String,
    dir: PathBuf,
    requests: Arc<Mutex<Vec<RepoRequest>>>,
    not_modified: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn authorized(auth: &RepoAuth, headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        RepoAuth::None => true,
        RepoAuth::Basic(u, p) => {
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            given == Some(format!("Basic {want}").as_str())
        }
        RepoAuth::Bearer(t) => given == Some(format!("Bearer {t}").as_str()),
    }
}

async fn serve_file(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(path): UrlPath<String>,
) -> impl IntoResponse {
    if let Ok(mut r) = s.requests.lock() {
        r.push(RepoRequest {
            path: path.clone(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        });
    }
    let text = [(header::CONTENT_TYPE, "text/plain")];
    if !authorized(&s.auth, &headers) {
        let challenge = match s.auth {
            RepoAuth::Bearer(_) => "Bearer realm=\"charts\"",
            _ => "Basic realm=\"charts\"",
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            b"unauthorized".to_vec(),
        )
            .into_response();
    }
    if path.split('/').any(|c| c == ".." || c.is_empty()) {
        return (StatusCode::BAD_REQUEST, text, Vec::new()).into_response();
    }
    match tokio::fs::read(s.dir.join(&path)).await {
        Ok(bytes) => {
            let etag = format!("\"{}\"", &crate::digest::sha256(&bytes)[7..23]);
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes())
            {
                if let Ok(mut r) = s.not_modified.lock() {
                    r.push(path);
                }
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            let ct = if path.ends_with(".yaml") {
                "application/x-yaml"
            } else {
                "application/gzip"
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, ct.to_string()), (header::ETAG, etag)],
                bytes,
            )
                .into_response()
        }
        Err(_) => (StatusCode::NOT_FOUND, text, b"not found".to_vec()).into_response(),
    }
}

impl HelmRepo {
    /// Serve `dir` over plain HTTP on a free 127.0.0.1 port, to anyone.
    pub async fn serve(dir: &Path) -> anyhow::Result<HelmRepo> {
        Self::serve_with(dir, RepoOptions::default()).await
    }

    /// Serve `dir` on a free 127.0.0.1 port with `opts`.
    pub async fn serve_with(dir: &Path, opts: RepoOptions) -> anyhow::Result<HelmRepo> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", std_listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let not_modified = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            dir: dir.to_path_buf(),
            auth: opts.auth.clone(),
            requests: requests.clone(),
            not_modified: not_modified.clone(),
        };
        let acceptor = opts
            .tls
            .as_ref()
            .map(|t| super::tls::acceptor(&t.cert, &t.key, t.client_ca.as_deref()))
            .transpose()?;
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(serve_file))
            .with_state(shared);
        let stop = super::tls::serve_on_thread(std_listener, acceptor, app)?;
        Ok(HelmRepo {
            url,
            dir: dir.to_path_buf(),
            requests,
            not_modified,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests_seen().into_iter().map(|r| r.path).collect()
    }

    /// Requests so far, in order, with their `Authorization` headers.
    pub fn requests_seen(&self) -> Vec<RepoRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests for `path` were answered `304 Not Modified`.
    pub fn not_modified(&self, path: &str) -> usize {
        self.not_modified
            .lock()
            .map(|r| r.iter().filter(|p| *p == path).count())
            .unwrap_or_default()
    }

    /// How many times `path` was requested.
    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|p| *p == path).count()
    }

    /// Package chart directories into the served directory with the real helm and write
    /// index.yaml (`base_url` makes the archive URLs absolute, as some repositories do).
    pub fn publish(&self, charts: &[&Path], base_url: Option<&str>) -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let out = self.dir.to_string_lossy().into_owned();
        for c in charts {
            super::helm(home.path(), &["package", "-d", &out, &c.to_string_lossy()])?;
        }
        let mut args = vec!["repo", "index", out.as_str()];
        if let Some(u) = base_url {
            args.extend(["--url", u]);
        }
        super::helm(home.path(), &args)?;
        Ok(())
    }
}

impl Drop for HelmRepo {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
