//! Adapters that bind a future or a stream to a token.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::reason::Cancelled;
use crate::token::CancellationToken;
use crate::tree::WaitEntry;
use crate::wait::{FutureFirst, check_then_poll};

/// Cancelation for any future.
///
/// ```
/// use cancelable::{CancelKind, CancellationToken, FutureExt};
/// use futures_lite::future;
///
/// let token = CancellationToken::new();
/// assert_eq!(future::block_on(async { 1 }.cancelable(&token)), Ok(1));
///
/// token.cancel_with(CancelKind::Shutdown);
/// let err = future::block_on(future::pending::<()>().cancelable(&token)).unwrap_err();
/// assert_eq!(err.reason().kind(), CancelKind::Shutdown);
/// assert_eq!(future::block_on(async { 1 }.with_cancellation_token(&token)), None);
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs the future until it finishes (`Ok`) or `token` is cancelled (`Err` with the
    /// reason). The token is checked before every poll: at cancelation the inner future is
    /// dropped at once, on the poll that sees it (without polling it again), so its resources
    /// are released even if the caller keeps the wrapper around.
    fn cancelable(self, token: &CancellationToken) -> Cancelable<Self> {
        Cancelable {
            token: token.clone(),
            waiter: WaitEntry::default(),
            future: Some(self),
        }
    }

    /// tokio-util's name and meaning: `Some(output)` if the future finishes first, `None` if
    /// `token` is cancelled first.
    ///
    /// The token is checked here, when the wrapper is made: if it is already cancelled the
    /// future is dropped at once and the output is `None`. After that the future is polled
    /// before the token, so a result that is ready on the poll that also sees a cancel is
    /// returned. See [`WithCancellationTokenFuture`].
    fn with_cancellation_token(
        self,
        token: &CancellationToken,
    ) -> WithCancellationTokenFuture<'_, Self> {
        WithCancellationTokenFuture {
            token,
            race: (!token.is_cancelled()).then(|| FutureFirst::new(self)),
        }
    }

    /// Like [`with_cancellation_token`](FutureExt::with_cancellation_token), owning the token.
    fn with_cancellation_token_owned(
        self,
        token: CancellationToken,
    ) -> WithCancellationTokenFutureOwned<Self> {
        WithCancellationTokenFutureOwned {
            race: (!token.is_cancelled()).then(|| FutureFirst::new(self)),
            token,
        }
    }
}

impl<F: Future> FutureExt for F {}

pin_project! {
    /// The future of [`FutureExt::cancelable`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancelable<F> {
        token: CancellationToken,
        #[pin]
        waiter: WaitEntry,
        #[pin]
        future: Option<F>,
    }
}

impl<F: Future> Future for Cancelable<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("`Cancelable` polled after completion");
        };
        match check_then_poll(this.token.node_ref(), this.waiter, future, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.future.set(None);
                Poll::Ready(result.ok_or_else(|| this.token.cancelled_error()))
            }
        }
    }
}

impl<F> fmt::Debug for Cancelable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelable")
            .field("token", &self.token)
            .field("finished", &self.future.is_none())
            .finish()
    }
}

pin_project! {
    /// The future of [`FutureExt::with_cancellation_token`], in tokio-util's order.
    ///
    /// Made on a cancelled token, it holds no future and resolves to `None`. Otherwise the
    /// future is polled before the token, so a result that is ready on the poll that also sees
    /// a cancel is returned; a cancel that comes while the future is pending gives `None`. The
    /// future is dropped with the wrapper (use [`FutureExt::cancelable`] to drop it at the
    /// cancel).
    ///
    /// ```
    /// use cancelable::{CancellationToken, FutureExt};
    /// use futures_lite::future;
    ///
    /// let token = CancellationToken::new();
    /// let work = async { 1 }.with_cancellation_token(&token);
    /// token.cancel(); // after the wrapper was made: the ready future still wins
    /// assert_eq!(future::block_on(work), Some(1));
    /// assert_eq!(future::block_on(async { 2 }.with_cancellation_token(&token)), None);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WithCancellationTokenFuture<'a, F> {
        token: &'a CancellationToken,
        #[pin]
        race: Option<FutureFirst<F>>,
    }
}

impl<F: Future> Future for WithCancellationTokenFuture<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.race.as_pin_mut() {
            Some(race) => race.poll_race(this.token.node_ref(), cx),
            None => Poll::Ready(None),
        }
    }
}

impl<F> fmt::Debug for WithCancellationTokenFuture<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCancellationTokenFuture")
            .field("token", self.token)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`FutureExt::with_cancellation_token_owned`]: owns its token, and polls
    /// in the same order as [`WithCancellationTokenFuture`].
    ///
    /// ```
    /// use cancelable::{CancellationToken, FutureExt};
    ///
    /// let token = CancellationToken::new();
    /// let work = async { "done" }.with_cancellation_token_owned(token.clone());
    /// assert_eq!(futures_lite::future::block_on(work), Some("done"));
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WithCancellationTokenFutureOwned<F> {
        token: CancellationToken,
        #[pin]
        race: Option<FutureFirst<F>>,
    }
}

impl<F: Future> Future for WithCancellationTokenFutureOwned<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.race.as_pin_mut() {
            Some(race) => race.poll_race(this.token.node_ref(), cx),
            None => Poll::Ready(None),
        }
    }
}

impl<F> fmt::Debug for WithCancellationTokenFutureOwned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCancellationTokenFutureOwned")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Cancelation for any [`Stream`].
///
/// ```
/// use cancelable::{CancellationToken, StreamExt as _};
/// use futures_lite::{StreamExt, future, stream};
///
/// let token = CancellationToken::new();
/// let mut numbers = stream::iter(1..).take_until_cancelled(&token);
/// future::block_on(async {
///     assert_eq!(numbers.next().await, Some(1));
///     token.cancel();
///     assert_eq!(numbers.next().await, None);
/// });
/// ```
pub trait StreamExt: Stream + Sized {
    /// Yields the stream's items until `token` is cancelled, then ends (and drops the stream).
    /// The token is checked before every item, so a stream that is always ready still stops.
    fn take_until_cancelled(self, token: &CancellationToken) -> TakeUntilCancelled<Self> {
        TakeUntilCancelled {
            token: token.clone(),
            waiter: None,
            stream: Some(self),
        }
    }
}

impl<S: Stream> StreamExt for S {}

pin_project! {
    /// The stream of [`StreamExt::take_until_cancelled`].
    ///
    /// Unlike the futures of this crate it is `Unpin` when the stream is, so `.next().await`
    /// works without pinning: its waiter is boxed the first time the stream is pending, once
    /// for the stream's whole life.
    #[must_use = "streams do nothing unless polled"]
    pub struct TakeUntilCancelled<S> {
        token: CancellationToken,
        waiter: Option<Pin<Box<WaitEntry>>>,
        #[pin]
        stream: Option<S>,
    }
}

impl<S: Stream> Stream for TakeUntilCancelled<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let node = this.token.node_ref();
        let next = if node.node().is_cancelled() {
            Poll::Ready(None)
        } else {
            match stream.poll_next(cx) {
                Poll::Ready(item) => Poll::Ready(item),
                Poll::Pending => this
                    .waiter
                    .get_or_insert_with(|| Box::pin(WaitEntry::default()))
                    .as_mut()
                    .poll_cancelled(node, cx)
                    .map(|()| None),
            }
        };
        if let Poll::Ready(None) = next {
            this.stream.set(None);
            *this.waiter = None;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            Some(stream) => (0, stream.size_hint().1),
            None => (0, Some(0)),
        }
    }
}

impl<S: Stream> FusedStream for TakeUntilCancelled<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}

impl<S> fmt::Debug for TakeUntilCancelled<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeUntilCancelled")
            .field("token", &self.token)
            .field("finished", &self.stream.is_none())
            .finish()
    }
}
