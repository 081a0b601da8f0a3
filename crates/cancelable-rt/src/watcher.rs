//! Background watchers that cancel a token later: after a time, once a condition holds, or
//! (in `signals`) when a signal arrives. Each holds only a weak handle and ends as soon as the
//! token is cancelled or dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cancelable::{CancelReason, CancellationToken, WeakCancellationToken};
use futures_lite::FutureExt as _;

use crate::timeout::timeout_reason;
use crate::{JoinHandle, Runtime};

/// The background task of `cancel_after`, `cancel_when`, `cancel_when_async` and
/// `cancel_on_signals`. It holds only a weak handle to the token and ends on its own as soon as
/// the token is cancelled (by anyone) or its last handle is dropped, releasing its timer or
/// signal handlers. Dropping the `Watcher` lets the task run on; awaiting it gives `true` if the
/// task cancelled the token, `false` if it ended because the token was cancelled or dropped
/// first.
///
/// ```
/// use std::time::Duration;
/// use cancelable::CancellationToken;
///
/// smol::block_on(async {
///     let token = CancellationToken::new();
///     let watcher = cancelable_smol::cancel_after(&token, Duration::from_secs(3600));
///     drop(token); // nobody can be cancelled any more: the timer task ends now
///     assert!(!watcher.await);
/// });
/// ```
pub struct Watcher<R: Runtime> {
    /// `None` when the token was already cancelled: nothing was spawned.
    task: Option<JoinHandle<R, bool>>,
}

impl<R: Runtime> Watcher<R> {
    /// Runs `watch` in the background, unless the token is already cancelled: then nothing
    /// is spawned at all (no task or timer survives an already-cancelled token).
    pub(crate) fn spawn<W>(
        token: &CancellationToken,
        watch: impl FnOnce(WeakCancellationToken) -> W,
    ) -> Self
    where
        W: Future<Output = bool> + Send + 'static,
    {
        if token.is_cancelled() {
            return Self { task: None };
        }
        let weak = token.downgrade();
        let released = weak.released();
        let watch = watch(weak);
        let task = R::spawn(
            async {
                released.await;
                false
            }
            .or(watch),
        );
        Self {
            task: Some(JoinHandle::new(task)),
        }
    }
}

impl<R: Runtime> Future for Watcher<R> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match self.task.as_mut() {
            None => Poll::Ready(false),
            Some(task) => Pin::new(task).poll(cx),
        }
    }
}

impl<R: Runtime> fmt::Debug for Watcher<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("spawned", &self.task.is_some())
            .finish()
    }
}

/// Cancels `token` with a `Timeout` reason (`"deadline of 3s elapsed"`) after `duration` on
/// `R`'s timers, unless it is cancelled or all its handles are dropped first: then the timer
/// task ends at once.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken};
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let request = CancellationToken::new();
///     let _timer = cancelable_rt::cancel_after::<SmolRuntime>(&request, Duration::from_millis(5));
///     request.cancelled().await;
///     assert_eq!(request.reason().unwrap().kind(), CancelKind::Timeout);
/// });
/// ```
pub fn cancel_after<R: Runtime>(token: &CancellationToken, duration: Duration) -> Watcher<R> {
    Watcher::spawn(token, |weak| async move {
        R::sleep(duration).await;
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(timeout_reason(duration)))
    })
}

/// Cancels `token` with a `Condition` reason once `predicate` returns `true`: checked at once,
/// then every `interval` on `R`'s timers. A panicking predicate is reported (`tracing::error!`
/// with the `tracing` feature, else standard error) and checking goes on. Checking stops when
/// the token is cancelled or all its handles are dropped.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken};
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let job = CancellationToken::new();
///     assert!(cancelable_rt::cancel_when::<SmolRuntime>(&job, || true, Duration::from_secs(1)).await);
///     assert_eq!(job.reason().unwrap().kind(), CancelKind::Condition);
/// });
/// ```
pub fn cancel_when<R: Runtime>(
    token: &CancellationToken,
    mut predicate: impl FnMut() -> bool + Send + 'static,
    interval: Duration,
) -> Watcher<R> {
    cancel_when_async::<R, _, _>(token, move || std::future::ready(predicate()), interval)
}

/// [`cancel_when`] with an async predicate (say, a health check over the network): the same
/// schedule, reason and panic reporting; a check still running when the token is cancelled or
/// dropped is dropped.
///
/// ```
/// use std::time::Duration;
/// use cancelable::CancellationToken;
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let job = CancellationToken::new();
///     let watcher = cancelable_rt::cancel_when_async::<SmolRuntime, _, _>(&job, || async { true }, Duration::from_secs(1));
///     assert!(watcher.await);
///     assert!(job.is_cancelled());
/// });
/// ```
pub fn cancel_when_async<R, P, Fut>(
    token: &CancellationToken,
    predicate: P,
    interval: Duration,
) -> Watcher<R>
where
    R: Runtime,
    P: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Watcher::spawn(token, move |weak| async move {
        condition_met::<R, _, _>(predicate, interval).await;
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(condition_reason(interval)))
    })
}

/// The reason of a condition.
pub(crate) fn condition_reason(interval: Duration) -> CancelReason {
    CancelReason::condition().with_message(format!(
        "predicate returned true (checked every {interval:?})"
    ))
}

/// Resolves once `predicate`'s future yields `true`: checks at once, then every `interval`. A
/// panic in the predicate is reported and counts as "not yet".
pub(crate) async fn condition_met<R, P, Fut>(mut predicate: P, interval: Duration)
where
    R: Runtime,
    P: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        // AssertUnwindSafe: after a panic we only call the predicate again, as documented; what
        // it left half-done is its own state.
        match std::panic::AssertUnwindSafe(async { predicate().await })
            .catch_unwind()
            .await
        {
            Ok(true) => return,
            Ok(false) => {}
            Err(panic) => report_panic(&*panic),
        }
        R::sleep(interval).await;
    }
}

/// A panicking predicate is never silent: `tracing::error!` with the `tracing` feature, else a
/// line on standard error.
fn report_panic(panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    #[cfg(feature = "tracing")]
    tracing::error!(
        panic = message,
        "cancel_when: the predicate panicked; checking goes on"
    );
    #[cfg(not(feature = "tracing"))]
    std::eprintln!("cancel_when: the predicate panicked ({message}); checking goes on");
}
