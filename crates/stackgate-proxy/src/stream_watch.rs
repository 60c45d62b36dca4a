//! An answer passed on over HTTP/2 whose client has stopped taking it.
//!
//! Over HTTP/1 the send timeout cuts off a client that takes nothing of an answer: the
//! connection's writes stall. Over HTTP/2 a client can keep one stream's window shut while its
//! connection stays busy with others, and hyper then never asks for more of that answer, so an
//! answer still being read from its upstream would keep the upstream's connection for as long
//! as the client liked. Such an answer is watched: once its client has taken nothing of it for
//! the send timeout (between one and two periods of it), it is dropped, which closes its
//! upstream connection. The stream itself stays open until the client ends it or its
//! connection (hyper asks a stream's body for nothing while the stream has no window); should
//! the client open the window again, the stream ends in an error.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `B`, dropped once its client has taken nothing of it for a while.
pub(crate) struct Watched<B> {
    shared: Arc<Shared<B>>,
}

struct Shared<B> {
    /// `None` once given up on.
    body: Mutex<Option<B>>,
    /// Whether the client took a frame since the watch last looked.
    taken: AtomicBool,
}

impl<B> Shared<B> {
    /// The body. A panic while it was held (none is known) leaves it as it was.
    fn lock(&self) -> MutexGuard<'_, Option<B>> {
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Send + 'static> Watched<B> {
    /// Watches `body`, giving up on it once a whole `patience` has passed with nothing taken.
    /// Must be called within the runtime.
    pub(crate) fn new(body: B, patience: Duration) -> Self {
        let shared = Arc::new(Shared {
            body: Mutex::new(Some(body)),
            taken: AtomicBool::new(false),
        });
        let watched = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + patience;
            let mut every = tokio::time::interval_at(start, patience);
            loop {
                every.tick().await;
                // Gone: the answer was passed on whole, or the stream ended otherwise.
                let Some(shared) = watched.upgrade() else {
                    return;
                };
                if !shared.taken.swap(false, Ordering::Relaxed) {
                    let given_up = shared.lock().take();
                    if given_up.is_some() {
                        tracing::info!(
                            waited = ?patience,
                            "an HTTP/2 client took nothing of an answer: dropping it"
                        );
                    }
                    return;
                }
            }
        });
        Watched { shared }
    }
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
        let mut body = self.shared.lock();
        let Some(inner) = body.as_mut() else {
            return Poll::Ready(Some(Err(
                "the client took nothing of the answer for the send timeout".into(),
            )));
        };
        let frame = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = frame {
            self.shared.taken.store(true, Ordering::Relaxed);
        }
        frame.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.shared.lock().as_ref().is_some_and(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.shared
            .lock()
            .as_ref()
            .map_or_else(SizeHint::default, B::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// An answer that always has more, and says when it is dropped.
    struct Endless(Arc<AtomicBool>);

    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_its_client_stops_taking_is_dropped_after_a_whole_period() {
        let dropped = Arc::new(AtomicBool::new(false));
        let mut watched = Watched::new(Endless(dropped.clone()), Duration::from_secs(10));
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
