//! Redirect-URI matching: the first line is the requested URI, the others the registered ones.
//! Whatever they are, a match is the registered string itself or a loopback URI on another port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_oidc::{is_loopback_redirect, redirect_uri_matches};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let requested = lines.next().unwrap_or_default();
    let registered: Vec<String> = lines.map(str::to_owned).collect();
    if redirect_uri_matches(&registered, requested) {
        // The same URI with the port set aside.
        let portless = |uri: &str| {
            let mut url = url::Url::parse(uri).ok()?;
            url.set_port(None).ok()?;
            Some(url.to_string())
        };
        assert!(
            registered.iter().any(|r| r == requested)
                || (is_loopback_redirect(requested)
                    && registered.iter().any(|r| {
                        is_loopback_redirect(r)
                            && portless(r).is_some()
                            && portless(r) == portless(requested)
                    })),
            "{requested:?} matched {registered:?}"
        );
    }
});
