//! Waiting for cancelation: the `cancelled()` futures, `run_until_cancelled`, blocking waits.
//!
//! All of them go through a [`WaitEntry`] of the tree: an entry of the node's list that lives
//! inside the (pinned) future itself, so waiting on a live token allocates nothing.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::token::CancellationToken;
use crate::tree::{NodeRef, WaitEntry};

/// Polls `future` unless `node` is cancelled: `Some(output)` if it finishes first, `None` if the
/// cancelation comes first (then `future` is not polled again). The token is checked before
/// every poll, so a cancel seen on a poll wins even over a future that would be ready on it.
///
/// The future is polled before the waiter registers, so one that finishes on its first poll
/// never touches the node's lock.
pub(crate) fn check_then_poll<F: Future>(
    node: &NodeRef,
    waiter: Pin<&mut WaitEntry>,
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Option<F::Output>> {
    if node.node().is_cancelled() {
        return Poll::Ready(None);
    }
    if let Poll::Ready(output) = future.poll(cx) {
        return Poll::Ready(Some(output));
    }
    waiter.poll_cancelled(node, cx).map(|()| None)
}

pin_project! {
    /// A future raced against a token in tokio-util's order: the future is polled first and the
    /// token only while the future is pending, so a result that is ready on the poll that also
    /// sees a cancel is returned. Where the token is checked before the first poll is up to the
    /// owner (`run_until_cancelled` on the first poll, `with_cancellation_token` when made).
    ///
    /// The waiter comes first so that it is unlinked before the future is dropped: a future
    /// that cancels the token from its destructor wakes nobody.
    pub(crate) struct FutureFirst<F> {
        #[pin]
        waiter: WaitEntry,
        #[pin]
        future: F,
    }
}

impl<F: Future> FutureFirst<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            waiter: WaitEntry::default(),
            future,
        }
    }

    /// `Some(output)` once the future finishes, `None` once `node` is cancelled while the future
    /// is pending. A future ready on its first poll never touches the node's lock.
    pub(crate) fn poll_race(
        self: Pin<&mut Self>,
        node: &NodeRef,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        this.waiter.poll_cancelled(node, cx).map(|()| None)
    }
}

/// The poll of both `run_until_cancelled` futures: the token is checked once, on the first poll
/// (a cancelled token gives `None` without polling the future); after that the future is polled
/// first. The race, future and waiter, is dropped on the poll that returns.
fn poll_run_until_cancelled<F: Future>(
    node: &NodeRef,
    started: &mut bool,
    mut race: Pin<&mut Option<FutureFirst<F>>>,
    cx: &mut Context<'_>,
) -> Poll<Option<F::Output>> {
    let Some(running) = race.as_mut().as_pin_mut() else {
        panic!("`run_until_cancelled` future polled after completion");
    };
    let output = if !*started && node.node().is_cancelled() {
        None
    } else {
        *started = true;
        match running.poll_race(node, cx) {
            Poll::Ready(output) => output,
            Poll::Pending => return Poll::Pending,
        }
    };
    race.set(None);
    Poll::Ready(output)
}

/// Blocks the thread until `node` is cancelled or `deadline` passes; `true` if cancelled.
#[cfg(feature = "std")]
pub(crate) fn wait_blocking(node: &NodeRef, deadline: Option<std::time::Instant>) -> bool {
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::thread::{self, Thread};

    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    if node.node().is_cancelled() {
        return true;
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut entry = core::pin::pin!(WaitEntry::default());
    loop {
        if entry.as_mut().poll_cancelled(node, &mut cx).is_ready() {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return node.node().is_cancelled();
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

pin_project! {
    /// The future of [`CancellationToken::cancelled`]: resolves once the token is cancelled.
    ///
    /// Waiting allocates nothing: the future itself is the entry the token's node links to.
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
        #[pin]
        waiter: WaitEntry,
    }
}

impl<'a> WaitForCancellationFuture<'a> {
    pub(crate) fn new(token: &'a CancellationToken) -> Self {
        Self {
            token,
            waiter: WaitEntry::default(),
        }
    }
}

impl Future for WaitForCancellationFuture<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        this.waiter.poll_cancelled(this.token.node_ref(), cx)
    }
}

impl fmt::Debug for WaitForCancellationFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellationFuture")
            .field("token", self.token)
            .finish()
    }
}

pin_project! {
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
        #[pin]
        waiter: WaitEntry,
    }
}

impl WaitForCancellationFutureOwned {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self {
            token,
            waiter: WaitEntry::default(),
        }
    }
}

impl Future for WaitForCancellationFutureOwned {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        this.waiter.poll_cancelled(this.token.node_ref(), cx)
    }
}

impl fmt::Debug for WaitForCancellationFutureOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCancellationFutureOwned")
            .field("token", &self.token)
            .finish()
    }
}

pin_project! {
    /// The future of [`CancellationToken::run_until_cancelled`].
    ///
    /// The token is checked on the first poll: if it is cancelled then, the output is `None`
    /// and the future is never polled. After that the future is polled before the token, so a
    /// result that is ready on the poll that also sees a cancel is returned. The future is
    /// dropped on the poll that returns. This is tokio-util's order.
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
        started: bool,
        #[pin]
        race: Option<FutureFirst<F>>,
    }
}

impl<'a, F: Future> RunUntilCancelledFuture<'a, F> {
    pub(crate) fn new(token: &'a CancellationToken, future: F) -> Self {
        Self {
            token,
            started: false,
            race: Some(FutureFirst::new(future)),
        }
    }
}

impl<F: Future> Future for RunUntilCancelledFuture<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        poll_run_until_cancelled(this.token.node_ref(), this.started, this.race, cx)
    }
}

impl<F> fmt::Debug for RunUntilCancelledFuture<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledFuture")
            .field("token", self.token)
            .field("finished", &self.race.is_none())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`CancellationToken::run_until_cancelled_owned`]: owns its token, and
    /// polls in the same order as [`RunUntilCancelledFuture`].
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
        started: bool,
        #[pin]
        race: Option<FutureFirst<F>>,
    }
}

impl<F: Future> RunUntilCancelledFutureOwned<F> {
    pub(crate) fn new(token: CancellationToken, future: F) -> Self {
        Self {
            token,
            started: false,
            race: Some(FutureFirst::new(future)),
        }
    }
}

impl<F: Future> Future for RunUntilCancelledFutureOwned<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        poll_run_until_cancelled(this.token.node_ref(), this.started, this.race, cx)
    }
}

impl<F> fmt::Debug for RunUntilCancelledFutureOwned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledFutureOwned")
            .field("token", &self.token)
            .field("finished", &self.race.is_none())
            .finish_non_exhaustive()
    }
}
