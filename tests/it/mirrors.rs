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
