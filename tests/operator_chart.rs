//! The operator's Helm chart (`charts/lazyoci-operator`), checked with the real helm: it lints,
//! renders what the operator needs (args, probes, hardening, least-privilege RBAC) for the
//! default values (plus the placeholder image of ci/deploy-values.yaml) and for a
//! namespace-scoped single-replica install, and `deploy/operator.yaml`
//! is exactly the default render.
//!
//! helm: `$LAZYOCI_HELM`, else `/var/tmp/lazyoci-tools/bin/helm` (scripts/install-test-deps.sh),
//! else `helm` on PATH. helm's cache/config/data homes are a temporary directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NAMESPACE: &str = "lazyoci-system";
/// The values deploy/operator.yaml is rendered with: a placeholder image (the chart has no
/// default image, because no public one exists).
const DEPLOY_VALUES: &str = "charts/lazyoci-operator/ci/deploy-values.yaml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/lazyoci-operator")
}

fn helm_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LAZYOCI_HELM").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let tools = Path::new("/var/tmp/lazyoci-tools/bin/helm");
    if tools.is_file() {
        return tools.to_path_buf();
    }
    PathBuf::from("helm")
}

/// Runs helm with `args` in a scratch HELM_*_HOME.
fn helm_output(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(helm_bin())
        .args(args)
        .current_dir(root())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", helm_bin().display()))
}

/// helm's stderr; panics if `args` succeed.
fn helm_fails(args: &[&str]) -> String {
    let out = helm_output(args);
    assert!(!out.status.success(), "helm {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs helm with `args`; returns stdout, panics with stderr on failure.
fn helm(args: &[&str]) -> String {
    let out = helm_output(args);
    assert!(
        out.status.success(),
        "helm {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` as deploy/ is generated, plus `extra` args.
fn render_text(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "lazyoci-operator",
        "charts/lazyoci-operator",
        "--namespace",
        NAMESPACE,
        "-f",
        DEPLOY_VALUES,
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

fn parse_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("rendered manifests parse as YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn render(extra: &[&str]) -> Vec<Value> {
    parse_docs(&render_text(extra))
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            d["kind"]
                .as_str()
                .expect("every object has a kind")
                .to_string()
        })
        .collect()
}

fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all_of(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// A role's rules as (apiGroup, resource, sorted verbs), one entry per group × resource.
fn rules(role: &Value) -> BTreeSet<(String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "{rule}"
        );
        let mut verbs = strings(&rule["verbs"]);
        verbs.sort();
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let fresh = out.insert((group.clone(), resource, verbs.clone()));
                assert!(fresh, "duplicate rule {rule}");
            }
        }
    }
    out
}

fn expect_rules(list: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, Vec<String>)> {
    list.iter()
        .map(|(g, r, v)| {
            let mut verbs: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            verbs.sort();
            (g.to_string(), r.to_string(), verbs)
        })
        .collect()
}

/// What the operator needs on ChartMirrors, Events and Secrets; nothing more.
fn operator_rules() -> BTreeSet<(String, String, Vec<String>)> {
    expect_rules(&[
        ("lazyoci.io", "chartmirrors", &["get", "list", "watch"]),
        (
            "lazyoci.io",
            "chartmirrors/status",
            &["get", "patch", "update"],
        ),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "events", &["create", "patch"]),
        ("", "secrets", &["get"]),
        ("", "configmaps", &["create", "get", "update"]),
    ])
}

fn lease_rules() -> BTreeSet<(String, String, Vec<String>)> {
    expect_rules(&[(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update", "patch"],
    )])
}

fn container(docs: &[Value]) -> &Value {
    let containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn args(docs: &[Value]) -> Vec<String> {
    strings(&container(docs)["args"])
}

fn env_value<'a>(docs: &'a [Value], name: &str) -> Option<&'a Value> {
    container(docs)["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
}

/// The role bound to the operator's ServiceAccount in `binding` is `role`.
fn assert_binds(binding: &Value, role: &Value, sa: &Value) {
    assert_eq!(binding["roleRef"]["kind"], role["kind"], "{binding}");
    assert_eq!(
        binding["roleRef"]["name"], role["metadata"]["name"],
        "{binding}"
    );
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "{binding}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], sa["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"], NAMESPACE);
}

fn assert_no_wildcards(docs: &[Value]) {
    for role in docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
    {
        let text = role["rules"].to_string();
        assert!(
            !text.contains('*'),
            "wildcard in {}: {text}",
            role["metadata"]["name"]
        );
    }
}

fn assert_hardened(docs: &[Value]) {
    let deploy = one(docs, "Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 60);
    let c = container(docs);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc.get("privileged").is_none_or(|p| p == false));

    // Probes on the metrics port.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], c["ports"][0]["name"]);

    // Writable scratch space on emptyDirs, since the root filesystem is read-only.
    let mounts: BTreeSet<(String, String)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap().to_string(),
                m["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for path in ["/var/cache/lazyoci", "/tmp"] {
        let (_, name) = mounts
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name.as_str())
            .expect("mounted volume exists");
        assert!(volume.get("emptyDir").is_some(), "{volume}");
    }
    assert!(args(docs).contains(&"--artifact-dir=/var/cache/lazyoci".to_string()));

    // Environment the operator reads.
    assert_eq!(
        env_value(docs, "POD_NAMESPACE").expect("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env_value(docs, "LAZYOCI_HELM").expect("LAZYOCI_HELM")["value"],
        "/usr/local/bin/helm"
    );
    assert_eq!(
        env_value(docs, "LAZYOCI_LOG").expect("LAZYOCI_LOG")["value"],
        "info"
    );
    assert_eq!(
        env_value(docs, "LAZYOCI_LOG_FORMAT").expect("LAZYOCI_LOG_FORMAT")["value"],
        "json"
    );
}

/// Every namespaced object carries the release namespace (deploy/ is applied without -n).
fn assert_namespaced(docs: &[Value], cluster_kinds: &[&str]) {
    for d in docs {
        let kind = d["kind"].as_str().unwrap();
        if cluster_kinds.contains(&kind) {
            assert!(
                d["metadata"].get("namespace").is_none(),
                "{kind} has a namespace"
            );
        } else {
            assert_eq!(
                d["metadata"]["namespace"], NAMESPACE,
                "{kind} {}",
                d["metadata"]["name"]
            );
        }
    }
}

#[test]
fn chart_lints_strictly_with_default_and_namespace_values() {
    let namespaced =
        "serviceMonitor.enabled=true,rbac.scope=namespace,leaderElection.enabled=false,replicas=1";
    for extra in [&[][..], &["--strict"], &["--strict", "--set", namespaced]] {
        let mut args = vec!["lint", "charts/lazyoci-operator", "-f", DEPLOY_VALUES];
        args.extend_from_slice(extra);
        helm(&args);
    }
}

#[test]
fn default_render_is_a_cluster_wide_ha_operator() {
    let docs = render(&[]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
    );
    assert!(all_of(&docs, "ServiceMonitor").is_empty());
    assert_namespaced(&docs, &["ClusterRole", "ClusterRoleBinding"]);
    assert_no_wildcards(&docs);
    assert_hardened(&docs);

    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        container(&docs)["image"],
        format!(
            "build-and-push-the-image.invalid/lazyoci:{}",
            chart["appVersion"].as_str().unwrap()
        ),
        "image tag defaults to appVersion"
    );

    let a = args(&docs);
    assert_eq!(a[0], "operator", "{a:?}");
    for want in [
        "--metrics-addr=0.0.0.0:8080",
        "--leader-election",
        "--lease-name=lazyoci-operator",
        "--lease-namespace=lazyoci-system",
        "--concurrency=4",
    ] {
        assert!(a.contains(&want.to_string()), "{want} missing from {a:?}");
    }
    assert!(
        !a.iter().any(|x| x.starts_with("--watch-namespace")),
        "all namespaces by default: {a:?}"
    );

    let sa = one(&docs, "ServiceAccount");
    let cluster_role = one(&docs, "ClusterRole");
    assert_eq!(rules(cluster_role), operator_rules());
    assert_binds(one(&docs, "ClusterRoleBinding"), cluster_role, sa);
    let lease_role = one(&docs, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(rules(lease_role), lease_rules());
    assert_binds(one(&docs, "RoleBinding"), lease_role, sa);

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn namespace_scoped_single_replica_render() {
    let docs = render(&[
        "--set",
        "serviceMonitor.enabled=true,rbac.scope=namespace,leaderElection.enabled=false,replicas=1",
    ]);
    assert_eq!(
        kinds(&docs),
        [
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
    );
    assert_namespaced(&docs, &[]);
    assert_no_wildcards(&docs);
    assert_hardened(&docs);

    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "Recreate",
        "without leader election two operators must never overlap"
    );
    let a = args(&docs);
    assert_eq!(a[0], "operator");
    assert!(
        !a.iter()
            .any(|x| x.starts_with("--leader-election") || x.starts_with("--lease")),
        "{a:?}"
    );
    assert!(
        a.contains(&format!("--watch-namespace={NAMESPACE}")),
        "a namespace-scoped install watches its own namespace: {a:?}"
    );

    // One Role (the operator's rules, no Lease rules) in the watched namespace.
    let role = one(&docs, "Role");
    assert_eq!(rules(role), operator_rules());
    assert_binds(
        one(&docs, "RoleBinding"),
        role,
        one(&docs, "ServiceAccount"),
    );

    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let service_labels = &one(&docs, "Service")["metadata"]["labels"];
    let selector = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            &service_labels[k], v,
            "ServiceMonitor selects the metrics Service"
        );
    }
}

#[test]
fn leader_election_on_adds_the_lease_role_with_namespace_scope() {
    let docs = render(&["--set", "rbac.scope=namespace,watchNamespace=mirrors"]);
    let roles = all_of(&docs, "Role");
    assert_eq!(roles.len(), 2);
    let operator = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "mirrors")
        .expect("operator Role in the watched namespace");
    assert_eq!(rules(operator), operator_rules());
    let lease = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == NAMESPACE)
        .expect("lease Role in the operator's namespace");
    assert_eq!(rules(lease), lease_rules());
    assert!(args(&docs).contains(&"--watch-namespace=mirrors".to_string()));
    assert!(args(&docs).contains(&"--leader-election".to_string()));
}

#[test]
fn invalid_rbac_scope_is_refused() {
    let stderr = helm_fails(&[
        "template",
        "x",
        "charts/lazyoci-operator",
        "-f",
        DEPLOY_VALUES,
        "--set",
        "rbac.scope=everything",
    ]);
    assert!(stderr.contains("rbac.scope must be"), "{stderr}");
}

/// There is no public image: without `image.repository` the chart refuses to render and says
/// how to build and push one; deploy/ names a placeholder no cluster can pull.
#[test]
fn the_image_must_be_built_and_named() {
    let stderr = helm_fails(&["template", "x", "charts/lazyoci-operator"]);
    assert!(
        stderr.contains("image.repository is not set")
            && stderr.contains("scripts/build-image.sh --push"),
        "{stderr}"
    );

    let image = |docs: &[Value]| {
        one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let placeholder = image(&render(&[]));
    assert!(
        placeholder.starts_with("build-and-push-the-image.invalid/"),
        "{placeholder}"
    );
    let by_digest = render(&[
        "--set",
        "image.repository=registry.example.com/lazyoci,image.tag=9.9,image.digest=sha256:abc",
    ]);
    assert_eq!(image(&by_digest), "registry.example.com/lazyoci@sha256:abc");
}

#[test]
fn deploy_operator_yaml_is_the_default_render() {
    let fresh = render_text(&[]);
    let committed = std::fs::read_to_string(root().join("deploy/operator.yaml"))
        .expect("deploy/operator.yaml exists");
    assert!(
        committed == fresh,
        "deploy/operator.yaml is stale: run scripts/gen-deploy.sh"
    );
    let ns: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("deploy/namespace.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["name"], NAMESPACE);
}

/// The chart ships the CRD in crds/ (helm installs it before the templates). Its content is the
/// generated CRD, checked against `lazyoci crd` by the CRD's own test.
#[test]
fn chart_ships_the_crd_copy() {
    let path = chart_dir().join("crds/chartmirror.yaml");
    assert!(path.is_file(), "{} is missing", path.display());
}

/// The example ChartMirror is a valid spec for lazyoci's own parser (the CLI and the operator
/// share it), with no `type: local` upstream (CLI only).
#[test]
fn example_chartmirror_is_valid() {
    let (spec, form) = lazyoci::config::load(&root().join("examples/chartmirror.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(form, lazyoci::config::ConfigForm::ChartMirror);
    assert_eq!(spec.interval.as_deref(), Some("6h"));
    assert!(spec.target.secret_ref.is_some());
    let text = std::fs::read_to_string(root().join("examples/chartmirror.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["metadata"]["namespace"], "mirrors");
    let types: BTreeSet<String> = doc["spec"]["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["oci", "repo"].iter().map(|s| s.to_string()).collect()
    );
}

/// The GitOps examples parse and order consumers after the mirror.
#[test]
fn gitops_examples_order_consumers_after_the_mirror() {
    let flux = parse_docs(
        &std::fs::read_to_string(root().join("examples/flux-kustomization.yaml")).unwrap(),
    );
    let by_name = |name: &str| {
        flux.iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Kustomization {name}"))
    };
    assert_eq!(by_name("chart-mirrors")["spec"]["wait"], true);
    assert_eq!(
        by_name("apps")["spec"]["dependsOn"][0]["name"],
        "chart-mirrors"
    );

    let argo = parse_docs(
        &std::fs::read_to_string(root().join("examples/argocd-application.yaml")).unwrap(),
    );
    let wave = |name: &str| -> i64 {
        let app = argo
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Application {name}"));
        app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(wave("lazyoci-operator") < wave("chart-mirrors"));
    assert!(wave("chart-mirrors") < wave("apps"));
}
