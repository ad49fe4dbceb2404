//! Shared setup: a source and a target registry, the standard image set, a scratch dir,
//! and a runner for the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;

pub use lazyoci::testkit::certs::{client_cert, tls_certs};
use lazyoci::testkit::images::{SeedSet, seed_standard_set};
use lazyoci::testkit::registry::Registry;
pub use lazyoci::testkit::{charts, helm, helm_repo, images, oci, stdout_of};

pub struct World {
    pub src: Registry,
    pub dst: Registry,
    pub set: SeedSet,
    pub dir: tempfile::TempDir,
}

pub async fn world() -> World {
    lazyoci::install_crypto_provider();
    let src = Registry::start()
        .await
        .expect("start source registry (run scripts/install-test-deps.sh)");
    let dst = Registry::start().await.expect("start target registry");
    let set = seed_standard_set(src.addr())
        .await
        .expect("seed source registry");
    World {
        src,
        dst,
        set,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl World {
    pub fn src_host(&self) -> &str {
        self.src.addr()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `mirror.yaml` (or another name) into the scratch dir.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The demo chart under `charts/demo`, as a local upstream.
    pub fn demo_chart(&self) -> PathBuf {
        charts::write_demo_chart(
            &self.path("charts"),
            "demo",
            "1.0.0",
            self.src_host(),
            &self.set,
        )
        .unwrap()
    }

    /// Run `lazyoci` with the source registry reachable over plain HTTP and no user
    /// credentials or helm config in sight.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_lazyoci(
            self.dir.path(),
            args,
            &[("LAZYOCI_INSECURE_REGISTRIES", self.src_host())],
            env,
        )
    }

    pub async fn dst_digest(&self, repo: &str, reference: &str) -> Option<String> {
        oci::manifest_digest(self.dst.addr(), repo, reference)
            .await
            .unwrap()
    }

    pub async fn src_digest(&self, repo: &str, reference: &str) -> Option<String> {
        oci::manifest_digest(self.src.addr(), repo, reference)
            .await
            .unwrap()
    }

    /// Write requests the target registry received.
    pub fn dst_writes(&self) -> Vec<String> {
        ["PUT", "POST", "PATCH", "DELETE"]
            .iter()
            .flat_map(|m| self.dst.requests(m, "/v2/"))
            .collect()
    }
}

/// Run the binary in `cwd` with an isolated HOME/DOCKER_CONFIG and helm from the test tools.
pub fn run_lazyoci(
    cwd: &Path,
    args: &[&str],
    base_env: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Run {
    let home = cwd.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lazyoci"));
    cmd.current_dir(cwd)
        .args(args)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("LAZYOCI_HELM", lazyoci::testkit::helm_bin())
        .env("NO_COLOR", "1")
        .env_remove("LAZYOCI_INSECURE_REGISTRIES")
        .env_remove("LAZYOCI_PROGRESS")
        .env_remove("HELM_REGISTRY_CONFIG")
        .env_remove("HELM_REPOSITORY_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE");
    for (k, v) in base_env.iter().chain(env) {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run lazyoci");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Every image of a chart version in the JSON report, as (source, target, status).
pub fn images_of(
    report: &serde_json::Value,
    key: &str,
    version: &str,
) -> Vec<(String, String, String)> {
    let chart = report["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no chart {key} in {report:#}"));
    let v = chart["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no version {version}"));
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source"].as_str().unwrap().to_string(),
                i["target"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn version_of(report: &serde_json::Value, key: &str, version: &str) -> serde_json::Value {
    let chart = report["charts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .unwrap();
    chart["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap()
        .clone()
}

/// Write `~/.docker/config.json` for the binary's isolated HOME with basic credentials for
/// `host` only.
pub fn docker_login(w: &World, host: &str, user: &str, password: &str) {
    write_docker_config(&w.path(".home/docker"), host, user, password);
}

/// `dir/config.json` (dir created) with basic credentials for `host` only.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    use base64::Engine as _;
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let file = dir.join("config.json");
    std::fs::write(
        &file,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    file
}

/// A registry that requires basic auth (alice / s3cret), holding `private/app:1.0`.
pub async fn private_registry() -> (lazyoci::testkit::registry::Registry, images::Seeded) {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let private = lazyoci::testkit::registry::Registry::start_with(
        lazyoci::testkit::registry::RegistryConfig {
            htpasswd: Some(format!("alice:{hash}")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let img = images::image_with_auth(private.addr(), "private/app", "1.0", ("alice", "s3cret"))
        .await
        .unwrap();
    (private, img)
}

/// `charts/<name>` (version 1.0.0) using these images.
pub fn image_chart(w: &World, name: &str, images: &[String]) -> std::path::PathBuf {
    charts::write_chart_with_images(&w.path("charts"), name, "1.0.0", images).unwrap()
}

/// Package a chart `web` (using nginx) at each version into the served directory and (re)write its index.
pub fn publish_web(w: &World, repo: &helm_repo::HelmRepo, versions: &[&str]) {
    let charts: Vec<std::path::PathBuf> = versions
        .iter()
        .map(|v| {
            charts::write_simple_chart(
                &w.path(&format!("src-charts/{v}")),
                "web",
                v,
                &w.set.nginx.reference(w.src_host()),
            )
            .unwrap()
        })
        .collect();
    let refs: Vec<&std::path::Path> = charts.iter().map(|p| p.as_path()).collect();
    repo.publish(&refs, None).unwrap();
}

/// What helm names the package of [`ocichart`].
pub const OCICHART_ARCHIVE: &str = "ocichart-2.3.4.tgz";

/// The chart directory `c/ocichart` (version 2.3.4, using the source's redis), to push
/// as an OCI chart with [`push_oci_chart`].
pub fn ocichart(w: &World) -> PathBuf {
    charts::write_simple_chart(
        &w.path("c"),
        "ocichart",
        "2.3.4",
        &w.set.redis.reference(w.src_host()),
    )
    .unwrap()
}

/// Package the chart directory `chart` with helm and push it to `oci://<source>/charts`
/// (helm names the archive `<name>-<version>.tgz`, given here as `archive`).
pub fn push_oci_chart(w: &World, chart: &Path, archive: &str) {
    push_oci_chart_to(w, chart, archive, &format!("{}/charts", w.src_host()));
}

/// [`push_oci_chart`] to `oci://<at>` (`host:port/path`, plain HTTP).
pub fn push_oci_chart_to(w: &World, chart: &Path, archive: &str, at: &str) {
    let home = tempfile::tempdir().unwrap();
    let out = w.path("packaged");
    helm(
        home.path(),
        &[
            "package",
            "-d",
            &out.to_string_lossy(),
            &chart.to_string_lossy(),
        ],
    )
    .unwrap();
    helm(
        home.path(),
        &[
            "push",
            &out.join(archive).to_string_lossy(),
            &format!("oci://{at}"),
            "--plain-http",
        ],
    )
    .unwrap();
}

/// The image sources of the first version of the first chart of a JSON report.
pub fn sources_of(report: &serde_json::Value) -> Vec<String> {
    report["charts"][0]["versions"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap().to_string())
        .collect()
}
