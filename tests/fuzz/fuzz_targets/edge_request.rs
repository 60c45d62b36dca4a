//! What the edge reads from a request before it is routed: the path (canonicalised, refused
//! when servers could read it differently), the host, and the headers it cleans. Whatever the
//! client sent, no identity, forwarding or underscored header reaches the upstream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_proxy::{IdentityHeaders, paths::canonical_path, routes::normalise_host};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or_default();
    if let Ok(canonical) = canonical_path(path) {
        assert!(canonical.starts_with('/'), "{canonical:?}");
        assert_eq!(
            canonical_path(&canonical).ok().as_deref(),
            Some(canonical.as_str()),
            "stable"
        );
    }
    let host = lines.next().unwrap_or_default();
    if let Some(normal) = normalise_host(host) {
        assert_eq!(
            normalise_host(&normal).as_deref(),
            Some(normal.as_str()),
            "stable"
        );
    }
    let mut headers = stackgate_fuzz::headers(lines);
    let identity = IdentityHeaders::default();
    stackgate_proxy::fuzzing::sanitise_request(&mut headers, &identity);
    for name in headers.keys() {
        let name = name.as_str();
        assert!(!name.contains('_'), "{name} survived");
        assert!(
            ![
                "x-forwarded-user",
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "forwarded"
            ]
            .contains(&name),
            "{name} survived"
        );
    }
});
