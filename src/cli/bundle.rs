//! `lazyoci bundle create|push|verify`: air-gap bundles on the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::{
    Cli, EXIT_FAILURES, EXIT_OK, EXIT_USAGE, MirrorArgs, OutputFormat, cancel_on_signals, fail,
    output, print_report, request, run_then,
};
use crate::bundle::layout::Layout;
use crate::bundle::{BUNDLE_HOST, is_tar};
use crate::credentials::DockerCredentials;
use crate::registry::{Registries, RegistryOptions};
use crate::result::MirrorReport;
use crate::spec::TargetUrl;

/// `lazyoci bundle` flags.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// What to do with a bundle.
    #[command(subcommand)]
    pub command: BundleCommand,
}

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write every chart and image `mirror` would copy (all platforms, signatures and
    /// referrers) into an OCI image layout: a directory, or a .tar file when PATH ends in .tar.
    Create(CreateArgs),
    /// Load a bundle (lazyoci's, or any OCI image layout with ref names) into a registry:
    /// every blob verified, what the target has skipped, tags last.
    Push(PushArgs),
    /// Check every digest of a bundle and that every manifest's references are present.
    Verify(VerifyArgs),
}

/// `lazyoci bundle create` flags: `mirror`'s, plus where to write.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Where to write the bundle: a directory, or a .tar file when PATH ends in .tar (the
    /// config's target is not contacted; names in the bundle are relative to it). Also
    /// given as `--output PATH`.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Leave out every blob this previous bundle (a directory, .tar, or its lazyoci.json)
    /// and the bundles it was made --since carried: a delta for a site that holds them.
    #[arg(long, value_name = "PREVIOUS")]
    pub since: Option<PathBuf>,
    /// The same flags as `mirror`.
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

/// `lazyoci bundle push` flags.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle: a directory or a .tar file.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// The registry and optional path to load it under (`host[:port][/path]`).
    #[arg(long, value_name = "HOST/PATH")]
    pub target: String,
    /// Reach the target over plain HTTP.
    #[arg(long)]
    pub insecure: bool,
    /// Put charts under this path prefix instead of the one they were bundled with.
    #[arg(long, value_name = "PREFIX")]
    pub charts_prefix: Option<String>,
    /// Manifest trees pushed at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Retries after the first attempt of each registry request, for transient failures.
    #[arg(long, value_name = "N", default_value_t = crate::registry::DEFAULT_RETRIES)]
    pub retries: u32,
    /// Extra CA certificates (PEM) to trust for the target.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `lazyoci bundle verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle: a directory or a .tar file.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
}

/// Run a bundle command.
pub async fn run(cli: &Cli, args: &BundleArgs) -> ExitCode {
    match &args.command {
        BundleCommand::Create(a) => create(cli, a).await,
        BundleCommand::Push(a) => push(cli, a).await,
        BundleCommand::Verify(a) => verify(cli, a).await,
    }
}

/// Where a `.tar` bundle is assembled before it is packed (kept when interrupted, so a
/// re-run resumes).
fn work_dir(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial.d");
    path.with_file_name(name)
}

/// Names in the report relative to the target, as in the bundle.
fn relative_names(report: &mut MirrorReport) {
    let strip = |s: &mut String| {
        for prefix in [format!("oci://{BUNDLE_HOST}/"), format!("{BUNDLE_HOST}/")] {
            if let Some(rest) = s.strip_prefix(&prefix) {
                *s = rest.to_string();
            }
        }
    };
    for v in report.charts.iter_mut().flat_map(|c| c.versions.iter_mut()) {
        if let Some(r) = v.chart_ref.as_mut() {
            strip(r);
        }
        for i in &mut v.images {
            strip(&mut i.target);
            for a in &mut i.attached {
                strip(&mut a.target);
            }
        }
    }
}

async fn create(cli: &Cli, args: &CreateArgs) -> ExitCode {
    let Some(path) = &args.path else {
        return fail(
            EXIT_USAGE,
            "bundle create needs where to write: --output PATH (a directory, or a .tar file when PATH ends in .tar); a bundle named text, json or yaml is written with ./NAME",
        );
    };
    let tar = is_tar(path);
    if tar && path.is_dir() {
        return fail(
            EXIT_USAGE,
            format!(
                "{} is a directory; a .tar bundle needs a file name",
                path.display()
            ),
        );
    }
    if args.mirror.overlays.is_some() {
        return fail(
            EXIT_USAGE,
            "--overlays needs the registry the charts will be installed from; a bundle does not know it yet: write overlays with `lazyoci mirror --overlays` against the target, or after `bundle push`",
        );
    }
    let (theme, mut req, mut env) = match request(cli, &args.mirror, |spec| {
        spec.target.url = BUNDLE_HOST.into();
        spec.target.insecure = false;
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // A tag that moved upstream is what a delta carries.
    req.on_moved_tag = crate::result::MovedTag::Overwrite;
    let base = match &args.since {
        Some(p) => match crate::bundle::reader::load_base(p).await {
            Ok(b) => Some(b),
            Err(e) => return fail(EXIT_USAGE, format!("--since: {e}")),
        },
        None => None,
    };
    // A dry run writes into a scratch layout (it only ever asks what is there).
    let scratch = match req.dry_run {
        true => match tempfile::tempdir() {
            Ok(t) => Some(t),
            Err(e) => return fail(EXIT_FAILURES, format!("cannot create a scratch dir: {e}")),
        },
        false => None,
    };
    let dir = match (&scratch, tar) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, true) => work_dir(path),
        (None, false) => path.clone(),
    };
    let dry_run = req.dry_run;
    let layout = match Layout::create(&dir, base) {
        Ok(l) => Arc::new(l),
        Err(e) => return fail(EXIT_USAGE, e),
    };
    env.bundle = Some(layout.clone());
    let out = path.clone();
    run_then(
        cli.output,
        theme,
        args.mirror.progress,
        &req,
        &env,
        move |report, interrupted| {
            if !dry_run {
                // lazyoci.json is made from the report as the pipeline wrote it.
                layout.finish(report).map_err(|e| e.to_string())?;
            }
            relative_names(report);
            if dry_run {
                return Ok(());
            }
            if tar && !interrupted {
                crate::bundle::archive::pack(&dir, &out).map_err(|e| e.to_string())?;
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
            }
            Ok(())
        },
    )
    .await
}

async fn push(cli: &Cli, args: &PushArgs) -> ExitCode {
    let theme = match output::Theme::resolve(&cli.theme, cli.output) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let target = match TargetUrl::parse(&args.target) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_USAGE, format!("--target: {e}")),
    };
    if let Some(p) = args.charts_prefix.as_deref().filter(|p| !p.is_empty())
        && let Err(e) = crate::spec::check_repo_path(p)
    {
        return fail(EXIT_USAGE, format!("--charts-prefix: {e}"));
    }
    if !args.bundle.exists() {
        return fail(
            EXIT_USAGE,
            format!(
                "{}: no such bundle (a directory or .tar file)",
                args.bundle.display()
            ),
        );
    }
    let mut opts = RegistryOptions {
        retries: args.retries,
        ..Default::default()
    };
    if args.insecure {
        opts.insecure_hosts.insert(target.host.clone());
    }
    if let Some(f) = &args.ca_file {
        match std::fs::read(f) {
            Ok(pem) => opts.extra_ca_pem.push(pem),
            Err(e) => {
                return fail(
                    EXIT_USAGE,
                    format!("cannot read --ca-file {}: {e}", f.display()),
                );
            }
        }
    }
    let registries = match Registries::new(opts, Arc::new(DockerCredentials::from_env())) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    registries.cancel_pauses_with(cancel.clone());
    let req = crate::bundle::push::PushRequest {
        bundle: args.bundle.clone(),
        target,
        charts_prefix: args.charts_prefix.clone(),
        concurrency: args.concurrency as usize,
    };
    match crate::bundle::push::push(&req, &registries, &cancel).await {
        Ok(report) => print_report(cli.output, theme, &report, cancel.is_cancelled()),
        Err(e) => fail(EXIT_FAILURES, e),
    }
}

async fn verify(cli: &Cli, args: &VerifyArgs) -> ExitCode {
    let r = match crate::bundle::verify::verify(&args.bundle).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_FAILURES, e),
    };
    let printed = match cli.output {
        OutputFormat::Json => serde_json::to_string_pretty(&r)
            .map_err(|e| e.to_string())
            .and_then(|s| output::print_stdout(&format!("{s}\n"))),
        OutputFormat::Yaml => serde_saphyr::to_string(&r)
            .map_err(|e| e.to_string())
            .and_then(|s| output::print_stdout(&s)),
        OutputFormat::Text => {
            let mut s = format!(
                "Bundle: {}\n  {} blobs ({} bytes) checked, {} manifests walked",
                r.bundle, r.blobs, r.bytes, r.manifests
            );
            if r.from_base > 0 {
                s.push_str(&format!(
                    ", {} blobs left to the bundles it was made --since",
                    r.from_base
                ));
            }
            s.push('\n');
            if r.ok {
                s.push_str("  OK: every digest matches and every reference is present\n");
            } else {
                s.push_str(&format!("  {} problems:\n", r.problems.len()));
                for p in &r.problems {
                    s.push_str(&format!("    - {p}\n"));
                }
            }
            output::print_stdout(&s)
        }
    };
    if let Err(e) = printed {
        return fail(EXIT_FAILURES, format!("cannot write the result: {e}"));
    }
    ExitCode::from(if r.ok { EXIT_OK } else { EXIT_FAILURES })
}
