//! [`adapter!`](crate::adapter): an adapter's whole public API, written once.

/// Writes an adapter's public API for a [`Runtime`](crate::Runtime), in the module where it is
/// invoked: `timeout`, `timeout_at`, `spawn`, `shutdown`, `cancel_after`, `cancel_when`,
/// `cancel_when_async`, `cancel_on_signals`, `cancel_on_signals_with`, `TaskTrackerExt`, the
/// types `JoinHandle<T>`, `Task<T>`, `Watcher`, `ShutdownReport`, `SecondSignal`, `Signal`, and
/// the module `sources`. Each function is one call into this crate with the runtime fixed; the
/// docs are written here once, and their examples name the adapter's crate and `block_on`.
///
/// `runtime` names the type implementing [`Runtime`](crate::Runtime), defined in the invoking
/// module; `name` is the runtime's name
/// for the docs, `krate` the adapter's crate name as written in code, and `block_on` the path
/// of the runtime's `block_on` function.
///
/// ```
/// mod my_adapter {
/// #   use std::future::Future;
/// #   use std::time::{Duration, Instant};
///     /// smol under another name.
///     pub struct MyRuntime;
///
///     impl cancelable_rt::Runtime for MyRuntime {
///         // ...
/// #       type Task<T: Send + 'static> = smol::Task<T>;
/// #       fn spawn<F>(future: F) -> smol::Task<F::Output>
/// #       where F: Future + Send + 'static, F::Output: Send + 'static { smol::spawn(future) }
/// #       fn spawn_blocking<F, T>(f: F) -> smol::Task<T>
/// #       where F: FnOnce() -> T + Send + 'static, T: Send + 'static { smol::unblock(f) }
/// #       fn detach<T: Send + 'static>(task: smol::Task<T>) { task.detach() }
/// #       async fn sleep(duration: Duration) { smol::Timer::after(duration).await; }
/// #       async fn sleep_until(deadline: Instant) { smol::Timer::at(deadline).await; }
///     }
///
///     cancelable_rt::adapter! {
///         runtime: MyRuntime,
///         name: "my runtime",
///         krate: "my_adapter",
///         block_on: "smol::block_on",
///     }
/// }
///
/// let quick = my_adapter::timeout(std::time::Duration::from_secs(1), async { 7 });
/// assert_eq!(smol::block_on(quick), Ok(7));
/// ```
#[macro_export]
macro_rules! adapter {
    (
        runtime: $rt:ident,
        name: $name:literal,
        krate: $krate:literal,
        block_on: $block_on:literal $(,)?
    ) => {
        pub use $crate::ShutdownReport;
        #[cfg(unix)]
        pub use $crate::{SecondSignal, Signal};

        /// A handle to a task spawned by this crate: awaiting it gives the task's output.
        ///
        /// **Dropping it detaches the task**, which runs on to completion, as tokio's and
        /// async-std's handles do. Stopping a task is its token's job: spawn it with [`spawn`]
        /// under a token and cancel the token. [`detach`](cancelable_rt::JoinHandle::detach)
        /// says it out loud.
        ///
        /// ```
        #[doc = concat!($block_on, "(async {")]
        ///     let (sender, receiver) = async_channel::bounded(1);
        ///     let token = cancelable::CancellationToken::new();
        #[doc = concat!("    drop(", $krate, "::spawn(&token, async move { sender.send(\"done\").await }));")]
        ///     assert_eq!(receiver.recv().await, Ok("done")); // the task ran without its handle
        /// });
        /// ```
        pub type JoinHandle<T> = $crate::JoinHandle<$rt, T>;

        /// The handle of [`spawn`]: the task's output, or `Err(Cancelled)` when the token was
        /// cancelled first. Dropping it detaches the task (see [`JoinHandle`]).
        ///
        /// ```
        /// use cancelable::CancellationToken;
        ///
        #[doc = concat!("let task: ", $krate, "::Task<u8> = ", $krate, "::spawn(&CancellationToken::new(), async { 1 });")]
        #[doc = concat!("assert_eq!(", $block_on, "(task), Ok(1));")]
        /// ```
        pub type Task<T> = JoinHandle<::core::result::Result<T, $crate::__private::Cancelled>>;

        /// The background task of [`cancel_after`], [`cancel_when`], [`cancel_when_async`] and
        /// `cancel_on_signals`. It holds only a weak handle to the token and ends on its own as
        /// soon as the token is cancelled (by anyone) or its last handle is dropped, releasing
        /// its timer or signal handlers. Dropping the `Watcher` lets the task run on; awaiting
        /// it gives `true` if the task cancelled the token, `false` if it ended because the
        /// token was cancelled or dropped first.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::CancellationToken;
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let token = CancellationToken::new();
        #[doc = concat!("    let watcher = ", $krate, "::cancel_after(&token, Duration::from_secs(3600));")]
        ///     drop(token); // nobody can be cancelled any more: the timer task ends now
        ///     assert!(!watcher.await);
        /// });
        /// ```
        pub type Watcher = $crate::Watcher<$rt>;

        /// Runs `fut` for at most `duration`: `Err(Cancelled)` with a `Timeout` reason
        /// (`"deadline of 3s elapsed"`) if it has not finished by then, and `fut` is dropped.
        ///
        /// `fut` is polled before the timer, and the timer is made only if `fut` is not ready
        /// on its first poll: a future that is ready at once costs no clock read, timer or
        /// allocation.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        #[doc = concat!($block_on, "(async {")]
        #[doc = concat!("    let quick = ", $krate, "::timeout(Duration::from_secs(1), async { 42 }).await;")]
        ///     assert_eq!(quick, Ok(42));
        ///
        #[doc = concat!("    let slow = ", $krate, "::timeout(Duration::from_millis(1), std::future::pending::<()>());")]
        ///     assert_eq!(slow.await.unwrap_err().to_string(), "operation cancelled (timeout: deadline of 1ms elapsed)");
        /// });
        /// ```
        pub fn timeout<F: ::core::future::Future>(
            duration: ::std::time::Duration,
            fut: F,
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<F::Output, $crate::__private::Cancelled>,
        > {
            $crate::timeout::<$rt, F>(duration, fut)
        }

        /// Runs `fut` until `deadline`: `Err(Cancelled)` with a `Timeout` reason if it has not
        /// finished by then (`"deadline reached 250ms after it was set"`, measured from the
        /// first poll).
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let deadline = Instant::now() + Duration::from_millis(1);
        #[doc = concat!("    let late = ", $krate, "::timeout_at(deadline, std::future::pending::<()>()).await;")]
        ///     assert_eq!(late.unwrap_err().reason().kind(), cancelable::CancelKind::Timeout);
        /// });
        /// ```
        pub fn timeout_at<F: ::core::future::Future>(
            deadline: ::std::time::Instant,
            fut: F,
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<F::Output, $crate::__private::Cancelled>,
        > {
            $crate::timeout_at::<$rt, F>(deadline, fut)
        }

        #[doc = concat!("Spawns `fut` on ", $name, " under `token`: the task's output is `Ok(output)`, or")]
        /// `Err(Cancelled)` with the token's reason if the token is cancelled first, in which
        /// case `fut` is dropped as soon as the task sees the cancelation (already cancelled:
        /// never polled). Dropping the handle detaches the task: it runs on until it finishes
        /// or the token is cancelled.
        ///
        /// ```
        /// use cancelable::{CancelKind, CancellationToken};
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let token = CancellationToken::new();
        #[doc = concat!("    let task = ", $krate, "::spawn(&token, std::future::pending::<()>());")]
        ///     token.cancel_with(CancelKind::Shutdown);
        ///     assert_eq!(task.await.unwrap_err().reason().kind(), CancelKind::Shutdown);
        /// });
        /// ```
        pub fn spawn<F>(token: &$crate::__private::CancellationToken, fut: F) -> Task<F::Output>
        where
            F: ::core::future::Future + ::core::marker::Send + 'static,
            F::Output: ::core::marker::Send + 'static,
        {
            $crate::spawn::<$rt, F>(token, fut)
        }

        /// Spawning on a [`TaskTracker`](cancelable::TaskTracker) with tokio-util's call
        #[doc = concat!("shape: `tracker.spawn(fut)` and `tracker.spawn_blocking(f)` run the work on ", $name, " and")]
        /// count it in the tracker until it ends, as `tokio_util::task::TaskTracker`'s methods
        /// of the same names do. Code ported from tokio-util keeps its calls and gains one
        /// import.
        ///
        /// The handles are this crate's [`JoinHandle`]: awaiting one gives the task's output
        /// itself (tokio's gives a `Result` with a `JoinError`), and dropping one detaches the
        /// task.
        ///
        /// ```
        /// use cancelable::TaskTracker;
        #[doc = concat!("use ", $krate, "::TaskTrackerExt as _;")]
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let tracker = TaskTracker::new();
        ///     for i in 0..10 {
        ///         tracker.spawn(async move { i * 2 });
        ///     }
        ///     let sum = tracker.spawn_blocking(|| (0..10).sum::<u32>());
        ///     tracker.close();
        ///     tracker.wait().await; // every task has ended
        ///     assert_eq!(sum.await, 45);
        /// });
        /// ```
        pub trait TaskTrackerExt {
            #[doc = concat!("Spawns `task` on ", $name, ", tracked: the same as spawning `tracker.track_future(task)`.")]
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::TaskTrackerExt as _;")]
            ///
            /// let tracker = cancelable::TaskTracker::new();
            /// let task = tracker.spawn(async { 1 });
            #[doc = concat!("assert_eq!(", $block_on, "(task), 1);")]
            /// ```
            fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
            where
                F: ::core::future::Future + ::core::marker::Send + 'static,
                F::Output: ::core::marker::Send + 'static;

            #[doc = concat!("Runs the blocking closure `task` on ", $name, "'s threads for blocking work, tracked")]
            /// until it returns.
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::TaskTrackerExt as _;")]
            ///
            /// let tracker = cancelable::TaskTracker::new();
            /// let task = tracker.spawn_blocking(|| std::fs::metadata(".").is_ok());
            #[doc = concat!("assert!(", $block_on, "(task));")]
            /// ```
            fn spawn_blocking<F, T>(&self, task: F) -> JoinHandle<T>
            where
                F: ::core::ops::FnOnce() -> T + ::core::marker::Send + 'static,
                T: ::core::marker::Send + 'static;
        }

        impl TaskTrackerExt for $crate::__private::TaskTracker {
            fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
            where
                F: ::core::future::Future + ::core::marker::Send + 'static,
                F::Output: ::core::marker::Send + 'static,
            {
                $crate::spawn_tracked::<$rt, F>(self, task)
            }

            fn spawn_blocking<F, T>(&self, task: F) -> JoinHandle<T>
            where
                F: ::core::ops::FnOnce() -> T + ::core::marker::Send + 'static,
                T: ::core::marker::Send + 'static,
            {
                $crate::spawn_blocking_tracked::<$rt, F, T>(self, task)
            }
        }

        /// Cancels `token` with `reason`, closes `tracker`, then waits up to `grace` for every
        /// tracked task to end. The report says whether they all did in time; tasks still
        /// running are left alone (they stop on their own or when the process exits).
        ///
        /// The order matters: cancel first so the tasks start stopping, then wait for them.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::{CancelKind, CancellationToken, TaskTracker};
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let token = CancellationToken::new();
        ///     let tracker = TaskTracker::new();
        ///     let stuck = tracker.token(); // a task that ignores cancelation
        #[doc = concat!("    let report = ", $krate, "::shutdown(&token, CancelKind::Shutdown, &tracker, Duration::from_millis(10)).await;")]
        ///     assert!(!report.stopped_in_time());
        ///     assert_eq!(report.still_running(), 1);
        ///     # drop(stuck);
        /// });
        /// ```
        pub async fn shutdown(
            token: &$crate::__private::CancellationToken,
            reason: impl ::core::convert::Into<$crate::__private::CancelReason>,
            tracker: &$crate::__private::TaskTracker,
            grace: ::std::time::Duration,
        ) -> ShutdownReport {
            $crate::shutdown::<$rt>(token, reason, tracker, grace).await
        }

        /// Cancels `token` with a `Timeout` reason (`"deadline of 3s elapsed"`) after
        /// `duration`, unless it is cancelled or all its handles are dropped first: then the
        /// timer task ends at once. The task holds only a weak handle, so it never keeps the
        /// token's node alive.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::{CancelKind, CancellationToken};
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let request = CancellationToken::new();
        #[doc = concat!("    let _timer = ", $krate, "::cancel_after(&request, Duration::from_millis(5));")]
        ///     request.cancelled().await;
        ///     assert_eq!(request.reason().unwrap().kind(), CancelKind::Timeout);
        /// });
        /// ```
        pub fn cancel_after(
            token: &$crate::__private::CancellationToken,
            duration: ::std::time::Duration,
        ) -> Watcher {
            $crate::cancel_after::<$rt>(token, duration)
        }

        /// Cancels `token` with a `Condition` reason once `predicate` returns `true`: checked
        /// at once, then every `interval`. A panicking predicate is reported
        /// (`tracing::error!` with the `tracing` feature, else standard error) and checking
        /// goes on. Checking stops when the token is cancelled or all its handles are dropped.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::{CancelKind, CancellationToken};
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let job = CancellationToken::new();
        #[doc = concat!("    let watcher = ", $krate, "::cancel_when(&job, || true, Duration::from_secs(1));")]
        ///     assert!(watcher.await);
        ///     assert_eq!(job.reason().unwrap().kind(), CancelKind::Condition);
        /// });
        /// ```
        pub fn cancel_when(
            token: &$crate::__private::CancellationToken,
            predicate: impl ::core::ops::FnMut() -> bool + ::core::marker::Send + 'static,
            interval: ::std::time::Duration,
        ) -> Watcher {
            $crate::cancel_when::<$rt>(token, predicate, interval)
        }

        /// [`cancel_when`] with an async predicate (say, a health check over the network): the
        /// same schedule, reason and panic reporting; a check still running when the token is
        /// cancelled or dropped is dropped.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::CancellationToken;
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let job = CancellationToken::new();
        #[doc = concat!("    let watcher = ", $krate, "::cancel_when_async(&job, || async { true }, Duration::from_secs(1));")]
        ///     assert!(watcher.await);
        ///     assert!(job.is_cancelled());
        /// });
        /// ```
        pub fn cancel_when_async<P, Fut>(
            token: &$crate::__private::CancellationToken,
            predicate: P,
            interval: ::std::time::Duration,
        ) -> Watcher
        where
            P: ::core::ops::FnMut() -> Fut + ::core::marker::Send + 'static,
            Fut: ::core::future::Future<Output = bool> + ::core::marker::Send + 'static,
        {
            $crate::cancel_when_async::<$rt, P, Fut>(token, predicate, interval)
        }

        /// Cancels `token` with a `Signal` reason naming the signal (`"SIGUSR1 received"`)
        /// when one of `signals` arrives; an empty set means SIGINT and SIGTERM. The handlers
        /// are installed before this returns. Several tokens may listen for the same signal:
        /// each is cancelled.
        ///
        /// # A second signal ends the process
        ///
        /// This is the call for a program's main token. Once `token` is cancelled (by the
        /// first signal, or in any other way), a SIGINT or SIGTERM of the set ends the process
        /// at once, with exit code 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
        /// A first Ctrl-C asks for a graceful stop; a second one forces it. The exit happens in
        /// the signal handler itself, so it works even when every thread is stuck in the
        /// shutdown; no destructor runs and output not yet flushed is lost.
        ///
        /// Other signals of a custom set (SIGHUP, SIGUSR1, ...) only cancel the token: once it
        /// is cancelled they are no longer listened for. Signals outside the set are left
        /// alone. Libraries and embedders that do not own the process use
        /// [`cancel_on_signals_with`] and [`SecondSignal::Ignore`].
        ///
        /// If every handle of `token` is dropped before it is cancelled, the handlers are
        /// removed. A removed handler does not give the signal its default action back
        /// (signal-hook-registry keeps its own handler installed): a later one is ignored
        /// unless someone listens for it again.
        ///
        /// ```
        /// use cancelable::CancellationToken;
        #[doc = concat!("use ", $krate, "::Signal;")]
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let token = CancellationToken::new();
        #[doc = concat!("    let watcher = ", $krate, "::cancel_on_signals(&token, [Signal::Hup])?;")]
        ///     drop(token); // dropped uncancelled: the handler goes away
        ///     assert!(!watcher.await);
        ///     std::io::Result::Ok(())
        /// }).unwrap();
        /// ```
        #[cfg(unix)]
        pub fn cancel_on_signals(
            token: &$crate::__private::CancellationToken,
            signals: impl ::core::iter::IntoIterator<Item = Signal>,
        ) -> ::std::io::Result<Watcher> {
            $crate::cancel_on_signals::<$rt>(token, signals, SecondSignal::Exit)
        }

        /// [`cancel_on_signals`], choosing what a SIGINT or SIGTERM of the set does once
        /// `token` is cancelled: [`SecondSignal::Exit`] (what `cancel_on_signals` does) or
        /// [`SecondSignal::Ignore`] (the process keeps running; the signals are no longer
        /// listened for).
        ///
        /// `Ignore` speaks for this token only: if another token listens with `Exit`, a signal
        /// can still end the process.
        ///
        /// ```
        /// use cancelable::CancellationToken;
        #[doc = concat!("use ", $krate, "::SecondSignal;")]
        ///
        #[doc = concat!($block_on, "(async {")]
        ///     let download = CancellationToken::new();
        #[doc = concat!("    let watcher = ", $krate, "::cancel_on_signals_with(&download, [], SecondSignal::Ignore)?;")]
        ///     download.cancel(); // cancelled otherwise: the handlers go away, the process stays
        ///     assert!(!watcher.await);
        ///     std::io::Result::Ok(())
        /// }).unwrap();
        /// ```
        #[cfg(unix)]
        pub fn cancel_on_signals_with(
            token: &$crate::__private::CancellationToken,
            signals: impl ::core::iter::IntoIterator<Item = Signal>,
            second: SecondSignal,
        ) -> ::std::io::Result<Watcher> {
            $crate::cancel_on_signals::<$rt>(token, signals, second)
        }

        /// Cancelation sources for the operations builder: each is a
        /// [`cancelable::Source`], a future plus the reason it cancels with, ready for
        /// `Operation::cancel_on(source)`.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancelable::{CancelKind, Operation};
        ///
        /// let run = Operation::new("fetch")
        #[doc = concat!("    .cancel_on(", $krate, "::sources::timeout(Duration::from_millis(1)))")]
        ///     .run(|_| std::future::pending::<Result<(), _>>());
        #[doc = concat!("let err = ", $block_on, "(run).unwrap_err();")]
        /// assert_eq!(err.reason().kind(), CancelKind::Timeout);
        ///
        /// // The parts stay public, for use without an operation.
        #[doc = concat!("let source = ", $krate, "::sources::timeout(Duration::from_millis(1));")]
        /// assert_eq!(source.reason.kind(), CancelKind::Timeout);
        #[doc = concat!($block_on, "(source.future); // resolves once the time is up")]
        /// ```
        pub mod sources {
            use $crate::__private::Source;
            #[cfg(unix)]
            pub use $crate::sources::signals;

            /// Fires after `duration`, with a `Timeout` reason (`"deadline of 3s elapsed"`).
            ///
            /// ```
            #[doc = concat!("let source = ", $krate, "::sources::timeout(std::time::Duration::from_millis(1));")]
            #[doc = concat!($block_on, "(source.future);")]
            /// ```
            pub fn timeout(
                duration: ::std::time::Duration,
            ) -> Source<impl ::core::future::Future<Output = ()> + ::core::marker::Send + 'static>
            {
                $crate::sources::timeout::<super::$rt>(duration)
            }

            /// Fires at `deadline`, with a `Timeout` reason giving the time left when it was
            /// made.
            ///
            /// ```
            /// use std::time::{Duration, Instant};
            #[doc = concat!("let source = ", $krate, "::sources::deadline(Instant::now() + Duration::from_millis(1));")]
            #[doc = concat!($block_on, "(source.future);")]
            /// ```
            pub fn deadline(
                deadline: ::std::time::Instant,
            ) -> Source<impl ::core::future::Future<Output = ()> + ::core::marker::Send + 'static>
            {
                $crate::sources::deadline::<super::$rt>(deadline)
            }

            /// Fires once `predicate` returns `true`: checked at once, then every `interval`,
            /// with a `Condition` reason. A panicking predicate is reported (see
            /// [`cancel_when`](super::cancel_when)) and checking goes on.
            ///
            /// ```
            /// use std::sync::atomic::{AtomicBool, Ordering};
            /// use std::time::Duration;
            ///
            /// static READY: AtomicBool = AtomicBool::new(true);
            #[doc = concat!("let source = ", $krate, "::sources::condition(|| READY.load(Ordering::Relaxed), Duration::from_millis(10));")]
            #[doc = concat!($block_on, "(source.future);")]
            /// ```
            pub fn condition(
                predicate: impl ::core::ops::FnMut() -> bool + ::core::marker::Send + 'static,
                interval: ::std::time::Duration,
            ) -> Source<impl ::core::future::Future<Output = ()> + ::core::marker::Send + 'static>
            {
                $crate::sources::condition::<super::$rt>(predicate, interval)
            }
        }
    };
}
