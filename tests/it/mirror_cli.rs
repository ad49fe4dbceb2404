//! The CLI contract, row by row, on real registries.

use crate::common::*;

fn local_config(w: &World, target_path: &str, extra: &str) -> std::path::PathBuf {
    w.demo_chart();
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/{target_path}\n  insecure: true\n  charts-prefix: charts\nupstreams:\n  demo:\n    type: local\n    path: ./charts/demo\n    chart: demo\n    versions: [\"1.0.0\"]\n{extra}",
            w.dst.addr()
        ),
    )
}

#[tokio::test]
async fn mirrors_a_chart_and_every_image_it_references() {
    let w = world().await;
    local_config(&w, "mirror", "");
    let run = w.run(&["mirror", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");

    // The contract's text shape.
    let host = w.src_host();
    for line in [
        format!("Mirror: demo (demo) → {}/mirror/charts", w.dst.addr()),
        "Versions: 1.0.0".to_string(),
        "── demo:1.0.0 ──".to_string(),
        "  Chart: pushing... OK".to_string(),
        "  Images: 10 found".to_string(),
        format!("    {host}/library/nginx:1.25 → copying..."),
        format!("    {host}/library/nginx:1.25 → OK"),
        "Mirror Summary".to_string(),
        "  demo (demo):".to_string(),
        "    1.0.0: chart=pushed  images=10 copied, 0 skipped, 0 failed".to_string(),
        "  Charts:  1 pushed, 0 skipped, 0 failed".to_string(),
        "  Images:  10 copied, 0 skipped, 0 failed".to_string(),
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing line {line:?} in:\n{}",
            run.stdout
        );
    }
    // helm-test pods are rendered too (an air-gapped `helm test` needs their images).
    let why = w.run(&["images", "--why", "library/nginx"]);
    assert!(
        why.stdout.contains(
            "demo/templates/tests/test-connection.yaml: Pod/demo-test spec.containers[0].image"
        ),
        "{why:?}"
    );

    // Every image landed under the target path with the source digest (byte-exact manifests).
    for img in w.set.all() {
        let src = w.src_digest(&img.repo, &img.tag).await.unwrap();
        let dst = w
            .dst_digest(
                &format!("mirror/{}", img.repo),
                if img.repo == "team/pinned" {
                    &img.digest
                } else {
                    &img.tag
                },
            )
            .await;
        assert_eq!(dst.as_deref(), Some(src.as_str()), "{}", img.repo);
    }
    // Every platform of the multi-arch index, and its blobs.
    for blob in &w.set.multi.blobs {
        assert!(
            oci::blob_exists(w.dst.addr(), "mirror/bitnami/multi", blob)
                .await
                .unwrap(),
            "blob {blob} of the index missing"
        );
    }
    // Docker schema 2 stays schema 2.
    let (ct, _) = oci::get_manifest(w.dst.addr(), "mirror/library/redis", "7.2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ct, images::DOCKER_MANIFEST);
    // A digest-pinned image has no tag to copy, only its digest.
    assert!(
        oci::list_tags(w.dst.addr(), "mirror/team/pinned")
            .await
            .unwrap()
            .is_empty()
    );

    // The chart is a real Helm OCI artifact: helm itself can read it.
    let home = tempfile::tempdir().unwrap();
    let reference = format!("oci://{}/mirror/charts/demo", w.dst.addr());
    let shown = helm(
        home.path(),
        &[
            "show",
            "chart",
            &reference,
            "--version",
            "1.0.0",
            "--plain-http",
        ],
    )
    .unwrap();
    assert!(
        shown.contains("name: demo") && shown.contains("version: 1.0.0"),
        "{shown}"
    );
    helm(
        home.path(),
        &[
            "pull",
            &reference,
            "--version",
            "1.0.0",
            "--plain-http",
            "-d",
            &home.path().to_string_lossy(),
        ],
    )
    .unwrap();
    let pulled = std::fs::read(home.path().join("demo-1.0.0.tgz")).unwrap();
    let (_, manifest) = oci::get_manifest(w.dst.addr(), "mirror/charts/demo", "1.0.0")
        .await
        .unwrap()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    assert_eq!(m["layers"][0]["digest"], oci::digest(&pulled));
    assert_eq!(m["annotations"]["org.opencontainers.image.title"], "demo");
    assert_eq!(
        m["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.description"],
        "lazyoci demo chart"
    );
}

#[tokio::test]
async fn a_second_run_skips_everything_with_reads_only() {
    let w = world().await;
    local_config(&w, "mirror", "");
    assert_eq!(w.run(&["mirror", "--all"]).code, 0);
    let writes_before = w.dst_writes().len();
    let blob_gets_before = w.src.requests("GET", "/blobs/").len();
    let probes_before = w.src.requests("GET", "/referrers/").len();

    let run = w.run(&["mirror", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("  Chart: already exists, skipping"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("  Charts:  0 pushed, 1 skipped, 0 failed"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("  Images:  0 copied, 10 skipped, 0 failed"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains(&format!("    {}/library/nginx:1.25 → exists", w.src_host())),
        "{run:?}"
    );
    assert_eq!(
        w.dst_writes().len(),
        writes_before,
        "the no-op run wrote to the target: {:?}",
        &w.dst_writes()[writes_before..]
    );
    assert_eq!(
        w.src.requests("GET", "/blobs/").len(),
        blob_gets_before,
        "the no-op run downloaded blobs"
    );
    // Signatures are looked for with HEADs; the referrers API is asked once per source
    // host, even with 4 images in flight.
    assert_eq!(
        w.src.requests("GET", "/referrers/").len(),
        probes_before + 1,
        "referrers API probes"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_shows_the_plan() {
    let w = world().await;
    local_config(&w, "mirror", "");
    let run = w.run(&["mirror", "--all", "--dry-run", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let r = run.json();
    assert_eq!(r["dryRun"], true);
    let v = version_of(&r, "demo", "1.0.0");
    assert_eq!(v["chartStatus"], "would-push");
    let imgs = images_of(&r, "demo", "1.0.0");
    assert_eq!(imgs.len(), 10);
    assert!(imgs.iter().all(|(_, _, s)| s == "would-copy"), "{imgs:?}");
    assert!(
        w.dst_writes().is_empty(),
        "dry run wrote: {:?}",
        w.dst_writes()
    );
    assert!(oci::catalog(w.dst.addr()).await.unwrap().is_empty());

    // Text dry run names what would happen.
    let text = w.run(&["mirror", "--all", "--dry-run"]);
    assert!(
        text.stdout.contains(&format!(
            "  Chart: would push → oci://{}/mirror/charts/demo:1.0.0",
            w.dst.addr()
        )),
        "{text:?}"
    );
    assert!(
        text.stdout.contains(&format!(
            "    {}/team/job:0.9 → would copy to {}/mirror/team/job:0.9",
            w.src_host(),
            w.dst.addr()
        )),
        "{text:?}"
    );
    assert!(
        text.stdout
            .contains("Mirror Summary (dry run: nothing was written)"),
        "{text:?}"
    );
    assert!(w.dst_writes().is_empty());
}

#[tokio::test]
async fn json_and_yaml_documents_follow_the_contract() {
    let w = world().await;
    local_config(&w, "ns", "");
    let run = w.run(&["mirror", "--config", "mirror.yaml", "--all", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let r = run.json();
    assert_eq!(r["chartsPushed"], 1);
    assert_eq!(r["chartsSkipped"], 0);
    assert_eq!(r["chartsFailed"], 0);
    assert_eq!(r["imagesCopied"], 10);
    assert_eq!(r["imagesSkipped"], 0);
    assert_eq!(r["imagesFailed"], 0);
    let c = &r["charts"][0];
    assert_eq!(
        (c["key"].as_str(), c["chart"].as_str()),
        (Some("demo"), Some("demo"))
    );
    let v = &c["versions"][0];
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["chartStatus"], "pushed");
    assert_eq!(v["imagesCopied"], 10);
    let nginx = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == format!("{}/library/nginx:1.25", w.src_host()))
        .unwrap();
    assert_eq!(
        nginx["target"],
        format!("{}/ns/library/nginx:1.25", w.dst.addr())
    );
    assert_eq!(nginx["status"], "copied");
    assert_eq!(nginx["digest"], w.set.nginx.digest);
    // stdout holds only the document; progress went to stderr.
    assert!(run.stderr.contains("── demo:1.0.0 ──"), "{run:?}");

    let y = w.run(&["mirror", "--all", "-o", "yaml"]);
    assert_eq!(y.code, 0, "{y:?}");
    let doc: serde_json::Value = serde_saphyr::from_str(&y.stdout).unwrap();
    assert_eq!(doc["imagesSkipped"], 10);
    assert_eq!(doc["charts"][0]["versions"][0]["chartStatus"], "skipped");
}

#[tokio::test]
async fn charts_only_and_images_only_do_half_the_job() {
    let w = world().await;
    local_config(&w, "m", "");
    let run = w.run(&["mirror", "--all", "--charts-only", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_digest("m/charts/demo", "1.0.0").await.is_some());
    assert_eq!(
        oci::catalog(w.dst.addr()).await.unwrap(),
        vec!["m/charts/demo"]
    );
    assert!(images_of(&run.json(), "demo", "1.0.0").is_empty());

    let w = world().await;
    local_config(&w, "m", "");
    let run = w.run(&["mirror", "--all", "--images-only", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        w.dst_digest("m/charts/demo", "1.0.0").await.is_none(),
        "images-only pushed the chart"
    );
    assert_eq!(
        version_of(&run.json(), "demo", "1.0.0")["chartStatus"],
        "not-requested"
    );
    assert_eq!(
        w.dst_digest("m/library/nginx", "1.25").await.as_deref(),
        Some(w.set.nginx.digest.as_str())
    );
}

#[tokio::test]
async fn chart_and_version_flags_pick_what_runs() {
    let w = world().await;
    let dir = w.path("charts");
    charts::write_simple_chart(&dir, "one", "1.0.0", &w.set.nginx.reference(w.src_host())).unwrap();
    charts::write_simple_chart(&dir, "two", "1.0.0", &w.set.job.reference(w.src_host())).unwrap();
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}, insecure: true}}\nupstreams:\n  one: {{type: local, path: charts/one, chart: one, versions: [\"1.0.0\"]}}\n  two: {{type: local, path: charts/two, chart: two, versions: [\"1.0.0\"]}}\n",
            w.dst.addr()
        ),
    );
    let run = w.run(&[
        "mirror",
        "--chart",
        "two",
        "--version",
        "3.0.0",
        "--version",
        "3.1.0",
        "-o",
        "json",
        "--concurrency",
        "1",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let r = run.json();
    let versions: Vec<&str> = r["charts"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        (r["charts"].as_array().unwrap().len(), versions),
        (1, vec!["3.0.0", "3.1.0"])
    );
    assert_eq!(
        oci::list_tags(w.dst.addr(), "two").await.unwrap(),
        vec!["3.0.0", "3.1.0"]
    );
    assert!(
        oci::list_tags(w.dst.addr(), "one")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        r["charts"][0]["versions"][0]["note"]
            .as_str()
            .unwrap()
            .contains("stamped"),
        "{r:#}"
    );

    for (args, needle) in [
        (
            vec!["mirror", "--chart", "three"],
            "no upstream named \"three\"",
        ),
        (vec!["mirror"], "--chart"),
        (
            vec!["mirror", "--all", "--chart", "one"],
            "cannot be used with",
        ),
        (
            vec!["mirror", "--all", "--version", "1.0.0"],
            "use it with --chart",
        ),
        (
            vec!["mirror", "--all", "--charts-only", "--images-only"],
            "cannot be used with",
        ),
        (vec!["mirror", "--all", "--theme", "neon"], "unknown theme"),
        (
            vec!["mirror", "--all", "-c", "nope.yaml"],
            "cannot read config file nope.yaml",
        ),
    ] {
        let run = w.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(needle),
            "{args:?}: expected {needle:?} in {run:?}"
        );
    }
}

#[tokio::test]
async fn help_and_version() {
    let w = world().await;
    let help = w.run(&["mirror", "--help"]);
    for flag in [
        "--config",
        "--chart",
        "--all",
        "--version",
        "--dry-run",
        "--charts-only",
        "--images-only",
        "--concurrency",
        "--retries",
        "--no-signatures",
        "--rate-limit-max-pause",
        "--output",
        "--artifact-dir",
        "--theme",
    ] {
        assert!(
            help.stdout.contains(flag),
            "mirror --help lacks {flag}:\n{}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("[default: mirror.yaml]") && help.stdout.contains("[default: 4]"));
    let v = w.run(&["--version"]);
    assert_eq!(
        v.stdout.trim(),
        format!("lazyoci {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(w.run(&["--help"]).code, 0);
    // No colour when stdout is not a terminal, whatever the theme and without NO_COLOR.
    local_config(&w, "m", "");
    let run = w.run_env(
        &["mirror", "--all", "--dry-run", "--theme", "default"],
        &[("NO_COLOR", "")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !run.stdout.contains('\x1b'),
        "escape codes in piped output: {run:?}"
    );
}
