//! Cookies as the two front doors read them: the edge finds its own cookie and strips it before
//! the request goes to the app (which must never see the edge's credential, however the header
//! is written), and the pages find the sign-in session's cookie.
#![no_main]

use libfuzzer_sys::fuzz_target;

const EDGE: &str = "stackgate_proxy";

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = http::HeaderValue::from_bytes(line) {
            headers.append(http::header::COOKIE, value);
        }
    }
    let _ = stackgate_web::fuzzing::session_cookie(&headers);
    let found = stackgate_proxy::fuzzing::take_edge_cookie(&mut headers, EDGE);
    for value in headers.get_all(http::header::COOKIE) {
        let text = value.to_str().expect("only text Cookie headers are kept");
        for pair in text.split(';') {
            // A pair without `=` carries no value: it is no credential.
            if let Some((name, _)) = pair.trim().split_once('=') {
                assert_ne!(name, EDGE, "the edge cookie reached the app: {text:?}");
            }
        }
    }
    if let Some(value) = found {
        assert!(!value.contains(';'), "{value:?}");
    }
});
