//! Chart sources (Helm repository, OCI, local directory) and credentials.

use crate::common::*;

#[tokio::test]
async fn helm_repo_index_is_read_once_and_archives_are_verified() {
    let w = world().await;
    let charts_dir = w.path("src-charts");
    let a1 = charts::write_simple_chart(
        &charts_dir.join("v1"),
        "web",
        "1.0.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    let a2 = charts::write_simple_chart(
        &charts_dir.join("v2"),
        "web",
        "1.1.0",
        &w.set.job.reference(w.src_host()),
    )
    .unwrap();
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    repo.publish(&[&a1, &a2], None).unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true, charts-prefix: charts}}\nupstreams:\n  web:\n    type: repo\n    repo: {}\n    chart: web\n    versions: [\"1.0.0\", \"1.1.0\"]\n", w.dst.addr(), repo.url()));

    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        repo.count("index.yaml"),
        1,
        "index.yaml fetched more than once per run: {:?}",
        repo.requests()
    );
    // The pushed layer is the served archive, byte for byte.
    for v in ["1.0.0", "1.1.0"] {
        let served_tgz = std::fs::read(served.join(format!("web-{v}.tgz"))).unwrap();
        let (_, m) = oci::get_manifest(w.dst.addr(), "charts/web", v)
            .await
            .unwrap()
            .unwrap();
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(m["layers"][0]["digest"], oci::digest(&served_tgz), "{v}");
    }
    assert_eq!(images_of(&run.json(), "web", "1.1.0")[0].2, "copied");

    // A second run reuses the artifact dir: the archives are not downloaded again.
    let before = repo
        .requests()
        .iter()
        .filter(|p| p.ends_with(".tgz"))
        .count();
    assert_eq!(w.run(&["mirror", "--all"]).code, 0);
    assert_eq!(
        repo.requests()
            .iter()
            .filter(|p| p.ends_with(".tgz"))
            .count(),
        before,
        "{:?}",
        repo.requests()
    );

    // A tampered archive is refused against the index digest, and nothing is pushed for it.
    let tgz = served.join("web-1.1.0.tgz");
    let mut bytes = std::fs::read(&tgz).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&tgz, bytes).unwrap();
    let w2_dst = lazyoci::testkit::registry::Registry::start().await.unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: {}/\n    chart: web\n    versions: [\"1.0.0\", \"1.1.0\"]\n", w2_dst.addr(), repo.url()));
    let run = w.run_env(
        &[
            "mirror",
            "--all",
            "-o",
            "json",
            "--artifact-dir",
            "fresh-cache",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let v = version_of(&run.json(), "web", "1.1.0");
    assert_eq!(v["chartStatus"], "failed");
    assert!(
        v["chartError"]
            .as_str()
            .unwrap()
            .contains("but the index says"),
        "{v:#}"
    );
    assert!(
        oci::list_tags(w2_dst.addr(), "web").await.unwrap() == vec!["1.0.0"],
        "the good version still mirrors, the tampered one does not"
    );
}

#[tokio::test]
async fn helm_repo_with_absolute_archive_urls() {
    let w = world().await;
    let chart = charts::write_simple_chart(
        &w.path("c"),
        "abs",
        "0.1.0",
        &w.set.nginx.reference(w.src_host()),
    )
    .unwrap();
    let served = w.path("served");
    std::fs::create_dir_all(served.join("sub")).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    // index.yaml at the root, archives elsewhere, named by absolute URL.
    let pkg = helm_repo::HelmRepo::serve(&served.join("sub"))
        .await
        .unwrap();
    pkg.publish(&[&chart], Some(pkg.url())).unwrap();
    std::fs::copy(served.join("sub/index.yaml"), served.join("index.yaml")).unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  abs: {{type: repo, repo: \"{}\", chart: abs, versions: [\"0.1.0\"]}}\n", w.dst.addr(), repo.url()));
    let run = w.run(&["mirror", "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(pkg.count("abs-0.1.0.tgz"), 1);
    assert!(w.dst_digest("abs", "0.1.0").await.is_some());

    // A version the repository does not publish names the ones it does.
    let run = w.run(&["mirror", "--chart", "abs", "--version", "9.9.9"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("abs version 9.9.9 not found")
            && run.stdout.contains("newest published: 0.1.0"),
        "{run:?}"
    );
}

#[tokio::test]
async fn oci_charts_are_copied_byte_for_byte() {
    let w = world().await;
    // Publish a chart to the source registry with the real helm.
    let chart = ocichart(&w);
    push_oci_chart(&w, &chart, OCICHART_ARCHIVE);
    let src_digest = w.src_digest("charts/ocichart", "2.3.4").await.unwrap();

    w.config("mirror.yaml", &format!("target: {{url: {}/mirror, insecure: true, charts-prefix: helm}}\nupstreams:\n  oc: {{type: oci, registry: \"oci://{}/charts\", chart: ocichart, versions: [\"2.3.4\"]}}\n", w.dst.addr(), w.src_host()));
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        w.dst_digest("mirror/helm/ocichart", "2.3.4").await,
        Some(src_digest.clone())
    );
    let v = version_of(&run.json(), "oc", "2.3.4");
    assert_eq!(v["chartDigest"], src_digest);
    assert_eq!(
        images_of(&run.json(), "oc", "2.3.4")[0].0,
        format!("{}/library/redis:7.2", w.src_host())
    );
    let again = w.run(&["mirror", "--all"]);
    assert!(
        again.stdout.contains("Chart: already exists, skipping"),
        "{again:?}"
    );
}

#[tokio::test]
async fn local_charts_package_deterministically_and_honour_helmignore() {
    let w = world().await;
    w.demo_chart();
    let cfg = |url: &str| {
        format!(
            "target: {{url: {url}, insecure: true}}\nupstreams:\n  demo: {{type: local, path: ./charts/demo, chart: demo, versions: [\"1.0.0\", \"1.0.1\"]}}\n"
        )
    };
    w.config("mirror.yaml", &cfg(w.dst.addr()));
    let a = w.run(&[
        "mirror",
        "--all",
        "--charts-only",
        "-o",
        "json",
        "--artifact-dir",
        "cache-a",
    ]);
    assert_eq!(a.code, 0, "{a:?}");
    let other = lazyoci::testkit::registry::Registry::start().await.unwrap();
    w.config("mirror.yaml", &cfg(other.addr()));
    let b = w.run(&[
        "mirror",
        "--all",
        "--charts-only",
        "-o",
        "json",
        "--artifact-dir",
        "cache-b",
    ]);
    let (a, b) = (a.json(), b.json());
    for v in ["1.0.0", "1.0.1"] {
        assert_eq!(
            version_of(&a, "demo", v)["chartDigest"],
            version_of(&b, "demo", v)["chartDigest"],
            "packaging is not deterministic"
        );
    }
    assert!(
        version_of(&a, "demo", "1.0.1")["note"]
            .as_str()
            .unwrap()
            .contains("stamped")
    );
    assert!(version_of(&a, "demo", "1.0.0").get("note").is_none());
    // The artifact dir is content-addressed.
    let digest = version_of(&a, "demo", "1.0.0")["chartDigest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(w.path("cache-a/blobs/sha256").read_dir().unwrap().count() >= 1);
    let _ = digest;

    let home = tempfile::tempdir().unwrap();
    let shown = helm(
        home.path(),
        &[
            "show",
            "chart",
            &format!("oci://{}/demo", w.dst.addr()),
            "--version",
            "1.0.1",
            "--plain-http",
        ],
    )
    .unwrap();
    assert!(shown.contains("version: 1.0.1"), "{shown}");
    helm(
        home.path(),
        &[
            "pull",
            &format!("oci://{}/demo", w.dst.addr()),
            "--version",
            "1.0.0",
            "--plain-http",
            "-d",
            &home.path().to_string_lossy(),
        ],
    )
    .unwrap();
    let tgz = std::fs::read(home.path().join("demo-1.0.0.tgz")).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()))
        .entries()
        .unwrap()
    {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(
        names.contains(&"demo/charts/sub/templates/daemonset.yaml".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"demo/templates/tests/test-connection.yaml".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("ignored.txt")),
        "{names:?}"
    );
}

#[tokio::test]
async fn credentials_are_used_per_host() {
    let w = world().await;
    // A source registry that requires basic auth.
    // Seed it through an authenticated copy of the nginx image: push via basic auth.
    let (private, img) = private_registry().await;
    let chart = charts::write_simple_chart(
        &w.path("charts"),
        "priv",
        "1.0.0",
        &format!("{}/private/app:1.0", private.addr()),
    )
    .unwrap();
    let _ = chart;
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  priv: {{type: local, path: charts/priv, chart: priv, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
    let insecure = format!("{},{}", w.src_host(), private.addr());

    // Without credentials: a clear authentication error, exit 1.
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let err = version_of(&run.json(), "priv", "1.0.0")["images"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("authentication") && err.contains(private.addr()),
        "{err}"
    );

    // With docker config credentials for that host only.
    docker_login(&w, private.addr(), "alice", "s3cret");
    let docker = w.path(".home/docker");
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        w.dst_digest("private/app", "1.0").await,
        Some(img.digest.clone())
    );
    assert!(
        !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
        "a secret leaked into output"
    );

    // A credential helper answers for the host (credHelpers), and the target stays anonymous.
    let bin = w.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-lazytest");
    std::fs::write(&helper, format!("#!/bin/sh\nread host\necho \"$host\" >> {}\nprintf '{{\"Username\":\"alice\",\"Secret\":\"s3cret\"}}'\n", w.path("asked").display())).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&helper).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"lazytest"}}}}"#, private.addr()),
    )
    .unwrap();
    let other = lazyoci::testkit::registry::Registry::start().await.unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  priv: {{type: local, path: charts/priv, chart: priv, versions: [\"1.0.0\"]}}\n", other.addr()));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = w.run_env(
        &["mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure), ("PATH", &path)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let asked = std::fs::read_to_string(w.path("asked")).unwrap();
    assert!(
        asked.lines().all(|h| h == private.addr()),
        "the helper was asked about other hosts: {asked}"
    );
    assert_eq!(
        oci::manifest_digest(other.addr(), "private/app", "1.0")
            .await
            .unwrap(),
        Some(img.digest)
    );
}
