//! The command line: argument parsing and the `mirror` command. Translates arguments into a
//! [`MirrorRequest`] and the [`MirrorReport`] into text, JSON or YAML.

pub mod bundle;
pub mod demo;
pub mod format;
pub mod images;
pub mod live;
pub mod output;
pub mod runtime;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::credentials::DockerCredentials;
use crate::discover::render::helm_from_env;
use crate::pipeline::Progress;
use crate::pipeline::{self, Env, MirrorRequest, PipelineError};
use crate::registry::RegistryOptions;
pub use format::OutputFormat;
use live::ProgressMode;
use output::Theme;

/// Exit code: everything mirrored (or already present).
pub const EXIT_OK: u8 = 0;
/// Exit code: at least one chart, discovery or image failed; the rest ran to the end.
pub const EXIT_FAILURES: u8 = 1;
/// Exit code: usage or configuration error; nothing was written.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted (SIGINT/SIGTERM).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Mirror Helm charts and every container image they reference into one OCI registry.
#[derive(Debug, Parser)]
#[command(name = "lazyoci", version, about, long_about = None, after_help = "Exit codes: 0 all mirrored or already present; 1 some chart or image failed (the rest still ran); 2 usage or config error (nothing written); 130 interrupted.")]
pub struct Cli {
    /// Output format: text, json or yaml. In `bundle create`, a value that is not a format
    /// names where to write the bundle (`--output PATH`).
    #[arg(
        id = "output",
        short = 'o',
        long = "output",
        global = true,
        value_name = "FORMAT",
        action = clap::ArgAction::Append,
        value_parser = format::OutputArgParser,
        default_value = "text"
    )]
    pub output_args: Vec<format::OutputArg>,
    /// The output format `-o/--output` settles on (see [`Cli::settle_output`]).
    #[arg(skip = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Artifact storage directory: chart archives kept between runs, by digest
    /// [default: <user cache dir>/lazyoci].
    #[arg(long, global = true, value_name = "DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Theme name for text output: default, mono, none (NO_COLOR and non-terminals get none).
    #[arg(long, global = true, value_name = "NAME", default_value = "default")]
    pub theme: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Settle `-o/--output` into [`Cli::output`] and, for `bundle create`, its destination;
    /// `Err` (a usage error) for a value that is neither a format nor allowed as a path.
    pub fn settle_output(&mut self) -> Result<(), String> {
        let create = match &mut self.command {
            Command::Bundle(b) => match &mut b.command {
                bundle::BundleCommand::Create(c) => Some(c),
                _ => None,
            },
            _ => None,
        };
        let (format, path) = format::settle(&self.output_args, create.is_some())?;
        self.output = format;
        if let (Some(c), Some(p)) = (create, path) {
            if let Some(given) = &c.path {
                return Err(format!(
                    "where to write the bundle is given twice ({} and --output {}): give one",
                    given.display(),
                    p.display()
                ));
            }
            c.path = Some(p);
        }
        Ok(())
    }
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror Helm chart OCI artifacts and their referenced container images from upstream
    /// sources to a target OCI registry.
    Mirror(MirrorArgs),
    /// List the images of chart versions, with where each was found (rendered manifests,
    /// Chart.yaml annotations, Images.lock, values, extras). Writes nothing.
    Images(ImagesArgs),
    /// Start two local registries and a Helm repository, seed them, and mirror a demo chart
    /// from all three source types (needs docker-registry and helm; see scripts/install-test-deps.sh).
    Demo(DemoArgs),
    /// Print containerd hosts.toml files or a CRI-O/podman registries.conf that send each
    /// source host's pulls (of the images the config's charts use) to the target: the
    /// cluster-wide alternative to values overlays. Writes nothing unless --dir is given.
    RuntimeConfig(runtime::RuntimeConfigArgs),
    /// Air-gap bundles: write what `mirror` would copy into an OCI image layout on disk
    /// (`create`), load one into a registry (`push`), check one (`verify`).
    Bundle(bundle::BundleArgs),
    /// Print the ChartMirror CustomResourceDefinition (YAML; `-o json` for JSON).
    Crd,
    /// Run the ChartMirror operator (a Kubernetes controller) until SIGTERM.
    Operator(OperatorArgs),
}

/// `lazyoci operator` flags.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Serve /metrics, /healthz and /readyz on this address.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Reconcile only while holding the Lease (run two replicas for fast failover).
    #[arg(long)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "lazyoci-operator")]
    pub lease_name: String,
    /// Namespace of the Lease [default: $POD_NAMESPACE].
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Only watch ChartMirrors in this namespace [default: all namespaces].
    #[arg(long)]
    pub watch_namespace: Option<String>,
    /// ChartMirrors reconciled at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Plain-HTTP source registries.
    #[command(flatten)]
    pub insecure: InsecureRegistries,
}

/// `--insecure-registry`, shared by `mirror` and `operator`.
#[derive(Debug, Args)]
pub struct InsecureRegistries {
    /// Reach this source registry host (`host:port`) over plain HTTP (repeatable). The target
    /// uses `target.insecure` instead.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "LAZYOCI_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub hosts: Vec<String>,
}

/// `lazyoci mirror` flags (the CLI contract).
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["chart", "all"]))]
pub struct MirrorArgs {
    /// Path to mirror configuration YAML file (mirror.yaml or a ChartMirror manifest).
    #[arg(short = 'c', long, default_value = "mirror.yaml", value_name = "FILE")]
    pub config: PathBuf,
    /// Mirror a specific chart by its key in the config.
    #[arg(long, value_name = "KEY")]
    pub chart: Option<String>,
    /// Mirror all charts defined in the config.
    #[arg(long)]
    pub all: bool,
    /// Override version(s) to mirror (repeatable).
    #[arg(long = "version", value_name = "VERSION", action = clap::ArgAction::Append)]
    pub versions: Vec<String>,
    /// Preview what would be mirrored without making changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Mirror chart OCI artifacts only, skip container images.
    #[arg(long, conflicts_with = "images_only")]
    pub charts_only: bool,
    /// Mirror container images only, skip chart push.
    #[arg(long)]
    pub images_only: bool,
    /// Number of image copies in flight across the whole run.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Image copies in flight per source registry host, within --concurrency
    /// [default: a ChartMirror config's spec.perHostConcurrency, else no per-host limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub per_host_concurrency: Option<u32>,
    /// When a source tag now points elsewhere than the target tag mirrored before
    /// [default: a ChartMirror config's spec.onMovedTag, else overwrite].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_moved_tag: Option<crate::result::MovedTag>,
    /// Retries after the first attempt of each registry request and each blob transfer, for
    /// transient failures (timeouts, connection resets, HTTP 408/429/5xx); 0 tries once
    /// [default: a ChartMirror config's spec.retries, else 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::spec::MAX_RETRIES)))]
    pub retries: Option<u32>,
    /// Do not copy images' cosign signatures, attestations and SBOMs (sha256-<digest>.sig,
    /// .att, .sbom tags) and OCI referrers, which are copied with each image by default.
    #[arg(long)]
    pub no_signatures: bool,
    /// Write a values overlay per chart version to DIR/<chart>-<version>.values.yaml: the
    /// values that point every image the values set at its mirrored name. Each is checked
    /// by rendering the chart again with it; images the values cannot move are listed as
    /// not relocatable. Local files only: written in a dry run too.
    #[arg(long, value_name = "DIR")]
    pub overlays: Option<PathBuf>,
    /// The longest requests to a registry wait when its rate-limit budget is spent
    /// (RateLimit-Remaining: 0, or a 429 with rate-limit headers), e.g. 90s, 10m; after that
    /// such answers count as failed attempts.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_pause)]
    pub rate_limit_max_pause: Duration,
    /// Discovery sources, CA certificates, plain-HTTP sources.
    #[command(flatten)]
    pub shared: SharedArgs,
    /// Live progress view on stderr (bytes and rate of each copy in flight, totals):
    /// auto draws it when stderr is a terminal; stdout is the same either way.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        env = "LAZYOCI_PROGRESS",
        default_value_t = ProgressMode::Auto
    )]
    pub progress: ProgressMode,
}

/// `lazyoci images` flags: the same config and selection as `mirror`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Path to mirror configuration YAML file (mirror.yaml or a ChartMirror manifest).
    #[arg(short = 'c', long, default_value = "mirror.yaml", value_name = "FILE")]
    pub config: PathBuf,
    /// Only this chart (its key in the config) [default: all].
    #[arg(long, value_name = "KEY")]
    pub chart: Option<String>,
    /// All charts in the config (the default).
    #[arg(long, conflicts_with = "chart")]
    pub all: bool,
    /// Override version(s) of --chart (repeatable).
    #[arg(long = "version", value_name = "VERSION", action = clap::ArgAction::Append, requires = "chart")]
    pub versions: Vec<String>,
    /// Say which template, value or annotation produced IMAGE (a full or partial reference).
    #[arg(long, value_name = "IMAGE")]
    pub why: Option<String>,
    /// Write a values overlay per chart version to DIR/<chart>-<version>.values.yaml: the
    /// values that point every image the values set at its mirrored name. Each is checked
    /// by rendering the chart again with it; images the values cannot move are listed as
    /// not relocatable. Local files only: written in a dry run too.
    #[arg(long, value_name = "DIR")]
    pub overlays: Option<PathBuf>,
    /// Discovery sources, CA certificates, plain-HTTP sources.
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// Flags `mirror` and `images` share: which discovery sources count, and how registries
/// and Helm repositories are reached.
#[derive(Debug, Args)]
pub struct SharedArgs {
    /// Image discovery sources that count, overriding the config (comma-separated:
    /// rendered, annotations, lockfile, values, extra) [default: the config's, else all].
    #[arg(long, value_name = "SOURCES", value_delimiter = ',', value_parser = parse_source)]
    pub sources: Vec<crate::spec::DiscoverySource>,
    /// Extra CA certificates (PEM) to trust for registries and Helm repositories.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Helm's repositories.yaml (what `helm repo add` writes): the entry whose URL equals a
    /// `type: repo` upstream's `repo` supplies its credentials and TLS files, unless the
    /// upstream has an `auth` block.
    #[arg(long, value_name = "FILE", env = "HELM_REPOSITORY_CONFIG")]
    pub repository_config: Option<PathBuf>,
    /// Plain-HTTP source registries.
    #[command(flatten)]
    pub insecure: InsecureRegistries,
    /// Render every chart version and download every index.yaml whole, ignoring (and not
    /// writing) the discovery cache and the kept indexes under the artifact directory.
    #[arg(long)]
    pub no_cache: bool,
}

impl SharedArgs {
    /// The pipeline environment for a run to `target`: plain HTTP to the named sources and,
    /// with `target.insecure`, to the target; `opts` for everything else.
    pub fn env(
        &self,
        cli: &Cli,
        req: &MirrorRequest,
        target: &crate::spec::TargetUrl,
        mut opts: RegistryOptions,
    ) -> Result<Env, String> {
        opts.insecure_hosts
            .extend(self.insecure.hosts.iter().cloned());
        if req.spec.target.insecure {
            opts.insecure_hosts.insert(target.host.clone());
        }
        let artifact_dir = cli
            .artifact_dir
            .clone()
            .unwrap_or_else(default_artifact_dir);
        let repositories = self
            .repository_config
            .as_deref()
            .map(crate::access::repositories::RepositoryConfig::load)
            .transpose()?;
        let access = crate::access::for_cli(&req.spec, repositories.as_ref())?;
        let env = cli_env(opts, self.ca_file.as_ref(), access, artifact_dir)?;
        Ok(if self.no_cache {
            env.without_caches()
        } else {
            env
        })
    }
}

/// `--sources`: the discovery sources that count for every upstream, whatever the config
/// says (nothing changes when the list is empty).
pub fn override_sources(
    spec: &mut crate::spec::ChartMirrorSpec,
    sources: &[crate::spec::DiscoverySource],
) {
    if sources.is_empty() {
        return;
    }
    spec.images.get_or_insert_with(Default::default).sources = Some(sources.to_vec());
    for u in &mut spec.upstreams {
        if let Some(i) = u.images.as_mut() {
            i.sources = None;
        }
    }
}

fn parse_source(s: &str) -> Result<crate::spec::DiscoverySource, String> {
    crate::spec::DiscoverySource::parse(s).ok_or_else(|| {
        format!("unknown source {s:?}; expected rendered, annotations, lockfile, values or extra")
    })
}

/// `lazyoci demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the registries and the Helm repository running until Ctrl-C, to look around;
    /// prints the config, its directory, the addresses and commands to try.
    #[arg(long)]
    pub keep: bool,
}

/// Where chart archives are kept by default.
pub fn default_artifact_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("lazyoci")
}

/// Global flags that mean nothing to a subcommand, hidden from its help (still accepted,
/// so that `lazyoci -o json crd` and the like keep working).
const MEANINGLESS: [(&str, &[&str]); 2] = [
    ("crd", &["theme", "artifact_dir"]),
    ("operator", &["output", "theme"]),
];

/// The command line definition as the binary uses it: [`Cli`] with each subcommand's help
/// showing only the global flags it uses.
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    for (sub, hidden) in MEANINGLESS {
        // `mut_args` keeps the order the built command's key map points into.
        cmd = cmd.mut_subcommand(sub, |s| {
            s.mut_args(|a| {
                if hidden.contains(&a.get_id().as_str()) {
                    a.hide(true)
                } else {
                    a
                }
            })
        });
    }
    cmd
}

/// Parse the process arguments (exits with clap's message and code 2 on bad usage).
pub fn parse() -> Cli {
    let mut cmd = command();
    let matches = cmd.get_matches_mut();
    let mut cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(m) = cli.settle_output() {
        cmd.error(clap::error::ErrorKind::InvalidValue, m).exit();
    }
    cli
}

/// `lazyoci crd`: the CRD as YAML, or as JSON with `-o json`.
pub fn crd(cli: &Cli) -> ExitCode {
    let text = match cli.output {
        OutputFormat::Json => {
            match serde_json::to_string_pretty(
                &<crate::spec::ChartMirror as kube::CustomResourceExt>::crd(),
            ) {
                Ok(s) => s + "\n",
                Err(e) => return fail(EXIT_FAILURES, format!("cannot write the CRD: {e}")),
            }
        }
        OutputFormat::Text | OutputFormat::Yaml => crate::crd::crd_yaml(),
    };
    match output::print_stdout(&text) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => fail(EXIT_FAILURES, e),
    }
}

/// Print an error the way every lazyoci error is printed, and return `code`.
pub fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn parse_pause(s: &str) -> Result<Duration, String> {
    crate::spec::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration such as 90s, 10m or 1h"))
}

/// Build the pipeline environment for the CLI from `opts` (plus the CA file's certificates).
pub fn cli_env(
    mut opts: RegistryOptions,
    ca_file: Option<&PathBuf>,
    access: crate::access::AccessMap,
    artifact_dir: PathBuf,
) -> Result<Env, String> {
    if let Some(f) = ca_file {
        let pem =
            std::fs::read(f).map_err(|e| format!("cannot read --ca-file {}: {e}", f.display()))?;
        opts.extra_ca_pem.push(pem);
    }
    Env::with_access(
        opts,
        Arc::new(DockerCredentials::from_env()),
        access,
        helm_from_env(),
        artifact_dir,
    )
    .map_err(|e| match ca_file {
        Some(f) => format!("--ca-file {}: {e}", f.display()),
        None => e.to_string(),
    })
}

/// Cancel `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("interrupted: stopping; nothing half-copied is tagged, re-run to finish");
        token.cancel();
    });
}

/// `lazyoci operator`.
pub async fn operator(cli: &Cli, args: &OperatorArgs) -> ExitCode {
    let opts = crate::controller::OperatorOptions {
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_name: args.lease_name.clone(),
        lease_namespace: args.lease_namespace.clone(),
        watch_namespace: args.watch_namespace.clone(),
        concurrency: args.concurrency,
        settings: crate::controller::Settings {
            artifact_dir: cli
                .artifact_dir
                .clone()
                .unwrap_or_else(default_artifact_dir),
            helm: helm_from_env(),
            insecure_registries: args.insecure.hosts.clone(),
            progress_every: Duration::from_secs(10),
        },
    };
    match crate::controller::run(opts).await {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => fail(EXIT_FAILURES, format!("operator: {e}")),
    }
}

/// `lazyoci mirror`.
pub async fn mirror(cli: &Cli, args: &MirrorArgs) -> ExitCode {
    match request(cli, args, |_| {}) {
        Ok((theme, req, env)) => run_and_print(cli.output, theme, args.progress, &req, &env).await,
        Err(code) => code,
    }
}

/// Load and validate a config (a usage error is printed and returned), warning on stderr
/// about each Secret reference of a ChartMirror manifest that the CLI does not read.
pub(crate) fn load_config(
    file: &std::path::Path,
) -> Result<crate::spec::ChartMirrorSpec, ExitCode> {
    let (spec, form) = crate::config::load(file).map_err(|e| fail(EXIT_USAGE, e))?;
    if form == crate::config::ConfigForm::ChartMirror {
        for w in crate::config::ignored_by_cli(&spec) {
            eprintln!("warning: {w}");
        }
    }
    Ok(spec)
}

/// The theme, request and environment of a `mirror`-like command; `adjust` may change the
/// spec (its target, say) before it is validated. A usage error is printed and returned.
pub fn request(
    cli: &Cli,
    args: &MirrorArgs,
    adjust: impl FnOnce(&mut crate::spec::ChartMirrorSpec),
) -> Result<(Theme, MirrorRequest, Env), ExitCode> {
    let theme = Theme::resolve(&cli.theme, cli.output).map_err(|e| fail(EXIT_USAGE, e))?;
    if args.all && !args.versions.is_empty() {
        return Err(fail(
            EXIT_USAGE,
            "--version overrides the versions of one chart; use it with --chart KEY, not --all",
        ));
    }
    let mut spec = load_config(&args.config)?;
    override_sources(&mut spec, &args.shared.sources);
    adjust(&mut spec);
    let req = MirrorRequest {
        only: args.chart.clone(),
        versions: args.versions.clone(),
        dry_run: args.dry_run,
        charts_only: args.charts_only || spec.charts_only,
        images_only: args.images_only || spec.images_only,
        concurrency: args.concurrency as usize,
        on_moved_tag: args.on_moved_tag.or(spec.on_moved_tag).unwrap_or_default(),
        signatures: !args.no_signatures && spec.signatures.unwrap_or(true),
        overlays: args.overlays.is_some(),
        overlay_dir: args.overlays.clone(),
        spec,
    };
    let target = pipeline::validate(&req).map_err(|e| fail(EXIT_USAGE, e))?;
    let opts = RegistryOptions {
        per_host_copies: args
            .per_host_concurrency
            .or(req.spec.per_host_concurrency)
            .map(|n| n as usize),
        retries: args
            .retries
            .or(req.spec.retries)
            .unwrap_or(crate::registry::DEFAULT_RETRIES),
        rate_limit_max_pause: args.rate_limit_max_pause,
        ..Default::default()
    };
    let env = args
        .shared
        .env(cli, &req, &target, opts)
        .map_err(|e| fail(EXIT_USAGE, e))?;
    Ok((theme, req, env))
}

/// Report a run that could not start: usage errors (spec, `--chart`, helm missing) exit 2,
/// the rest 1.
pub fn pipeline_failed(e: PipelineError) -> ExitCode {
    match e {
        PipelineError::InvalidSpec(_)
        | PipelineError::UnknownChart { .. }
        | PipelineError::Helm(_) => fail(EXIT_USAGE, e),
        _ => fail(EXIT_FAILURES, e),
    }
}

/// Run a request, print progress and the result, and give the exit code.
pub async fn run_and_print(
    format: OutputFormat,
    theme: Theme,
    live: ProgressMode,
    req: &MirrorRequest,
    env: &Env,
) -> ExitCode {
    run_then(format, theme, live, req, env, |_, _| Ok(())).await
}

/// [`run_and_print`], with `then` called on the report (and whether the run was
/// interrupted) before it is printed; an error from it fails the command.
pub async fn run_then(
    format: OutputFormat,
    theme: Theme,
    live: ProgressMode,
    req: &MirrorRequest,
    env: &Env,
    then: impl FnOnce(&mut crate::result::MirrorReport, bool) -> Result<(), String>,
) -> ExitCode {
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let text = output::TextProgress::new(theme, format != OutputFormat::Text);
    let mut view = None;
    let progress: &dyn Progress = if live.enabled() {
        &*view.insert(live::LiveView::new(text, req.dry_run))
    } else {
        &text
    };
    let outcome = pipeline::run(req, env, progress, &cancel).await;
    if let Some(v) = &view {
        v.finish();
    }
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => return pipeline_failed(e),
    };
    if let Err(e) = then(&mut report, cancel.is_cancelled()) {
        return fail(EXIT_FAILURES, e);
    }
    print_report(format, theme, &report, cancel.is_cancelled())
}

/// Print a report in `format` and give the exit code: 130 when `interrupted`, 1 with
/// failures, else 0.
pub fn print_report(
    format: OutputFormat,
    theme: Theme,
    report: &crate::result::MirrorReport,
    interrupted: bool,
) -> ExitCode {
    let printed = match format {
        OutputFormat::Text => output::print_summary(report, theme),
        OutputFormat::Json => serde_json::to_string_pretty(report)
            .map_err(|e| e.to_string())
            .and_then(|s| output::print_stdout(&format!("{s}\n"))),
        OutputFormat::Yaml => serde_saphyr::to_string(report)
            .map_err(|e| e.to_string())
            .and_then(|s| output::print_stdout(&s)),
    };
    if let Err(e) = printed {
        return fail(EXIT_FAILURES, format!("cannot write the result: {e}"));
    }
    if report.has_failures() && !interrupted {
        let failed = output::failed_lines(report);
        let shown = if format == OutputFormat::Text {
            "listed at the end of the summary"
        } else {
            "see the report"
        };
        eprintln!(
            "error: {} failure{} ({shown}); the first: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.first().map(String::as_str).unwrap_or("unknown")
        );
    }
    exit_code_of(interrupted, report.has_failures())
}

/// The exit code of a run: interrupted, some failure, or all well.
pub fn exit_code(cancel: &CancellationToken, failures: bool) -> ExitCode {
    exit_code_of(cancel.is_cancelled(), failures)
}

fn exit_code_of(interrupted: bool, failures: bool) -> ExitCode {
    if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if failures {
        ExitCode::from(EXIT_FAILURES)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn subcommand_help_shows_only_the_flags_it_uses() {
        let help = |sub: &str| {
            let mut cmd = command();
            let s = cmd.find_subcommand_mut(sub).unwrap();
            s.render_long_help().to_string()
        };
        let crd = help("crd");
        assert!(crd.contains("--output"), "{crd}");
        assert!(
            !crd.contains("--theme") && !crd.contains("--artifact-dir"),
            "{crd}"
        );
        let op = help("operator");
        assert!(!op.contains("--theme") && !op.contains("--output"), "{op}");
        assert!(op.contains("--artifact-dir"), "{op}");
        let mirror = help("mirror");
        assert!(
            mirror.contains("--theme") && mirror.contains("[default: default]"),
            "{mirror}"
        );
        // Hidden, not removed: the old spellings still parse.
        let cli = Cli::try_parse_from(["lazyoci", "--theme", "mono", "crd"]).unwrap();
        assert_eq!(cli.theme, "mono");
    }

    #[test]
    fn repeatable_version_flag_does_not_clash_with_the_program_version() {
        let cli = Cli::try_parse_from([
            "lazyoci",
            "mirror",
            "--chart",
            "vault",
            "--version",
            "1",
            "--version",
            "2",
        ])
        .unwrap();
        let Command::Mirror(m) = cli.command else {
            panic!()
        };
        assert_eq!(m.versions, vec!["1", "2"]);
        assert_eq!(m.config, PathBuf::from("mirror.yaml"));
        assert_eq!(m.concurrency, 4);
        let e = Cli::try_parse_from(["lazyoci", "--version"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn exactly_one_of_chart_and_all() {
        assert!(Cli::try_parse_from(["lazyoci", "mirror"]).is_err());
        assert!(Cli::try_parse_from(["lazyoci", "mirror", "--all", "--chart", "x"]).is_err());
        assert!(
            Cli::try_parse_from([
                "lazyoci",
                "mirror",
                "--all",
                "--charts-only",
                "--images-only"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "lazyoci",
                "mirror",
                "--all",
                "-o",
                "yaml",
                "--concurrency",
                "0"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["lazyoci", "-o", "json", "mirror", "--all"]).is_ok());
    }

    fn settled(argv: &[&str]) -> Result<Cli, String> {
        let m = command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        cli.settle_output().map(|()| cli)
    }

    fn created(cli: &Cli) -> Option<PathBuf> {
        match &cli.command {
            Command::Bundle(b) => match &b.command {
                bundle::BundleCommand::Create(c) => c.path.clone(),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn output_is_a_format_everywhere_and_a_path_too_in_bundle_create() {
        let cli = settled(&["lazyoci", "-o", "json", "mirror", "--all"]).unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        let cli = settled(&["lazyoci", "mirror", "--all"]).unwrap();
        assert_eq!(cli.output, OutputFormat::Text);
        let e = settled(&["lazyoci", "mirror", "--all", "-o", "xml"]).unwrap_err();
        assert!(e.contains("'xml'"), "{e}");
        let e = settled(&[
            "lazyoci", "bundle", "push", "b", "--target", "h", "--output", "x",
        ])
        .unwrap_err();
        assert!(e.contains("'x'"), "{e}");

        let cli = settled(&[
            "lazyoci", "bundle", "create", "--all", "--output", "out.tar", "-o", "json",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(created(&cli), Some("out.tar".into()));
        let cli = settled(&["lazyoci", "-o", "yaml", "bundle", "create", "--all", "dir"]).unwrap();
        assert_eq!(
            (cli.output, created(&cli)),
            (OutputFormat::Yaml, Some("dir".into()))
        );
        let e =
            settled(&["lazyoci", "bundle", "create", "--all", "--output", "a", "b"]).unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let cli = settled(&["lazyoci", "bundle", "create", "--all", "--output", "json"]).unwrap();
        assert_eq!((cli.output, created(&cli)), (OutputFormat::Json, None));

        let mut cmd = command();
        let create = cmd
            .find_subcommand_mut("bundle")
            .unwrap()
            .find_subcommand_mut("create")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            create.contains("names where to write the bundle"),
            "{create}"
        );
        let e = command()
            .try_get_matches_from(["lazyoci", "bundle", "create", "--help"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{e}");
        let mirror = cmd
            .find_subcommand_mut("mirror")
            .unwrap()
            .render_help()
            .to_string();
        assert!(mirror.contains("--output <FORMAT>"), "{mirror}");
        assert!(
            mirror.contains("[possible values: text, json, yaml]"),
            "{mirror}"
        );
    }
}
