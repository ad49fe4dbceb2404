//! Untrusted chart archives: inspect must refuse or read them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = lazyoci::chart::archive::inspect(data) {
        assert!(!meta.name.is_empty() && !meta.version.is_empty());
    }
});
