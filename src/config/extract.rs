//! Typed extraction from the YAML tree, collecting every problem with its key path. Pure.

use super::read::{find, join};
use super::yaml::{Node, Pos, Value};
use super::{ConfigForm, Problem};
use crate::result::MovedTag;
use crate::spec::{
    AUTH_KEYS, AuthSpec, ChartMirrorSpec, DiscoverySource, Field, ImagesSpec, LocalObjectReference,
    SourceType, TargetSpec, UpstreamSpec,
};

#[derive(Default)]
pub(super) struct Extract {
    pub(super) problems: Vec<Problem>,
    target_node: Option<Node>,
    root_node: Option<Node>,
    pub(super) upstream_nodes: Vec<(String, Node)>,
}

const MIRROR_ROOT_KEYS: &[&str] = &[
    "target",
    "upstreams",
    "images",
    "source-mirrors",
    "sourceMirrors",
    "mirrors-only",
    "mirrorsOnly",
];
const MIRROR_TARGET_KEYS: &[&str] = &["url", "insecure", "charts-prefix"];
const MIRROR_UPSTREAM_KEYS: &[&str] = &[
    "type",
    "repo",
    "registry",
    "path",
    "chart",
    "versions",
    "semver",
    "latest",
    "prereleases",
    "exclude",
    "values",
    "values-files",
    "kube-version",
    "api-versions",
    "images",
    "auth",
];
const IMAGES_KEYS: &[&str] = &["sources", "extra", "exclude"];
const CRD_SPEC_KEYS: &[&str] = &[
    "target",
    "upstreams",
    "interval",
    "suspend",
    "timeout",
    "concurrency",
    "chartsOnly",
    "imagesOnly",
    "images",
    "perHostConcurrency",
    "onMovedTag",
    "retries",
    "signatures",
    "sourceMirrors",
    "mirrorsOnly",
];
const CRD_TARGET_KEYS: &[&str] = &[
    "url",
    "insecure",
    "chartsPrefix",
    "secretRef",
    "certSecretRef",
];
const CRD_UPSTREAM_KEYS: &[&str] = &[
    "name",
    "type",
    "repo",
    "registry",
    "path",
    "chart",
    "versions",
    "semver",
    "latest",
    "prereleases",
    "exclude",
    "secretRef",
    "certSecretRef",
    "values",
    "valuesFiles",
    "kubeVersion",
    "apiVersions",
    "images",
];

fn kebab(camel: &str) -> String {
    let mut s = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('-');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

impl Extract {
    fn opt_boolean(&mut self, entries: &[(String, Node)], key: &str, path: &str) -> Option<bool> {
        find(entries, key)
            .filter(|n| !n.is_null())
            .map(|_| self.boolean(entries, key, path))
    }

    fn moved_tag(&mut self, entries: &[(String, Node)], path: &str) -> Option<MovedTag> {
        let node = find(entries, "onMovedTag")?;
        let text = self.opt_string(entries, "onMovedTag", path)?;
        match text.as_str() {
            "overwrite" => Some(MovedTag::Overwrite),
            "skip" => Some(MovedTag::Skip),
            "fail" => Some(MovedTag::Fail),
            other => {
                self.problem(
                    join(path, "onMovedTag"),
                    node.pos,
                    format!("expected one of overwrite, skip, fail; found {other:?}"),
                );
                None
            }
        }
    }

    fn values(&mut self, entries: &[(String, Node)], path: &str) -> Option<serde_json::Value> {
        let node = find(entries, "values")?;
        match &node.value {
            _ if node.is_null() => None,
            Value::Map(_) => Some(node.to_json()),
            _ => {
                self.problem(
                    join(path, "values"),
                    node.pos,
                    format!(
                        "expected a mapping of chart values (like values.yaml), found {}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    /// `sourceMirrors` (mirror.yaml: also `source-mirrors`): host → list of mirrors.
    fn source_mirrors(
        &mut self,
        entries: &[(String, Node)],
        path: &str,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let key = if find(entries, "source-mirrors").is_some() {
            "source-mirrors"
        } else {
            "sourceMirrors"
        };
        let mut out = std::collections::BTreeMap::new();
        let Some(node) = find(entries, key).filter(|n| !n.is_null()) else {
            return out;
        };
        let at = join(path, key);
        let Some(map) = self.map(node, &at) else {
            return out;
        };
        for (host, _) in map {
            let list = self.string_list(
                map,
                host,
                &at,
                "a list of mirrors like [artifactory.corp.example/dockerhub-remote]",
            );
            out.insert(host.clone(), list);
        }
        out
    }

    fn images(&mut self, entries: &[(String, Node)], path: &str) -> Option<ImagesSpec> {
        let node = find(entries, "images")?;
        let at = join(path, "images");
        if node.is_null() {
            return None;
        }
        let map = self.map(node, &at)?;
        self.unknown_keys(map, IMAGES_KEYS, &at);
        let sources = find(map, "sources").filter(|n| !n.is_null()).map(|n| {
            let names = self.string_list(
                map,
                "sources",
                &at,
                "a list of sources (rendered, annotations, lockfile, values, extra)",
            );
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match DiscoverySource::parse(name) {
                    Some(s) if !out.contains(&s) => out.push(s),
                    Some(_) => {}
                    None => {
                        let pos = match &n.value {
                            Value::Seq(items) => items.get(i).map_or(n.pos, |x| x.pos),
                            _ => n.pos,
                        };
                        self.problem(
                            format!("{at}.sources[{i}]"),
                            pos,
                            format!(
                                "unknown source {name:?}; expected one of rendered, annotations, lockfile, values, extra"
                            ),
                        );
                    }
                }
            }
            out
        });
        Some(ImagesSpec {
            sources,
            extra: self.string_list(map, "extra", &at, "a list of image references"),
            exclude: self.string_list(map, "exclude", &at, "a list of regular expressions"),
        })
    }

    fn source_type(
        &mut self,
        entries: &[(String, Node)],
        path: &str,
        upstream_pos: Pos,
    ) -> Option<SourceType> {
        let Some(node) = find(entries, "type") else {
            self.problem(
                join(path, "type"),
                upstream_pos,
                "required: one of repo, oci, local",
            );
            return None;
        };
        let text = self.string(node, &join(path, "type"))?;
        match text.as_str() {
            "repo" => Some(SourceType::Repo),
            "oci" => Some(SourceType::Oci),
            "local" => Some(SourceType::Local),
            other => {
                self.problem(
                    join(path, "type"),
                    node.pos,
                    format!("expected one of repo, oci, local; found {other:?}"),
                );
                None
            }
        }
    }

    fn secret_ref(
        &mut self,
        entries: &[(String, Node)],
        key: &str,
        path: &str,
    ) -> Option<LocalObjectReference> {
        let node = find(entries, key)?;
        let at = join(path, key);
        let map = self.map(node, &at)?;
        self.unknown_keys(map, &["name"], &at);
        match find(map, "name") {
            Some(n) => self
                .string(n, &join(&at, "name"))
                .map(|name| LocalObjectReference { name }),
            None => {
                self.problem(
                    join(&at, "name"),
                    node.pos,
                    "required: the name of a Secret in the same namespace",
                );
                None
            }
        }
    }

    /// `auth` of a mirror.yaml upstream; each key camelCase (as in the ChartMirror docs) or
    /// kebab-case (as the rest of mirror.yaml).
    fn auth(&mut self, entries: &[(String, Node)], path: &str) -> Option<AuthSpec> {
        let node = find(entries, "auth")?;
        let at = join(path, "auth");
        if node.is_null() {
            return None;
        }
        let map = self.map(node, &at)?;
        let kebabs: Vec<String> = AUTH_KEYS.iter().map(|k| kebab(k)).collect();
        let mut allowed: Vec<&str> = AUTH_KEYS.to_vec();
        allowed.extend(kebabs.iter().map(String::as_str));
        for (k, v) in map {
            if matches!(k.as_str(), "password" | "token") {
                self.problem(
                    join(&at, k),
                    v.pos,
                    format!(
                        "a secret is never written in the config: use {k}Env (an environment variable) or {k}File (a file, relative to the config)"
                    ),
                );
            }
        }
        let known: Vec<(String, Node)> = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "password" | "token"))
            .cloned()
            .collect();
        self.unknown_keys(&known, &allowed, &at);
        let get = |x: &mut Self, key: &str| -> Option<String> {
            let k = kebab(key);
            if k != key && find(map, key).is_some() && find(map, &k).is_some() {
                x.problem(
                    join(&at, &k),
                    find(map, &k).map_or(node.pos, |n| n.pos),
                    format!("{key} is set twice (as {key} and {k})"),
                );
            }
            let spelled = if find(map, key).is_some() { key } else { &k };
            x.opt_string(map, spelled, &at)
        };
        let pass_key = if find(map, "passCredentials").is_some() {
            "passCredentials"
        } else {
            "pass-credentials"
        };
        Some(AuthSpec {
            username: get(self, "username"),
            username_env: get(self, "usernameEnv"),
            password_env: get(self, "passwordEnv"),
            password_file: get(self, "passwordFile"),
            token_env: get(self, "tokenEnv"),
            token_file: get(self, "tokenFile"),
            cert_file: get(self, "certFile"),
            key_file: get(self, "keyFile"),
            ca_file: get(self, "caFile"),
            pass_credentials: self.boolean(map, pass_key, &at),
        })
    }

    fn upstream(
        &mut self,
        name: String,
        node: &Node,
        path: &str,
        crd: bool,
    ) -> Option<UpstreamSpec> {
        let entries = self.map(node, path)?;
        let others: Vec<(String, Node)> = entries
            .iter()
            .filter(|(k, _)| !(crd && k == "auth"))
            .cloned()
            .collect();
        self.unknown_keys(
            &others,
            if crd {
                CRD_UPSTREAM_KEYS
            } else {
                MIRROR_UPSTREAM_KEYS
            },
            path,
        );
        if crd && let Some(n) = find(entries, "auth") {
            self.problem(
                join(path, "auth"),
                n.pos,
                "auth is a mirror.yaml key; a ChartMirror takes secretRef (a Secret: username/password or bearerToken, tls.crt/tls.key/ca.crt) and certSecretRef",
            );
        }
        let source_type = self.source_type(entries, path, node.pos);
        let chart = match find(entries, "chart") {
            Some(n) => self.string(n, &join(path, "chart")).unwrap_or_default(),
            None => {
                self.problem(
                    join(path, "chart"),
                    node.pos,
                    "required: the chart name as published upstream",
                );
                String::new()
            }
        };
        if find(entries, "versions").is_none() && find(entries, "semver").is_none() {
            self.problem(
                join(path, "versions"),
                node.pos,
                "required: a list of chart versions, or semver: a range of versions to follow",
            );
        }
        let upstream = UpstreamSpec {
            name,
            source_type: source_type.unwrap_or_default(),
            repo: self.opt_string(entries, "repo", path),
            registry: self.opt_string(entries, "registry", path),
            path: self.opt_string(entries, "path", path),
            chart,
            versions: self.versions(entries, path),
            semver: self.opt_string(entries, "semver", path),
            latest: self.number(entries, "latest", path),
            prereleases: self.boolean(entries, "prereleases", path),
            exclude: self.string_list(
                entries,
                "exclude",
                path,
                "a list of versions or regular expressions",
            ),
            secret_ref: if crd {
                self.secret_ref(entries, "secretRef", path)
            } else {
                None
            },
            cert_secret_ref: if crd {
                self.secret_ref(entries, "certSecretRef", path)
            } else {
                None
            },
            auth: if crd { None } else { self.auth(entries, path) },
            values: self.values(entries, path),
            values_files: self.string_list(
                entries,
                if crd { "valuesFiles" } else { "values-files" },
                path,
                "a list of values file names",
            ),
            kube_version: self.opt_string(
                entries,
                if crd { "kubeVersion" } else { "kube-version" },
                path,
            ),
            api_versions: self.string_list(
                entries,
                if crd { "apiVersions" } else { "api-versions" },
                path,
                "a list of API versions like [monitoring.coreos.com/v1]",
            ),
            images: self.images(entries, path),
        };
        source_type.map(|_| upstream)
    }

    fn target(
        &mut self,
        node: Option<&Node>,
        root_pos: Pos,
        path: &str,
        crd: bool,
    ) -> Option<TargetSpec> {
        let Some(node) = node else {
            self.problem(path, root_pos, "required: the registry to mirror into, e.g. target: {url: registry.example.com/ns}");
            return None;
        };
        self.target_node = Some(node.clone());
        let entries = self.map(node, path)?;
        self.unknown_keys(
            entries,
            if crd {
                CRD_TARGET_KEYS
            } else {
                MIRROR_TARGET_KEYS
            },
            path,
        );
        let url = match find(entries, "url") {
            // `url: 5000` is a valid host name to the checks below, and never what was meant.
            Some(n) if n.kind() == "number" => {
                let Value::Scalar { text, .. } = &n.value else {
                    unreachable!("numbers are scalars")
                };
                self.problem(
                    join(path, "url"),
                    n.pos,
                    format!(
                        "expected a registry host and optional path such as registry.example.com/ns, found number {text}"
                    ),
                );
                None
            }
            Some(n) => self.string(n, &join(path, "url")),
            None => {
                self.problem(
                    join(path, "url"),
                    node.pos,
                    "required: registry host and optional path, e.g. registry.example.com/ns",
                );
                None
            }
        };
        let prefix_key = if crd { "chartsPrefix" } else { "charts-prefix" };
        let insecure = self.boolean(entries, "insecure", path);
        let charts_prefix = self
            .opt_string(entries, prefix_key, path)
            .filter(|p| !p.is_empty());
        let secret_ref = if crd {
            self.secret_ref(entries, "secretRef", path)
        } else {
            None
        };
        let cert_secret_ref = if crd {
            self.secret_ref(entries, "certSecretRef", path)
        } else {
            None
        };
        Some(TargetSpec {
            url: url?,
            insecure,
            charts_prefix,
            secret_ref,
            cert_secret_ref,
        })
    }

    pub(super) fn mirror_yaml(&mut self, doc: &Node) -> Option<ChartMirrorSpec> {
        self.root_node = Some(doc.clone());
        let root = self.map(doc, "")?;
        self.unknown_keys(root, MIRROR_ROOT_KEYS, "");
        let target = self.target(find(root, "target"), doc.pos, "target", false);
        let mut upstreams = Vec::new();
        match find(root, "upstreams") {
            None => self.problem(
                "upstreams",
                doc.pos,
                "required: a map of chart keys to their sources",
            ),
            Some(node) => {
                if let Some(entries) = self.map(node, "upstreams") {
                    if entries.is_empty() {
                        self.problem("upstreams", node.pos, "must define at least one upstream");
                    }
                    for (key, unode) in entries {
                        let path = format!("upstreams.{key}");
                        self.upstream_nodes.push((key.clone(), unode.clone()));
                        if key.is_empty() {
                            self.problem(
                                "upstreams.\"\"",
                                unode.pos,
                                "upstream keys must not be empty: the key names the chart for --chart",
                            );
                        }
                        if let Some(u) = self.upstream(key.clone(), unode, &path, false) {
                            upstreams.push(u);
                        }
                    }
                }
            }
        }
        let images = self.images(root, "");
        let source_mirrors = self.source_mirrors(root, "");
        let only_key = if find(root, "mirrors-only").is_some() {
            "mirrors-only"
        } else {
            "mirrorsOnly"
        };
        let mirrors_only = self.boolean(root, only_key, "");
        if !self.problems.is_empty() {
            return None;
        }
        Some(ChartMirrorSpec {
            target: target?,
            upstreams,
            images,
            source_mirrors,
            mirrors_only,
            ..Default::default()
        })
    }

    pub(super) fn manifest(&mut self, doc: &Node) -> Option<ChartMirrorSpec> {
        self.root_node = Some(doc.clone());
        let root = self.map(doc, "")?;
        self.unknown_keys(
            root,
            &["apiVersion", "kind", "metadata", "spec", "status"],
            "",
        );
        match find(root, "kind").map(|n| (n, self.string(n, "kind"))) {
            Some((_, Some(k))) if k == "ChartMirror" => {}
            Some((n, Some(k))) => {
                self.problem("kind", n.pos, format!("expected ChartMirror, found {k:?}"))
            }
            _ => self.problem("kind", doc.pos, "required: ChartMirror"),
        }
        if let Some(n) = find(root, "apiVersion")
            && let Some(v) = self.string(n, "apiVersion")
            && v != "lazyoci.io/v1alpha1"
        {
            self.problem(
                "apiVersion",
                n.pos,
                format!("expected lazyoci.io/v1alpha1, found {v:?}"),
            );
        }
        let Some(spec_node) = find(root, "spec") else {
            self.problem(
                "spec",
                doc.pos,
                "required: a mapping with target and upstreams",
            );
            return None;
        };
        let spec = self.map(spec_node, "spec")?;
        self.unknown_keys(spec, CRD_SPEC_KEYS, "spec");
        let target = self.target(find(spec, "target"), spec_node.pos, "spec.target", true);
        let mut upstreams = Vec::new();
        match find(spec, "upstreams") {
            None => self.problem(
                "spec.upstreams",
                spec_node.pos,
                "required: a list of upstream charts",
            ),
            Some(node) => match &node.value {
                Value::Seq(items) => {
                    if items.is_empty() {
                        self.problem(
                            "spec.upstreams",
                            node.pos,
                            "must list at least one upstream",
                        );
                    }
                    for (i, unode) in items.iter().enumerate() {
                        let path = format!("spec.upstreams[{i}]");
                        let name = match unode.get("name") {
                            Some(n) => self.string(n, &format!("{path}.name")).unwrap_or_default(),
                            None => {
                                self.problem(
                                    format!("{path}.name"),
                                    unode.pos,
                                    "required: a unique key for this upstream",
                                );
                                String::new()
                            }
                        };
                        self.upstream_nodes.push((name.clone(), unode.clone()));
                        if let Some(u) = self.upstream(name, unode, &path, true) {
                            upstreams.push(u);
                        }
                    }
                }
                _ => self.problem(
                    "spec.upstreams",
                    node.pos,
                    format!("expected a list, found {}", node.kind()),
                ),
            },
        }
        let spec_out = ChartMirrorSpec {
            interval: self.opt_string(spec, "interval", "spec"),
            suspend: self.boolean(spec, "suspend", "spec"),
            timeout: self.opt_string(spec, "timeout", "spec"),
            concurrency: self.number(spec, "concurrency", "spec"),
            charts_only: self.boolean(spec, "chartsOnly", "spec"),
            images_only: self.boolean(spec, "imagesOnly", "spec"),
            images: self.images(spec, "spec"),
            per_host_concurrency: self.number(spec, "perHostConcurrency", "spec"),
            on_moved_tag: self.moved_tag(spec, "spec"),
            retries: self.number(spec, "retries", "spec"),
            signatures: self.opt_boolean(spec, "signatures", "spec"),
            source_mirrors: self.source_mirrors(spec, "spec"),
            mirrors_only: self.boolean(spec, "mirrorsOnly", "spec"),
            target: target.unwrap_or_default(),
            upstreams,
        };
        self.problems.is_empty().then_some(spec_out)
    }

    /// The key and node of the upstream at index `i`, as read.
    fn upstream_node(&self, i: usize) -> (&str, Option<&Node>) {
        match self.upstream_nodes.get(i) {
            Some((key, node)) => (key.as_str(), Some(node)),
            None => ("", None),
        }
    }

    /// Record a semantic problem at the key path and line of `field`.
    pub(super) fn problem_at(&mut self, field: &Field, form: ConfigForm, message: String) {
        let (path, line) = self.locate(field, form);
        self.problems.push(Problem {
            path,
            line,
            message,
        });
    }

    /// Key path and line of a semantic problem, in the naming of the file's form.
    pub(super) fn locate(&self, field: &Field, form: ConfigForm) -> (String, usize) {
        let crd = form == ConfigForm::ChartMirror;
        let name = |f: &str| if crd { f.to_string() } else { kebab(f) };
        let line_of = |node: Option<&Node>, key: &str| {
            node.map(|n| n.get(key).map_or(n.pos.line, |v| v.pos.line))
                .unwrap_or(0)
        };
        match field {
            Field::Target(f) => {
                let prefix = if crd { "spec.target" } else { "target" };
                (
                    format!("{prefix}.{}", name(f)),
                    line_of(self.target_node.as_ref(), &name(f)),
                )
            }
            Field::Spec(f) if !crd => {
                // mirror.yaml holds spec-level keys at its top level, either spelling.
                let root = self.root_node.as_ref();
                let spelled = if root.is_some_and(|r| r.get(&kebab(f)).is_some()) {
                    kebab(f)
                } else {
                    f.to_string()
                };
                (spelled.clone(), line_of(root, &spelled))
            }
            Field::Spec(f) => {
                let spec_node = self.root_node.as_ref().and_then(|r| r.get("spec"));
                (format!("spec.{f}"), line_of(spec_node, f))
            }
            Field::Upstream(i, f) => {
                let (key, node) = self.upstream_node(*i);
                let path = if crd {
                    format!("spec.upstreams[{i}].{f}")
                } else {
                    format!("upstreams.{key}.{}", name(f))
                };
                (path, line_of(node, &name(f)))
            }
            Field::Auth(i, f) => {
                let (key, node) = self.upstream_node(*i);
                let auth = node.and_then(|n| n.get("auth"));
                let spelled =
                    if auth.is_some_and(|a| a.get(f).is_none() && a.get(&kebab(f)).is_some()) {
                        kebab(f)
                    } else {
                        f.to_string()
                    };
                let path = if crd {
                    format!("spec.upstreams[{i}].auth.{spelled}")
                } else {
                    format!("upstreams.{key}.auth.{spelled}")
                };
                (path, line_of(auth, &spelled))
            }
            Field::Images(upstream, f) => {
                let (path, node) = match upstream {
                    None if crd => (
                        "spec.images".to_string(),
                        self.root_node.as_ref().and_then(|r| r.get("spec")),
                    ),
                    None => ("images".to_string(), self.root_node.as_ref()),
                    Some(i) => {
                        let (key, node) = self.upstream_node(*i);
                        let path = if crd {
                            format!("spec.upstreams[{i}].images")
                        } else {
                            format!("upstreams.{key}.images")
                        };
                        (path, node)
                    }
                };
                let images = node.and_then(|n| n.get("images"));
                (format!("{path}.{f}"), line_of(images, f))
            }
        }
    }
}
