//! [async-std](https://docs.rs/async-std) adapter for [`cancelable`]: timeouts, deadlines,
//! signals, conditions and spawning bound to a [`CancellationToken`], and a graceful shutdown.
//!
//! **async-std is discontinued upstream** (its README recommends smol;
//! [RUSTSEC-2025-0052](https://rustsec.org/advisories/RUSTSEC-2025-0052)). This adapter is kept
//! for code that still runs on it; new code should use `cancelable-smol`, which has the same API,
//! so moving over is changing the import.
//!
//! The core crate does the cancelation; this crate supplies what only a runtime has: timers
//! (async-std's own `future::timeout` and `task::sleep`), signals (async-signal) and spawning
//! (`async_std::task::spawn`).
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
//! | [`spawn`] | the token's reason (returns `Err(Cancelled)`) | the future finishes or the token is cancelled |
//! | [`cancel_after`] | `Timeout` after a duration | the token is cancelled or dropped |
//! | [`cancel_when`], [`cancel_when_async`] | `Condition` once a predicate holds | the token is cancelled or dropped |
//! | [`cancel_on_signals`] (unix) | `Signal`, naming it (`SIGUSR1 received`); once cancelled, a SIGINT or SIGTERM ends the process (exit 130 / 143) | the token is cancelled or dropped |
//! | [`cancel_on_signals_with`] (unix) | the same, with [`SecondSignal::Ignore`] for code that does not own the process | the token is cancelled or dropped |
//! | [`shutdown`] | your reason, then waits for a [`TaskTracker`] | everything stopped or the grace period ended |
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

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use async_std::task::sleep;
use cancelable::{
    CancelReason, CancellationToken, Cancelled, FutureExt as _, TaskTracker, WeakCancellationToken,
};
use futures_lite::FutureExt as _;

#[cfg(unix)]
mod second_signal;
pub mod sources;

#[cfg(unix)]
pub use second_signal::SecondSignal;

/// Runs `fut` for at most `duration`: `Err(Cancelled)` with a `Timeout` reason
/// (`"deadline of 3s elapsed"`) if it has not finished by then, and `fut` is dropped.
///
/// `fut` is polled before the timer, so a future that is ready at once never arms a timer.
///
/// ```
/// use std::time::Duration;
///
/// async_std::task::block_on(async {
///     let quick = cancelable_async_std::timeout(Duration::from_secs(1), async { 42 }).await;
///     assert_eq!(quick, Ok(42));
///
///     let slow = cancelable_async_std::timeout(Duration::from_millis(1), futures_lite::future::pending::<()>());
///     assert_eq!(slow.await.unwrap_err().to_string(), "operation cancelled (timeout: deadline of 1ms elapsed)");
/// });
/// ```
pub async fn timeout<F: Future>(duration: Duration, fut: F) -> Result<F::Output, Cancelled> {
    async_std::future::timeout(duration, fut)
        .await
        .map_err(|_| Cancelled::new(timeout_reason(duration)))
}

/// Runs `fut` until `deadline`: `Err(Cancelled)` with a `Timeout` reason if it has not
/// finished by then (`"deadline reached 250ms after it was set"`).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// async_std::task::block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(1);
///     let late = cancelable_async_std::timeout_at(deadline, futures_lite::future::pending::<()>()).await;
///     assert_eq!(late.unwrap_err().reason().kind(), cancelable::CancelKind::Timeout);
/// });
/// ```
pub async fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, Cancelled> {
    // async-std's timers take durations only.
    let left = deadline.saturating_duration_since(Instant::now());
    async_std::future::timeout(left, fut)
        .await
        .map_err(|_| Cancelled::new(deadline_reason(left)))
}

/// The reason of [`timeout`] and [`sources::timeout`]: says how long the limit was.
fn timeout_reason(limit: Duration) -> CancelReason {
    CancelReason::timeout().with_message(format!("deadline of {limit:?} elapsed"))
}

/// The reason of [`timeout_at`] and [`sources::deadline`]: an `Instant` has no readable form,
/// so it says how far away the deadline was when it was set.
fn deadline_reason(left: Duration) -> CancelReason {
    CancelReason::timeout().with_message(format!("deadline reached {left:?} after it was set"))
}

/// A task spawned by [`spawn`]: a future with the task's output, `Err(Cancelled)` when the token
/// was cancelled first. It is async-std's [`JoinHandle`](async_std::task::JoinHandle):
/// **dropping it detaches the task** (async-std's convention: it runs on); cancel the token, or
/// call [`cancel`](async_std::task::JoinHandle::cancel), to stop it.
pub type Task<T> = async_std::task::JoinHandle<Result<T, Cancelled>>;

/// Spawns `fut` on async-std's executor under `token`: the task's output is `Ok(output)`, or
/// `Err(Cancelled)` with the token's reason if the token is cancelled first, in which case `fut`
/// is dropped as soon as the task sees the cancelation (already cancelled: never polled).
///
/// ```
/// use cancelable::{CancelKind, CancellationToken};
///
/// async_std::task::block_on(async {
///     let token = CancellationToken::new();
///     let task = cancelable_async_std::spawn(&token, futures_lite::future::pending::<()>());
///     token.cancel_with(CancelKind::Shutdown);
///     assert_eq!(task.await.unwrap_err().reason().kind(), CancelKind::Shutdown);
/// });
/// ```
pub fn spawn<F>(token: &CancellationToken, fut: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    async_std::task::spawn(fut.cancelable(token))
}

/// Cancels `token` with `reason`, closes `tracker`, then waits up to `grace` for every tracked
/// task to end. The report says whether they all did in time; tasks still running are left
/// alone (they stop on their own or when the process exits).
///
/// The order matters: cancel first so the tasks start stopping, then wait for them.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken, TaskTracker};
///
/// async_std::task::block_on(async {
///     let token = CancellationToken::new();
///     let tracker = TaskTracker::new();
///     let stuck = tracker.token(); // a task that ignores cancelation
///     let report = cancelable_async_std::shutdown(&token, CancelKind::Shutdown, &tracker, Duration::from_millis(10)).await;
///     assert!(!report.stopped_in_time());
///     assert_eq!(report.still_running(), 1);
///     # drop(stuck);
/// });
/// ```
pub async fn shutdown(
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
        sleep(grace).await;
        false
    })
    .await;
    ShutdownReport {
        still_running: if stopped { 0 } else { tracker.len() },
        elapsed: start.elapsed(),
        grace,
    }
}

/// What [`shutdown`] saw: whether every tracked task stopped within the grace period.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancellationToken, TaskTracker};
///
/// let report = async_std::task::block_on(cancelable_async_std::shutdown(
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
    /// let report = async_std::task::block_on(cancelable_async_std::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &TaskTracker::new(), Duration::ZERO));
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
    /// let report = async_std::task::block_on(cancelable_async_std::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &tracker, Duration::ZERO));
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
    /// let report = async_std::task::block_on(cancelable_async_std::shutdown(&CancellationToken::new(), cancelable::CancelKind::Shutdown, &TaskTracker::new(), Duration::from_secs(60)));
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

/// The background task of [`cancel_after`], [`cancel_when`], [`cancel_when_async`] and
/// [`cancel_on_signals`]. It holds only a weak handle to the token and ends on its own as soon as
/// the token is cancelled (by anyone) or its last handle is dropped, releasing its timer or
/// signal handlers. Dropping the `Watcher` lets the task run on; awaiting it gives `true` if the
/// task cancelled the token, `false` if it ended because the token was cancelled or dropped
/// first.
///
/// ```
/// use std::time::Duration;
/// use cancelable::CancellationToken;
///
/// async_std::task::block_on(async {
///     let token = CancellationToken::new();
///     let watcher = cancelable_async_std::cancel_after(&token, Duration::from_secs(3600));
///     drop(token); // nobody can be cancelled any more: the timer task ends now
///     assert!(!watcher.await);
/// });
/// ```
#[derive(Debug)]
pub struct Watcher {
    task: Option<async_std::task::JoinHandle<bool>>,
}

impl Watcher {
    /// Runs `watch` in the background, unless the token is already cancelled: then nothing
    /// is spawned at all (no task or timer survives an already-cancelled token).
    fn spawn<W>(token: &CancellationToken, watch: impl FnOnce(WeakCancellationToken) -> W) -> Self
    where
        W: Future<Output = bool> + Send + 'static,
    {
        if token.is_cancelled() {
            return Self { task: None };
        }
        let weak = token.downgrade();
        let released = weak.released();
        let watch = watch(weak);
        Self {
            task: Some(async_std::task::spawn(async move {
                async {
                    released.await;
                    false
                }
                .or(watch)
                .await
            })),
        }
    }
}

impl Future for Watcher {
    type Output = bool;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<bool> {
        match self.task.as_mut() {
            None => std::task::Poll::Ready(false),
            Some(task) => std::pin::Pin::new(task).poll(cx),
        }
    }
}

// Dropping an async-std JoinHandle detaches the task already: the watch goes on until the
// token is cancelled or dropped.

/// Cancels `token` with a `Timeout` reason (`"deadline of 3s elapsed"`) after `duration`, unless
/// it is cancelled or all its handles are dropped first: then the timer task ends at once. The
/// task holds only a weak handle, so it never keeps the token's node alive.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken};
///
/// async_std::task::block_on(async {
///     let request = CancellationToken::new();
///     let _timer = cancelable_async_std::cancel_after(&request, Duration::from_millis(5));
///     request.cancelled().await;
///     assert_eq!(request.reason().unwrap().kind(), CancelKind::Timeout);
/// });
/// ```
pub fn cancel_after(token: &CancellationToken, duration: Duration) -> Watcher {
    Watcher::spawn(token, |weak| async move {
        sleep(duration).await;
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(timeout_reason(duration)))
    })
}

/// Cancels `token` with a `Condition` reason once `predicate` returns `true`: checked at once,
/// then every `interval`. A panicking predicate is reported (`tracing::error!` with the
/// `tracing` feature, else standard error) and checking goes on. Checking stops when the token
/// is cancelled or all its handles are dropped.
///
/// ```
/// use std::time::Duration;
/// use cancelable::{CancelKind, CancellationToken};
///
/// async_std::task::block_on(async {
///     let job = CancellationToken::new();
///     let watcher = cancelable_async_std::cancel_when(&job, || true, Duration::from_secs(1));
///     assert!(watcher.await);
///     assert_eq!(job.reason().unwrap().kind(), CancelKind::Condition);
/// });
/// ```
pub fn cancel_when(
    token: &CancellationToken,
    mut predicate: impl FnMut() -> bool + Send + 'static,
    interval: Duration,
) -> Watcher {
    cancel_when_async(token, move || std::future::ready(predicate()), interval)
}

/// [`cancel_when`] with an async predicate (say, a health check over the network): the same
/// schedule, reason and panic reporting; a check still running when the token is cancelled or
/// dropped is dropped.
///
/// ```
/// use std::time::Duration;
/// use cancelable::CancellationToken;
///
/// async_std::task::block_on(async {
///     let job = CancellationToken::new();
///     let watcher = cancelable_async_std::cancel_when_async(&job, || async { true }, Duration::from_secs(1));
///     assert!(watcher.await);
///     assert!(job.is_cancelled());
/// });
/// ```
pub fn cancel_when_async<P, Fut>(
    token: &CancellationToken,
    predicate: P,
    interval: Duration,
) -> Watcher
where
    P: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Watcher::spawn(token, move |weak| async move {
        condition_met(predicate, interval).await;
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(condition_reason(interval)))
    })
}

/// Cancels `token` with a `Signal` reason naming the signal (`"SIGUSR1 received"`) when one of
/// `signals` arrives; an empty set means SIGINT and SIGTERM. The handlers are installed before
/// this returns. Several tokens may listen for the same signal: each is cancelled.
///
/// # A second signal ends the process
///
/// This is the call for a program's main token. Once `token` is cancelled (by the first signal,
/// or in any other way), a SIGINT or SIGTERM of the set ends the process at once, with exit code
/// 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM. A first Ctrl-C asks for a
/// graceful stop; a second one forces it. The exit happens in the signal handler itself, so it
/// works even when every thread is stuck in the shutdown; no destructor runs and output not yet
/// flushed is lost.
///
/// Other signals of a custom set (SIGHUP, SIGUSR1, ...) only cancel the token: once it is
/// cancelled they are no longer listened for. Signals outside the set are left alone. Libraries
/// and embedders that do not own the process use [`cancel_on_signals_with`] and
/// [`SecondSignal::Ignore`].
///
/// If every handle of `token` is dropped before it is cancelled, the handlers are removed. A
/// removed handler does not give the signal its default action back (signal-hook-registry
/// keeps its own handler installed): a later one is ignored unless someone listens for it again.
///
/// ```
/// use cancelable::CancellationToken;
/// use cancelable_async_std::Signal;
///
/// async_std::task::block_on(async {
///     let token = CancellationToken::new();
///     let watcher = cancelable_async_std::cancel_on_signals(&token, [Signal::Hup])?;
///     drop(token); // dropped uncancelled: the handler goes away
///     assert!(!watcher.await);
///     std::io::Result::Ok(())
/// }).unwrap();
/// ```
#[cfg(unix)]
pub fn cancel_on_signals(
    token: &CancellationToken,
    signals: impl IntoIterator<Item = Signal>,
) -> std::io::Result<Watcher> {
    cancel_on_signals_with(token, signals, SecondSignal::Exit)
}

/// [`cancel_on_signals`], choosing what a SIGINT or SIGTERM of the set does once `token` is
/// cancelled: [`SecondSignal::Exit`] (what `cancel_on_signals` does) or
/// [`SecondSignal::Ignore`] (the process keeps running; the signals are no longer listened for).
///
/// `Ignore` speaks for this token only: if another token listens with `Exit`, a signal can
/// still end the process.
///
/// ```
/// use cancelable::CancellationToken;
/// use cancelable_async_std::SecondSignal;
///
/// async_std::task::block_on(async {
///     let download = CancellationToken::new();
///     let watcher = cancelable_async_std::cancel_on_signals_with(&download, [], SecondSignal::Ignore)?;
///     download.cancel(); // cancelled otherwise: the handlers go away, the process stays
///     assert!(!watcher.await);
///     std::io::Result::Ok(())
/// }).unwrap();
/// ```
#[cfg(unix)]
pub fn cancel_on_signals_with(
    token: &CancellationToken,
    signals: impl IntoIterator<Item = Signal>,
    second: SecondSignal,
) -> std::io::Result<Watcher> {
    let set = signal_set(signals);
    let (signals, _) = install_signals(set.iter().copied())?;
    let exit = match second {
        SecondSignal::Exit => Some(second_signal::ExitOnSecondSignal::install(&set, token)?),
        SecondSignal::Ignore => None,
    };
    Ok(Watcher::spawn(token, move |weak| async move {
        // Dropped when the watch ends, which is when the token is cancelled or dropped.
        let _exit = exit;
        let signal = next_signal(signals).await;
        let reason =
            CancelReason::signal().with_message(format!("{} received", signal_name(signal)));
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(reason))
    }))
}

/// The reason of [`cancel_when`] and [`sources::condition`].
fn condition_reason(interval: Duration) -> CancelReason {
    CancelReason::condition().with_message(format!(
        "predicate returned true (checked every {interval:?})"
    ))
}

/// Resolves once `predicate`'s future yields `true`: checks at once, then every `interval`. A
/// panic in the predicate is reported and counts as "not yet".
async fn condition_met<P, Fut>(mut predicate: P, interval: Duration)
where
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
        sleep(interval).await;
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

/// A signal that [`cancel_on_signals`] and [`sources::signals`] listen for (async-signal's).
#[cfg(unix)]
pub use async_signal::Signal;

/// The set a listener of `signals` listens for: SIGINT and SIGTERM when empty.
#[cfg(unix)]
fn signal_set(signals: impl IntoIterator<Item = Signal>) -> Vec<Signal> {
    let set: Vec<Signal> = signals.into_iter().collect();
    if set.is_empty() {
        vec![Signal::Int, Signal::Term]
    } else {
        set
    }
}

/// Installs handlers for `signals` (SIGINT and SIGTERM when empty); also returns their names
/// for a reason's message, like `SIGINT or SIGTERM`.
#[cfg(unix)]
fn install_signals(
    signals: impl IntoIterator<Item = Signal>,
) -> std::io::Result<(async_signal::Signals, String)> {
    let set = signal_set(signals);
    let names = set
        .iter()
        .map(|&s| signal_name(s))
        .collect::<Vec<_>>()
        .join(" or ");
    Ok((async_signal::Signals::new(set)?, names))
}

/// The next signal; a failure to read one is reported, and then nothing ever arrives.
#[cfg(unix)]
async fn next_signal(mut signals: async_signal::Signals) -> Signal {
    use futures_lite::StreamExt as _;
    match signals.next().await {
        Some(Ok(signal)) => signal,
        Some(Err(error)) => {
            std::eprintln!(
                "cancel_on_signals: reading signals failed ({error}); no longer listening"
            );
            std::future::pending().await
        }
        // async-signal's stream never ends.
        None => std::future::pending().await,
    }
}

/// The C name of a signal: `SIGUSR1`.
#[cfg(unix)]
fn signal_name(signal: Signal) -> String {
    match signal {
        // The four whose Rust names are not the C name without `SIG`.
        Signal::Abort => "SIGABRT".into(),
        Signal::Alarm => "SIGALRM".into(),
        Signal::Child => "SIGCHLD".into(),
        Signal::Vtalarm => "SIGVTALRM".into(),
        other => format!("SIG{other:?}").to_uppercase(),
    }
}
