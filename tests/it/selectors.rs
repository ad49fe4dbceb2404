//! Version selectors (`semver`, `latest`, `prereleases`, `exclude`) resolved against a real
//! Helm repository, a real registry's tag list (paged through the test proxy) and a chart
//! directory.

use crate::common::*;
use lazyoci::testkit::proxy::{Fault, Proxy, Rule, headers};

fn chart_versions(report: &serde_json::Value, key: &str) -> Vec<String> {
    chart_of(report, key)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_string())
        .collect()
}

fn chart_of(report: &serde_json::Value, key: &str) -> serde_json::Value {
    report["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no chart {key} in {report:#}"))
        .clone()
}

fn statuses(report: &serde_json::Value, key: &str) -> Vec<(String, String)> {
    chart_of(report, key)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["chartStatus"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Add an entry whose version is not semver to index.yaml (some repositories have them).
fn add_non_semver_entry(repo: &helm_repo::HelmRepo) {
    let index = repo.dir().join("index.yaml");
    let text = std::fs::read_to_string(&index).unwrap();
    let text = text.replacen(
        "  web:\n",
        "  web:\n  - apiVersion: v2\n    name: web\n    version: nightly\n    urls: [web-nightly.tgz]\n",
        1,
    );
    std::fs::write(&index, text).unwrap();
}

#[tokio::test]
async fn a_repo_selector_follows_new_releases_and_mirrors_only_the_new_one() {
    let w = world().await;
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    publish_web(
        &w,
        &repo,
        &["1.0.0", "1.1.0-rc.1", "1.1.0", "2.0.0", "0.9.0"],
    );
    add_non_semver_entry(&repo);
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: {}\n    chart: web\n    semver: \">=1.0.0 <2.0.0\"\n    versions: [\"0.9.0\"]\n", w.dst.addr(), repo.url()));

    let dry = w.run(&["mirror", "--all", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("Versions: 0.9.0, 1.0.0, 1.1.0\n"),
        "the header lists what was resolved, in semver order, without the prerelease: {dry:?}"
    );
    assert!(w.dst_writes().is_empty(), "a dry run writes nothing");

    let first = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(first.code, 0, "{first:?}");
    let report = first.json();
    let c = chart_of(&report, "web");
    assert_eq!(c["selector"]["semver"], ">=1.0.0 <2.0.0");
    assert_eq!(c["selector"]["prereleases"], false);
    assert_eq!(strings(&c["resolvedVersions"]), ["0.9.0", "1.0.0", "1.1.0"]);
    assert!(
        strings(&c["warnings"])
            .iter()
            .any(|w| w.contains("not a version: nightly")),
        "{c:#}"
    );
    assert_eq!(chart_versions(&report, "web"), ["0.9.0", "1.0.0", "1.1.0"]);
    // Contract fields keep their names and meaning.
    assert_eq!(report["chartsPushed"], 3);

    // Upstream publishes 1.2.0 (and 2.1.0, outside the range).
    publish_web(&w, &repo, &["1.2.0", "2.1.0"]);
    let dry = w.run(&["mirror", "--all", "--dry-run", "-o", "json"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(
        statuses(&dry.json(), "web"),
        [
            ("0.9.0".into(), "skipped".into()),
            ("1.0.0".into(), "skipped".into()),
            ("1.1.0".into(), "skipped".into()),
            ("1.2.0".into(), "would-push".into()),
        ],
        "a dry run shows the version that appeared since the last run"
    );
    let second = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(
        statuses(&second.json(), "web"),
        [
            ("0.9.0".into(), "skipped".into()),
            ("1.0.0".into(), "skipped".into()),
            ("1.1.0".into(), "skipped".into()),
            ("1.2.0".into(), "pushed".into()),
        ]
    );
    assert_eq!(second.json()["chartsPushed"], 1);
    assert!(w.dst_digest("web", "1.2.0").await.is_some());
    assert!(w.dst_digest("web", "2.1.0").await.is_none());

    // `latest`, `prereleases` and `exclude` narrow the selection; --version still means
    // exactly those versions.
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: {}\n    chart: web\n    semver: \"^1 || ^2\"\n    prereleases: true\n    latest: 3\n    exclude: [\"2.0.0\", \"^2\\\\.1\\\\.\"]\n", w.dst.addr(), repo.url()));
    let run = w.run(&["mirror", "--all", "--dry-run", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        strings(&chart_of(&run.json(), "web")["resolvedVersions"]),
        ["1.1.0-rc.1", "1.1.0", "1.2.0"]
    );
    let run = w.run(&[
        "mirror",
        "--chart",
        "web",
        "--version",
        "2.0.0",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(chart_versions(&run.json(), "web"), ["2.0.0"]);
}

#[tokio::test]
async fn a_selector_that_matches_nothing_fails_its_upstream_and_names_the_newest() {
    let w = world().await;
    let served = w.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let repo = helm_repo::HelmRepo::serve(&served).await.unwrap();
    publish_web(&w, &repo, &["1.0.0", "1.4.0", "3.0.0-beta.1"]);
    w.demo_chart();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: {}\n    chart: web\n    semver: \"^3\"\n  demo:\n    type: local\n    path: ./charts/demo\n    chart: demo\n    semver: \"^1\"\n", w.dst.addr(), repo.url()));
    let run = w.run(&["mirror", "--all", "-o", "json", "--charts-only"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    let web = chart_of(&report, "web");
    let error = web["error"].as_str().unwrap();
    assert!(
        error.contains("no published version of web matches semver \"^3\"")
            && error.contains("newest published: 3.0.0-beta.1, 1.4.0, 1.0.0"),
        "{error}"
    );
    assert!(chart_versions(&report, "web").is_empty());
    // The other upstream still mirrors: a local chart selects its own version.
    assert_eq!(chart_versions(&report, "demo"), ["1.0.0"]);
    assert!(w.dst_digest("demo", "1.0.0").await.is_some());

    let text = w.run(&["mirror", "--all", "--charts-only"]);
    assert_eq!(text.code, 1, "{text:?}");
    assert!(
        text.stdout.contains("failed: no published version of web"),
        "{text:?}"
    );

    // A local chart whose version does not match is that upstream's failure too.
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  demo: {{type: local, path: ./charts/demo, chart: demo, semver: \">=2\"}}\n", w.dst.addr()));
    let run = w.run(&["mirror", "--all", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        chart_of(&run.json(), "demo")["error"]
            .as_str()
            .unwrap()
            .contains("newest published: 1.0.0"),
        "{run:?}"
    );
}

#[tokio::test]
async fn bad_selectors_exit_2_with_key_path_and_line_and_write_nothing() {
    let w = world().await;
    let cases = [
        (
            "semver: \">=1.0 <<2\"",
            "upstreams.web.semver",
            "not a version constraint",
        ),
        (
            "semver: \"^1\"\n    latest: 0",
            "upstreams.web.latest",
            "must be at least 1",
        ),
        (
            "semver: \"^1\"\n    exclude: [\"(unclosed\"]",
            "upstreams.web.exclude",
            "neither a version nor a regular expression",
        ),
        (
            "latest: 2\n    versions: [\"1.0.0\"]",
            "upstreams.web.latest",
            "add semver",
        ),
        ("prereleases: true", "upstreams.web.versions", "or semver"),
    ];
    for (extra, path, message) in cases {
        w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  web:\n    type: repo\n    repo: https://example.invalid\n    chart: web\n    {extra}\n", w.dst.addr()));
        let run = w.run(&["mirror", "--all"]);
        assert_eq!(run.code, 2, "{extra}: {run:?}");
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("{extra}: no {path} in {run:?}"));
        assert!(
            line.contains("line ") && line.contains(message),
            "{extra}: {line}"
        );
    }
    // The same checks hold in a ChartMirror manifest.
    w.config("cm.yaml", "apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {name: m}\nspec:\n  target: {url: r.example.com}\n  upstreams:\n    - name: web\n      type: repo\n      repo: https://example.invalid\n      chart: web\n      semver: \"~1\"\n      latest: 0\n");
    let run = w.run(&["mirror", "--all", "-c", "cm.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("line 12: spec.upstreams[0].latest: must be at least 1"),
        "{run:?}"
    );
    assert!(w.dst_writes().is_empty());
}

#[tokio::test]
async fn oci_tag_lists_are_followed_across_link_pages() {
    let w = world().await;
    for v in ["1.0.0", "1.1.0", "1.2.0+build.7", "2.0.0"] {
        let chart = charts::write_simple_chart(
            &w.path(&format!("c/{v}")),
            "paged",
            v,
            &w.set.redis.reference(w.src_host()),
        )
        .unwrap();
        push_oci_chart(&w, &chart, &format!("paged-{v}.tgz"));
    }
    let mut tags = oci::list_tags(w.src_host(), "charts/paged").await.unwrap();
    tags.sort();
    assert_eq!(
        tags,
        ["1.0.0", "1.1.0", "1.2.0_build.7", "2.0.0"],
        "helm writes + as _"
    );
    // The test registry ignores n/last, so the proxy serves the list in two pages.
    let page = |tags: &[&str]| {
        serde_json::to_vec(&serde_json::json!({"name": "charts/paged", "tags": tags})).unwrap()
    };
    let proxy = Proxy::start(
        w.src_host(),
        vec![
            Rule::fault(
                "GET",
                "/tags/list?last=",
                Fault::Serve(
                    200,
                    headers(&[("content-type", "application/json")]),
                    page(&["1.2.0_build.7", "2.0.0"]),
                ),
                10,
            ),
            Rule::fault(
                "GET",
                "/tags/list",
                Fault::Serve(
                    200,
                    headers(&[
                        ("content-type", "application/json"),
                        (
                            "link",
                            "</v2/charts/paged/tags/list?last=1.1.0&n=2>; rel=\"next\"",
                        ),
                    ]),
                    page(&["1.0.0", "1.1.0"]),
                ),
                1,
            ),
        ],
    )
    .unwrap();
    w.config("mirror.yaml", &format!("target: {{url: {}, insecure: true}}\nupstreams:\n  paged: {{type: oci, registry: \"oci://{}/charts\", chart: paged, semver: \">=1.1.0 <2\"}}\n", w.dst.addr(), proxy.addr()));
    let run = w.run_env(
        &["mirror", "--all", "-o", "json", "--charts-only"],
        &[(
            "LAZYOCI_INSECURE_REGISTRIES",
            &format!("{},{}", w.src_host(), proxy.addr()),
        )],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        strings(&chart_of(&run.json(), "paged")["resolvedVersions"]),
        ["1.1.0", "1.2.0+build.7"],
        "both pages were read: {:?}",
        proxy
            .records()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
    assert!(
        proxy
            .records()
            .iter()
            .any(|r| r.path.contains("tags/list?last=1.1.0")),
        "the Link page was followed"
    );
    assert_eq!(
        w.dst_digest("paged", "1.2.0_build.7").await,
        w.src_digest("charts/paged", "1.2.0_build.7").await
    );
}
