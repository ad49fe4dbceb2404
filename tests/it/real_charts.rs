//! What real public charts do to lazyoci (issue 14, "Real charts"): chart files written in
//! every way helm accepts, one unreadable file costing only what it holds, one image under
//! two source names, declared editions, and values that name the registry once at the top.
//! Real registries, real helm.

use crate::common::{World, images, sources_of, world};

/// A chart whose values.yaml is `values`, whose Deployment runs
/// `{{ .Values.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}` and whose
/// Chart.yaml declares `declared` (an artifacthub.io/images annotation).
fn chart(w: &World, name: &str, values: &str, declared: &[String]) -> std::path::PathBuf {
    let dir = w.path(&format!("charts/{name}"));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let mut chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: 1.0.0\n# a comment block in Chart.yaml too\n{}annotations:\n",
        "#\n".repeat(120)
    );
    if !declared.is_empty() {
        chart_yaml.push_str("  artifacthub.io/images: |\n");
        for d in declared {
            chart_yaml.push_str(&format!("    - name: x\n      image: {d}\n"));
        }
    }
    std::fs::write(dir.join("Chart.yaml"), chart_yaml).unwrap();
    std::fs::write(dir.join("values.yaml"), values).unwrap();
    std::fs::write(
        dir.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: \"{{ .Values.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
    )
    .unwrap();
    dir
}

/// mirror.yaml with one local upstream per chart, each passing `registry` to helm.
fn config(w: &World, charts: &[(&str, &std::path::Path)], registry: &str) {
    let mut text = format!(
        "target:\n  url: {}/mirror\n  insecure: true\nupstreams:\n",
        w.dst.addr()
    );
    for (name, dir) in charts {
        text.push_str(&format!(
            "  {name}:\n    type: local\n    path: {}\n    chart: {name}\n    versions: [\"1.0.0\"]\n    values: {{registry: \"{registry}\"}}\n",
            dir.display()
        ));
    }
    w.config("mirror.yaml", &text);
}

/// The YAML fixtures under tests/yaml that are values files.
const VALUES_FIXTURES: [&str; 5] = [
    "long-comments",
    "anchors-merge",
    "tabs",
    "odd-indent",
    "duplicate-keys",
];

#[tokio::test]
async fn chart_files_helm_accepts_are_read() {
    let w = world().await;
    let src = w.src_host().to_string();
    let dirs: Vec<(String, std::path::PathBuf)> = VALUES_FIXTURES
        .iter()
        .map(|name| {
            let values = std::fs::read_to_string(format!(
                "{}/tests/yaml/{name}.yaml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let declared = [format!("{src}/team/operand:3.1")];
            (name.to_string(), chart(&w, name, &values, &declared))
        })
        .collect();
    let charts: Vec<(&str, &std::path::Path)> = dirs
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_path()))
        .collect();
    config(&w, &charts, &src);
    let run = w.run(&["-o", "json", "images"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    for name in VALUES_FIXTURES {
        let chart = report["charts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == name)
            .unwrap();
        let v = &chart["versions"][0];
        assert!(v["error"].is_null(), "{name}: {v:#}");
        let found: Vec<(String, Vec<String>)> = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut from: Vec<String> = i["provenance"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["from"].as_str().unwrap().to_string())
                    .collect();
                from.dedup();
                (i["source"].as_str().unwrap().to_string(), from)
            })
            .collect();
        let api = found
            .iter()
            .find(|(s, _)| *s == format!("{src}/team/api:1.0"))
            .unwrap_or_else(|| panic!("{name}: {found:?}"));
        assert_eq!(api.1, ["rendered", "values"], "{name}: {found:?}");
        assert!(
            found
                .iter()
                .any(|(s, f)| s.ends_with("team/operand:3.1") && f == &["annotations"]),
            "{name}: {found:?}"
        );
    }
}

#[tokio::test]
async fn an_unreadable_values_file_costs_only_what_it_holds() {
    let w = world().await;
    let src = w.src_host().to_string();
    let dir = chart(
        &w,
        "broken",
        "image: {repository: [team/api\n",
        &[format!("{src}/team/operand:3.1")],
    );
    config(&w, &[("broken", &dir)], &src);
    let run = w.run(&["-o", "json", "mirror", "--all"]);
    assert_eq!(run.code, 1, "{run:?}");
    let v = crate::common::version_of(&run.json(), "broken", "1.0.0");
    let error = v["imagesError"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot read broken/values.yaml") && !error.contains("Chart.yaml"),
        "the message names the file that failed: {v:#}"
    );
    // The annotation still counts: its image is mirrored.
    assert_eq!(
        w.dst_digest("mirror/team/operand", "3.1").await.as_deref(),
        Some(w.set.operand.digest.as_str()),
        "{run:?}"
    );
}

#[tokio::test]
async fn one_image_under_two_names_is_copied_once_and_different_ones_are_refused() {
    let w = world().await;
    let port = w.src_host().rsplit(':').next().unwrap().to_string();
    let alias = format!("localhost:{port}");
    let insecure = format!("{},{alias}", w.src_host());
    // Rendered as 127.0.0.1:PORT/team/api:1.0, declared as localhost:PORT/team/api:1.0:
    // two names, one registry, one digest, one target.
    let dir = chart(
        &w,
        "twice",
        "image: {repository: team/api, tag: \"1.0\"}\n",
        &[format!("{alias}/team/api:1.0")],
    );
    config(&w, &[("twice", &dir)], w.src_host());
    let run = w.run_env(
        &["-o", "json", "mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let imgs = crate::common::images_of(&report, "twice", "1.0.0");
    let statuses: Vec<(&str, &str)> = imgs
        .iter()
        .map(|(s, _, st)| (s.as_str(), st.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (format!("{}/team/api:1.0", w.src_host()).as_str(), "copied"),
            (format!("{alias}/team/api:1.0").as_str(), "skipped"),
        ],
        "{report:#}"
    );
    assert_eq!(
        w.dst_digest("mirror/team/api", "1.0").await.as_deref(),
        Some(w.set.api.digest.as_str())
    );
    assert_eq!(
        w.dst.requests("PUT", "/team/api/manifests/").len(),
        1,
        "the tag is written once"
    );

    // Another registry with other content under the same name: both are refused.
    let other = lazyoci::testkit::registry::Registry::start().await.unwrap();
    let different = images::image(other.addr(), "team/api", "1.0", &[77], 1024, false, "amd64")
        .await
        .unwrap();
    let dir = chart(
        &w,
        "clash",
        "image: {repository: team/api, tag: \"1.0\"}\n",
        &[format!("{}/team/api:1.0", other.addr())],
    );
    config(&w, &[("clash", &dir)], w.src_host());
    let insecure = format!("{},{}", w.src_host(), other.addr());
    let run = w.run_env(
        &["-o", "json", "mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let v = crate::common::version_of(&run.json(), "clash", "1.0.0");
    for img in v["images"].as_array().unwrap() {
        assert_eq!(img["status"], "failed", "{v:#}");
        let e = img["error"].as_str().unwrap();
        assert!(
            e.contains("different content")
                && e.contains(&different.digest)
                && e.contains(&w.set.api.digest),
            "{e}"
        );
    }
}

#[tokio::test]
async fn declared_editions_are_mirrored_and_a_missing_one_is_a_warning() {
    let w = world().await;
    let src = w.src_host().to_string();
    let developer = images::image(
        &src,
        "team/api",
        "1.0-developer",
        &[88],
        1024,
        false,
        "amd64",
    )
    .await
    .unwrap();
    // Renders team/api:1.0 (the community edition); declares the others, one never published.
    let dir = chart(
        &w,
        "editions",
        "image: {repository: team/api, tag: \"1.0\"}\n",
        &[
            format!("{src}/team/api:1.0"),
            format!("{src}/team/api:1.0-developer"),
            format!("{src}/team/api:1.0-enterprise"),
        ],
    );
    config(&w, &[("editions", &dir)], &src);
    let run = w.run(&["-o", "json", "mirror", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        w.dst_digest("mirror/team/api", "1.0-developer")
            .await
            .as_deref(),
        Some(developer.digest.as_str())
    );
    assert_eq!(
        w.dst_digest("mirror/team/api", "1.0").await.as_deref(),
        Some(w.set.api.digest.as_str())
    );
    let v = crate::common::version_of(&run.json(), "editions", "1.0.0");
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(&format!("{src}/team/api:1.0-enterprise (declared in"))
            && warnings.contains("is not at the source"),
        "{v:#}"
    );
}

#[tokio::test]
async fn values_only_discovery_keeps_the_registry_the_values_name() {
    let w = world().await;
    let chart = w.demo_chart();
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/mirror, insecure: true}}\nupstreams:\n  demo: {{type: local, path: {}, chart: demo, versions: [\"1.0.0\"]}}\n",
            w.dst.addr(),
            chart.display()
        ),
    );
    let run = w.run(&["-o", "json", "images", "--sources", "values"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let sources = sources_of(&report);
    assert!(
        sources.contains(&format!("{}/team/api:1.0", w.src_host())),
        "{sources:?}"
    );
    assert!(
        !sources.iter().any(|s| s.starts_with("docker.io/team/")),
        "{sources:?}"
    );
}
