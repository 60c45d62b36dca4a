//! An app's manifest (YAML), parsed and checked; every problem found names a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stackgate_apps::Manifest::parse(text);
    }
});
