//! [`Runtime`]: the little an adapter supplies.

use std::future::Future;
use std::time::{Duration, Instant};

/// What an async runtime supplies to cancelable: spawning, a pool for blocking work, and
/// timers. The rest (timeouts, watchers, signals, shutdown, tracked spawning) is written once
/// in this crate over these few functions.
///
/// The functions take no `self`: the runtimes this is for (smol, async-std) have a global
/// executor and global timers. An adapter is a unit struct implementing this trait, plus one
/// [`adapter!`](crate::adapter) invocation.
///
/// ```
/// use std::future::Future;
/// use std::time::{Duration, Instant};
///
/// /// smol, as cancelable sees it.
/// struct Smol;
///
/// impl cancelable_rt::Runtime for Smol {
///     type Task<T: Send + 'static> = smol::Task<T>;
///
///     fn spawn<F>(future: F) -> smol::Task<F::Output>
///     where
///         F: Future + Send + 'static,
///         F::Output: Send + 'static,
///     {
///         smol::spawn(future)
///     }
///
///     fn spawn_blocking<F, T>(f: F) -> smol::Task<T>
///     where
///         F: FnOnce() -> T + Send + 'static,
///         T: Send + 'static,
///     {
///         smol::unblock(f)
///     }
///
///     fn detach<T: Send + 'static>(task: smol::Task<T>) {
///         task.detach();
///     }
///
///     async fn sleep(duration: Duration) {
///         smol::Timer::after(duration).await;
///     }
///
///     async fn sleep_until(deadline: Instant) {
///         smol::Timer::at(deadline).await;
///     }
/// }
///
/// let late = cancelable_rt::timeout::<Smol, _>(Duration::from_millis(1), std::future::pending::<()>());
/// assert!(smol::block_on(late).is_err());
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's own handle to a spawned task: a future with the task's output. Whatever
    /// dropping it does, this crate's [`JoinHandle`](crate::JoinHandle) detaches the task
    /// through [`detach`](Self::detach).
    type Task<T: Send + 'static>: Future<Output = T> + Send + Unpin + 'static;

    /// Spawns `future` on the runtime's executor.
    fn spawn<F>(future: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs the blocking closure `f` on the runtime's threads for blocking work.
    fn spawn_blocking<F, T>(f: F) -> Self::Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Lets `task` run to completion without its handle.
    fn detach<T: Send + 'static>(task: Self::Task<T>);

    /// Completes after `duration`. Made only when a timer is really needed, so it may read the
    /// clock and register with the reactor.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Completes at `deadline`, at once if it has passed.
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send + 'static;
}
