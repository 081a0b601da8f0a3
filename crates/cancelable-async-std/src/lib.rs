//! [async-std](https://docs.rs/async-std) adapter for [`cancelable`]: timeouts, deadlines,
//! signals, conditions and spawning bound to a
//! [`CancellationToken`](cancelable::CancellationToken), and a graceful shutdown.
//!
//! **async-std is discontinued upstream** (its README recommends smol;
//! [RUSTSEC-2025-0052](https://rustsec.org/advisories/RUSTSEC-2025-0052)). This adapter is kept
//! for code that still runs on it; new code should use `cancelable-smol`, which has the same API,
//! so moving over is changing the import.
//!
//! The core crate does the cancelation, and `cancelable-rt` writes the adapters once over a
//! small `Runtime` trait; this crate supplies what only async-std has: [`AsyncStdRuntime`], its
//! spawning (`async_std::task::spawn`, `spawn_blocking`) and timers (`async_std::task::sleep`).
//!
//! ```
//! use std::time::Duration;
//! use cancelable::{CancelKind, CancellationToken, TaskTracker};
//!
//! async_std::task::block_on(async {
//!     // A timeout is a cancelation with a `Timeout` reason.
//!     let err = cancelable_async_std::timeout(Duration::from_millis(5), futures_lite::future::pending::<()>())
//!         .await
//!         .unwrap_err();
//!     assert_eq!(err.reason().kind(), CancelKind::Timeout);
//!
//!     // Work spawned under a token stops when the token is cancelled...
//!     let shutdown = CancellationToken::new();
//!     let tracker = TaskTracker::new();
//!     let worker = cancelable_async_std::spawn(
//!         &shutdown.child_token(),
//!         tracker.track_future(futures_lite::future::pending::<()>()),
//!     );
//!
//!     // ...and a graceful shutdown cancels, then waits for the tracked work.
//!     let report = cancelable_async_std::shutdown(&shutdown, CancelKind::Shutdown, &tracker, Duration::from_secs(5)).await;
//!     assert!(report.stopped_in_time());
//!     assert_eq!(worker.await.unwrap_err().reason().kind(), CancelKind::Shutdown);
//! });
//! ```
//!
//! # What is in the box
//!
//! | function | cancels with | stops when |
//! |---|---|---|
//! | [`timeout`], [`timeout_at`] | `Timeout` (returns `Err(Cancelled)`) | the future finishes |
//! | [`spawn`] | the token's reason (returns `Err(Cancelled)`); dropping the handle detaches the task | the future finishes or the token is cancelled |
//! | [`cancel_after`] | `Timeout` after a duration | the token is cancelled or dropped |
//! | [`cancel_when`], [`cancel_when_async`] | `Condition` once a predicate holds | the token is cancelled or dropped |
//! | [`cancel_on_signals`] (unix) | `Signal`, naming it (`SIGUSR1 received`); once cancelled, a SIGINT or SIGTERM ends the process (exit 130 / 143) | the token is cancelled or dropped |
//! | [`cancel_on_signals_with`] (unix) | the same, with [`SecondSignal::Ignore`] for code that does not own the process | the token is cancelled or dropped |
//! | [`TaskTrackerExt`] | `tracker.spawn(fut)`, `tracker.spawn_blocking(f)`: tokio-util's calls, tracked | the task ends |
//! | [`shutdown`] | your reason, then waits for a [`TaskTracker`](cancelable::TaskTracker) | everything stopped or the grace period ended |
//! | [`sources`] | futures for `Operation::cancel_on` | — |
//!
//! # Signals
//!
//! [`cancel_on_signals`] follows the convention of command-line programs and service managers:
//! the first SIGINT or SIGTERM cancels the token (a graceful stop); once it is cancelled, the
//! next one ends the process at once with exit code 130 (SIGINT) or 143 (SIGTERM), even if the
//! shutdown is stuck. Code that does not own the process opts out with
//! [`cancel_on_signals_with`] and [`SecondSignal::Ignore`].
//!
//! # Features
//!
//! * `tracing`: report a panicking `cancel_when` predicate with `tracing::error!` instead of a
//!   line on standard error. Enable it when your service collects `tracing` events; without it
//!   the report still happens, it only goes to stderr.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

/// async-std as the adapters see it: tasks and blocking work on async-std's executor, its
/// `task::sleep` for timers. Name it to call `cancelable-rt`'s generic functions on async-std.
///
/// ```
/// use std::time::Duration;
/// use cancelable_async_std::AsyncStdRuntime;
///
/// let quick = cancelable_rt::timeout::<AsyncStdRuntime, _>(Duration::from_secs(1), async { 1 });
/// assert_eq!(async_std::task::block_on(quick), Ok(1));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdRuntime;

impl cancelable_rt::Runtime for AsyncStdRuntime {
    type Task<T: Send + 'static> = async_std::task::JoinHandle<T>;

    fn spawn<F>(future: F) -> async_std::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_std::task::spawn(future)
    }

    fn spawn_blocking<F, T>(f: F) -> async_std::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        async_std::task::spawn_blocking(f)
    }

    /// async-std detaches a task whose handle is dropped.
    fn detach<T: Send + 'static>(task: async_std::task::JoinHandle<T>) {
        drop(task);
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        async_std::task::sleep(duration)
    }

    /// async-std's timers take durations only: the time left is measured when the sleep is
    /// made.
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        async_std::task::sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

cancelable_rt::adapter! {
    runtime: AsyncStdRuntime,
    name: "async-std",
    krate: "cancelable_async_std",
    block_on: "async_std::task::block_on",
}
