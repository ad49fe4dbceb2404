//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//!
//! Labels are static strings, registry hosts (few, from the specs) and status codes; never an
//! image reference or a digest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

use crate::registry::RequestObserver;
use crate::result::MirrorReport;

/// Every metric lazyoci exports, registered once under the `lazyoci_` prefix.
pub struct Metrics {
    /// The registry to encode.
    pub registry: Registry,
    reconcile_duration: HistogramVec,
    reconcile_errors: IntCounterVec,
    run_duration: Histogram,
    chart_versions: IntCounterVec,
    images: IntCounterVec,
    bytes: IntCounter,
    requests: IntCounterVec,
    runs_in_flight: IntGauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are static; a failure here is a programming error caught by tests.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new_custom(Some("lazyoci".into()), None).unwrap_or_default();
        let m = Metrics {
            reconcile_duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "reconcile_duration_seconds",
                    "Time spent in one reconcile call (not the background run)",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0]),
                &["outcome"],
            )),
            reconcile_errors: must(IntCounterVec::new(
                Opts::new("reconcile_errors_total", "Reconcile errors by category"),
                &["category"],
            )),
            run_duration: must(Histogram::with_opts(
                HistogramOpts::new("run_duration_seconds", "Wall time of a mirror run")
                    .buckets(vec![1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0]),
            )),
            chart_versions: must(IntCounterVec::new(
                Opts::new("chart_versions_total", "Chart versions by result"),
                &["result"],
            )),
            images: must(IntCounterVec::new(
                Opts::new("images_total", "Images by result"),
                &["result"],
            )),
            bytes: must(IntCounter::new(
                "bytes_copied_total",
                "Blob bytes copied to targets",
            )),
            requests: must(IntCounterVec::new(
                Opts::new(
                    "registry_requests_total",
                    "Registry HTTP requests by host and status code",
                ),
                &["host", "code"],
            )),
            runs_in_flight: must(IntGauge::new("runs_in_flight", "Mirror runs in progress")),
            registry,
        };
        for c in [
            Box::new(m.reconcile_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.reconcile_errors.clone()),
            Box::new(m.run_duration.clone()),
            Box::new(m.chart_versions.clone()),
            Box::new(m.images.clone()),
            Box::new(m.bytes.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.runs_in_flight.clone()),
        ] {
            must(m.registry.register(c));
        }
        m
    }
}

impl Metrics {
    /// Record one reconcile call.
    pub fn reconciled(&self, outcome: &str, seconds: f64) {
        self.reconcile_duration
            .with_label_values(&[outcome])
            .observe(seconds);
    }

    /// Record a reconcile error.
    pub fn error(&self, category: &str) {
        self.reconcile_errors.with_label_values(&[category]).inc();
    }

    /// Set the number of runs in flight.
    pub fn set_running(&self, n: usize) {
        self.runs_in_flight.set(n as i64);
    }

    /// Count a finished run.
    pub fn run_finished(&self, report: &MirrorReport) {
        self.run_duration
            .observe(report.duration_ms as f64 / 1000.0);
        for (result, n) in [
            ("pushed", report.charts_pushed),
            ("skipped", report.charts_skipped),
            ("failed", report.charts_failed),
        ] {
            self.chart_versions
                .with_label_values(&[result])
                .inc_by(n as u64);
        }
        for (result, n) in [
            ("copied", report.images_copied),
            ("skipped", report.images_skipped),
            ("failed", report.images_failed),
        ] {
            self.images.with_label_values(&[result]).inc_by(n as u64);
        }
        self.bytes.inc_by(report.bytes_copied);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, host: &str, _method: &str, status: u16) {
        self.requests
            .with_label_values(&[host, &status.to_string()])
            .inc();
    }
}

/// Health state shared with the HTTP server.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Mark ready (controller running) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { metrics.encode() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                if health.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_and_metrics_endpoints_answer() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let metrics = Arc::new(Metrics::default());
        metrics.observe("quay.io", "HEAD", 200);
        let health = Health::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let server = tokio::spawn(serve(addr, metrics, health.clone(), async move {
            s.cancelled().await
        }));
        let http = reqwest::Client::new();
        let get = |path: &'static str| {
            let http = http.clone();
            async move {
                for _ in 0..50 {
                    if let Ok(r) = http.get(format!("http://{addr}{path}")).send().await {
                        return (r.status().as_u16(), r.text().await.unwrap_or_default());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                (0, String::new())
            }
        };
        assert_eq!(get("/healthz").await.0, 200);
        assert_eq!(get("/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get("/readyz").await.0, 200);
        let (code, body) = get("/metrics").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("lazyoci_registry_requests_total{code=\"200\",host=\"quay.io\"} 1"),
            "{body}"
        );
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn metrics_register_and_encode_without_image_labels() {
        let m = Metrics::default();
        m.observe("ghcr.io", "GET", 200);
        m.observe("ghcr.io", "GET", 429);
        let r = MirrorReport {
            images_copied: 3,
            images_failed: 1,
            bytes_copied: 42,
            ..Default::default()
        };
        m.run_finished(&r);
        let text = m.encode();
        assert!(
            text.contains("lazyoci_registry_requests_total{code=\"429\",host=\"ghcr.io\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("lazyoci_images_total{result=\"copied\"} 3"),
            "{text}"
        );
        assert!(text.contains("lazyoci_bytes_copied_total 42"), "{text}");
    }
}
