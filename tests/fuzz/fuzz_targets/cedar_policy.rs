//! An admin's Cedar policy text, compiled with the defaults and validated against the schema.
//! A refused policy's problems point inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_proxy::{AccessPolicy, RouteTable};
use std::sync::LazyLock;

static DEFAULTS: &str = include_str!("../../../policies/default.cedar");
static ROUTES: LazyLock<RouteTable> = LazyLock::new(|| RouteTable::new([]).expect("routes"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = AccessPolicy::compile(DEFAULTS, &ROUTES, text) {
        assert!(!problems.is_empty());
    }
});
