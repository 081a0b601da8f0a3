//! Waiting for cancelation: the `cancelled()` futures, `run_until_cancelled`, blocking waits.
//!
//! All of them go through [`Waiter`]: check the state; if live, listen on the node's event, then
//! announce the waiter with a read-modify-write of the state (tree invariant 7), which either
//! reports the cancelation that raced in or guarantees a notification.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use event_listener::EventListener;
use pin_project_lite::pin_project;

use crate::token::CancellationToken;
use crate::tree::Node;

/// The waiting half shared by every future here: a listener, created on the first pending poll.
#[derive(Default)]
pub(crate) struct Waiter {
    listener: Option<EventListener>,
}

impl Waiter {
    /// Ready once `node` is cancelled; otherwise registers `cx`'s waker.
    pub(crate) fn poll(&mut self, node: &Node, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if node.is_cancelled() {
                self.listener = None;
                return Poll::Ready(());
            }
            match &mut self.listener {
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
                None => {
                    let listener = node.event().listen();
                    if node.announce_waiter() {
                        return Poll::Ready(());
                    }
                    self.listener = Some(listener);
                }
            }
        }
    }
}

/// Blocks the thread until `node` is cancelled or `deadline` passes; `true` if cancelled.
#[cfg(feature = "std")]
pub(crate) fn wait_blocking(node: &Node, deadline: Option<std::time::Instant>) -> bool {
    use event_listener::Listener;
    loop {
        if node.is_cancelled() {
            return true;
        }
        let listener = node.event().listen();
        if node.announce_waiter() {
            return true;
        }
        match deadline {
            None => listener.wait(),
            Some(deadline) => {
                if listener.wait_deadline(deadline).is_none() {
                    return node.is_cancelled();
                }
            }
        }
    }
}

/// The future of [`CancellationToken::cancelled`]: resolves once the token is cancelled.
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// let waiter = token.clone();
/// let worker = std::thread::spawn(move || futures_lite::future::block_on(waiter.cancelled()));
/// token.cancel();
/// worker.join().unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WaitForCancellationFuture<'a> {
    token: &'a CancellationToken,
    waiter: Waiter,
}

impl<'a> WaitForCancellationFuture<'a> {
    pub(crate) fn new(token: &'a CancellationToken) -> Self {
        Self {
            token,
            waiter: Waiter::default(),
        }
    }
}

impl Future for WaitForCancellationFuture<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.waiter.poll(this.token.node(), cx)
    }
}

impl fmt::Debug for WaitForCancellationFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellationFuture")
            .field("token", self.token)
            .finish()
    }
}

/// The future of [`CancellationToken::cancelled_owned`]: `'static + Send`, for spawning.
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// let waiter = token.clone().cancelled_owned();
/// let worker = std::thread::spawn(move || futures_lite::future::block_on(waiter));
/// token.cancel();
/// worker.join().unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WaitForCancellationFutureOwned {
    token: CancellationToken,
    waiter: Waiter,
}

impl WaitForCancellationFutureOwned {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self {
            token,
            waiter: Waiter::default(),
        }
    }
}

impl Future for WaitForCancellationFutureOwned {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.waiter.poll(this.token.node(), cx)
    }
}

impl fmt::Debug for WaitForCancellationFutureOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellationFutureOwned")
            .field("token", &self.token)
            .finish()
    }
}

/// Polls `future` unless `node` is cancelled: `Some(output)` if it finishes first, `None` if the
/// cancelation comes first (then `future` is not polled again).
///
/// The future is polled before the waiter registers, so one that finishes on its first poll
/// never allocates a listener.
pub(crate) fn race<F: Future>(
    node: &Node,
    waiter: &mut Waiter,
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Option<F::Output>> {
    if node.is_cancelled() {
        return Poll::Ready(None);
    }
    if let Poll::Ready(output) = future.poll(cx) {
        return Poll::Ready(Some(output));
    }
    waiter.poll(node, cx).map(|()| None)
}

pin_project! {
    /// The future of [`CancellationToken::run_until_cancelled`].
    ///
    /// ```
    /// use cancelable::CancellationToken;
    /// use futures_lite::future;
    ///
    /// let token = CancellationToken::new();
    /// assert_eq!(future::block_on(token.run_until_cancelled(async { 7 })), Some(7));
    /// token.cancel();
    /// assert_eq!(future::block_on(token.run_until_cancelled(future::pending::<()>())), None);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct RunUntilCancelledFuture<'a, F> {
        token: &'a CancellationToken,
        waiter: Waiter,
        #[pin]
        future: F,
    }
}

impl<'a, F> RunUntilCancelledFuture<'a, F> {
    pub(crate) fn new(token: &'a CancellationToken, future: F) -> Self {
        Self {
            token,
            waiter: Waiter::default(),
            future,
        }
    }
}

impl<F: Future> Future for RunUntilCancelledFuture<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        race(this.token.node(), this.waiter, this.future, cx)
    }
}

impl<F> fmt::Debug for RunUntilCancelledFuture<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledFuture")
            .field("token", self.token)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`CancellationToken::run_until_cancelled_owned`]: owns its token.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// let work = token.clone().run_until_cancelled_owned(async { "done" });
    /// assert_eq!(futures_lite::future::block_on(work), Some("done"));
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct RunUntilCancelledFutureOwned<F> {
        token: CancellationToken,
        waiter: Waiter,
        #[pin]
        future: F,
    }
}

impl<F> RunUntilCancelledFutureOwned<F> {
    pub(crate) fn new(token: CancellationToken, future: F) -> Self {
        Self {
            token,
            waiter: Waiter::default(),
            future,
        }
    }
}

impl<F: Future> Future for RunUntilCancelledFutureOwned<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        race(this.token.node(), this.waiter, this.future, cx)
    }
}

impl<F> fmt::Debug for RunUntilCancelledFutureOwned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledFutureOwned")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}
