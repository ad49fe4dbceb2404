//! Incremental bundles and interrupted pushes: a delta made `--since` a bundle carries only
//! what changed, lands on a target holding the base, and is refused precisely (nothing that
//! needs the base tagged) on one without it; a push stopped by SIGINT completes on a re-run.

use std::time::Duration;

use lazyoci::testkit::proxy::{Proxy, Rule};

use crate::bundle::{assert_complete, bundle_config, bundle_name, push};
use crate::common::*;

fn meta(w: &World, dir: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(w.path(dir).join("lazyoci.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_carries_only_what_changed_and_needs_its_base() {
    let mut w = world().await;
    bundle_config(&w);
    let base = w.run(&["bundle", "create", "--all", "base"]);
    assert_eq!(base.code, 0, "{base:?}");

    // Upstream, nginx:1.25 moves: its old layer plus a new one.
    let old_layer = w.set.nginx.blobs[1].clone();
    let changed = images::image(
        w.src.addr(),
        "library/nginx",
        "1.25",
        &[1, 99],
        4096,
        false,
        "amd64",
    )
    .await
    .unwrap();
    assert!(
        changed.blobs.contains(&old_layer),
        "the new image shares a layer with the old"
    );

    let delta = w.run(&[
        "-o", "json", "bundle", "create", "--all", "delta", "--since", "base",
    ]);
    assert_eq!(delta.code, 0, "{delta:?}");
    let r = delta.json();
    assert_eq!(
        (r["imagesCopied"].clone(), r["imagesSkipped"].clone()),
        (1.into(), 9.into()),
        "{r:#}"
    );
    assert_eq!(r["chartsSkipped"], 1, "the chart is in the base");
    // Only nginx's new manifest, config and layer: the shared layer is left to the base.
    let m = meta(&w, "delta");
    let mut held: Vec<&str> = m["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    held.sort();
    let mut expected: Vec<&str> = changed
        .blobs
        .iter()
        .filter(|b| **b != old_layer)
        .map(String::as_str)
        .chain([changed.digest.as_str()])
        .collect();
    expected.sort();
    assert_eq!(held, expected);
    assert_eq!(m["images"].as_array().unwrap().len(), 1);
    // Made from the base's lazyoci.json alone, the delta is the same.
    let again = w.run(&[
        "bundle",
        "create",
        "--all",
        "delta2",
        "--since",
        "base/lazyoci.json",
    ]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(meta(&w, "delta2")["blobs"], m["blobs"]);
    let verified = w.run(&["bundle", "verify", "delta"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified
            .stdout
            .contains("1 blobs left to the bundles it was made --since"),
        "{verified:?}"
    );

    // Base then delta onto a fresh target: complete, nginx at its new digest.
    let site = format!("{}/site", w.dst.addr());
    for b in ["base", "delta"] {
        let p = w.run(&["bundle", "push", b, "--target", &site, "--insecure"]);
        assert_eq!(p.code, 0, "{b}: {p:?}");
    }
    w.set.nginx = changed.clone();
    assert_complete(&w, "site").await;

    // The delta alone: refused, naming the blob it lacks; nginx is not tagged.
    let p = push(&w, "delta", "alone");
    assert_eq!(p.code, 1, "{p:?}");
    let img = &version_of(&p.json(), "demo", "1.0.0")["images"][0];
    assert_eq!(img["status"], "failed");
    let error = img["error"].as_str().unwrap();
    assert!(
        error.contains(&old_layer) && error.contains("push that bundle first"),
        "{error}"
    );
    assert_eq!(w.dst_digest("alone/library/nginx", "1.25").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_interrupted_by_sigint_completes_when_run_again() {
    let w = world().await;
    bundle_config(&w);
    let run = w.run(&["bundle", "create", "--all", "out"]);
    assert_eq!(run.code, 0, "{run:?}");

    // Every blob upload to the target takes a while, so the push is caught mid-way.
    let slow = Proxy::start(
        w.dst.addr(),
        vec![Rule::delay(
            "PUT",
            "/blobs/uploads/",
            Duration::from_millis(400),
        )],
    )
    .unwrap();
    let home = w.path(".home");
    std::fs::create_dir_all(&home).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lazyoci"))
        .current_dir(w.dir.path())
        .args([
            "bundle",
            "push",
            "out",
            "--target",
            &format!("{}/site", slow.addr()),
            "--insecure",
            "--concurrency",
            "2",
        ])
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !slow
        .records()
        .iter()
        .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
    {
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tagged = futures::future::join_all(w.set.all().iter().map(|i| async {
        let (_, reference) = bundle_name(i);
        w.dst_digest(&format!("site/{}", i.repo), &reference).await
    }))
    .await;
    assert!(
        tagged.iter().any(Option::is_none),
        "the push was stopped before the end"
    );

    let again = w.run(&[
        "bundle",
        "push",
        "out",
        "--target",
        &format!("{}/site", w.dst.addr()),
        "--insecure",
    ]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_complete(&w, "site").await;
}
