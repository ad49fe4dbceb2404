//! Following upstream releases: every interval re-resolves the selector against a real Helm
//! repository; a new version lands in status with one Event, a dropped one stays mirrored
//! and is marked.

use super::*;
use crate::testkit::helm_repo::HelmRepo;

fn upstream_status(sent: &[Sent]) -> Value {
    let patch = status_patches(sent)
        .into_iter()
        .find(|p| p.body["status"]["lastRunCompletionTime"].is_string())
        .unwrap_or_else(|| panic!("no finished-run patch in {sent:#?}"));
    patch.body["status"]["upstreams"][0].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_reconcile_mirrors_a_new_version_with_one_event_and_marks_a_dropped_one() {
    let f = fixture().await;
    let served = f.dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = HelmRepo::serve(&served).await.unwrap();
    let publish = |v: &str| {
        let c = charts::write_chart_with_images(
            &f.dir.path().join(format!("src/{v}")),
            "app",
            v,
            &[f.set.nginx.reference(f.src.addr())],
        )
        .unwrap();
        repo.publish(&[&c], None).unwrap();
    };
    publish("1.0.0");
    let mut cm = f.mirror(1, &[], &[f.set.nginx.reference(f.src.addr())]);
    cm.spec.interval = Some("1ms".into());
    cm.spec.upstreams[0] = UpstreamSpec {
        name: "app".into(),
        source_type: SourceType::Repo,
        repo: Some(repo.url().to_string()),
        chart: "app".into(),
        semver: Some("^1".into()),
        ..Default::default()
    };
    let (client, api) = fake_api(cm.clone());
    let ctx = f.context(client);

    // One interval: fold the finished run (and, the interval being over, start the next).
    let interval = |cm: ChartMirror| {
        let ctx = ctx.clone();
        let api = &api;
        async move {
            ctx.executor.wait("uid-1").await;
            // Status times have second resolution: let the 1ms interval be over.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
            let sent = api.take();
            (with_status(cm, &sent), sent)
        }
    };

    reconcile(Arc::new(cm.clone()), ctx.clone()).await.unwrap();
    let cm = with_status(cm, &api.take());
    publish("1.1.0");
    let (cm, sent) = interval(cm).await;
    let first = upstream_status(&sent);
    assert_eq!(strings(&first["resolvedVersions"]), ["1.0.0"]);
    assert_eq!(first["semver"], "^1");
    assert!(first["resolvedAt"].is_string(), "{first:#}");
    assert!(
        !events(&sent).iter().any(|(_, r)| r == "NewVersion"),
        "the first resolution announces nothing: {:?}",
        events(&sent)
    );

    // The run started in that reconcile saw 1.1.0: it is mirrored and announced once.
    let (cm, sent) = interval(cm).await;
    let second = upstream_status(&sent);
    assert_eq!(strings(&second["resolvedVersions"]), ["1.0.0", "1.1.0"]);
    let new: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.path.contains("/events") && s.body["reason"] == "NewVersion")
        .collect();
    assert_eq!(new.len(), 1, "{:?}", events(&sent));
    assert_eq!(new[0].body["type"], "Normal");
    assert!(
        new[0].body["note"]
            .as_str()
            .unwrap()
            .contains("app 1.1.0 appeared upstream"),
        "{:?}",
        new[0].body
    );
    assert!(
        crate::testkit::oci::manifest_digest(f.dst.addr(), "m/charts/app", "1.1.0")
            .await
            .unwrap()
            .is_some()
    );

    // Upstream drops 1.0.0: it stays in the target and is marked, not deleted.
    ctx.executor.wait("uid-1").await;
    std::fs::remove_file(served.join("app-1.0.0.tgz")).unwrap();
    repo.publish(&[], None).unwrap();
    let (cm, _) = interval(cm).await;
    let (_, sent) = interval(cm).await;
    let third = upstream_status(&sent);
    assert_eq!(strings(&third["resolvedVersions"]), ["1.1.0"]);
    assert_eq!(strings(&third["noLongerSelected"]), ["1.0.0"]);
    assert!(!events(&sent).iter().any(|(_, r)| r == "NewVersion"));
    assert!(
        crate::testkit::oci::manifest_digest(f.dst.addr(), "m/charts/app", "1.0.0")
            .await
            .unwrap()
            .is_some(),
        "nothing is pruned"
    );
    ctx.executor.cancel("uid-1");
}
