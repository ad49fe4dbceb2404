//! `lazyoci images`: the image list of chart versions with provenance, and `--why`.

use std::fmt::Write as _;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{Cli, EXIT_FAILURES, EXIT_USAGE, ImagesArgs, OutputFormat, fail, output};
use crate::pipeline::{self, MirrorRequest};
use crate::reference::ImageRef;
use crate::result::{ImagesReport, ListedImage};

/// What `images` and `runtime-config` both do first: load the config, apply `--sources`,
/// `--chart` and `--version`, and run discovery only (nothing written to any registry);
/// the request tweaked by `adjust` before it is checked. `Err` is the exit code to return.
pub async fn discover(
    cli: &Cli,
    config: &std::path::Path,
    shared: &super::SharedArgs,
    adjust: impl FnOnce(&mut MirrorRequest),
) -> Result<
    (
        MirrorRequest,
        crate::spec::TargetUrl,
        ImagesReport,
        CancellationToken,
    ),
    ExitCode,
> {
    let mut spec = super::load_config(config)?;
    super::override_sources(&mut spec, &shared.sources);
    let mut req = MirrorRequest::all(spec);
    req.dry_run = true;
    adjust(&mut req);
    let target = pipeline::validate(&req).map_err(|e| fail(EXIT_USAGE, e))?;
    let env = shared
        .env(cli, &req, &target, Default::default())
        .map_err(|e| fail(EXIT_USAGE, e))?;
    let cancel = CancellationToken::new();
    super::cancel_on_signals(cancel.clone());
    let report = pipeline::images(&req, &env, &cancel)
        .await
        .map_err(super::pipeline_failed)?;
    Ok((req, target, report, cancel))
}

/// Run `lazyoci images`.
pub async fn run(cli: &Cli, args: &ImagesArgs) -> ExitCode {
    let adjust = |req: &mut MirrorRequest| {
        req.only = args.chart.clone();
        req.versions = args.versions.clone();
        req.overlays = args.overlays.is_some();
        req.overlay_dir = args.overlays.clone();
    };
    let (_, _, report, cancel) = match discover(cli, &args.config, &args.shared, adjust).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut found_why = true;
    let printed = match (&args.why, cli.output) {
        (Some(image), OutputFormat::Text) => match why_text(&report, image) {
            Some(text) => output::print_stdout(&text),
            None => {
                found_why = false;
                Ok(())
            }
        },
        (Some(image), format) => {
            let narrowed = narrow(&report, image);
            found_why = narrowed
                .charts
                .iter()
                .flat_map(|c| &c.versions)
                .any(|v| !v.images.is_empty() || !v.excluded.is_empty());
            print_doc(&narrowed, format)
        }
        (None, OutputFormat::Text) => output::print_stdout(&list_text(&report)),
        (None, format) => print_doc(&report, format),
    };
    if let Err(e) = printed {
        return fail(EXIT_FAILURES, format!("cannot write the result: {e}"));
    }
    // Errors go to stderr, whatever the output format, so that a non-zero exit says why.
    for line in error_lines(&report) {
        eprintln!("error: {line}");
    }
    if !found_why && let Some(image) = &args.why {
        eprintln!("error: {}", not_found(&report, image));
    }
    super::exit_code(&cancel, report.has_failures() || !found_why)
}

fn print_doc(report: &ImagesReport, format: OutputFormat) -> Result<(), String> {
    let text = if format == OutputFormat::Json {
        serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())?
    } else {
        serde_saphyr::to_string(report).map_err(|e| e.to_string())?
    };
    output::print_stdout(&text)
}

/// Whether a listed image is the one asked about: the same normalised reference, or, for
/// a partial name (`nginx`, `library/nginx`), a reference containing it.
fn matches(image: &ListedImage, asked: &str) -> bool {
    let asked = asked.trim();
    if let Ok(r) = ImageRef::parse(asked)
        && r.to_string() == image.source
    {
        return true;
    }
    let repo_and_tag = image
        .source
        .split_once('/')
        .map_or(image.source.as_str(), |(_, rest)| rest);
    image.source.contains(asked) || repo_and_tag.contains(asked)
}

fn narrow(report: &ImagesReport, asked: &str) -> ImagesReport {
    let mut out = report.clone();
    for c in &mut out.charts {
        for v in &mut c.versions {
            v.images.retain(|i| matches(i, asked));
            v.excluded.retain(|i| matches(i, asked));
        }
    }
    out
}

fn sources_of(i: &ListedImage) -> String {
    let mut names: Vec<&str> = i.provenance.iter().map(|p| p.from.as_str()).collect();
    names.dedup();
    names.join(", ")
}

/// The list, per chart version.
pub fn list_text(report: &ImagesReport) -> String {
    let mut out = String::new();
    for c in &report.charts {
        for v in &c.versions {
            let n = v.images.len();
            let _ = writeln!(
                out,
                "── {}:{} ({n} image{}) ──",
                c.key,
                v.version,
                if n == 1 { "" } else { "s" }
            );
            let width = v.images.iter().map(|i| i.source.len()).max().unwrap_or(0);
            for i in &v.images {
                let _ = writeln!(out, "  {:width$}  {}", i.source, sources_of(i));
            }
            for i in &v.excluded {
                let _ = writeln!(out, "  excluded: {} ({})", i.source, sources_of(i));
            }
            for w in &v.warnings {
                let _ = writeln!(out, "  warning: {w}");
            }
            if v.error.is_some() {
                let _ = writeln!(
                    out,
                    "  failed: discovery is incomplete (the error is on stderr)"
                );
            }
            if let Some(o) = &v.overlay {
                out.push_str(&output::overlay_lines(o, "  "));
            }
            out.push('\n');
        }
    }
    out
}

/// What failed, one line each: an upstream, or a chart version's discovery or overlay.
fn error_lines(report: &ImagesReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in &report.charts {
        if let Some(e) = &c.error {
            out.push(format!("{}: {e}", c.key));
        }
        for v in &c.versions {
            if let Some(e) = &v.error {
                out.push(format!("{}:{}: {e}", c.key, v.version));
            }
            if let Some(e) = v.overlay.as_ref().and_then(|o| o.error.as_ref()) {
                out.push(format!("{}:{}: overlay: {e}", c.key, v.version));
            }
        }
    }
    out
}

/// Every place each matching image was found, or `None` when nothing matches.
pub fn why_text(report: &ImagesReport, asked: &str) -> Option<String> {
    let mut out = String::new();
    for c in &report.charts {
        for v in &c.versions {
            let listed = v.images.iter().map(|i| (i, "")).chain(
                v.excluded
                    .iter()
                    .map(|i| (i, " (excluded by images.exclude)")),
            );
            for (i, suffix) in listed.filter(|(i, _)| matches(i, asked)) {
                let _ = writeln!(
                    out,
                    "{} in {}:{} → {}{suffix}",
                    i.source, c.key, v.version, i.target
                );
                for p in &i.provenance {
                    let _ = writeln!(out, "  {:<12}{}", p.from.as_str(), p.at);
                }
                out.push('\n');
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn not_found(report: &ImagesReport, asked: &str) -> String {
    let versions: Vec<String> = report
        .charts
        .iter()
        .flat_map(|c| {
            c.versions
                .iter()
                .map(move |v| format!("{}:{}", c.key, v.version))
        })
        .collect();
    format!(
        "{asked} is not among the images found for {}; run `lazyoci images` to list them",
        versions.join(", ")
    )
}
