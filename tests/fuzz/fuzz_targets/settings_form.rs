//! The admin settings form, a multipart upload (the logo is a file), read and checked as
//! saving it does. What it would store is always a value the settings allow: a name of 1 to
//! 100 characters, a `#rrggbb` colour, session times in their ranges, a known sign-in policy,
//! and a logo that is a PNG, JPEG, WebP or SVG image of at most 512 KiB.
#![no_main]

use base64::{Engine, engine::general_purpose::STANDARD};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

const BOUNDARY: &str = "sgfuzz";

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = stackgate_web::fuzzing::settings_form(BOUNDARY, data.to_vec()) else {
        return;
    };
    let mut stored = BTreeMap::new();
    for (key, value) in rows {
        assert!(stored.insert(key, value).is_none(), "{key} stored twice");
    }
    let number = |key: &str| -> Option<i64> {
        let value = stored.get(key)?.as_deref().expect("a number is never removed");
        Some(value.parse().expect("a whole number"))
    };
    for (key, value) in &stored {
        match (*key, value.as_deref()) {
            ("organisation_name", Some(name)) => {
                assert!((1..=100).contains(&name.chars().count()), "{name:?}");
                assert!(!name.chars().any(char::is_control), "{name:?}");
                assert_eq!(name, name.trim());
            }
            ("brand_colour", Some(colour)) => {
                let hex = colour.strip_prefix('#').expect("starts with #");
                assert!(hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{colour:?}");
            }
            ("session_idle_timeout" | "session_lifetime", Some(_)) => {}
            ("mfa_policy", Some(policy)) => {
                assert!(["optional", "required", "phishing_resistant"].contains(&policy), "{policy:?}");
            }
            ("organisation_logo", None) => {}
            ("organisation_logo", Some(logo)) => {
                let (kind, data) = logo.split_once(';').expect("type;base64");
                assert!(["image/png", "image/jpeg", "image/webp", "image/svg+xml"].contains(&kind), "{kind}");
                let bytes = STANDARD.decode(data).expect("base64");
                assert!(!bytes.is_empty() && bytes.len() <= 512 * 1024, "{} bytes", bytes.len());
            }
            (key, value) => panic!("unexpected row {key} = {value:?}"),
        }
    }
    let idle = number("session_idle_timeout");
    let lifetime = number("session_lifetime");
    if let Some(idle) = idle {
        assert!((300..=31_536_000).contains(&idle), "idle {idle}");
    }
    if let Some(lifetime) = lifetime {
        assert!((3600..=31_536_000).contains(&lifetime), "lifetime {lifetime}");
    }
    // The form sends both; a body without one is checked against the configured value.
    if let (Some(idle), Some(lifetime)) = (idle, lifetime) {
        assert!(idle <= lifetime, "idle {idle} > lifetime {lifetime}");
    }
});
