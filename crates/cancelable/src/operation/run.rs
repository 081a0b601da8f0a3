//! The futures of [`Operation::run`](crate::Operation::run) and
//! [`Operation::try_run`](crate::Operation::try_run), and [`OperationError`].

use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::reason::{CancelReason, Cancelled};
use crate::wait::WaitForCancellationFutureOwned;

use super::context::{OperationContext, Shared};
use super::flavor::{BoxedSource, Flavor, Sendable};
use super::status::OperationStatus;

/// How the driver ended: the body's output, or the operation's cancelation.
enum Ended<O> {
    Finished(O),
    Cancelled(Cancelled),
}

pin_project! {
    /// The body: its closure until the first poll calls it (inside the operation, so
    /// `current()` and the recorded parent are those of where it runs), then its future.
    #[project = BodyProj]
    enum Body<F, Fut> {
        NotStarted { start: Option<F> },
        Started { #[pin] future: Fut },
        Ended,
    }
}

impl<F, Fut> Body<F, Fut> {
    fn has_ended(&self) -> bool {
        matches!(self, Body::Ended)
    }
}

pin_project! {
    /// Drives one body: starts the operation, polls its sources, drops the body at cancelation
    /// (unless shielded), records panics and early drops. `Run`/`TryRun` record the outcome.
    struct Driver<F, Fut, K: Flavor> {
        cx: OperationContext<K>,
        #[pin]
        body: Body<F, Fut>,
        sources: Vec<BoxedSource<K>>,
        // Made when the body first waits: a body that is ready at once never needs it.
        #[pin]
        waiter: Option<WaitForCancellationFutureOwned>,
        parent: ParentLink,
        started: bool,
    }

    impl<F, Fut, K: Flavor> PinnedDrop for Driver<F, Fut, K> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if !this.body.has_ended() {
                // Dropped before it ended: whoever holds a clone of the token learns it is over.
                this.body.set(Body::Ended);
                // SAFETY: the driver owns the operation's transitions, and its drop cannot run
                // during its own poll.
                unsafe {
                    Shared::finish_cancelled(
                        &this.cx.shared,
                        CancelReason::manual().with_message("the operation's future was dropped before it finished"),
                    )
                };
            }
        }
    }
}

impl<F, Fut, K> Driver<F, Fut, K>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    fn new(cx: OperationContext<K>, start: F, sources: Vec<BoxedSource<K>>) -> Self {
        Self {
            waiter: None,
            cx,
            body: Body::NotStarted { start: Some(start) },
            sources,
            parent: ParentLink::new(),
            started: false,
        }
    }

    fn poll_drive(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<Fut::Output>> {
        let mut this = self.project();
        if this.body.has_ended() {
            panic!("an operation's future polled after completion");
        }
        let shared = &this.cx.shared;
        if !*this.started {
            *this.started = true;
            let (parent_id, parent) = innermost().unzip();
            // SAFETY: the operation's transitions are made by its driver only, here and in
            // `Run`/`TryRun`'s `poll` (which this poll is part of) and the driver's drop.
            if unsafe { shared.start(parent_id) } {
                this.parent.link(parent.expect("recorded with its id"));
            }
        }
        if shared.token.is_cancelled() {
            // The first cancelation wins; the sources cannot change anything any more.
            this.sources.clear();
        } else {
            if let Some(reason) = this.parent.poll_cancelled(cx) {
                shared.token.cancel_with(reason);
            }
            if !this.sources.is_empty() {
                this.sources
                    .retain_mut(|source| match source.as_mut().poll(cx) {
                        Poll::Pending => true,
                        Poll::Ready(reason) => {
                            shared.token.cancel_with(reason);
                            false
                        }
                    });
            }
        }
        if !shared.must_stop() {
            if let Poll::Ready(output) = poll_body(this.cx, this.body.as_mut(), cx) {
                this.body.set(Body::Ended);
                this.sources.clear();
                return Poll::Ready(Ended::Finished(output));
            }
            // Register for the cancelation; a cancel racing with the body shows up here.
            if !shared.token.is_cancelled() {
                let mut waiter = this.waiter.as_mut();
                if waiter.is_none() {
                    waiter.set(Some(shared.token.clone().cancelled_owned()));
                }
                if let Some(waiter) = waiter.as_pin_mut() {
                    let _ = waiter.poll(cx);
                }
            }
            if !shared.must_stop() {
                // Running, or cancelled but shielded: the shield's own wake-ups drive it on.
                return Poll::Pending;
            }
        }
        this.body.set(Body::Ended);
        this.sources.clear();
        let reason = shared.token.reason().unwrap_or_default();
        // SAFETY: in the driver's poll (see `start` above).
        unsafe {
            Shared::finish(
                shared,
                OperationStatus::Cancelled,
                Some(reason.clone()),
                None,
            )
        };
        Poll::Ready(Ended::Cancelled(Cancelled::new(reason)))
    }
}

impl<F, Fut, K: Flavor> Driver<F, Fut, K> {
    /// Records the operation's end (see [`Shared::finish`](super::context::Shared::finish)).
    fn finish(
        self: Pin<&mut Self>,
        status: OperationStatus,
        reason: Option<CancelReason>,
        error: Option<alloc::string::String>,
    ) -> bool {
        // SAFETY: only the driver changes its operation's status, through `&mut` (here pinned),
        // so no other change runs at the same time.
        unsafe { Shared::finish(&self.cx.shared, status, reason, error) }
    }

    /// Records the operation's cancelation (see
    /// [`Shared::finish_cancelled`](super::context::Shared::finish_cancelled)).
    fn finish_cancelled(self: Pin<&mut Self>, fallback: CancelReason) -> Cancelled {
        // SAFETY: as in `finish`.
        unsafe { Shared::finish_cancelled(&self.cx.shared, fallback) }
    }
}

/// Calls the body's closure if this is its first poll, then polls its future.
#[inline]
fn start_and_poll<F, Fut, K>(
    op: &OperationContext<K>,
    mut body: Pin<&mut Body<F, Fut>>,
    cx: &mut Context<'_>,
) -> Poll<Fut::Output>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    if let BodyProj::NotStarted { start } = body.as_mut().project() {
        let start = start.take().expect("a body's closure is called once");
        body.set(Body::Started {
            future: start(op.clone()),
        });
    }
    match body.project() {
        BodyProj::Started { future } => future.poll(cx),
        _ => unreachable!("the body was started above"),
    }
}

/// One poll of the body with `current()` set and, with `std`, a panic recorded as `Failed`
/// before it resumes.
#[cfg(feature = "std")]
fn poll_body<F, Fut, K>(
    op: &OperationContext<K>,
    body: Pin<&mut Body<F, Fut>>,
    cx: &mut Context<'_>,
) -> Poll<Fut::Output>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::current::within(op, || {
            #[cfg(feature = "tracing")]
            let _span = op.shared.span.enter();
            start_and_poll(op, body, cx)
        })
    }));
    match polled {
        Ok(poll) => poll,
        Err(payload) => {
            let message = panic_message(&*payload);
            // SAFETY: in the driver's poll, which owns the operation's transitions.
            unsafe { Shared::finish(&op.shared, OperationStatus::Failed, None, Some(message)) };
            std::panic::resume_unwind(payload)
        }
    }
}

#[cfg(feature = "std")]
fn panic_message(payload: &(dyn core::any::Any + Send)) -> alloc::string::String {
    let text = payload.downcast_ref::<&str>().copied().or_else(|| {
        payload
            .downcast_ref::<alloc::string::String>()
            .map(|s| s.as_str())
    });
    match text {
        Some(text) => alloc::format!("panicked: {text}"),
        None => "panicked".into(),
    }
}

#[cfg(not(feature = "std"))]
fn poll_body<F, Fut, K>(
    op: &OperationContext<K>,
    body: Pin<&mut Body<F, Fut>>,
    cx: &mut Context<'_>,
) -> Poll<Fut::Output>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    let _polling = super::context::Polling::enter(&op.shared.body_polls);
    #[cfg(feature = "tracing")]
    let _span = op.shared.span.enter();
    start_and_poll(op, body, cx)
}

/// Without `std` there is no `current()`: an operation's parents are the ones it was built
/// with, so there is no operation polling it to link to at the first poll.
#[cfg(not(feature = "std"))]
fn innermost() -> Option<(super::status::OperationId, crate::CancellationToken)> {
    None
}

#[cfg(not(feature = "std"))]
struct ParentLink;

#[cfg(not(feature = "std"))]
impl ParentLink {
    fn new() -> Self {
        ParentLink
    }

    fn link(&mut self, _: crate::CancellationToken) {}

    fn poll_cancelled(&mut self, _: &mut Context<'_>) -> Option<CancelReason> {
        None
    }
}

#[cfg(feature = "std")]
use super::current::{ParentLink, innermost};

pin_project! {
    /// The future of [`Operation::run`](crate::Operation::run).
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<F, Fut, K: Flavor = Sendable> {
        #[pin]
        driver: Driver<F, Fut, K>,
    }
}

impl<F, Fut, K> Run<F, Fut, K>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    pub(crate) fn new(cx: OperationContext<K>, body: F, sources: Vec<BoxedSource<K>>) -> Self {
        Self {
            driver: Driver::new(cx, body, sources),
        }
    }

    /// The operation's context, for watching it from outside before or while it runs.
    ///
    /// ```
    /// use cancelable::{Operation, OperationStatus};
    /// let run = Operation::new("t").run(|_| async { Ok(()) });
    /// let cx = run.context().clone();
    /// assert_eq!(cx.status(), OperationStatus::Pending);
    /// futures_lite::future::block_on(run).unwrap();
    /// assert_eq!(cx.status(), OperationStatus::Completed);
    /// ```
    pub fn context(&self) -> &OperationContext<K> {
        &self.driver.cx
    }
}

impl<T, F, Fut, K> Future for Run<F, Fut, K>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future<Output = Result<T, Cancelled>>,
    K: Flavor,
{
    type Output = Result<T, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = this.driver.as_mut().poll_drive(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ended::Cancelled(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ended::Finished(Ok(value))) => {
                this.driver.finish(OperationStatus::Completed, None, None);
                Poll::Ready(Ok(value))
            }
            // `cx.check()?` and friends: record it as the operation's cancelation.
            Poll::Ready(Ended::Finished(Err(err))) => {
                Poll::Ready(Err(this.driver.finish_cancelled(err.into_reason())))
            }
        }
    }
}

impl<F, Fut, K: Flavor> fmt::Debug for Run<F, Fut, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("operation", &self.driver.cx)
            .finish()
    }
}

pin_project! {
    /// The future of [`Operation::try_run`](crate::Operation::try_run).
    #[must_use = "futures do nothing unless polled"]
    pub struct TryRun<F, Fut, K: Flavor = Sendable> {
        #[pin]
        driver: Driver<F, Fut, K>,
    }
}

impl<F, Fut, K> TryRun<F, Fut, K>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future,
    K: Flavor,
{
    pub(crate) fn new(cx: OperationContext<K>, body: F, sources: Vec<BoxedSource<K>>) -> Self {
        Self {
            driver: Driver::new(cx, body, sources),
        }
    }

    /// The operation's context, for watching it from outside before or while it runs.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let run = Operation::new("t").try_run(|_| async { Ok::<_, std::io::Error>(()) });
    /// assert_eq!(run.context().name(), "t");
    /// ```
    pub fn context(&self) -> &OperationContext<K> {
        &self.driver.cx
    }
}

impl<T, E, F, Fut, K: Flavor> Future for TryRun<F, Fut, K>
where
    F: FnOnce(OperationContext<K>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    type Output = Result<T, OperationError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = this.driver.as_mut().poll_drive(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ended::Cancelled(err)) => Poll::Ready(Err(OperationError::Cancelled(err))),
            Poll::Ready(Ended::Finished(Ok(value))) => {
                this.driver.finish(OperationStatus::Completed, None, None);
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Ended::Finished(Err(err))) => {
                let token = &this.driver.cx.shared.token;
                if token.is_cancelled() {
                    // An error after the cancelation is (nearly always) that cancelation seen
                    // through `?` in the body's own error type.
                    let reason = token.reason().unwrap_or_default();
                    return Poll::Ready(Err(OperationError::Cancelled(
                        this.driver.finish_cancelled(reason),
                    )));
                }
                this.driver
                    .finish(OperationStatus::Failed, None, Some(err.to_string()));
                Poll::Ready(Err(OperationError::Failed(err)))
            }
        }
    }
}

impl<F, Fut, K: Flavor> fmt::Debug for TryRun<F, Fut, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryRun")
            .field("operation", &self.driver.cx)
            .finish()
    }
}

/// Why [`Operation::try_run`](crate::Operation::try_run) did not give a value.
///
/// ```
/// use cancelable::{Operation, OperationError, OperationStatus};
/// use futures_lite::future;
///
/// let run = Operation::new("parse").try_run(|_| async { "x1".parse::<u32>() });
/// let cx = run.context().clone();
/// let err = future::block_on(run).unwrap_err();
/// assert!(matches!(err, OperationError::Failed(_)));
/// assert_eq!(err.to_string(), "operation failed: invalid digit found in string");
/// assert_eq!(cx.status(), OperationStatus::Failed);
/// assert_eq!(cx.snapshot().error.as_deref(), Some("invalid digit found in string"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationError<E> {
    /// The operation was cancelled; the body was dropped.
    Cancelled(Cancelled),
    /// The body returned this error; the operation is recorded `Failed` with its text.
    Failed(E),
}

impl<E> OperationError<E> {
    /// The body's error, if that is what ended the operation.
    ///
    /// ```
    /// use cancelable::{CancelKind, Cancelled, OperationError};
    /// assert_eq!(OperationError::Failed(3).into_failed(), Some(3));
    /// assert_eq!(OperationError::<u8>::Cancelled(Cancelled::new(CancelKind::Manual)).into_failed(), None);
    /// ```
    pub fn into_failed(self) -> Option<E> {
        match self {
            OperationError::Failed(err) => Some(err),
            OperationError::Cancelled(_) => None,
        }
    }

    /// The cancelation, if that is what ended the operation.
    ///
    /// ```
    /// use cancelable::{CancelKind, Cancelled, OperationError};
    /// let err = OperationError::<u8>::Cancelled(Cancelled::new(CancelKind::Timeout));
    /// assert_eq!(err.cancelled().unwrap().reason().kind(), CancelKind::Timeout);
    /// ```
    pub fn cancelled(&self) -> Option<&Cancelled> {
        match self {
            OperationError::Cancelled(err) => Some(err),
            OperationError::Failed(_) => None,
        }
    }
}

impl<E> From<Cancelled> for OperationError<E> {
    fn from(err: Cancelled) -> Self {
        OperationError::Cancelled(err)
    }
}

impl<E: fmt::Display> fmt::Display for OperationError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperationError::Cancelled(err) => fmt::Display::fmt(err, f),
            OperationError::Failed(err) => write!(f, "operation failed: {err}"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for OperationError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        // `Display` already shows the error's own text, so the chain goes on from its source.
        match self {
            OperationError::Cancelled(_) => None,
            OperationError::Failed(err) => err.source(),
        }
    }
}
