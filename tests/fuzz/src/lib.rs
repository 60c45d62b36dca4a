//! What the fuzz targets share.

/// Headers from `name: value` lines; lines that are not a valid header are skipped.
pub fn headers<'a>(lines: impl IntoIterator<Item = &'a str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_bytes(value.trim().as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}
