//! Where a browser is sent after signing in: the sign-in pages' `return_to`, and the path the
//! edge sends it on to after signing it in on an app's host. Whatever was asked for, the
//! browser stays on the same origin, as a browser's URL parser (WHATWG's, which the `url`
//! crate follows) resolves the path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let sent_to = stackgate_web::fuzzing::return_path(raw);
    assert!(sent_to == "/" || sent_to == raw, "{raw:?} became {sent_to:?}");
    stays_on("https://sso.example.org/account/security", &sent_to);
    if stackgate_proxy::fuzzing::is_return_path(raw) {
        stays_on("https://wiki.example.org/pages/", raw);
    }
});

/// A `Location` a browser cannot resolve is not followed, so only a resolved one must stay.
fn stays_on(page: &str, location: &str) {
    let page = url::Url::parse(page).expect("a valid page URL");
    if let Ok(next) = page.join(location) {
        assert_eq!(
            next.origin(),
            page.origin(),
            "{location:?} leaves {page} for {next}"
        );
    }
}
