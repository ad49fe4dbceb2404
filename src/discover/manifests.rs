//! The structural walk over rendered manifests. Pure.
//!
//! Every YAML document is parsed; every mapping key `image` whose value is a string is an
//! image. That covers containers, initContainers and ephemeralContainers of every workload
//! kind (however the list items are written), CronJob job templates, and custom resources
//! that carry an `image` string anywhere in their spec.

use serde_json::Value;

/// Rendered output larger than this is refused.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024 * 1024;

/// Every `image` string in the rendered documents, in document order (not deduplicated).
pub fn image_strings(rendered: &str) -> Result<Vec<String>, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 50_000_000,
            max_nodes: 20_000_000,
            max_documents: 100_000,
            max_total_scalar_bytes: MAX_RENDERED_BYTES,
        },
    };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(rendered, options).map_err(|e| {
            format!(
                "cannot parse helm's output as YAML: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
    let mut out = Vec::new();
    for doc in &docs {
        walk(doc, &mut out, 0);
    }
    Ok(out)
}

fn walk(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 128 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("image", Value::String(s)) if !s.trim().is_empty() => {
                        out.push(s.trim().to_string())
                    }
                    _ => walk(child, out, depth + 1),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, out, depth + 1)),
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
        // Non-references are filtered out by normalisation, with a warning.
        let d = super::super::normalise(&got);
        assert_eq!(d.images.len(), 6);
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn broken_yaml_is_an_error_not_an_empty_list() {
        assert!(image_strings("a: [unclosed\n").is_err());
        assert!(image_strings("").unwrap().is_empty());
    }
}
