//! Failures: each is reported where it happened, the rest of the run goes on, and bad
//! configs stop everything before any registry write.

use crate::common::*;

#[tokio::test]
async fn a_missing_source_image_fails_alone_and_the_rest_is_copied() {
    let w = world().await;
    let dir = w.path("charts");
    let chart = charts::write_simple_chart(
        &dir,
        "partial",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/extra.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: extra}}\nspec:\n  containers:\n  - image: {0}/gone/away:404\n  - image: {0}/team/job:0.9\n", w.src_host()),
    )
    .unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  partial: {{type: local, path: charts/partial, chart: partial, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    assert_eq!(
        (r["imagesCopied"].as_u64(), r["imagesFailed"].as_u64()),
        (Some(2), Some(1)),
        "{r:#}"
    );
    let gone = r["charts"][0]["versions"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"].as_str().unwrap().contains("gone/away"))
        .unwrap()
        .clone();
    assert_eq!(gone["status"], "failed");
    assert!(
        gone["error"]
            .as_str()
            .unwrap()
            .contains("not found at the source"),
        "{gone:#}"
    );
    assert!(w.dst_digest("library/nginx", "1.25").await.is_some());
    assert!(w.dst_digest("team/job", "0.9").await.is_some());
    assert!(w.dst_digest("partial", "1.0.0").await.is_some());
    // Text output names the failure.
    let text = w.run(&["mirror", "--all"]);
    assert!(
        text.stdout
            .contains(&format!("    {}/gone/away:404 → FAILED (", w.src_host())),
        "{text:?}"
    );
    assert!(
        text.stdout
            .contains("  Images:  0 copied, 2 skipped, 1 failed"),
        "{text:?}"
    );
}

#[tokio::test]
async fn a_chart_that_does_not_render_is_a_failure_with_helms_error() {
    let w = world().await;
    charts::write_broken_chart(&w.path("charts"), "broken", "0.1.0").unwrap();
    charts::write_simple_chart(
        &w.path("charts"),
        "fine",
        "0.1.0",
        &w.set.job.reference(w.src_host()),
    )
    .unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  broken: {{type: local, path: charts/broken, chart: broken, versions: [\"0.1.0\"]}}\n  fine: {{type: local, path: charts/fine, chart: fine, versions: [\"0.1.0\"]}}\n", w.dst.addr()));
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.json();
    let v = version_of(&r, "broken", "0.1.0");
    assert!(
        v["imagesError"]
            .as_str()
            .unwrap()
            .contains("set .Values.needed to render this chart"),
        "{v:#}"
    );
    assert_eq!(v["chartStatus"], "pushed");
    assert_eq!(r["discoveryFailed"], 1);
    assert_eq!(images_of(&r, "fine", "0.1.0")[0].2, "copied");
    let text = w.run(&["mirror", "--all"]);
    assert!(
        text.stdout
            .contains("  Images: FAILED (helm template failed:"),
        "{text:?}"
    );
    assert!(!text.stdout.contains("none found"), "{text:?}");
}

#[tokio::test]
async fn two_sources_for_one_target_are_refused_before_copying() {
    let w = world().await;
    let other = lazyoci::testkit::registry::Registry::start().await.unwrap();
    // Same repository path and tag on another host, with other content.
    let imposter = images::image(other.addr(), "team/job", "0.9", &[777], 512, false, "amd64")
        .await
        .unwrap();
    assert_ne!(imposter.digest, w.set.job.digest);
    let chart = charts::write_simple_chart(
        &w.path("charts"),
        "clash",
        "1.0.0",
        &w.set.job.reference(w.src_host()),
    )
    .unwrap();
    std::fs::write(chart.join("templates/b.yaml"), format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: b}}\nspec:\n  containers:\n  - image: {}/team/job:0.9\n  - image: {}\n", other.addr(), w.set.nginx.reference(w.src_host()))).unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  clash: {{type: local, path: charts/clash, chart: clash, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    let insecure = format!("{},{}", w.src_host(), other.addr());
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let imgs = &version_of(&run.json(), "clash", "1.0.0")["images"];
    let failed: Vec<&serde_json::Value> = imgs
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{imgs:#}");
    for f in &failed {
        let e = f["error"].as_str().unwrap();
        assert!(
            e.contains(&format!("{}/team/job:0.9", w.src_host()))
                && e.contains(&format!("{}/team/job:0.9", other.addr())),
            "{e}"
        );
    }
    assert!(
        w.dst_digest("team/job", "0.9").await.is_none(),
        "a colliding image was copied"
    );
    assert!(
        w.dst_digest("library/nginx", "1.25").await.is_some(),
        "the unrelated image was not copied"
    );
}

#[tokio::test]
async fn bad_configs_exit_2_name_the_key_and_write_nothing() {
    let w = world().await;
    w.demo_chart();
    let t = w.dst.addr();
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  v: {{type: repo, chart: vault, versions: [\"1\"]}}\n"
            ),
            "upstreams.v.repo: required for type=repo",
        ),
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  k: {{type: oci, registry: \"{t}/charts\", chart: k, versions: [\"1\"]}}\n"
            ),
            "upstreams.k.registry",
        ),
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  d: {{type: local, path: ./charts/demo, chart: demo, versions: []}}\n"
            ),
            "upstreams.d.versions: must list at least one version",
        ),
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  d: {{type: helm, chart: demo, versions: [\"1\"]}}\n"
            ),
            "upstreams.d.type: expected one of repo, oci, local",
        ),
        (
            format!(
                "target: {{url: {t}, insecure: maybe}}\nupstreams:\n  d: {{type: local, path: ./charts/demo, chart: demo, versions: [\"1\"]}}\n"
            ),
            "target.insecure: expected true or false",
        ),
        (
            format!(
                "target: {{url: \"{t}/ns:latest\"}}\nupstreams:\n  d: {{type: local, path: ./charts/demo, chart: demo, versions: [\"1\"]}}\n"
            ),
            "carries a tag or digest",
        ),
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  d: {{type: local, path: ./charts/demo, chart: demo, versions: [\"1\"]}}\n  d: {{type: local, path: ./charts/demo, chart: demo, versions: [\"2\"]}}\n"
            ),
            "duplicate key \"d\"",
        ),
        (
            format!("target: {{url: {t}}}\nupstream:\n  d: {{}}\n"),
            "upstream: unknown key; did you mean `upstreams`?",
        ),
        ("".to_string(), "the file is empty"),
        (
            format!(
                "target: {{url: {t}}}\nupstreams:\n  d: {{type: local, path: ./charts/nowhere, chart: demo, versions: [\"1\"]}}\n"
            ),
            "is not a chart directory",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let name = format!("bad{i}.yaml");
        w.config(&name, text);
        let run = w.run(&["mirror", "--all", "-c", &name]);
        assert_eq!(run.code, 2, "case {i}: {run:?}");
        assert!(
            run.stderr.contains(&format!("invalid config {name}")) || needle.contains("empty"),
            "case {i}: {run:?}"
        );
        assert!(
            run.stderr.contains(needle),
            "case {i}: expected {needle:?} in {run:?}"
        );
        assert!(run.stdout.is_empty(), "case {i}: {run:?}");
    }
    // Several problems are reported together.
    w.config("many.yaml", &format!("target: {{url: {t}}}\nupstreams:\n  a: {{type: repo, chart: a, versions: [\"1\"]}}\n  b: {{type: oci, chart: b, versions: []}}\n"));
    let run = w.run(&["mirror", "--all", "-c", "many.yaml"]);
    assert_eq!(run.code, 2);
    for needle in [
        "upstreams.a.repo",
        "upstreams.b.registry",
        "upstreams.b.versions",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {run:?}");
    }
    // Non-UTF-8.
    std::fs::write(w.path("latin1.yaml"), b"target:\n  url: caf\xe9\n").unwrap();
    let run = w.run(&["mirror", "--all", "-c", "latin1.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not UTF-8"), "{run:?}");
    assert!(
        w.dst_writes().is_empty(),
        "a bad config led to a registry write: {:?}",
        w.dst_writes()
    );
}

#[tokio::test]
async fn a_chartmirror_manifest_works_as_config() {
    let w = world().await;
    w.demo_chart();
    w.config(
        "cm.yaml",
        &format!("apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {{name: demo}}\nspec:\n  target: {{url: \"oci://{}/cm\", insecure: true, chartsPrefix: charts}}\n  upstreams:\n    - name: demo\n      type: local\n      path: ./charts/demo\n      chart: demo\n      versions: [\"1.0.0\"]\n", w.dst.addr()),
    );
    let run = w.run(&["mirror", "-c", "cm.yaml", "--all", "--charts-only"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("cm/charts/demo", "1.0.0").await.is_some());
}
