//! Helm's version constraints (Masterminds/semver v3, which Helm uses for `--version`,
//! Chart.yaml dependency ranges and index lookups), ported rule for rule so a range means
//! here what it means to `helm pull`. Pure.
//!
//! Written by hand because no maintained crate speaks this dialect: the `semver` crate
//! parses Cargo's ranges (no `||`, no hyphen ranges, other prerelease rules), and the npm
//! ports differ on partial versions and prereleases.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};

/// One version pattern: `v?MAJOR(.MINOR)?(.PATCH)?(-PRE)?(+BUILD)?`, where any number may
/// be a wildcard (`x`, `X`, `*`).
const CV: &str = r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
/// The operators, in Masterminds' order (leftmost-first alternation, as in Go).
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static ONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CV})\s*$")).expect("valid regex"));
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\s*({CV})\s+-\s+({CV})\s*")).expect("valid regex"));
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CV})")).expect("valid regex"));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
    .expect("valid regex")
});
static VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$")
        .expect("valid regex")
});

/// A chart version as Helm reads one: `v` prefix allowed, missing minor or patch taken as
/// 0 (`1.2` is 1.2.0). `None` when it is not a version at all.
pub fn parse_version(text: &str) -> Option<Version> {
    let m = VERSION.captures(text.trim())?;
    let num = |i: usize| -> Option<u64> {
        match m.get(i) {
            None => Some(0),
            Some(g) => g.as_str().trim_start_matches('.').parse().ok(),
        }
    };
    Some(Version {
        major: num(1)?,
        minor: num(2)?,
        patch: num(3)?,
        pre: match m.get(5) {
            Some(p) => Prerelease::new(p.as_str()).ok()?,
            None => Prerelease::EMPTY,
        },
        build: match m.get(8) {
            Some(b) => BuildMetadata::new(b.as_str()).ok()?,
            None => BuildMetadata::EMPTY,
        },
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Clone, Debug)]
struct Comparator {
    op: Op,
    version: Version,
    /// The major number is a wildcard (or absent): `*`, `x`.
    dirty: bool,
    /// The minor number is a wildcard or absent: `1`, `1.x`.
    minor_dirty: bool,
    /// The patch number is a wildcard or absent: `1.2`, `1.2.*`.
    patch_dirty: bool,
}

/// A parsed constraint: `||`-separated groups of comparators that must all hold.
#[derive(Clone, Debug)]
pub struct Constraint {
    groups: Vec<Vec<Comparator>>,
    /// Per group: some comparator names a prerelease, so prereleases are considered there.
    group_has_pre: Vec<bool>,
}

impl Constraint {
    /// Parse Helm's constraint syntax: `>=1.2.0 <2`, `^1.2`, `~0.3`, `1.x`, `1.2 - 1.4.5`,
    /// `>=1, <2`, `^1 || ^2`, `*`.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let rewritten = rewrite_ranges(text);
        let mut groups = Vec::new();
        let mut group_has_pre = Vec::new();
        for part in rewritten.split("||") {
            if !VALID.is_match(part) {
                return Err(format!(
                    "{text:?} is not a version constraint: expected Helm's syntax, such as \">=1.2.0 <2.0.0\", \"^1.2\", \"~0.3\", \"1.x\", \"1.2 - 1.4\" or \"^1 || ^2\""
                ));
            }
            let mut group = Vec::new();
            for m in FIND.find_iter(part) {
                group.push(comparator(m.as_str()).ok_or_else(|| {
                    format!("{text:?}: cannot read the comparison {:?}", m.as_str())
                })?);
            }
            group_has_pre.push(group.iter().any(|c| !c.version.pre.is_empty()));
            groups.push(group);
        }
        Ok(Constraint {
            groups,
            group_has_pre,
        })
    }

    /// Whether `v` satisfies the constraint. Prereleases match only in a group that names
    /// a prerelease itself, or everywhere when `include_prereleases` (Helm's `--devel`).
    pub fn matches(&self, v: &Version, include_prereleases: bool) -> bool {
        self.groups
            .iter()
            .zip(&self.group_has_pre)
            .any(|(group, has_pre)| {
                let pre_ok = include_prereleases || *has_pre;
                group.iter().all(|c| c.check(v, pre_ok))
            })
    }
}

/// `1.2 - 1.4.5` becomes `>= 1.2, <= 1.4.5`.
fn rewrite_ranges(text: &str) -> String {
    let mut out = text.to_string();
    for caps in RANGE.captures_iter(text) {
        let (Some(whole), Some(low), Some(high)) = (caps.get(0), caps.get(1), caps.get(11)) else {
            continue;
        };
        out = out.replacen(
            whole.as_str(),
            &format!(">= {}, <= {} ", low.as_str(), high.as_str()),
            1,
        );
    }
    out
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn comparator(text: &str) -> Option<Comparator> {
    let m = ONE.captures(text)?;
    let op = match m.get(1).map_or("", |g| g.as_str()) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return None,
    };
    let part = |i: usize| m.get(i).map_or("", |g| g.as_str().trim_start_matches('.'));
    let pre = m.get(6).map_or("", |g| g.as_str());
    let (major, minor, patch) = (part(3), part(4), part(5));
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let text = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor) || minor.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}.{minor}.0{pre}")
    } else {
        m.get(2)?.as_str().to_string()
    };
    Some(Comparator {
        op,
        version: parse_version(&text)?,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Precedence order (build metadata ignored), as Masterminds' `Compare`.
fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

impl Comparator {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.version;
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty()) && v.pre != c.pre;
                    }
                }
                cmp(v, c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp(v, c) == Ordering::Greater;
                }
                match v.major.cmp(&c.major) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal if self.minor_dirty => false,
                    Ordering::Equal if self.patch_dirty => v.minor > c.minor,
                    Ordering::Equal => cmp(v, c) == Ordering::Greater,
                }
            }
            Op::Less => cmp(v, c) == Ordering::Less,
            Op::GreaterEqual => cmp(v, c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return cmp(v, c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    cmp(v, c) == Ordering::Equal
                }
            }
            Op::Caret => {
                if cmp(v, c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(constraint: &str, version: &str) -> bool {
        let c = Constraint::parse(constraint).unwrap_or_else(|e| panic!("{e}"));
        c.matches(&parse_version(version).expect("a version"), false)
    }

    #[test]
    fn versions_are_read_as_helm_reads_them() {
        assert_eq!(
            parse_version("v1.2").map(|v| v.to_string()).as_deref(),
            Some("1.2.0")
        );
        assert_eq!(
            parse_version("1.0.0-rc.1+build.5")
                .map(|v| v.to_string())
                .as_deref(),
            Some("1.0.0-rc.1+build.5")
        );
        assert!(parse_version("latest").is_none());
        assert!(parse_version("1.2.3.4").is_none());
        assert!(parse_version("").is_none());
    }

    #[test]
    fn comparisons_and_ranges() {
        assert!(ok(">=0.28.0 <1.0.0", "0.28.0"));
        assert!(ok(">=0.28.0 <1.0.0", "0.99.9"));
        assert!(!ok(">=0.28.0 <1.0.0", "1.0.0"));
        assert!(!ok(">=0.28.0 <1.0.0", "0.27.9"));
        assert!(ok(">= 0.3.0, < 1.0.0", "0.4.0"));
        assert!(ok(">1.2", "1.3.0"));
        assert!(
            !ok(">1.2", "1.2.9"),
            "a partial version is a wildcard: >1.2 means >1.2.x"
        );
        assert!(ok("<=1.2", "1.2.9"));
        assert!(!ok("<=1.2", "1.3.0"));
        assert!(ok("!=1.2.3", "1.2.4"));
        assert!(!ok("!=1.2.3", "1.2.3"));
        assert!(ok("1.2.3", "1.2.3+build"));
        assert!(!ok("1.2.3", "1.2.4"));
    }

    #[test]
    fn caret_tilde_and_wildcards() {
        assert!(ok("^1.2.3", "1.9.0"));
        assert!(!ok("^1.2.3", "2.0.0"));
        assert!(ok("^0.2.3", "0.2.9"));
        assert!(!ok("^0.2.3", "0.3.0"));
        assert!(ok("^0.0.3", "0.0.3"));
        assert!(!ok("^0.0.3", "0.0.4"));
        assert!(ok("^0", "0.9.0"));
        assert!(ok("~1.2.3", "1.2.9"));
        assert!(!ok("~1.2.3", "1.3.0"));
        assert!(ok("~1", "1.9.0"));
        assert!(ok("~>0.3", "0.3.5"));
        assert!(ok("1.x", "1.5.0"));
        assert!(!ok("1.x", "2.0.0"));
        assert!(ok("1.2.*", "1.2.7"));
        assert!(ok("*", "3.0.0"));
        assert!(ok("1", "1.4.0"), "a bare major is a wildcard");
    }

    #[test]
    fn hyphen_ranges_and_alternatives() {
        assert!(ok("1.2 - 1.4.5", "1.2.0"));
        assert!(ok("1.2 - 1.4.5", "1.4.5"));
        assert!(!ok("1.2 - 1.4.5", "1.4.6"));
        assert!(ok("^1.0 || ^3.0", "3.1.0"));
        assert!(!ok("^1.0 || ^3.0", "2.0.0"));
        assert!(ok("<1 || >=2.1 <3", "2.5.0"));
    }

    #[test]
    fn prereleases_match_only_when_asked() {
        assert!(!ok(">=1.0.0", "1.1.0-rc.1"));
        assert!(!ok("*", "1.1.0-rc.1"));
        assert!(
            ok(">=1.1.0-0", "1.1.0-rc.1"),
            "a range naming a prerelease considers them"
        );
        assert!(ok(">=1.1.0-0 <2 || ^3", "1.5.0-rc.1"));
        assert!(
            !ok(">=1.1.0-0 <2 || ^3", "3.1.0-rc.1"),
            "only in the group that names one"
        );
        let c = Constraint::parse(">=1.0.0").expect("parses");
        assert!(c.matches(&parse_version("1.1.0-rc.1").expect("v"), true));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "not a range",
            ">=1.0.0 <",
            "1.2.3.4",
            "~>",
            "1.0.0 - ",
            "=>>1",
            ">=1 &&<2",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
