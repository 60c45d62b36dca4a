//! Accepting connections: TLS (with ALPN choosing HTTP/2 or HTTP/1.1) or plain HTTP, limits on
//! what a client may send, and a graceful stop that lets requests in flight finish.

use crate::{Edge, body_timeout::IdleTimeout, pages};
use axum::body::Body;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// What one listener accepts.
#[derive(Debug, Clone)]
pub struct Listener {
    /// TLS settings; `None` serves plain HTTP (development, or behind another TLS terminator).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A client must send a request's headers within this time.
    pub header_read_timeout: Duration,
    /// At most this many bytes of request line and headers.
    pub max_header_bytes: usize,
    /// At most this many request headers.
    pub max_headers: usize,
    /// A request body that stops arriving for this long ends the request (408).
    pub body_idle_timeout: Duration,
    /// At most this many connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// How long requests in flight get to finish once the stop is asked for.
    pub grace: Duration,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn builder(listener: &Listener) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listener.header_read_timeout)
        .max_buf_size(listener.max_header_bytes.max(8192))
        .max_headers(listener.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(listener.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves `edge` on `tcp` until `stop` resolves.
pub async fn serve(
    edge: Arc<Edge>,
    tcp: TcpListener,
    listener: Listener,
    stop: impl Future<Output = ()>,
) {
    let body_idle = listener.body_idle_timeout;
    let handler = move |peer: SocketAddr| {
        let edge = edge.clone();
        service_fn(move |request: Request<Incoming>| {
            let request = request.map(|body| Body::new(IdleTimeout::new(body, body_idle)));
            handled(edge.clone(), request, peer)
        })
    };
    accept_loop(tcp, listener, handler, stop).await;
}

/// One request through the edge, as a future small enough to keep per connection: hyper holds
/// a slot the size of its service's future for as long as a connection is open, so the edge's
/// request state (~10 KiB) lives in a box freed when the answer is sent, not in every idle
/// kept-alive connection.
fn handled(
    edge: Arc<Edge>,
    request: Request<Body>,
    peer: SocketAddr,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send {
    let handling = Box::pin(edge.handle(request, peer));
    async move { Ok(handling.await) }
}

/// Answers every request on `tcp` with a permanent redirect to the same URL over HTTPS
/// (`https_port` when the HTTPS listener is not on 443).
pub async fn serve_redirect(
    tcp: TcpListener,
    https_port: u16,
    listener: Listener,
    stop: impl Future<Output = ()>,
) {
    let handler = move |_peer: SocketAddr| {
        service_fn(move |request: Request<Incoming>| async move {
            Ok::<_, Infallible>(redirect_to_https(&request, https_port))
        })
    };
    accept_loop(tcp, listener, handler, stop).await;
}

fn redirect_to_https(request: &Request<Incoming>, https_port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(crate::routes::normalise_host);
    let Some(host) = host else {
        return pages::status(StatusCode::BAD_REQUEST, "The request names no host.");
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut response = pages::redirect(&format!("https://{host}{port}{path}"));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
}

async fn accept_loop<H, S>(
    tcp: TcpListener,
    listener: Listener,
    handler: H,
    stop: impl Future<Output = ()>,
) where
    H: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = builder(&listener);
    let acceptor = listener.tls.clone().map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(listener.max_connections));
    let mut refused = Refusals::default();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, usually: pause rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Closed at once rather than left waiting: a client (or a load balancer) learns now that
        // this instance is full, and the connections already open keep their memory.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.count(listener.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = handler(peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            serve_connection(stream, acceptor, builder, service, watcher).await;
            drop(slot);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(listener.grace) => {
            tracing::warn!("edge connections did not finish within the grace period");
        }
    }
}

/// Connections refused for want of a slot, logged at most once a minute.
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<tokio::time::Instant>,
}

impl Refusals {
    fn count(&mut self, limit: usize) {
        self.since_logged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                limit,
                refused = self.since_logged,
                "connection limit reached: closing new connections (proxy_max_connections)"
            );
            self.since_logged = 0;
            self.logged_at = Some(tokio::time::Instant::now());
        }
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let result = match acceptor {
        Some(acceptor) => {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            watcher.watch(conn.into_owned()).await
        }
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(conn.into_owned()).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the size of the future `f` makes, without making one.
    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: FnOnce(Arc<Edge>, Request<Body>, SocketAddr) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn an_idle_connection_keeps_no_request_state() {
        let whole = future_size(&Edge::handle);
        let kept = future_size(&handled);
        assert!(
            kept <= 64,
            "each open connection keeps {kept} bytes for its next request"
        );
        assert!(whole > 1024, "the edge's request state is {whole} bytes");
    }
}
