//! A request's head, copied out of the connection's read buffer before the request is served.
//!
//! hyper parses a request without copying: its URI and header values are slices of the 8 KiB
//! block the connection reads into, which they keep alive. While the request is served, hyper
//! goes on reading the connection (to notice a client that leaves), finds its block shared, and
//! allocates another. A request in flight so holds two blocks, 16 KiB, for a head of a few
//! hundred bytes: with 10,000 requests in flight (each waiting for its app) that was 80 MiB.
//! Copied here, before hyper reads again, the head takes one small allocation and the
//! connection reads on into the block it has.

use bytes::{Bytes, BytesMut};
use hyper::{Request, Uri, header::HeaderValue};

/// `request` with its URI and header values in memory of their own. A value that would not
/// parse again (none that hyper accepts) is left where it was.
pub(crate) fn detached<B>(mut request: Request<B>) -> Request<B> {
    let headers = request.headers_mut();
    let mut block = BytesMut::with_capacity(headers.values().map(HeaderValue::len).sum());
    for value in headers.values() {
        block.extend_from_slice(value.as_bytes());
    }
    let mut block = block.freeze();
    for value in headers.values_mut() {
        let own = block.split_to(value.len());
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(own) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
    // "/" and "*" are static already; a longer target is a slice of the block.
    let uri = request.uri();
    let target = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(target)) if target.as_str().len() > 1 => {
            Some(Bytes::copy_from_slice(target.as_str().as_bytes()))
        }
        (None, None, _) => None,
        _ => Some(Bytes::from(uri.to_string())),
    };
    if let Some(copy) = target.and_then(|target| Uri::from_maybe_shared(target).ok()) {
        *request.uri_mut() = copy;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose URI and header values are slices of `block`, as hyper parses them.
    fn parsed_from(block: &Bytes) -> Request<()> {
        let text = std::str::from_utf8(block).unwrap();
        let slice = |part: &str| {
            let at = text.find(part).unwrap();
            block.slice(at..at + part.len())
        };
        let mut request = Request::get(Uri::from_maybe_shared(slice("/app/page?x=1")).unwrap())
            .body(())
            .unwrap();
        for (name, value) in [("host", "wiki.example"), ("cookie", "stackgate_proxy=abc")] {
            request
                .headers_mut()
                .append(name, HeaderValue::from_maybe_shared(slice(value)).unwrap());
        }
        request
    }

    #[test]
    fn the_head_no_longer_holds_the_connections_buffer() {
        // As hyper reads: into a block of 8 KiB, the head split off its front and parsed.
        let mut read = BytesMut::with_capacity(8192);
        read.extend_from_slice(
            b"GET /app/page?x=1 HTTP/1.1\r\nhost: wiki.example\r\ncookie: stackgate_proxy=abc\r\n\r\n",
        );
        let block = read.as_ptr();
        let head = read.split().freeze();
        let request = detached(parsed_from(&head));
        drop(head);
        // Reading on, the connection finds its block its own again.
        read.reserve(8192);
        assert_eq!(read.as_ptr(), block, "the head still holds the read buffer");
        assert_eq!(request.uri(), "/app/page?x=1");
        assert_eq!(request.headers()["host"], "wiki.example");
        assert_eq!(request.headers()["cookie"], "stackgate_proxy=abc");
    }

    #[test]
    fn absolute_targets_and_repeated_headers_are_kept_as_they_were() {
        let mut request = Request::get("http://wiki.example:8080/a?b=c")
            .header("x-many", "one")
            .header("x-many", "two")
            .header("x-secret", "s")
            .body(())
            .unwrap();
        request
            .headers_mut()
            .get_mut("x-secret")
            .unwrap()
            .set_sensitive(true);
        let before = request.headers().clone();
        let request = detached(request);
        assert_eq!(request.uri(), "http://wiki.example:8080/a?b=c");
        assert_eq!(request.headers(), &before);
        let many: Vec<_> = request.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["one", "two"]);
        assert!(request.headers()["x-secret"].is_sensitive());
    }
}
