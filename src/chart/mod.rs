//! Chart archives: safe reading ([`archive`]) and pushing as Helm OCI artifacts ([`push`]).

pub mod archive;
pub mod push;
pub mod yaml;

pub use archive::{ArchiveError, ChartMeta};
