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

/// Property tests: whatever the registered and requested URIs, a redirect is accepted only when
/// it is one of the registered strings, or a loopback redirect that differs from a registered
/// one in its port alone (RFC 8252 §7.3).
#[cfg(test)]
mod properties {
    use super::redirect_uri_matches;
    use proptest::prelude::*;

    /// The pieces a URI is built from, so that generated pairs are often near misses.
    #[derive(Clone, Debug)]
    struct Parts {
        scheme: &'static str,
        userinfo: &'static str,
        host: &'static str,
        port: Option<u16>,
        path: &'static str,
        query: &'static str,
        fragment: &'static str,
    }

    impl Parts {
        fn uri(&self) -> String {
            let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{}{port}{}{}{}",
                self.scheme, self.userinfo, self.host, self.path, self.query, self.fragment
            )
        }

        /// A URI RFC 8252 lets match on any port: plain http to a loopback IP literal, written
        /// the way a URL parser would write it back, with no credentials or fragment.
        fn is_loopback(&self) -> bool {
            self.scheme == "http"
                && self.userinfo.is_empty()
                && ["127.0.0.1", "127.0.0.2", "[::1]"].contains(&self.host)
                && self.port != Some(80)
                && self.fragment.is_empty()
                // A parser rewrites these, so they are not in the form the rule trusts.
                && self.path != "/cb/../cb"
                && (!self.path.is_empty() || self.query.is_empty())
        }

        /// What is left once the port is set aside; an empty path is the root.
        fn without_port(&self) -> (&'static str, &'static str, &'static str) {
            let path = if self.path.is_empty() { "/" } else { self.path };
            (self.host, path, self.query)
        }
    }

    fn parts() -> impl Strategy<Value = Parts> {
        (
            prop::sample::select(vec!["http", "https", "HTTP", "app"]),
            prop::sample::select(vec!["", "user@", "app.example.org@"]),
            prop::sample::select(vec![
                "127.0.0.1",
                "127.0.0.2",
                "[::1]",
                "localhost",
                "app.example.org",
                "APP.example.org",
                "app.example.org.evil.example",
            ]),
            prop::option::of(prop::sample::select(vec![80u16, 443, 444, 8000, 53121])),
            prop::sample::select(vec!["", "/", "/cb", "/cb/", "/Cb", "/cb/x", "/cb/../cb"]),
            prop::sample::select(vec!["", "?x=1", "?"]),
            prop::sample::select(vec!["", "#f"]),
        )
            .prop_map(
                |(scheme, userinfo, host, port, path, query, fragment)| Parts {
                    scheme,
                    userinfo,
                    host,
                    port,
                    path,
                    query,
                    fragment,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn accepted_only_if_registered_or_loopback_on_another_port(
            registered in prop::collection::vec(parts(), 1..4),
            requested in parts(),
            pick in any::<prop::sample::Index>(),
            change in 0..8usize,
        ) {
            // Mostly, ask for a registered URI with one part changed (the near misses that
            // matter); otherwise for a URI built afresh.
            let base = pick.get(&registered).clone();
            let requested = match change {
                0 => Parts { port: requested.port, ..base },
                1 => Parts { path: requested.path, port: requested.port, ..base },
                2 => Parts { query: requested.query, port: requested.port, ..base },
                3 => Parts { host: requested.host, port: requested.port, ..base },
                4 => Parts { scheme: requested.scheme, port: requested.port, ..base },
                5 => Parts { userinfo: requested.userinfo, fragment: requested.fragment, ..base },
                _ => requested,
            };
            let strings: Vec<String> = registered.iter().map(Parts::uri).collect();
            let uri = requested.uri();
            let same_but_port = requested.is_loopback()
                && registered.iter().any(|r| r.is_loopback() && r.without_port() == requested.without_port());
            let expected = strings.contains(&uri) || same_but_port;
            prop_assert_eq!(redirect_uri_matches(&strings, &uri), expected, "{} against {:?}", uri, strings);
        }
    }
}
