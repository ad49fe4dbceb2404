//! A recording reverse proxy for tests: sits between lazyoci and a registry, records every
//! request (method, path, whether it carried credentials, when it arrived, whether a fault
//! answered it), tracks how many requests are in flight per repository, and can delay,
//! redirect or fault matching requests (including rate-limit answers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Record {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: std::time::Instant,
    /// Whether a [`Fault`] answered or altered it.
    pub faulted: bool,
}

/// What the proxy does to requests whose path contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Only this method (any when `None`).
    pub method: Option<String>,
    /// Substring of the path.
    pub path_contains: String,
    /// Wait this long before forwarding.
    pub delay: Duration,
    /// Instead of forwarding, redirect (307) to the same path on this `host:port`.
    pub redirect_to: Option<String>,
    /// Misbehave, for the first `times` matching requests.
    pub fault: Option<(Fault, usize)>,
}

/// A way for the proxy to misbehave.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds) without forwarding.
    Status(u16, Option<u64>),
    /// Forward, then cut the connection after this many body bytes.
    ResetAfter(usize),
    /// Forward, flipping one byte in the middle of the body.
    Corrupt,
    /// Answer 200 with this content type and body instead of forwarding.
    Replace(String, Vec<u8>),
    /// Forward, then add these response headers (e.g. `RateLimit-Remaining: 0;w=1`).
    AddHeaders(Vec<(String, String)>),
    /// Answer with this status and these headers without forwarding (e.g. a 429 carrying
    /// rate-limit headers).
    StatusWithHeaders(u16, Vec<(String, String)>),
    /// Answer with this status, headers and body without forwarding (e.g. one page of a
    /// tag list with its `Link` header).
    Serve(u16, Vec<(String, String)>, Vec<u8>),
}

/// `(name, value)` header pairs from string slices.
pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Rule {
    /// Delay matching requests.
    pub fn delay(method: &str, path_contains: &str, delay: Duration) -> Rule {
        Rule {
            method: Some(method.into()),
            path_contains: path_contains.into(),
            delay,
            redirect_to: None,
            fault: None,
        }
    }

    /// Misbehave on the first `times` matching requests.
    pub fn fault(method: &str, path_contains: &str, fault: Fault, times: usize) -> Rule {
        Rule {
            method: Some(method.into()),
            path_contains: path_contains.into(),
            delay: Duration::ZERO,
            redirect_to: None,
            fault: Some((fault, times)),
        }
    }

    /// Redirect matching requests to another server.
    pub fn redirect(method: &str, path_contains: &str, to: &str) -> Rule {
        Rule {
            method: Some(method.into()),
            path_contains: path_contains.into(),
            delay: Duration::ZERO,
            redirect_to: Some(to.into()),
            fault: None,
        }
    }
}

#[derive(Default)]
struct Stats {
    records: Vec<Record>,
    faults_used: HashMap<usize, usize>,
    in_flight: HashMap<String, usize>,
    max_repos_in_flight: usize,
    connections: usize,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    public: String,
    rules: Arc<Vec<Rule>>,
    stats: Arc<Mutex<Stats>>,
    http: reqwest::Client,
}

/// A running proxy. Stops when dropped.
pub struct Proxy {
    addr: String,
    stats: Arc<Mutex<Stats>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The repository a `/v2/<repo>/(blobs|manifests)/…` path is about.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let cut = rest.find("/blobs/").or_else(|| rest.find("/manifests/"))?;
    Some(rest[..cut].to_string())
}

async fn forward(State(s): State<Shared>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let repo = repo_of(&path).filter(|_| path.contains("/blobs/"));
    let mut index = None;
    if let Ok(mut st) = s.stats.lock() {
        index = Some(st.records.len());
        st.records.push(Record {
            method: method.clone(),
            path: path.clone(),
            authorization,
            at: std::time::Instant::now(),
            faulted: false,
        });
        if let Some(r) = &repo {
            *st.in_flight.entry(r.clone()).or_default() += 1;
            let busy = st.in_flight.values().filter(|n| **n > 0).count();
            st.max_repos_in_flight = st.max_repos_in_flight.max(busy);
        }
    }
    let mut redirect = None;
    let mut fault = None;
    for (i, rule) in s.rules.iter().enumerate() {
        if path.contains(&rule.path_contains) && rule.method.as_deref().is_none_or(|m| m == method)
        {
            tokio::time::sleep(rule.delay).await;
            redirect = redirect.or(rule.redirect_to.clone());
            if let Some((f, times)) = &rule.fault
                && fault.is_none()
                && let Ok(mut st) = s.stats.lock()
            {
                let used = st.faults_used.entry(i).or_default();
                if *used < *times {
                    *used += 1;
                    fault = Some(f.clone());
                    if let Some(r) = index.and_then(|n| st.records.get_mut(n)) {
                        r.faulted = true;
                    }
                }
            }
        }
    }
    let response = match (redirect, fault) {
        (Some(to), _) => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", format!("http://{to}{path}"))
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty())),
        (None, Some(Fault::Status(code, retry_after))) => {
            let mut b = Response::builder().status(code);
            if let Some(secs) = retry_after {
                b = b.header("retry-after", secs.to_string());
            }
            b.body(Body::from("injected fault"))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        (None, Some(Fault::StatusWithHeaders(code, extra))) => {
            let mut b = Response::builder().status(code);
            for (k, v) in extra {
                b = b.header(k, v);
            }
            b.body(Body::from("injected fault"))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        (None, Some(Fault::Serve(code, extra, body))) => {
            let mut b = Response::builder().status(code);
            for (k, v) in extra {
                b = b.header(k, v);
            }
            b.body(Body::from(body))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        (None, Some(Fault::Replace(content_type, body))) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap_or_else(|_| Response::new(Body::empty())),
        (None, f) => mangle(relay(&s, req, &path).await, f).await,
    };
    if let Some(r) = &repo
        && let Ok(mut st) = s.stats.lock()
        && let Some(n) = st.in_flight.get_mut(r)
    {
        *n = n.saturating_sub(1);
    }
    response
}

/// Apply a body fault to a relayed response.
async fn mangle(resp: Response, fault: Option<Fault>) -> Response {
    use futures::StreamExt;
    let Some(fault) = fault else { return resp };
    if let Fault::AddHeaders(extra) = fault {
        let mut resp = resp;
        for (k, v) in extra {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::try_from(k),
                axum::http::HeaderValue::try_from(v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    match fault {
        Fault::Corrupt => {
            let mut v = bytes.to_vec();
            if let Some(mid) = v.len().checked_div(2).filter(|_| !v.is_empty()) {
                v[mid] ^= 0xff;
            }
            Response::from_parts(parts, Body::from(v))
        }
        Fault::ResetAfter(n) => {
            let head = bytes.slice(..n.min(bytes.len()));
            let stream = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(head),
                Err(std::io::Error::other("injected connection reset")),
            ])
            .boxed();
            Response::from_parts(parts, Body::from_stream(stream))
        }
        Fault::Status(..)
        | Fault::Replace(..)
        | Fault::AddHeaders(..)
        | Fault::StatusWithHeaders(..)
        | Fault::Serve(..) => Response::from_parts(parts, Body::from(bytes)),
    }
}

async fn relay(s: &Shared, req: Request, path: &str) -> Response {
    let method = req.method().clone();
    let mut headers = HeaderMap::new();
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            headers.insert(k.clone(), v.clone());
        }
    }
    let length = req.headers().get("content-length").cloned();
    if let Ok(v) = s.public.parse() {
        headers.insert("x-forwarded-host", v);
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let mut out = s
        .http
        .request(method, format!("http://{}{path}", s.upstream))
        .headers(headers)
        .body(body);
    if let Some(l) = length {
        out = out.header("content-length", l);
    }
    match out.send().await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            builder
                .body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(e.to_string()))
            .unwrap_or_else(|_| Response::new(Body::empty())),
    }
}

impl Proxy {
    /// Proxy `upstream` (`127.0.0.1:PORT`, plain HTTP) on a free port, applying `rules`.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> anyhow::Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stats_out = stats.clone();
        let shared = Shared {
            upstream: upstream.to_string(),
            public: addr.clone(),
            rules: Arc::new(rules),
            stats: stats.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().fallback(forward).with_state(shared);
                // Connections are counted apart from requests: a TLS hello sent to this
                // plain-HTTP proxy is a connection that never becomes a request.
                let counted = stats.clone();
                let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
                    if let Ok(mut s) = counted.lock() {
                        s.connections += 1;
                    }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(Proxy {
            addr,
            stats: stats_out,
            stop: Some(stop),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Requests seen so far.
    pub fn records(&self) -> Vec<Record> {
        self.stats
            .lock()
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }

    /// TCP connections accepted so far (whether or not they carried an HTTP request).
    pub fn connections(&self) -> usize {
        self.stats.lock().map(|s| s.connections).unwrap_or(0)
    }

    /// How many times the rule at `index` misbehaved.
    pub fn faults_applied(&self, index: usize) -> usize {
        self.stats
            .lock()
            .map(|s| s.faults_used.get(&index).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The most repositories that had blob requests in flight at the same time.
    pub fn max_repos_in_flight(&self) -> usize {
        self.stats
            .lock()
            .map(|s| s.max_repos_in_flight)
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
