//! The live progress view on stderr: one line per image copy in flight (bytes so far and
//! rate) above a totals line (images copied, skipped and failed of those found, chart
//! versions done, bytes and overall rate). Drawn with indicatif, only when stderr is a
//! terminal (or when forced with `--progress always`); stdout never sees it, and the text
//! lines keep their exact bytes. [`Tally`] folds events into what the lines say and is pure;
//! [`LiveView`] draws it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::TextProgress;
use crate::pipeline::{Event, Progress};
use crate::result::ImageStatus;

/// When to draw the live progress view (`--progress`, `LAZYOCI_PROGRESS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal (and `TERM` is not `dumb`).
    #[default]
    Auto,
    /// Always, even when stderr is not a terminal (escape codes and all).
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    /// Whether the view is drawn.
    pub fn enabled(self) -> bool {
        match self {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

/// An image copy in flight.
#[derive(Clone, Copy, Debug)]
struct Flight {
    started: Instant,
    bytes: u64,
}

/// What an event changed in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only the totals line.
    Totals,
    /// A copy started: a new image line (and the totals).
    Started(String),
    /// More bytes of a copy in flight: its line (and the totals).
    Bytes(String),
    /// A copy ended: its line goes (and the totals change).
    Ended(String),
}

/// The view's numbers, folded from pipeline events. Image counts are per chart version, like
/// the summary's; bytes are per distinct image, like the report's `bytesCopied`.
#[derive(Debug, Default)]
pub struct Tally {
    dry_run: bool,
    units: usize,
    units_done: usize,
    found: usize,
    copied: usize,
    skipped: usize,
    failed: usize,
    bytes_done: u64,
    first_copy: Option<Instant>,
    in_flight: BTreeMap<String, Flight>,
    finished: HashSet<String>,
}

impl Tally {
    /// An empty tally; `dry_run` words the counts as the dry-run summary does.
    pub fn new(dry_run: bool) -> Self {
        Tally {
            dry_run,
            ..Default::default()
        }
    }

    /// Fold in one event that happened at `now`.
    pub fn apply(&mut self, event: &Event, now: Instant) -> Change {
        match event {
            Event::Plan(units) => self.units = units.len(),
            Event::ImagesFound { count, .. } => self.found += count,
            Event::UnitDone(_) => self.units_done += 1,
            // Announced once per chart version using the image; copied once.
            Event::ImageCopying { source, .. } => {
                if self.in_flight.contains_key(source) || self.finished.contains(source) {
                    return Change::Totals;
                }
                self.first_copy.get_or_insert(now);
                let flight = Flight {
                    started: now,
                    bytes: 0,
                };
                self.in_flight.insert(source.clone(), flight);
                return Change::Started(source.clone());
            }
            Event::ImageBytes { source, bytes } => {
                if let Some(f) = self.in_flight.get_mut(source) {
                    f.bytes = *bytes;
                    return Change::Bytes(source.clone());
                }
            }
            Event::Image { result, .. } => {
                match result.status {
                    ImageStatus::Copied | ImageStatus::WouldCopy => self.copied += 1,
                    ImageStatus::Skipped => self.skipped += 1,
                    ImageStatus::Failed => self.failed += 1,
                }
                if self.finished.insert(result.source.clone()) {
                    self.bytes_done += result.bytes;
                }
                if self.in_flight.remove(&result.source).is_some() {
                    return Change::Ended(result.source.clone());
                }
            }
            Event::ChartPushing(_)
            | Event::Chart { .. }
            | Event::ImagesFailed { .. }
            | Event::ImagesRemark { .. } => {}
        }
        Change::Totals
    }

    /// Bytes copied so far: finished images' final counts plus what is in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes_done + self.in_flight.values().map(|f| f.bytes).sum::<u64>()
    }

    /// The line of the image copy in flight from `source`: bytes, rate, reference.
    pub fn image_line(&self, source: &str, now: Instant) -> Option<String> {
        let f = self.in_flight.get(source)?;
        let bytes = HumanBytes(f.bytes).to_string();
        let rate = rate(f.bytes, now.saturating_duration_since(f.started));
        Some(format!("{bytes:>11} {rate:>13}  {source}"))
    }

    /// The totals line.
    pub fn totals_line(&self, now: Instant) -> String {
        let done = self.copied + self.skipped + self.failed;
        let copied = if self.dry_run { "to copy" } else { "copied" };
        let mut line = format!(
            "images {done}/{}: {} {copied}, {} skipped, {} failed · chart versions {}/{} · {}",
            self.found,
            self.copied,
            self.skipped,
            self.failed,
            self.units_done,
            self.units,
            HumanBytes(self.bytes())
        );
        if let Some(first) = self.first_copy {
            line.push_str(" at ");
            line.push_str(&rate(self.bytes(), now.saturating_duration_since(first)));
        }
        line
    }
}

/// `bytes` over `elapsed`, e.g. `12.50 MiB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 0.001 {
        return "- B/s".to_string();
    }
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}

struct Bars {
    tally: Tally,
    images: HashMap<String, ProgressBar>,
}

/// The contract's text lines plus the live view on stderr. Lines are written with the bars
/// lifted off the terminal, so neither tears the other.
pub struct LiveView {
    text: TextProgress,
    multi: MultiProgress,
    totals: ProgressBar,
    style: ProgressStyle,
    bars: Mutex<Bars>,
}

impl LiveView {
    /// Draw on stderr: the terminal itself, or, when stderr is not one (`--progress always`),
    /// plain ANSI cursor movement written to it.
    pub fn new(text: TextProgress, dry_run: bool) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(RawStderr::from_env()), 20)
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let totals = multi.add(ProgressBar::no_length().with_style(style.clone()));
        LiveView {
            text: text.around_bars(multi.clone()),
            multi,
            totals,
            style,
            bars: Mutex::new(Bars {
                tally: Tally::new(dry_run),
                images: HashMap::new(),
            }),
        }
    }

    /// Leave the final totals line on stderr (nothing if the run never started).
    pub fn finish(&self) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        for (_, bar) in bars.images.drain() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if bars.tally.units == 0 {
            self.totals.finish_and_clear();
        } else {
            self.totals
                .finish_with_message(bars.tally.totals_line(Instant::now()));
        }
        self.text.flush_partial();
    }

    fn draw(&self, event: &Event) {
        let now = Instant::now();
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bars = &mut *bars;
        match bars.tally.apply(event, now) {
            Change::Totals => {}
            Change::Started(source) => {
                let bar = self.multi.insert_before(
                    &self.totals,
                    ProgressBar::no_length().with_style(self.style.clone()),
                );
                bar.set_message(bars.tally.image_line(&source, now).unwrap_or_default());
                bars.images.insert(source, bar);
            }
            Change::Bytes(source) => {
                if let (Some(bar), Some(line)) = (
                    bars.images.get(&source),
                    bars.tally.image_line(&source, now),
                ) {
                    bar.set_message(line);
                }
            }
            Change::Ended(source) => {
                if let Some(bar) = bars.images.remove(&source) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
        }
        self.totals.set_message(bars.tally.totals_line(now));
    }
}

impl Progress for LiveView {
    fn event(&self, event: Event) {
        self.draw(&event);
        self.text.event(event);
    }

    fn wants_bytes(&self) -> bool {
        true
    }
}

/// stderr driven as a terminal whatever it is, for `--progress always`: ANSI cursor
/// movement, width from `COLUMNS` (default 100).
#[derive(Debug)]
struct RawStderr {
    width: u16,
}

impl RawStderr {
    fn from_env() -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|w| *w >= 20)
            .unwrap_or(100);
        RawStderr { width }
    }

    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }

    fn cursor(&self, n: usize, code: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}{code}"))
    }
}

impl indicatif::TermLike for RawStderr {
    fn width(&self) -> u16 {
        self.width
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ImageResult;

    fn image(source: &str, status: ImageStatus, bytes: u64) -> Event {
        Event::Image {
            unit: 0,
            result: ImageResult {
                source: source.into(),
                target: format!("dst/{source}"),
                status,
                digest: None,
                bytes,
                error: None,
                previous_digest: None,
                note: None,
                provenance: Vec::new(),
                attached: Vec::new(),
                served_by: None,
            },
        }
    }

    fn copying(unit: usize, source: &str) -> Event {
        Event::ImageCopying {
            unit,
            source: source.into(),
        }
    }

    #[test]
    fn counts_per_chart_version_and_bytes_once_per_image() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = Tally::new(false);
        t.units = 2; // Plan(units) needs pipeline-built units; only their number counts.
        for unit in 0..2 {
            t.apply(&Event::ImagesFound { unit, count: 3 }, t0);
        }
        assert_eq!(
            t.totals_line(t0),
            "images 0/6: 0 copied, 0 skipped, 0 failed · chart versions 0/2 · 0 B"
        );
        // One image shared by both versions: one line, announced twice.
        assert_eq!(t.apply(&copying(0, "a"), t0), Change::Started("a".into()));
        assert_eq!(t.apply(&copying(1, "a"), at(10)), Change::Totals);
        assert_eq!(t.apply(&copying(0, "b"), t0), Change::Started("b".into()));
        let bytes = |source: &str, bytes| Event::ImageBytes {
            source: source.into(),
            bytes,
        };
        assert_eq!(
            t.apply(&bytes("a", 3 << 20), at(500)),
            Change::Bytes("a".into())
        );
        t.apply(&bytes("b", 1 << 20), at(500));
        assert_eq!(
            t.image_line("a", at(2000)).unwrap(),
            "   3.00 MiB    1.50 MiB/s  a"
        );
        assert_eq!(t.bytes(), 4 << 20);
        assert_eq!(
            t.totals_line(at(2000)),
            "images 0/6: 0 copied, 0 skipped, 0 failed · chart versions 0/2 · 4.00 MiB at 2.00 MiB/s"
        );
        // The final count replaces the sampled one; a shared image's bytes count once.
        assert_eq!(
            t.apply(&image("a", ImageStatus::Copied, 4 << 20), at(3000)),
            Change::Ended("a".into())
        );
        assert_eq!(
            t.apply(&image("a", ImageStatus::Copied, 4 << 20), at(3000)),
            Change::Totals
        );
        assert!(t.image_line("a", at(3000)).is_none());
        t.apply(&image("b", ImageStatus::Failed, 0), at(3000));
        for (source, status) in [("c", ImageStatus::Skipped), ("c", ImageStatus::Skipped)] {
            assert_eq!(t.apply(&image(source, status, 0), at(3000)), Change::Totals);
        }
        // Bytes of a copy that is no longer in flight are ignored.
        assert_eq!(t.apply(&bytes("b", 9 << 20), at(3500)), Change::Totals);
        t.apply(&Event::UnitDone(0), at(4000));
        t.apply(&Event::UnitDone(1), at(4000));
        assert_eq!(t.bytes(), 4 << 20);
        assert_eq!(
            t.totals_line(at(4000)),
            "images 5/6: 2 copied, 2 skipped, 1 failed · chart versions 2/2 · 4.00 MiB at 1.00 MiB/s"
        );
    }

    #[test]
    fn dry_runs_count_what_would_be_copied() {
        let now = Instant::now();
        let mut t = Tally::new(true);
        t.apply(&Event::ImagesFound { unit: 0, count: 2 }, now);
        t.apply(&image("a", ImageStatus::WouldCopy, 0), now);
        t.apply(&image("b", ImageStatus::Skipped, 0), now);
        assert_eq!(
            t.totals_line(now),
            "images 2/2: 1 to copy, 1 skipped, 0 failed · chart versions 0/0 · 0 B"
        );
    }

    #[test]
    fn rates_and_modes() {
        assert_eq!(rate(512, Duration::ZERO), "- B/s");
        assert_eq!(rate(1 << 30, Duration::from_secs(4)), "256.00 MiB/s");
        assert_eq!(rate(100, Duration::from_millis(500)), "200 B/s");
        assert!(ProgressMode::Always.enabled());
        assert!(!ProgressMode::Never.enabled());
    }
}
