//! An answer passed on over HTTP/2 whose client has stopped taking it.
//!
//! Over HTTP/1 the send timeout cuts off a client that takes nothing of an answer: the
//! connection's writes stall. Over HTTP/2 a client can keep one stream's window shut while its
//! connection stays busy with others, and hyper then asks for no more of that answer, so an
//! answer still being read from its upstream would keep the upstream's connection for as long
//! as the client liked. Such an answer is watched: once its client has taken nothing of it for
//! the send timeout (between one and two periods of it) while the answer had more ready, it is
//! dropped, which closes its upstream connection. The stream itself stays open until the client
//! ends it or its connection, and ends in an error should the client open its window again
//! (hyper asks a stream's body for nothing while the stream has no window). An upstream that is
//! slow to send more (a long poll, a quiet event stream) is not the client's doing, and is
//! waited for as over HTTP/1: that hyper asks the body for more before it waits for window
//! (hyper 1.12, the version this requires) is what tells the two apart. Frames are passed on in
//! slices of at most [`SLICE`] bytes, so that each one asked for stands for a bounded amount of
//! progress: a reader that takes a slice per period is never cut.

use crate::connections::held_before;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most passed on at once: one HTTP/2 frame's worth by default.
const SLICE: usize = 16 * 1024;

/// `B`, dropped once its client has taken nothing of it for a while.
pub(crate) struct Watched<B> {
    state: Arc<Mutex<State<B>>>,
    watch: tokio::task::AbortHandle,
}

/// What the body and its watch share, changed only together.
struct State<B> {
    /// `None` once given up on.
    body: Option<B>,
    /// Of a frame larger than [`SLICE`], what is left to pass on (dropped with the body).
    rest: Bytes,
    /// Whether the client took a slice since the watch last looked.
    taken: bool,
    /// Whether the answer had nothing more when last asked: the upstream's turn, not the
    /// client's.
    upstream_turn: bool,
}

/// The shared state. A panic while it was held (none is known) leaves it as it was.
fn lock<B>(state: &Mutex<State<B>>) -> MutexGuard<'_, State<B>> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Send + 'static> Watched<B> {
    /// Watches `body`, giving up on it once a whole `patience` (at least a second) has passed
    /// with nothing taken while it had more. Must be called within the runtime.
    pub(crate) fn new(body: B, patience: Duration) -> Self {
        let patience = patience.max(Duration::from_secs(1));
        let state = Arc::new(Mutex::new(State {
            body: Some(body),
            rest: Bytes::new(),
            taken: false,
            upstream_turn: false,
        }));
        let watched = Arc::downgrade(&state);
        let watch = tokio::spawn(async move {
            let start = tokio::time::Instant::now() + patience;
            let mut every = tokio::time::interval_at(start, patience);
            // A late tick must not make the next one come early: each is a whole period.
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(state) = watched.upgrade() else {
                    return;
                };
                let given_up = {
                    let mut state = lock(&state);
                    let taken = std::mem::take(&mut state.taken);
                    if taken || state.upstream_turn {
                        continue;
                    }
                    (state.body.take(), std::mem::take(&mut state.rest))
                };
                // Dropped outside the lock: dropping the body closes its upstream connection.
                if given_up.0.is_some() {
                    // At debug: any client can cause it, as often as it likes.
                    tracing::debug!(
                        waited = ?patience,
                        "an HTTP/2 client took nothing of an answer: dropping it"
                    );
                }
                return;
            }
        })
        .abort_handle();
        Watched { state, watch }
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The next slice of `data`, keeping the rest in `state` for the next poll.
fn slice<B>(state: &mut State<B>, mut data: Bytes) -> Frame<Bytes> {
    if data.len() > SLICE {
        state.rest = data.split_off(SLICE);
    }
    state.taken = true;
    Frame::data(data)
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        if !state.rest.is_empty() {
            let rest = std::mem::take(&mut state.rest);
            return Poll::Ready(Some(Ok(slice(state, rest))));
        }
        let Some(inner) = state.body.as_mut() else {
            return Poll::Ready(Some(Err(
                "the client took nothing of the answer for the send timeout".into(),
            )));
        };
        let polled = Pin::new(inner).poll_frame(cx);
        state.upstream_turn = polled.is_pending();
        match polled {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(slice(state, data)))),
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.state);
        state.rest.is_empty() && state.body.as_ref().is_some_and(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.state);
        let inner = state
            .body
            .as_ref()
            .map_or_else(SizeHint::default, B::size_hint);
        held_before(inner, state.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An upstream's answer that always has more ready, or never any yet; says when it is
    /// dropped.
    struct Upstream {
        ready: bool,
        dropped: Arc<AtomicBool>,
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    impl Body for Upstream {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.ready {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            } else {
                Poll::Pending
            }
        }
    }

    /// An [`Upstream`] watched with a patience of 10 s, and whether it was dropped.
    fn watched(ready: bool) -> (Watched<Upstream>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let upstream = Upstream {
            ready,
            dropped: dropped.clone(),
        };
        (Watched::new(upstream, Duration::from_secs(10)), dropped)
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_slow_to_send_more_is_waited_for() {
        let (mut watched, dropped) = watched(false);
        let waited = tokio::time::timeout(Duration::from_secs(35), watched.frame()).await;
        assert!(waited.is_err(), "nothing came");
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the client was not the one waiting"
        );
    }

    #[tokio::test]
    async fn long_frames_are_passed_on_in_slices() {
        let long = Bytes::from(vec![7u8; 3 * SLICE + 5]);
        let mut watched = Watched::new(
            http_body_util::Full::new(long.clone()),
            Duration::from_secs(10),
        );
        assert_eq!(watched.size_hint().exact(), Some(long.len() as u64));
        let mut slices = Vec::new();
        while let Some(frame) = watched.frame().await {
            slices.push(frame.unwrap().into_data().unwrap());
        }
        let sizes: Vec<usize> = slices.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [SLICE, SLICE, SLICE, 5]);
        assert_eq!(slices.concat(), long);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_its_client_stops_taking_is_dropped_after_a_whole_period() {
        let (mut watched, dropped) = watched(true);
        // Taken now and then, less than a period apart: kept.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert!(watched.frame().await.unwrap().is_ok());
        }
        assert!(!dropped.load(Ordering::SeqCst));
        // Then nothing taken for a whole period (from 20 s to 30 s).
        tokio::time::sleep(Duration::from_secs(13)).await;
        assert!(dropped.load(Ordering::SeqCst), "given up on");
        let ended = watched.frame().await.unwrap().unwrap_err();
        assert!(ended.to_string().contains("took nothing"), "{ended}");
    }
}
