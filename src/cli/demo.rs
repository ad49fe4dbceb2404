//! `lazyoci demo`: two local registries and a Helm repository, seeded with synthetic images
//! and charts, mirrored from all three source types — then mirrored again to show that a
//! re-run only checks.

use std::process::ExitCode;

use crate::pipeline::MirrorRequest;
use crate::testkit::{self, charts, helm_repo::HelmRepo, images, registry::Registry};

use super::{Cli, DemoArgs, EXIT_FAILURES, OutputFormat, cli_env, fail, output::Theme};

/// Run the demo.
pub async fn run(cli: &Cli, args: &DemoArgs) -> ExitCode {
    match demo(cli, args).await {
        Ok(code) => code,
        Err(e) => fail(EXIT_FAILURES, format!("demo: {e:#}")),
    }
}

async fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let theme = Theme::resolve(&cli.theme, cli.output).map_err(anyhow::Error::msg)?;
    let say = |s: &str| {
        if cli.output == OutputFormat::Text {
            println!("{s}");
        } else {
            eprintln!("{s}");
        }
    };
    let work = tempfile::tempdir()?;
    say("Starting two registries (docker-registry) on 127.0.0.1 ...");
    let src = Registry::start().await?;
    let dst = Registry::start().await?;
    say(&format!("  source {}  target {}", src.addr(), dst.addr()));
    let set = images::seed_standard_set(src.addr()).await?;
    say(&format!(
        "Seeded the source with {} images (OCI, Docker schema 2, a multi-arch index, shared base layers).",
        set.all().len()
    ));

    // One chart per source type.
    let charts_dir = work.path().join("charts");
    charts::write_demo_chart(&charts_dir, "demo", "1.0.0", src.addr(), &set)?;
    let web = charts::write_simple_chart(
        &work.path().join("repo-src"),
        "web",
        "2.1.0",
        &set.nginx.reference(src.addr()),
    )?;
    let ocichart = charts::write_simple_chart(
        &work.path().join("oci-src"),
        "api",
        "0.3.0",
        &set.api.reference(src.addr()),
    )?;
    let served = work.path().join("helm-repo");
    std::fs::create_dir_all(&served)?;
    let repo = HelmRepo::serve(&served).await?;
    repo.publish(&[&web], None)?;
    let home = work.path().join("helm-home");
    let packaged = work.path().join("packaged");
    testkit::helm(
        &home,
        &[
            "package",
            "-d",
            &packaged.to_string_lossy(),
            &ocichart.to_string_lossy(),
        ],
    )?;
    testkit::helm(
        &home,
        &[
            "push",
            &packaged.join("api-0.3.0.tgz").to_string_lossy(),
            &format!("oci://{}/charts", src.addr()),
            "--plain-http",
        ],
    )?;
    say(&format!(
        "Serving a Helm repository at {} and an OCI chart at oci://{}/charts/api.",
        repo.url(),
        src.addr()
    ));

    let config = format!(
        "target:\n  url: {dst}/mirror\n  insecure: true\n  charts-prefix: charts\nupstreams:\n  web:\n    type: repo\n    repo: {repo}\n    chart: web\n    versions: [\"2.1.0\"]\n  api:\n    type: oci\n    registry: oci://{src}/charts\n    chart: api\n    versions: [\"0.3.0\"]\n  demo:\n    type: local\n    path: ./charts/demo\n    chart: demo\n    versions: [\"1.0.0\"]\n",
        dst = dst.addr(),
        repo = repo.url(),
        src = src.addr()
    );
    let config_path = work.path().join("mirror.yaml");
    std::fs::write(&config_path, &config)?;
    say(&format!("\nmirror.yaml:\n{config}"));

    let (spec, _) = crate::config::load(&config_path)?;
    let mut req = MirrorRequest::all(spec);
    req.concurrency = 4;
    let artifact_dir = cli
        .artifact_dir
        .clone()
        .unwrap_or_else(|| work.path().join("artifacts"));
    let opts = crate::registry::RegistryOptions {
        insecure_hosts: [src.addr().to_string(), dst.addr().to_string()].into(),
        ..Default::default()
    };
    let env = cli_env(opts, None, Default::default(), artifact_dir).map_err(anyhow::Error::msg)?;

    say(&format!(
        "$ lazyoci mirror --config mirror.yaml --all --insecure-registry {}\n",
        src.addr()
    ));
    let first =
        super::run_and_print(cli.output, theme, super::ProgressMode::Auto, &req, &env).await;
    if first != ExitCode::from(super::EXIT_OK) {
        return Ok(first);
    }
    say("\nAgain: everything is already there, so the second run only compares digests.\n");
    let second =
        super::run_and_print(cli.output, theme, super::ProgressMode::Auto, &req, &env).await;
    if args.keep {
        say(&keep_text(
            &config_path,
            work.path(),
            src.addr(),
            dst.addr(),
            repo.url(),
        ));
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(second)
}

/// What `demo --keep` leaves running and how to use it.
fn keep_text(
    config: &std::path::Path,
    work: &std::path::Path,
    src: &str,
    dst: &str,
    repo: &str,
) -> String {
    format!(
        "\nKept running until Ctrl-C (then everything below is removed):\n  \
         source registry  {src} (plain HTTP)\n  \
         target registry  {dst} (plain HTTP)\n  \
         Helm repository  {repo}\n  \
         config           {}\n  \
         directory        {} (charts/, helm-repo/, artifacts/)\n\
         Try:\n  \
         lazyoci mirror --config {} --all --insecure-registry {src}\n  \
         lazyoci images --config {}\n  \
         curl -s http://{dst}/v2/_catalog",
        config.display(),
        work.display(),
        config.display(),
        config.display(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn keep_names_the_config_directories_and_addresses() {
        let t = super::keep_text(
            std::path::Path::new("/tmp/d/mirror.yaml"),
            std::path::Path::new("/tmp/d"),
            "127.0.0.1:1",
            "127.0.0.1:2",
            "http://127.0.0.1:3",
        );
        for want in [
            "source registry  127.0.0.1:1",
            "target registry  127.0.0.1:2",
            "Helm repository  http://127.0.0.1:3",
            "config           /tmp/d/mirror.yaml",
            "directory        /tmp/d",
            "--config /tmp/d/mirror.yaml --all --insecure-registry 127.0.0.1:1",
        ] {
            assert!(t.contains(want), "{want}: {t}");
        }
    }
}
