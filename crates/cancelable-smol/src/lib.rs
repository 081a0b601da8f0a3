//! [smol](https://docs.rs/smol) adapter for [`cancelable`]: timeouts, deadlines, signals,
//! conditions and spawning bound to a [`CancellationToken`](cancelable::CancellationToken), and a
//! graceful shutdown.
//!
//! The core crate does the cancelation, and `cancelable-rt` writes the adapters once over a
//! small `Runtime` trait; this crate supplies what only smol has: [`SmolRuntime`], its spawning
//! (`smol::spawn`, `smol::unblock`) and timers (async-io's). The same API exists in
//! `cancelable-async-std`, so switching runtime is switching the import.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::{CancelKind, CancellationToken, TaskTracker};
//!
//! smol::block_on(async {
//!     // A timeout is a cancelation with a `Timeout` reason.
//!     let err = cancelable_smol::timeout(Duration::from_millis(5), smol::future::pending::<()>())
//!         .await
//!         .unwrap_err();
//!     assert_eq!(err.reason().kind(), CancelKind::Timeout);
//!
//!     // Work spawned under a token stops when the token is cancelled...
//!     let shutdown = CancellationToken::new();
//!     let tracker = TaskTracker::new();
//!     let worker = cancelable_smol::spawn(
//!         &shutdown.child_token(),
//!         tracker.track_future(smol::future::pending::<()>()),
//!     );
//!
//!     // ...and a graceful shutdown cancels, then waits for the tracked work.
//!     let report = cancelable_smol::shutdown(&shutdown, CancelKind::Shutdown, &tracker, Duration::from_secs(5)).await;
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

/// smol as the adapters see it: tasks on smol's global executor, blocking work on
/// `smol::unblock`'s threads, async-io's timers. Name it to call `cancelable-rt`'s generic
/// functions on smol.
///
/// ```
/// use std::time::Duration;
/// use cancelable_smol::SmolRuntime;
///
/// let quick = cancelable_rt::timeout::<SmolRuntime, _>(Duration::from_secs(1), async { 1 });
/// assert_eq!(smol::block_on(quick), Ok(1));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl cancelable_rt::Runtime for SmolRuntime {
    type Task<T: Send + 'static> = smol::Task<T>;

    fn spawn<F>(future: F) -> smol::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::spawn(future)
    }

    fn spawn_blocking<F, T>(f: F) -> smol::Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        smol::unblock(f)
    }

    /// smol cancels a task whose handle is dropped: detaching is explicit.
    fn detach<T: Send + 'static>(task: smol::Task<T>) {
        task.detach();
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    async fn sleep_until(deadline: Instant) {
        smol::Timer::at(deadline).await;
    }
}

cancelable_rt::adapter! {
    runtime: SmolRuntime,
    name: "smol",
    krate: "cancelable_smol",
    block_on: "smol::block_on",
}
