//! A request body that gives up when the client stops sending: without it, a client that
//! announces a large upload and then sends a byte a minute holds a connection (and an upstream
//! request) open for as long as it likes. Same rule as nginx's `client_body_timeout`: the limit is
//! on the pause between two reads, not on the whole upload, so a 10 GiB upload on a slow line is
//! fine as long as it keeps moving.

use hyper::body::{Body, Frame, SizeHint};
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// The error a body ends with when the client paused longer than allowed.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of the request body for {0:?}")]
pub(crate) struct BodyIdle(Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    /// Armed only while the body waits for data, so a body nobody reads never times out.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> IdleTimeout<B> {
    pub(crate) fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: None,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.deadline = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let idle = this.idle;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(idle))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `err` (or what caused it) is a body that timed out this way.
pub(crate) fn caused_by_idle_body(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<BodyIdle>() {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;

    /// A body fed by the test, chunk by chunk, like a client on a slow line.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    fn trickle() -> (tokio::sync::mpsc::Sender<Bytes>, IdleTimeout<Fed>) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (tx, IdleTimeout::new(Fed(rx), Duration::from_secs(5)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_moving_is_never_cut() {
        let (tx, mut body) = trickle();
        let sender = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
        });
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            total += frame.unwrap().into_data().unwrap().len();
        }
        sender.await.unwrap();
        assert_eq!(total, 10, "40 s in all, never 5 s without a byte");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_limit_ends_the_body() {
        let (tx, mut body) = trickle();
        tx.send(Bytes::from_static(b"start")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(caused_by_idle_body(&*err), "{err}");
        drop(tx);
    }
}
