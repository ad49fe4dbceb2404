//! The discovery cache and conditional index requests: an unchanged chart version is not
//! rendered again (helm invocations are counted through a wrapper around the real helm),
//! every render input is part of the key, a damaged entry is rebuilt, and an unchanged
//! index.yaml is answered 304 by the real Helm repository server.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A helm that logs each invocation to `log` and runs the real one; `version` answers
/// `fake_version` instead when given.
fn helm_wrapper(dir: &Path, log: &Path, fake_version: Option<&str>) -> PathBuf {
    let path = dir.join(match fake_version {
        Some(_) => "helm-fake",
        None => "helm-counting",
    });
    let fake = fake_version
        .map(|v| format!("if [ \"$1\" = version ]; then echo {v}; exit 0; fi\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\n{fake}exec '{}' \"$@\"\n",
            log.display(),
            lazyoci::testkit::helm_bin().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Counted<'a> {
    w: &'a World,
    log: PathBuf,
}

impl Counted<'_> {
    /// Run `mirror --all -o json` with `helm`; the report and how many times helm rendered.
    fn mirror(&self, helm: &Path, extra: &[&str]) -> (serde_json::Value, usize) {
        let _ = std::fs::remove_file(&self.log);
        let mut args = vec!["mirror", "--all", "-o", "json", "--artifact-dir", "art"];
        args.extend(extra);
        let run = self
            .w
            .run_env(&args, &[("LAZYOCI_HELM", &helm.to_string_lossy())]);
        assert_eq!(run.code, 0, "{run:?}");
        let renders = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "template")
            .count();
        (run.json(), renders)
    }
}

fn config(w: &World, repo: &helm_repo::HelmRepo, extra: &str) {
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: {}\n    chart: web\n    semver: \"*\"\n{extra}", w.dst.addr(), repo.url()));
}

fn pushed(report: &serde_json::Value) -> Vec<String> {
    report["charts"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["chartStatus"] == "pushed")
        .map(|v| v["version"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_upstream_version_is_the_only_one_mirrored_and_rendered() {
    let w = world().await;
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    publish_web(&w, &repo, &["1.0.0", "1.1.0"]);
    config(&w, &repo, "");
    let c = Counted {
        w: &w,
        log: w.path("helm.log"),
    };
    let helm = helm_wrapper(w.dir.path(), &c.log, None);

    let (first, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 2, "{first:#}");
    assert_eq!(pushed(&first), ["1.0.0", "1.1.0"]);
    assert_eq!(first["discoveryCached"], 0);

    // Upstream gains 1.2.0: only it is pushed, and only it is rendered.
    publish_web(&w, &repo, &["1.2.0"]);
    let (second, renders) = c.mirror(&helm, &[]);
    assert_eq!(pushed(&second), ["1.2.0"]);
    assert_eq!(renders, 1, "only the new version renders: {second:#}");
    assert_eq!(second["discoveryCached"], 2);
    assert_eq!(
        second["imagesSkipped"], 3,
        "cached discovery still checks every image"
    );

    // Nothing changed: nothing renders, and index.yaml is answered 304.
    let before = repo.not_modified("index.yaml");
    let (_, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 0);
    assert_eq!(repo.not_modified("index.yaml"), before + 1);

    // --no-cache renders everything and downloads the index whole.
    let before = repo.not_modified("index.yaml");
    let (_, renders) = c.mirror(&helm, &["--no-cache"]);
    assert_eq!(renders, 3);
    assert_eq!(repo.not_modified("index.yaml"), before);
}

#[tokio::test]
async fn every_render_input_and_helm_s_version_are_in_the_key_and_damage_is_rebuilt() {
    let w = world().await;
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    publish_web(&w, &repo, &["1.0.0"]);
    let c = Counted {
        w: &w,
        log: w.path("helm.log"),
    };
    let helm = helm_wrapper(w.dir.path(), &c.log, None);
    std::fs::write(w.path("extra-values.yaml"), "a: 1\n").unwrap();
    let variants = [
        "",
        "    values: {replicas: 2}\n",
        "    values-files: [./extra-values.yaml]\n",
        "    kube-version: \"1.30.0\"\n",
        "    api-versions: [monitoring.coreos.com/v1]\n",
        "    images: {exclude: [\"^nothing$\"]}\n",
        "    images: {sources: [rendered, values]}\n",
    ];
    for (i, extra) in variants.iter().enumerate() {
        config(&w, &repo, extra);
        let (_, renders) = c.mirror(&helm, &[]);
        assert_eq!(renders, 1, "variant {i} ({extra:?}) must miss the cache");
        let (_, renders) = c.mirror(&helm, &[]);
        assert_eq!(renders, 0, "variant {i} ({extra:?}) hits on the second run");
    }
    // A values file's content is part of the key, not only its name.
    config(&w, &repo, variants[2]);
    std::fs::write(w.path("extra-values.yaml"), "a: 2\n").unwrap();
    let (_, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 1, "changed values file content");

    // Another helm version misses.
    config(&w, &repo, "");
    let other_helm = helm_wrapper(w.dir.path(), &c.log, Some("v9.9.9+gfake"));
    let (_, renders) = c.mirror(&other_helm, &[]);
    assert_eq!(renders, 1, "another helm version");

    // A damaged entry is ignored, rebuilt, and trusted again only once rebuilt.
    let (_, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 0);
    let entries: Vec<PathBuf> = walk(&w.path("art/discovery"));
    assert!(!entries.is_empty());
    for e in &entries {
        let bytes = std::fs::read(e).unwrap();
        std::fs::write(e, &bytes[..bytes.len() / 2]).unwrap();
    }
    let (report, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 1, "a truncated entry is not trusted");
    assert_eq!(report["imagesSkipped"], 1);
    let (_, renders) = c.mirror(&helm, &[]);
    assert_eq!(renders, 0, "the entry was rebuilt");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
