//! Errors a user can act on (issue 14): plain HTTP spoken to as HTTPS is one request and a
//! hint, an unusable target is one message before any work, and a chart tag that holds
//! other content follows the moved-tag policy. Real registries, a recording proxy.

use crate::common::*;
use lazyoci::testkit::proxy::{Fault, Proxy, Rule};

/// mirror.yaml for one local chart `app` using `image`, with `target` as the target block.
fn app(w: &World, image: &str, target: &str) {
    charts::write_simple_chart(&w.path("charts"), "app", "1.0.0", image).unwrap();
    w.config(
        "mirror.yaml",
        &format!(
            "target: {target}\nupstreams:\n  app: {{type: local, path: charts/app, chart: app, versions: [\"1.0.0\"]}}\n"
        ),
    );
}

#[tokio::test]
async fn plain_http_is_not_retried_and_says_what_to_do() {
    let w = world().await;
    // The target serves plain HTTP but the config does not say `insecure: true`.
    let target = Proxy::start(w.dst.addr(), vec![]).unwrap();
    app(
        &w,
        &w.set.nginx.reference(w.src_host()),
        &format!("{{url: {}/mirror}}", target.addr()),
    );
    let run = w.run(&["-o", "json", "mirror", "--all"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("speaks plain HTTP")
            && run.stderr.contains("target.insecure: true")
            && !run.stderr.contains("InvalidContentType"),
        "{run:?}"
    );
    assert_eq!(target.connections(), 1, "one attempt, no retries: {run:?}");

    // A source in plain HTTP that is not named with --insecure-registry.
    let source = Proxy::start(w.src_host(), vec![]).unwrap();
    app(
        &w,
        &format!("{}/team/api:1.0", source.addr()),
        &format!("{{url: {}/mirror, insecure: true}}", w.dst.addr()),
    );
    let run = w.run(&["-o", "json", "mirror", "--all"]);
    assert_eq!(run.code, 1, "{run:?}");
    let imgs = images_of(&run.json(), "app", "1.0.0");
    assert_eq!(imgs.len(), 1, "{imgs:?}");
    let error = version_of(&run.json(), "app", "1.0.0")["images"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&format!("--insecure-registry {}", source.addr())),
        "{error}"
    );
    assert_eq!(source.connections(), 1, "one attempt, no retries: {error}");
}

/// Requests the source registry has answered so far.
fn src_reads(w: &World) -> usize {
    w.src.requests("HEAD", "/v2/").len() + w.src.requests("GET", "/v2/").len()
}

#[tokio::test]
async fn an_unusable_target_is_one_message_before_any_work() {
    let w = world().await;
    // The target answers 503 to everything, for longer than any retry budget.
    let target = Proxy::start(
        w.dst.addr(),
        vec![Rule::fault("GET", "/v2/", Fault::Status(503, None), 1000)],
    )
    .unwrap();
    app(
        &w,
        &w.set.nginx.reference(w.src_host()),
        &format!("{{url: {}/mirror, insecure: true}}", target.addr()),
    );
    let src_before = src_reads(&w);
    let run = w.run(&["mirror", "--all"]);
    assert_eq!(run.code, 1, "{run:?}");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{run:?}");
    assert!(
        errors[0].contains("the target registry cannot be used")
            && errors[0].contains(target.addr())
            && errors[0].contains("503"),
        "{run:?}"
    );
    let records = target.records();
    assert!(
        !records.is_empty() && records.len() <= 2,
        "one probe (one retry at most): {records:?}"
    );
    assert!(records.iter().all(|r| r.path == "/v2/"), "{records:?}");
    assert_eq!(src_reads(&w), src_before, "no source image was looked at");
    assert!(!run.stdout.contains("FAILED"), "{run:?}");
}

#[tokio::test]
async fn a_chart_tag_with_other_content_follows_the_moved_tag_policy() {
    let w = world().await;
    app(
        &w,
        &w.set.nginx.reference(w.src_host()),
        &format!("{{url: {}/mirror, insecure: true}}", w.dst.addr()),
    );
    let first = w.run(&["-o", "json", "mirror", "--all", "--charts-only"]);
    assert_eq!(first.code, 0, "{first:?}");
    let old = w.dst_digest("mirror/app", "1.0.0").await.unwrap();
    // Edited, not re-versioned.
    std::fs::write(
        w.path("charts/app/templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: added}\n",
    )
    .unwrap();

    let charts_only = |policy: &str| {
        let run = w.run(&[
            "-o",
            "json",
            "mirror",
            "--all",
            "--charts-only",
            "--on-moved-tag",
            policy,
        ]);
        (run.code, version_of(&run.json(), "app", "1.0.0"))
    };
    let (code, v) = charts_only("fail");
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["chartStatus"], "failed", "{v:#}");
    assert_eq!(v["previousDigest"], old.as_str(), "{v:#}");
    assert!(
        v["chartError"]
            .as_str()
            .unwrap()
            .contains("the target was left as it is"),
        "{v:#}"
    );
    assert_eq!(w.dst_digest("mirror/app", "1.0.0").await, Some(old.clone()));

    let (code, v) = charts_only("skip");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["chartStatus"], "skipped", "{v:#}");
    assert_eq!(v["previousDigest"], old.as_str(), "{v:#}");
    assert_eq!(w.dst_digest("mirror/app", "1.0.0").await, Some(old.clone()));

    // The default overwrites, and says so in the text output too.
    let text = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains("held other content") && text.stdout.contains("overwritten"),
        "{text:?}"
    );
    let new = w.dst_digest("mirror/app", "1.0.0").await.unwrap();
    assert_ne!(new, old);
    let again = w.run(&["-o", "json", "mirror", "--all", "--charts-only"]);
    let v = version_of(&again.json(), "app", "1.0.0");
    assert_eq!(v["chartStatus"], "skipped", "{v:#}");
    assert!(v["previousDigest"].is_null(), "{v:#}");
}

/// A local chart `app` (one image at the source, one missing) and an OCI chart `oc` whose
/// configured version was never published (1.0.0 and 1.1.0 are).
fn failing_world(w: &World) {
    let chart = charts::write_chart_with_images(
        &w.path("charts"),
        "app",
        "1.0.0",
        &[
            w.set.nginx.reference(w.src_host()),
            format!("{}/gone/away:404", w.src_host()),
        ],
    )
    .unwrap();
    for version in ["1.0.0", "1.1.0"] {
        let oc = charts::write_simple_chart(
            &w.path(&format!("oc-{version}")),
            "oc",
            version,
            &w.set.api.reference(w.src_host()),
        )
        .unwrap();
        push_oci_chart(w, &oc, &format!("oc-{version}.tgz"));
    }
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/mirror, insecure: true}}\nupstreams:\n  app: {{type: local, path: {}, chart: app, versions: [\"1.0.0\"]}}\n  oc: {{type: oci, registry: \"oci://{}/charts\", chart: oc, versions: [\"9.9.9\"]}}\n",
            w.dst.addr(),
            chart.display(),
            w.src_host()
        ),
    );
}

#[tokio::test]
async fn failures_are_told_on_stderr_blamed_right_and_listed_at_the_end() {
    let w = world().await;
    failing_world(&w);
    let src = w.src_host();

    // The end of the text summary lists what failed; stderr says that something did.
    let run = w.run(&["mirror", "--chart", "app"]);
    assert_eq!(run.code, 1, "{run:?}");
    let tail = run.stdout.rsplit("  Failed:\n").next().unwrap_or_default();
    assert!(
        run.stdout.contains("  Failed:\n")
            && tail.contains(&format!(
                "    {src}/gone/away:404 → {}/mirror/gone/away:404: ",
                w.dst.addr()
            ))
            && tail.contains("not found at the source")
            && !tail.contains("library/nginx"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("error: 1 failure (listed at the end of the summary)"),
        "{run:?}"
    );

    // A version that was never fetched is not blamed on rendering, and the OCI source names
    // the versions it has, as a Helm repository does.
    let run = w.run(&["mirror", "--chart", "oc"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("could not be fetched") && !run.stdout.contains("rendered"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("(newest published: 1.1.0, 1.0.0)"),
        "{run:?}"
    );

    // `images`: errors on stderr, the list (or the answer to --why) on stdout, exit 1.
    let list = w.run(&["images"]);
    assert_eq!(list.code, 1, "{list:?}");
    assert!(!list.stdout.contains("error:"), "{list:?}");
    assert!(
        list.stderr
            .contains("error: oc:9.9.9: oc version 9.9.9 not found"),
        "{list:?}"
    );
    let why = w.run(&["images", "--why", "library/nginx"]);
    assert_eq!(why.code, 1, "an upstream failed: {why:?}");
    assert!(
        why.stdout.contains("library/nginx:1.25 in app:1.0.0"),
        "{why:?}"
    );
    assert!(why.stderr.contains("error: oc:9.9.9:"), "{why:?}");
    let json = w.run(&["-o", "json", "mirror", "--chart", "oc"]);
    assert_eq!(json.code, 1);
    assert!(
        json.stderr.contains("error: 1 failure (see the report)"),
        "{json:?}"
    );
    json.json();
}
