//! The copy engine under faults: a proxy between lazyoci and the source registry injects
//! 503s, 429s with Retry-After, connection resets mid-blob and corrupted bytes.

use lazyoci::testkit::proxy::{Fault, Proxy, Rule};

use crate::common::*;

fn config_for(w: &World, chart: &str) {
    w.config("mirror.yaml", &format!("target: {{url: {}/t, insecure: true}}\nupstreams:\n  {chart}: {{type: local, path: charts/{chart}, chart: {chart}, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_survive_503s_429s_and_resets_mid_blob() {
    let w = world().await;
    let proxy = Proxy::start(
        w.src_host(),
        vec![
            Rule::fault("HEAD", "/manifests/", Fault::Status(503, None), 2),
            Rule::fault("GET", "/manifests/", Fault::Status(503, None), 2),
            Rule::fault("GET", "/blobs/", Fault::Status(429, Some(1)), 1),
            Rule::fault("GET", "/blobs/", Fault::ResetAfter(200), 3),
        ],
    )
    .unwrap();
    let imgs: Vec<String> = [&w.set.nginx, &w.set.redis, &w.set.multi, &w.set.api]
        .iter()
        .map(|s| s.reference(proxy.addr()))
        .collect();
    image_chart(&w, "flaky", &imgs);
    config_for(&w, "flaky");
    let run = w.run_env(
        &["mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())],
    );
    assert_eq!(run.code, 0, "{run:?}");
    for (i, times) in [(0, 2), (1, 2), (2, 1), (3, 3)] {
        assert_eq!(
            proxy.faults_applied(i),
            times,
            "fault rule {i} did not fire"
        );
    }
    for s in [&w.set.nginx, &w.set.redis, &w.set.multi, &w.set.api] {
        assert_eq!(
            w.dst_digest(&format!("t/{}", s.repo), &s.tag).await,
            Some(s.digest.clone()),
            "{}",
            s.repo
        );
        for b in &s.blobs {
            assert!(
                oci::blob_exists(w.dst.addr(), &format!("t/{}", s.repo), b)
                    .await
                    .unwrap(),
                "{} blob {b}",
                s.repo
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_bytes_fail_the_image_and_nothing_is_tagged() {
    let w = world().await;
    let bad_layer = w.set.job.blobs[1].clone();
    let proxy = Proxy::start(
        w.src_host(),
        vec![Rule::fault(
            "GET",
            &format!("/blobs/{bad_layer}"),
            Fault::Corrupt,
            1000,
        )],
    )
    .unwrap();
    image_chart(
        &w,
        "corrupt",
        &[
            w.set.job.reference(proxy.addr()),
            w.set.nginx.reference(proxy.addr()),
        ],
    );
    config_for(&w, "corrupt");
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let imgs = version_of(&run.json(), "corrupt", "1.0.0")["images"].clone();
    let job = imgs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"].as_str().unwrap().contains("team/job"))
        .unwrap();
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("does not match its digest"),
        "{job:#}"
    );
    assert!(
        w.dst_digest("t/team/job", "0.9").await.is_none(),
        "an image with a corrupted blob was tagged"
    );
    assert!(
        !oci::blob_exists(w.dst.addr(), "t/team/job", &bad_layer)
            .await
            .unwrap(),
        "the corrupted blob was committed"
    );
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(w.set.nginx.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_base_layer_is_uploaded_once_and_mounted_elsewhere() {
    let w = world().await;
    let base = w.set.api.blobs[1].clone();
    assert_eq!(
        base, w.set.worker.blobs[1],
        "fixture: api and worker share their base layer"
    );
    image_chart(
        &w,
        "shared",
        &[
            w.set.api.reference(w.src_host()),
            w.set.worker.reference(w.src_host()),
        ],
    );
    config_for(&w, "shared");
    let run = w.run(&["mirror", "--all", "--concurrency", "2"]);
    assert_eq!(run.code, 0, "{run:?}");
    let uploads = w.dst.requests("PUT", &format!("digest={base}"));
    assert_eq!(
        uploads.len(),
        1,
        "the base layer was uploaded {} times: {uploads:?}",
        uploads.len()
    );
    let mounts = w.dst.requests("POST", &format!("mount={base}"));
    assert!(
        mounts.iter().any(|m| m.ends_with(" 201")),
        "no successful cross-repository mount: {mounts:?}"
    );
    assert!(
        oci::blob_exists(w.dst.addr(), "t/team/api", &base)
            .await
            .unwrap()
    );
    assert!(
        oci::blob_exists(w.dst.addr(), "t/team/worker", &base)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_source_tag_follows_the_policy() {
    let w = world().await;
    image_chart(&w, "moving", &[w.set.nginx.reference(w.src_host())]);
    config_for(&w, "moving");
    assert_eq!(w.run(&["mirror", "--all"]).code, 0);
    let old = w.set.nginx.digest.clone();
    // The upstream tag moves to new content.
    let new = images::image(
        w.src_host(),
        "library/nginx",
        "1.25",
        &[4242],
        4096,
        false,
        "amd64",
    )
    .await
    .unwrap()
    .digest;
    assert_ne!(old, new);
    let image = |run: &Run| version_of(&run.json(), "moving", "1.0.0")["images"][0].clone();

    let skip = w.run(&["mirror", "--all", "-o", "json", "--on-moved-tag", "skip"]);
    assert_eq!(skip.code, 0, "{skip:?}");
    let i = image(&skip);
    assert_eq!(
        (
            i["status"].as_str(),
            i["previousDigest"].as_str(),
            i["digest"].as_str()
        ),
        (Some("skipped"), Some(old.as_str()), Some(new.as_str())),
        "{i:#}"
    );
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(old.clone())
    );
    let text = w.run(&["mirror", "--all", "--on-moved-tag", "skip"]);
    assert!(
        text.stdout
            .contains("→ exists (source tag moved; kept the target's digest)"),
        "{text:?}"
    );

    let fail = w.run(&["mirror", "--all", "-o", "json", "--on-moved-tag", "fail"]);
    assert_eq!(fail.code, 1, "{fail:?}");
    let i = image(&fail);
    assert_eq!(i["status"], "failed");
    assert!(
        i["error"]
            .as_str()
            .unwrap()
            .contains("the source tag moved"),
        "{i:#}"
    );
    assert_eq!(
        w.dst_digest("t/library/nginx", "1.25").await,
        Some(old.clone())
    );

    let overwrite = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(overwrite.code, 0, "{overwrite:?}");
    let i = image(&overwrite);
    assert_eq!(
        (i["status"].as_str(), i["previousDigest"].as_str()),
        (Some("copied"), Some(old.as_str())),
        "{i:#}"
    );
    assert_eq!(w.dst_digest("t/library/nginx", "1.25").await, Some(new));
    assert!(
        overwrite
            .stderr
            .contains(&format!("OK (source tag moved; replaces {old})")),
        "{overwrite:?}"
    );
}
