//! The question an ingress asks through forward-auth (nginx's `X-Original-URL` and
//! `X-Original-Method`, or Traefik's `X-Forwarded-Proto`, `-Host`, `-Uri` and `-Method`), as the
//! edge reads it. Input: one `name: value` header per line. Whatever is asked, what the edge
//! reads is an http(s) origin, a normalised host and a canonical path, and asking again with
//! the URL rebuilt from that answer gives the same answer: the request checked is the request
//! the ingress will forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackgate_proxy::{paths::canonical_path, routes::normalise_host};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let headers = stackgate_fuzz::headers(text.split('\n'));
    let Ok(asked) = stackgate_proxy::fuzzing::forward_auth_asked(&headers) else {
        return;
    };
    assert!(
        asked.origin.starts_with("http://") || asked.origin.starts_with("https://"),
        "{}",
        asked.origin
    );
    assert_eq!(
        normalise_host(&asked.host).as_deref(),
        Some(asked.host.as_str())
    );
    assert_eq!(
        canonical_path(&asked.path).ok().as_deref(),
        Some(asked.path.as_str())
    );
    if let Some(query) = &asked.query {
        assert!(!query.contains('#'), "{query:?}");
    }
    let url = match &asked.query {
        Some(query) => format!("{}{}?{query}", asked.origin, asked.path),
        None => format!("{}{}", asked.origin, asked.path),
    };
    let mut again = http::HeaderMap::new();
    let (Ok(url), Ok(method)) = (
        http::HeaderValue::from_str(&url),
        http::HeaderValue::from_str(asked.method.as_str()),
    ) else {
        panic!("the answer cannot be asked again: {url:?}");
    };
    again.insert("x-original-url", url);
    again.insert("x-original-method", method);
    let second = stackgate_proxy::fuzzing::forward_auth_asked(&again).expect("asked again");
    assert_eq!(
        (
            &second.origin,
            &second.host,
            &second.path,
            &second.query,
            &second.method
        ),
        (
            &asked.origin,
            &asked.host,
            &asked.path,
            &asked.query,
            &asked.method
        )
    );
});
