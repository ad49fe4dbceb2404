//! A classic Helm repository served over HTTP from a directory (index.yaml and archives),
//! recording every request path. Files carry an `ETag` (their digest); a request whose
//! `If-None-Match` matches gets `304 Not Modified`, as from real repositories.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

#[derive(Clone)]
struct Shared {
    dir: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    not_modified: Arc<Mutex<Vec<String>>>,
}

/// A running Helm repository server, on its own thread and runtime so that it keeps
/// answering while a test blocks on a child process. Stops when dropped.
pub struct HelmRepo {
    url: String,
    dir: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    not_modified: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn serve_file(
    State(s): State<Shared>,
    UrlPath(path): UrlPath<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if let Ok(mut r) = s.requests.lock() {
        r.push(path.clone());
    }
    if path.split('/').any(|c| c == ".." || c.is_empty()) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            Vec::new(),
        )
            .into_response();
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
        Err(_) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            b"not found".to_vec(),
        )
            .into_response(),
    }
}

impl HelmRepo {
    /// Serve `dir` on a free 127.0.0.1 port.
    pub async fn serve(dir: &Path) -> anyhow::Result<HelmRepo> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let url = format!("http://{}", std_listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let not_modified = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            dir: dir.to_path_buf(),
            requests: requests.clone(),
            not_modified: not_modified.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                let app = axum::Router::new()
                    .route("/{*path}", axum::routing::get(serve_file))
                    .with_state(shared);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(HelmRepo {
            url,
            dir: dir.to_path_buf(),
            requests,
            not_modified,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
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
