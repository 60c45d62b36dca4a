//! One canonical form of a request path, used for routing, public paths, the access policy and
//! forwarding alike, so that no two of them can read the same path differently. A path that
//! different servers could resolve differently (dot segments, encoded slashes, backslashes) is
//! refused rather than guessed at.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Decodes percent-escapes of unreserved characters (RFC 3986 §2.3: they mean the same either
/// way, so `/%66inance` is `/finance`), keeps every other escape as it is (upper-cased),
/// escapes raw bytes a URI may not hold (a space, non-ASCII bytes: `/café` is `/caf%C3%A9`,
/// as a browser sends it), and refuses `.`/`..` segments (also as `%2e`, and before a
/// `;parameter`), encoded `/` and `\`, raw `\`, and control characters. Canonical paths are
/// their own canonical form.
pub fn canonical_path(raw: &str) -> Result<String, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath("the path must start with /"));
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or(BadPath("a broken %-escape"))?;
            let value = u8::from_str_radix(hex, 16).map_err(|_| BadPath("a broken %-escape"))?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else if matches!(value, b'/' | b'\\') {
                return Err(BadPath("an encoded slash or backslash"));
            } else if value < 0x20 || value == 0x7f {
                return Err(BadPath("an encoded control character"));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        if b == b'\\' {
            return Err(BadPath("a backslash"));
        }
        if b < 0x20 || b == 0x7f {
            return Err(BadPath("a control character"));
        }
        if allowed_raw(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    for segment in out.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        if name == "." || name == ".." {
            return Err(BadPath("a . or .. segment"));
        }
    }
    Ok(out)
}

/// What RFC 3986 lets a path hold unescaped: `pchar` and the `/` between segments.
fn allowed_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn raw_bytes_a_uri_cannot_hold_are_escaped() {
        // Found by the edge_request fuzz target: raw UTF-8 was copied byte by byte as Latin-1
        // characters, so a path changed each time it was canonicalised, and `/caf\xC3\xA9` and
        // `/caf%C3%A9` (the same path) were two different paths to the policy.
        assert_eq!(canonical_path("/café").unwrap(), "/caf%C3%A9");
        assert_eq!(canonical_path("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        let found = "/app\u{447}\u{418}appuser: eve";
        let once = canonical_path(found).unwrap();
        assert_eq!(once, "/app%D1%87%D0%98appuser:%20eve");
        assert_eq!(canonical_path(&once).unwrap(), once);
        assert_eq!(canonical_path("/a b\"c<d>").unwrap(), "/a%20b%22c%3Cd%3E");
    }

    proptest! {
        #[test]
        fn a_canonical_path_is_its_own_canonical_form(raw in "/[ -~\u{80}-\u{10FFFF}]{0,40}") {
            if let Ok(once) = canonical_path(&raw) {
                prop_assert!(once.is_ascii(), "{:?}", once);
                prop_assert_eq!(canonical_path(&once), Ok(once.clone()));
            }
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept() {
        assert_eq!(
            canonical_path("/%66inance/%7Euser").unwrap(),
            "/finance/~user"
        );
        assert_eq!(canonical_path("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
        assert_eq!(canonical_path("/").unwrap(), "/");
    }

    #[test]
    fn paths_servers_could_read_differently_are_refused() {
        for bad in [
            "/health/../admin",
            "/news/%2e%2e/finance",
            "/x/..;/finance",
            "/./admin",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/bad%zz",
            "/bad%2",
            "relative",
        ] {
            assert!(canonical_path(bad).is_err(), "{bad}");
        }
        // Dots inside names are fine.
        assert!(canonical_path("/v1.2/file..txt/.well-known/x").is_ok());
    }
}
