use super::*;
use crate::result::{ChartResult, ImageResult, VersionResult};
use serde_json::{Value, json};

#[test]
fn truncates_on_char_boundaries() {
    assert_eq!(truncate("abc", 10), "abc");
    let t = truncate(&"é".repeat(600), 101);
    assert!(t.len() <= 101 && t.ends_with("..."), "{t}");
}

#[test]
fn checked_in_crds_are_current() {
    let want = crd_yaml();
    for rel in [
        "crds/chartmirror.yaml",
        "charts/lazyoci-operator/crds/chartmirror.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        if rel.starts_with("charts/") && !path.exists() {
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is stale: run `cargo run -- crd > {rel}`"
        );
    }
}

fn schema() -> Value {
    let crd = serde_json::to_value(ChartMirror::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The OpenAPI checks an apiserver makes that CEL does not: types, required fields,
/// patterns, enums, minimums and maximums. Returns the first violation.
fn structural(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if v.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    let ty = schema["type"].as_str().unwrap_or_default();
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: expected {ty}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: not one of {e:?}"));
    }
    if let (Some(p), Some(s)) = (schema["pattern"].as_str(), v.as_str())
        && !regex::Regex::new(p).unwrap().is_match(s)
    {
        return Err(format!("{at}: {s:?} does not match {p}"));
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), v.as_str())
        && (s.chars().count() as u64) < min
    {
        return Err(format!("{at}: shorter than {min}"));
    }
    if let (Some(min), Some(a)) = (schema["minItems"].as_u64(), v.as_array())
        && (a.len() as u64) < min
    {
        return Err(format!("{at}: fewer than {min} items"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64())
        && n < min
    {
        return Err(format!("{at}: below {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64())
        && n > max
    {
        return Err(format!("{at}: above {max}"));
    }
    if let Some(req) = schema["required"].as_array() {
        for r in req {
            if v.get(r.as_str().unwrap()).is_none() {
                return Err(format!("{at}.{}: required", r.as_str().unwrap()));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => structural(s, val, &format!("{at}.{k}"))?,
                None if at.is_empty()
                    && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") => {}
                None => return Err(format!("{at}.{k}: unknown field")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            structural(items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn admit(obj: &Value) -> Result<(), String> {
    let s = schema();
    structural(&s, obj, "")?;
    kube::core::cel::Validator::new()
        .validate(&s, obj, None)
        .map_err(|e| e.to_string())
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "lazyoci.io/v1alpha1", "kind": "ChartMirror", "metadata": {"name": "m"}, "spec": spec})
}

fn good_spec() -> Value {
    json!({
        "target": {"url": "oci://registry.example.com/mirror", "chartsPrefix": "charts", "secretRef": {"name": "push-creds"}},
        "interval": "6h",
        "upstreams": [
            {"name": "vault", "type": "repo", "repo": "https://helm.releases.hashicorp.com", "chart": "vault", "versions": ["0.28.0"]},
            {"name": "keycloak", "type": "oci", "registry": "oci://registry-1.docker.io/bitnamicharts", "chart": "keycloak", "versions": ["24.0.1"]}
        ]
    })
}

#[test]
fn the_schema_accepts_a_good_spec_and_the_example() {
    admit(&object(good_spec())).unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/chartmirror.yaml");
    if let Ok(text) = std::fs::read_to_string(example) {
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        admit(&v).unwrap();
    }
}

#[test]
fn the_schema_rejects_bad_specs() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "repo without repo",
            Box::new(|s| {
                s["upstreams"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("repo")
                    .map(|_| ())
                    .unwrap()
            }),
        ),
        (
            "oci registry without oci://",
            Box::new(|s| s["upstreams"][1]["registry"] = json!("registry-1.docker.io/x")),
        ),
        (
            "repo URL without scheme",
            Box::new(|s| s["upstreams"][0]["repo"] = json!("helm.example.com")),
        ),
        (
            "two location fields",
            Box::new(|s| s["upstreams"][0]["registry"] = json!("oci://x.io/y")),
        ),
        (
            "local without path",
            Box::new(|s| {
                s["upstreams"][0] =
                    json!({"name": "l", "type": "local", "chart": "c", "versions": ["1"]})
            }),
        ),
        (
            "unknown type",
            Box::new(|s| s["upstreams"][0]["type"] = json!("git")),
        ),
        (
            "empty versions",
            Box::new(|s| s["upstreams"][0]["versions"] = json!([])),
        ),
        ("no upstreams", Box::new(|s| s["upstreams"] = json!([]))),
        (
            "target with scheme",
            Box::new(|s| s["target"]["url"] = json!("https://registry.example.com")),
        ),
        ("bad interval", Box::new(|s| s["interval"] = json!("1 day"))),
        (
            "charts and images only",
            Box::new(|s| {
                s["chartsOnly"] = json!(true);
                s["imagesOnly"] = json!(true);
            }),
        ),
        (
            "zero concurrency",
            Box::new(|s| s["concurrency"] = json!(0)),
        ),
        (
            "zero per-host concurrency",
            Box::new(|s| s["perHostConcurrency"] = json!(0)),
        ),
        ("too many retries", Box::new(|s| s["retries"] = json!(21))),
        (
            "unknown moved-tag policy",
            Box::new(|s| s["onMovedTag"] = json!("replace")),
        ),
        (
            "signatures as text",
            Box::new(|s| s["signatures"] = json!("yes")),
        ),
        (
            "unknown discovery source",
            Box::new(|s| s["images"] = json!({"sources": ["helm"]})),
        ),
        (
            "no discovery source",
            Box::new(|s| s["upstreams"][0]["images"] = json!({"sources": []})),
        ),
        (
            "values that are not a mapping",
            Box::new(|s| s["upstreams"][0]["values"] = json!(["a"])),
        ),
        (
            "missing target",
            Box::new(|s| {
                s.as_object_mut()
                    .unwrap()
                    .remove("target")
                    .map(|_| ())
                    .unwrap()
            }),
        ),
    ];
    for (name, mutate) in cases {
        let mut spec = good_spec();
        mutate(&mut spec);
        let verdict = admit(&object(spec));
        eprintln!("{name}: {verdict:?}");
        assert!(verdict.is_err(), "the schema accepted: {name}");
    }
}

fn version(
    status: ChartStatus,
    images: Vec<ImageResult>,
    images_error: Option<&str>,
) -> VersionResult {
    let mut v = VersionResult {
        version: "1.0.0".into(),
        chart_status: status,
        chart_ref: Some("oci://r.io/charts/app:1.0.0".into()),
        chart_digest: Some("sha256:ab".into()),
        chart_error: None,
        previous_digest: None,
        note: None,
        images_error: images_error.map(String::from),
        warnings: vec![],
        excluded_images: vec![],
        discovery_cached: false,
        images,
        images_copied: 0,
        images_skipped: 0,
        images_failed: 0,
        overlay: None,
        served_by: None,
    };
    v.recount();
    v
}

fn image(src: &str, status: ImageStatus) -> ImageResult {
    ImageResult {
        source: src.into(),
        target: format!("r.io/{src}"),
        status,
        digest: None,
        bytes: 0,
        error: (status == ImageStatus::Failed).then(|| "boom".repeat(400)),
        previous_digest: None,
        note: None,
        provenance: vec![],
        attached: Vec::new(),
        served_by: None,
    }
}

fn report(versions: Vec<VersionResult>) -> MirrorReport {
    let mut r = MirrorReport {
        charts: vec![ChartResult {
            key: "app".into(),
            chart: "app".into(),
            versions,
            ..Default::default()
        }],
        unique_images: 3,
        ..Default::default()
    };
    r.recount();
    r
}

#[test]
fn a_good_run_is_ready_with_counts() {
    let r = report(vec![version(
        ChartStatus::Pushed,
        vec![
            image("a", ImageStatus::Copied),
            image("b", ImageStatus::Skipped),
        ],
        None,
    )]);
    let wants = conditions_for(&r);
    assert_eq!(wants.len(), 1);
    assert_eq!(
        (wants[0].type_, wants[0].status, wants[0].reason),
        ("Ready", "True", "Succeeded")
    );
    assert_eq!(
        wants[0].message,
        "1 chart versions mirrored; 1 images copied, 1 already present"
    );
    let (summary, entries) = fold_report(&r);
    assert_eq!(
        summary.chart_versions,
        VersionCounts {
            total: 1,
            pushed: 1,
            skipped: 0,
            failed: 0
        }
    );
    assert_eq!(entries[0].revision.as_deref(), Some("1.0.0@sha256:ab"));
    assert_eq!(
        entries[0].images,
        ImageCounts {
            total: 2,
            copied: 1,
            skipped: 1,
            failed: 0
        }
    );
}

#[test]
fn failures_give_ready_false_detail_conditions_and_capped_entries() {
    let many: Vec<ImageResult> = (0..8)
        .map(|i| image(&format!("img{i}"), ImageStatus::Failed))
        .collect();
    let r = report(vec![
        version(ChartStatus::Pushed, many, None),
        version(
            ChartStatus::Skipped,
            vec![],
            Some("helm template failed: x"),
        ),
    ]);
    let wants = conditions_for(&r);
    assert_eq!(
        (wants[0].type_, wants[0].status, wants[0].reason),
        ("Ready", "False", "PartiallyMirrored")
    );
    let types: Vec<&str> = wants.iter().map(|w| w.type_).collect();
    assert_eq!(types, vec!["Ready", "RenderFailed", "PushFailed"]);
    let (_, entries) = fold_report(&r);
    assert_eq!(entries[0].result, "Failed");
    assert_eq!(entries[0].failed_images.len(), MAX_FAILED_IMAGES);
    assert!(entries[0].last_error.as_ref().unwrap().len() <= MAX_ERROR_BYTES);
    assert_eq!(
        entries[1].last_error.as_deref(),
        Some("helm template failed: x")
    );
}

#[test]
fn transition_times_survive_unchanged_statuses() {
    let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
    let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
    let ready = |s: &'static str| Want {
        type_: "Ready",
        status: s,
        reason: "X",
        message: String::new(),
    };
    let first = set_conditions(&[], &[ready("True")], 1, &t0);
    let same = set_conditions(&first, &[ready("True")], 2, &t1);
    assert_eq!(same[0].last_transition_time, t0);
    assert_eq!(same[0].observed_generation, Some(2));
    let flipped = set_conditions(&same, &[ready("False")], 2, &t1);
    assert_eq!(flipped[0].last_transition_time, t1);
}

#[test]
fn status_for_250_versions_stays_small() {
    let versions: Vec<VersionResult> = (0..250)
        .map(|i| {
            let mut v = version(
                ChartStatus::Failed,
                (0..20)
                    .map(|j| {
                        image(
                            &format!("registry.example.com/team/image-{i}-{j}:1.2.3"),
                            ImageStatus::Failed,
                        )
                    })
                    .collect(),
                None,
            );
            v.version = format!("1.{i}.0");
            v.chart_error = Some("x".repeat(5000));
            v.warnings = (0..20).map(|_| "w".repeat(2000)).collect();
            v
        })
        .collect();
    let r = report(versions);
    let (summary, charts) = fold_report(&r);
    let status = ChartMirrorStatus {
        summary: Some(summary),
        charts,
        ..Default::default()
    };
    let bytes = serde_json::to_vec(&status).unwrap().len();
    assert!(
        bytes < 700 * 1024,
        "status is {bytes} bytes for 250 failing versions"
    );
}

#[test]
fn discovery_warnings_reach_status_bounded() {
    let mut v = version(ChartStatus::Pushed, vec![], None);
    v.warnings = (0..5)
        .map(|i| format!("warning {i} {}", "x".repeat(1000)))
        .collect();
    let (_, charts) = fold_report(&report(vec![v]));
    let w = &charts[0].warnings;
    assert_eq!(w.len(), MAX_WARNINGS);
    assert!(w[0].starts_with("warning 0 "));
    assert!(w.iter().all(|s| s.len() <= MAX_WARNING_BYTES), "{w:?}");
    assert_eq!(charts[0].result, "Pushed", "warnings do not fail a version");
}
