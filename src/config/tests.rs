use super::*;

fn problems(text: &str) -> Vec<Problem> {
    parse(text.as_bytes(), Path::new("/nonexistent")).unwrap_err()
}

fn messages(text: &str) -> Vec<String> {
    problems(text).iter().map(ToString::to_string).collect()
}

const GOOD: &str = r#"
target:
  url: registry.example.com/ns
  insecure: true
  charts-prefix: charts
upstreams:
  vault:
    type: repo
    repo: https://helm.releases.hashicorp.com
    chart: vault
    versions: ["0.28.0", 0.29.0]
  keycloak:
    type: oci
    registry: oci://registry-1.docker.io/bitnamicharts
    chart: keycloak
    versions:
      - "24.0.1"
"#;

#[test]
fn reads_the_contract_example_into_the_shared_spec() {
    let (spec, form) = parse(GOOD.as_bytes(), Path::new("/")).unwrap();
    assert_eq!(form, ConfigForm::MirrorYaml);
    assert_eq!(spec.target.url, "registry.example.com/ns");
    assert!(spec.target.insecure);
    assert_eq!(spec.target.charts_prefix.as_deref(), Some("charts"));
    assert_eq!(spec.upstreams.len(), 2);
    assert_eq!(spec.upstreams[0].name, "vault");
    assert_eq!(spec.upstreams[0].versions, vec!["0.28.0", "0.29.0"]);
    assert_eq!(spec.upstreams[1].source_type, SourceType::Oci);
}

#[test]
fn reports_every_problem_at_once_with_key_paths_and_lines() {
    let text = "target:\n  url: reg.example.com\n  chartsPrefix: x\nupstreams:\n  vault:\n    type: repo\n    chart: vault\n    versions: []\n  kc:\n    type: oci\n    registry: registry-1.docker.io/x\n    chart: kc\n    versions: [1.0.0]\n";
    let got = messages(text);
    assert!(
        got.contains(
            &"line 3: target.chartsPrefix: unknown key; did you mean `charts-prefix`?".to_string()
        ),
        "{got:#?}"
    );
    // Structural problems stop before semantic ones; fix the key and the rest appear together.
    let got = messages(&text.replace("chartsPrefix", "charts-prefix"));
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with("line 6: upstreams.vault.repo: required for type=repo"),
        "{got:#?}"
    );
    assert!(
        got[1].contains("upstreams.vault.versions: must list at least one version"),
        "{got:#?}"
    );
    assert!(
        got[2].contains("upstreams.kc.registry") && got[2].contains("oci://"),
        "{got:#?}"
    );
}

#[test]
fn wrong_types_name_what_was_expected() {
    let got = messages("target:\n  url: [a]\n  insecure: yes\nupstreams: {}\n");
    assert!(
        got.iter()
            .any(|m| m == "line 2: target.url: expected a string, found list"),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|m| m.contains("target.insecure: expected true or false, found string \"yes\"")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|m| m.contains("upstreams: must define at least one upstream")),
        "{got:#?}"
    );
}

#[test]
fn duplicate_keys_empty_and_non_utf8_files_are_refused() {
    assert!(
        messages("target: {url: a.io}\ntarget: {url: b.io}\n")[0]
            .contains("duplicate key \"target\"")
    );
    assert!(messages("")[0].contains("empty"));
    assert!(messages("# only a comment\n")[0].contains("empty"));
    let bad = parse(b"target:\n  url: \xff\n", Path::new("/")).unwrap_err();
    assert!(bad[0].message.contains("not UTF-8"), "{bad:?}");
}

#[test]
fn local_paths_must_exist_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("charts/app")).unwrap();
    std::fs::write(dir.path().join("charts/app/Chart.yaml"), "name: app\n").unwrap();
    let text = "target: {url: r.io}\nupstreams:\n  app: {type: local, path: ./charts/app, chart: app, versions: [1.0.0]}\n  gone: {type: local, path: ./charts/gone, chart: gone, versions: [1.0.0]}\n";
    let got = parse(text.as_bytes(), dir.path()).unwrap_err();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "upstreams.gone.path");
    let ok = parse(&text.as_bytes()[..text.find("  gone").unwrap()], dir.path())
        .unwrap()
        .0;
    assert_eq!(
        ok.upstreams[0].path.as_deref(),
        Some(dir.path().join("charts/app").to_str().unwrap())
    );
}

#[test]
fn reads_a_chartmirror_manifest_with_camel_case_and_a_list() {
    let text = r#"
apiVersion: lazyoci.io/v1alpha1
kind: ChartMirror
metadata: {name: m}
spec:
  target: {url: "oci://reg.example.com/ns", chartsPrefix: charts}
  interval: 30m
  upstreams:
    - name: vault
      type: repo
      repo: https://helm.releases.hashicorp.com
      chart: vault
      versions: ["0.28.0"]
"#;
    let (spec, form) = parse(text.as_bytes(), Path::new("/")).unwrap();
    assert_eq!(form, ConfigForm::ChartMirror);
    assert_eq!(spec.interval.as_deref(), Some("30m"));
    assert_eq!(spec.upstreams[0].name, "vault");
    let bad = messages(
        &text
            .replace("type: repo", "type: git")
            .replace("chartsPrefix", "charts-prefix"),
    );
    assert!(
        bad.iter()
            .any(|m| m.contains("spec.upstreams[0].type: expected one of repo, oci, local")),
        "{bad:#?}"
    );
    assert!(
        bad.iter()
            .any(|m| m
                .contains("spec.target.charts-prefix: unknown key; did you mean `chartsPrefix`?")),
        "{bad:#?}"
    );
}

#[test]
fn hostile_corpus_regressions() {
    // A number is a valid-looking host name to the URL checks; as a target it is a mistake.
    let got = messages(
        "target:\n  url: 5000\nupstreams:\n  v: {type: repo, repo: \"https://c.example.com\", chart: v, versions: [\"1\"]}\n",
    );
    assert_eq!(
        got,
        vec![
            "line 2: target.url: expected a registry host and optional path such as registry.example.com/ns, found number 5000"
        ]
    );
    // WHATWG URL parsing reads `https:///charts` as host `charts`.
    let got = messages(
        "target:\n  url: r.example.com\nupstreams:\n  v: {type: repo, repo: \"https:///charts\", chart: v, versions: [\"1\"]}\n",
    );
    assert!(
        got[0].contains("upstreams.v.repo") && got[0].contains("has no host"),
        "{got:#?}"
    );
    // Structural problems come out in line order too.
    let got = messages("targets: {url: r.example.com}\nupstreams: {}\n");
    let lines: Vec<usize> = problems("upstreams: {}\ntargets: {url: r.example.com}\n")
        .iter()
        .map(|p| p.line)
        .collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?} {got:#?}");
    // Duplicate keys carry their key path; non-UTF-8 carries its line.
    let got = messages("target: {url: r.example.com}\nupstreams:\n  a: {}\n  a: {}\n");
    assert!(
        got[0].starts_with("line 4: upstreams.a: duplicate key"),
        "{got:#?}"
    );
    let p = parse(b"a: 1\nb: caf\xe9\n", Path::new("/")).unwrap_err();
    assert_eq!(p[0].line, 2);
    // A huge value is not printed whole.
    let long = "a".repeat(10_000);
    let got = messages(&format!(
        "target: {{url: \"{long}/X\"}}\nupstreams:\n  v: {{type: repo, repo: \"https://c.example.com\", chart: v, versions: [\"1\"]}}\n"
    ));
    assert!(
        got[0].len() < 1200 && got[0].ends_with("(cut)"),
        "{}",
        got[0].len()
    );
}

#[test]
fn the_cli_names_each_secret_reference_it_ignores_and_what_to_use_instead() {
    let text = r#"
apiVersion: lazyoci.io/v1alpha1
kind: ChartMirror
metadata: {name: m}
spec:
  target: {url: registry.example.com/ns}
  upstreams:
    - name: internal
      type: repo
      repo: https://charts.corp.example/stable
      chart: app
      versions: ["1.4.2"]
      secretRef: {name: internal-auth}
      certSecretRef: {name: internal-tls}
    - name: plain
      type: repo
      repo: https://charts.example/stable
      chart: other
      versions: ["1.0.0"]
"#;
    let (spec, form) = parse(text.as_bytes(), Path::new("/nonexistent")).unwrap();
    assert_eq!(form, ConfigForm::ChartMirror);
    let warnings = ignored_by_cli(&spec);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "spec.upstreams[0].secretRef (internal) (Secret \"internal-auth\") is ignored"
        ) && warnings[0].contains("--repository-config")
            && warnings[0].contains("`auth:`"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("spec.upstreams[0].certSecretRef (internal)")
            && warnings[1].contains("caFile/certFile/keyFile"),
        "{warnings:?}"
    );
    // mirror.yaml cannot carry Secret references at all.
    let (spec, _) = parse(GOOD.as_bytes(), Path::new("/nonexistent")).unwrap();
    assert!(ignored_by_cli(&spec).is_empty());
}
