//! `sourceMirrors` / `mirrorsOnly`: images read through registry mirrors, each with its
//! own credentials, the original host never contacted when mirrors only are allowed, and
//! the report naming the host that served each image.

use lazyoci::testkit::proxy::Proxy;

use crate::common::*;

/// `127.0.0.1:PORT` where nothing listens.
fn dead_host() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The single image of `report` as (source, target, status, servedBy, error).
fn only_image(report: &serde_json::Value) -> [String; 5] {
    let img = &report["charts"][0]["versions"][0]["images"][0];
    ["source", "target", "status", "servedBy", "error"]
        .map(|k| img[k].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn images_come_through_mirrors_and_fall_back_only_when_allowed() {
    let w = world().await;
    // The mirror wants basic auth and keeps images under remote/.
    let (mirror, _) = private_registry().await;
    let at_mirror = images::image_with_auth(
        mirror.addr(),
        "remote/private/app",
        "1.0",
        ("alice", "s3cret"),
    )
    .await
    .unwrap();
    docker_login(&w, mirror.addr(), "alice", "s3cret");
    let original = images::image(
        w.src_host(),
        "private/app",
        "1.0",
        &[7],
        3000,
        false,
        "amd64",
    )
    .await
    .unwrap();
    let proxy = Proxy::start(w.src_host(), vec![]).unwrap();
    let dead = dead_host();
    let insecure = [w.src_host(), mirror.addr(), proxy.addr(), &dead].join(",");
    let mirror_path = format!("{}/remote", mirror.addr());
    let run = |name: &str, image_host: &str, mirrors: &str, only: bool| {
        image_chart(&w, name, &[format!("{image_host}/private/app:1.0")]);
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{name}, insecure: true}}\nsourceMirrors:\n  {image_host}: [{mirrors}]\nmirrorsOnly: {only}\nupstreams:\n  {name}: {{type: local, path: charts/{name}, chart: {name}, versions: [\"1.0.0\"]}}\n",
                w.dst.addr()
            ),
        );
        w.run_env(
            &["mirror", "--all", "-o", "json"],
            &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
        )
    };

    // The image names a host that is not running; the mirror serves it, with its own
    // credentials, and the target name comes from the original reference.
    let r = run("m1", &dead, &mirror_path, false);
    assert_eq!(r.code, 0, "{r:?}");
    let [source, target, status, served, _] = only_image(&r.json());
    assert_eq!(source, format!("{dead}/private/app:1.0"));
    assert_eq!(target, format!("{}/m1/private/app:1.0", w.dst.addr()));
    assert_eq!(
        (status.as_str(), served.as_str()),
        ("copied", mirror.addr())
    );
    assert_eq!(
        w.dst_digest("m1/private/app", "1.0").await,
        Some(at_mirror.digest.clone())
    );

    // mirrorsOnly: the original (behind a recording proxy) is never contacted.
    let r = run("m2", proxy.addr(), &mirror_path, true);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(only_image(&r.json())[3], mirror.addr());
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());

    // The mirror down, mirrorsOnly false: the original serves it (without the mirror's
    // credentials).
    let r = run("m3", proxy.addr(), &dead, false);
    assert_eq!(r.code, 0, "{r:?}");
    let [_, _, status, served, _] = only_image(&r.json());
    assert_eq!((status.as_str(), served.as_str()), ("copied", proxy.addr()));
    assert_eq!(
        w.dst_digest("m3/private/app", "1.0").await,
        Some(original.digest.clone())
    );
    let seen = proxy.records();
    assert!(
        !seen.is_empty() && seen.iter().all(|r| r.authorization.is_none()),
        "{seen:?}"
    );

    // The mirror down, mirrorsOnly true: the image fails, saying why; the original is not
    // asked.
    let before = proxy.records().len();
    let r = run("m4", proxy.addr(), &dead, true);
    assert_eq!(r.code, 1, "{r:?}");
    let [_, _, status, _, error] = only_image(&r.json());
    assert_eq!(status, "failed");
    assert!(
        error.contains(&format!("no mirror of {} served it", proxy.addr()))
            && error.contains("mirrorsOnly: true forbids"),
        "{error}"
    );
    assert_eq!(proxy.records().len(), before);

    // The text report says which host served an image; kebab-case keys work too.
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/m5, insecure: true}}\nsource-mirrors:\n  {dead}: [{mirror_path}]\nmirrors-only: true\nupstreams:\n  m1: {{type: local, path: charts/m1, chart: m1, versions: [\"1.0.0\"]}}\n",
            w.dst.addr()
        ),
    );
    let r = w.run_env(
        &["mirror", "--all"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "{dead}/private/app:1.0 → OK (via {})",
            mirror.addr()
        )),
        "{r:?}"
    );

    // A mirror that is not a registry host is a config error.
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/m6, insecure: true}}\nsourceMirrors:\n  docker.io: [\"https://mirror.example\"]\nupstreams:\n  m1: {{type: local, path: charts/m1, chart: m1, versions: [\"1.0.0\"]}}\n",
            w.dst.addr()
        ),
    );
    let r = w.run(&["mirror", "--all"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("sourceMirrors"), "{r:?}");
}

/// The chart entry of the single version of `report` as (status, servedBy, error).
fn only_chart(report: &serde_json::Value) -> [String; 3] {
    let v = &report["charts"][0]["versions"][0];
    ["chartStatus", "servedBy", "chartError"].map(|k| v[k].as_str().unwrap_or_default().to_string())
}

/// ocichart 2.3.4 at a new mirror registry under `remote/charts` and at the source's
/// `charts`, a recording proxy in front of the source, a dead host, and the insecure list
/// naming all of them.
struct MirroredChart {
    mirror: lazyoci::testkit::registry::Registry,
    proxy: Proxy,
    dead: String,
    insecure: String,
}

async fn mirrored_ocichart(w: &World) -> MirroredChart {
    let mirror = lazyoci::testkit::registry::Registry::start().await.unwrap();
    let chart = ocichart(w);
    push_oci_chart_to(
        w,
        &chart,
        OCICHART_ARCHIVE,
        &format!("{}/remote/charts", mirror.addr()),
    );
    push_oci_chart(w, &chart, OCICHART_ARCHIVE);
    let proxy = Proxy::start(w.src_host(), vec![]).unwrap();
    let dead = dead_host();
    let insecure = [w.src_host(), mirror.addr(), proxy.addr(), &dead].join(",");
    MirroredChart {
        mirror,
        proxy,
        dead,
        insecure,
    }
}

#[tokio::test]
async fn oci_charts_and_their_tag_lists_come_through_mirrors() {
    let w = world().await;
    // The mirror holds the chart under remote/charts; the original host holds it too,
    // behind a recording proxy.
    let MirroredChart {
        mirror,
        proxy,
        dead,
        insecure,
    } = mirrored_ocichart(&w).await;
    // What the mirror holds (helm packages the two pushes at different times, so the
    // original's copy may differ).
    let digest = oci::manifest_digest(mirror.addr(), "remote/charts/ocichart", "2.3.4")
        .await
        .unwrap()
        .unwrap();
    let mirror_path = format!("{}/remote", mirror.addr());
    // `versions` pins the version; `semver` makes the run read the tag list first.
    let run = |name: &str,
               chart_host: &str,
               mirrors: &str,
               only: bool,
               pick: &str,
               out: &[&str]| {
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{name}, insecure: true}}\nsourceMirrors:\n  {chart_host}: [{mirrors}]\nmirrorsOnly: {only}\nupstreams:\n  oc: {{type: oci, registry: \"oci://{chart_host}/charts\", chart: ocichart, {pick}}}\n",
                w.dst.addr()
            ),
        );
        let mut args = vec!["mirror", "--all", "--charts-only"];
        args.extend_from_slice(out);
        w.run_env(&args, &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)])
    };
    let json = ["-o", "json"];

    // The original host is not running: the mirror serves the chart, byte for byte, and
    // its tag list answers the selector.
    let r = run(
        "c1",
        &dead,
        &mirror_path,
        false,
        "semver: \"^2.0.0\"",
        &json,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(
        report["charts"][0]["resolvedVersions"],
        serde_json::json!(["2.3.4"])
    );
    let [status, served, _] = only_chart(&report);
    assert_eq!(
        (status.as_str(), served.as_str()),
        ("pushed", mirror.addr())
    );
    assert_eq!(
        w.dst_digest("c1/ocichart", "2.3.4").await,
        Some(digest.clone())
    );

    // mirrorsOnly: the original, behind the proxy, sees no request (tag list or manifest).
    let r = run(
        "c2",
        proxy.addr(),
        &mirror_path,
        true,
        "semver: \"^2.0.0\"",
        &json,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(only_chart(&r.json())[1], mirror.addr());
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());

    // The text report says which host served the chart.
    let r = run(
        "c3",
        proxy.addr(),
        &mirror_path,
        true,
        "versions: [\"2.3.4\"]",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("Chart:")
                && l.ends_with(&format!("OK (via {})", mirror.addr()))),
        "{r:?}"
    );
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());

    // The mirror down, mirrorsOnly false: the original serves the tag list and the chart.
    let r = run(
        "c4",
        proxy.addr(),
        &dead,
        false,
        "semver: \"^2.0.0\"",
        &json,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let [status, served, _] = only_chart(&r.json());
    assert_eq!((status.as_str(), served.as_str()), ("pushed", proxy.addr()));
    let seen: Vec<String> = proxy.records().iter().map(|r| r.path.clone()).collect();
    assert!(
        seen.iter()
            .any(|p| p.contains("/charts/ocichart/tags/list"))
            && seen
                .iter()
                .any(|p| p.contains("/charts/ocichart/manifests/2.3.4")),
        "{seen:?}"
    );

    // The mirror down, mirrorsOnly true: the selector fails naming the mirror's answer,
    // and the original is not asked.
    let before = proxy.records().len();
    let r = run("c5", proxy.addr(), &dead, true, "semver: \"^2.0.0\"", &json);
    assert_eq!(r.code, 1, "{r:?}");
    let error = r.json()["charts"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains(&format!("no mirror of {} served it", proxy.addr()))
            && error.contains(&dead),
        "{error}"
    );
    let r = run(
        "c6",
        proxy.addr(),
        &dead,
        true,
        "versions: [\"2.3.4\"]",
        &json,
    );
    assert_eq!(r.code, 1, "{r:?}");
    let [status, _, error] = only_chart(&r.json());
    assert_eq!(status, "failed");
    assert!(error.contains("mirrorsOnly: true forbids"), "{error}");
    assert_eq!(proxy.records().len(), before);
}

/// The images of the single version of `report` as (servedBy, error).
fn served_and_errors(report: &serde_json::Value) -> Vec<(String, String)> {
    report["charts"][0]["versions"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or_default().to_string();
            (s("servedBy"), s("error"))
        })
        .collect()
}

#[tokio::test]
async fn a_mirror_that_is_down_is_tried_once_per_run_and_a_404_moves_on_at_once() {
    let w = world().await;
    let refs: Vec<String> = [&w.set.nginx, &w.set.redis, &w.set.job]
        .iter()
        .map(|s| s.reference(w.src_host()))
        .collect();
    image_chart(&w, "down", &refs);
    // The hang-up port takes each connection and closes it: the client's TLS handshake
    // (it is not an insecure registry) fails, a connect error that can be counted. The
    // dead port refuses connections.
    let hangup = lazyoci::testkit::hangup::Hangup::start().unwrap();
    let dead = dead_host();
    // A mirror that is up but has none of the images, behind a recording proxy.
    let empty = lazyoci::testkit::registry::Registry::start().await.unwrap();
    let empty_proxy = Proxy::start(empty.addr(), vec![]).unwrap();
    let insecure = [w.src_host(), &dead, empty_proxy.addr()].join(",");
    // One image at a time, so that which image meets a mirror first is settled.
    let run = |name: &str, mirrors: &str, only: bool| {
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{name}, insecure: true}}\nsourceMirrors:\n  {}: [{mirrors}]\nmirrorsOnly: {only}\nupstreams:\n  down: {{type: local, path: charts/down, chart: down, versions: [\"1.0.0\"]}}\n",
                w.dst.addr(),
                w.src_host()
            ),
        );
        w.run_env(
            &["mirror", "--all", "-o", "json", "--concurrency", "1"],
            &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
        )
    };

    // Both mirrors down: the first image costs each one connection attempt (no retries),
    // the later images skip them, and the original serves all three.
    let r = run("d1", &format!("{}, {dead}", hangup.addr()), false);
    assert_eq!(r.code, 0, "{r:?}");
    let images = served_and_errors(&r.json());
    assert_eq!(images.len(), 3, "{r:?}");
    assert!(images.iter().all(|(s, _)| s == w.src_host()), "{images:?}");
    assert_eq!(hangup.connections(), 1, "{r:?}");
    // Said once per mirror host.
    let warned = |host: &str| {
        r.stderr
            .matches(&format!("mirror {host} cannot be reached"))
            .count()
    };
    assert_eq!((warned(hangup.addr()), warned(&dead)), (1, 1), "{r:?}");
    assert!(
        r.stderr.contains("skipped for the rest of this run"),
        "{r:?}"
    );

    // mirrorsOnly with the mirror down: every image fails; the first says why, the later
    // ones that the mirror was found down earlier in the run.
    let r = run("d2", hangup.addr(), true);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(hangup.connections(), 2, "{r:?}");
    let errors: Vec<String> = served_and_errors(&r.json())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains(&format!("cannot reach {}", hangup.addr())))
            .count(),
        1,
        "{errors:?}"
    );
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("could not be reached earlier in this run"))
            .count(),
        2,
        "{errors:?}"
    );

    // A mirror without the images answers 404: one HEAD per image, then the original.
    let r = run("d3", empty_proxy.addr(), false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        served_and_errors(&r.json())
            .iter()
            .all(|(s, _)| s == w.src_host()),
        "{r:?}"
    );
    let asked: Vec<String> = empty_proxy
        .records()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked.iter().all(|a| a.starts_with("HEAD ")), "{asked:?}");
}

#[tokio::test]
async fn sources_that_share_a_target_are_compared_through_the_mirrors() {
    let w = world().await;
    // The same image (same seed, same digest) on the mirror, under remote/, and on the
    // world's source; the mirrored original host is a recording proxy.
    let mirror = lazyoci::testkit::registry::Registry::start().await.unwrap();
    let at_source = images::image(
        w.src_host(),
        "shared/app",
        "1.0",
        &[41],
        2048,
        false,
        "amd64",
    )
    .await
    .unwrap();
    // skopeo, the interoperability oracle, puts the same bytes on the mirror.
    stdout_of(std::process::Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/shared/app:1.0", w.src_host()),
        &format!("docker://{}/remote/shared/app:1.0", mirror.addr()),
    ]));
    assert_eq!(
        oci::manifest_digest(mirror.addr(), "remote/shared/app", "1.0")
            .await
            .unwrap(),
        Some(at_source.digest.clone())
    );
    let proxy = Proxy::start(w.src_host(), vec![]).unwrap();
    // Both names land on <target>/shared/app:1.0.
    image_chart(
        &w,
        "shared",
        &[
            format!("{}/shared/app:1.0", proxy.addr()),
            format!("{}/shared/app:1.0", w.src_host()),
        ],
    );
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/s, insecure: true}}\nsourceMirrors:\n  {}: [{}/remote]\nmirrorsOnly: true\nupstreams:\n  shared: {{type: local, path: charts/shared, chart: shared, versions: [\"1.0.0\"]}}\n",
            w.dst.addr(),
            proxy.addr(),
            mirror.addr()
        ),
    );
    let insecure = [w.src_host(), mirror.addr(), proxy.addr()].join(",");
    let r = w.run_env(
        &["mirror", "--all", "-o", "json"],
        &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        w.dst_digest("s/shared/app", "1.0").await,
        Some(at_source.digest.clone())
    );
    // The collision check read the mirror, not the original: mirrorsOnly holds.
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());
}

#[tokio::test]
async fn chart_dependencies_on_oci_come_through_mirrors() {
    let w = world().await;
    // The dependency, ocichart (its image is redis), is at the mirror under remote/charts
    // and at the source behind a recording proxy.
    let MirroredChart {
        mirror,
        proxy,
        dead,
        insecure,
    } = mirrored_ocichart(&w).await;
    let redis = w.set.redis.reference(w.src_host());
    // A local chart whose dependency on `oci://<host>/charts` is not vendored: the run
    // resolves its range from the tag list and fetches it to render.
    let run = |name: &str, host: &str, mirrors: Option<&str>, only: bool| {
        let chart = charts::write_simple_chart(
            &w.path(&format!("apps/{name}")),
            "app",
            "1.0.0",
            &w.set.nginx.reference(w.src_host()),
        )
        .unwrap();
        let chart_yaml = chart.join("Chart.yaml");
        let mut text = std::fs::read_to_string(&chart_yaml).unwrap();
        text.push_str(&format!(
            "dependencies:\n  - name: ocichart\n    version: \"^2.0.0\"\n    repository: oci://{host}/charts\n"
        ));
        std::fs::write(&chart_yaml, text).unwrap();
        let mirrors = mirrors
            .map(|m| format!("sourceMirrors:\n  {host}: [{m}]\nmirrorsOnly: {only}\n"))
            .unwrap_or_default();
        w.config(
            "mirror.yaml",
            &format!(
                "target: {{url: {}/{name}, insecure: true}}\n{mirrors}upstreams:\n  app: {{type: local, path: \"{}\", chart: app, versions: [\"1.0.0\"]}}\n",
                w.dst.addr(),
                chart.display()
            ),
        );
        w.run_env(
            &["-o", "json", "mirror", "--all"],
            &[("LAZYOCI_INSECURE_REGISTRIES", &insecure)],
        )
    };

    // The dependency's host is not running and has no mirror: it cannot be rendered.
    let r = run("d0", &dead, None, false);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("dependency ocichart ^2.0.0 of app"),
        "{r:?}"
    );

    // Not running, but mirrored: the mirror lists the tags and serves the chart, so the
    // dependency's image is found and copied.
    let r = run(
        "d1",
        &dead,
        Some(&format!("{}/remote", mirror.addr())),
        false,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(sources_of(&r.json()).contains(&redis), "{:?}", r.json());
    assert_eq!(
        w.dst_digest("d1/library/redis", &w.set.redis.tag).await,
        Some(w.set.redis.digest.clone())
    );

    // mirrorsOnly: the original, behind the proxy, is never asked.
    let r = run(
        "d2",
        proxy.addr(),
        Some(&format!("{}/remote", mirror.addr())),
        true,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(sources_of(&r.json()).contains(&redis), "{:?}", r.json());
    assert!(proxy.records().is_empty(), "{:?}", proxy.records());
}
