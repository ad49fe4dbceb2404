//! The structural walk over rendered manifests. Pure.
//!
//! Every YAML document is parsed; every mapping key `image` whose value is a string is an
//! image. That covers containers, initContainers and ephemeralContainers of every workload
//! kind (however the list items are written), CronJob job templates, and custom resources
//! that carry an `image` string anywhere in their spec.

use serde_json::Value;

use super::Found;

/// Rendered output larger than this is refused.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024 * 1024;

/// Every `image` string in the rendered documents, in document order (not deduplicated).
pub fn image_strings(rendered: &str) -> Result<Vec<String>, String> {
    Ok(located_images(rendered)?
        .into_iter()
        .map(|f| f.raw)
        .collect())
}

/// Every `image` string with where it is: the template (helm's `# Source:` line), the
/// object and the field path.
pub fn located_images(rendered: &str) -> Result<Vec<Found>, String> {
    if rendered.len() > MAX_RENDERED_BYTES {
        return Err("rendered output is larger than 256 MiB".into());
    }
    let mut out = Vec::new();
    for chunk in documents(rendered) {
        let source = chunk
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(str::trim)
            .unwrap_or("rendered output");
        let docs: Vec<Value> = crate::chart::yaml::parse_all(chunk)
            .map_err(|e| format!("cannot parse helm's output ({source}) as YAML: {e}"))?;
        for doc in &docs {
            let object = match (
                doc.get("kind").and_then(Value::as_str),
                doc.pointer("/metadata/name").and_then(Value::as_str),
            ) {
                (Some(k), Some(n)) => format!("{k}/{n}"),
                (Some(k), None) => k.to_string(),
                _ => "object".to_string(),
            };
            let mut found = Vec::new();
            walk(doc, "", &mut found, 0);
            out.extend(found.into_iter().map(|(raw, path)| Found {
                raw,
                at: format!("{source}: {object} {path}"),
            }));
        }
    }
    Ok(out)
}

/// The text between `---` separators (helm starts every document with one).
fn documents(rendered: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in rendered.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            if pos > start {
                out.push(&rendered[start..pos]);
            }
            start = pos + line.len();
        }
        pos += line.len();
    }
    if rendered.len() > start {
        out.push(&rendered[start..]);
    }
    out
}

fn walk(v: &Value, path: &str, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 128 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (k.as_str(), child) {
                    ("image", Value::String(s)) if !s.trim().is_empty() => {
                        out.push((s.trim().to_string(), p))
                    }
                    _ => walk(child, &p, out, depth + 1),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), out, depth + 1)
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_in_every_placement() {
        let rendered = r#"
---
# Source: app/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
      - image: busybox:1.36
        name: init
      containers:
      - name: app
        image: "nginx:1.25"
      - image: ghcr.io/x/sidecar:v1
      ephemeralContainers: [{name: debug, image: alpine}]
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - image: registry.k8s.io/kubectl:v1.30
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  image: quay.io/prometheus/prometheus:v2.50
---
apiVersion: v1
kind: ConfigMap
data:
  image: "not-structural: this is a string value of a data key"
---
"#;
        let got = image_strings(rendered).unwrap();
        for want in [
            "busybox:1.36",
            "nginx:1.25",
            "ghcr.io/x/sidecar:v1",
            "alpine",
            "registry.k8s.io/kubectl:v1.30",
            "quay.io/prometheus/prometheus:v2.50",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want} in {got:?}");
        }
        // Non-references are dropped with a warning when the sources are assembled.
        let d = crate::discover::assemble(
            crate::discover::Findings {
                rendered: Some(located_images(rendered).unwrap()),
                ..Default::default()
            },
            &crate::discover::Selection::default(),
            Vec::new(),
        );
        assert_eq!(d.images.len(), 6);
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn says_where_each_image_is() {
        let rendered = "---\n# Source: app/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: nginx:1.25\n---\n# Source: app/templates/cr.yaml\nkind: Prometheus\nspec:\n  image: quay.io/p/p:v2\n";
        let got = located_images(rendered).unwrap();
        let at: Vec<(&str, &str)> = got
            .iter()
            .map(|f| (f.raw.as_str(), f.at.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (
                    "nginx:1.25",
                    "app/templates/deploy.yaml: Deployment/web spec.template.spec.containers[0].image"
                ),
                (
                    "quay.io/p/p:v2",
                    "app/templates/cr.yaml: Prometheus spec.image"
                ),
            ]
        );
    }

    #[test]
    fn broken_yaml_is_an_error_not_an_empty_list() {
        assert!(image_strings("a: [unclosed\n").is_err());
        assert!(image_strings("").unwrap().is_empty());
    }
}
