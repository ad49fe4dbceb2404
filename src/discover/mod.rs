//! Finding the images a chart version uses: render it with helm ([`render`]) and walk the
//! rendered objects ([`manifests`]).

pub mod manifests;
pub mod render;

use crate::reference::ImageRef;

pub use render::{RenderError, RenderOptions, Renderer};

/// Images found in one chart version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discovered {
    /// Unique, normalised, sorted.
    pub images: Vec<ImageRef>,
    /// Strings in `image` fields that are not image references (e.g. unrendered templates).
    pub warnings: Vec<String>,
}

/// Normalise, dedupe and sort raw image strings.
pub fn normalise(raw: &[String]) -> Discovered {
    let mut out = Discovered::default();
    for s in raw {
        match ImageRef::parse(s) {
            Ok(r) => out.images.push(r),
            Err(e) => out.warnings.push(e.to_string()),
        }
    }
    out.images.sort_by_key(ToString::to_string);
    out.images.dedup();
    out.warnings.sort();
    out.warnings.dedup();
    out
}
