//! Closed-loop verification: the images of a render made with the overlay, sorted into
//! those now pulled from the mirror and those the values could not move. Pure.

use std::collections::BTreeMap;

use crate::discover::Found;
use crate::reference::ImageRef;
use crate::result::NotRelocatable;
use crate::spec::TargetUrl;

/// Places kept per image that is not relocatable.
const MAX_PLACES: usize = 8;

/// What a render with the overlay pulls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verification {
    /// Distinct images that now come from the target, each a mirrored one.
    pub relocated: Vec<String>,
    /// Distinct images that do not, with where the render writes them and why.
    pub not_relocatable: Vec<NotRelocatable>,
}

/// Whether `image` lies under `target` (its host, and its path if it has one).
pub fn under(image: &ImageRef, target: &TargetUrl) -> bool {
    image.registry == target.host
        && (target.path.is_empty() || image.repository.starts_with(&format!("{}/", target.path)))
}

/// Sort the images of `rendered` (a render with the overlay): under the target and one of
/// the mirrored images remapped (`mirrored` are source references), or not relocatable.
pub fn verify(rendered: &[Found], target: &TargetUrl, mirrored: &[ImageRef]) -> Verification {
    let remapped: Vec<ImageRef> = mirrored.iter().map(|m| m.remap(target)).collect();
    let mut relocated = std::collections::BTreeSet::new();
    let mut left: BTreeMap<String, NotRelocatable> = BTreeMap::new();
    for f in rendered {
        let (key, reason) = match ImageRef::parse(&f.raw) {
            Ok(r) if under(&r, target) => {
                let known = remapped.iter().any(|m| {
                    *m == r
                        || (r.digest.is_some()
                            && m.digest == r.digest
                            && m.repository == r.repository)
                });
                if known {
                    relocated.insert(r.to_string());
                    continue;
                }
                (
                    r.to_string(),
                    "points under the target, but lazyoci did not mirror this reference",
                )
            }
            Ok(r) => (
                r.to_string(),
                "the template does not take this image from the values lazyoci rewrites (hard-coded, or built from other values)",
            ),
            Err(_) => (f.raw.clone(), "not a valid image reference"),
        };
        let entry = left.entry(key.clone()).or_insert_with(|| NotRelocatable {
            image: key,
            at: Vec::new(),
            reason: reason.to_string(),
        });
        if entry.at.len() < MAX_PLACES && !entry.at.contains(&f.at) {
            entry.at.push(f.at.clone());
        }
    }
    Verification {
        relocated: relocated.into_iter().collect(),
        not_relocatable: left.into_values().collect(),
    }
}
