//! The `.tar` form of a bundle: the layout directory packed into one uncompressed tar
//! (layer blobs are compressed already), entries in a fixed order with fixed metadata, so
//! the same content gives the same file. IO, blocking.

use std::path::Path;

use super::{BundleError, META_FILE};

/// Pack the layout in `dir` into `out` (written as `out.partial`, renamed when complete).
pub fn pack(dir: &Path, out: &Path) -> Result<(), BundleError> {
    let partial = out.with_extension("tar.partial");
    let written = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&partial)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        for name in ["oci-layout", META_FILE, "index.json"] {
            tar.append_path_with_name(dir.join(name), name)?;
        }
        let blobs = dir.join("blobs/sha256");
        tar.append_dir("blobs", dir.join("blobs"))?;
        tar.append_dir("blobs/sha256", &blobs)?;
        let mut names: Vec<String> = std::fs::read_dir(&blobs)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for n in names {
            tar.append_path_with_name(blobs.join(&n), format!("blobs/sha256/{n}"))?;
        }
        let mut w = tar.into_inner()?;
        std::io::Write::flush(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(BundleError::io(out, e));
    }
    std::fs::rename(&partial, out).map_err(|e| BundleError::io(out, e))
}
