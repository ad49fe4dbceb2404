//! Runs mirrors in the background, one per ChartMirror, so a reconcile never waits for a
//! copy. The reconciler starts, cancels and reads runs; it never awaits one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector::ObjectRef;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, Env, Event, MirrorRequest, Progress};
use crate::result::MirrorReport;
use crate::spec::ChartMirror;

/// What a run was started for: a spec generation and a reconcile request token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKey {
    /// `metadata.generation`.
    pub generation: i64,
    /// The `reconcile.fluxcd.io/requestedAt` annotation, if any.
    pub requested_at: Option<String>,
}

/// Chart versions done so far in a run.
#[derive(Default, Debug)]
pub struct RunProgress {
    total: AtomicUsize,
    done: AtomicUsize,
}

impl RunProgress {
    /// (done, total).
    pub fn get(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

impl Progress for RunProgress {
    fn event(&self, event: Event) {
        match event {
            Event::Plan(units) => self.total.store(units.len(), Ordering::Relaxed),
            Event::UnitDone(_) => {
                self.done.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// It ran; the report says what happened.
    Report(Arc<MirrorReport>),
    /// It could not start (e.g. helm missing); the message says why.
    Error(String),
}

/// A snapshot of one ChartMirror's run.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// What it was started for.
    pub key: RunKey,
    /// When it started.
    pub started: Time,
    /// Progress so far.
    pub progress: Arc<RunProgress>,
    /// `None` while running.
    pub finished: Option<(Time, Outcome)>,
    /// Failed runs in a row before this one (for backoff).
    pub failures: u32,
}

struct Entry {
    snapshot: Snapshot,
    cancel: CancellationToken,
    done: Arc<tokio::sync::Notify>,
}

/// The background runs, keyed by ChartMirror uid.
#[derive(Clone)]
pub struct Executor {
    runs: Arc<Mutex<HashMap<String, Entry>>>,
    trigger: futures::channel::mpsc::UnboundedSender<ObjectRef<ChartMirror>>,
}

/// Now, in whole seconds: status times round-trip through RFC 3339 seconds, and a finished
/// run must compare equal to the time written for it.
fn now() -> Time {
    let secs = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(secs)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}

impl Executor {
    /// An executor that asks for a reconcile of the object whenever its run ends.
    pub fn new(trigger: futures::channel::mpsc::UnboundedSender<ObjectRef<ChartMirror>>) -> Self {
        Executor {
            runs: Arc::default(),
            trigger,
        }
    }

    /// The current or last run of `uid`.
    pub fn snapshot(&self, uid: &str) -> Option<Snapshot> {
        self.runs.lock().ok()?.get(uid).map(|e| e.snapshot.clone())
    }

    /// Runs in flight.
    pub fn running(&self) -> usize {
        self.runs
            .lock()
            .map(|r| r.values().filter(|e| e.snapshot.finished.is_none()).count())
            .unwrap_or(0)
    }

    /// Cancel the run of `uid` if one is in flight. Returns whether one was.
    pub fn cancel(&self, uid: &str) -> bool {
        let Ok(mut runs) = self.runs.lock() else {
            return false;
        };
        match runs.get(uid) {
            Some(e) if e.snapshot.finished.is_none() => {
                e.cancel.cancel();
                runs.remove(uid);
                true
            }
            _ => false,
        }
    }

    /// Forget `uid` (the object is gone).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut runs) = self.runs.lock()
            && let Some(e) = runs.remove(uid)
        {
            e.cancel.cancel();
        }
    }

    /// Start a run of `req` for `uid`, replacing (and cancelling) any other.
    pub fn start(
        &self,
        uid: &str,
        key: RunKey,
        req: MirrorRequest,
        env: Env,
        object: ObjectRef<ChartMirror>,
    ) {
        let cancel = CancellationToken::new();
        let progress = Arc::new(RunProgress::default());
        let done = Arc::new(tokio::sync::Notify::new());
        let failures = self.snapshot(uid).map(|s| match &s.finished {
            Some((_, Outcome::Report(r))) if !r.has_failures() => 0,
            Some(_) => s.failures + 1,
            None => s.failures,
        });
        let entry = Entry {
            snapshot: Snapshot {
                key,
                started: now(),
                progress: progress.clone(),
                finished: None,
                failures: failures.unwrap_or(0),
            },
            cancel: cancel.clone(),
            done: done.clone(),
        };
        if let Ok(mut runs) = self.runs.lock()
            && let Some(old) = runs.insert(uid.to_string(), entry)
        {
            old.cancel.cancel();
        }
        let runs = self.runs.clone();
        let trigger = self.trigger.clone();
        let uid = uid.to_string();
        tokio::spawn(async move {
            let outcome = match pipeline::run(&req, &env, progress.as_ref(), &cancel).await {
                Ok(report) => {
                    for c in &report.charts {
                        for v in &c.versions {
                            if let Some(error) = &v.chart_error {
                                tracing::warn!(chart = %c.key, version = %v.version, %error, "chart version failed");
                            }
                        }
                    }
                    Outcome::Report(Arc::new(report))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "mirror run could not start");
                    Outcome::Error(e.to_string())
                }
            };
            if cancel.is_cancelled() {
                return; // replaced or stopped: its result describes nothing current
            }
            if let Ok(mut runs) = runs.lock()
                && let Some(e) = runs.get_mut(&uid)
            {
                e.snapshot.finished = Some((now(), outcome));
            }
            done.notify_waiters();
            let _ = trigger.unbounded_send(object);
        });
    }

    /// Wait until the run of `uid` finishes (tests).
    pub async fn wait(&self, uid: &str) {
        loop {
            let done = match self.runs.lock().ok().and_then(|r| {
                r.get(uid)
                    .map(|e| (e.snapshot.finished.is_some(), e.done.clone()))
            }) {
                None | Some((true, _)) => return,
                Some((false, done)) => done,
            };
            let notified = done.notified();
            if self.snapshot(uid).is_none_or(|s| s.finished.is_some()) {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), notified).await;
        }
    }
}
