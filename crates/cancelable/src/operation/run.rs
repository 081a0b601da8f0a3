//! The futures of [`Operation::run`](crate::Operation::run) and
//! [`Operation::try_run`](crate::Operation::try_run), and [`OperationError`].

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::reason::{CancelReason, Cancelled};
use crate::wait::WaitForCancellationFutureOwned;

use super::context::OperationContext;
use super::status::OperationStatus;

/// A `cancel_on` source as the operation keeps it: a future yielding the reason to cancel with.
pub(crate) type BoxedSource = Pin<Box<dyn Future<Output = CancelReason> + Send>>;

/// How the driver ended: the body's output, or the operation's cancelation.
enum Ended<O> {
    Finished(O),
    Cancelled(Cancelled),
}

pin_project! {
    /// Drives one body: starts the operation, polls its sources, drops the body at cancelation
    /// (unless shielded), records panics and early drops. `Run`/`TryRun` record the outcome.
    struct Driver<Fut> {
        cx: OperationContext,
        #[pin]
        body: Option<Fut>,
        sources: Vec<BoxedSource>,
        #[pin]
        waiter: WaitForCancellationFutureOwned,
        started: bool,
    }

    impl<Fut> PinnedDrop for Driver<Fut> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.body.is_some() {
                // Dropped before it ended: whoever holds a clone of the token learns it is over.
                this.body.set(None);
                this.cx.shared.finish_cancelled(
                    CancelReason::manual().with_message("the operation's future was dropped before it finished"),
                );
            }
        }
    }
}

impl<Fut: Future> Driver<Fut> {
    fn new(cx: OperationContext, body: Fut, sources: Vec<BoxedSource>) -> Self {
        Self {
            waiter: cx.token.clone().cancelled_owned(),
            cx,
            body: Some(body),
            sources,
            started: false,
        }
    }

    fn poll_drive(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<Fut::Output>> {
        let mut this = self.project();
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            panic!("an operation's future polled after completion");
        };
        let shared = &this.cx.shared;
        if !*this.started {
            *this.started = true;
            shared.start();
        }
        if shared.token.is_cancelled() {
            // The first cancelation wins; the sources cannot change anything any more.
            this.sources.clear();
        } else {
            this.sources
                .retain_mut(|source| match source.as_mut().poll(cx) {
                    Poll::Pending => true,
                    Poll::Ready(reason) => {
                        shared.token.cancel_with(reason);
                        false
                    }
                });
        }
        if !shared.must_stop() {
            if let Poll::Ready(output) = poll_body(this.cx, body, cx) {
                this.body.set(None);
                this.sources.clear();
                return Poll::Ready(Ended::Finished(output));
            }
            // Register for the cancelation; a cancel racing with the body shows up here.
            if !shared.token.is_cancelled() {
                let _ = this.waiter.poll(cx);
            }
            if !shared.must_stop() {
                // Running, or cancelled but shielded: the shield's own wake-ups drive it on.
                return Poll::Pending;
            }
        }
        this.body.set(None);
        this.sources.clear();
        let reason = shared.token.reason().unwrap_or_default();
        shared.finish(OperationStatus::Cancelled, Some(reason.clone()), None);
        Poll::Ready(Ended::Cancelled(Cancelled::new(reason)))
    }
}

/// One poll of the body with `current()` set and, with `std`, a panic recorded as `Failed`
/// before it resumes.
#[cfg(feature = "std")]
fn poll_body<Fut: Future>(
    op: &OperationContext,
    body: Pin<&mut Fut>,
    cx: &mut Context<'_>,
) -> Poll<Fut::Output> {
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _current = super::current::enter(op);
        #[cfg(feature = "tracing")]
        let _span = op.shared.span.enter();
        body.poll(cx)
    }));
    match polled {
        Ok(poll) => poll,
        Err(payload) => {
            let message = panic_message(&*payload);
            op.shared
                .finish(OperationStatus::Failed, None, Some(message));
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
fn poll_body<Fut: Future>(
    op: &OperationContext,
    body: Pin<&mut Fut>,
    cx: &mut Context<'_>,
) -> Poll<Fut::Output> {
    use crate::sync::Ordering;
    struct Polling<'a>(&'a crate::sync::AtomicUsize);
    impl Drop for Polling<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
    op.shared.body_polls.fetch_add(1, Ordering::AcqRel);
    let _polling = Polling(&op.shared.body_polls);
    #[cfg(feature = "tracing")]
    let _span = op.shared.span.enter();
    body.poll(cx)
}

pin_project! {
    /// The future of [`Operation::run`](crate::Operation::run).
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<Fut> {
        #[pin]
        driver: Driver<Fut>,
    }
}

impl<Fut: Future> Run<Fut> {
    pub(crate) fn new(cx: OperationContext, body: Fut, sources: Vec<BoxedSource>) -> Self {
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
    pub fn context(&self) -> &OperationContext {
        &self.driver.cx
    }
}

impl<T, Fut: Future<Output = Result<T, Cancelled>>> Future for Run<Fut> {
    type Output = Result<T, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = this.driver.as_mut().poll_drive(cx);
        let shared = &this.driver.cx.shared;
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ended::Cancelled(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ended::Finished(Ok(value))) => {
                shared.finish(OperationStatus::Completed, None, None);
                Poll::Ready(Ok(value))
            }
            // `cx.check()?` and friends: record it as the operation's cancelation.
            Poll::Ready(Ended::Finished(Err(err))) => {
                Poll::Ready(Err(shared.finish_cancelled(err.into_reason())))
            }
        }
    }
}

impl<Fut> fmt::Debug for Run<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("operation", &self.driver.cx)
            .finish()
    }
}

pin_project! {
    /// The future of [`Operation::try_run`](crate::Operation::try_run).
    #[must_use = "futures do nothing unless polled"]
    pub struct TryRun<Fut> {
        #[pin]
        driver: Driver<Fut>,
    }
}

impl<Fut: Future> TryRun<Fut> {
    pub(crate) fn new(cx: OperationContext, body: Fut, sources: Vec<BoxedSource>) -> Self {
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
    pub fn context(&self) -> &OperationContext {
        &self.driver.cx
    }
}

impl<T, E, Fut> Future for TryRun<Fut>
where
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    type Output = Result<T, OperationError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = this.driver.as_mut().poll_drive(cx);
        let shared = &this.driver.cx.shared;
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ended::Cancelled(err)) => Poll::Ready(Err(OperationError::Cancelled(err))),
            Poll::Ready(Ended::Finished(Ok(value))) => {
                shared.finish(OperationStatus::Completed, None, None);
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Ended::Finished(Err(err))) => {
                if shared.token.is_cancelled() {
                    // An error after the cancelation is (nearly always) that cancelation seen
                    // through `?` in the body's own error type.
                    let reason = shared.token.reason().unwrap_or_default();
                    return Poll::Ready(Err(OperationError::Cancelled(
                        shared.finish_cancelled(reason),
                    )));
                }
                shared.finish(OperationStatus::Failed, None, Some(err.to_string()));
                Poll::Ready(Err(OperationError::Failed(err)))
            }
        }
    }
}

impl<Fut> fmt::Debug for TryRun<Fut> {
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
