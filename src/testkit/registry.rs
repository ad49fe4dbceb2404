//! A real registry process (CNCF distribution 2.8, Debian's `docker-registry`) on a free
//! 127.0.0.1 port, with its own storage and deletes enabled. Killed on drop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running registry.
pub struct Registry {
    addr: String,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

/// The registry binary: `$LAZYOCI_REGISTRY_BIN`, else `docker-registry` on PATH, else
/// `/usr/bin/docker-registry`.
pub fn registry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LAZYOCI_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("docker-registry"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// Options for [`Registry::start_with`].
#[derive(Default, Clone)]
pub struct RegistryConfig {
    /// `user:bcrypt-hash` htpasswd line: basic auth on.
    pub htpasswd: Option<String>,
    /// TLS certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Keep data here instead of a temporary directory.
    pub storage: Option<PathBuf>,
    /// Token auth: (realm URL, PEM bundle of the token signers' certificates), with
    /// [`super::token::SERVICE`] and [`super::token::ISSUER`].
    pub token: Option<(String, PathBuf)>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Registry {
    /// Start a plain-HTTP registry.
    pub async fn start() -> anyhow::Result<Registry> {
        Self::start_with(RegistryConfig::default()).await
    }

    /// Start a registry with options.
    pub async fn start_with(cfg: RegistryConfig) -> anyhow::Result<Registry> {
        let mut last = None;
        for _ in 0..5 {
            match Self::try_start(&cfg).await {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    async fn try_start(cfg: &RegistryConfig) -> anyhow::Result<Registry> {
        let bin = registry_bin();
        anyhow::ensure!(
            bin.is_file(),
            "docker-registry not found at {}; run scripts/install-test-deps.sh",
            bin.display()
        );
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let storage = cfg
            .storage
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: lazyoci-test-secret\n",
            storage.display()
        );
        if let Some((cert, key)) = &cfg.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(line) = &cfg.htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n"))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: lazyoci-test\n    path: {}\n",
                file.display()
            ));
        }
        if let Some((realm, bundle)) = &cfg.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                super::token::SERVICE,
                super::token::ISSUER,
                bundle.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = std::process::Command::new(&bin)
            .arg("serve")
            .arg(&config_file)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut reg = Registry { addr, dir, child };
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = reg.child.try_wait() {
                anyhow::bail!("registry exited ({status}):\n{}", reg.log());
            }
            if let Ok(r) = http
                .get(format!("{scheme}://{}/v2/", reg.addr))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                && (r.status().is_success() || r.status() == 401)
            {
                return Ok(reg);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "registry on {} did not answer within 10s:\n{}",
                    reg.addr,
                    reg.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its working directory (config, log, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far. Waits until the log stops growing (at most 2s): the
    /// registry writes an access-log line just after it answers.
    pub fn log(&self) -> String {
        let path = self.dir.path().join("registry.log");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = size();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    /// Access-log lines (`"METHOD /path HTTP/1.1" status …`) whose method is `method` and
    /// whose path contains `path_part`.
    pub fn requests(&self, method: &str, path_part: &str) -> Vec<String> {
        let needle = format!("\"{method} ");
        self.log()
            .lines()
            .filter_map(|l| {
                let start = l.find(&needle)?;
                let rest = &l[start + 1..];
                let end = rest.find('"')?;
                let req = &rest[..end];
                req.contains(path_part).then(|| {
                    format!(
                        "{} {}",
                        req,
                        rest[end + 1..]
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                    )
                })
            })
            .collect()
    }

    /// Stop the process.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
