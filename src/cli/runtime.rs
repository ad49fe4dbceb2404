//! `lazyoci runtime-config`: containerd `hosts.toml` files or a CRI-O/podman
//! `registries.conf` that send each source host's pulls to the target, for the images
//! discovery finds in the config's charts.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{Cli, EXIT_FAILURES, SharedArgs, fail, output};
use crate::pipeline::MirrorRequest;
use crate::reference::ImageRef;
use crate::runtime::{self, Plan};

/// Runtime configuration formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeFormat {
    /// containerd `hosts.toml`, one per source host (`/etc/containerd/certs.d/<host>/`).
    Containerd,
    /// CRI-O / podman `registries.conf` (v2) mirror sections.
    RegistriesConf,
}

/// `lazyoci runtime-config` flags.
#[derive(Debug, Args)]
pub struct RuntimeConfigArgs {
    /// Path to mirror configuration YAML file (mirror.yaml or a ChartMirror manifest).
    #[arg(short = 'c', long, default_value = "mirror.yaml", value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Which runtime's configuration to print.
    #[arg(long, value_enum, default_value_t = RuntimeFormat::Containerd)]
    pub format: RuntimeFormat,
    /// Only this chart (its key in the config) [default: all].
    #[arg(long, value_name = "KEY")]
    pub chart: Option<String>,
    /// Also write the files under DIR (containerd: DIR/<host>/hosts.toml, to copy to
    /// /etc/containerd/certs.d; registries-conf: DIR/registries.conf).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Discovery sources, CA certificates, plain-HTTP sources.
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// The marker line before each file in containerd output.
pub const FILE_MARKER: &str = "# ==> ";

/// Run `lazyoci runtime-config`.
pub async fn run(cli: &Cli, args: &RuntimeConfigArgs) -> ExitCode {
    let adjust = |req: &mut MirrorRequest| req.only = args.chart.clone();
    let (req, target, report, cancel) =
        match super::images::discover(cli, &args.config, &args.shared, adjust).await {
            Ok(x) => x,
            Err(code) => return code,
        };
    let images: Vec<ImageRef> = report
        .charts
        .iter()
        .flat_map(|c| &c.versions)
        .flat_map(|v| &v.images)
        .filter_map(|i| ImageRef::parse(&i.source).ok())
        .collect();
    for c in &report.charts {
        if let Some(e) = &c.error {
            eprintln!("warning: {}: {e}; its images are not covered", c.key);
        }
        for v in c.versions.iter().filter(|v| v.error.is_some()) {
            eprintln!(
                "warning: {}:{}: {}; its images are not covered",
                c.key,
                v.version,
                v.error.as_deref().unwrap_or_default()
            );
        }
    }
    let plan = Plan::new(&images, &target);
    let insecure = req.spec.target.insecure;
    let files: Vec<(String, String)> = match args.format {
        RuntimeFormat::Containerd => runtime::containerd(&plan, &target, insecure),
        RuntimeFormat::RegistriesConf => vec![(
            "registries.conf".to_string(),
            runtime::registries_conf(&plan, &target, insecure),
        )],
    };
    let mut out = format!(
        "# lazyoci runtime-config: pulls from {} source host(s) go to {}{}\n",
        plan.hosts.len(),
        target.host,
        if target.path.is_empty() {
            String::new()
        } else {
            format!("/{}", target.path)
        }
    );
    out.push_str(&plan.remarks(&target));
    for (path, text) in &files {
        if args.format == RuntimeFormat::Containerd {
            out.push_str(&format!(
                "\n{FILE_MARKER}/etc/containerd/certs.d/{path} <==\n"
            ));
        } else {
            out.push('\n');
        }
        out.push_str(text);
    }
    if let Some(dir) = &args.dir {
        for (path, text) in &files {
            let p = dir.join(path);
            let written = p
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::write(&p, text));
            if let Err(e) = written {
                return fail(EXIT_FAILURES, format!("cannot write {}: {e}", p.display()));
            }
        }
    }
    if let Err(e) = output::print_stdout(&out) {
        return fail(EXIT_FAILURES, format!("cannot write the result: {e}"));
    }
    super::exit_code(&cancel, report.has_failures())
}
