//! The live progress view (`--progress`): absent unless stderr is a terminal or it is
//! forced, never on stdout, and its final totals agree with the report.

use std::time::Duration;

use lazyoci::testkit::proxy::{Proxy, Rule};

use crate::common::*;

/// A terminal `width` columns wide, enough of one to replay what the view writes: printable
/// characters with autowrap, `\r`, `\n`, cursor moves (`ESC[nA/B/C/D`) and line clears
/// (`ESC[2K`). Keeps every line as it was just before it was cleared.
struct Screen {
    width: usize,
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
    wrap_pending: bool,
    cleared: Vec<String>,
}

impl Screen {
    fn replay(width: usize, bytes: &str) -> Screen {
        let mut s = Screen {
            width,
            rows: vec![Vec::new()],
            row: 0,
            col: 0,
            wrap_pending: false,
            cleared: Vec::new(),
        };
        let mut chars = bytes.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => s.goto(s.row + 1, 0),
                '\r' => s.goto(s.row, 0),
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "unexpected escape in {bytes:?}");
                    let mut n = String::new();
                    while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                        n.push(d);
                    }
                    let n: usize = n.parse().unwrap_or(1);
                    match chars.next() {
                        Some('A') => s.goto(s.row.saturating_sub(n), s.col),
                        Some('B') => s.goto(s.row + n, s.col),
                        Some('C') => s.goto(s.row, (s.col + n).min(s.width - 1)),
                        Some('D') => s.goto(s.row, s.col.saturating_sub(n)),
                        Some('K') if n == 2 => {
                            let line = s.line(s.row);
                            if !line.is_empty() {
                                s.cleared.push(line);
                            }
                            s.rows[s.row].clear();
                        }
                        other => panic!("unexpected escape sequence ending in {other:?}"),
                    }
                }
                c => {
                    if s.wrap_pending {
                        s.goto(s.row + 1, 0);
                    }
                    let (row, col) = (s.row, s.col);
                    let r = &mut s.rows[row];
                    if r.len() <= col {
                        r.resize(col + 1, ' ');
                    }
                    r[col] = c;
                    if col + 1 == s.width {
                        s.wrap_pending = true;
                    } else {
                        s.col += 1;
                    }
                }
            }
        }
        s
    }

    fn goto(&mut self, row: usize, col: usize) {
        if self.rows.len() <= row {
            self.rows.resize(row + 1, Vec::new());
        }
        (self.row, self.col, self.wrap_pending) = (row, col, false);
    }

    fn line(&self, row: usize) -> String {
        self.rows[row]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string()
    }

    /// What the screen shows at the end, without blank rows.
    fn lines(&self) -> Vec<String> {
        (0..self.rows.len())
            .map(|r| self.line(r))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Every line ever shown: cleared ones, then the final screen.
    fn history(&self) -> Vec<String> {
        self.cleared.iter().cloned().chain(self.lines()).collect()
    }
}

fn demo_config(w: &World, name: &str, target_path: &str) {
    w.config(
        name,
        &format!(
            "target:\n  url: {}/{target_path}\n  insecure: true\n  charts-prefix: charts\nupstreams:\n  demo:\n    type: local\n    path: ./charts/demo\n    chart: demo\n    versions: [\"1.0.0\"]\n",
            w.dst.addr()
        ),
    );
}

#[tokio::test]
async fn no_view_unless_stderr_is_a_terminal_and_stdout_is_the_same_with_it() {
    let w = world().await;
    w.demo_chart();
    demo_config(&w, "a.yaml", "a");
    demo_config(&w, "b.yaml", "b");

    // stderr is a pipe here: `auto` draws nothing, and text output leaves stderr empty.
    let plain = w.run(&["mirror", "-c", "a.yaml", "--all"]);
    assert_eq!(plain.code, 0, "{plain:?}");
    assert!(plain.stderr.is_empty(), "stderr not empty: {plain:?}");
    let json = w.run(&["mirror", "-c", "a.yaml", "--all", "-o", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert!(
        !json.stderr.contains('\x1b') && !json.stderr.contains('\r'),
        "escape codes on a non-terminal stderr: {json:?}"
    );
    assert!(!json.stderr.contains("chart versions"), "{json:?}");

    // Forced on, the view goes to stderr; stdout has the same lines (in the order the
    // copies finished, which differs between runs) and no trace of the view.
    let live = w.run(&["mirror", "-c", "b.yaml", "--all", "--progress", "always"]);
    assert_eq!(live.code, 0, "{live:?}");
    let screen = Screen::replay(100, &live.stderr);
    assert!(
        screen
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("images 10/10: 10 copied, 0 skipped, 0 failed")),
        "no view on stderr: {live:?}"
    );
    assert!(
        !live.stdout.contains('\x1b') && !live.stdout.contains('\r'),
        "{live:?}"
    );
    let sorted = |s: &str| {
        let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let expected = plain.stdout.replace("/a/charts", "/b/charts");
    assert_eq!(sorted(&live.stdout), sorted(&expected));
    assert!(
        live.stdout
            .ends_with("  Images:  10 copied, 0 skipped, 0 failed\n")
    );

    // `never` (here through the environment) wins over nothing being a terminal anyway,
    // and a bad value is a usage error.
    let never = w.run_env(
        &["mirror", "-c", "a.yaml", "--all", "-o", "json"],
        &[("LAZYOCI_PROGRESS", "never")],
    );
    assert_eq!(never.code, 0, "{never:?}");
    assert!(!never.stderr.contains("chart versions"), "{never:?}");
    let bad = w.run(&["mirror", "-c", "a.yaml", "--all", "--progress", "sometimes"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_shows_copies_in_flight_and_ends_with_the_reports_totals() {
    let w = world().await;
    // Uploads to the target wait, so every copy is in flight long enough to be sampled.
    let target = Proxy::start(
        w.dst.addr(),
        vec![Rule::delay(
            "PUT",
            "/blobs/uploads/",
            Duration::from_millis(400),
        )],
    )
    .unwrap();
    let sources: Vec<String> = [&w.set.nginx, &w.set.redis, &w.set.api, &w.set.worker]
        .iter()
        .map(|s| s.reference(w.src_host()))
        .collect();
    image_chart(&w, "live", &sources);
    w.config(
        "mirror.yaml",
        &format!(
            "target: {{url: {}/t, insecure: true}}\nupstreams:\n  live: {{type: local, path: charts/live, chart: live, versions: [\"1.0.0\", \"1.1.0\"]}}\n",
            target.addr()
        ),
    );
    let run = w.run_env(
        &["mirror", "--all", "-o", "json", "--progress", "always"],
        &[("COLUMNS", "200")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json(); // stdout is still exactly one JSON document
    let screen = Screen::replay(200, &run.stderr);

    // The last totals line drawn: counts as in the summary (per chart version, so the four
    // images count twice), bytes as in the report (each image once).
    let bytes = report["bytesCopied"].as_u64().unwrap();
    assert!(bytes > 0, "{report:#}");
    let expected = format!(
        "images 8/8: {} copied, {} skipped, {} failed · chart versions 2/2 · {} at ",
        report["imagesCopied"],
        report["imagesSkipped"],
        report["imagesFailed"],
        indicatif::HumanBytes(bytes)
    );
    assert_eq!(report["imagesCopied"], 8, "{report:#}");
    // The final screen: the text lines (stderr carries them with -o json), then the
    // totals; no line of a copy in flight is left behind.
    let lines = screen.lines();
    let last = lines
        .last()
        .unwrap_or_else(|| panic!("empty screen: {run:?}"));
    assert!(
        last.starts_with(&expected) && last.ends_with("/s"),
        "final totals {last:?}, expected {expected:?}…\n{lines:#?}"
    );
    let in_flight =
        regex::Regex::new(r"^\s*([0-9.]+) (B|KiB|MiB)\s+[0-9.]+ (B|KiB|MiB)/s  (\S+)$").unwrap();
    assert!(
        lines.iter().all(|l| !in_flight.is_match(l))
            && lines.iter().filter(|l| l.starts_with("images ")).count() == 1
            && lines.contains(&"── live:1.1.0 ──".to_string()),
        "{lines:#?}"
    );
    // A line written in two parts ("pushing... " then "OK") is not torn by the bars.
    assert_eq!(
        lines
            .iter()
            .filter(|l| *l == "  Chart: pushing... OK")
            .count(),
        2,
        "{lines:#?}"
    );

    // While copies ran, lines showed their bytes so far and rate, by source.
    let sampled: Vec<(f64, String)> = screen
        .history()
        .iter()
        .filter_map(|l| in_flight.captures(l))
        .map(|c| (c[1].parse().unwrap(), c[4].to_string()))
        .collect();
    assert!(
        sampled.iter().all(|(_, s)| sources.contains(s)),
        "{sampled:?}"
    );
    assert!(
        sampled.iter().any(|(n, _)| *n > 0.0),
        "no copy in flight was shown with its bytes: {sampled:?}\n{run:?}"
    );
}
