//! Upstream HTTP/1.1 connections, kept between requests and driven by the task of the request
//! that uses them.
//!
//! hyper's pooled client gives each connection a task of its own, so a request and its answer
//! cross between tasks (and threads) several times on the way. Here the request's own task
//! writes the request and reads the answer, as an event-loop proxy such as nginx does: the
//! answer's body drives its connection while it is read, and hands the connection back to the
//! pool once it has been read to the end. Between requests a connection sits in the pool,
//! polled by no one; one that the upstream closed meanwhile is found out when it is next taken
//! (or by the sweep), and a request it could not carry goes out on another connection.
//!
//! At most so many connections to one upstream are open at once (as Envoy's circuit breaker,
//! whose default this shares). Past that, a request waits for the next connection another
//! request gives back, oldest first, rather than opening one more, and is refused once it has
//! waited as long as a connection may take to open: under a burst of thousands of clients the
//! upstream sees a steady number of connections, and the edge keeps hyper's buffers for that
//! many, not for one per client.
//!
//! An answer of known length up to [`READ_AHEAD`] bytes is read whole before it is passed on,
//! and any other answer as far as it has already arrived: read to the end, its connection goes
//! back to the pool at once. So a client that takes its answer slowly, or never (an HTTP/2
//! stream whose window stays shut), holds only its own connection, not one of the upstream's.

use axum::body::Body;
use bytes::{Buf, Bytes};
use hyper::{
    Request, Response,
    body::{Body as _, Frame, Incoming, SizeHint},
    client::conn::http1,
    http::uri::Authority,
};
use hyper_util::rt::TokioIo;
use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};
use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore, oneshot},
};

type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>;

/// One connection: the handle requests are sent through, and the state machine that does the
/// reading and writing whenever it is polled.
struct Connection {
    sender: http1::SendRequest<Body>,
    driver: Driver,
    /// Its place among the connections its upstream may have open, given up when it closes.
    _open: OwnedSemaphorePermit,
    /// The thread whose runtime its socket is registered with (see [`keep_on_this_thread`]):
    /// where it waits while idle, whoever used it last.
    home: usize,
}

impl Connection {
    /// Drives the connection once; false if it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        self.driver.as_mut().poll(cx).is_pending()
    }

    /// Whether the connection can take a request now. What arrived since it was last polled
    /// (the upstream closing it, say) is read first; nothing is waited for.
    fn ready_now(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.sender.is_ready()
    }
}

/// How much of an answer is read before it is passed on (see the module's notes): as much as
/// nginx buffers by default on a 64-bit machine.
pub(crate) const READ_AHEAD: usize = 64 * 1024;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot connect to {0}: {1}")]
    Connect(Authority, std::io::Error),
    #[error("no connection to {0} within {1:?}")]
    ConnectTimeout(Authority, Duration),
    #[error("{0} has as many connections open as it may, all busy for {1:?}")]
    Busy(Authority, Duration),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

thread_local! {
    /// Which idle connections requests on this thread take: 0, shared, on a work-stealing
    /// runtime's threads; its own on a thread that is a runtime of its own.
    static HOME: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes requests on this thread take and leave idle connections of `home`'s own (from 1).
/// A connection is registered with the runtime that opened it, and only that runtime's thread
/// hears first that it can be read: used from another thread, each answer would wait for that
/// thread to look.
pub(crate) fn keep_on_this_thread(home: usize) {
    HOME.set(home);
}

/// Whether this thread is one of the edge's own (see [`keep_on_this_thread`]).
pub(crate) fn on_own_thread() -> bool {
    HOME.get() != 0
}

/// A request's wait for a connection given back.
type Waiter = oneshot::Sender<Connection>;

/// What the pool keeps for one upstream.
struct Upstream {
    /// Idle connections by home thread (see [`keep_on_this_thread`]), each with when it was
    /// last used.
    idle: Vec<Vec<(Connection, Instant)>>,
    /// A permit for each connection that may be open at once: idle, busy or being opened.
    open: Arc<Semaphore>,
    /// Requests waiting for a connection, oldest first, whatever their thread: taking turns
    /// comes before keeping a connection on its thread.
    waiting: VecDeque<Waiter>,
}

impl Upstream {
    fn new(max_open: usize) -> Self {
        Upstream {
            idle: Vec::new(),
            open: Arc::new(Semaphore::new(max_open)),
            waiting: VecDeque::new(),
        }
    }

    /// The most recently used idle connection of `home` that is still open and ready.
    fn take(&mut self, home: usize, idle_timeout: Duration) -> Option<Connection> {
        let idle = self.idle.get_mut(home)?;
        while let Some((mut connection, since)) = idle.pop() {
            if since.elapsed() < idle_timeout && connection.ready_now() {
                return Some(connection);
            }
        }
        None
    }

    /// An idle connection of `home`'s (or of any, when no more may be opened), room for one
    /// more, or a place in line.
    fn idle_or_room(&mut self, home: usize, idle_timeout: Duration) -> Obtained {
        if let Some(connection) = self.take(home, idle_timeout) {
            return Obtained::Idle(connection);
        }
        if let Ok(room) = self.open.clone().try_acquire_owned() {
            return Obtained::Room(room);
        }
        // All that may be are open: one idle on another thread serves better than a wait.
        for other in 0..self.idle.len() {
            if let Some(connection) = self.take(other, idle_timeout) {
                return Obtained::Idle(connection);
            }
        }
        let (waiter, handed) = oneshot::channel();
        self.waiting.push_back(waiter);
        Obtained::Wait(handed, self.open.clone())
    }

    /// Whether the pool still has to remember this upstream.
    fn in_use(&self, max_open: usize) -> bool {
        self.open.available_permits() < max_open
            || self.idle.iter().any(|idle| !idle.is_empty())
            || !self.waiting.is_empty()
    }
}

/// A request's place in line. A connection handed to it as it gives up goes to the next in
/// line, not closed with it.
struct InLine<'a> {
    handed: oneshot::Receiver<Connection>,
    pool: &'a Pool,
    upstream: &'a Authority,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.handed.close();
        if let Ok(connection) = self.handed.try_recv() {
            self.pool.put(self.upstream, connection);
        }
    }
}

/// How a request gets its connection.
enum Obtained {
    Idle(Connection),
    /// Room for one more: it opens it.
    Room(OwnedSemaphorePermit),
    /// As many as may be are open: it waits for one given back, or for room.
    Wait(oneshot::Receiver<Connection>, Arc<Semaphore>),
}

/// The connections to each upstream.
pub(crate) struct Pool {
    /// By the upstream's authority as text: `Authority` hashes byte by byte, lower-casing,
    /// which costs more than the rest of a lookup.
    upstreams: Mutex<HashMap<String, Upstream>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_open_per_upstream: usize,
    /// See [`READ_AHEAD`]; 0 passes every answer on as it comes.
    read_ahead: usize,
}

impl Pool {
    /// A pool that has at most `max_open_per_upstream` connections open to each upstream
    /// (at least one), and whose idle connections are closed after `idle_timeout`, checked by
    /// a sweep that ends with the pool; which reads up to `read_ahead` bytes of an answer
    /// before passing it on. Must be called within the runtime.
    pub(crate) fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_open_per_upstream: usize,
        read_ahead: usize,
    ) -> Arc<Self> {
        let pool = Arc::new(Pool {
            upstreams: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout,
            max_open_per_upstream: max_open_per_upstream.max(1),
            read_ahead,
        });
        let swept = Arc::downgrade(&pool);
        tokio::spawn(async move {
            let period = idle_timeout.max(Duration::from_secs(1)) / 2;
            // A new pool has nothing to sweep: the first sweep is one period on.
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match Weak::upgrade(&swept) {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
        pool
    }

    /// Sends `request` (its URI in origin form, its `Host` set) to `upstream` on an idle
    /// connection, or on a new one. A request an idle connection could not carry (the
    /// upstream had closed it) is sent again on another. A request that has to wait for a
    /// connection waits no longer than the connect timeout, nor past `deadline` (the caller's
    /// own, by which it is told the app is busy rather than too slow, and until which it waits
    /// for the rest of a short answer).
    pub(crate) async fn send(
        self: &Arc<Self>,
        upstream: &Authority,
        mut request: Request<Body>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Response<Answer>, SendError> {
        // Which idle connections this thread takes, and where one it opens waits when idle.
        let home = HOME.get();
        // When it began to wait, and until when it may: one wait however often it is sent.
        let mut wait = None;
        loop {
            let (connection, reused) = self.obtain(upstream, home, deadline, &mut wait).await?;
            let Connection {
                mut sender,
                driver,
                _open: open,
                home: opened_on,
            } = connection;
            let mut sent = std::pin::pin!(sender.try_send_request(request));
            let mut driver = Some(driver);
            let answered = std::future::poll_fn(|cx| {
                if let Some(open) = driver.as_mut()
                    && open.as_mut().poll(cx).is_ready()
                {
                    // Ended: the answer, if it came, is complete; otherwise `sent` says why.
                    driver = None;
                }
                sent.as_mut().poll(cx)
            })
            .await;
            match answered {
                Ok(response) => {
                    let kept = driver.map(|driver| Connection {
                        sender,
                        driver,
                        _open: open,
                        home: opened_on,
                    });
                    let (parts, body) = response.into_parts();
                    let body = Driven {
                        body,
                        ended: false,
                        connection: kept,
                        back_to: Some((Arc::downgrade(self), upstream.clone())),
                    };
                    let body = self.read_ahead(body, deadline).await;
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut refused) => match refused.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(refused.into_error().into()),
                },
            }
        }
    }

    /// Reads what it may of `body` (see [`READ_AHEAD`]): when its length is known and at most
    /// that, all of it, waiting until `deadline` at most; otherwise what has already arrived,
    /// until it has that much (the last frame may take it past: hyper has read it already).
    /// Read to the end, its connection is given back before the answer is passed on.
    async fn read_ahead(&self, mut body: Driven, deadline: Option<tokio::time::Instant>) -> Answer {
        let mut answer = Answer {
            first: None,
            more: VecDeque::new(),
            trailers: false,
            queued_bytes: 0,
            failed: None,
            rest: None,
        };
        if body.is_end_stream() {
            // Dropped now, read to the end: the connection goes back.
            return answer;
        }
        let limit = self.read_ahead as u64;
        let whole = body
            .size_hint()
            .exact()
            .is_some_and(|length| length <= limit);
        while answer.queued_bytes < limit {
            // What has arrived, first: no timer is set for an answer that came with its head.
            // Twice: the first poll may only have said the body is wanted.
            let arrived = {
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(&mut body).poll_frame(&mut cx) {
                    Poll::Pending => Pin::new(&mut body).poll_frame(&mut cx),
                    arrived => arrived,
                }
            };
            let next = match arrived {
                Poll::Ready(frame) => Some(frame),
                Poll::Pending if whole => {
                    let mut give_up = std::pin::pin!(deadline.map(tokio::time::sleep_until));
                    std::future::poll_fn(|cx| {
                        if let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx) {
                            return Poll::Ready(Some(frame));
                        }
                        let Some((deadline, timer)) = deadline.zip(give_up.as_mut().as_pin_mut())
                        else {
                            return Poll::Pending;
                        };
                        // The clock decides, as in `obtain`: the caller's own timeout at the same
                        // instant may fire first, and then this gives up rather than the caller
                        // throwing away an answer whose head has come.
                        if tokio::time::Instant::now() >= deadline {
                            return Poll::Ready(None);
                        }
                        timer.poll(cx).map(|()| None)
                    })
                    .await
                }
                Poll::Pending => None,
            };
            match next {
                // The rest is passed on as it comes.
                None => break,
                Some(None) => return answer,
                Some(Some(Ok(frame))) => {
                    answer.queued_bytes +=
                        frame.data_ref().map_or(0, |data| data.remaining() as u64);
                    match frame.into_data() {
                        Ok(data) if answer.first.is_none() && answer.more.is_empty() => {
                            answer.first = Some(data);
                        }
                        Ok(data) => answer.more.push_back(Frame::data(data)),
                        Err(trailers) => {
                            answer.trailers = true;
                            answer.more.push_back(trailers);
                        }
                    }
                    if body.is_end_stream() {
                        return answer;
                    }
                }
                Some(Some(Err(err))) => {
                    // Passed on after what came before it; the connection closes with `body`.
                    answer.failed = Some(err);
                    return answer;
                }
            }
        }
        answer.rest = Some(Box::new(body));
        answer
    }

    /// A connection to `upstream` for a request on `home`, and whether it carried requests
    /// before: an idle one, or a new one, or, when as many are open as may be, the next one
    /// given back (or a new one once another has closed), whichever comes first.
    async fn obtain(
        &self,
        upstream: &Authority,
        home: usize,
        deadline: Option<tokio::time::Instant>,
        wait: &mut Option<(tokio::time::Instant, tokio::time::Instant)>,
    ) -> Result<(Connection, bool), SendError> {
        loop {
            let (handed, open) = match self.idle_or_room(upstream, home) {
                Obtained::Idle(connection) => return Ok((connection, true)),
                Obtained::Room(room) => {
                    return Ok((self.connect(upstream, room, home).await?, false));
                }
                Obtained::Wait(handed, open) => (handed, open),
            };
            let mut in_line = InLine {
                handed,
                pool: self,
                upstream,
            };
            // Set once it first waits: the clock is not read on the way to an idle connection.
            let (since, limit) = *wait.get_or_insert_with(|| {
                let now = tokio::time::Instant::now();
                let waited = now + self.connect_timeout;
                (
                    now,
                    deadline.map_or(waited, |deadline| deadline.min(waited)),
                )
            });
            // The clock decides, not only the timer: at the caller's deadline the caller's own
            // timer may have fired first (a work-stealing runtime fires due timers one by one),
            // and `timeout_at` polls what it bounds first, so this branch then still wins.
            let mut give_up = std::pin::pin!(tokio::time::sleep_until(limit));
            let limit_reached = std::future::poll_fn(|cx| {
                if tokio::time::Instant::now() >= limit {
                    Poll::Ready(())
                } else {
                    give_up.as_mut().poll(cx)
                }
            });
            let mut given_back = tokio::select! {
                Ok(connection) = &mut in_line.handed => connection,
                room = open.acquire_owned() => {
                    in_line.handed.close();
                    match (in_line.handed.try_recv(), room) {
                        // Handed over just as room was made: take it, and leave the room.
                        (Ok(connection), _) => connection,
                        (Err(_), Ok(room)) => {
                            return Ok((self.connect(upstream, room, home).await?, false));
                        }
                        // The semaphore is never closed.
                        (Err(_), Err(_)) => continue,
                    }
                }
                () = limit_reached => {
                    return Err(SendError::Busy(upstream.clone(), limit - since));
                }
            };
            // The upstream may have closed it since: then line up again.
            if given_back.ready_now() {
                return Ok((given_back, true));
            }
        }
    }

    fn idle_or_room(&self, upstream: &Authority, home: usize) -> Obtained {
        let mut upstreams = self.lock();
        if let Some(entry) = upstreams.get_mut(upstream.as_str()) {
            return entry.idle_or_room(home, self.idle_timeout);
        }
        let mut entry = Upstream::new(self.max_open_per_upstream);
        let obtained = entry.idle_or_room(home, self.idle_timeout);
        upstreams.insert(upstream.as_str().to_owned(), entry);
        obtained
    }

    /// The upstreams. A panic while they were locked (none is known) leaves them as they were
    /// left: at worst a connection too many is closed, or a waiting request times out.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upstream>> {
        self.upstreams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn connect(
        &self,
        upstream: &Authority,
        room: OwnedSemaphorePermit,
        home: usize,
    ) -> Result<Connection, SendError> {
        // `Authority` keeps IPv6 brackets, which the socket address parser expects.
        let address = match upstream.port_u16() {
            Some(_) => upstream.as_str().to_owned(),
            None => format!("{}:80", upstream.as_str()),
        };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| SendError::ConnectTimeout(upstream.clone(), self.connect_timeout))?
            .map_err(|e| SendError::Connect(upstream.clone(), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| SendError::Connect(upstream.clone(), e))?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Connection {
            sender,
            driver: Box::pin(driver),
            _open: room,
            home,
        })
    }

    /// Gives `connection`, read to the end, to the request that has waited longest for one,
    /// or keeps it idle on its thread.
    fn put(&self, upstream: &Authority, mut connection: Connection) {
        let mut upstreams = self.lock();
        let Some(entry) = upstreams.get_mut(upstream.as_str()) else {
            return;
        };
        while let Some(waiter) = entry.waiting.pop_front() {
            match waiter.send(connection) {
                Ok(()) => return,
                // That request gave up waiting.
                Err(back) => connection = back,
            }
        }
        let home = connection.home;
        if entry.idle.len() <= home {
            entry.idle.resize_with(home + 1, Vec::new);
        }
        entry.idle[home].push((connection, Instant::now()));
    }

    /// Closes idle connections that waited too long or that the upstream closed, and forgets
    /// requests that gave up waiting.
    fn sweep(&self) {
        let mut upstreams = self.lock();
        for entry in upstreams.values_mut() {
            for idle in entry.idle.iter_mut() {
                idle.retain_mut(|(connection, since)| {
                    since.elapsed() < self.idle_timeout && connection.ready_now()
                });
            }
            entry.waiting.retain(|waiter| !waiter.is_closed());
        }
        upstreams.retain(|_, entry| entry.in_use(self.max_open_per_upstream));
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|entry| &entry.idle)
            .map(Vec::len)
            .sum()
    }
}

/// An answer's body: reading it drives its connection, and once it has been read to the end
/// the connection goes back to the pool. Dropped before the end, the connection is closed: it
/// still carries the rest of this answer.
struct Driven {
    body: Incoming,
    /// Whether the body said it ended: a chunked one never reports `is_end_stream`.
    ended: bool,
    connection: Option<Connection>,
    /// The pool and the upstream the connection goes back to.
    back_to: Option<(Weak<Pool>, Authority)>,
}

impl hyper::body::Body for Driven {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(connection) = this.connection.as_mut()
            && !connection.drive(cx)
        {
            this.connection = None;
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body as it is passed on: what was read ahead, then the rest as it comes.
pub(crate) struct Answer {
    /// What was read ahead: the first bytes apart, as most answers are one frame. Small, as
    /// it is moved about on every request: the rest is boxed.
    first: Option<Bytes>,
    more: VecDeque<Frame<Bytes>>,
    /// Whether trailers were read ahead: then no exact length is told, as the upstream told
    /// none. (The edge drops the `Trailer` header, so HTTP/1 clients get none; HTTP/2 ones do.)
    trailers: bool,
    queued_bytes: u64,
    /// How reading ahead ended, when it did not end well.
    failed: Option<hyper::Error>,
    /// Still to be read from its connection.
    rest: Option<Box<Driven>>,
}

impl Answer {
    /// Whether the answer was read whole: its connection is no longer this request's.
    pub(crate) fn read_whole(&self) -> bool {
        self.rest.is_none()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("queued_bytes", &self.queued_bytes)
            .field("read_whole", &self.read_whole())
            .finish_non_exhaustive()
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(frame) = this
            .first
            .take()
            .map(Frame::data)
            .or_else(|| this.more.pop_front())
        {
            this.queued_bytes -= frame.data_ref().map_or(0, |data| data.remaining() as u64);
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(&mut **rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none()
            && self.more.is_empty()
            && self.failed.is_none()
            && self.rest.as_deref().is_none_or(Driven::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let rest = match (&self.rest, &self.failed) {
            (Some(rest), _) => rest.size_hint(),
            (None, None) if !self.trailers => SizeHint::with_exact(0),
            (None, _) => SizeHint::default(),
        };
        held_before(rest, self.queued_bytes)
    }
}

/// The size of a body that passes on `held` bytes of its own before one whose size is `rest`.
pub(crate) fn held_before(rest: SizeHint, held: u64) -> SizeHint {
    let mut hint = SizeHint::new();
    hint.set_lower(rest.lower() + held);
    if let Some(upper) = rest.upper() {
        hint.set_upper(upper + held);
    }
    hint
}

impl Drop for Driven {
    fn drop(&mut self) {
        if !(self.ended || self.body.is_end_stream()) {
            return;
        }
        if let (Some(connection), Some((pool, upstream))) =
            (self.connection.take(), self.back_to.take())
            && let Some(pool) = pool.upgrade()
        {
            pool.put(&upstream, connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// Where an upstream's answer pauses for 500 ms.
    const PAUSE: char = '\u{1}';

    /// No reading ahead: an answer left unread keeps its connection, as a long one does.
    const PASSED_ON: usize = 0;

    /// An upstream that answers each request on a connection with `answers[i]` (pausing at
    /// each [`PAUSE`]), then closes the connection if `close` (without saying so) or keeps it
    /// open; and counts the connections it accepted.
    async fn upstream(
        answers: &'static [&'static str],
        close: bool,
    ) -> (Authority, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    for answer in answers {
                        let mut read = Vec::new();
                        while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = socket.read(&mut buffer).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            read.extend_from_slice(&buffer[..n]);
                        }
                        for (i, part) in answer.split(PAUSE).enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            socket.write_all(part.as_bytes()).await.unwrap();
                        }
                    }
                    if close {
                        // After the answer was read: the connection is idle in the pool.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                    while socket.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        (authority, accepted)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path)
            .header("host", "app.example")
            .body(Body::empty())
            .unwrap()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    /// Sends a request through `pool` and reads its answer to the end: `hello`.
    async fn hello(pool: &Arc<Pool>, authority: &Authority) {
        let response = pool.send(authority, get("/"), None).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }

    /// `hello` on a task of its own.
    fn spawned_hello(pool: &Arc<Pool>, authority: &Authority) -> tokio::task::JoinHandle<()> {
        let (pool, to) = (pool.clone(), authority.clone());
        tokio::spawn(async move { hello(&pool, &to).await })
    }

    /// A thread that is a runtime of its own, as the edge's are.
    struct OwnThread {
        /// Whether all its requests were answered in time.
        finished: oneshot::Receiver<bool>,
        /// Until dropped, the thread keeps its runtime (parked), so the connections it opened
        /// with it are not torn down while the test counts them, as an edge thread's stay
        /// until the edge stops.
        _keep: std::sync::mpsc::Sender<()>,
    }

    /// Sends `requests` requests one after another through `pool` from a new thread that is a
    /// runtime of its own (home 1), within `limit`. Awaited, not joined: the upstream runs on
    /// the test's runtime.
    fn from_a_thread_of_its_own(
        pool: &Arc<Pool>,
        authority: &Authority,
        requests: usize,
        limit: Duration,
    ) -> OwnThread {
        let (own, to) = (pool.clone(), authority.clone());
        let (done, finished) = oneshot::channel();
        let (keep, kept) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            keep_on_this_thread(1);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let served = runtime.block_on(async {
                tokio::time::timeout(limit, async {
                    for _ in 0..requests {
                        hello(&own, &to).await;
                    }
                })
                .await
            });
            done.send(served.is_ok()).unwrap();
            // Returns once the test drops its end.
            let _ = kept.recv();
        });
        OwnThread {
            finished,
            _keep: keep,
        }
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_carries_the_next_request() {
        let (authority, accepted) = upstream(&[OK, OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            READ_AHEAD,
        );
        for _ in 0..3 {
            hello(&pool, &authority).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_thread_of_its_own_takes_only_the_idle_connections_it_left() {
        let (authority, accepted) = upstream(&[OK, OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            READ_AHEAD,
        );
        let opened = || accepted.load(std::sync::atomic::Ordering::SeqCst);
        hello(&pool, &authority).await;
        assert_eq!((opened(), pool.idle_count()), (1, 1));
        let thread = from_a_thread_of_its_own(&pool, &authority, 2, Duration::from_secs(5));
        assert!(thread.finished.await.unwrap());
        assert_eq!(
            (opened(), pool.idle_count()),
            (2, 2),
            "a connection of its own, then kept for it"
        );
        hello(&pool, &authority).await;
        assert_eq!(
            opened(),
            2,
            "the shared one still waits for the shared runtime"
        );
    }

    #[tokio::test]
    async fn past_the_cap_requests_wait_in_turn_for_the_connection_given_back() {
        let (authority, accepted) = upstream(&[OK, OK, OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(5),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let first = pool.send(&authority, get("/"), None).await.unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for turn in 0..3 {
            let (pool, to, served) = (pool.clone(), authority.clone(), served.clone());
            waiting.push(tokio::spawn(async move {
                hello(&pool, &to).await;
                served.lock().unwrap().push(turn);
            }));
            // Each in line before the next.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(
            waiting.iter().all(|waiter| !waiter.is_finished()),
            "they wait while the one connection is busy"
        );
        let body = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        tokio::time::timeout(Duration::from_secs(5), async {
            for waiter in waiting {
                waiter.await.unwrap();
            }
        })
        .await
        .expect("each took the connection in turn");
        assert_eq!(*served.lock().unwrap(), [0, 1, 2], "oldest first");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_request_that_waits_past_the_connect_timeout_is_told_the_app_is_busy() {
        let (authority, _) = upstream(&[OK], false).await;
        let pool = Pool::new(
            Duration::from_millis(200),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let _busy = pool.send(&authority, get("/"), None).await.unwrap();
        let started = std::time::Instant::now();
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            pool.send(&authority, get("/"), None),
        )
        .await
        .expect("refused, not left waiting")
        .unwrap_err();
        assert!(matches!(refused, SendError::Busy(..)), "{refused}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_request_waits_no_longer_than_its_callers_deadline() {
        let (authority, _) = upstream(&[OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(30),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let _busy = pool.send(&authority, get("/"), None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        // As the edge bounds it: the caller's timeout at the same instant comes second.
        let refused =
            tokio::time::timeout_at(deadline, pool.send(&authority, get("/"), Some(deadline)))
                .await
                .expect("told the app is busy, not timed out")
                .unwrap_err();
        assert!(matches!(refused, SendError::Busy(..)), "{refused}");
    }

    #[tokio::test]
    async fn a_connection_handed_to_a_request_that_has_just_given_up_is_kept() {
        let (authority, _) = upstream(&[OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(5),
            Duration::from_secs(60),
            1,
            READ_AHEAD,
        );
        let Obtained::Room(room) = pool.idle_or_room(&authority, 0) else {
            panic!("the first request has room")
        };
        let connection = pool.connect(&authority, room, 0).await.unwrap();
        let (waiter, handed) = oneshot::channel();
        assert!(waiter.send(connection).is_ok());
        drop(InLine {
            handed,
            pool: &pool,
            upstream: &authority,
        });
        assert_eq!(pool.idle_count(), 1, "not closed with the request");
    }

    #[tokio::test]
    async fn the_sweep_keeps_count_of_connections_in_use() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_millis(300),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let busy = pool.send(&authority, get("/"), None).await.unwrap();
        // Nothing idle, no one waiting: only the busy connection says the upstream is in use.
        pool.sweep();
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            pool.send(&authority, get("/"), None),
        )
        .await
        .expect("refused, not left waiting")
        .unwrap_err();
        assert!(matches!(refused, SendError::Busy(..)), "{refused}");
        drop(busy);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_given_back_goes_to_a_request_waiting_on_another_thread() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(5),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let first = pool.send(&authority, get("/"), None).await.unwrap();
        let thread = from_a_thread_of_its_own(&pool, &authority, 1, Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.into_body().collect().await.unwrap();
        assert!(
            thread.finished.await.unwrap(),
            "it was handed the connection"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            pool.lock()[authority.as_str()].idle[0].len(),
            1,
            "idle again on the thread that opened it"
        );
    }

    #[tokio::test]
    async fn a_connection_closed_at_the_cap_makes_room_for_a_new_one() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let unread = pool.send(&authority, get("/"), None).await.unwrap();
        let waiting = spawned_hello(&pool, &authority);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        // Left unread, its connection closes: not handed on, but its place is.
        drop(unread);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a new connection was opened")
            .unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_gave_up_waiting_is_passed_over() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            PASSED_ON,
        );
        let first = pool.send(&authority, get("/"), None).await.unwrap();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), hello(&pool, &authority)).await;
        assert!(gave_up.is_err(), "it waited, and gave up");
        let next = spawned_hello(&pool, &authority);
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.into_body().collect().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the connection went to the request still waiting")
            .unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn at_the_cap_a_thread_of_its_own_takes_an_idle_connection_of_another() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            READ_AHEAD,
        );
        hello(&pool, &authority).await;
        let thread = from_a_thread_of_its_own(&pool, &authority, 1, Duration::from_secs(5));
        assert!(
            thread.finished.await.unwrap(),
            "it did not wait for the shared one"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_read_to_the_end_gives_its_connection_back() {
        const CHUNKED: &str =
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let (authority, accepted) = upstream(&[CHUNKED, CHUNKED], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            READ_AHEAD,
        );
        for _ in 0..2 {
            hello(&pool, &authority).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_left_unread_closes_its_connection() {
        let (authority, accepted) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            PASSED_ON,
        );
        let response = pool.send(&authority, get("/"), None).await.unwrap();
        drop(response);
        assert_eq!(pool.idle_count(), 0);
        hello(&pool, &authority).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
        // One answer per connection; the upstream closes it a little later, without saying so.
        let (authority, accepted) = upstream(&[OK], true).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            READ_AHEAD,
        );
        for _ in 0..3 {
            hello(&pool, &authority).await;
            assert_eq!(pool.idle_count(), 1);
            // Let the close arrive.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connections_are_closed_once_idle_too_long() {
        let (authority, _) = upstream(&[OK, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            8,
            READ_AHEAD,
        );
        let response = pool.send(&authority, get("/"), None).await.unwrap();
        response.into_body().collect().await.unwrap();
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(pool.idle_count(), 0, "the sweep closed it");
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error_not_a_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            8,
            READ_AHEAD,
        );
        let refused = pool.send(&authority, get("/"), None).await.unwrap_err();
        assert!(matches!(refused, SendError::Connect(..)), "{refused}");
    }

    #[tokio::test]
    async fn a_short_answer_is_read_whole_and_its_connection_given_back_at_once() {
        // The second answer's body comes 500 ms after its head.
        const LATE_BODY: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n\u{1}hello";
        let (authority, accepted) = upstream(&[OK, LATE_BODY, OK], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            READ_AHEAD,
        );
        let unread = pool.send(&authority, get("/"), None).await.unwrap();
        assert_eq!(pool.idle_count(), 1, "back before the answer is passed on");
        let late = pool.send(&authority, get("/"), None).await.unwrap();
        assert_eq!(pool.idle_count(), 1, "the late body was waited for");
        // Not waited for: the one connection is idle while both answers are still unread.
        hello(&pool, &authority).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        for answer in [unread, late] {
            assert_eq!(answer.body().size_hint().exact(), Some(5));
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello");
        }
    }

    #[tokio::test]
    async fn a_long_or_unfinished_answer_is_passed_on_as_it_comes() {
        // Longer than hyper reads at once, and than what is read ahead.
        const LONG: usize = 1024 * 1024;
        let long: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
                LONG,
                "x".repeat(LONG)
            )
            .into_boxed_str(),
        );
        // Chunked, its last chunk 500 ms after the first.
        const UNFINISHED: &str =
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n\u{1}0\r\n\r\n";
        let answers: &'static [&'static str] = Box::leak(Box::new([long, UNFINISHED]));
        let (authority, accepted) = upstream(answers, false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            READ_AHEAD,
        );
        let first = pool.send(&authority, get("/"), None).await.unwrap();
        assert_eq!(pool.idle_count(), 0, "still this answer's");
        let body = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), LONG);
        assert_eq!(pool.idle_count(), 1, "given back once read");
        let started = std::time::Instant::now();
        let second = pool.send(&authority, get("/"), None).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "the head and what came with it are passed on without waiting for the rest"
        );
        assert_eq!(pool.idle_count(), 0);
        let body = second.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn trailers_read_ahead_are_passed_on_and_no_length_is_told() {
        const WITH_TRAILERS: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n";
        let (authority, _) = upstream(&[WITH_TRAILERS], false).await;
        let pool = Pool::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            1,
            READ_AHEAD,
        );
        let answer = pool.send(&authority, get("/"), None).await.unwrap();
        assert_eq!(pool.idle_count(), 1, "read whole");
        assert_eq!(answer.body().size_hint().exact(), None);
        let collected = answer.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "1");
        assert_eq!(&collected.to_bytes()[..], b"hello");
    }
}
