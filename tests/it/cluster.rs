//! End-to-end against a real Kubernetes cluster: ignored by default, so the test totals say
//! "ignored" rather than "ok" where there is no cluster; scripts/test.sh runs it (with
//! `--ignored`) when `KUBECONFIG` is set.
//! The operator runs in-process against the cluster, so the loopback test registries are
//! reachable from the pipeline.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use lazyoci::spec::ChartMirror;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster: scripts/test.sh runs it when KUBECONFIG is set"]
async fn chartmirror_becomes_ready_on_a_real_cluster() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to run the cluster end-to-end test"
    );
    let w = world().await;
    let chart = w.demo_chart();
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG is set but no cluster answers");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "chartmirrors.lazyoci.io",
        &PatchParams::apply("lazyoci-e2e").force(),
        &Patch::Apply(ChartMirror::crd()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ns_name = format!("lazyoci-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns_name}})).unwrap(),
        )
        .await
        .unwrap();

    let cm: ChartMirror = serde_json::from_value(serde_json::json!({
        "apiVersion": "lazyoci.io/v1alpha1", "kind": "ChartMirror",
        "metadata": {"name": "demo", "namespace": ns_name},
        "spec": {"target": {"url": format!("{}/e2e", w.dst.addr()), "insecure": true},
                 "upstreams": [{"name": "demo", "type": "local", "path": chart.to_string_lossy(), "chart": "demo", "versions": ["1.0.0"]}]}
    }))
    .unwrap();
    let api: Api<ChartMirror> = Api::namespaced(client.clone(), &ns_name);
    api.create(&PostParams::default(), &cm).await.unwrap();

    let opts = lazyoci::controller::OperatorOptions {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: false,
        lease_name: "lazyoci-e2e".into(),
        lease_namespace: Some(ns_name.clone()),
        watch_namespace: Some(ns_name.clone()),
        concurrency: 2,
        settings: lazyoci::controller::Settings {
            artifact_dir: w.path("artifacts"),
            helm: lazyoci::testkit::helm_bin(),
            insecure_registries: vec![w.src_host().to_string()],
            progress_every: Duration::from_secs(2),
        },
    };
    let operator = tokio::spawn(lazyoci::controller::run(opts));
    let mut ready = None;
    for _ in 0..90 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let obj = api.get("demo").await.unwrap();
        let status = obj.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "Unknown")
        {
            ready = Some((c.status.clone(), status));
            break;
        }
    }
    operator.abort();
    let _ = namespaces.delete(&ns_name, &DeleteParams::default()).await;
    let (ready, status) =
        ready.expect("the ChartMirror never became Ready or failed within 3 minutes");
    assert_eq!(ready, "True", "{status:#?}");
    assert_eq!(status.summary.unwrap().images.copied, 10);
    assert!(w.dst_digest("e2e/library/nginx", "1.25").await.is_some());
}
