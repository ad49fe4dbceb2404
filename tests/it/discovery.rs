//! Image discovery in a real mirror run: every source contributes, with provenance in the
//! JSON; rendering inputs (values, valuesFiles, apiVersions) reach helm; images.extra and
//! images.exclude change what is copied; `lazyoci images` and `--why` explain it. Real
//! registries, real helm.

use crate::common::{World, sources_of, world};

/// A chart that needs every discovery source:
/// - `required` token: renders only with `values`;
/// - a job gated on an API version: rendered only with `api-versions`;
/// - the worker: rendered only with the in-chart `values-prod.yaml`;
/// - an exporter switched off by default: only the values scan finds it;
/// - an operand the operator starts at runtime: only the annotation declares it;
/// - nginx: rendered, then excluded; redis: an extra;
/// - a stale annotation entry for the worker (0.9, while the chart runs 1.0).
fn write_chart(w: &World) -> std::path::PathBuf {
    let src = w.src_host();
    let dir = w.path("charts/full");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let files = [
        (
            "Chart.yaml",
            format!(
                "apiVersion: v2\nname: full\nversion: 1.0.0\nappVersion: \"1.0\"\nkubeVersion: \">=1.30.0-0\"\nannotations:\n  artifacthub.io/images: |\n    - name: operand\n      image: {src}/team/operand:3.1\n    - name: worker\n      image: {src}/team/worker:0.9\n"
            ),
        ),
        (
            "values.yaml",
            format!(
                "registry: {src}\ntoken: \"\"\nguess:\n  image: {{repository: {src}/team/nope}}\nworker:\n  enabled: false\n  image: {{repository: team/worker, tag: \"1.0\"}}\nmetrics:\n  enabled: false\n  image:\n    registry: {src}\n    repository: team/api\n    tag: \"1.0\"\n"
            ),
        ),
        ("values-prod.yaml", "worker:\n  enabled: true\n".to_string()),
        (
            "templates/deploy.yaml",
            "{{- $token := required \"token is required\" .Values.token }}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.registry }}/library/nginx:1.25\n{{- if .Values.worker.enabled }}\n        - name: worker\n          image: {{ .Values.registry }}/{{ .Values.worker.image.repository }}:{{ .Chart.AppVersion }}\n{{- end }}\n{{- if .Values.metrics.enabled }}\n        - name: metrics\n          image: {{ .Values.metrics.image.registry }}/{{ .Values.metrics.image.repository }}:{{ .Values.metrics.image.tag }}\n{{- end }}\n".to_string(),
        ),
        (
            "templates/job.yaml",
            "{{- if .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" }}\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: rules\nspec:\n  template:\n    spec:\n      containers:\n        - name: rules\n          image: {{ .Values.registry }}/team/job:0.9\n{{- end }}\n".to_string(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn config(w: &World, chart: &std::path::Path, extra: &str) -> std::path::PathBuf {
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/mirror\n  insecure: true\nimages:\n  extra: [\"{}/library/redis:7.2\"]\nupstreams:\n  full:\n    type: local\n    path: {}\n    chart: full\n    versions: [\"1.0.0\"]\n    values: {{token: s3cret-token}}\n    values-files: [values-prod.yaml]\n    api-versions: [monitoring.coreos.com/v1]\n    images:\n      exclude: [\"/library/nginx:\"]\n{extra}",
            w.dst.addr(),
            w.src_host(),
            chart.display()
        ),
    )
}

/// The source references of the first chart version in a JSON report.
fn provenance(image: &serde_json::Value) -> Vec<String> {
    let mut from: Vec<String> = image["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["from"].as_str().unwrap().to_string())
        .collect();
    from.dedup();
    from
}

#[tokio::test]
async fn every_source_counts_and_the_config_shapes_what_is_copied() {
    let w = world().await;
    let chart = write_chart(&w);
    config(&w, &chart, "");
    let run = w.run(&["-o", "json", "mirror", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let version = &report["charts"][0]["versions"][0];
    let src = w.src_host();
    let images: Vec<(String, Vec<String>)> = version["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["source"].as_str().unwrap().to_string(), provenance(i)))
        .collect();
    let want = |repo: &str, from: &[&str]| {
        (
            format!("{src}/{repo}"),
            from.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        images,
        [
            want("library/redis:7.2", &["extra"]),
            want("team/api:1.0", &["values"]),
            want("team/job:0.9", &["rendered"]),
            want("team/operand:3.1", &["annotations"]),
            want("team/worker:1.0", &["rendered", "values"]),
        ],
        "{report:#}"
    );
    assert_eq!(
        version["excludedImages"],
        serde_json::json!([format!("{src}/library/nginx:1.25")])
    );
    // Each landed with its source digest; the excluded one did not.
    for (repo, tag, seeded) in [
        ("library/redis", "7.2", &w.set.redis),
        ("team/api", "1.0", &w.set.api),
        ("team/job", "0.9", &w.set.job),
        ("team/operand", "3.1", &w.set.operand),
        ("team/worker", "1.0", &w.set.worker),
    ] {
        assert_eq!(
            w.dst_digest(&format!("mirror/{repo}"), tag)
                .await
                .as_deref(),
            Some(seeded.digest.as_str()),
            "{repo}:{tag}"
        );
    }
    assert_eq!(w.dst_digest("mirror/library/nginx", "1.25").await, None);
    assert_eq!(w.dst_digest("mirror/team/worker", "0.9").await, None);
    let warnings = version["warnings"].to_string();
    // A values map without a tag whose appVersion guess the source lacks: dropped, said so.
    assert!(
        warnings.contains(&format!("{src}/team/nope:1.0 (values of full: guess.image (no tag: appVersion assumed)) is not at the source")),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!("sources disagree on {src}/team/worker"))
            && warnings.contains("declares 0.9")
            && warnings.contains("mirroring 1.0"),
        "{warnings}"
    );
    // `mirror --sources` overrides the config's selection, like `images --sources`.
    let rendered = w.run(&[
        "-o",
        "json",
        "mirror",
        "--all",
        "--dry-run",
        "--sources",
        "rendered",
    ]);
    assert_eq!(rendered.code, 0, "{rendered:?}");
    assert_eq!(
        sources_of(&rendered.json()),
        [
            format!("{src}/team/job:0.9"),
            format!("{src}/team/worker:1.0")
        ]
    );
    // Text output shows the same remarks.
    let text = w.run(&["mirror", "--all", "--dry-run"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains(&format!(
            "  Excluded: {src}/library/nginx:1.25 (images.exclude)\n"
        )),
        "{text:?}"
    );
    assert!(
        text.stdout
            .contains(&format!("  Warning: sources disagree on {src}/team/worker")),
        "{text:?}"
    );
    // The rendered worker was found by the template it came from.
    let worker = version["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"].as_str().unwrap().ends_with("team/worker:1.0"))
        .unwrap();
    assert!(
        worker["provenance"][0]["at"].as_str().unwrap().starts_with(
            "full/templates/deploy.yaml: Deployment/web spec.template.spec.containers[1].image"
        ),
        "{worker:#}"
    );
}

#[tokio::test]
async fn without_its_values_the_chart_fails_to_render_and_the_other_sources_still_count() {
    let w = world().await;
    let chart = write_chart(&w);
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/mirror\n  insecure: true\nupstreams:\n  full:\n    type: local\n    path: {}\n    chart: full\n    versions: [\"1.0.0\"]\n",
            w.dst.addr(),
            chart.display()
        ),
    );
    let run = w.run(&["-o", "json", "mirror", "--all", "--images-only"]);
    assert_eq!(
        run.code, 1,
        "a chart that does not render is a failure: {run:?}"
    );
    let version = &run.json()["charts"][0]["versions"][0];
    assert!(
        version["imagesError"]
            .as_str()
            .unwrap()
            .contains("token is required"),
        "{version:#}"
    );
    // The values scan and the annotation still found (and copied) their images.
    let sources: Vec<&str> = version["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.iter().any(|s| s.ends_with("team/operand:3.1")),
        "{sources:?}"
    );
    assert!(
        sources.iter().any(|s| s.ends_with("team/api:1.0")),
        "{sources:?}"
    );
    assert_eq!(
        w.dst_digest("mirror/team/operand", "3.1").await.as_deref(),
        Some(w.set.operand.digest.as_str())
    );
}

#[tokio::test]
async fn images_lists_explains_and_selects_sources() {
    let w = world().await;
    let chart = write_chart(&w);
    config(&w, &chart, "");
    let src = w.src_host();

    let list = w.run(&["images", "--chart", "full"]);
    assert_eq!(list.code, 0, "{list:?}");
    // `images` contacts no image registry: the appVersion guess is listed (mirror drops it).
    assert!(
        list.stdout.contains("── full:1.0.0 (6 images) ──"),
        "{list:?}"
    );
    assert!(
        list.stdout.contains(&format!("{src}/team/nope:1.0")),
        "{list:?}"
    );
    assert!(
        list.stdout
            .contains(&format!("excluded: {src}/library/nginx:1.25 (rendered)")),
        "{list:?}"
    );
    assert!(w.dst_writes().is_empty(), "images writes nothing");

    let why = w.run(&["images", "--why", "team/operand"]);
    assert_eq!(why.code, 0, "{why:?}");
    assert_eq!(
        why.stdout.trim(),
        format!(
            "{src}/team/operand:3.1 in full:1.0.0 → {}/mirror/team/operand:3.1\n  annotations Chart.yaml of full: annotation artifacthub.io/images[0]",
            w.dst.addr()
        ),
        "{why:?}"
    );
    let why_values = w.run(&["images", "--why", &format!("{src}/team/api:1.0")]);
    assert!(
        why_values
            .stdout
            .contains("values      values of full: metrics.image"),
        "{why_values:?}"
    );
    let missing = w.run(&["images", "--why", "no/such"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("error: no/such is not among the images found for full:1.0.0"),
        "{missing:?}"
    );
    assert!(missing.stdout.is_empty(), "{missing:?}");

    // Rendered only: the annotation, values and extra images drop out.
    let rendered = w.run(&["-o", "json", "images", "--sources", "rendered"]);
    assert_eq!(rendered.code, 0, "{rendered:?}");
    let sources = sources_of(&rendered.json());
    assert_eq!(
        sources,
        [
            format!("{src}/team/job:0.9"),
            format!("{src}/team/worker:1.0")
        ]
    );
    let bad = w.run(&["images", "--sources", "rendred"]);
    assert_eq!(bad.code, 2, "{bad:?}");

    // Without rendering, helm is not needed at all.
    let no_helm = w.run_env(
        &["-o", "json", "images", "--sources", "annotations,values"],
        &[("LAZYOCI_HELM", "/nonexistent/helm")],
    );
    assert_eq!(no_helm.code, 0, "{no_helm:?}");
    assert!(
        sources_of(&no_helm.json()).contains(&format!("{src}/team/operand:3.1")),
        "{no_helm:?}"
    );
    let needs_helm = w.run_env(&["images"], &[("LAZYOCI_HELM", "/nonexistent/helm")]);
    assert_eq!(needs_helm.code, 2, "{needs_helm:?}");
    assert!(
        needs_helm.stderr.contains("cannot run helm"),
        "{needs_helm:?}"
    );
}

#[tokio::test]
async fn a_chartmirror_manifest_carries_the_same_discovery_settings() {
    let w = world().await;
    let chart = write_chart(&w);
    let src = w.src_host();
    w.config(
        "cm.yaml",
        &format!(
            "apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {{name: m}}\nspec:\n  target: {{url: \"{}/mirror\", insecure: true}}\n  images:\n    sources: [rendered, annotations]\n  upstreams:\n    - name: full\n      type: local\n      path: {}\n      chart: full\n      versions: [\"1.0.0\"]\n      values: {{token: x}}\n      valuesFiles: [values-prod.yaml]\n      apiVersions: [monitoring.coreos.com/v1]\n      kubeVersion: \"1.31\"\n",
            w.dst.addr(),
            chart.display()
        ),
    );
    let run = w.run(&["-o", "json", "images", "-c", "cm.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let sources = sources_of(&run.json());
    assert_eq!(
        sources,
        [
            format!("{src}/library/nginx:1.25"),
            format!("{src}/team/job:0.9"),
            format!("{src}/team/operand:3.1"),
            format!("{src}/team/worker:1.0"),
        ]
    );
    // A kubeVersion the chart does not support fails the render, naming the constraint.
    let old = std::fs::read_to_string(w.path("cm.yaml"))
        .unwrap()
        .replace("kubeVersion: \"1.31\"", "kubeVersion: \"1.29\"");
    w.config("cm.yaml", &old);
    let run = w.run(&["-o", "json", "images", "-c", "cm.yaml"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = run.json()["charts"][0]["versions"][0]["error"].clone();
    assert!(error.as_str().unwrap().contains(">=1.30.0-0"), "{error}");
}
