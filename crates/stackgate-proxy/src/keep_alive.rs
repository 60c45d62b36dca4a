//! HTTP/1 keep-alive that holds no buffers while a connection idles.
//!
//! hyper gives an HTTP/1 connection an 8 KiB read buffer and an 8 KiB write buffer and keeps
//! both until the connection closes. Browsers keep connections open for minutes, mostly idle, so
//! at 10,000 open connections that is 160 MiB of buffers waiting. Here, once a kept-alive
//! connection has been idle for a second or two, hyper's connection is taken apart (the socket,
//! and any bytes hyper read ahead, are kept) and the next request gets a new one when its first
//! bytes arrive. While it waits, a connection holds its socket and nothing else.
//!
//! A connection is handed back only when that cannot change what the client sees: its last
//! request was HTTP/1.1, without `Connection: close`, not an upgrade, with no body left unread
//! when it was answered, and no later request has been read whole (bytes of one already read
//! are handed on with the socket). Otherwise hyper keeps serving it, exactly as before.

use bytes::{Bytes, BytesMut};
use hyper::{
    Method, Request, Response, Version, body::Incoming, header, server::conn::http1,
    service::Service,
};
use hyper_util::rt::TokioIo;
use std::{
    future::Future,
    io,
    mem::MaybeUninit,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::watch,
};

/// A connection whose client sent nothing for between one and two of these gives hyper's
/// buffers back. Busy connections keep them while the edge is not crowded: taking a connection
/// apart and building the next one costs about a tenth of the edge's throughput when done after
/// every request.
const HAND_BACK_AFTER: Duration = Duration::from_secs(1);

/// At most this many bytes are read to learn that a request has arrived; a larger request's
/// rest is read by hyper.
const FIRST_READ: usize = 4096;

/// Waits for the next bytes on `io`, holding no buffer while it waits (the buffer lives on the
/// stack of a single poll). `None` once the peer has closed.
pub(crate) async fn next_bytes<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Option<Bytes>> {
    std::future::poll_fn(|cx| {
        let mut buf = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut read = ReadBuf::uninit(&mut buf);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(Bytes::copy_from_slice(read.filled())))),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// How long a connection waits on its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientTimeouts {
    /// For the first bytes of a request, between requests: then the connection is closed.
    pub(crate) idle: Duration,
    /// For the client to take any of the bytes written to it (as nginx's `send_timeout`): then
    /// the connection ends, with the answer it was reading, and the app's connection it held.
    pub(crate) send: Duration,
}

/// A socket with bytes already read from it put back in front of what it reads next, whose
/// writes end with an error once the client has taken nothing for the send timeout.
pub(crate) struct Replay<T> {
    io: T,
    replay: Bytes,
    /// Set while the connection is being handed back for the next request: hyper's closing
    /// shutdown must then leave the socket open.
    turn: Option<Arc<Turn>>,
    send_timeout: Duration,
    /// When the writes waiting for the client give up; boxed and made at the first wait
    /// (most connections never wait), then set again for each.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether writes are waiting now, and `stalled` is set for this wait.
    waiting: bool,
}

impl<T> Replay<T> {
    pub(crate) fn new(io: T, replay: Bytes, send_timeout: Duration) -> Self {
        Replay {
            io,
            replay,
            turn: None,
            send_timeout,
            stalled: None,
            waiting: false,
        }
    }

    /// `written`, unless the client has taken nothing for the send timeout: then an error.
    fn unless_stalled<R>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if written.is_ready() {
            self.waiting = false;
            return written;
        }
        if !self.waiting {
            self.waiting = true;
            let give_up = tokio::time::Instant::now() + self.send_timeout;
            match self.stalled.as_mut() {
                Some(stalled) => stalled.as_mut().reset(give_up),
                None => self.stalled = Some(Box::pin(tokio::time::sleep_until(give_up))),
            }
        }
        if let Some(stalled) = self.stalled.as_mut()
            && stalled.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no bytes of the answer went out to the client within the send timeout",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            let head = self.replay.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.unless_stalled(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.unless_stalled(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.unless_stalled(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self
            .turn
            .as_ref()
            .is_some_and(|turn| turn.handing_back.load(Ordering::Acquire))
        {
            return Poll::Ready(Ok(()));
        }
        // Over TLS, closing writes close_notify: a client that takes nothing holds it too.
        let shut = Pin::new(&mut self.io).poll_shutdown(cx);
        self.unless_stalled(cx, shut)
    }
}

/// What one hyper connection (one turn) learnt about the requests it served.
#[derive(Default)]
struct Turn {
    /// Requests hyper has read so far on this connection.
    requests: AtomicU32,
    /// The number of the last request whose answer allows the connection to be handed back
    /// once that answer is out (0: none yet). Only the latest request counts: an earlier one
    /// may already have been followed by a pipelined request hyper is working on.
    clean_answer: AtomicU32,
    handing_back: AtomicBool,
}

impl Turn {
    fn may_hand_back(&self) -> bool {
        let clean = self.clean_answer.load(Ordering::Acquire);
        clean != 0 && clean == self.requests.load(Ordering::Acquire)
    }
}

/// The service, noting whether each answer allows the connection to be handed back.
#[derive(Clone)]
struct Watched<S> {
    inner: S,
    turn: Arc<Turn>,
}

impl<S, B> Service<Request<Incoming>> for Watched<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Watching<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let number = self.turn.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let clean = request.version() == Version::HTTP_11
            && request.method() != Method::CONNECT
            && !asks_to_close(request.headers())
            && !request.headers().contains_key(header::UPGRADE)
            && hyper::body::Body::is_end_stream(request.body());
        Watching {
            inner: self.inner.call(request),
            turn: clean.then(|| (self.turn.clone(), number)),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer being made, which marks its turn once it is ready.
    pub(crate) struct Watching<F> {
        #[pin]
        inner: F,
        turn: Option<(Arc<Turn>, u32)>,
    }
}

impl<F, B, E> Future for Watching<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        if let (Some((turn, number)), Ok(response)) = (this.turn.take(), &answer)
            && response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS
            && !asks_to_close(response.headers())
        {
            turn.clean_answer.store(number, Ordering::Release);
        }
        Poll::Ready(answer)
    }
}

fn asks_to_close(headers: &hyper::HeaderMap) -> bool {
    crate::upstream::connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("close"))
}

/// What a connection asks of, and tells, the listener it was accepted on.
pub(crate) trait Listening {
    /// So many connections are open that each should give its buffers back after every answer.
    fn crowded(&self) -> bool;
    /// This connection has just given its buffers back.
    fn released(&self);
}

/// Serves HTTP/1 on `io` (whose first bytes, already read, are `replay`) until the client
/// closes, stays silent for `timeouts.idle`, or `stop` changes. While the listener is crowded,
/// connections are handed back after every answer instead of after a second or two of quiet.
pub(crate) async fn serve<T, S, B>(
    mut io: T,
    mut replay: Bytes,
    builder: &http1::Builder,
    service: S,
    timeouts: ClientTimeouts,
    listening: &impl Listening,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Unpin + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        if replay.is_empty() {
            let next = tokio::select! {
                next = tokio::time::timeout(timeouts.idle, next_bytes(&mut io)) => next,
                _ = stop.changed() => return Ok(()),
            };
            match next {
                Ok(Ok(Some(bytes))) => replay = bytes,
                // Closed by the client, broken, or silent for too long.
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return Ok(()),
            }
        }
        let turn = Arc::new(Turn::default());
        let socket = Replay {
            turn: Some(turn.clone()),
            ..Replay::new(io, replay, timeouts.send)
        };
        let watched = Watched {
            inner: service.clone(),
            turn: turn.clone(),
        };
        // Boxed, so that a waiting connection's task does not keep room for hyper's state.
        let mut conn = Box::new(
            builder
                .serve_connection(TokioIo::new(socket), watched)
                .with_upgrades(),
        );
        let mut stopping = false;
        {
            let mut stopped = std::pin::pin!(stop.changed());
            let mut idle_check = std::pin::pin!(tokio::time::sleep(HAND_BACK_AFTER));
            // Requests read by the previous check: none since means the connection idled.
            let mut seen = 0;
            std::future::poll_fn(|cx| {
                if !stopping && stopped.as_mut().poll(cx).is_ready() {
                    stopping = true;
                    turn.handing_back.store(false, Ordering::Release);
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                loop {
                    if let Poll::Ready(done) = Pin::new(&mut *conn).poll(cx) {
                        return Poll::Ready(done);
                    }
                    if stopping || turn.handing_back.load(Ordering::Acquire) {
                        return Poll::Pending;
                    }
                    // When crowded, every answer hands its connection back at once; hyper has
                    // written the answer's head by now (in the poll that received it).
                    let now = listening.crowded() && turn.may_hand_back();
                    if !now && idle_check.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let requests = turn.requests.load(Ordering::Acquire);
                    if now || (requests == seen && turn.may_hand_back()) {
                        // The last answer's head is out, so keep-alive can be turned off
                        // without the client being told to close: hyper ends the connection
                        // (after the answer's body, if that is still streaming) and hands it
                        // back here.
                        turn.handing_back.store(true, Ordering::Release);
                        Pin::new(&mut *conn).graceful_shutdown();
                    } else {
                        seen = requests;
                        idle_check
                            .as_mut()
                            .reset(tokio::time::Instant::now() + HAND_BACK_AFTER);
                    }
                }
            })
            .await?;
        }
        if stopping || !turn.handing_back.load(Ordering::Acquire) {
            return Ok(());
        }
        // `None`: the connection was upgraded and belongs to its tunnel now.
        let Some(parts) = conn.into_parts() else {
            return Ok(());
        };
        listening.released();
        let socket = parts.io.into_inner();
        io = socket.io;
        replay = joined(parts.read_buf, socket.replay);
    }
}

/// Bytes hyper read ahead, then those it had not yet read from the replay, copied out: hyper's
/// read-ahead is a view of its whole read buffer (8 KiB, even when the view is empty), which a
/// waiting connection must not keep alive.
fn joined(read_ahead: Bytes, unread: Bytes) -> Bytes {
    if read_ahead.is_empty() && unread.is_empty() {
        return Bytes::new();
    }
    let mut both = BytesMut::with_capacity(read_ahead.len() + unread.len());
    both.extend_from_slice(&read_ahead);
    both.extend_from_slice(&unread);
    both.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_is_found_among_connection_tokens() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        assert!(!asks_to_close(&headers));
        headers.append(header::CONNECTION, "Upgrade, Close".parse().unwrap());
        assert!(asks_to_close(&headers));
    }

    #[test]
    fn what_is_kept_between_requests_holds_no_part_of_hypers_buffer() {
        // As hyper hands its read buffer back: what it parsed split off, the rest frozen.
        for pipelined in [&b""[..], b"GET /next"] {
            let mut buffer = BytesMut::with_capacity(8192);
            let start = buffer.as_ptr() as usize;
            buffer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            buffer.extend_from_slice(pipelined);
            drop(buffer.split_to(18));
            let read_ahead = buffer.freeze();
            let kept = joined(read_ahead.clone(), Bytes::new());
            assert_eq!(kept, pipelined);
            let at = kept.as_ptr() as usize;
            assert!(
                !(start..start + 8192).contains(&at),
                "a view of hyper's buffer was kept"
            );
        }
    }

    #[test]
    fn read_ahead_bytes_come_before_unread_replay() {
        assert_eq!(
            joined(Bytes::from_static(b"ab"), Bytes::from_static(b"cd")),
            Bytes::from_static(b"abcd")
        );
        assert_eq!(
            joined(Bytes::new(), Bytes::from_static(b"cd")),
            Bytes::from_static(b"cd")
        );
    }

    #[tokio::test]
    async fn replayed_bytes_are_read_before_the_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        let mut replay = Replay::new(
            server,
            Bytes::from_static(b"hello"),
            Duration::from_secs(60),
        );
        let mut got = [0u8; 11];
        replay.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_ends_the_connection_after_the_send_timeout() {
        use tokio::io::AsyncWriteExt;
        let (_client, server) = tokio::io::duplex(64);
        let mut replay = Replay::new(server, Bytes::new(), Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        let stalled = tokio::time::timeout(Duration::from_secs(5), replay.write_all(&[b'x'; 1024]))
            .await
            .expect("cut off, not left waiting")
            .unwrap_err();
        assert_eq!(stalled.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    /// A socket whose close never completes, as TLS's close_notify to a client that reads
    /// nothing more.
    struct NeverClosed;

    impl AsyncRead for NeverClosed {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for NeverClosed {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_the_client_never_takes_ends_after_the_send_timeout() {
        use tokio::io::AsyncWriteExt;
        let mut replay = Replay::new(NeverClosed, Bytes::new(), Duration::from_secs(1));
        let stalled = tokio::time::timeout(Duration::from_secs(5), replay.shutdown())
            .await
            .expect("cut off, not left waiting")
            .unwrap_err();
        assert_eq!(stalled.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_taking_bytes_slowly_is_never_cut() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buffer = [0u8; 64];
            while got < 1024 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                got += client.read(&mut buffer).await.unwrap();
            }
        });
        let mut replay = Replay::new(server, Bytes::new(), Duration::from_secs(1));
        replay.write_all(&[b'x'; 1024]).await.unwrap();
        replay.flush().await.unwrap();
        reader.await.unwrap();
    }

    /// Answers with the request's path, and counts the hyper connections it served (each
    /// takes its own clone).
    struct PathEcho(Arc<AtomicU32>);

    impl Clone for PathEcho {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            PathEcho(self.0.clone())
        }
    }

    impl Service<Request<Incoming>> for PathEcho {
        type Response = Response<http_body_util::Full<Bytes>>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn call(&self, request: Request<Incoming>) -> Self::Future {
            let path = request.uri().path().to_owned();
            std::future::ready(Ok(Response::new(path.into())))
        }
    }

    /// A listener that is crowded or not, and counts the connections handed back.
    #[derive(Default)]
    struct Counting {
        crowded: bool,
        released: AtomicU32,
    }

    impl Listening for Counting {
        fn crowded(&self) -> bool {
            self.crowded
        }

        fn released(&self) {
            self.released.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A connection served by `serve` with `PathEcho`: the client's end, the count of hyper
    /// connections that served it, the listener it tells of hand-backs, and the serving task.
    fn serving(
        crowded: bool,
        idle: Duration,
    ) -> (
        tokio::io::DuplexStream,
        Arc<AtomicU32>,
        Arc<Counting>,
        tokio::task::JoinHandle<hyper::Result<()>>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let turns = Arc::new(AtomicU32::new(0));
        let service = PathEcho(turns.clone());
        let listening = Arc::new(Counting {
            crowded,
            ..Counting::default()
        });
        let listener = listening.clone();
        let task = tokio::spawn(async move {
            let (_stop, mut stop_seen) = watch::channel(false);
            let mut builder = http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new());
            serve(
                server,
                Bytes::new(),
                &builder,
                service,
                ClientTimeouts {
                    idle,
                    send: Duration::from_secs(60),
                },
                &*listener,
                &mut stop_seen,
            )
            .await
        });
        (client, turns, listening, task)
    }

    /// Sends requests for `paths` one after another on one connection; returns how many hyper
    /// connections served them, and how many times the listener heard of a hand-back.
    async fn served(crowded: bool, paths: &[&str]) -> (u32, u32) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, turns, listening, serving) = serving(crowded, Duration::from_secs(5));
        for path in paths {
            let request = format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            while !answer.ends_with(path.as_bytes()) {
                let mut chunk = [0u8; 1024];
                let n = client.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&chunk[..n]);
            }
            let answer = String::from_utf8(answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(
                !answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
        }
        drop(client);
        serving.await.unwrap().unwrap();
        (
            turns.load(Ordering::SeqCst),
            listening.released.load(Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn a_crowded_edge_hands_connections_back_after_every_answer() {
        let (turns, released) = served(true, &["/a", "/b", "/c"]).await;
        assert_eq!(turns, 3);
        // The last hand-back may race the client's close.
        assert!((2..=3).contains(&released), "{released}");
    }

    #[tokio::test]
    async fn a_busy_connection_keeps_its_buffers_while_the_edge_is_not_crowded() {
        assert_eq!(served(false, &["/a", "/b", "/c"]).await, (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_handed_back_within_two_seconds() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, turns, listening, _serving) = serving(false, Duration::from_secs(60));
        client
            .write_all(b"GET /a HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 1024];
        assert!(client.read(&mut answer).await.unwrap() > 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(turns.load(Ordering::SeqCst), 1, "not yet");
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(listening.released.load(Ordering::SeqCst), 1);
        client
            .write_all(b"GET /b HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(client.read(&mut answer).await.unwrap() > 0);
        assert_eq!(
            turns.load(Ordering::SeqCst),
            2,
            "handed back while idle, then served anew"
        );
    }

    #[tokio::test]
    async fn next_bytes_sees_the_close() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(next_bytes(&mut server).await.unwrap().is_none());
    }
}
