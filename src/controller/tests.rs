//! Reconcile tests: kube-rs's mocked API server (tower-test) records every request the
//! reconciler makes; the pipeline under it runs for real against local registries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use super::*;
use crate::spec::{ChartMirrorSpec, SourceType, TargetSpec, UpstreamSpec};
use crate::testkit::{charts, images, registry::Registry};

/// One request the reconciler sent.
#[derive(Clone, Debug, serde::Serialize)]
struct Sent {
    method: String,
    path: String,
    body: Value,
}

/// A fake API server: answers status patches with the patched object, echoes events, and
/// records everything.
struct FakeApi {
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl FakeApi {
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

fn fake_api(object: ChartMirror) -> (Client, FakeApi) {
    fake_api_with(object, Vec::new())
}

fn fake_api_with(object: ChartMirror, secrets: Vec<Value>) -> (Client, FakeApi) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    let configmaps: Mutex<std::collections::BTreeMap<String, Value>> = Mutex::default();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            record.lock().unwrap().push(Sent {
                method: method.clone(),
                path: path.clone(),
                body: body.clone(),
            });
            let (status, answer) = if path.contains("/secrets/") {
                match secrets.iter().find(|s| {
                    path.ends_with(&format!(
                        "/secrets/{}",
                        s["metadata"]["name"].as_str().unwrap_or_default()
                    ))
                }) {
                    Some(secret) => (200, secret.clone()),
                    None => (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                    ),
                }
            } else if path.contains("/configmaps") {
                configmap(&configmaps, &method, &path, body)
            } else if path.contains("/events") {
                (200, body)
            } else if path.contains("/chartmirrors/") && method == "PATCH" {
                let mut obj = serde_json::to_value(&object).unwrap();
                obj["status"] = body["status"].clone();
                (200, obj)
            } else {
                (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                )
            };
            respond.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "default"), FakeApi { sent })
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

/// ConfigMaps as the API server keeps them: GET by name, POST creates, PUT replaces (with
/// the current resourceVersion), each write a new resourceVersion.
fn configmap(
    store: &Mutex<std::collections::BTreeMap<String, Value>>,
    method: &str,
    path: &str,
    mut body: Value,
) -> (u16, Value) {
    let mut store = store.lock().unwrap();
    let name = path
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit_once("/configmaps")
        .map(|(_, rest)| rest.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let version = store.len() as u64 * 100 + 1;
    match method {
        "GET" => match store.get(&name) {
            Some(cm) => (200, cm.clone()),
            None => (404, not_found()),
        },
        "POST" => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if store.contains_key(&name) {
                return (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                );
            }
            body["metadata"]["resourceVersion"] = json!(version.to_string());
            store.insert(name, body.clone());
            (201, body)
        }
        "PUT" => match store.get(&name) {
            Some(have)
                if have["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"] =>
            {
                body["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                store.insert(name, body.clone());
                (200, body)
            }
            Some(_) => (
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"}),
            ),
            None => (404, not_found()),
        },
        _ => (405, not_found()),
    }
}

struct Fixture {
    src: Registry,
    dst: Registry,
    set: images::SeedSet,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    crate::install_crypto_provider();
    let src = Registry::start().await.unwrap();
    let dst = Registry::start().await.unwrap();
    let set = images::seed_standard_set(src.addr()).await.unwrap();
    Fixture {
        src,
        dst,
        set,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn context(&self, client: Client) -> Arc<Context> {
        let (trigger, _) = futures::channel::mpsc::unbounded();
        Arc::new(Context {
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: "lazyoci".into(),
                    instance: None,
                },
            ),
            client,
            executor: Executor::new(trigger),
            metrics: Arc::new(Metrics::default()),
            discovery_cache: Arc::new(crate::pipeline::DiscoveryCache::new(Some(
                self.dir.path().join("artifacts/discovery"),
            ))),
            settings: Settings {
                artifact_dir: self.dir.path().join("artifacts"),
                helm: crate::testkit::helm_bin(),
                insecure_registries: vec![self.src.addr().to_string()],
                progress_every: Duration::from_secs(10),
            },
        })
    }

    /// A ChartMirror over a local chart whose images are `images`.
    fn mirror(&self, generation: i64, versions: &[&str], images: &[String]) -> ChartMirror {
        let chart = charts::write_chart_with_images(
            &self.dir.path().join("charts"),
            "app",
            "1.0.0",
            images,
        )
        .unwrap();
        let spec = ChartMirrorSpec {
            target: TargetSpec {
                url: format!("{}/m", self.dst.addr()),
                insecure: true,
                charts_prefix: Some("charts".into()),
                ..Default::default()
            },
            upstreams: vec![UpstreamSpec {
                name: "app".into(),
                source_type: SourceType::Local,
                path: Some(chart.to_string_lossy().into_owned()),
                chart: "app".into(),
                versions: versions.iter().map(|v| v.to_string()).collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut cm = ChartMirror::new("mirror", spec);
        cm.metadata.namespace = Some("team".into());
        cm.metadata.uid = Some("uid-1".into());
        cm.metadata.generation = Some(generation);
        cm
    }
}

/// The object as the informer would see it after the patches so far.
fn with_status(mut cm: ChartMirror, sent: &[Sent]) -> ChartMirror {
    if let Some(last) = sent.iter().rev().find(|s| s.path.contains("/status")) {
        cm.status = serde_json::from_value(last.body["status"].clone()).unwrap();
    }
    cm
}

fn condition<'a>(patch: &'a Sent, type_: &str) -> Option<&'a Value> {
    patch.body["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn events(sent: &[Sent]) -> Vec<(String, String)> {
    sent.iter()
        .filter(|s| s.path.contains("/events"))
        .map(|s| {
            (
                s.body["type"].as_str().unwrap_or_default().to_string(),
                s.body["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn status_patches(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter()
        .filter(|s| {
            s.method == "PATCH"
                && s.path.starts_with(
                    "/apis/lazyoci.io/v1alpha1/namespaces/team/chartmirrors/mirror/status",
                )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_run_ends_ready_with_one_event() {
    let f = fixture().await;
    let cm = f.mirror(
        1,
        &["1.0.0"],
        &[
            f.set.nginx.reference(f.src.addr()),
            f.set.job.reference(f.src.addr()),
        ],
    );
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);

    let action = reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    let sent = api.take();
    let patches = status_patches(&sent);
    assert_eq!(patches.len(), 1, "{sent:#?}");
    assert!(
        patches[0].path.contains("fieldManager=lazyoci") && patches[0].path.contains("force=true"),
        "{}",
        patches[0].path
    );
    assert_eq!(condition(patches[0], "Ready").unwrap()["status"], "Unknown");
    assert_eq!(
        condition(patches[0], "Reconciling").unwrap()["reason"],
        "Progressing"
    );
    assert!(events(&sent).is_empty());

    ctx.executor.wait("uid-1").await;
    let cm = with_status(cm, &sent);
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let sent = api.take();
    let patches = status_patches(&sent);
    assert_eq!(patches.len(), 1, "{sent:#?}");
    let status = &patches[0].body["status"];
    assert_eq!(status["observedGeneration"], 1);
    let ready = condition(patches[0], "Ready").unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("Succeeded"))
    );
    assert!(
        condition(patches[0], "Reconciling").is_none()
            && condition(patches[0], "Stalled").is_none()
    );
    assert_eq!(
        status["summary"]["chartVersions"],
        json!({"total": 1, "pushed": 1, "skipped": 0, "failed": 0})
    );
    assert_eq!(status["summary"]["images"]["copied"], 2);
    assert_eq!(status["charts"][0]["result"], "Pushed");
    assert_eq!(
        status["charts"][0]["url"],
        format!("oci://{}/m/charts/app:1.0.0", f.dst.addr())
    );
    assert_eq!(
        events(&sent),
        vec![("Normal".to_string(), "MirrorSucceeded".to_string())]
    );
    assert!(
        crate::testkit::oci::manifest_digest(f.dst.addr(), "m/library/nginx", "1.25")
            .await
            .unwrap()
            .is_some()
    );

    // Nothing changed: the next reconcile writes nothing and waits for the interval.
    let cm = with_status(cm, &sent);
    let action = reconcile(Arc::new(cm), ctx.clone()).await.unwrap();
    assert!(api.take().is_empty());
    assert!(
        format!("{action:?}").contains("requeue_after: Some"),
        "{action:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_is_not_ready_with_detail_and_per_version_events() {
    let f = fixture().await;
    let missing = format!("{}/gone/away:1", f.src.addr());
    let cm = f.mirror(
        3,
        &["1.0.0", "1.0.1"],
        &[f.set.nginx.reference(f.src.addr()), missing.clone()],
    );
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let sent = api.take();
    ctx.executor.wait("uid-1").await;
    reconcile(Arc::new(with_status(cm, &sent)), ctx.clone())
        .await
        .unwrap();
    let sent = api.take();
    let patch = status_patches(&sent)[0];
    let ready = condition(patch, "Ready").unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("PushFailed"))
    );
    assert_eq!(condition(patch, "PushFailed").unwrap()["status"], "True");
    assert_eq!(patch.body["status"]["observedGeneration"], 3);
    let entry = &patch.body["status"]["charts"][1];
    assert_eq!(entry["result"], "Failed");
    assert_eq!(entry["failedImages"], json!([missing]));
    assert!(
        entry["lastError"]
            .as_str()
            .unwrap()
            .contains("not found at the source")
    );
    let ev = events(&sent);
    assert_eq!(
        ev.iter().filter(|(_, r)| r == "PushFailed").count(),
        2,
        "one event per failed chart version: {ev:?}"
    );
    assert!(
        ev.contains(&("Warning".into(), "PartiallyMirrored".into())),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 3, "never one event per image: {ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_stalls_without_running() {
    let f = fixture().await;
    let mut cm = f.mirror(2, &["1.0.0"], &[f.set.nginx.reference(f.src.addr())]);
    cm.spec.upstreams[0].source_type = SourceType::Repo;
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);
    let action = reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let sent = api.take();
    let patch = status_patches(&sent)[0];
    let stalled = condition(patch, "Stalled").unwrap();
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("InvalidSpec"))
    );
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("spec.upstreams[0].repo: required for type=repo"),
        "{stalled}"
    );
    assert_eq!(condition(patch, "Ready").unwrap()["status"], "False");
    assert_eq!(patch.body["status"]["observedGeneration"], 2);
    assert_eq!(
        events(&sent),
        vec![("Warning".to_string(), "InvalidSpec".to_string())]
    );
    assert!(
        ctx.executor.snapshot("uid-1").is_none(),
        "a run started for an invalid spec"
    );
    // The operator never reads values files from its own filesystem.
    let mut local_values = f.mirror(3, &["1.0.0"], &[f.set.nginx.reference(f.src.addr())]);
    local_values.spec.upstreams[0].values_files =
        vec!["/var/run/secrets/kubernetes.io/serviceaccount/token".into()];
    let (client2, api2) = fake_api(local_values.clone());
    let ctx2 = f.context(client2);
    let action = reconcile(Arc::new(local_values), ctx2.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let sent2 = api2.take();
    let stalled2 = condition(status_patches(&sent2)[0], "Stalled").unwrap();
    assert!(
        stalled2["message"].as_str().unwrap().contains(
            "spec.upstreams[0].valuesFiles: \"/var/run/secrets/kubernetes.io/serviceaccount/token\" is a path on the operator's filesystem"
        ),
        "{stalled2}"
    );
    assert!(ctx2.executor.snapshot("uid-1").is_none());
    // Reconciling the same invalid object again changes nothing and says nothing.
    reconcile(Arc::new(with_status(cm, &sent)), ctx.clone())
        .await
        .unwrap();
    assert!(api.take().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_runs() {
    let f = fixture().await;
    let mut cm = f.mirror(1, &["1.0.0"], &[f.set.nginx.reference(f.src.addr())]);
    cm.spec.suspend = true;
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);
    assert_eq!(
        reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap(),
        Action::await_change()
    );
    assert!(api.take().is_empty());
    assert!(ctx.executor.snapshot("uid-1").is_none());

    // Suspending a running mirror cancels it and says so once.
    cm.spec.suspend = false;
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    api.take();
    assert!(ctx.executor.snapshot("uid-1").is_some());
    cm.spec.suspend = true;
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    assert_eq!(
        events(&api.take()),
        vec![("Normal".to_string(), "Suspended".to_string())]
    );
    assert!(ctx.executor.snapshot("uid-1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_mid_run_replaces_the_run() {
    let f = fixture().await;
    // A slow source, so the first run is still copying when the spec changes.
    let proxy = crate::testkit::proxy::Proxy::start(
        f.src.addr(),
        vec![crate::testkit::proxy::Rule::delay(
            "GET",
            "/blobs/",
            Duration::from_millis(700),
        )],
    )
    .unwrap();
    let images: Vec<String> = [&f.set.nginx, &f.set.redis, &f.set.api]
        .iter()
        .map(|s| s.reference(proxy.addr()))
        .collect();
    let first = f.mirror(1, &["1.0.0"], &images);
    let (client, api) = fake_api(first.clone());
    let mut ctx = f.context(client);
    Arc::get_mut(&mut ctx)
        .unwrap()
        .settings
        .insecure_registries
        .push(proxy.addr().to_string());
    reconcile(Arc::new(first.clone()), ctx.clone())
        .await
        .unwrap();
    let sent = api.take();
    assert!(ctx.executor.snapshot("uid-1").unwrap().finished.is_none());

    let mut second = with_status(first.clone(), &sent);
    second.metadata.generation = Some(2);
    second.spec.upstreams[0].versions = vec!["2.0.0".into()];
    reconcile(Arc::new(second.clone()), ctx.clone())
        .await
        .unwrap();
    let snap = ctx.executor.snapshot("uid-1").unwrap();
    assert_eq!(snap.key.generation, 2, "the stale run was not replaced");
    let sent2 = api.take();
    ctx.executor.wait("uid-1").await;
    reconcile(Arc::new(with_status(second, &sent2)), ctx.clone())
        .await
        .unwrap();
    let sent3 = api.take();
    let patch = status_patches(&sent3)[0];
    assert_eq!(patch.body["status"]["observedGeneration"], 2);
    let versions: Vec<&str> = patch.body["status"]["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["2.0.0"]);
    // Nothing of the cancelled first run was ever folded into status.
    for s in sent2.iter().chain(&sent3) {
        assert!(
            !s.body["status"]["charts"]
                .as_array()
                .is_some_and(|c| c.iter().any(|e| e["version"] == "1.0.0")),
            "{s:?}"
        );
        assert_ne!(s.body["status"]["observedGeneration"], 1, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_referenced_secret_and_stay_out_of_status() {
    use base64::Engine as _;
    let f = fixture().await;
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let private = Registry::start_with(crate::testkit::registry::RegistryConfig {
        htpasswd: Some(format!("alice:{hash}")),
        ..Default::default()
    })
    .await
    .unwrap();
    images::image_with_auth(private.addr(), "private/app", "1.0", ("alice", "s3cret"))
        .await
        .unwrap();
    let mut cm = f.mirror(
        1,
        &["1.0.0"],
        &[format!("{}/private/app:1.0", private.addr())],
    );
    cm.spec.upstreams[0].secret_ref = Some(crate::spec::LocalObjectReference {
        name: "pull".into(),
    });

    // A missing Secret: not ready, retried, named but never shown.
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);
    let action = reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(120)));
    let sent = api.take();
    let ready = condition(status_patches(&sent)[0], "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("SecretError"))
    );
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("secret pull: not found"),
        "{ready}"
    );
    assert!(ctx.executor.snapshot("uid-1").is_none());

    // With the Secret, the run authenticates to that registry only.
    let config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        private.addr(),
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull", "namespace": "team"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}});
    let (client, api) = fake_api_with(cm.clone(), vec![secret]);
    let mut ctx = f.context(client);
    Arc::get_mut(&mut ctx)
        .unwrap()
        .settings
        .insecure_registries
        .push(private.addr().to_string());
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let sent = api.take();
    ctx.executor.wait("uid-1").await;
    reconcile(Arc::new(with_status(cm, &sent)), ctx.clone())
        .await
        .unwrap();
    let sent = api.take();
    let patch = status_patches(&sent)[0];
    assert_eq!(
        condition(patch, "Ready").unwrap()["status"],
        "True",
        "{:#}",
        patch.body
    );
    let everything = serde_json::to_string(&sent).unwrap_or_else(|_| format!("{sent:?}"));
    assert!(
        !everything.contains("s3cret")
            && !everything
                .contains(&base64::engine::general_purpose::STANDARD.encode("alice:s3cret")),
        "a secret reached the API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_s_copy_options_reach_the_run() {
    let f = fixture().await;
    let signed = images::signed_image(f.src.addr(), "signed/app", "1.0", 900, true)
        .await
        .unwrap();
    let mut cm = f.mirror(1, &["1.0.0"], &[signed.image.reference(f.src.addr())]);
    cm.spec.signatures = Some(false);
    cm.spec.retries = Some(0);
    cm.spec.per_host_concurrency = Some(1);
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);
    let env = ctx
        .env_for(&cm, secrets::SecretMaterial::default())
        .unwrap();
    let opts = env.registries.options();
    assert_eq!((opts.retries, opts.per_host_copies), (0, Some(1)));

    let sig_tag = images::digest_tag(&signed.image.digest, ".sig");
    let at_target = |reference: String| {
        let dst = f.dst.addr().to_string();
        async move {
            crate::testkit::oci::manifest_digest(&dst, "m/signed/app", &reference)
                .await
                .unwrap()
        }
    };
    let run = |cm: ChartMirror| {
        let ctx = ctx.clone();
        async move {
            reconcile(Arc::new(cm), ctx.clone()).await.unwrap();
            ctx.executor.wait("uid-1").await;
        }
    };
    run(cm.clone()).await;
    assert_eq!(
        at_target("1.0".into()).await,
        Some(signed.image.digest.clone())
    );
    assert_eq!(at_target(sig_tag.clone()).await, None, "signatures: false");

    // Signatures travel by default.
    let cm = with_status(cm, &api.take());
    let mut cm2 = cm.clone();
    cm2.spec.signatures = None;
    cm2.metadata.generation = Some(2);
    run(cm2.clone()).await;
    assert_eq!(at_target(sig_tag).await, Some(signed.sig.clone()));

    // onMovedTag: skip keeps what the target has when the source tag moves.
    let moved = images::image(
        f.src.addr(),
        "signed/app",
        "1.0",
        &[4242],
        512,
        false,
        "amd64",
    )
    .await
    .unwrap();
    assert_ne!(moved.digest, signed.image.digest);
    let mut cm3 = with_status(cm2, &api.take());
    cm3.spec.on_moved_tag = Some(crate::result::MovedTag::Skip);
    cm3.metadata.generation = Some(3);
    run(cm3).await;
    assert_eq!(
        at_target("1.0".into()).await,
        Some(signed.image.digest.clone())
    );
    let snapshot = ctx.executor.snapshot("uid-1").unwrap();
    assert_eq!(snapshot.key.generation, 3);
    let Some((_, Outcome::Report(report))) = snapshot.finished else {
        panic!("the run did not finish with a report: {snapshot:?}")
    };
    let image = &report.charts[0].versions[0].images[0];
    assert_eq!(image.status, crate::result::ImageStatus::Skipped);
    assert_eq!(image.previous_digest, Some(signed.image.digest.clone()));
}

mod follow;

fn configmap_writes(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter()
        .filter(|s| s.path.contains("/configmaps") && s.method != "GET")
        .collect()
}

/// Start a run of `cm`, wait for it, and reconcile its end; what that second reconcile sent.
async fn run_to_end(
    cm: ChartMirror,
    ctx: &Arc<Context>,
    api: &FakeApi,
) -> (ChartMirror, Vec<Sent>) {
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let sent = api.take();
    ctx.executor.wait("uid-1").await;
    let cm = with_status(cm, &sent);
    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let sent = api.take();
    (with_status(cm, &sent), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chart_version_overlay_is_one_owned_configmap_written_only_on_change() {
    let f = fixture().await;
    let nginx = f.set.nginx.reference(f.src.addr());
    let cm = f.mirror(1, &["1.0.0"], std::slice::from_ref(&nginx));
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);

    // First run: created, once, owned and labelled, listed in status.
    let (cm, sent) = run_to_end(cm, &ctx, &api).await;
    let writes = configmap_writes(&sent);
    assert_eq!(writes.len(), 1, "{sent:#?}");
    assert_eq!(writes[0].method, "POST");
    assert!(
        writes[0]
            .path
            .starts_with("/api/v1/namespaces/team/configmaps"),
        "{}",
        writes[0].path
    );
    let body = &writes[0].body;
    assert_eq!(body["metadata"]["name"], "mirror-app-1.0.0-values");
    assert_eq!(body["metadata"]["labels"]["lazyoci.io/chart"], "app");
    assert_eq!(body["metadata"]["labels"]["lazyoci.io/version"], "1.0.0");
    assert_eq!(
        body["metadata"]["labels"]["lazyoci.io/chartmirror"],
        "mirror"
    );
    let owner = &body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("ChartMirror"), Some("uid-1"), Some(true))
    );
    let text = body["data"]["values.yaml"].as_str().unwrap();
    let values: Value = serde_saphyr::from_str(text).unwrap();
    assert_eq!(
        values["image"],
        format!("{}/m/library/nginx:1.25", f.dst.addr()),
        "{text}"
    );
    let patch = status_patches(&sent)[0];
    let overlay = &patch.body["status"]["charts"][0]["overlay"];
    assert_eq!(
        overlay["configMap"], "mirror-app-1.0.0-values",
        "{overlay:#}"
    );
    assert_eq!(overlay["relocated"], 1);
    assert_eq!(overlay["notRelocatable"], 0);
    assert_eq!(
        condition(patch, "Ready").unwrap()["status"],
        "True",
        "{patch:#?}"
    );

    // Same overlay in the next run: read, not written.
    let mut next = f.mirror(2, &["1.0.0"], std::slice::from_ref(&nginx));
    next.status = cm.status.clone();
    let (cm, sent) = run_to_end(next, &ctx, &api).await;
    assert!(configmap_writes(&sent).is_empty(), "{sent:#?}");
    assert!(
        sent.iter()
            .any(|s| s.method == "GET" && s.path.contains("/configmaps/mirror-app-1.0.0-values")),
        "{sent:#?}"
    );

    // The overlay changes (the values now name another image): updated in place, once.
    let mut changed = f.mirror(3, &["1.0.0"], std::slice::from_ref(&nginx));
    changed.spec.upstreams[0].values = Some(json!({"image": f.set.job.reference(f.src.addr())}));
    changed.status = cm.status.clone();
    let (_, sent) = run_to_end(changed, &ctx, &api).await;
    let writes = configmap_writes(&sent);
    assert_eq!(writes.len(), 1, "{sent:#?}");
    assert_eq!(writes[0].method, "PUT");
    assert!(
        writes[0]
            .path
            .contains("/configmaps/mirror-app-1.0.0-values")
    );
    assert!(
        writes[0].body["data"]["values.yaml"]
            .as_str()
            .unwrap()
            .contains("/m/team/job:0.9"),
        "{:#}",
        writes[0].body
    );
}

/// Everything the library logs while the tests in this binary run (lazyoci at trace).
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            captured_logs().lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = LOGS.get_or_init(Mutex::default);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "lazyoci=trace,kube=debug",
        ))
        .with_writer(|| Sink)
        .try_init();
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flux_format_secret_authenticates_to_its_own_repository_only() {
    use crate::testkit::helm_repo::{HelmRepo, RepoAuth, RepoOptions};
    use base64::Engine as _;
    let logs = captured_logs();
    let f = fixture().await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let repo = |name: &str, auth: RepoAuth| {
        let dir = f.dir.path().join(name);
        let chart = charts::write_simple_chart(
            &dir.join("src"),
            name,
            "1.0.0",
            &f.set.nginx.reference(f.src.addr()),
        )
        .unwrap();
        let served = dir.join("served");
        std::fs::create_dir_all(&served).unwrap();
        async move {
            let r = HelmRepo::serve_with(&served, RepoOptions { auth, tls: None })
                .await
                .unwrap();
            r.publish(&[&chart], None).unwrap();
            r
        }
    };
    let private = repo(
        "internal-app",
        RepoAuth::Basic("robot".into(), "flux-pa55".into()),
    )
    .await;
    let public = repo("web", RepoAuth::None).await;
    let mut cm = f.mirror(1, &["1.0.0"], &[f.set.nginx.reference(f.src.addr())]);
    cm.spec.charts_only = true;
    let upstream = |name: &str, url: &str| UpstreamSpec {
        name: name.into(),
        source_type: SourceType::Repo,
        repo: Some(url.into()),
        chart: name.into(),
        versions: vec!["1.0.0".into()],
        ..Default::default()
    };
    cm.spec.upstreams = vec![
        UpstreamSpec {
            secret_ref: Some(crate::spec::LocalObjectReference {
                name: "internal-charts-auth".into(),
            }),
            ..upstream("internal-app", private.url())
        },
        upstream("web", public.url()),
    ];
    let secret = |password: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "internal-charts-auth", "namespace": "team"},
            "data": {"username": b64("robot"), "password": b64(password)}})
    };
    let run = |secret: Value| {
        let cm = cm.clone();
        let f = &f;
        async move {
            let (client, api) = fake_api_with(cm.clone(), vec![secret]);
            let ctx = f.context(client);
            reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
            let mut sent = api.take();
            ctx.executor.wait("uid-1").await;
            reconcile(Arc::new(with_status(cm, &sent)), ctx.clone())
                .await
                .unwrap();
            sent.extend(api.take());
            sent
        }
    };

    // The right password: both charts mirrored; only the private repository saw credentials.
    let sent = run(secret("flux-pa55")).await;
    let patch = status_patches(&sent).into_iter().last().unwrap();
    assert_eq!(
        condition(patch, "Ready").unwrap()["status"],
        "True",
        "{:#}",
        patch.body
    );
    let seen = private.requests_seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.authorization == Some(format!("Basic {}", b64("robot:flux-pa55")))),
        "{seen:?}"
    );
    let seen = public.requests_seen();
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r.authorization.is_none()),
        "{seen:?}"
    );

    // A wrong one: the status names the repository and the Secret, not the password.
    let mut sent2 = run(secret("not-the-pa55word")).await;
    let everything_failed = serde_json::to_string(&sent2).unwrap();
    assert!(
        everything_failed.contains("were refused")
            && everything_failed.contains("Secret internal-charts-auth (username robot)"),
        "{everything_failed}"
    );
    sent2.extend(sent);
    let everything = serde_json::to_string(&sent2).unwrap();
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logged.contains("Secret internal-charts-auth (username robot) were refused"),
        "the failure is logged: {logged}"
    );
    for s in [
        "flux-pa55".to_string(),
        "not-the-pa55word".into(),
        b64("robot:flux-pa55"),
        b64("flux-pa55"),
    ] {
        assert!(!everything.contains(&s), "{s} reached the API");
        assert!(!logged.contains(&s), "{s} was logged");
    }
}

/// Every Secret examples/chartmirror.yaml references is read, and lands where it is used.
#[tokio::test]
async fn every_secret_the_example_chartmirror_references_is_used() {
    use base64::Engine as _;
    crate::install_crypto_provider();
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/chartmirror.yaml");
    let (spec, _) = crate::config::load(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::testkit::certs::ca(dir.path());
    let docker = br#"{"auths":{"registry.internal.example":{"username":"push","password":"p"}}}"#;
    let secret = |name: &str, data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "mirrors"}, "data": data});
    let secrets = vec![
        secret("mirror-push", json!({".dockerconfigjson": b64(docker)})),
        secret(
            "internal-charts-auth",
            json!({"username": b64(b"robot"), "password": b64(b"pw")}),
        ),
        secret("internal-charts-tls", json!({"ca.crt": b64(&ca)})),
    ];
    let cm = ChartMirror::new("platform-charts", spec.clone());
    let (client, _api) = fake_api_with(cm.clone(), secrets);
    let api: Api<Secret> = Api::namespaced(client.clone(), "mirrors");
    let material = secrets::load(&api, &spec).await.unwrap();
    assert!(
        material
            .credentials
            .0
            .contains_key("registry.internal.example")
    );
    let internal = &material.access.repos["https://charts.internal.example/stable"];
    assert_eq!(
        internal.credential,
        Some(crate::access::SourceCredential::Basic {
            username: "robot".into(),
            password: "pw".into()
        })
    );
    assert_eq!(internal.ca_pem.as_deref(), Some(ca.as_slice()));
    assert_eq!(
        internal.origin,
        "Secret internal-charts-auth (username robot)"
    );
    assert!(
        !material
            .access
            .repos
            .contains_key("https://helm.releases.hashicorp.com"),
        "the vault upstream gets no credentials"
    );
    let f = fixture().await;
    f.context(client).env_for(&cm, material).unwrap();
}
