//! The ChartMirror operator: a kube-runtime Controller whose reconcile plans, starts and
//! observes mirror runs (the same [`pipeline::run`](crate::pipeline::run) the CLI calls) and
//! folds their reports into status. A reconcile never waits for a copy: runs execute in the
//! [`executor`], and their end triggers the next reconcile.

pub mod executor;
pub mod metrics;
pub mod overlays;
pub mod secrets;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::crd::{self, conditions, reasons};
use crate::pipeline::{Env, MirrorRequest};
use crate::registry::RegistryOptions;
use crate::spec::{ChartMirror, parse_duration};
use executor::{Executor, Outcome, RunKey};
use metrics::Metrics;

/// The annotation Flux and Argo CD use to ask for a reconcile now.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// Field manager for status patches.
pub const MANAGER: &str = "lazyoci";

/// Errors of one reconcile (not of the mirror run, whose failures are in its report).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The Kubernetes API did not answer in time.
    #[error("the Kubernetes API did not answer within 30s")]
    Timeout,
    /// The object has no namespace or name.
    #[error("object without namespace or name")]
    Malformed,
}

impl Error {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Timeout => "timeout",
            Error::Malformed => "malformed",
        }
    }
}

/// Operator-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Scratch and chart cache directory.
    pub artifact_dir: PathBuf,
    /// helm binary.
    pub helm: PathBuf,
    /// Source registries reached over plain HTTP (in-cluster mirrors, tests).
    pub insecure_registries: Vec<String>,
    /// How often progress of a running mirror is written to status.
    pub progress_every: Duration,
}

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Background runs.
    pub executor: Executor,
    /// Event publisher.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Settings,
    /// Discovery results, shared by every run for the operator's life (and kept under the
    /// artifact directory, which survives restarts when it is a mounted volume).
    pub discovery_cache: Arc<crate::pipeline::DiscoveryCache>,
}

fn requested_at(cm: &ChartMirror) -> Option<String> {
    cm.annotations().get(REQUESTED_AT).cloned()
}

fn interval(cm: &ChartMirror) -> Duration {
    cm.spec
        .interval
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(Duration::from_secs(3600))
}

/// ±5% jitter, as Flux does.
fn jitter(d: Duration, uid: &str) -> Duration {
    let seed = uid.bytes().fold(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos())
            .unwrap_or(0),
        |a, b| a.rotate_left(5) ^ u32::from(b),
    );
    let frac = f64::from(seed % 1000) / 1000.0; // 0..1
    d.mul_f64(0.95 + frac * 0.1)
}

/// Exponential backoff after failed runs: 30s, 1m, 2m … 15m.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(30)
        .saturating_mul(1 << failures.min(5))
        .min(Duration::from_secs(900))
}

impl Context {
    fn env_for(&self, cm: &ChartMirror, material: secrets::SecretMaterial) -> Result<Env, String> {
        let mut opts = RegistryOptions {
            observer: Some(self.metrics.clone()),
            per_host_copies: cm.spec.per_host_concurrency.map(|n| n as usize),
            retries: cm.spec.retries.unwrap_or(crate::registry::DEFAULT_RETRIES),
            ..Default::default()
        };
        opts.insecure_hosts
            .extend(self.settings.insecure_registries.iter().cloned());
        if cm.spec.target.insecure
            && let Ok(t) = crate::spec::TargetUrl::parse(&cm.spec.target.url)
        {
            opts.insecure_hosts.insert(t.host);
        }
        if let Some(t) = cm.spec.timeout.as_deref().and_then(parse_duration) {
            opts.request_timeout = t;
        }
        opts.extra_ca_pem = material.ca_pem;
        let mut env = Env::with_access(
            opts,
            Arc::new(material.credentials),
            material.access,
            self.settings.helm.clone(),
            self.settings.artifact_dir.clone(),
        )
        .map_err(|e| format!("certSecretRef: {e}"))?;
        env.discovery_cache = Some(self.discovery_cache.clone());
        Ok(env)
    }

    async fn publish(&self, cm: &ChartMirror, type_: EventType, reason: &str, note: String) {
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(crd::truncate(&note, 1024)),
            action: "Mirror".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &cm.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

/// Reconcile one ChartMirror.
#[tracing::instrument(skip(cm, ctx), fields(name = %cm.name_any(), namespace = cm.namespace().unwrap_or_default()))]
pub async fn reconcile(cm: Arc<ChartMirror>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&cm, &ctx).await;
    ctx.metrics.set_running(ctx.executor.running());
    ctx.metrics.reconciled(
        if result.is_ok() { "ok" } else { "error" },
        started.elapsed().as_secs_f64(),
    );
    result
}

async fn reconcile_inner(cm: &ChartMirror, ctx: &Context) -> Result<Action, Error> {
    let (Some(ns), Some(uid)) = (cm.namespace(), cm.uid()) else {
        return Err(Error::Malformed);
    };
    let api: Api<ChartMirror> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = cm.metadata.generation.unwrap_or(0);
    let mut old = cm.status.clone().unwrap_or_default();

    if cm.spec.suspend {
        if ctx.executor.cancel(&uid) {
            ctx.publish(
                cm,
                EventType::Normal,
                reasons::SUSPENDED,
                "run cancelled: spec.suspend is true".into(),
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let problems: Vec<String> = cm
        .spec
        .problems()
        .into_iter()
        .chain(status::operator_problems(&cm.spec))
        .map(|p| status::describe(&p))
        .collect();
    if !problems.is_empty() {
        ctx.executor.cancel(&uid);
        let message = format!("invalid spec: {}", problems.join("; "));
        let new = status::stalled(&old, generation, &message);
        if status::patch_if_changed(&api, cm, &old, &new).await? {
            ctx.publish(cm, EventType::Warning, reasons::INVALID_SPEC, message)
                .await;
        }
        return Ok(Action::await_change());
    }

    let key = RunKey {
        generation,
        requested_at: requested_at(cm),
    };
    let snapshot = ctx.executor.snapshot(&uid);
    match &snapshot {
        Some(s) if s.key == key && s.finished.is_none() => {
            let (done, total) = s.progress.get();
            let new = status::progressing(
                &old,
                generation,
                &s.started,
                format!("mirroring: {done}/{total} chart versions done"),
            );
            status::patch_if_changed(&api, cm, &old, &new).await?;
            return Ok(Action::requeue(ctx.settings.progress_every));
        }
        Some(s) if s.key == key => {
            let Some((finished, outcome)) = &s.finished else {
                return Ok(Action::requeue(Duration::from_secs(5)));
            };
            let mut failed = match outcome {
                Outcome::Report(r) => r.has_failures(),
                Outcome::Error(_) => true,
            };
            if old.last_run_completion_time.as_ref() != Some(finished)
                || old.observed_generation != Some(generation)
            {
                // First look at this run's end: its overlays go to ConfigMaps, then status.
                let outcome = &match outcome {
                    Outcome::Report(r) => {
                        let mut r = (**r).clone();
                        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                        overlays::write_all(&cms, cm, &mut r).await;
                        failed |= r.has_failures();
                        Outcome::Report(Arc::new(r))
                    }
                    e => e.clone(),
                };
                let new = status::finished(&old, generation, &key, &s.started, finished, outcome);
                status::patch_if_changed(&api, cm, &old, &new).await?;
                fold_events(ctx, cm, &old, finished, outcome).await;
                // A next run started below builds on the folded status, not the one before.
                old = new;
            }
            let wait = if failed {
                backoff(s.failures)
            } else {
                jitter(interval(cm), &uid)
            };
            let elapsed = Duration::from_secs(
                k8s_openapi::jiff::Timestamp::now()
                    .duration_since(finished.0)
                    .as_secs()
                    .max(0) as u64,
            );
            if elapsed < wait {
                return Ok(Action::requeue(wait - elapsed));
            }
        }
        None if old.observed_generation == Some(generation)
            && old.last_handled_reconcile_at == key.requested_at =>
        {
            // A restart lost the run record; the status still says when the last run ended.
            if let Some(done) = &old.last_run_completion_time {
                let ok = old
                    .conditions
                    .iter()
                    .any(|c| c.type_ == conditions::READY && c.status == "True");
                let wait = if ok {
                    jitter(interval(cm), &uid)
                } else {
                    backoff(0)
                };
                let elapsed = Duration::from_secs(
                    k8s_openapi::jiff::Timestamp::now()
                        .duration_since(done.0)
                        .as_secs()
                        .max(0) as u64,
                );
                if elapsed < wait {
                    return Ok(Action::requeue(wait - elapsed));
                }
            }
        }
        _ => {}
    }

    // Start a run: read the referenced Secrets first.
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let material = match secrets::load(&secrets_api, &cm.spec).await {
        Ok(m) => m,
        Err(e) => {
            let new = status::not_ready(&old, generation, reasons::SECRET_ERROR, &e.to_string());
            if status::patch_if_changed(&api, cm, &old, &new).await? {
                ctx.publish(cm, EventType::Warning, reasons::SECRET_ERROR, e.to_string())
                    .await;
            }
            return Ok(Action::requeue(backoff(2)));
        }
    };
    let env = match ctx.env_for(cm, material) {
        Ok(env) => env,
        Err(e) => {
            let new = status::not_ready(&old, generation, reasons::SECRET_ERROR, &e);
            status::patch_if_changed(&api, cm, &old, &new).await?;
            return Ok(Action::requeue(backoff(2)));
        }
    };
    ctx.executor.start(
        &uid,
        key,
        MirrorRequest {
            overlays: true,
            ..MirrorRequest::all(cm.spec.clone())
        },
        env,
        ObjectRef::from_obj(cm),
    );
    let started =
        ctx.executor
            .snapshot(&uid)
            .map(|s| s.started)
            .unwrap_or_else(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )
            });
    let new = status::progressing(&old, generation, &started, "mirroring: run started".into());
    status::patch_if_changed(&api, cm, &old, &new).await?;
    Ok(Action::requeue(ctx.settings.progress_every))
}

async fn fold_events(
    ctx: &Context,
    cm: &ChartMirror,
    old: &crd::ChartMirrorStatus,
    finished: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    outcome: &Outcome,
) {
    match outcome {
        Outcome::Error(e) => {
            ctx.publish(cm, EventType::Warning, "MirrorFailed", e.clone())
                .await
        }
        Outcome::Report(r) => {
            ctx.metrics.run_finished(r);
            for n in crd::fold_upstreams(&old.upstreams, r, finished).1 {
                let (type_, what) = if n.mirrored {
                    (EventType::Normal, "mirrored")
                } else {
                    (EventType::Warning, "selected, but mirroring it failed")
                };
                ctx.publish(
                    cm,
                    type_,
                    reasons::NEW_VERSION,
                    format!(
                        "{} {} appeared upstream ({}): {what}",
                        n.chart, n.version, n.upstream
                    ),
                )
                .await;
            }
            for c in r.charts.iter().filter(|c| c.error.is_some()) {
                ctx.publish(
                    cm,
                    EventType::Warning,
                    reasons::RESOLVE_FAILED,
                    format!("{}: {}", c.key, c.error.as_deref().unwrap_or_default()),
                )
                .await;
            }
            for c in &r.charts {
                for v in c.versions.iter().filter(|v| v.failed()) {
                    let why = v
                        .chart_error
                        .clone()
                        .or_else(|| v.images_error.clone())
                        .or_else(|| v.overlay.as_ref().and_then(|o| o.error.clone()))
                        .unwrap_or_else(|| format!("{} images failed", v.images_failed));
                    ctx.publish(
                        cm,
                        EventType::Warning,
                        reasons::PUSH_FAILED,
                        format!("{}:{}: {why}", c.chart, v.version),
                    )
                    .await;
                }
            }
            let (type_, reason) = if r.has_failures() {
                (EventType::Warning, reasons::PARTIALLY_MIRRORED)
            } else {
                (EventType::Normal, "MirrorSucceeded")
            };
            let note = format!(
                "{} chart versions ({} pushed, {} failed); images {} copied, {} present, {} failed",
                r.charts.iter().map(|c| c.versions.len()).sum::<usize>(),
                r.charts_pushed,
                r.charts_failed,
                r.images_copied,
                r.images_skipped,
                r.images_failed
            );
            ctx.publish(cm, type_, reason, note).await;
        }
    }
}

/// What to do after a reconcile error: retry with a short backoff.
pub fn error_policy(_cm: Arc<ChartMirror>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(error.category());
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

/// `lazyoci operator` options.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// Serve metrics and health here.
    pub metrics_addr: std::net::SocketAddr,
    /// Only run while holding the Lease.
    pub leader_election: bool,
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub lease_namespace: Option<String>,
    /// Only watch this namespace.
    pub watch_namespace: Option<String>,
    /// ChartMirrors reconciled at once.
    pub concurrency: u16,
    /// Settings passed to every reconcile.
    pub settings: Settings,
}

/// Run the operator until SIGTERM or SIGINT.
pub async fn run(opts: OperatorOptions) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let health = metrics::Health::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::cli::cancel_on_signals(shutdown.clone());
    let server = {
        let (m, h, s) = (metrics.clone(), health.clone(), shutdown.clone());
        tokio::spawn(metrics::serve(opts.metrics_addr, m, h, async move {
            s.cancelled().await
        }))
    };

    // Leader election: wait for the Lease before reconciling anything.
    let mut leader = None;
    if opts.leader_election {
        let ns = opts
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("lazyoci-{}", std::process::id()));
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &opts.lease_name)
                .with_namespace(ns)
                .with_identity(identity)
                .build()
                .await?;
        let (mut rx, task) = manager.watch().await;
        tracing::info!("waiting for leadership");
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = rx.changed() => { changed?; }
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
        tracing::info!("leading");
        leader = Some((rx, task));
    }

    let api: Api<ChartMirror> = match &opts.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (trigger, triggers) = futures::channel::mpsc::unbounded();
    let reporter = Reporter {
        controller: "lazyoci".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        executor: Executor::new(trigger),
        metrics: metrics.clone(),
        discovery_cache: Arc::new(crate::pipeline::DiscoveryCache::new(Some(
            opts.settings.artifact_dir.join("discovery"),
        ))),
        settings: opts.settings.clone(),
    });
    let lost_leadership = async {
        match &mut leader {
            Some((rx, _)) => loop {
                if rx.changed().await.is_err() || !*rx.borrow() {
                    break;
                }
            },
            None => std::future::pending().await,
        }
    };
    let s = shutdown.clone();
    let controller = Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(kube::runtime::controller::Config::default().concurrency(opts.concurrency))
        .reconcile_all_on(triggers.map(|_| ()))
        .graceful_shutdown_on(async move { s.cancelled().await })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile error"),
            }
        });
    tokio::select! {
        _ = controller => {}
        _ = lost_leadership => {
            tracing::error!("lost the leader Lease; exiting so another replica takes over");
            shutdown.cancel();
        }
    }
    health.set_ready(false);
    shutdown.cancel();
    drop(leader); // closing the watch channel releases the Lease
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests;
