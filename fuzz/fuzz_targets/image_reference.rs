//! Image references: parse never panics, and whatever parses round-trips through its
//! display form to the same value.
#![no_main]

use lazyoci::reference::ImageRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = ImageRef::parse(s) {
        let shown = r.to_string();
        let again = ImageRef::parse(&shown)
            .unwrap_or_else(|e| panic!("{s:?} parsed as {shown:?}, which does not parse: {e}"));
        assert_eq!(r, again, "{s:?} -> {shown:?} does not round-trip");
        let _ = r.reference();
    }
});
