//! Fetching a chart version from its upstream into an archive in memory. IO.
//!
//! Every source type ends in the same [`FetchedChart`]: the archive bytes, their digest,
//! Chart.yaml, and — for OCI sources — the source manifest, so that mirroring can copy it
//! byte for byte.

pub mod deps;
pub mod local;
pub mod oci;
pub mod repo;
pub mod store;

use bytes::Bytes;

use crate::chart::{ArchiveError, ChartMeta};
use crate::registry::RegistryError;
use crate::registry::manifest::RawManifest;

/// A chart archive ready to push and render.
#[derive(Clone, Debug)]
pub struct FetchedChart {
    /// The `.tgz` bytes.
    pub archive: Bytes,
    /// `sha256:` digest of the archive.
    pub digest: String,
    /// Chart.yaml.
    pub meta: ChartMeta,
    /// Where it came from.
    pub origin: Origin,
    /// Something the user should know (e.g. a stamped version).
    pub note: Option<String>,
}

/// Where a fetched chart came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A plain archive (Helm repository or local directory): pushed as a new artifact.
    Archive,
    /// An OCI artifact: copied byte for byte.
    Oci {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// The artifact manifest as served.
        manifest: RawManifest,
    },
}

/// Why a chart could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The Helm repository index could not be read.
    #[error("cannot read Helm repository index {url}: {reason}")]
    Index {
        /// index.yaml URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The chart or version is not published there.
    #[error("{what} not found in {location}{hint}")]
    NotFound {
        /// chart:version.
        what: String,
        /// Where we looked.
        location: String,
        /// Versions that do exist, for example.
        hint: String,
    },
    /// Downloading the archive failed.
    #[error("cannot download {url}: {reason}")]
    Download {
        /// Archive URL (without credentials or query).
        url: String,
        /// Why.
        reason: String,
    },
    /// The archive's digest differs from the one published.
    #[error(
        "{url} has digest {actual}, but the index says {expected}: refusing a tampered or corrupted archive"
    )]
    DigestMismatch {
        /// Archive URL.
        url: String,
        /// Published digest.
        expected: String,
        /// Digest of what was downloaded.
        actual: String,
    },
    /// The archive is unsafe or not the chart asked for.
    #[error("chart archive from {location} refused: {source}")]
    Archive {
        /// Where it came from.
        location: String,
        /// Why.
        #[source]
        source: ArchiveError,
    },
    /// No mirror of an OCI source's host served it, and `mirrorsOnly` forbids the host.
    #[error("{0}")]
    Mirrors(String),
    /// A registry error (OCI sources).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Packaging a local directory failed.
    #[error("cannot package {path}: {reason}")]
    Package {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The artifact store failed.
    #[error("artifact directory {path}: {reason}")]
    Store {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
}

/// ` (newest published: 2.1.0, 2.0.0, …)` for a version-not-found message: the five
/// highest of `versions` (semver order where they parse), or nothing when there are none.
pub fn newest_published<'a>(versions: impl IntoIterator<Item = &'a str>) -> String {
    let mut known: Vec<&str> = versions.into_iter().collect();
    known.sort_by(
        |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
            (Ok(a), Ok(b)) => b.cmp(&a),
            _ => b.cmp(a),
        },
    );
    known.dedup();
    known.truncate(5);
    if known.is_empty() {
        String::new()
    } else {
        format!(" (newest published: {})", known.join(", "))
    }
}
