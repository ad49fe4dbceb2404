//! Bundles: a run's charts and images as a standard OCI image layout on disk (a directory,
//! or one `.tar` of it), to carry across an air gap.
//!
//! `bundle create` is the mirror pipeline with a [`layout::Layout`] as its destination
//! ([`crate::pipeline::Env::bundle`]); `bundle push` walks the layout with the same
//! digest-verified copy the mirror uses, from the bundle into a registry ([`push`]);
//! `bundle verify` checks every digest and reference ([`verify`]). Besides the standard
//! `oci-layout`, `index.json` and `blobs/sha256/…`, a bundle holds `lazyoci.json`
//! ([`meta::BundleMeta`]): the charts, versions, images, digests and provenance it carries,
//! every blob it holds, and (for a `--since` delta) what its base carried.

pub mod archive;
pub mod layout;
pub mod meta;
pub mod push;
pub mod reader;
pub mod verify;

/// `org.opencontainers.image.ref.name`: a manifest's name, `<repository>:<tag>` (or
/// `<repository>@<digest>` for what is held by digest only) relative to
/// the target.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The repository of a manifest stored by digest (a referrer), relative to the target.
pub const REPOSITORY: &str = "io.lazyoci.repository";
/// The file describing a lazyoci bundle.
pub const META_FILE: &str = "lazyoci.json";
/// The registry host images and charts are remapped under while a bundle is written; the
/// rest of each reference is its name relative to the target.
pub const BUNDLE_HOST: &str = "bundle.lazyoci.invalid";

/// Errors about a bundle as a whole (per-item problems go into reports instead).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The bundle is not a readable OCI image layout.
    #[error("{path} is not a usable OCI image layout: {reason}")]
    Layout {
        /// The bundle.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl BundleError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        BundleError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// Split a ref name `repo/path:tag` into repository and tag; `None` when it has no tag or
/// no repository.
pub fn split_ref_name(name: &str) -> Option<(&str, &str)> {
    let (repo, tag) = name.rsplit_once(':')?;
    if repo.is_empty() || repo.contains('@') || tag.is_empty() || tag.contains('/') {
        return None;
    }
    Some((repo, tag))
}

/// Split a ref name `repo/path@sha256:<hex>` (how a bundle names what it holds by digest
/// only) into repository and digest; `None` for any other shape.
pub fn split_digest_name(name: &str) -> Option<(&str, &str)> {
    let (repo, digest) = name.split_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    let well_formed =
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (!repo.is_empty() && well_formed).then_some((repo, digest))
}

/// Whether `path` names a tar file bundle.
pub fn is_tar(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_split_at_the_tag() {
        assert_eq!(split_ref_name("a/b:1.0"), Some(("a/b", "1.0")));
        assert_eq!(
            split_ref_name("127.0.0.1:5000/a:1"),
            Some(("127.0.0.1:5000/a", "1"))
        );
        assert_eq!(split_ref_name("latest"), None);
        assert_eq!(split_ref_name("host:5000/a"), None);
        assert_eq!(split_ref_name(":x"), None);
        let d = format!("sha256:{}", "a".repeat(64));
        let pinned = format!("team/pinned@{d}");
        assert_eq!(split_ref_name(&pinned), None, "a digest is not a tag");
        assert_eq!(
            split_digest_name(&pinned),
            Some(("team/pinned", d.as_str()))
        );
        assert_eq!(split_digest_name("team/pinned@sha256:abc"), None);
        assert_eq!(split_digest_name(&format!("@{d}")), None);
        assert_eq!(split_digest_name("a/b:1.0"), None);
    }
}
