//! Text output: live per-version progress lines (in version order, whatever order the work
//! finishes in), the summary block, and themes.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use super::OutputFormat;
use crate::pipeline::{Event, Progress, Unit};
use crate::result::{ChartStatus, ImageStatus, MirrorReport};

/// Colours for text output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    /// Green/yellow/red.
    Default,
    /// Bold and dim only.
    Mono,
    /// No escape codes.
    None,
}

/// The themes `--theme` accepts.
pub const THEMES: &[&str] = &["default", "mono", "none"];

impl Theme {
    /// Pick the theme: `--theme`, turned off by `NO_COLOR`, by a non-terminal stdout, or by
    /// machine output.
    pub fn resolve(name: &str, format: OutputFormat) -> Result<Theme, String> {
        let theme = match name {
            "" | "default" => Theme::Default,
            "mono" => Theme::Mono,
            "none" => Theme::None,
            other => {
                return Err(format!(
                    "unknown theme {other:?}; themes: {}",
                    THEMES.join(", ")
                ));
            }
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if no_color || format != OutputFormat::Text || !std::io::stdout().is_terminal() {
            return Ok(Theme::None);
        }
        Ok(theme)
    }

    fn paint(self, kind: Paint, s: &str) -> String {
        let code = match (self, kind) {
            (Theme::None, _) => return s.to_string(),
            (Theme::Default, Paint::Good) => "32",
            (Theme::Default, Paint::Skip) => "33",
            (Theme::Default, Paint::Bad) => "31;1",
            (Theme::Default, Paint::Head)
            | (Theme::Mono, Paint::Head)
            | (Theme::Mono, Paint::Bad) => "1",
            (Theme::Mono, Paint::Good) => "0",
            (Theme::Mono, Paint::Skip) => "2",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

#[derive(Clone, Copy)]
enum Paint {
    Good,
    Skip,
    Bad,
    Head,
}

/// Write to stdout, treating a closed pipe as success.
pub fn print_stdout(s: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Default)]
struct State {
    units: Vec<Unit>,
    buffers: Vec<String>,
    done: Vec<bool>,
    pushing: Vec<bool>,
    head: usize,
}

/// What an overlay entry says, as indented lines: the file, how many images it relocates,
/// each image it cannot, and any note or error.
pub fn overlay_lines(o: &crate::result::OverlayResult, indent: &str) -> String {
    let mut s = format!(
        "{indent}overlay: {} relocated, {} not relocatable by values",
        o.relocated,
        o.not_relocatable.len()
    );
    if let Some(p) = &o.path {
        s.push_str(&format!(" → {p}"));
    }
    s.push('\n');
    for n in &o.not_relocatable {
        let at = n.at.first().map(String::as_str).unwrap_or_default();
        s.push_str(&format!("{indent}  not relocatable: {} ({at})\n", n.image));
    }
    for x in [&o.artifact, &o.note, &o.error].into_iter().flatten() {
        s.push_str(&format!("{indent}  {x}\n"));
    }
    s
}

/// Prints progress events as the contract's per-version lines, one version block after
/// another. Blocks of versions that finish early wait for the ones before them.
pub struct TextProgress {
    state: Mutex<State>,
    theme: Theme,
    to_stderr: bool,
    bars: Option<indicatif::MultiProgress>,
    /// With bars: the end of the text written so far when it is not a whole line yet.
    partial: Mutex<String>,
}

impl TextProgress {
    /// Print to stdout, or to stderr when stdout carries a JSON/YAML document.
    pub fn new(theme: Theme, to_stderr: bool) -> Self {
        TextProgress {
            state: Mutex::new(State::default()),
            theme,
            to_stderr,
            bars: None,
            partial: Mutex::new(String::new()),
        }
    }

    /// Lift `bars` (the live view on stderr) off the terminal while a line is written, so
    /// lines and bars never tear each other. The lines themselves do not change.
    pub fn around_bars(mut self, bars: indicatif::MultiProgress) -> Self {
        self.bars = Some(bars);
        self
    }

    fn emit(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let Some(bars) = &self.bars else {
            return self.write(text);
        };
        // Bars are drawn below the last line, so only whole lines go out while they are up;
        // the bytes are the same, a partial line ("pushing... ") just waits for its end.
        let Ok(mut partial) = self.partial.lock() else {
            return self.write(text);
        };
        partial.push_str(text);
        if let Some(end) = partial.rfind('\n') {
            let lines: String = partial.drain(..=end).collect();
            bars.suspend(|| self.write(&lines));
        }
    }

    /// Write out a partial line held back while bars were up (once they are gone).
    pub fn flush_partial(&self) {
        let rest = match self.partial.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        if !rest.is_empty() {
            self.write(&rest);
        }
    }

    fn write(&self, text: &str) {
        if self.to_stderr {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        } else {
            let _ = print_stdout(text);
        }
    }

    fn line(&self, state: &State, event: &Event) -> (usize, String) {
        let t = self.theme;
        let src_line =
            |unit: usize, src: &str, rest: String| (unit, format!("    {src} → {rest}\n"));
        match event {
            Event::Plan(_) | Event::ImageBytes { .. } => (0, String::new()),
            Event::ChartPushing(u) => (*u, "  Chart: pushing... ".into()),
            Event::Chart {
                unit,
                status,
                detail,
                served_by,
            } => {
                let pushed = state.pushing.get(*unit).copied().unwrap_or(false);
                let detail = detail.as_deref().unwrap_or_default();
                let via = served_by
                    .as_ref()
                    .map(|h| format!(" (via {h})"))
                    .unwrap_or_default();
                let text = match (status, pushed) {
                    (ChartStatus::Pushed, _) => format!("{}{via}\n", t.paint(Paint::Good, "OK")),
                    (ChartStatus::Failed, true) => {
                        format!("{} ({detail})\n", t.paint(Paint::Bad, "FAILED"))
                    }
                    (ChartStatus::Failed, false) => {
                        format!("  Chart: {} ({detail})\n", t.paint(Paint::Bad, "FAILED"))
                    }
                    (ChartStatus::Skipped, _) => format!(
                        "  Chart: {}{via}\n",
                        t.paint(Paint::Skip, "already exists, skipping")
                    ),
                    (ChartStatus::WouldPush, _) => {
                        let u = &state.units[*unit];
                        format!(
                            "  Chart: would push → oci://{}/{}:{}{via}\n",
                            u.chart_base,
                            u.chart,
                            crate::spec::version_tag(&u.version)
                        )
                    }
                    (ChartStatus::NotRequested, _) => String::new(),
                };
                let note = match status {
                    ChartStatus::Pushed | ChartStatus::Skipped | ChartStatus::WouldPush
                        if !detail.is_empty() =>
                    {
                        format!("  Note: {detail}\n")
                    }
                    _ => String::new(),
                };
                (*unit, text + &note)
            }
            Event::ImagesFound { unit, count: 0 } => (*unit, "  Images: none found\n".into()),
            Event::ImagesFound { unit, count } => (*unit, format!("  Images: {count} found\n")),
            Event::ImagesRemark { unit, label, text } => (*unit, format!("  {label}: {text}\n")),
            Event::ImagesFailed { unit, error } => (
                *unit,
                format!("  Images: {} ({error})\n", t.paint(Paint::Bad, "FAILED")),
            ),
            Event::ImageCopying { unit, source } => src_line(*unit, source, "copying...".into()),
            Event::Image { unit, result } => {
                let moved = match (&result.previous_digest, result.status) {
                    (Some(p), ImageStatus::Copied | ImageStatus::WouldCopy) => {
                        format!(" (source tag moved; replaces {p})")
                    }
                    (Some(_), ImageStatus::Skipped) => {
                        " (source tag moved; kept the target's digest)".to_string()
                    }
                    _ => String::new(),
                };
                let mut moved = moved + &attached_suffix(&result.attached);
                if let Some(host) = &result.served_by {
                    moved.push_str(&format!(" (via {host})"));
                }
                let rest = match result.status {
                    ImageStatus::Copied => t.paint(Paint::Good, "OK") + &moved,
                    ImageStatus::Skipped => t.paint(Paint::Skip, "exists") + &moved,
                    ImageStatus::WouldCopy => format!("would copy to {}{moved}", result.target),
                    ImageStatus::Failed => format!(
                        "{} ({})",
                        t.paint(Paint::Bad, "FAILED"),
                        result.error.as_deref().unwrap_or_default()
                    ),
                };
                src_line(*unit, &result.source, rest)
            }
            Event::UnitDone(u) => (*u, "\n".into()),
        }
    }
}

impl Progress for TextProgress {
    fn event(&self, event: Event) {
        if matches!(event, Event::ImageBytes { .. }) {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Event::Plan(units) = &event {
            let n = units.len();
            state.units = units.clone();
            state.done = vec![false; n];
            state.pushing = vec![false; n];
            state.buffers = (0..n)
                .map(|i| {
                    let u = &units[i];
                    let mut s = String::new();
                    if i == 0 || units[i - 1].key != u.key {
                        s.push_str(&format!(
                            "Mirror: {} ({}) → {}\n",
                            u.key, u.chart, u.chart_base
                        ));
                        s.push_str(&format!("Versions: {}\n\n", u.versions_of_key.join(", ")));
                    }
                    s.push_str(
                        &self
                            .theme
                            .paint(Paint::Head, &format!("── {}:{} ──", u.chart, u.version)),
                    );
                    s.push('\n');
                    s
                })
                .collect();
        }
        let (unit, text) = self.line(&state, &event);
        if state.buffers.is_empty() {
            return;
        }
        if let Event::ChartPushing(u) = event
            && let Some(p) = state.pushing.get_mut(u)
        {
            *p = true;
        }
        if let Some(b) = state.buffers.get_mut(unit) {
            b.push_str(&text);
        }
        if let Event::UnitDone(u) = event
            && let Some(d) = state.done.get_mut(u)
        {
            *d = true;
        }
        // Flush the head block, and every finished block after it.
        while state.head < state.buffers.len() {
            let head = state.head;
            let text = std::mem::take(&mut state.buffers[head]);
            self.emit(&text);
            if !state.done[head] {
                break;
            }
            state.head += 1;
        }
    }
}

/// ` (+2 attached: sig, referrer)` for attached artifacts copied (or to copy), else nothing.
fn attached_suffix(attached: &[crate::result::AttachedResult]) -> String {
    let moved: Vec<&str> = attached
        .iter()
        .filter(|a| matches!(a.status, ImageStatus::Copied | ImageStatus::WouldCopy))
        .map(|a| a.kind.short())
        .collect();
    if moved.is_empty() {
        String::new()
    } else {
        format!(" (+{} attached: {})", moved.len(), moved.join(", "))
    }
}

/// One line per failure, for the end of the summary: chart versions (`key:version: why`)
/// and images (`source → target: why`, each image once however many versions use it).
pub fn failed_lines(r: &MirrorReport) -> Vec<String> {
    let first = |e: &str| e.lines().next().unwrap_or_default().to_string();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in &r.charts {
        if let Some(e) = &c.error {
            out.push(format!("{}: {}", c.key, first(e)));
        }
        for v in &c.versions {
            if let Some(e) = v.chart_error.as_ref().or(v.images_error.as_ref()) {
                out.push(format!("{}:{}: {}", c.key, v.version, first(e)));
            }
            if let Some(e) = v.overlay.as_ref().and_then(|o| o.error.as_ref()) {
                out.push(format!("{}:{}: overlay: {}", c.key, v.version, first(e)));
            }
        }
    }
    for i in r
        .charts
        .iter()
        .flat_map(|c| &c.versions)
        .flat_map(|v| &v.images)
    {
        if i.status == ImageStatus::Failed && seen.insert(&i.source) {
            let why = i.error.as_deref().map(first).unwrap_or_default();
            out.push(format!("{} → {}: {why}", i.source, i.target));
        }
    }
    out
}

/// Print the summary block (text output).
pub fn print_summary(r: &MirrorReport, theme: Theme) -> Result<(), String> {
    let rule = "═".repeat(40);
    let mut s = String::new();
    let title = if r.dry_run {
        "Mirror Summary (dry run: nothing was written)"
    } else {
        "Mirror Summary"
    };
    s.push_str(&format!(
        "{rule}\n{}\n{rule}\n",
        theme.paint(Paint::Head, title)
    ));
    for c in &r.charts {
        s.push_str(&format!("  {} ({}):\n", c.key, c.chart));
        if let Some(e) = &c.error {
            s.push_str(&theme.paint(Paint::Bad, &format!("    failed: {e}\n")));
        }
        for w in &c.warnings {
            s.push_str(&format!("    warning: {w}\n"));
        }
        for v in &c.versions {
            let chart = serde_json::to_value(v.chart_status)
                .ok()
                .and_then(|x| x.as_str().map(str::to_string))
                .unwrap_or_default();
            let images = match &v.images_error {
                Some(e) => format!("not discovered ({})", e.lines().next().unwrap_or_default()),
                None => format!(
                    "{} {}, {} skipped, {} failed",
                    v.images_copied,
                    if r.dry_run { "to copy" } else { "copied" },
                    v.images_skipped,
                    v.images_failed
                ),
            };
            s.push_str(&format!(
                "    {}: chart={chart}  images={images}\n",
                v.version
            ));
            if let Some(o) = &v.overlay {
                s.push_str(&overlay_lines(o, "      "));
            }
        }
    }
    let (pushed, copied) = if r.dry_run {
        ("to push", "to copy")
    } else {
        ("pushed", "copied")
    };
    s.push_str(&format!(
        "\n  Charts:  {} {pushed}, {} skipped, {} failed\n",
        r.charts_pushed, r.charts_skipped, r.charts_failed
    ));
    s.push_str(&format!(
        "  Images:  {} {copied}, {} skipped, {} failed\n",
        r.images_copied, r.images_skipped, r.images_failed
    ));
    let versions: Vec<&crate::result::VersionResult> =
        r.charts.iter().flat_map(|c| &c.versions).collect();
    let not_fetched = versions.iter().filter(|v| v.not_fetched()).count();
    let not_discovered = versions.iter().filter(|v| v.not_discovered()).count();
    if not_fetched > 0 {
        let line = format!(
            "  Fetch:   {not_fetched} chart version(s) could not be fetched; nothing of them was mirrored\n"
        );
        s.push_str(&theme.paint(Paint::Bad, &line));
    }
    if not_discovered > 0 {
        let line = format!(
            "  Discovery: {not_discovered} chart version(s) could not be rendered or read; their images are not all known\n"
        );
        s.push_str(&theme.paint(Paint::Bad, &line));
    }
    let failed = failed_lines(r);
    if !failed.is_empty() {
        s.push_str(&theme.paint(Paint::Bad, "\n  Failed:\n"));
        for line in failed {
            s.push_str(&format!("    {line}\n"));
        }
    }
    print_stdout(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn themes_paint_only_when_allowed() {
        assert!(
            Theme::resolve("neon", OutputFormat::Text)
                .unwrap_err()
                .contains("default, mono, none")
        );
        // Machine output and a non-terminal stdout (as under `cargo test`) never get colour.
        assert_eq!(
            Theme::resolve("default", OutputFormat::Json).unwrap(),
            Theme::None
        );
        assert_eq!(
            Theme::resolve("default", OutputFormat::Text).unwrap(),
            Theme::None
        );
        assert_eq!(Theme::None.paint(Paint::Bad, "FAILED"), "FAILED");
        assert_eq!(Theme::Default.paint(Paint::Good, "OK"), "\x1b[32mOK\x1b[0m");
        assert_eq!(
            Theme::Mono.paint(Paint::Bad, "FAILED"),
            "\x1b[1mFAILED\x1b[0m"
        );
    }
}
