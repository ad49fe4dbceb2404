//! Values overlays (`--overlays DIR`): per chart version a values file that points the
//! images the values set at the mirror, checked by a second render. The proof here is the
//! user's: `helm template` of the chart pulled from the mirror, with the overlay, names only
//! target images (each present there), except the ones the report lists as not relocatable.
//! Real registries, real helm.

use std::collections::BTreeSet;

use lazyoci::reference::ImageRef;
use serde_json::Value;

use crate::common::{Run, World, charts, helm, oci, stdout_of, version_of, world};

/// A config mirroring the local chart `dir` (its directory name is the chart's name and key)
/// at 1.0.0 under `<target>/mirror`.
fn config(w: &World, dir: &std::path::Path) -> std::path::PathBuf {
    let name = dir.file_name().unwrap().to_string_lossy();
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/mirror\n  insecure: true\nupstreams:\n  {name}:\n    type: local\n    path: {}\n    chart: {name}\n    versions: [\"1.0.0\"]\n",
            w.dst.addr(),
            dir.display()
        ),
    )
}

/// `lazyoci <command> -c <cfg> [--all] --overlays <dir> <extra…>`.
fn with_overlays(
    w: &World,
    command: &str,
    cfg: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
) -> Run {
    let mut args = vec![command, "-c", cfg.to_str().unwrap()];
    if command == "mirror" {
        args.push("--all");
    }
    args.extend(["--overlays", dir.to_str().unwrap()]);
    args.extend(extra);
    w.run(&args)
}

/// The images `helm template` renders for `chart` with `values` files.
fn rendered_images(w: &World, chart: &str, extra: &[&str]) -> Vec<String> {
    let home = w.path("helm-home");
    let mut args = vec!["template", "r", chart];
    args.extend(extra);
    let out = helm(&home, &args).unwrap();
    lazyoci::discover::manifests::image_strings(&out).unwrap()
}

#[tokio::test]
async fn helm_template_with_the_overlay_pulls_only_from_the_mirror() {
    let w = world().await;
    let chart = charts::write_overlay_chart(&w.path("charts"), w.src_host(), &w.set).unwrap();
    let cfg = config(&w, &chart);
    let dir = w.path("overlays");
    let run = with_overlays(&w, "mirror", &cfg, &dir, &["-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v = version_of(&run.json(), "reloc", "1.0.0");
    let overlay = &v["overlay"];
    let file = dir.join("reloc-1.0.0.values.yaml");
    assert_eq!(overlay["path"], file.display().to_string(), "{overlay:#}");
    assert_eq!(overlay["relocated"], 6, "{overlay:#}");
    let listed: BTreeSet<String> = overlay["notRelocatable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["image"].as_str().unwrap().to_string())
        .collect();
    let src = w.src_host();
    assert_eq!(
        listed,
        BTreeSet::from([
            format!("{src}/team/hook:1.0"),
            format!("{src}/team/job:0.9")
        ]),
        "{overlay:#}"
    );
    let job = overlay["notRelocatable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["image"].as_str().unwrap().contains("team/job"))
        .unwrap();
    assert!(
        job["at"][0]
            .as_str()
            .unwrap()
            .starts_with("reloc/templates/configmap.yaml: ConfigMap/reloc-jobs"),
        "{job:#}"
    );

    // The user's view: the chart from the mirror, with the overlay.
    let chart_ref = v["chartRef"].as_str().unwrap();
    let chart_ref = chart_ref.rsplit_once(':').unwrap().0;
    let file_arg = file.to_str().unwrap();
    let images = rendered_images(
        &w,
        chart_ref,
        &["--version", "1.0.0", "--plain-http", "-f", file_arg],
    );
    assert_eq!(images.len(), 8, "{images:#?}");
    let target_prefix = format!("{}/mirror/", w.dst.addr());
    for image in &images {
        let r = ImageRef::parse(image).unwrap();
        if listed.contains(&r.to_string()) {
            continue;
        }
        assert!(
            image.starts_with(&target_prefix),
            "{image} is not under the target"
        );
        let repo = r.repository.clone();
        assert!(
            w.dst_digest(&repo, r.reference()).await.is_some(),
            "{image} is not in the target"
        );
    }
    // Without the overlay, nothing comes from the mirror: the overlay did the moving.
    let plain = rendered_images(&w, chart_ref, &["--version", "1.0.0", "--plain-http"]);
    assert!(plain.iter().all(|i| !i.starts_with(&target_prefix)));

    // The overlay is next to the chart: found from the chart's digest through the referrers
    // tag schema (docker-registry has no referrers API), with the same bytes as the file.
    let chart_digest = v["chartDigest"].as_str().unwrap();
    let artifact = overlay["artifact"].as_str().unwrap();
    let (repo_at, overlay_digest) = artifact.split_once('@').unwrap();
    let repo = repo_at.strip_prefix(&format!("{}/", w.dst.addr())).unwrap();
    assert_eq!(repo, "mirror/reloc");
    let found = overlay_from_referrers(w.dst.addr(), repo, chart_digest).await;
    assert_eq!(found.0, overlay_digest);
    assert_eq!(
        found.1,
        std::fs::read(&file).unwrap(),
        "artifact and file differ"
    );
    // skopeo, as an independent client, reads the same manifest, subject and all.
    let out = stdout_of(
        std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{artifact}")),
    );
    let raw: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(raw["subject"]["digest"], chart_digest);
    assert_eq!(
        raw["artifactType"],
        lazyoci::overlay::artifact::ARTIFACT_TYPE
    );

    // The text summary says the same; a re-run writes nothing to the target.
    let writes = w.dst_writes().len();
    let text = with_overlays(&w, "mirror", &cfg, &dir, &[]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("overlay: 6 relocated, 2 not relocatable by values"),
        "{text:?}"
    );
    assert!(
        text.stdout.contains(&format!(
            "not relocatable: {src}/team/job:0.9 (reloc/templates/configmap.yaml"
        )),
        "{text:?}"
    );
    assert_eq!(w.dst_writes().len(), writes, "the re-run wrote");
}

/// The overlay referring to `subject` in `repo`, from the referrers tag schema: its manifest
/// digest and its layer's bytes.
async fn overlay_from_referrers(addr: &str, repo: &str, subject: &str) -> (String, Vec<u8>) {
    let tag = subject.replacen(':', "-", 1);
    let (_, index) = oci::get_manifest(addr, repo, &tag)
        .await
        .unwrap()
        .expect("no referrers tag for the chart");
    let index: Value = serde_json::from_slice(&index).unwrap();
    let ours: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == lazyoci::overlay::artifact::ARTIFACT_TYPE)
        .collect();
    assert_eq!(ours.len(), 1, "{index:#}");
    let digest = ours[0]["digest"].as_str().unwrap().to_string();
    let (_, manifest) = oci::get_manifest(addr, repo, &digest)
        .await
        .unwrap()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["subject"]["digest"], subject);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = reqwest::get(format!("http://{addr}/v2/{repo}/blobs/{layer}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    (digest, blob.to_vec())
}

#[tokio::test]
async fn a_dry_run_writes_the_overlay_and_nothing_to_the_registry() {
    let w = world().await;
    let chart = charts::write_overlay_chart(&w.path("charts"), w.src_host(), &w.set).unwrap();
    let cfg = config(&w, &chart);
    let dir = w.path("out/overlays");
    let run = with_overlays(&w, "mirror", &cfg, &dir, &["--dry-run", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.dst_writes().is_empty(), "the dry run wrote to the target");
    let text = std::fs::read_to_string(dir.join("reloc-1.0.0.values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    let dst = w.dst.addr();
    assert_eq!(values["global"]["imageRegistry"], dst, "{text}");
    assert_eq!(
        values["image"]["repository"], "mirror/bitnami/multi",
        "{text}"
    );
    assert_eq!(
        values["cache"]["image"]["repository"], "mirror/team/sub",
        "{text}"
    );
    assert_eq!(
        values["worker"]["image"],
        format!("{dst}/mirror/team/worker:1.0"),
        "{text}"
    );
    assert_eq!(
        values["sidecars"][0]["image"],
        format!("{dst}/mirror/library/nginx:1.25"),
        "{text}"
    );
    assert_eq!(values["pinned"]["image"]["registry"], dst, "{text}");
    assert!(
        values["pinned"]["image"].get("digest").is_none(),
        "the digest stays the chart's"
    );
    assert!(text.contains("# Not relocatable by values (2):"), "{text}");

    // `lazyoci images --overlays` makes the same file, from discovery alone.
    let again = w.path("images-overlays");
    let run = with_overlays(&w, "images", &cfg, &again, &["-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(again.join("reloc-1.0.0.values.yaml")).unwrap(),
        text
    );
    assert_eq!(
        run.json()["charts"][0]["versions"][0]["overlay"]["relocated"],
        6
    );
}

#[tokio::test]
async fn a_chart_whose_values_name_no_image_still_mirrors_with_an_empty_overlay() {
    let w = world().await;
    let chart = charts::write_chart_with_images(
        &w.path("charts"),
        "plain",
        "1.0.0",
        &[format!("{}/team/job:0.9", w.src_host())],
    )
    .unwrap();
    // The image is in the template, not the values.
    let tpl = chart.join("templates/deployment.yaml");
    let body = std::fs::read_to_string(&tpl).unwrap().replace(
        "{{ .Values.image }}",
        &format!("{}/team/job:0.9", w.src_host()),
    );
    std::fs::write(&tpl, body).unwrap();
    std::fs::write(chart.join("values.yaml"), "replicas: 1\n").unwrap();
    let cfg = config(&w, &chart);
    let dir = w.path("overlays");
    let run = with_overlays(&w, "mirror", &cfg, &dir, &["-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v = version_of(&run.json(), "plain", "1.0.0");
    assert_eq!(v["imagesCopied"], 1);
    let o = &v["overlay"];
    assert_eq!(o["relocated"], 0);
    assert_eq!(o["notRelocatable"].as_array().unwrap().len(), 1, "{o:#}");
    assert!(
        o["note"]
            .as_str()
            .unwrap()
            .contains("no image of this chart is set by its values"),
        "{o:#}"
    );
    let text = std::fs::read_to_string(dir.join("plain-1.0.0.values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(values, serde_json::json!({}), "{text}");
}

#[tokio::test]
async fn an_overlay_past_the_configmap_limit_fails_its_version_and_is_not_truncated() {
    let w = world().await;
    // The image sits in a list next to 1.1 MiB of text: the overlay must carry the whole list.
    let dir = w.path("charts/big");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: big\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        format!(
            "sidecars:\n  - name: proxy\n    image: {}/library/nginx:1.25\n    notes: \"{}\"\n",
            w.src_host(),
            "x".repeat(1_100_000)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  {{- range .Values.sidecars }}\n  - name: {{ .name }}\n    image: {{ .image }}\n  {{- end }}\n",
    )
    .unwrap();
    let cfg = config(&w, &dir);
    let out = w.path("overlays");
    let run = with_overlays(&w, "images", &cfg, &out, &["-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let o = &run.json()["charts"][0]["versions"][0]["overlay"];
    let error = o["error"].as_str().unwrap();
    assert!(
        error.contains("above the 1 MiB limit of a ConfigMap"),
        "{error}"
    );
    assert!(o["path"].is_null());
    assert!(
        !out.join("big-1.0.0.values.yaml").exists(),
        "a truncated file was written"
    );
}
