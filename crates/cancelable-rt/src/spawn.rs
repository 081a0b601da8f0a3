//! Spawning: under a token, or tracked by a [`TaskTracker`]; handles that detach on drop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cancelable::{CancellationToken, Cancelled, FutureExt as _, TaskTracker};

use crate::Runtime;

/// A handle to a spawned task: awaiting it gives the task's output.
///
/// **Dropping it detaches the task**, which runs on to completion, as tokio's and async-std's
/// handles do, on every runtime (a bare `smol::Task` would cancel its task). Stopping a task
/// is its token's job: spawn it under a token and cancel the token.
///
/// ```
/// use cancelable::CancellationToken;
///
/// smol::block_on(async {
///     let (sender, receiver) = smol::channel::bounded(1);
///     drop(cancelable_smol::spawn(&CancellationToken::new(), async move { sender.send("done").await }));
///     assert_eq!(receiver.recv().await, Ok("done")); // the task ran without its handle
/// });
/// ```
pub struct JoinHandle<R: Runtime, T: Send + 'static> {
    /// `None` only once dropped or detached.
    task: Option<R::Task<T>>,
}

impl<R: Runtime, T: Send + 'static> JoinHandle<R, T> {
    pub(crate) fn new(task: R::Task<T>) -> Self {
        Self { task: Some(task) }
    }

    /// Lets the task run on without a handle: the same as dropping the handle, said out loud.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// cancelable_smol::spawn(&token, async {}).detach();
    /// ```
    pub fn detach(self) {}
}

impl<R: Runtime, T: Send + 'static> Future for JoinHandle<R, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let task = self
            .task
            .as_mut()
            .expect("a JoinHandle is never polled once dropped");
        Pin::new(task).poll(cx)
    }
}

impl<R: Runtime, T: Send + 'static> Drop for JoinHandle<R, T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            R::detach(task);
        }
    }
}

impl<R: Runtime, T: Send + 'static> fmt::Debug for JoinHandle<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

/// Spawns `fut` on `R` under `token`: the task's output is `Ok(output)`, or `Err(Cancelled)`
/// with the token's reason if the token is cancelled first, in which case `fut` is dropped as
/// soon as the task sees the cancelation (already cancelled: never polled).
///
/// ```
/// use cancelable::{CancelKind, CancellationToken};
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let token = CancellationToken::new();
///     let task = cancelable_rt::spawn::<SmolRuntime, _>(&token, std::future::pending::<()>());
///     token.cancel_with(CancelKind::Shutdown);
///     assert_eq!(task.await.unwrap_err().reason().kind(), CancelKind::Shutdown);
/// });
/// ```
pub fn spawn<R, F>(token: &CancellationToken, fut: F) -> JoinHandle<R, Result<F::Output, Cancelled>>
where
    R: Runtime,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle::new(R::spawn(fut.cancelable(token)))
}

/// Spawns `task` on `R`, counted in `tracker` until it ends: tokio-util's
/// `TaskTracker::spawn`, on any runtime.
///
/// ```
/// use cancelable::TaskTracker;
/// use cancelable_smol::SmolRuntime;
///
/// let tracker = TaskTracker::new();
/// let task = cancelable_rt::spawn_tracked::<SmolRuntime, _>(&tracker, async { 1 });
/// assert_eq!(tracker.len(), 1);
/// assert_eq!(smol::block_on(task), 1);
/// ```
pub fn spawn_tracked<R, F>(tracker: &TaskTracker, task: F) -> JoinHandle<R, F::Output>
where
    R: Runtime,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle::new(R::spawn(tracker.track_future(task)))
}

/// Runs the blocking closure `task` on `R`'s threads for blocking work, counted in `tracker`
/// until it returns: tokio-util's `TaskTracker::spawn_blocking`, on any runtime.
///
/// ```
/// use cancelable::TaskTracker;
/// use cancelable_smol::SmolRuntime;
///
/// let tracker = TaskTracker::new();
/// let task = cancelable_rt::spawn_blocking_tracked::<SmolRuntime, _, _>(&tracker, || 2 + 2);
/// assert_eq!(smol::block_on(task), 4);
/// ```
pub fn spawn_blocking_tracked<R, F, T>(tracker: &TaskTracker, task: F) -> JoinHandle<R, T>
where
    R: Runtime,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let tracked = tracker.token();
    JoinHandle::new(R::spawn_blocking(move || {
        let output = task();
        drop(tracked);
        output
    }))
}
