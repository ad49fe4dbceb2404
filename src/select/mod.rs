//! Version selectors: which published versions of a chart an upstream follows (`semver`,
//! `latest`, `prereleases`, `exclude`), on top of its exact `versions`. Pure: the caller
//! brings the published list (index.yaml, an OCI tag list, a chart directory).

mod constraint;

use std::cmp::Ordering;

pub use constraint::{Constraint, parse_version};

use crate::spec::UpstreamSpec;

/// Regexes in `exclude` larger than this (compiled) are refused.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// An upstream's selector, parsed and checked.
#[derive(Clone, Debug)]
pub struct Selector {
    constraint: Constraint,
    latest: Option<usize>,
    prereleases: bool,
    exclude: Vec<Exclude>,
}

#[derive(Clone, Debug)]
enum Exclude {
    /// A version, matched exactly (build metadata included).
    Exact(semver::Version),
    /// Anything else: a regular expression searched in the version string.
    Pattern(regex::Regex),
}

/// What a selector picked from a published list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    /// The versions selected, oldest first (semver precedence).
    pub versions: Vec<String>,
    /// Published entries that are not versions at all (skipped).
    pub not_versions: Vec<String>,
}

impl Selector {
    /// The selector of `up`, `None` when it has no `semver`. Problems are returned as
    /// (camelCase field, message) like [`UpstreamSpec::problems`].
    pub fn of(up: &UpstreamSpec) -> Result<Option<Selector>, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let constraint = match up.semver.as_deref() {
            Some(text) => match Constraint::parse(text) {
                Ok(c) => Some(c),
                Err(m) => {
                    problems.push(("semver", m));
                    None
                }
            },
            None => None,
        };
        if up.latest == Some(0) {
            problems.push((
                "latest",
                "must be at least 1 (the number of highest matching versions to mirror); leave it out to mirror every match".into(),
            ));
        }
        let mut exclude = Vec::new();
        for entry in &up.exclude {
            if let Some(v) = parse_version(entry) {
                exclude.push(Exclude::Exact(v));
                continue;
            }
            match regex::RegexBuilder::new(entry)
                .size_limit(MAX_REGEX_BYTES)
                .build()
            {
                Ok(r) => exclude.push(Exclude::Pattern(r)),
                Err(e) => problems.push((
                    "exclude",
                    format!(
                        "{entry:?} is neither a version nor a regular expression: {}",
                        e.to_string().lines().last().unwrap_or_default().trim()
                    ),
                )),
            }
        }
        if up.semver.is_none() {
            for (field, set) in [
                ("latest", up.latest.is_some()),
                ("prereleases", up.prereleases),
                ("exclude", !up.exclude.is_empty()),
            ] {
                if set {
                    problems.push((
                        field,
                        "applies to semver matches only; add semver (e.g. semver: \"*\" to follow every release)".into(),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(constraint.map(|constraint| Selector {
            constraint,
            latest: up.latest.map(|n| n as usize),
            prereleases: up.prereleases,
            exclude,
        }))
    }

    /// The versions of `published` this selector picks, oldest first. With `latest: N`,
    /// the N highest by precedence; versions that differ only in build metadata rank
    /// together, so all of them are kept rather than one chosen arbitrarily.
    pub fn select(&self, published: &[String]) -> Selected {
        let mut out = Selected::default();
        let mut matched: Vec<(semver::Version, &String)> = Vec::new();
        for text in published {
            let Some(v) = parse_version(text) else {
                out.not_versions.push(text.clone());
                continue;
            };
            if self.constraint.matches(&v, self.prereleases) && !self.excluded(text, &v) {
                matched.push((v, text));
            }
        }
        matched.sort_by(|a, b| by_precedence(&a.0, &b.0));
        matched.dedup_by(|a, b| a.1 == b.1);
        if let Some(n) = self.latest {
            let mut ranks = 0;
            let mut keep = matched.len();
            for i in (0..matched.len()).rev() {
                let new_rank = i + 1 == matched.len()
                    || matched[i].0.cmp_precedence(&matched[i + 1].0) != Ordering::Equal;
                if new_rank {
                    ranks += 1;
                    if ranks > n {
                        break;
                    }
                }
                keep = i;
            }
            matched.drain(..keep);
        }
        out.versions = matched.into_iter().map(|(_, t)| t.clone()).collect();
        out
    }

    fn excluded(&self, text: &str, v: &semver::Version) -> bool {
        self.exclude.iter().any(|x| match x {
            Exclude::Exact(e) => e == v,
            Exclude::Pattern(r) => r.is_match(text),
        })
    }
}

/// Precedence, then build metadata, so that the order is total and stable.
fn by_precedence(a: &semver::Version, b: &semver::Version) -> Ordering {
    a.cmp_precedence(b).then_with(|| a.build.cmp(&b.build))
}

/// Sort versions oldest first by semver precedence; entries that are not versions go last,
/// in their order.
pub fn sort_versions(versions: &mut [String]) {
    versions.sort_by(|a, b| match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => by_precedence(&x, &y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
}

/// The `n` newest versions of `published`, newest first (for "nothing matches" messages).
pub fn newest(published: &[String], n: usize) -> Vec<String> {
    let mut all: Vec<String> = published
        .iter()
        .filter(|v| parse_version(v).is_some())
        .cloned()
        .collect();
    sort_versions(&mut all);
    all.dedup();
    all.into_iter().rev().take(n).collect()
}

/// The highest version in `published` satisfying a Helm constraint (Chart.yaml dependency
/// ranges): prereleases only when the constraint names one.
pub fn highest_match(constraint: &str, published: &[String]) -> Option<String> {
    let c = Constraint::parse(constraint).ok()?;
    published
        .iter()
        .filter_map(|t| parse_version(t).map(|v| (v, t)))
        .filter(|(v, _)| c.matches(v, false))
        .max_by(|a, b| by_precedence(&a.0, &b.0))
        .map(|(_, t)| t.clone())
}

#[cfg(test)]
mod tests;
