//! Images the chart authors declare: Chart.yaml annotations (`artifacthub.io/images`,
//! `helm.sh/images`, Bitnami's `images`) and `Images.lock`, for the chart and every
//! subchart. Pure.

use serde_json::Value;

use super::Found;
use super::tree::ChartNode;

/// The annotation keys that list images.
pub const IMAGE_ANNOTATIONS: [&str; 3] = ["artifacthub.io/images", "helm.sh/images", "images"];

/// Images declared in annotations; unreadable annotations become warnings.
pub fn annotated(root: &ChartNode) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    for node in root.walk() {
        let annotations = node.annotations();
        for key in IMAGE_ANNOTATIONS {
            let Some(text) = annotations.get(key) else {
                continue;
            };
            match crate::chart::yaml::parse(text) {
                Ok(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(image) = entry_image(item) {
                            found.push(Found {
                                raw: image,
                                at: format!("Chart.yaml of {}: annotation {key}[{i}]", node.path),
                            });
                        }
                    }
                }
                Ok(Value::Null) => {}
                Ok(_) | Err(_) => warnings.push(format!(
                    "{}: the {key} annotation is not a YAML list of images; ignored",
                    node.path
                )),
            }
        }
    }
    (found, warnings)
}

/// Images listed in `Images.lock` files (Bitnami's distribution tooling format).
pub fn locked(root: &ChartNode) -> Vec<Found> {
    let mut found = Vec::new();
    for node in root.walk() {
        let Some(items) = node
            .images_lock
            .as_ref()
            .and_then(|l| l.get("images"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(image) = entry_image(item) {
                found.push(Found {
                    raw: image,
                    at: format!("Images.lock of {}: images[{i}]", node.path),
                });
            }
        }
    }
    found
}

/// `{name, image}` entries and plain strings.
fn entry_image(item: &Value) -> Option<String> {
    let s = match item {
        Value::String(s) => s,
        Value::Object(m) => m.get("image")?.as_str()?,
        _ => return None,
    };
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_each_annotation_style_and_lockfiles_of_subcharts() {
        let mut root = ChartNode {
            name: "app".into(),
            path: "app".into(),
            chart_yaml: json!({"annotations": {
                "artifacthub.io/images": "- name: app\n  image: ghcr.io/a/app:1.0\n  platforms: [linux/amd64]\n",
                "helm.sh/images": "- image: ghcr.io/a/helper:2\n",
                "category": "Infrastructure",
            }}),
            ..Default::default()
        };
        root.subcharts.push(ChartNode {
            name: "db".into(),
            path: "app/charts/db".into(),
            chart_yaml: json!({"annotations": {"images": "- name: pg\n  image: docker.io/bitnami/postgresql:16.2.0\n", "artifacthub.io/images": "{not: a list}"}}),
            images_lock: Some(json!({"kind": "ImagesLock", "images": [{"name": "pg", "image": "docker.io/bitnami/postgresql:16.2.0", "digests": []}]})),
            ..Default::default()
        });
        let (found, warnings) = annotated(&root);
        let raws: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.raw.as_str(), f.at.as_str()))
            .collect();
        assert_eq!(
            raws,
            [
                (
                    "ghcr.io/a/app:1.0",
                    "Chart.yaml of app: annotation artifacthub.io/images[0]"
                ),
                (
                    "ghcr.io/a/helper:2",
                    "Chart.yaml of app: annotation helm.sh/images[0]"
                ),
                (
                    "docker.io/bitnami/postgresql:16.2.0",
                    "Chart.yaml of app/charts/db: annotation images[0]"
                ),
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let locked = locked(&root);
        assert_eq!(locked.len(), 1);
        assert_eq!(locked[0].at, "Images.lock of app/charts/db: images[0]");
    }
}
