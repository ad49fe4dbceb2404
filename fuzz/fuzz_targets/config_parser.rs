//! Any bytes as a config file: the parser must return Ok or problems, never panic, and
//! stay cheap (libFuzzer's -timeout and -rss_limit_mb catch the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problems) = lazyoci::config::parse(data, std::path::Path::new("/nonexistent")) {
        assert!(!problems.is_empty(), "an error with no problem in it");
        for p in &problems {
            // Rendering is part of the contract (what the CLI prints).
            let _ = p.to_string();
        }
    }
});
