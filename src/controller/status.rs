//! Computing the next status (pure) and writing it with server-side apply (only when it
//! differs from the current one, timestamps aside).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::executor::{Outcome, RunKey};
use super::{Error, MANAGER};
use crate::crd::{self, ChartMirrorStatus, Want, conditions, reasons};
use crate::spec::{ChartMirror, Field, SpecProblem};

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A spec problem as `spec.<path>: message`.
pub fn describe(p: &SpecProblem) -> String {
    let path = match &p.field {
        Field::Target(f) => format!("spec.target.{f}"),
        Field::Spec(f) => format!("spec.{f}"),
        Field::Upstream(i, f) => format!("spec.upstreams[{i}].{f}"),
        Field::Images(None, f) => format!("spec.images.{f}"),
        Field::Images(Some(i), f) => format!("spec.upstreams[{i}].images.{f}"),
        Field::Auth(i, f) => format!("spec.upstreams[{i}].auth.{f}"),
    };
    format!("{path}: {}", p.message)
}

/// What only the operator refuses: values files from its own filesystem (a ChartMirror
/// author must not get to feed the operator's files, such as its service account token,
/// to helm and read the errors back in status).
pub fn operator_problems(spec: &crate::spec::ChartMirrorSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    for (i, u) in spec.upstreams.iter().enumerate() {
        for f in &u.values_files {
            if crate::pipeline::is_local_values_file(f) {
                out.push(SpecProblem {
                    field: Field::Upstream(i, "valuesFiles"),
                    message: format!(
                        "{f:?} is a path on the operator's filesystem; the operator only reads values files inside the chart (e.g. values-production.yaml) — put the values in spec.upstreams[].values"
                    ),
                });
            }
        }
    }
    out
}

/// Invalid spec: Stalled, not Ready, nothing runs until the spec changes.
pub fn stalled(old: &ChartMirrorStatus, generation: i64, message: &str) -> ChartMirrorStatus {
    let wants = [
        Want {
            type_: conditions::READY,
            status: "False",
            reason: reasons::INVALID_SPEC,
            message: message.into(),
        },
        Want {
            type_: conditions::STALLED,
            status: "True",
            reason: reasons::INVALID_SPEC,
            message: message.into(),
        },
    ];
    ChartMirrorStatus {
        observed_generation: Some(generation),
        conditions: crd::set_conditions(&old.conditions, &wants, generation, &now()),
        ..old.clone()
    }
}

/// Not ready for a reason other than a run (a missing Secret, say); retried.
pub fn not_ready(
    old: &ChartMirrorStatus,
    generation: i64,
    reason: &'static str,
    message: &str,
) -> ChartMirrorStatus {
    let wants = [Want {
        type_: conditions::READY,
        status: "False",
        reason,
        message: message.into(),
    }];
    ChartMirrorStatus {
        conditions: crd::set_conditions(&old.conditions, &wants, generation, &now()),
        ..old.clone()
    }
}

/// A run in flight: Reconciling, Ready Unknown (kstatus must not read it as done).
pub fn progressing(
    old: &ChartMirrorStatus,
    generation: i64,
    started: &Time,
    message: String,
) -> ChartMirrorStatus {
    let wants = [
        Want {
            type_: conditions::READY,
            status: "Unknown",
            reason: reasons::PROGRESSING,
            message: message.clone(),
        },
        Want {
            type_: conditions::RECONCILING,
            status: "True",
            reason: reasons::PROGRESSING,
            message,
        },
    ];
    ChartMirrorStatus {
        conditions: crd::set_conditions(&old.conditions, &wants, generation, &now()),
        last_run_start_time: Some(started.clone()),
        ..old.clone()
    }
}

/// A finished run folded in: results, summary, Ready, observedGeneration.
pub fn finished(
    old: &ChartMirrorStatus,
    generation: i64,
    key: &RunKey,
    started: &Time,
    finished: &Time,
    outcome: &Outcome,
) -> ChartMirrorStatus {
    let mut status = ChartMirrorStatus {
        observed_generation: Some(generation),
        last_handled_reconcile_at: key
            .requested_at
            .clone()
            .or_else(|| old.last_handled_reconcile_at.clone()),
        last_run_start_time: Some(started.clone()),
        last_run_completion_time: Some(finished.clone()),
        ..old.clone()
    };
    let wants = match outcome {
        Outcome::Report(report) => {
            let (summary, charts) = crd::fold_report(report);
            status.summary = Some(summary);
            status.charts = charts;
            status.upstreams = crd::fold_upstreams(&old.upstreams, report, finished).0;
            crd::conditions_for(report)
        }
        Outcome::Error(e) => vec![Want {
            type_: conditions::READY,
            status: "False",
            reason: "RunFailed",
            message: e.clone(),
        }],
    };
    status.conditions = crd::set_conditions(&old.conditions, &wants, generation, &now());
    status
}

/// The status without its timestamps, for change detection.
fn comparable(s: &ChartMirrorStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v
}

/// Apply `new` to the status subresource unless it equals `old` (timestamps aside).
/// Returns whether a patch was sent.
pub async fn patch_if_changed(
    api: &Api<ChartMirror>,
    cm: &ChartMirror,
    old: &ChartMirrorStatus,
    new: &ChartMirrorStatus,
) -> Result<bool, Error> {
    if comparable(old) == comparable(new) && cm.status.is_some() {
        return Ok(false);
    }
    let body = json!({"apiVersion": "lazyoci.io/v1alpha1", "kind": "ChartMirror", "status": new});
    let params = PatchParams::apply(MANAGER).force();
    match tokio::time::timeout(
        std::time::Duration::from_secs(30),
        api.patch_status(&cm.name_any(), &params, &Patch::Apply(&body)),
    )
    .await
    {
        Ok(r) => r.map(|_| true).map_err(Error::from),
        Err(_) => Err(Error::Timeout),
    }
}
