//! Node-level mirror configuration, the cluster-wide alternative to values overlays: the
//! container runtime itself sends each source host's pulls to the target. Pure.
//!
//! - containerd: one `hosts.toml` per source host (`/etc/containerd/certs.d/<host>/`), with
//!   the target as a pull/resolve host; a target with a path gets `override_path` and the
//!   `/v2/<path>` API root, since lazyoci keeps the repository path under it.
//! - CRI-O and podman: a `registries.conf` (v2) `[[registry]]` per source host with the
//!   target (and its path) as `[[registry.mirror]]`.
//!
//! lazyoci drops the source host when it remaps (`quay.io/x/y` → `<target>/x/y`), so every
//! source host shares one mirror path; the output says so, and names the repositories that
//! two hosts would both need.

use std::collections::{BTreeMap, BTreeSet};

use crate::reference::ImageRef;
use crate::spec::TargetUrl;

/// The `server` a host's pulls fall back to when the mirror does not answer.
fn upstream_server(host: &str) -> String {
    if host == "docker.io" {
        "https://registry-1.docker.io".into()
    } else {
        format!("https://{host}")
    }
}

/// A TOML basic string (JSON's string escapes are a subset TOML accepts).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// What to configure: the source hosts of the images and the repositories two or more
/// hosts would share under the target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Source hosts, sorted (the target itself excluded).
    pub hosts: Vec<String>,
    /// Target repository → the source hosts whose images land there, when more than one.
    pub shared: BTreeMap<String, Vec<String>>,
}

impl Plan {
    /// The plan for `images` (source references) mirrored under `target`.
    pub fn new(images: &[ImageRef], target: &TargetUrl) -> Plan {
        let mut hosts = BTreeSet::new();
        let mut by_repo: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for i in images.iter().filter(|i| i.registry != target.host) {
            hosts.insert(i.registry.clone());
            let dst = i.remap(target);
            by_repo
                .entry(format!("{}/{}", dst.registry, dst.repository))
                .or_default()
                .insert(i.registry.clone());
        }
        Plan {
            hosts: hosts.into_iter().collect(),
            shared: by_repo
                .into_iter()
                .filter(|(_, h)| h.len() > 1)
                .map(|(r, h)| (r, h.into_iter().collect()))
                .collect(),
        }
    }

    /// Comment lines (`# …`) saying that every source host shares the mirror path, and
    /// which repositories two hosts would both need.
    pub fn remarks(&self, target: &TargetUrl) -> String {
        let mut s = String::new();
        let path = if target.path.is_empty() {
            target.host.clone()
        } else {
            format!("{}/{}", target.host, target.path)
        };
        if self.hosts.len() > 1 {
            s.push_str(&format!(
                "# Note: lazyoci drops the source host when it mirrors, so {} all use the same\n# mirror path {path}: an image name present under two of these hosts maps to one place.\n",
                self.hosts.join(", ")
            ));
        }
        if self.shared.is_empty() {
            if self.hosts.len() > 1 {
                s.push_str("# No image of this config collides there.\n");
            }
        } else {
            s.push_str("# Collisions: these repositories would be needed by two source hosts at once;\n# lazyoci refuses to mirror such images, and a runtime mirror cannot tell them apart:\n");
            for (repo, hosts) in &self.shared {
                s.push_str(&format!("#   {repo} ← {}\n", hosts.join(", ")));
            }
        }
        s
    }
}

/// The URL of the target's API as a containerd host, and whether it needs `override_path`.
fn containerd_host(target: &TargetUrl, insecure: bool) -> (String, bool) {
    let scheme = if insecure { "http" } else { "https" };
    if target.path.is_empty() {
        (format!("{scheme}://{}", target.host), false)
    } else {
        (
            format!("{scheme}://{}/v2/{}", target.host, target.path),
            true,
        )
    }
}

/// containerd `hosts.toml` files, as (path under `/etc/containerd/certs.d`, content).
pub fn containerd(plan: &Plan, target: &TargetUrl, insecure: bool) -> Vec<(String, String)> {
    let (url, override_path) = containerd_host(target, insecure);
    plan.hosts
        .iter()
        .map(|host| {
            let mut s = format!(
                "# Pulls of {host} images go to the lazyoci mirror first.\nserver = {}\n\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                quoted(&upstream_server(host)),
                quoted(&url)
            );
            if override_path {
                s.push_str("  override_path = true\n");
            }
            if insecure {
                s.push_str("  skip_verify = true\n");
            }
            (format!("{host}/hosts.toml"), s)
        })
        .collect()
}

/// A CRI-O / podman `registries.conf` (v2) section per source host, mirrored at the target.
pub fn registries_conf(plan: &Plan, target: &TargetUrl, insecure: bool) -> String {
    let location = if target.path.is_empty() {
        target.host.clone()
    } else {
        format!("{}/{}", target.host, target.path)
    };
    let mut s = String::new();
    for host in &plan.hosts {
        s.push_str(&format!(
            "[[registry]]\nprefix = {h}\nlocation = {h}\n\n[[registry.mirror]]\nlocation = {}\ninsecure = {insecure}\n\n",
            quoted(&location),
            h = quoted(host)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(list: &[&str]) -> Vec<ImageRef> {
        list.iter().map(|s| ImageRef::parse(s).unwrap()).collect()
    }

    #[test]
    fn hosts_and_shared_repositories() {
        let t = TargetUrl::parse("reg.example.com/ns").unwrap();
        let p = Plan::new(
            &refs(&[
                "nginx:1",
                "quay.io/x/y:1",
                "docker.io/x/y:2",
                "reg.example.com/ns/already:1",
            ]),
            &t,
        );
        assert_eq!(p.hosts, ["docker.io", "quay.io"]);
        assert_eq!(
            p.shared,
            BTreeMap::from([(
                "reg.example.com/ns/x/y".to_string(),
                vec!["docker.io".to_string(), "quay.io".to_string()]
            )])
        );
        let r = p.remarks(&t);
        assert!(
            r.contains("docker.io, quay.io all use the same\n# mirror path reg.example.com/ns")
        );
        assert!(
            r.contains("#   reg.example.com/ns/x/y ← docker.io, quay.io"),
            "{r}"
        );
    }

    #[test]
    fn containerd_uses_override_path_only_with_a_target_path() {
        let p = Plan {
            hosts: vec!["docker.io".into()],
            ..Default::default()
        };
        let with = containerd(&p, &TargetUrl::parse("r.example/ns").unwrap(), false);
        assert_eq!(with[0].0, "docker.io/hosts.toml");
        assert!(
            with[0]
                .1
                .contains("server = \"https://registry-1.docker.io\"")
        );
        assert!(with[0].1.contains("[host.\"https://r.example/v2/ns\"]"));
        assert!(with[0].1.contains("override_path = true"));
        let bare = containerd(&p, &TargetUrl::parse("127.0.0.1:5000").unwrap(), true);
        assert!(bare[0].1.contains("[host.\"http://127.0.0.1:5000\"]"));
        assert!(!bare[0].1.contains("override_path"));
    }
}
