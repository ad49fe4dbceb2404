//! Progress events the pipeline emits while it runs. Pure.

use crate::result::{ChartStatus, ImageResult};

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
    /// Nothing more will happen for this unit.
    UnitDone(usize),
}

/// Receives [`Event`]s.
pub trait Progress: Send + Sync {
    /// Handle one event.
    fn event(&self, event: Event);
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: Event) {}
}
