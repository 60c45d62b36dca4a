//! Sending a request on to its upstream and the answer back: headers rewritten for the hop
//! (hop-by-hop removed, `X-Forwarded-*` set), bodies streamed both ways, WebSocket upgrades
//! joined end to end, and bounded waits.

use crate::{
    IdentityHeaders,
    body_timeout::caused_by_idle_body,
    connections::{Pool, READ_AHEAD, SendError},
    log_throttle::OncePerMinute,
    pages,
    routes::Upstream,
    stream_watch::Watched,
};
use axum::body::Body;
use hyper::{
    HeaderMap, Request, Response, StatusCode, Uri, Version,
    header::{self, HeaderName, HeaderValue},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers apps or frameworks trust to say where a request came from, which path it was for or
/// which method it really is. Only the edge may say such things; a client's are dropped.
static UNTRUSTED: [HeaderName; 17] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Cleans a client's request before the edge adds anything of its own:
/// - headers the `Connection` header names are removed now, so that a client cannot use it to
///   remove headers the edge adds later (only the `upgrade` token survives);
/// - a body framed both ways keeps only chunked framing (no length for the upstream to trust);
/// - names with `_` are dropped: CGI-style servers read `X_Forwarded_User` as `X-Forwarded-User`;
/// - [`UNTRUSTED`] headers and the identity headers are dropped.
pub fn sanitise_request(headers: &mut HeaderMap, identity: &IdentityHeaders) {
    let upgrade = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let framed_twice = headers.contains_key(header::TRANSFER_ENCODING);
    remove_where(headers, |name, connection| {
        *name == header::CONNECTION
            || (*name != header::UPGRADE && named(name, connection))
            || (framed_twice && *name == header::CONTENT_LENGTH)
            || name.as_str().contains('_')
            || UNTRUSTED.contains(name)
            || identity.is_one(name)
    });
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The tokens of a message's `Connection` headers, trimmed, as sent.
pub(crate) fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `name` is among the tokens of a `Connection` header.
fn named(name: &HeaderName, connection: &[&str]) -> bool {
    connection
        .iter()
        .any(|token| token.eq_ignore_ascii_case(name.as_str()))
}

/// Removes every header that `doomed` picks, given the header's name and the message's
/// `Connection` tokens. One pass over the names a message has, rather than a lookup for each
/// name that could be there: a request carries a handful of headers, the lists of names to
/// drop are longer.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName, &[&str]) -> bool) {
    let connection: Vec<&str> = connection_tokens(headers).collect();
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name, &connection))
        .cloned()
        .collect();
    drop(connection);
    for name in names {
        headers.remove(&name);
    }
}

/// Resolves when a WebSocket tunnel must close. Boxed, and made only for WebSocket requests:
/// every request in flight keeps room for it otherwise (1.5 KiB).
pub(crate) type TunnelClosed = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The upstream connections every route shares.
#[derive(Clone)]
pub struct Forwarder {
    /// Requests and their answers, on connections their own task drives.
    pool: Arc<Pool>,
    /// WebSocket handshakes: hyper's client hands over the upgraded connection.
    client: Client<HttpConnector, Body>,
    response_timeout: Duration,
    /// See [`crate::EdgeSettings::client_send_timeout`].
    send_timeout: Duration,
    busy: Arc<Busy>,
}

/// Requests refused at an app's connection cap: counted each, logged once a minute at most
/// (under pressure there may be thousands a second).
struct Busy {
    metrics: stackgate_web::UpstreamMetrics,
    log: OncePerMinute,
}

impl Busy {
    fn refused(&self, upstream: &Upstream, err: &BoxError) {
        self.metrics.busy();
        if let Some(refused) = self.log.count() {
            tracing::warn!(
                upstream = %upstream,
                error = %err,
                refused,
                "app at its connection limit: answering 503 (proxy_upstream_max_connections)"
            );
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's end of a connection, with its address as the edge tells upstreams: written
/// once for the connection, not for every request it carries (formatting an address is about
/// 2% of the instructions of a proxied request).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// For `X-Forwarded-For` and `X-Real-IP`; `None` only if it were no valid header value,
    /// which an IP address always is.
    pub(crate) address: Option<HeaderValue>,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            address: HeaderValue::try_from(addr.ip().to_string()).ok(),
        }
    }
}

/// What the edge knows about the hop it received.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The client's address (see [`Peer`]).
    pub client_ip: Option<HeaderValue>,
    /// `https` or `http`.
    pub proto: &'static str,
    /// The host the client asked for, as it sent it (with port).
    pub host: String,
}

impl Forwarder {
    /// Forwards through at most `max_connections` connections at once to each upstream
    /// (WebSocket tunnels aside, each its own connection).
    pub fn new(
        connect_timeout: Duration,
        response_timeout: Duration,
        send_timeout: Duration,
        max_connections: usize,
        metrics: stackgate_web::UpstreamMetrics,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Forwarder {
            pool: Pool::new(
                connect_timeout,
                Duration::from_secs(90),
                max_connections,
                READ_AHEAD,
            ),
            client,
            response_timeout,
            send_timeout,
            busy: Arc::new(Busy {
                metrics,
                log: OncePerMinute::default(),
            }),
        }
    }

    /// Forwards `request` (headers already carrying the identity) to `upstream`.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        upstream: &Upstream,
        hop: &Hop,
        edge_cookies: &[&str],
        tunnel_closed: Option<TunnelClosed>,
    ) -> Response<Body> {
        let upgrade = websocket_upgrade(request.headers());
        let over_http2 = request.version() == Version::HTTP_2;
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        if let Err(status) = prepare(&mut request, upstream, hop, upgrade) {
            return pages::status(status, "The request cannot be forwarded.");
        }
        let deadline = tokio::time::Instant::now() + self.response_timeout;
        let sent = tokio::time::timeout_at(deadline, async {
            if upgrade {
                // Boxed: rare, and every request in flight would keep room for it.
                let response = Box::pin(self.client.request(request)).await?;
                Ok::<_, BoxError>(response.map(Body::new))
            } else {
                // Boxed, as hyper's client boxes its own: a request in flight then keeps one
                // pointer for it, and a connection between requests nothing.
                let sent = Box::pin(self.pool.send(&upstream.authority, request, Some(deadline)));
                Ok(sent.await?.map(|answer| {
                    if over_http2 && !answer.read_whole() {
                        Body::new(Watched::new(answer, self.send_timeout))
                    } else {
                        Body::new(answer)
                    }
                }))
            }
        })
        .await;
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) if caused_by_idle_body(err.as_ref()) => {
                tracing::info!(upstream = %upstream, error = %err, "request body stalled");
                return pages::status(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request's body stopped arriving. Try again.",
                );
            }
            Ok(Err(err))
                if matches!(err.downcast_ref::<SendError>(), Some(SendError::Busy(..))) =>
            {
                self.busy.refused(upstream, &err);
                return pages::app_busy();
            }
            Ok(Err(err)) => {
                tracing::warn!(upstream = %upstream, error = %err, "upstream unreachable");
                return pages::bad_gateway();
            }
            Err(_) => {
                tracing::warn!(upstream = %upstream, "upstream did not answer in time");
                return pages::gateway_timeout();
            }
        };
        if let Some(client_upgrade) = client_upgrade
            && response.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(join_upgraded(
                client_upgrade,
                upstream_upgrade,
                tunnel_closed,
            ));
            let (mut parts, _) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers, true);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts
                .headers
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return Response::from_parts(parts, Body::empty());
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        remove_set_cookies(&mut parts.headers, edge_cookies);
        Response::from_parts(parts, body)
    }
}

/// An app must not set (or clear) the edge's own cookies.
fn remove_set_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let all: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if all.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in all {
        let name = value
            .to_str()
            .ok()
            .and_then(|v| v.split('=').next())
            .map(str::trim);
        if name.is_none_or(|n| !names.contains(&n)) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// A WebSocket opening handshake (HTTP/1.1 `Upgrade: websocket`).
pub(crate) fn websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

fn prepare<B>(
    request: &mut Request<B>,
    upstream: &Upstream,
    hop: &Hop,
    upgrade: bool,
) -> Result<(), StatusCode> {
    // hyper's client (WebSocket handshakes) takes the absolute form and sends the origin form;
    // the edge's own connections send what they are given, which must be the origin form.
    let origin_form = request.uri().scheme().is_none() && request.uri().authority().is_none();
    if upgrade || !origin_form {
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_owned();
        let uri = if upgrade {
            Uri::builder()
                .scheme(upstream.scheme.clone())
                .authority(upstream.authority.clone())
                .path_and_query(path)
                .build()
        } else {
            Uri::builder().path_and_query(path).build()
        }
        .map_err(|_| StatusCode::BAD_REQUEST)?;
        *request.uri_mut() = uri;
    }
    // Upstreams speak HTTP/1.1 whatever the client spoke.
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    strip_hop_by_hop(headers, false);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let host = HeaderValue::from_str(&hop.host).map_err(|_| StatusCode::BAD_REQUEST)?;
    headers.insert(header::HOST, host.clone());
    headers.insert(X_FORWARDED_HOST.clone(), host);
    // The edge is the first hop anyone can trust: what the client claims is replaced.
    headers.remove(&FORWARDED);
    let client_ip = hop.client_ip.clone().ok_or(StatusCode::BAD_REQUEST)?;
    headers.insert(X_FORWARDED_FOR.clone(), client_ip.clone());
    headers.insert(X_REAL_IP.clone(), client_ip);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(hop.proto),
    );
    Ok(())
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    remove_where(headers, |name, connection| {
        let kept = keep_upgrade && (*name == header::UPGRADE || *name == header::CONNECTION);
        !kept
            && (HOP_BY_HOP.contains(name)
                || *name == KEEP_ALIVE
                || *name == PROXY_CONNECTION
                || named(name, connection))
    });
}

/// Copies both ways until either side closes, or until `closed` resolves (the session that
/// opened the tunnel ended): then both connections are dropped.
async fn join_upgraded(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    closed: Option<TunnelClosed>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(err) => {
            tracing::debug!(error = %err, "WebSocket upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let closed = async {
        match closed {
            Some(closed) => closed.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(err) = copied {
                tracing::debug!(error = %err, "WebSocket connection ended");
            }
        }
        () = closed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn a_client_cannot_speak_for_the_edge() {
        let identity = IdentityHeaders::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("X-Stackgate-Assertion, Upgrade"),
        );
        headers.insert("x_forwarded_user", HeaderValue::from_static("root"));
        headers.insert("X-Real-IP", HeaderValue::from_static("10.0.0.1"));
        headers.insert("X-Original-URL", HeaderValue::from_static("/admin"));
        headers.insert("X-HTTP-Method-Override", HeaderValue::from_static("DELETE"));
        headers.insert("X-Forwarded-User", HeaderValue::from_static("root"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        sanitise_request(&mut headers, &identity);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "connection", "transfer-encoding"]);
        assert_eq!(headers[header::CONNECTION], "upgrade");
        // Identity added afterwards survives the client's `Connection` header.
        headers.insert(
            identity.assertion.clone(),
            HeaderValue::from_static("signed"),
        );
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers[&identity.assertion], "signed");
    }

    #[test]
    fn apps_cannot_set_the_edge_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("stackgate_proxy=x; Path=/"),
        );
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("app=1; Path=/"),
        );
        remove_set_cookies(&mut headers, &["stackgate_proxy", "stackgate_state"]);
        let left: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, ["app=1; Path=/"]);
    }

    #[test]
    fn websocket_handshakes_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(websocket_upgrade(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!websocket_upgrade(&headers));
    }
}
