//! Progress events the pipeline emits while it runs, and the sampler that turns a copy's
//! byte counter into [`Event::ImageBytes`] (a timer; no IO).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::result::{ChartStatus, ImageResult};

/// How often the bytes of one image copy in flight are reported, at most.
pub const BYTES_EVERY: Duration = Duration::from_millis(100);

/// One chart version to mirror.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Upstream key.
    pub key: String,
    /// Chart name.
    pub chart: String,
    /// Version.
    pub version: String,
    /// Where chart artifacts go: `host/path[/prefix]`.
    pub chart_base: String,
    /// Versions of this upstream in this run.
    pub versions_of_key: Vec<String>,
    pub(super) upstream: usize,
}

/// Progress, for live output. Events of one unit arrive in order; units interleave.
#[derive(Clone, Debug)]
pub enum Event {
    /// The plan, before anything runs.
    Plan(Vec<Unit>),
    /// A chart push starts.
    ChartPushing(usize),
    /// The chart step of a unit finished.
    Chart {
        /// Unit index.
        unit: usize,
        /// Outcome.
        status: ChartStatus,
        /// Error or note.
        detail: Option<String>,
        /// The host that served the chart, when `sourceMirrors` lists its source host.
        served_by: Option<String>,
    },
    /// Images were discovered.
    ImagesFound {
        /// Unit index.
        unit: usize,
        /// How many.
        count: usize,
    },
    /// A remark about a unit's images: a discovery warning or an excluded image.
    ImagesRemark {
        /// Unit index.
        unit: usize,
        /// `Warning` or `Excluded`.
        label: &'static str,
        /// The remark.
        text: String,
    },
    /// Images could not be discovered.
    ImagesFailed {
        /// Unit index.
        unit: usize,
        /// Why.
        error: String,
    },
    /// An image copy starts.
    ImageCopying {
        /// Unit index.
        unit: usize,
        /// Source reference.
        source: String,
    },
    /// An image finished.
    Image {
        /// Unit index.
        unit: usize,
        /// Result.
        result: ImageResult,
    },
    /// Bytes of an image copy in flight, sampled at most every [`BYTES_EVERY`] while it
    /// runs (only when [`Progress::wants_bytes`]). One per image, not per unit; between its
    /// [`Event::ImageCopying`] and [`Event::Image`].
    ImageBytes {
        /// Source reference.
        source: String,
        /// Blob bytes streamed so far (attempts that were retried included); the image's
        /// final count is [`ImageResult::bytes`].
        bytes: u64,
    },
    /// Nothing more will happen for this unit.
    UnitDone(usize),
}

/// Receives [`Event`]s.
pub trait Progress: Send + Sync {
    /// Handle one event.
    fn event(&self, event: Event);

    /// Whether to send [`Event::ImageBytes`] (it costs a timer per copy in flight).
    fn wants_bytes(&self) -> bool {
        false
    }
}

/// Run `copy`, reporting `streamed` as [`Event::ImageBytes`] for `source` every
/// [`BYTES_EVERY`] while it runs, if `progress` wants bytes. The copy never waits for this.
pub(super) async fn sample_bytes<F: std::future::Future>(
    copy: F,
    streamed: &AtomicU64,
    progress: &dyn Progress,
    source: &str,
) -> F::Output {
    if !progress.wants_bytes() {
        return copy.await;
    }
    let mut copy = std::pin::pin!(copy);
    let start = tokio::time::Instant::now() + BYTES_EVERY;
    let mut tick = tokio::time::interval_at(start, BYTES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            out = &mut copy => return out,
            _ = tick.tick() => progress.event(Event::ImageBytes {
                source: source.to_string(),
                bytes: streamed.load(Ordering::Relaxed),
            }),
        }
    }
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        wants: bool,
        seen: std::sync::Mutex<Vec<(String, u64)>>,
        first: tokio::sync::Notify,
    }

    impl Progress for Recorder {
        fn event(&self, event: Event) {
            if let Event::ImageBytes { source, bytes } = event {
                self.seen.lock().unwrap().push((source, bytes));
                self.first.notify_one();
            }
        }

        fn wants_bytes(&self) -> bool {
            self.wants
        }
    }

    #[tokio::test]
    async fn samples_the_counter_only_when_bytes_are_wanted() {
        let streamed = AtomicU64::new(0);
        let rec = Recorder {
            wants: true,
            ..Default::default()
        };
        // A copy that streams 42 bytes and ends once they have been reported.
        let copy = async {
            streamed.store(42, Ordering::Relaxed);
            tokio::time::timeout(Duration::from_secs(10), rec.first.notified()).await
        };
        let out = sample_bytes(copy, &streamed, &rec, "src/a:1").await;
        assert!(out.is_ok(), "no ImageBytes within 10 s");
        let seen = rec.seen.lock().unwrap().clone();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|s| *s == ("src/a:1".to_string(), 42)),
            "{seen:?}"
        );

        let quiet = Recorder::default();
        sample_bytes(
            tokio::time::sleep(BYTES_EVERY * 3),
            &streamed,
            &quiet,
            "src/a:1",
        )
        .await;
        assert!(quiet.seen.lock().unwrap().is_empty());
    }
}
