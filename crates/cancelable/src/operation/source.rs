//! What cancels an operation besides its parents: [`CancelSource`], the [`Source`] pair of a
//! future and a reason, and the [`SourceFuture`] the operation polls for it.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::reason::CancelReason;

/// Anything [`Operation::cancel_on`](crate::Operation::cancel_on) accepts: it becomes a future
/// whose output is the reason the operation is cancelled with.
///
/// Two kinds of values are sources:
/// * a [`Source`]: any future and the reason it cancels with when it completes (the runtime
///   adapters' `sources::timeout(d)` and friends return one);
/// * any future whose output is a [`CancelReason`]: it cancels with the reason it yields, so it
///   can choose one when it fires.
///
/// ```
/// use cancelable::{CancelKind, CancelReason, CancellationToken, Operation, Source};
/// use futures_lite::future;
///
/// let disk_full = CancellationToken::new();
/// let run = Operation::new("copy")
///     // A future and a fixed reason.
///     .cancel_on(Source::new(future::pending::<()>(), CancelReason::timeout()))
///     // A future that yields its own reason.
///     .cancel_on({
///         let disk_full = disk_full.clone();
///         async move {
///             disk_full.cancelled().await;
///             CancelReason::condition().with_message("disk full")
///         }
///     })
///     .run(|_| future::pending::<Result<(), _>>());
/// disk_full.cancel();
/// let err = future::block_on(run).unwrap_err();
/// assert_eq!(err.reason().kind(), CancelKind::Condition);
/// assert_eq!(err.reason().message(), Some("disk full"));
/// ```
pub trait CancelSource {
    /// The future the operation polls; it completes with the reason to cancel with.
    type Future: Future<Output = CancelReason>;

    /// Turns the source into the future the operation polls.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelSource, Source};
    ///
    /// let fired = futures_lite::future::block_on(Source::new(async {}, CancelKind::Timeout).into_cancel_future());
    /// assert_eq!(fired.kind(), CancelKind::Timeout);
    /// ```
    fn into_cancel_future(self) -> Self::Future;
}

impl<F: Future<Output = CancelReason>> CancelSource for F {
    type Future = F;

    fn into_cancel_future(self) -> F {
        self
    }
}

/// A future that cancels an operation when it completes (its output is ignored), and the reason
/// it cancels with.
///
/// ```
/// use cancelable::{CancelKind, CancelReason, Operation, Source};
/// use futures_lite::future;
///
/// let ready = Source::new(async {}, CancelReason::timeout().with_message("deadline of 0s elapsed"));
/// assert_eq!(ready.reason.kind(), CancelKind::Timeout);
/// let err = future::block_on(Operation::new("t").cancel_on(ready).run(|_| future::pending::<Result<(), _>>()))
///     .unwrap_err();
/// assert_eq!(err.reason().message(), Some("deadline of 0s elapsed"));
/// ```
pub struct Source<F> {
    /// Completes when the operation should be cancelled.
    pub future: F,
    /// The reason to cancel with.
    pub reason: CancelReason,
}

impl<F> Source<F> {
    /// `future` cancels with `reason` when it completes.
    ///
    /// ```
    /// use cancelable::{CancelKind, Source};
    /// let source = Source::new(async {}, CancelKind::Condition);
    /// assert_eq!(source.reason.kind(), CancelKind::Condition);
    /// ```
    pub fn new(future: F, reason: impl Into<CancelReason>) -> Self {
        Self {
            future,
            reason: reason.into(),
        }
    }
}

impl<F> fmt::Debug for Source<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<F: Future> CancelSource for Source<F> {
    type Future = SourceFuture<F>;

    fn into_cancel_future(self) -> SourceFuture<F> {
        SourceFuture {
            future: self.future,
            reason: Some(self.reason),
        }
    }
}

pin_project! {
    /// The future of a [`Source`]: completes with the source's reason when its future completes.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelSource, Source};
    /// let fire = Source::new(async {}, CancelKind::Signal).into_cancel_future();
    /// assert_eq!(futures_lite::future::block_on(fire).kind(), CancelKind::Signal);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct SourceFuture<F> {
        #[pin]
        future: F,
        reason: Option<CancelReason>,
    }
}

impl<F: Future> Future for SourceFuture<F> {
    type Output = CancelReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CancelReason> {
        let this = self.project();
        match this.future.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(
                this.reason
                    .take()
                    .expect("`SourceFuture` polled after completion"),
            ),
        }
    }
}

impl<F> fmt::Debug for SourceFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFuture")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}
