//! Checks of single spec values, and the parsed forms of the target URL and OCI
//! locations. Pure.

/// A chart version as accepted in configs: it must be usable as an OCI tag once `+` is
/// written `_` (what Helm does).
pub fn check_version(v: &str) -> Result<(), String> {
    let tag = version_tag(v);
    let ok = !v.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a chart version: expected something like \"1.2.3\" (letters, digits, '.', '-', '+', '_')"
        ))
    }
}

/// The OCI tag Helm uses for a chart version (`+` is not allowed in tags).
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

pub(super) fn valid_chart_name(name: &str) -> bool {
    name.len() <= 250
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

pub(super) fn check_repo_url(v: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            // WHATWG parsing turns `https:///charts` into host `charts`; what was written
            // has no host.
            let after_scheme = v.split_once("://").map_or("", |(_, rest)| rest);
            if after_scheme.is_empty() || after_scheme.starts_with(['/', '\\', '?', '#']) {
                Err(format!(
                    "{v:?} has no host: expected http:// or https://host/path"
                ))
            } else if u.port() == Some(0) {
                Err(format!("{v:?}: the port must be a number from 1 to 65535"))
            } else if u.query().is_some() || u.fragment().is_some() {
                Err(format!(
                    "{v:?}: a Helm repository URL takes no query or fragment"
                ))
            } else {
                Ok(())
            }
        }
        Ok(u) if u.scheme() == "oci" => Err(format!(
            "{v:?} is an OCI registry: use type: oci with registry: {v}"
        )),
        _ => Err(format!(
            "{v:?} is not a Helm repository URL: expected http:// or https://host/path"
        )),
    }
}

/// Check a registry host (`name`, `name:port`, `1.2.3.4:5000`, `[::1]:5000`).
pub(super) fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None), // bare IPv6 is not allowed
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().map(|p| p == 0).unwrap_or(true)
    {
        return Err(format!(
            "{host:?}: the port must be a number from 1 to 65535"
        ));
    }
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if name.is_empty() {
        Err("no registry host: expected a host such as registry.example.com or 127.0.0.1:5000 before any path".into())
    } else if name_ok {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a registry host name: expected letters, digits, '-' and '.' (and an optional :port)"
        ))
    }
}

/// Check a repository path (`a/b-c/d_e`), as OCI allows.
pub fn check_repo_path(path: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !c.is_empty()
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    };
    if path.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a repository path: expected lowercase segments like \"team/charts\""
        ))
    }
}

/// The parsed target URL: a host and an optional repository path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl {
    /// `host[:port]`.
    pub host: String,
    /// Path under the host, without leading or trailing `/` (may be empty).
    pub path: String,
}

impl TargetUrl {
    /// Parse `host[:port][/path]`, optionally prefixed with `oci://`.
    pub fn parse(raw: &str) -> Result<TargetUrl, String> {
        if raw.is_empty() {
            return Err(
                "required: the registry host and optional path, e.g. registry.example.com/ns"
                    .into(),
            );
        }
        let rest = raw.strip_prefix("oci://").unwrap_or(raw);
        if rest.contains("://") {
            return Err(format!(
                "{raw:?}: expected a registry host and optional path like registry.example.com/ns, without http:// or https:// (use insecure: true for plain HTTP)"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_host(host).map_err(|m| format!("{raw:?}: {m}"))?;
        if path.contains('@')
            || path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            return Err(format!(
                "{raw:?} carries a tag or digest: the target is a registry and path prefix, images keep their own tags"
            ));
        }
        if !path.is_empty() {
            check_repo_path(path).map_err(|m| format!("{raw:?}: {m}"))?;
        }
        Ok(TargetUrl {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// `host/path/child` (or `host/child` with no path).
    pub fn join(&self, child: &str) -> String {
        let mut s = self.host.clone();
        for part in [self.path.as_str(), child] {
            if !part.is_empty() {
                s.push('/');
                s.push_str(part);
            }
        }
        s
    }
}

/// A parsed `oci://host/path` chart location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciLocation {
    /// `host[:port]`.
    pub host: String,
    /// Repository path prefix (may be empty).
    pub path: String,
}

impl OciLocation {
    /// Parse `oci://host[:port][/path]`.
    pub fn parse(raw: &str) -> Result<OciLocation, String> {
        let Some(rest) = raw.strip_prefix("oci://") else {
            return Err(format!(
                "{raw:?}: an OCI registry must be written oci://host/path"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_host(host).map_err(|m| format!("{raw:?}: {m}"))?;
        if path.contains('@') || path.contains(':') {
            return Err(format!(
                "{raw:?}: the registry URL must not carry a tag or digest; versions come from the versions list"
            ));
        }
        if !path.is_empty() {
            check_repo_path(path).map_err(|m| format!("{raw:?}: {m}"))?;
        }
        Ok(OciLocation {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// The repository holding `chart`.
    pub fn repository(&self, chart: &str) -> String {
        if self.path.is_empty() {
            chart.to_string()
        } else {
            format!("{}/{chart}", self.path)
        }
    }
}

/// Parse a Go-style duration (`90s`, `1h30m`, `500ms`, `1.5h`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * factor;
    }
    (total.is_finite() && total < 1e9).then(|| std::time::Duration::from_secs_f64(total))
}
