//! Air-gap bundles on real registries, read back by skopeo: create from a source registry,
//! verify, push into an empty target, push again (nothing written).

use std::path::Path;

use crate::common::*;

/// The demo chart (10 images of the standard set) as a local upstream; the target in the
/// config is never contacted by `bundle create`.
pub fn bundle_config(w: &World) {
    w.demo_chart();
    w.config(
        "mirror.yaml",
        "target:\n  url: unused.example.com/mirror\n  charts-prefix: charts\nupstreams:\n  demo:\n    type: local\n    path: ./charts/demo\n    chart: demo\n    versions: [\"1.0.0\"]\n",
    );
}

/// The digest of the manifest skopeo reads at `reference` (`oci:DIR:NAME`, `oci-archive:…`).
pub fn skopeo_digest(reference: &str) -> String {
    oci::digest(&stdout_of(
        std::process::Command::new("skopeo").args(["inspect", "--raw", reference]),
    ))
}

/// The name an image of the set has in a bundle, and the reference to compare at a target.
pub fn bundle_name(img: &images::Seeded) -> (String, String) {
    if img.repo == "team/pinned" {
        (format!("{}@{}", img.repo, img.digest), img.digest.clone())
    } else {
        (format!("{}:{}", img.repo, img.tag), img.tag.clone())
    }
}

/// `bundle push` of `bundle` (relative to the world's dir) under `path` on the target, with
/// a JSON report.
pub fn push(w: &World, bundle: &str, path: &str) -> Run {
    w.run(&[
        "-o",
        "json",
        "bundle",
        "push",
        bundle,
        "--target",
        &format!("{}/{path}", w.dst.addr()),
        "--insecure",
    ])
}

/// Every image of the set is under `prefix` on the target with its source digest.
pub async fn assert_complete(w: &World, prefix: &str) {
    for img in w.set.all() {
        let (_, reference) = bundle_name(img);
        let at = w
            .dst_digest(&format!("{prefix}/{}", img.repo), &reference)
            .await;
        assert_eq!(
            at.as_deref(),
            Some(img.digest.as_str()),
            "{prefix}/{}",
            img.repo
        );
    }
}

fn blob_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_round_trips_through_disk_and_skopeo_reads_it() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["-o", "json", "bundle", "create", "--all", "out"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["imagesCopied"], 10, "{report:#}");
    assert_eq!(report["chartsPushed"], 1, "{report:#}");
    let v = version_of(&report, "demo", "1.0.0");
    assert_eq!(
        v["chartRef"], "charts/demo:1.0.0",
        "names relative to the target"
    );

    // A standard OCI layout, readable by skopeo, every manifest byte for byte.
    let out = w.path("out");
    assert!(out.join("oci-layout").is_file() && out.join("index.json").is_file());
    let mut read_by_skopeo = 0;
    for img in w.set.all() {
        // Debian's skopeo 1.9 (containers/image 5.23) looks names up among OCI-typed entries
        // only, so it cannot find the Docker schema 2 images, kept byte for byte; newer
        // containers/image can, and containerd reads them all (tests/it/bundle_readers.rs).
        let (ct, _) = oci::get_manifest(w.src.addr(), &img.repo, &img.tag)
            .await
            .unwrap()
            .unwrap();
        if ct == images::DOCKER_MANIFEST {
            continue;
        }
        let (name, _) = bundle_name(img);
        let got = skopeo_digest(&format!("oci:{}:{name}", out.display()));
        assert_eq!(got, img.digest, "{name}");
        read_by_skopeo += 1;
    }
    // Including team/pinned, held by digest only and named `team/pinned@sha256:…`.
    assert!(read_by_skopeo >= 7, "{read_by_skopeo}");
    // lazyoci.json describes the charts and images; the layout holds exactly its blobs,
    // each once (the two images sharing a base layer store it once).
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("lazyoci.json")).unwrap()).unwrap();
    assert_eq!(meta["charts"][0]["repository"], "charts/demo");
    assert_eq!(meta["images"].as_array().unwrap().len(), 10);
    let nginx = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repository"] == "library/nginx")
        .unwrap();
    assert_eq!(nginx["digest"], w.set.nginx.digest.as_str());
    assert!(!nginx["provenance"].as_array().unwrap().is_empty());
    let listed: Vec<String> = meta["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b.as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    assert_eq!(blob_files(&out), listed);
    for b in w
        .set
        .multi
        .blobs
        .iter()
        .chain(&w.set.api.blobs)
        .chain(&w.set.worker.blobs)
    {
        assert!(
            listed.contains(&b[7..].to_string()),
            "blob {b} of the set missing"
        );
    }

    let verified = w.run(&["bundle", "verify", "out"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified.stdout.contains("OK: every digest matches"),
        "{verified:?}"
    );

    // The .tar form: one file, read in place by skopeo.
    let run = w.run(&["bundle", "create", "--all", "--output", "out.tar"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.path("out.tar").is_file());
    assert!(
        !w.path("out.tar.partial.d").exists(),
        "the work dir is removed"
    );
    let archive = w.path("out.tar");
    assert_eq!(
        skopeo_digest(&format!(
            "oci-archive:{}:bitnami/multi:2.0",
            archive.display()
        )),
        w.set.multi.digest
    );
    let verified = w.run(&["bundle", "verify", "out.tar"]);
    assert_eq!(verified.code, 0, "{verified:?}");

    // Push into an empty target: every digest equals the source, helm pulls the chart.
    let target = format!("{}/site", w.dst.addr());
    let pushed = push(&w, "out", "site");
    assert_eq!(pushed.code, 0, "{pushed:?}");
    let r = pushed.json();
    assert_eq!(
        (r["imagesCopied"].clone(), r["chartsPushed"].clone()),
        (10.into(), 1.into()),
        "{r:#}"
    );
    assert_complete(&w, "site").await;
    for blob in &w.set.multi.blobs {
        assert!(
            oci::blob_exists(w.dst.addr(), "site/bitnami/multi", blob)
                .await
                .unwrap()
        );
    }
    let home = tempfile::tempdir().unwrap();
    helm(
        home.path(),
        &[
            "pull",
            &format!("oci://{target}/charts/demo"),
            "--version",
            "1.0.0",
            "--plain-http",
            "-d",
            &home.path().to_string_lossy(),
        ],
    )
    .unwrap();
    assert!(home.path().join("demo-1.0.0.tgz").is_file());
    assert_eq!(
        w.dst_digest("site/charts/demo", "1.0.0").await,
        meta["charts"][0]["digest"].as_str().map(str::to_string)
    );

    // Again: everything is there, nothing is written.
    let writes = w.dst_writes().len();
    let again = push(&w, "out", "site");
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["imagesSkipped"], 10);
    assert_eq!(again.json()["chartsSkipped"], 1);
    assert_eq!(w.dst_writes().len(), writes, "a re-push writes nothing");

    // The tar, under another path and charts prefix, text output as `mirror`'s.
    let text = w.run(&[
        "bundle",
        "push",
        "out.tar",
        "--target",
        &format!("{}/other", w.dst.addr()),
        "--insecure",
        "--charts-prefix",
        "helm",
    ]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("  Images:  10 copied, 0 skipped, 0 failed"),
        "{text:?}"
    );
    assert_complete(&w, "other").await;
    assert!(w.dst_digest("other/helm/demo", "1.0.0").await.is_some());
}
