//! Graceful shutdown: cancel, then wait a bounded time for the tracked work to stop.

use std::fmt;
use std::time::{Duration, Instant};

use cancelable::{CancelReason, CancellationToken, TaskTracker};
use futures_lite::FutureExt as _;

use crate::Runtime;

/// Cancels `token` with `reason`, closes `tracker`, then waits up to `grace` (on `R`'s timers) for every tracked
/// task to end. The report says whether they all did in time; tasks still running are left
/// alone (they stop on their own or when the process exits).
///
/// The order matters: cancel first so the tasks start stopping, then wait for them.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken, TaskTracker};
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let token = CancellationToken::new();
///     let tracker = TaskTracker::new();
///     let stuck = tracker.token(); // a task that ignores cancelation
///     let report = cancelable_rt::shutdown::<SmolRuntime>(&token, CancelKind::Shutdown, &tracker, Duration::from_millis(10)).await;
///     assert!(!report.stopped_in_time());
///     assert_eq!(report.still_running(), 1);
///     # drop(stuck);
/// });
/// ```
pub async fn shutdown<R: Runtime>(
    token: &CancellationToken,
    reason: impl Into<CancelReason>,
    tracker: &TaskTracker,
    grace: Duration,
) -> ShutdownReport {
    let start = Instant::now();
    token.cancel_with(reason);
    tracker.close();
    let stopped = async {
        tracker.wait().await;
        true
    }
    .or(async {
        R::sleep(grace).await;
        false
    })
    .await;
    ShutdownReport {
        still_running: if stopped { 0 } else { tracker.len() },
        elapsed: start.elapsed(),
        grace,
    }
}

/// What `shutdown` saw: whether every tracked task stopped within the grace period.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancellationToken, TaskTracker};
///
/// let report = smol::block_on(cancelable_smol::shutdown(
///     &CancellationToken::new(),
///     cancelable::CancelKind::Shutdown,
///     &TaskTracker::new(),
///     Duration::from_secs(1),
/// ));
/// assert!(report.stopped_in_time());
/// assert!(report.to_string().starts_with("every task stopped within"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    still_running: usize,
    elapsed: Duration,
    grace: Duration,
}

impl ShutdownReport {
    /// `true` if every tracked task ended within the grace period.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use cancelable::{CancellationToken, TaskTracker};
    /// let report = smol::block_on(cancelable_smol::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &TaskTracker::new(), Duration::ZERO));
    /// assert!(report.stopped_in_time());
    /// ```
    pub fn stopped_in_time(&self) -> bool {
        self.still_running == 0
    }

    /// How many tracked tasks were still live when the grace period ended (0 if all stopped).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use cancelable::{CancellationToken, TaskTracker};
    /// let tracker = TaskTracker::new();
    /// let _stuck = [tracker.token(), tracker.token()];
    /// let report = smol::block_on(cancelable_smol::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &tracker, Duration::ZERO));
    /// assert_eq!(report.still_running(), 2);
    /// ```
    pub fn still_running(&self) -> usize {
        self.still_running
    }

    /// How long the shutdown took: until the last task ended, or the grace period.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use cancelable::{CancellationToken, TaskTracker};
    /// let report = smol::block_on(cancelable_smol::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &TaskTracker::new(), Duration::from_secs(60)));
    /// assert!(report.elapsed() < Duration::from_secs(60));
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl fmt::Display for ShutdownReport {
    /// `every task stopped within 12ms` or `2 tasks still running after the 5s grace period`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.still_running {
            0 => write!(f, "every task stopped within {:?}", self.elapsed),
            1 => write!(
                f,
                "1 task still running after the {:?} grace period",
                self.grace
            ),
            n => write!(
                f,
                "{n} tasks still running after the {:?} grace period",
                self.grace
            ),
        }
    }
}
