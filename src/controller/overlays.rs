//! Values overlays as ConfigMaps: one per chart version of a ChartMirror, owned by it and
//! labelled with its chart and version, holding the overlay under `values.yaml` (what a Flux
//! `HelmRelease` reads with `valuesFrom`). Written only when its content changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use crate::result::MirrorReport;
use crate::spec::ChartMirror;

/// The key the overlay sits under (Flux's default `valuesKey`).
pub const VALUES_KEY: &str = "values.yaml";
/// Label: the ChartMirror that owns the ConfigMap.
pub const LABEL_MIRROR: &str = "lazyoci.io/chartmirror";
/// Label: the chart.
pub const LABEL_CHART: &str = "lazyoci.io/chart";
/// Label: the chart version.
pub const LABEL_VERSION: &str = "lazyoci.io/version";
/// Label: the upstream key.
pub const LABEL_UPSTREAM: &str = "lazyoci.io/upstream";

/// Lowercase alphanumerics, `-` and `.`, the rest turned into `-`, trimmed.
fn dns_part(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.trim_matches(['-', '.']).to_string()
}

/// A label value: alphanumerics, `-`, `_`, `.`, at most 63, starting and ending alphanumeric.
fn label_value(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(63);
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The ConfigMap name of a chart version's overlay: `<mirror>-<upstream>-<version>-values`,
/// lowercased, other characters turned into `-` (so a `HelmRelease` can name it); a name
/// past the 253-character limit is cut and ends in a short hash instead.
pub fn name(mirror: &str, upstream: &str, version: &str) -> String {
    let full = format!(
        "{}-{}-{}-values",
        dns_part(mirror),
        dns_part(upstream),
        dns_part(version)
    );
    if full.len() <= 253 {
        return full;
    }
    let hash = crate::digest::sha256(format!("{mirror}\n{upstream}\n{version}").as_bytes());
    format!(
        "{}-{}",
        full[..236].trim_end_matches(['-', '.']),
        &hash[7..19]
    )
}

/// The ConfigMap for one overlay.
pub fn build(
    cm: &ChartMirror,
    upstream: &str,
    chart: &str,
    version: &str,
    text: &str,
) -> ConfigMap {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "lazyoci".to_string(),
        ),
        (LABEL_MIRROR.to_string(), label_value(&cm.name_any())),
        (LABEL_UPSTREAM.to_string(), label_value(upstream)),
        (LABEL_CHART.to_string(), label_value(chart)),
        (LABEL_VERSION.to_string(), label_value(version)),
    ]);
    let owner = OwnerReference {
        api_version: ChartMirror::api_version(&()).into_owned(),
        kind: ChartMirror::kind(&()).into_owned(),
        name: cm.name_any(),
        uid: cm.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name(&cm.name_any(), upstream, version)),
            namespace: cm.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(VALUES_KEY.to_string(), text.to_string())])),
        ..Default::default()
    }
}

/// Whether `have` already says what `want` says (data, labels, owner).
fn same(have: &ConfigMap, want: &ConfigMap) -> bool {
    have.data == want.data
        && want
            .metadata
            .labels
            .iter()
            .flatten()
            .all(|(k, v)| have.labels().get(k) == Some(v))
        && have.metadata.owner_references == want.metadata.owner_references
}

/// Create or update the ConfigMap of every overlay in `report`; returns, per
/// (upstream, version), the ConfigMap name or why it could not be written.
/// Create or update the ConfigMap of every overlay in `report`, and note in the report
/// which ConfigMap holds each (or why it could not be written: a failure of that version).
pub async fn write_all(api: &Api<ConfigMap>, cm: &ChartMirror, report: &mut MirrorReport) {
    for c in &mut report.charts {
        for v in &mut c.versions {
            let Some(o) = v.overlay.as_mut() else {
                continue;
            };
            let Some(text) = o.content.as_deref() else {
                continue;
            };
            let want = build(cm, &c.key, &c.chart, &v.version, text);
            let name = want.name_any();
            match write_one(api, &name, want).await {
                Ok(()) => o.config_map = Some(name),
                Err(e) => o.error = Some(e),
            }
        }
    }
}

async fn write_one(api: &Api<ConfigMap>, name: &str, mut want: ConfigMap) -> Result<(), String> {
    let timeout = std::time::Duration::from_secs(30);
    let say = |e: kube::Error| format!("cannot write ConfigMap {name}: {e}");
    let have = tokio::time::timeout(timeout, api.get_opt(name))
        .await
        .map_err(|_| format!("cannot read ConfigMap {name}: no answer within 30s"))?
        .map_err(say)?;
    let pp = PostParams {
        field_manager: Some(super::MANAGER.into()),
        ..Default::default()
    };
    match have {
        Some(have) if same(&have, &want) => Ok(()),
        Some(have) => {
            let ours = want
                .metadata
                .owner_references
                .as_ref()
                .and_then(|o| o.first())
                .map(|o| o.uid.clone());
            if !have
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == ours.as_ref())
            {
                return Err(format!(
                    "ConfigMap {name} exists and is not owned by this ChartMirror; lazyoci leaves it alone (delete or rename it)"
                ));
            }
            want.metadata.resource_version = have.metadata.resource_version.clone();
            tokio::time::timeout(timeout, api.replace(name, &pp, &want))
                .await
                .map_err(|_| format!("cannot write ConfigMap {name}: no answer within 30s"))?
                .map(|_| ())
                .map_err(say)
        }
        None => tokio::time::timeout(timeout, api.create(&pp, &want))
            .await
            .map_err(|_| format!("cannot write ConfigMap {name}: no answer within 30s"))?
            .map(|_| ())
            .map_err(say),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_predictable_dns_names() {
        assert_eq!(name("mirror", "app", "1.0.0"), "mirror-app-1.0.0-values");
        assert_eq!(
            name("M", "my_app", "1.0.0+build.1"),
            "m-my-app-1.0.0-build.1-values"
        );
        let long = name(&"x".repeat(200), "app", &"9".repeat(100));
        assert!(long.len() <= 253, "{}", long.len());
        assert_ne!(long, name(&"x".repeat(200), "app", &"9".repeat(99)));
        assert_eq!(label_value("1.0.0+build"), "1.0.0_build");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn the_flux_example_names_the_configmap_the_operator_writes() {
        let text = include_str!("../../examples/flux-helmrelease-overlay.yaml");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
        let mirror: ChartMirror = serde_json::from_value(docs[0].clone()).unwrap();
        assert!(
            mirror.spec.problems().is_empty(),
            "{:?}",
            mirror.spec.problems()
        );
        let up = &mirror.spec.upstreams[0];
        let release = &docs[2];
        assert_eq!(
            release["metadata"]["namespace"],
            docs[0]["metadata"]["namespace"]
        );
        let from = &release["spec"]["valuesFrom"][0];
        assert_eq!(
            from["name"],
            name(&mirror.name_any(), &up.name, &up.versions[0]).as_str()
        );
        assert_eq!(from["valuesKey"], VALUES_KEY);
        assert_eq!(
            release["spec"]["chart"]["spec"]["version"],
            up.versions[0].as_str()
        );
    }
}
