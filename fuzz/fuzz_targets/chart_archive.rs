//! Untrusted chart archives: inspect must refuse or read them, never panic.
//!
//! Mutating gzip bytes rarely reaches the tar reader (every flip breaks the stream), so an
//! input starting with 0x00 is the raw tar that gets gzipped here first: the fuzzer then
//! mutates tar headers, paths and Chart.yaml directly.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let archive = match data.split_first() {
        Some((0, tar)) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            gz.finish().unwrap()
        }
        _ => data.to_vec(),
    };
    if let Ok(meta) = lazyoci::chart::archive::inspect(&archive) {
        assert!(!meta.name.is_empty() && !meta.version.is_empty());
    }
});
