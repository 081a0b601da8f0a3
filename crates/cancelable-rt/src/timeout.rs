//! Timeouts and deadlines as cancelations with a `Timeout` reason.

use std::future::Future;
use std::time::{Duration, Instant};

use cancelable::{CancelReason, Cancelled};
use futures_lite::FutureExt as _;

use crate::Runtime;

/// Runs `fut` for at most `duration` on `R`'s timers: `Err(Cancelled)` with a `Timeout` reason
/// (`"deadline of 3s elapsed"`) if it has not finished by then, and `fut` is dropped.
///
/// `fut` is polled before the timer, and the timer is made only if `fut` is not ready on its
/// first poll: a future that is ready at once costs no clock read, timer or allocation.
///
/// ```
/// use std::time::Duration;
/// use cancelable_smol::SmolRuntime;
///
/// let quick = cancelable_rt::timeout::<SmolRuntime, _>(Duration::from_secs(1), async { 42 });
/// assert_eq!(smol::block_on(quick), Ok(42));
/// ```
pub fn timeout<R: Runtime, F: Future>(
    duration: Duration,
    fut: F,
) -> impl Future<Output = Result<F::Output, Cancelled>> {
    async move { Ok(fut.await) }.or(async move {
        R::sleep(duration).await;
        Err(Cancelled::new(timeout_reason(duration)))
    })
}

/// Runs `fut` until `deadline` on `R`'s timers: `Err(Cancelled)` with a `Timeout` reason if it
/// has not finished by then (`"deadline reached 250ms after it was set"`, measured from the
/// first poll).
///
/// ```
/// use std::time::Instant;
/// use cancelable_smol::SmolRuntime;
///
/// let late = cancelable_rt::timeout_at::<SmolRuntime, _>(Instant::now(), std::future::pending::<()>());
/// assert_eq!(smol::block_on(late).unwrap_err().reason().kind(), cancelable::CancelKind::Timeout);
/// ```
pub fn timeout_at<R: Runtime, F: Future>(
    deadline: Instant,
    fut: F,
) -> impl Future<Output = Result<F::Output, Cancelled>> {
    async move { Ok(fut.await) }.or(async move {
        let left = deadline.saturating_duration_since(Instant::now());
        R::sleep_until(deadline).await;
        Err(Cancelled::new(deadline_reason(left)))
    })
}

/// The reason of a timeout: says how long the limit was.
pub(crate) fn timeout_reason(limit: Duration) -> CancelReason {
    CancelReason::timeout().with_message(format!("deadline of {limit:?} elapsed"))
}

/// The reason of a deadline: an `Instant` has no readable form, so it says how far away the
/// deadline was when it was set.
pub(crate) fn deadline_reason(left: Duration) -> CancelReason {
    CancelReason::timeout().with_message(format!("deadline reached {left:?} after it was set"))
}
