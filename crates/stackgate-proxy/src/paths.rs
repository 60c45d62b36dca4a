//! One canonical form of a request path, used for routing, public paths, the access policy and
//! forwarding alike, so that no two of them can read the same path differently. A path that
//! different servers could resolve differently (dot segments, encoded slashes, backslashes) is
//! refused rather than guessed at.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Decodes percent-escapes of unreserved characters (RFC 3986 §2.3: they mean the same either
/// way, so `/%66inance` is `/finance`), keeps every other escape as it is (upper-cased), and
/// refuses `.`/`..` segments (also as `%2e`, and before a `;parameter`), encoded `/` and `\`,
/// raw `\`, and control characters.
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
        out.push(b as char);
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

#[cfg(test)]
mod tests {
    use super::*;

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
