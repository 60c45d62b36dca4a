//! Redirect URI matching: exact string comparison (OAuth 2.0 Security BCP §4.1.3), with the one
//! exception RFC 8252 §7.3 makes for native apps: a registered loopback IP redirect matches the
//! same URI on any port.

use url::{Host, Url};

/// Whether `requested` may be used, given the client's registered URIs.
pub fn redirect_uri_matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Some(requested_url) = loopback(requested) else {
        return false;
    };
    registered.iter().filter_map(|r| loopback(r)).any(|r| {
        r.host() == requested_url.host()
            && r.path() == requested_url.path()
            && r.query() == requested_url.query()
            && r.username() == requested_url.username()
    })
}

/// `http://127.0.0.1[:port]/...` or `http://[::1][:port]/...`, with no fragment or credentials.
pub fn is_loopback_redirect(uri: &str) -> bool {
    loopback(uri).is_some()
}

fn loopback(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    // The parsed form must be the string as given: no normalisation may widen a match.
    if url.as_str() != uri && url.as_str() != format!("{uri}/") {
        return None;
    }
    let is_loopback_ip = match url.host()? {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(_) => false,
    };
    (url.scheme() == "http"
        && is_loopback_ip
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none())
    .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn only_exact_matches_pass() {
        let registered = reg(&["https://app.example.org/callback"]);
        assert!(redirect_uri_matches(
            &registered,
            "https://app.example.org/callback"
        ));
        for bad in [
            "https://app.example.org/callback/",
            "https://app.example.org/callback/extra",
            "https://app.example.org/callback?x=1",
            "https://app.example.org/callback#frag",
            "https://APP.example.org/callback",
            "https://app.example.org/Callback",
            "https://app.example.org:444/callback",
            "http://app.example.org/callback",
            "https://app.example.org@evil.example/callback",
            "https://evil.example/https://app.example.org/callback",
            "https://app.example.org.evil.example/callback",
            "",
        ] {
            assert!(!redirect_uri_matches(&registered, bad), "{bad} accepted");
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port() {
        let registered = reg(&["http://127.0.0.1/cb", "http://[::1]:8000/cb"]);
        assert!(redirect_uri_matches(
            &registered,
            "http://127.0.0.1:53121/cb"
        ));
        assert!(redirect_uri_matches(&registered, "http://[::1]:1234/cb"));
        assert!(!redirect_uri_matches(
            &registered,
            "http://127.0.0.1:53121/other"
        ));
        assert!(
            !redirect_uri_matches(&registered, "http://localhost:53121/cb"),
            "names are not IPs"
        );
        assert!(!redirect_uri_matches(
            &registered,
            "http://127.0.0.1:53121/cb#x"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "http://user@127.0.0.1:53121/cb"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "https://127.0.0.1:53121/cb"
        ));
        assert!(!redirect_uri_matches(
            &reg(&["https://app.example.org/cb"]),
            "http://127.0.0.1:1/cb"
        ));
    }
}
