//! The configuration file (TOML), read and validated as `stackgate serve` does at start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let _ = stackgate::Config::load(Some(file.path()), Vec::<(String, String)>::new());
});
