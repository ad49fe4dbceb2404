//! Rendering a chart with the real `helm template`. Runs a subprocess.
//!
//! Hooks are kept and so are helm-test pods: an air-gapped `helm test` needs their images
//! too. helm runs with its cache, config and data homes in lazyoci's own directory, so the
//! user's helm setup is neither read nor changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

/// The Kubernetes version charts are rendered for unless configured otherwise (helm's own
/// default is years old and makes `kubeVersion:` constraints fail).
pub const DEFAULT_KUBE_VERSION: &str = "1.34.0";

/// What one render uses besides the chart.
#[derive(Clone, Debug, Default)]
pub struct RenderInputs {
    /// Values files, applied in order (`-f`), each as (name for messages, content).
    pub values: Vec<(String, Vec<u8>)>,
    /// `--kube-version`; the renderer's default when `None`.
    pub kube_version: Option<String>,
    /// `--api-versions`.
    pub api_versions: Vec<String>,
}

/// How to render.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Default `--kube-version`.
    pub kube_version: String,
    /// Time allowed for one render.
    pub timeout: Duration,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            kube_version: DEFAULT_KUBE_VERSION.into(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Why rendering failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// helm is not installed or not runnable.
    #[error("cannot run helm at {path}: {reason}; install helm or set LAZYOCI_HELM to its path")]
    NoHelm {
        /// The path tried.
        path: String,
        /// Why.
        reason: String,
    },
    /// helm template failed.
    #[error("helm template failed: {0}")]
    Failed(String),
    /// helm took too long.
    #[error("helm template did not finish within {0}s")]
    Timeout(u64),
    /// The output is not parseable.
    #[error("{0}")]
    Output(String),
    /// Local IO failed.
    #[error("cannot prepare rendering: {0}")]
    Io(String),
}

/// Runs helm.
#[derive(Clone, Debug)]
pub struct Renderer {
    helm: PathBuf,
    workdir: PathBuf,
    options: RenderOptions,
}

/// The helm binary to use: `$LAZYOCI_HELM`, else `helm` on `PATH`.
pub fn helm_from_env() -> PathBuf {
    std::env::var_os("LAZYOCI_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"))
}

impl Renderer {
    /// A renderer using `helm`, keeping scratch files under `workdir`.
    pub fn new(helm: PathBuf, workdir: PathBuf, options: RenderOptions) -> Self {
        Renderer {
            helm,
            workdir,
            options,
        }
    }

    fn command(&self, home: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.helm);
        cmd.env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Check that helm runs; returns its version line.
    pub async fn check(&self) -> Result<String, RenderError> {
        let no_helm = |reason: String| RenderError::NoHelm {
            path: self.helm.display().to_string(),
            reason,
        };
        let home = tempfile::tempdir().map_err(|e| RenderError::Io(e.to_string()))?;
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            self.command(home.path())
                .args(["version", "--short"])
                .output(),
        )
        .await
        .map_err(|_| no_helm("no answer within 30s".into()))?
        .map_err(|e| no_helm(e.to_string()))?;
        if !out.status.success() {
            return Err(no_helm(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `helm template` the archive; returns the rendered YAML.
    pub async fn render(
        &self,
        release: &str,
        archive: &Bytes,
        inputs: &RenderInputs,
    ) -> Result<String, RenderError> {
        std::fs::create_dir_all(&self.workdir)
            .map_err(|e| RenderError::Io(format!("{}: {e}", self.workdir.display())))?;
        let scratch = tempfile::Builder::new()
            .prefix("render-")
            .tempdir_in(&self.workdir)
            .map_err(|e| RenderError::Io(e.to_string()))?;
        let chart = scratch.path().join("chart.tgz");
        tokio::fs::write(&chart, archive)
            .await
            .map_err(|e| RenderError::Io(e.to_string()))?;
        let mut cmd = self.command(scratch.path());
        cmd.arg("template").arg(release).arg(&chart).args([
            "--namespace",
            "default",
            "--kube-version",
            inputs
                .kube_version
                .as_deref()
                .unwrap_or(&self.options.kube_version),
        ]);
        for (i, (_, content)) in inputs.values.iter().enumerate() {
            let file = scratch.path().join(format!("values-{i}.yaml"));
            tokio::fs::write(&file, content)
                .await
                .map_err(|e| RenderError::Io(e.to_string()))?;
            cmd.arg("--values").arg(file);
        }
        for api in &inputs.api_versions {
            cmd.arg("--api-versions").arg(api);
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().map_err(|e| RenderError::NoHelm {
            path: self.helm.display().to_string(),
            reason: e.to_string(),
        })?;
        let out = tokio::time::timeout(self.options.timeout, child.wait_with_output())
            .await
            .map_err(|_| RenderError::Timeout(self.options.timeout.as_secs()))?
            .map_err(|e| RenderError::Io(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let msg: String = stderr
                .trim()
                .trim_start_matches("Error: ")
                .chars()
                .take(2000)
                .collect();
            let mut msg = msg.replace(&chart.display().to_string(), "chart");
            for (i, (name, _)) in inputs.values.iter().enumerate() {
                let file = scratch.path().join(format!("values-{i}.yaml"));
                msg = msg.replace(&file.display().to_string(), name);
            }
            return Err(RenderError::Failed(msg));
        }
        if out.stdout.len() > super::manifests::MAX_RENDERED_BYTES {
            return Err(RenderError::Output(
                "rendered output is larger than 256 MiB".into(),
            ));
        }
        String::from_utf8(out.stdout)
            .map_err(|_| RenderError::Output("helm printed non-UTF-8 output".into()))
    }
}
