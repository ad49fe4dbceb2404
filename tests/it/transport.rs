//! What crosses the wire: how many copies run at once, and where credentials go. A
//! recording proxy sits between lazyoci and a real registry.

use std::time::Duration;

use lazyoci::testkit::proxy::{Proxy, Rule};

use crate::common::*;

#[tokio::test]
async fn concurrency_bounds_image_copies_across_the_whole_run() {
    let w = world().await;
    for (limit, target_path) in [(1usize, "c1"), (2, "c2")] {
        // Every blob download takes a while, so copies that may overlap do overlap.
        let proxy = Proxy::start(
            w.src_host(),
            vec![Rule::delay("GET", "/blobs/", Duration::from_millis(150))],
        )
        .unwrap();
        let via = |s: &lazyoci::testkit::images::Seeded| s.reference(proxy.addr());
        image_chart(
            &w,
            "one",
            &[via(&w.set.nginx), via(&w.set.redis), via(&w.set.api)],
        );
        image_chart(
            &w,
            "two",
            &[
                via(&w.set.job),
                via(&w.set.worker),
                via(&w.set.hook),
                via(&w.set.operand),
            ],
        );
        w.config(
            "mirror.yaml",
            &format!("target: {{url: {}/{target_path}, insecure: true}}\nupstreams:\n  one: {{type: local, path: charts/one, chart: one, versions: [\"1.0.0\", \"1.0.1\"]}}\n  two: {{type: local, path: charts/two, chart: two, versions: [\"1.0.0\"]}}\n", w.dst.addr()),
        );
        let run = w.run_env(
            &["mirror", "--all", "--concurrency", &limit.to_string()],
            &[("LAZYOCI_INSECURE_REGISTRIES", proxy.addr())],
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout
                .contains("  Images:  10 copied, 0 skipped, 0 failed"),
            "{run:?}"
        );
        let max = proxy.max_repos_in_flight();
        assert_eq!(
            max, limit,
            "with --concurrency {limit}, {max} images were copied at once"
        );
        // Each distinct image is copied once even though chart `one` has two versions.
        let manifest_puts = w.dst.requests(
            "PUT",
            &format!("/v2/{target_path}/library/nginx/manifests/"),
        );
        assert_eq!(manifest_puts.len(), 1, "{manifest_puts:?}");
    }
}

#[tokio::test]
async fn credentials_go_only_to_their_own_registry() {
    let w = world().await;
    let (private, img) = private_registry().await;
    // The target, and a public source, are watched by recording proxies.
    let target = Proxy::start(w.dst.addr(), vec![]).unwrap();
    let public = Proxy::start(w.src_host(), vec![]).unwrap();
    image_chart(
        &w,
        "mixed",
        &[
            format!("{}/private/app:1.0", private.addr()),
            w.set.job.reference(public.addr()),
        ],
    );
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  mixed: {{type: local, path: charts/mixed, chart: mixed, versions: [\"1.0.0\"]}}\n", target.addr()));
    docker_login(&w, private.addr(), "alice", "s3cret");
    let insecure = format!("{},{}", private.addr(), public.addr());
    let run = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.dst_digest("private/app", "1.0").await, Some(img.digest));
    for (name, proxy) in [("target", &target), ("public source", &public)] {
        let records = proxy.records();
        assert!(!records.is_empty(), "no traffic through the {name} proxy");
        let leaked: Vec<_> = records
            .iter()
            .filter(|r| r.authorization.is_some())
            .collect();
        assert!(
            leaked.is_empty(),
            "credentials sent to the {name}: {leaked:?}"
        );
    }
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));
}

#[tokio::test]
async fn a_per_host_limit_caps_copies_from_one_source_registry() {
    let w = world().await;
    for (flag, expect_at_most_one) in [(None, false), (Some("1"), true)] {
        // Two "hosts" in front of the same registry, each slow.
        let a = Proxy::start(
            w.src_host(),
            vec![Rule::delay("GET", "/blobs/", Duration::from_millis(200))],
        )
        .unwrap();
        let b = Proxy::start(
            w.src_host(),
            vec![Rule::delay("GET", "/blobs/", Duration::from_millis(200))],
        )
        .unwrap();
        let imgs: Vec<String> = [&w.set.nginx, &w.set.redis, &w.set.api]
            .iter()
            .map(|s| s.reference(a.addr()))
            .chain(
                [&w.set.job, &w.set.worker, &w.set.hook]
                    .iter()
                    .map(|s| s.reference(b.addr())),
            )
            .collect();
        image_chart(&w, "hosts", &imgs);
        let path = if flag.is_some() { "limited" } else { "free" };
        w.config("mirror.yaml", &format!("target: {{url: {}/{path}, insecure: true}}\nupstreams:\n  hosts: {{type: local, path: charts/hosts, chart: hosts, versions: [\"1.0.0\"]}}\n", w.dst.addr()));
        let mut args = vec!["mirror", "--all", "--concurrency", "4"];
        if let Some(n) = flag {
            args.extend(["--per-host-concurrency", n]);
        }
        let insecure = format!("{},{}", a.addr(), b.addr());
        let run = w.run_env(&args, &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)]);
        assert_eq!(run.code, 0, "{run:?}");
        let (ma, mb) = (a.max_repos_in_flight(), b.max_repos_in_flight());
        if expect_at_most_one {
            assert_eq!((ma, mb), (1, 1), "per-host limit 1 exceeded");
        } else {
            assert!(
                ma >= 2 || mb >= 2,
                "without a per-host limit copies should overlap per host ({ma}, {mb})"
            );
        }
    }
}

/// The missing images are copied largest first (the run ends when its longest copy does),
/// whatever order the chart lists them in; each is sized from its source manifest.
#[tokio::test]
async fn the_largest_images_are_copied_first() {
    let w = world().await;
    let src = w.src_host();
    let mut refs = Vec::new();
    for (repo, size) in [
        ("order/a-small", 2_000),
        ("order/b-big", 400_000),
        ("order/c-mid", 60_000),
    ] {
        let img = images::image(src, repo, "1.0", &[size as u64 + 7], size, false, "amd64")
            .await
            .unwrap();
        refs.push(img.reference(src));
    }
    let chart = image_chart(&w, "sized", &refs);
    w.config(
        "mirror.yaml",
        &format!(
            "target:\n  url: {}/m\n  insecure: true\nupstreams:\n  sized:\n    type: local\n    path: {}\n    chart: sized\n    versions: [\"1.0.0\"]\n",
            w.dst.addr(),
            chart.display()
        ),
    );
    let run = w.run(&["mirror", "--all", "--images-only", "--concurrency", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    let started: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.ends_with("→ copying..."))
        .map(|l| l.trim().split(['/', ':']).nth(3).unwrap_or_default())
        .collect();
    assert_eq!(started, ["b-big", "c-mid", "a-small"], "{run:?}");
}
