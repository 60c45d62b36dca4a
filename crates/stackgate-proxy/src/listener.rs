//! Accepting connections: TLS (with ALPN choosing HTTP/2 or HTTP/1.1) or plain HTTP, limits on
//! what a client may send, and a graceful stop that lets requests in flight finish; on the
//! caller's runtime, or on threads of the listener's own, one single-threaded runtime each.

use crate::{
    Edge,
    body_timeout::IdleTimeout,
    keep_alive::{self, Replay},
    log_throttle::OncePerMinute,
    pages,
    upstream::Peer,
};
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header,
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use stackgate_web::ListenerMetrics;
use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
};
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
    /// Where this listener counts its open, refused and released connections.
    pub metrics: ListenerMetrics,
    /// Threads of its own that accept and serve connections, each on a single-threaded
    /// runtime, each with its own idle upstream connections; 0 serves them on the caller's
    /// runtime. A connection stays on the thread that accepted it: nothing is handed between
    /// threads on the way through, as a work-stealing runtime does (measured: about an eighth
    /// less CPU per proxied request, but more memory after a burst; see the README).
    pub threads: usize,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Above this many open connections, an HTTP/1 connection frees its buffers after every answer
/// rather than once it idles (see `keep_alive`): memory per connection then matters more than
/// the cost of rebuilding them.
const CROWDED_ABOVE: usize = 1024;

/// The start of HTTP/2's connection preface: no HTTP/1 request begins so.
const H2_PREFACE_START: &[u8] = b"PRI ";

/// How connections are served, shared by all of a listener's connections.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    /// For a client to take bytes of an answer: the same patience as for one sending a body.
    send_timeout: Duration,
}

impl Protocols {
    fn new(listener: &Listener) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(listener.header_read_timeout)
            .max_buf_size(listener.max_header_bytes.max(8192))
            .max_headers(listener.max_headers);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(listener.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        Protocols {
            http1,
            http2,
            header_read_timeout: listener.header_read_timeout,
            send_timeout: listener.body_idle_timeout,
        }
    }
}

/// What answers a connection's requests (the edge, or the redirect to HTTPS): each connection
/// takes its own clone, and each hyper connection serving it (see `keep_alive`) another.
trait ConnectionService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Unpin
    + Send
    + 'static
{
}

impl<S> ConnectionService for S where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Unpin
        + Send
        + 'static
{
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
        let peer = Peer::new(peer);
        service_fn(move |request: Request<Incoming>| {
            let request = request.map(|body| Body::new(IdleTimeout::new(body, body_idle)));
            handled(edge.clone(), request, peer.clone())
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
    peer: Peer,
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

/// What all of a listener's accepting threads share.
struct Accepting {
    protocols: Protocols,
    acceptor: Option<TlsAcceptor>,
    /// One per connection the listener may have open, across all its threads.
    slots: Arc<Semaphore>,
    limit: usize,
    metrics: ListenerMetrics,
    /// Connections refused for want of a slot, for the log.
    refused: OncePerMinute,
}

/// The steps of a listener's stop, in order, each a channel its receivers watch.
#[derive(Clone)]
struct Stops {
    /// Accept loops close their sockets: a client connecting now is refused, not queued.
    close: watch::Receiver<bool>,
    /// Connections finish what they are answering and close (copies start unseen).
    stopping: watch::Receiver<bool>,
    /// Connections have ended, or the grace is over: threads of the listener's own end.
    drained: watch::Receiver<bool>,
}

async fn accept_loop<H, S>(
    tcp: TcpListener,
    listener: Listener,
    handler: H,
    stop: impl Future<Output = ()>,
) where
    H: Fn(SocketAddr) -> S + Clone + Send + 'static,
    S: ConnectionService,
{
    let accepting = Arc::new(Accepting {
        protocols: Protocols::new(&listener),
        acceptor: listener.tls.clone().map(TlsAcceptor::from),
        slots: Arc::new(Semaphore::new(listener.max_connections)),
        limit: listener.max_connections,
        metrics: listener.metrics.clone(),
        refused: OncePerMinute::default(),
    });
    let (close, close_seen) = watch::channel(false);
    let (stopping, stop_seen) = watch::channel(false);
    let (drained, drain_seen) = watch::channel(false);
    let stops = Stops {
        close: close_seen,
        stopping: stop_seen,
        drained: drain_seen,
    };
    // Each accept loop holds a sender until it has closed its socket, each thread of the
    // listener's own another until its runtime has ended: a receiver hearing no sender left
    // knows that all have.
    let (socket_open, mut sockets) = mpsc::channel::<()>(1);
    let (thread_alive, mut threads) = mpsc::channel::<()>(1);
    let here = match listener.threads {
        0 => Some(tcp),
        count => {
            let started = Started {
                accepting: accepting.clone(),
                stops: stops.clone(),
                socket_open: socket_open.clone(),
                thread_alive: thread_alive.clone(),
            };
            start_threads(tcp, count, started, &handler).await
        }
    };
    drop(thread_alive);
    let accepted_here =
        here.map(|tcp| accept(tcp, accepting.clone(), handler, stops, socket_open.clone()));
    drop(socket_open);
    // One grace for the whole stop, as the server gives the edge.
    let stopped = async {
        stop.await;
        let deadline = tokio::time::Instant::now() + listener.grace;
        let _ = close.send(true);
        let _ = tokio::time::timeout_at(deadline, sockets.recv()).await;
        let _ = stopping.send(true);
        deadline
    };
    let deadline = match accepted_here {
        Some(accepted) => tokio::join!(accepted, stopped).1,
        None => stopped.await,
    };
    // Every connection holds a slot until it ends: all slots back means all connections ended.
    let all = u32::try_from(listener.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout_at(deadline, accepting.slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("edge connections did not finish within the grace period");
    }
    let _ = drained.send(true);
    // Bounded: a runtime ending waits for its blocking tasks (a DNS lookup, say).
    if tokio::time::timeout_at(deadline, threads.recv())
        .await
        .is_err()
    {
        tracing::warn!("edge threads did not end within the grace period");
    }
}

/// What each thread of a listener's own is given.
#[derive(Clone)]
struct Started {
    accepting: Arc<Accepting>,
    stops: Stops,
    socket_open: mpsc::Sender<()>,
    thread_alive: mpsc::Sender<()>,
}

/// Starts `count` threads that accept on `tcp`, each on a runtime of its own. Gives the
/// socket back if none could start, to be served on the caller's runtime instead.
async fn start_threads<H, S>(
    tcp: TcpListener,
    count: usize,
    started: Started,
    handler: &H,
) -> Option<TcpListener>
where
    H: Fn(SocketAddr) -> S + Clone + Send + 'static,
    S: ConnectionService,
{
    let shared = match tcp.into_std() {
        Ok(shared) => shared,
        Err(err) => {
            tracing::error!(error = %err, "cannot hand the edge's socket to its threads");
            return None;
        }
    };
    let mut running = 0;
    for index in 0..count {
        match start_thread(index, &shared, started.clone(), handler.clone()).await {
            Ok(()) => running += 1,
            Err(err) => tracing::error!(error = %err, index, "cannot start an edge thread"),
        }
    }
    if running > 0 {
        return None;
    }
    match TcpListener::from_std(shared) {
        Ok(tcp) => Some(tcp),
        Err(err) => {
            tracing::error!(error = %err, "the edge cannot accept connections");
            None
        }
    }
}

/// Starts one thread of the listener's own; returns once its runtime runs, or why it could not.
async fn start_thread<H, S>(
    index: usize,
    shared: &std::net::TcpListener,
    started: Started,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(SocketAddr) -> S + Clone + Send + 'static,
    S: ConnectionService,
{
    // Each thread waits on the same socket: whichever is free first takes a new connection.
    let own = shared.try_clone()?;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("edge-{index}"))
        .spawn(move || {
            // Declared first, so dropped last: after the runtime, even on a panic.
            let Started {
                thread_alive,
                accepting,
                mut stops,
                socket_open,
            } = started;
            // Built here, not by the caller: a runtime may not be dropped within another,
            // as it would be if this thread could not start.
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    let tcp = {
                        let _within = runtime.enter();
                        TcpListener::from_std(own)?
                    };
                    Ok((runtime, tcp))
                });
            let (runtime, tcp) = match built {
                Ok(built) => built,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            crate::connections::keep_on_this_thread(index + 1);
            runtime.block_on(async move {
                accept(tcp, accepting, handler, stops.clone(), socket_open).await;
                // Its connections are tasks of this runtime, cut short if still open now.
                let _ = stops.drained.wait_for(|drained| *drained).await;
            });
            drop(runtime);
            drop(thread_alive);
        })?;
    is_ready
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the edge thread ended at its start")))
}

/// Accepts connections on `tcp` and serves each as a task of the current runtime, until told
/// to close; then closes the socket and lets `socket_open` go.
async fn accept<H, S>(
    tcp: TcpListener,
    accepting: Arc<Accepting>,
    handler: H,
    stops: Stops,
    socket_open: mpsc::Sender<()>,
) where
    H: Fn(SocketAddr) -> S,
    S: ConnectionService,
{
    let mut close = stops.close;
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
            // Not the guard `wait_for` gives, which may not be held across an await.
            () = async { let _ = close.wait_for(|close| *close).await; } => break,
        };
        // Closed at once rather than left waiting: a client (or a load balancer) learns now that
        // this instance is full, and the connections already open keep their memory.
        let Ok(slot) = accepting.slots.clone().try_acquire_owned() else {
            accepting.metrics.refused();
            if let Some(refused) = accepting.refused.count() {
                tracing::warn!(
                    limit = accepting.limit,
                    refused,
                    "connection limit reached: closing new connections (proxy_max_connections)"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = handler(peer);
        let accepting = accepting.clone();
        let open = Open::new(slot, accepting.limit, &accepting.metrics);
        let mut stop = stops.stopping.clone();
        tokio::spawn(async move {
            let acceptor = accepting.acceptor.clone();
            serve_connection(
                stream,
                acceptor,
                &accepting.protocols,
                service,
                &open,
                &mut stop,
            )
            .await;
            drop(open);
        });
    }
    drop(tcp);
    drop(socket_open);
}

/// One open connection's hold on its listener: one of the slots (each open connection holds
/// one), and its place in the listener's counts, both given back when the connection ends.
struct Open {
    slot: OwnedSemaphorePermit,
    limit: usize,
    metrics: ListenerMetrics,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit, limit: usize, metrics: &ListenerMetrics) -> Self {
        metrics.opened();
        Open {
            slot,
            limit,
            metrics: metrics.clone(),
        }
    }

    /// Connections open on the listener, this one included.
    fn count(&self) -> usize {
        self.limit
            .saturating_sub(self.slot.semaphore().available_permits())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.closed();
    }
}

impl keep_alive::Listening for Open {
    fn crowded(&self) -> bool {
        self.count() > CROWDED_ABOVE
    }

    fn released(&self) {
        self.metrics.released();
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    protocols: &Protocols,
    service: S,
    open: &Open,
    stop: &mut watch::Receiver<bool>,
) where
    S: ConnectionService,
{
    // The TLS path is boxed: a task keeps room for the largest state its future can be in, and
    // a TLS stream's state (over 1 KiB, several copies across the handshake and the protocols)
    // would otherwise be paid by every plain-HTTP connection too.
    let result = match acceptor {
        Some(acceptor) => {
            Box::pin(serve_tls(stream, acceptor, protocols, service, open, stop)).await
        }
        None => serve_any(stream, protocols, service, open, stop).await,
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

async fn serve_tls<S>(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    protocols: &Protocols,
    service: S,
    open: &Open,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    S: ConnectionService,
{
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "TLS handshake failed");
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_http2(tls, Bytes::new(), protocols, service, stop).await
    } else {
        serve_any(tls, protocols, service, open, stop).await
    }
}

/// Serves a connection whose protocol its first bytes tell: HTTP/2 with prior knowledge, or
/// HTTP/1.
async fn serve_any<T, S>(
    mut io: T,
    protocols: &Protocols,
    service: S,
    open: &Open,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService,
{
    let first = tokio::time::timeout(protocols.header_read_timeout, async {
        let mut first = BytesMut::new();
        while first.len() < H2_PREFACE_START.len() && H2_PREFACE_START.starts_with(&first) {
            match keep_alive::next_bytes(&mut io).await {
                Ok(Some(bytes)) => first.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
        Some(first.freeze())
    })
    .await;
    let Ok(Some(first)) = first else {
        return Ok(());
    };
    if first.starts_with(H2_PREFACE_START) {
        serve_http2(io, first, protocols, service, stop).await
    } else {
        keep_alive::serve(
            io,
            first,
            &protocols.http1,
            service,
            keep_alive::ClientTimeouts {
                idle: protocols.header_read_timeout,
                send: protocols.send_timeout,
            },
            open,
            stop,
        )
        .await
    }
}

async fn serve_http2<T, S>(
    io: T,
    first: Bytes,
    protocols: &Protocols,
    service: S,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService,
{
    let conn = protocols.http2.serve_connection(
        TokioIo::new(Replay::new(io, first, protocols.send_timeout)),
        service,
    );
    let mut conn = Box::pin(conn);
    tokio::select! {
        done = conn.as_mut() => return done,
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    conn.await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the size of the future `f` makes, without making one.
    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: FnOnce(Arc<Edge>, Request<Body>, Peer) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[tokio::test]
    async fn a_plain_connection_task_keeps_no_room_for_tls() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(tcp.local_addr().unwrap()).await.unwrap();
        let (stream, _) = tcp.accept().await.unwrap();
        let listener = Listener {
            tls: None,
            header_read_timeout: Duration::from_secs(1),
            max_header_bytes: 8192,
            max_headers: 100,
            body_idle_timeout: Duration::from_secs(1),
            max_connections: 10,
            grace: Duration::from_secs(1),
            metrics: ListenerMetrics::default(),
            threads: 0,
        };
        let service = service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let slots = Arc::new(Semaphore::new(10));
        let slot = slots.clone().try_acquire_owned().unwrap();
        let open = Open::new(slot, 10, &listener.metrics);
        let (_stopping, mut stop) = watch::channel(false);
        let protocols = Protocols::new(&listener);
        let task = serve_connection(stream, None, &protocols, service, &open, &mut stop);
        let size = std::mem::size_of_val(&task);
        // A TLS stream alone is over 1 KiB; the whole TLS path was about 6.8 KiB unboxed.
        assert!(
            size <= 1536,
            "each plain connection's task keeps {size} bytes"
        );
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

    #[test]
    fn a_request_in_flight_keeps_no_room_for_rare_paths() {
        // A sign-in's hand-over and a WebSocket tunnel's watch are boxed when they happen: kept
        // inline, they made every request's state twice as large (5.6 KiB in a debug build),
        // held for as long as the app takes to answer.
        let whole = future_size(&Edge::handle);
        assert!(whole <= 3584, "each request in flight keeps {whole} bytes");
    }
}
