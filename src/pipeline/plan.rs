//! Planning a run before anything touches a network: validate, expand units, detect target
//! collisions. Pure.

use std::collections::HashMap;

use super::resolve::Resolved;
use super::{MirrorRequest, PipelineError, Unit};
use crate::reference::ImageRef;
use crate::spec::{Field, TargetUrl};

/// The units of a run: one per chart version, from each upstream's resolved versions.
/// Pure.
pub fn plan(req: &MirrorRequest, target: &TargetUrl, resolved: &[Resolved]) -> Vec<Unit> {
    let prefix = req.spec.target.charts_prefix.clone().unwrap_or_default();
    let mut units = Vec::new();
    for r in resolved.iter().filter(|r| r.error.is_none()) {
        let u = &req.spec.upstreams[r.upstream];
        for v in &r.versions {
            units.push(Unit {
                key: u.name.clone(),
                chart: u.chart.clone(),
                version: v.clone(),
                chart_base: target.join(&prefix),
                versions_of_key: r.versions.clone(),
                upstream: r.upstream,
            });
        }
    }
    units
}

fn check_only(req: &MirrorRequest) -> Result<(), PipelineError> {
    if let Some(name) = &req.only
        && !req.spec.upstreams.iter().any(|u| &u.name == name)
    {
        let known = req
            .spec
            .upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(PipelineError::UnknownChart {
            name: name.clone(),
            known,
        });
    }
    Ok(())
}

/// Check a request before anything runs: the spec, `--chart`, `--version`. Gives the
/// parsed target.
pub fn validate(req: &MirrorRequest) -> Result<TargetUrl, PipelineError> {
    let mut problems: Vec<String> = req
        .spec
        .problems()
        .into_iter()
        .map(|p| {
            let name = |i: usize| {
                req.spec
                    .upstreams
                    .get(i)
                    .map(|u| u.name.as_str())
                    .unwrap_or("?")
            };
            let field = match p.field {
                Field::Target(f) => format!("target.{f}"),
                Field::Spec(f) => f.to_string(),
                Field::Upstream(i, f) => format!("upstreams[{}].{f}", name(i)),
                Field::Images(None, f) => format!("images.{f}"),
                Field::Images(Some(i), f) => format!("upstreams[{}].images.{f}", name(i)),
                Field::Auth(i, f) => format!("upstreams[{}].auth.{f}", name(i)),
            };
            format!("  - {field}: {}", p.message)
        })
        .collect();
    for v in &req.versions {
        if let Err(m) = crate::spec::check_version(v) {
            problems.push(format!("  - --version: {m}"));
        }
    }
    if req.charts_only && req.images_only {
        problems.push("  - charts-only and images-only cannot both be set".into());
    }
    if !problems.is_empty() {
        return Err(PipelineError::InvalidSpec(problems));
    }
    check_only(req)?;
    TargetUrl::parse(&req.spec.target.url).map_err(|m| PipelineError::InvalidSpec(vec![m]))
}

/// Groups of different sources that would land on the same target: (target, sources),
/// sources in the order given. Whether they may share it depends on their digests.
pub(super) fn collisions<'a>(
    pairs: impl Iterator<Item = (&'a ImageRef, &'a ImageRef)>,
) -> Vec<(String, Vec<String>)> {
    let mut by_target: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (src, dst) in pairs {
        let dst = dst.to_string();
        let i = *index.entry(dst.clone()).or_insert_with(|| {
            by_target.push((dst, Vec::new()));
            by_target.len() - 1
        });
        by_target[i].1.push(src.to_string());
    }
    by_target.retain(|(_, s)| s.len() > 1);
    by_target
}

/// `host/path[/prefix]/chart` without the host.
pub(super) fn chart_repo(target: &TargetUrl, prefix: Option<&str>, chart: &str) -> String {
    [target.path.as_str(), prefix.unwrap_or_default(), chart]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::MirrorRequest;

    #[test]
    fn collisions_name_both_sources() {
        let t = TargetUrl::parse("reg.example.com").unwrap();
        let a = ImageRef::parse("docker.io/x/y:1").unwrap();
        let b = ImageRef::parse("quay.io/x/y:1").unwrap();
        let c = ImageRef::parse("quay.io/x/z:1").unwrap();
        let (ra, rb, rc) = (a.remap(&t), b.remap(&t), c.remap(&t));
        let got = collisions([(&a, &ra), (&b, &rb), (&c, &rc)].into_iter());
        assert_eq!(
            got,
            [(
                "reg.example.com/x/y:1".to_string(),
                vec!["docker.io/x/y:1".to_string(), "quay.io/x/y:1".to_string()]
            )]
        );
    }

    #[test]
    fn plan_applies_version_overrides_to_the_chosen_chart_only() {
        let text = "target: {url: r.io, charts-prefix: charts}\nupstreams:\n  a: {type: repo, repo: 'https://x.io', chart: a, versions: ['1']}\n  b: {type: repo, repo: 'https://x.io', chart: b, versions: ['2', '3']}\n";
        let (spec, _) = crate::config::parse(text.as_bytes(), std::path::Path::new("/")).unwrap();
        let t = TargetUrl::parse("r.io").unwrap();
        let mut req = MirrorRequest::all(spec);
        let exact = |req: &MirrorRequest| plan(req, &t, &super::super::resolve::plan_exact(req));
        assert_eq!(exact(&req).len(), 3);
        req.only = Some("b".into());
        req.versions = vec!["9".into()];
        let units = exact(&req);
        assert_eq!(
            units.iter().map(|u| u.version.as_str()).collect::<Vec<_>>(),
            vec!["9"]
        );
        assert_eq!(units[0].chart_base, "r.io/charts");
        req.only = Some("zzz".into());
        assert!(matches!(
            validate(&req),
            Err(PipelineError::UnknownChart { .. })
        ));
        assert_eq!(
            chart_repo(&TargetUrl::parse("r.io/ns").unwrap(), Some("charts"), "a"),
            "ns/charts/a"
        );
    }

    #[test]
    fn a_chartmirror_s_copy_options_reach_the_request() {
        let manifest = |extra: &str| {
            format!(
                "apiVersion: lazyoci.io/v1alpha1\nkind: ChartMirror\nmetadata: {{name: m}}\nspec:\n{extra}  target: {{url: r.io}}\n  upstreams:\n    - {{name: a, type: repo, repo: 'https://x.io', chart: a, versions: ['1']}}\n"
            )
        };
        let parse = |text: &str| {
            crate::config::parse(text.as_bytes(), std::path::Path::new("/"))
                .unwrap()
                .0
        };
        let spec = parse(&manifest(
            "  perHostConcurrency: 2\n  onMovedTag: fail\n  retries: 0\n  signatures: false\n",
        ));
        assert_eq!(
            (spec.per_host_concurrency, spec.retries),
            (Some(2), Some(0))
        );
        let req = MirrorRequest::all(spec);
        assert_eq!(req.on_moved_tag, crate::result::MovedTag::Fail);
        assert!(!req.signatures);
        let req = MirrorRequest::all(parse(&manifest("")));
        assert_eq!(req.on_moved_tag, crate::result::MovedTag::Overwrite);
        assert!(req.signatures, "signatures travel by default");
        assert_eq!(
            (req.spec.per_host_concurrency, req.spec.retries),
            (None, None)
        );
    }
}
