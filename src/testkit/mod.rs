//! Test and demo harness: real registries (Debian's docker-registry, CNCF distribution) on
//! loopback ports, synthetic images pushed to them, a Helm repository served over HTTP,
//! and fixture charts. Used by the integration tests and by `lazyoci demo`; not part of
//! the mirroring API.

pub mod certs;
pub mod charts;
pub mod hangup;
pub mod helm_repo;
pub mod images;
pub mod oci;
pub mod proxy;
pub mod registry;
pub mod tls;
pub mod token;

use std::path::PathBuf;

/// The helm binary: `$LAZYOCI_HELM`, else the one `scripts/install-test-deps.sh` installs,
/// else `helm` on PATH.
pub fn helm_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LAZYOCI_HELM") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("LAZYOCI_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/lazyoci-tools"));
    let installed = tools.join("bin/helm");
    if installed.is_file() {
        installed
    } else {
        PathBuf::from("helm")
    }
}

/// Run `cmd`, a tool the tests need (skopeo, openssl, umoci, ctr, git), panicking with its
/// command line and stderr unless it succeeds; its stdout.
pub fn stdout_of(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "{} (scripts/install-test-deps.sh installs it): {e}",
            cmd.get_program().to_string_lossy()
        )
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run helm with its homes in `home` (never the user's), returning stdout.
pub fn helm(home: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(helm_bin())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run helm ({}): {e}; run scripts/install-test-deps.sh",
                helm_bin().display()
            )
        })?;
    if !out.status.success() {
        anyhow::bail!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
