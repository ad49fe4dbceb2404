use serde_json::{Value, json};

use super::*;
use crate::discover::Found;
use crate::result::NotRelocatable;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn node(name: &str, values: Value) -> ChartNode {
    ChartNode {
        name: name.into(),
        version: "1.0.0".into(),
        path: name.into(),
        chart_yaml: json!({"name": name, "version": "1.0.0", "appVersion": "2.0"}),
        values,
        ..Default::default()
    }
}

fn tree() -> ChartNode {
    let mut root = node(
        "app",
        json!({
            "global": {"imageRegistry": "quay.io"},
            "image": {"registry": "", "repository": "org/app", "tag": "1.0"},
            "pinned": {"image": {"registry": "ghcr.io", "repository": "o/pinned", "digest": D}},
            "worker": {"image": "busybox:1.36"},
            "sidecars": [{"name": "proxy", "image": "docker.io/library/nginx:1.25"}, {"name": "x"}],
            "runner": {"image": "ghcr.io/o/runner:v{{ .Chart.AppVersion }}"},
            "templated": {"image": {"repository": "{{ .Values.repo }}", "tag": "1"}},
            "other": {"image": "registry.k8s.io/pause:3.10"},
            "cache": {"image": {"tag": "7.4"}},
        }),
    );
    root.chart_yaml["dependencies"] =
        json!([{"name": "redis", "version": "1.0.0", "alias": "cache"}]);
    root.subcharts.push(ChartNode {
        path: "app/charts/redis".into(),
        ..node(
            "redis",
            json!({"image": {"repository": "library/redis", "tag": "7.2"}}),
        )
    });
    root
}

fn refs(list: &[&str]) -> Vec<ImageRef> {
    list.iter().map(|s| ImageRef::parse(s).unwrap()).collect()
}

#[test]
fn every_form_is_rewritten_in_place_tags_and_digests_kept() {
    let target = TargetUrl::parse("mirror.example.com/ns").unwrap();
    let mirrored = refs(&[
        "quay.io/org/app:1.0",
        &format!("ghcr.io/o/pinned@{D}"),
        "busybox:1.36",
        "nginx:1.25",
        "ghcr.io/o/runner:v2.0",
        "quay.io/library/redis:7.4",
    ]);
    let o = build(&tree(), &json!({}), &mirrored, &target);
    let want = json!({
        "global": {"imageRegistry": "mirror.example.com"},
        "image": {"registry": "mirror.example.com", "repository": "ns/org/app"},
        "pinned": {"image": {"registry": "mirror.example.com", "repository": "ns/o/pinned"}},
        "worker": {"image": "mirror.example.com/ns/library/busybox:1.36"},
        "sidecars": [{"name": "proxy", "image": "mirror.example.com/ns/library/nginx:1.25"}, {"name": "x"}],
        "runner": {"image": "mirror.example.com/ns/o/runner:v{{ .Chart.AppVersion }}"},
        "cache": {"image": {"repository": "ns/library/redis"}},
    });
    assert_eq!(Value::Object(o.values.clone()), want);
    assert_eq!(o.moved.len(), 6, "{:#?}", o.moved);
    let cache = o.moved.iter().find(|m| m.at.contains("as cache")).unwrap();
    assert_eq!(cache.target, "mirror.example.com/ns/library/redis:7.4");
    // Not mirrored (excluded): left, and said so.
    assert!(
        o.left
            .iter()
            .any(|l| l.contains("pause") && l.contains("not mirrored"))
    );
    let text = to_yaml(
        &o,
        "app",
        "1.0.0",
        Some("oci://mirror.example.com/ns/app"),
        &[],
    )
    .unwrap();
    assert!(text.contains("helm install RELEASE oci://mirror.example.com/ns/app --version 1.0.0"));
    let back: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(back, want, "{text}");
}

#[test]
fn a_chart_whose_values_set_no_image_gets_an_empty_overlay() {
    let root = node("plain", json!({"registry": "quay.io", "replicas": 2}));
    let o = build(
        &root,
        &json!({}),
        &refs(&["quay.io/x/y:1"]),
        &TargetUrl::parse("127.0.0.1:5000").unwrap(),
    );
    assert!(o.is_empty());
    let nr = [NotRelocatable {
        image: "quay.io/x/y:1".into(),
        at: vec![
            "plain/templates/d.yaml: Deployment/d spec.template.spec.containers[0].image".into(),
        ],
        reason: "hard-coded".into(),
    }];
    let text = to_yaml(&o, "plain", "1.0.0", None, &nr).unwrap();
    assert!(text.contains("It is empty"), "{text}");
    assert!(
        text.contains("#   quay.io/x/y:1 (plain/templates/d.yaml"),
        "{text}"
    );
    let back: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(back, json!({}));
}

#[test]
fn without_a_global_registry_the_global_is_left_alone() {
    let root = node(
        "app",
        json!({"image": {"registry": "docker.io", "repository": "bitnami/nginx", "tag": "1"}}),
    );
    let o = build(
        &root,
        &json!({}),
        &refs(&["docker.io/bitnami/nginx:1"]),
        &TargetUrl::parse("127.0.0.1:5000").unwrap(),
    );
    assert_eq!(
        Value::Object(o.values),
        json!({"image": {"registry": "127.0.0.1:5000", "repository": "bitnami/nginx"}})
    );
}

#[test]
fn split_name_keeps_what_follows_the_repository() {
    assert_eq!(split_name("busybox:1.36"), ("busybox", ":1.36"));
    assert_eq!(
        split_name("localhost:5000/a/b:v{{ .Chart.AppVersion }}"),
        ("localhost:5000/a/b", ":v{{ .Chart.AppVersion }}")
    );
    assert_eq!(split_name(&format!("a/b@{D}")), ("a/b", &*format!("@{D}")));
    assert_eq!(split_name("a/b"), ("a/b", ""));
}

fn found(raw: &str, at: &str) -> Found {
    Found {
        raw: raw.into(),
        at: at.into(),
    }
}

#[test]
fn verification_sorts_the_render_by_where_images_come_from() {
    let target = TargetUrl::parse("127.0.0.1:5000/m").unwrap();
    let mirrored = refs(&["quay.io/a/b:1", &format!("ghcr.io/p/q:2@{D}"), "x/hard:1"]);
    let rendered = [
        found("127.0.0.1:5000/m/a/b:1", "t/d.yaml: Deployment/d image"),
        found("127.0.0.1:5000/m/a/b:1", "t/j.yaml: Job/j image"),
        found(
            &format!("127.0.0.1:5000/m/p/q@{D}"),
            "t/p.yaml: Pod/p image",
        ),
        found("docker.io/x/hard:1", "t/cm.yaml: ConfigMap/c data.image"),
        found("127.0.0.1:5000/m/a/b:9", "t/s.yaml: Pod/s image"),
        found("127.0.0.1:5000/other/a/b:1", "t/o.yaml: Pod/o image"),
    ];
    let v = verify::verify(&rendered, &target, &mirrored);
    assert_eq!(
        v.relocated,
        [
            "127.0.0.1:5000/m/a/b:1".to_string(),
            format!("127.0.0.1:5000/m/p/q@{D}")
        ]
    );
    let left: Vec<(&str, &str)> = v
        .not_relocatable
        .iter()
        .map(|n| (n.image.as_str(), n.at[0].as_str()))
        .collect();
    assert_eq!(
        left,
        [
            ("127.0.0.1:5000/m/a/b:9", "t/s.yaml: Pod/s image"),
            ("127.0.0.1:5000/other/a/b:1", "t/o.yaml: Pod/o image"),
            ("docker.io/x/hard:1", "t/cm.yaml: ConfigMap/c data.image"),
        ]
    );
    assert!(v.not_relocatable[0].reason.contains("did not mirror"));
    assert!(v.not_relocatable[2].reason.contains("hard-coded"));
}

#[test]
fn a_registry_written_elsewhere_is_moved_where_it_is_written() {
    // ingress-nginx: `controller.image.image` and `global.image.registry`, merged by the
    // template; discovery sees the rendered image under registry.k8s.io.
    let root = node(
        "ingress-nginx",
        json!({
            "global": {"image": {"registry": "registry.k8s.io"}},
            "controller": {"image": {"image": "ingress-nginx/controller", "tag": "v1.15.1", "digest": D}},
        }),
    );
    let mirrored = refs(&[&format!(
        "registry.k8s.io/ingress-nginx/controller:v1.15.1@{D}"
    )]);
    let target = TargetUrl::parse("mirror.example.com/ns").unwrap();
    let o = build(&root, &json!({}), &mirrored, &target);
    assert_eq!(
        Value::Object(o.values),
        json!({
            "global": {"image": {"registry": "mirror.example.com"}},
            "controller": {"image": {"image": "ns/ingress-nginx/controller"}},
        })
    );
    assert_eq!(
        o.moved[0].target,
        format!("mirror.example.com/ns/ingress-nginx/controller:v1.15.1@{D}")
    );
}

#[test]
fn bitnami_charts_are_told_to_accept_the_mirrored_names() {
    let root = node(
        "redis",
        json!({
            "global": {"imageRegistry": "", "security": {"allowInsecureImages": false}},
            "image": {"registry": "docker.io", "repository": "bitnami/redis", "tag": "8.2.1"},
        }),
    );
    let o = build(
        &root,
        &json!({}),
        &refs(&["docker.io/bitnami/redis:8.2.1"]),
        &TargetUrl::parse("127.0.0.1:5000").unwrap(),
    );
    assert_eq!(o.values["global"]["security"]["allowInsecureImages"], true);
    let text = to_yaml(&o, "redis", "23.1.1", None, &[]).unwrap();
    assert!(
        text.contains("# Also sets global.security.allowInsecureImages: true"),
        "{text}"
    );
}
