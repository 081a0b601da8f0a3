//! [`TaskTracker`]: waiting until cancelled work has actually stopped, on any executor.
//!
//! Same names and meanings as `tokio_util::task::TaskTracker`. Its `spawn` and `spawn_blocking`
//! need a runtime: the adapters' `TaskTrackerExt` adds them (`cancelable-smol`,
//! `cancelable-async-std`); on any other executor, spawn [`TaskTracker::track_future`] yourself.
//!
//! # How waiting works
//!
//! The state is one atomic word, `live tasks << 1 | closed`, so tracking a task, dropping one,
//! `close`, `reopen`, `len` and `is_closed` are single atomic operations and take no lock.
//!
//! Waiters wait on a [`CancellationToken`], the core's own wait primitive (intrusive, wakes in
//! batches, no lock held while waking): the tracker keeps a *drained* token in a slot, created
//! lazily by the first `wait()` after the previous drain. Whoever moves the state to "closed and
//! empty" takes the token out of the slot and cancels it, which wakes exactly the waiters that
//! were created before that moment, even if the tracker is reopened or gains a task before they
//! are polled (tokio-util's "no ABA" guarantee). A later `wait()` finds the slot empty and makes a
//! fresh token, so one drain never leaks into the next generation.
//!
//! No lost wake-up: `wait()` takes its token under the slot's lock, then (when polled) loads the
//! state. The notifier changes the state, then takes the token under the same lock. If the waiter
//! locked first, it holds the very token the notifier cancels. If the notifier locked first, its
//! state change happens before the waiter's lock, so the waiter's load sees it (or a later
//! state) and returns at once when that state is drained. `tests/loom_tracker.rs` checks both.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::sync::{Arc, AtomicUsize, LockedCell, Ordering, RawLock};
use crate::token::CancellationToken;
use crate::wait::WaitForCancellationFutureOwned;

/// Bit 0 of the state: the tracker is closed.
const CLOSED: usize = 1;
/// One live task, in the state's upper bits.
const TASK: usize = 2;

struct Inner {
    /// `live tasks << 1 | CLOSED`.
    state: AtomicUsize,
    /// Guards `drained`.
    lock: RawLock,
    /// The token the next drain cancels; `None` until a waiter needs one.
    drained: LockedCell<Option<CancellationToken>>,
}

// SAFETY: `drained` is only touched while `lock` is held (see `drained_token` and `notify`);
// everything else is atomic or `Sync` itself.
unsafe impl Sync for Inner {}

impl Inner {
    /// Closed and without live tasks. Acquire: pairs with the Release of the last `drop_task`
    /// and of `close`, so a waiter that returns sees everything the tasks did.
    fn is_closed_and_empty(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// The token the next drain will cancel (created here if no waiter has asked since the
    /// last drain).
    fn drained_token(&self) -> CancellationToken {
        let _guard = self.lock.lock();
        // SAFETY: `self.lock` is held.
        let current = unsafe { self.drained.with(|slot| slot.clone()) };
        match current {
            Some(token) => token,
            None => {
                let token = CancellationToken::new();
                // SAFETY: `self.lock` is held.
                unsafe { self.drained.replace(Some(token.clone())) };
                token
            }
        }
    }

    fn add_task(&self) {
        // Relaxed, like tokio-util: a new task publishes nothing a waiter must see; it only
        // keeps waiters waiting, and every waiter re-reads the state through an Acquire load.
        self.state.fetch_add(TASK, Ordering::Relaxed);
    }

    fn drop_task(&self) {
        // Release: the task's work happens before a waiter's Acquire load that sees it gone.
        if self.state.fetch_sub(TASK, Ordering::Release) == TASK | CLOSED {
            self.notify();
        }
    }

    /// The state just became closed and empty: wake every waiter of this generation.
    #[cold]
    fn notify(&self) {
        let token = {
            let _guard = self.lock.lock();
            // SAFETY: `self.lock` is held.
            unsafe { self.drained.replace(None) }
        };
        // Cancelled outside the lock: waking runs wakers, which may call back into the tracker.
        if let Some(token) = token {
            token.cancel();
        }
    }
}

/// Counts live tasks and lets you wait until all of them have finished, on any executor.
///
/// Cancelling is half of a shutdown; the other half is waiting until the cancelled work has
/// really stopped. Wrap every task in [`track_future`](Self::track_future) (or hold a
/// [`token`](Self::token) for it), then [`close`](Self::close) the tracker and await
/// [`wait`](Self::wait): it resolves once the tracker is closed **and** no task is left.
///
/// The API is `tokio_util::task::TaskTracker`'s, without tokio: migrating is changing the import
/// (plus an adapter's `TaskTrackerExt` for `tracker.spawn(fut)` and `tracker.spawn_blocking(f)`,
/// or spawning `tracker.track_future(fut)` yourself on another executor). Clones
/// share the same set of tasks. Checking, tracking and dropping a task take no lock; waiting
/// allocates at most one token per drain, shared by every waiter.
///
/// ```
/// use cancelable::{CancellationToken, TaskTracker};
/// use futures_lite::future;
///
/// let shutdown = CancellationToken::new();
/// let tracker = TaskTracker::new();
/// let mut workers = Vec::new();
/// for _ in 0..3 {
///     let token = shutdown.child_token();
///     let worker = tracker.track_future(async move { token.cancelled().await });
///     workers.push(std::thread::spawn(move || future::block_on(worker)));
/// }
/// tracker.close();
/// assert_eq!(tracker.len(), 3);
///
/// shutdown.cancel();
/// future::block_on(tracker.wait());
/// assert!(tracker.is_empty());
/// # for worker in workers { worker.join().unwrap(); }
/// ```
pub struct TaskTracker {
    inner: Arc<Inner>,
}

impl TaskTracker {
    /// A new tracker, open and empty.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// assert!(!tracker.is_closed());
    /// assert!(tracker.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(0),
                lock: RawLock::new(),
                drained: LockedCell::new(None),
            }),
        }
    }

    /// A future that resolves once the tracker is closed and empty (at once if it already is).
    ///
    /// Like tokio-util's, it is ABA-proof: if the tracker is closed and empty even briefly after
    /// this call, the future resolves, even if tasks were added or the tracker reopened before
    /// it was polled.
    ///
    /// ```
    /// use cancelable::TaskTracker;
    /// use futures_lite::future;
    ///
    /// let tracker = TaskTracker::new();
    /// let token = tracker.token();
    /// let waiting = tracker.wait();
    /// tracker.close();
    /// drop(token); // closed and empty: `waiting` will resolve...
    /// let _again = tracker.token(); // ...even though a task arrived since
    /// future::block_on(waiting);
    /// ```
    pub fn wait(&self) -> TaskTrackerWaitFuture<'_> {
        let wait = if self.inner.is_closed_and_empty() {
            Wait::Done
        } else {
            Wait::Pending {
                drained: self.inner.drained_token().cancelled_owned(),
            }
        };
        TaskTrackerWaitFuture {
            tracker: self,
            wait,
        }
    }

    /// Closes the tracker, so that [`wait`](Self::wait) can resolve once it is empty. Tasks can
    /// still be tracked afterwards. `true` if this call closed it, `false` if it already was.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// assert!(tracker.close());
    /// assert!(!tracker.close());
    /// ```
    pub fn close(&self) -> bool {
        // AcqRel, like tokio-util: `close` and a later successful `reopen` (or `close`) are
        // ordered like the lock and unlock of a `Mutex<bool>`.
        let state = self.inner.state.fetch_or(CLOSED, Ordering::AcqRel);
        if state == 0 {
            self.inner.notify();
        }
        state & CLOSED == 0
    }

    /// Reopens the tracker: [`wait`](Self::wait) futures created from now on wait for the next
    /// [`close`](Self::close). `true` if this call reopened it, `false` if it was open.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// tracker.close();
    /// assert!(tracker.reopen());
    /// assert!(!tracker.reopen());
    /// ```
    pub fn reopen(&self) -> bool {
        let state = self.inner.state.fetch_and(!CLOSED, Ordering::AcqRel);
        state & CLOSED != 0
    }

    /// Whether the tracker is [closed](Self::close).
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// tracker.close();
    /// assert!(tracker.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// The number of live tasks (tracked futures and tokens not yet dropped).
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// let _a = tracker.token();
    /// let _b = tracker.track_future(async {});
    /// assert_eq!(tracker.len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.state.load(Ordering::Acquire) >> 1
    }

    /// Whether no task is live.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// let token = tracker.token();
    /// assert!(!tracker.is_empty());
    /// drop(token);
    /// assert!(tracker.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) <= CLOSED
    }

    /// Wraps `future` so that it counts as a live task until the returned future is **dropped**
    /// (tokio-util's meaning: an executor drops a task's future when it completes, or when the
    /// task is cancelled).
    ///
    /// ```
    /// use cancelable::TaskTracker;
    /// use futures_lite::future;
    ///
    /// let tracker = TaskTracker::new();
    /// let task = tracker.track_future(async { 42 });
    /// assert_eq!(tracker.len(), 1);
    /// assert_eq!(future::block_on(task), 42); // `block_on` drops the future when done
    /// assert!(tracker.is_empty());
    /// ```
    pub fn track_future<F: Future>(&self, future: F) -> TrackedFuture<F> {
        TrackedFuture {
            future,
            token: self.token(),
        }
    }

    /// A token that counts as one live task until it is dropped: for work that is not one
    /// future (a thread, a callback, a pool slot).
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// let token = tracker.token();
    /// let worker = std::thread::spawn(move || drop(token));
    /// tracker.close();
    /// futures_lite::future::block_on(tracker.wait());
    /// # worker.join().unwrap();
    /// ```
    pub fn token(&self) -> TaskTrackerToken {
        self.inner.add_task();
        TaskTrackerToken {
            tracker: self.clone(),
        }
    }

    /// Whether both trackers share the same set of tasks (one is a clone of the other).
    ///
    /// ```
    /// use cancelable::TaskTracker;
    ///
    /// let a = TaskTracker::new();
    /// assert!(TaskTracker::ptr_eq(&a, &a.clone()));
    /// assert!(!TaskTracker::ptr_eq(&a, &TaskTracker::new()));
    /// ```
    #[must_use]
    pub fn ptr_eq(left: &TaskTracker, right: &TaskTracker) -> bool {
        Arc::ptr_eq(&left.inner, &right.inner)
    }
}

impl Default for TaskTracker {
    /// A new tracker, open and empty, like [`TaskTracker::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for TaskTracker {
    /// Another handle to the same set of tasks: `close`, `reopen` and new tasks are shared.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for TaskTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.load(Ordering::Acquire);
        f.debug_struct("TaskTracker")
            .field("len", &(state >> 1))
            .field("is_closed", &(state & CLOSED != 0))
            .finish()
    }
}

/// One live task of a [`TaskTracker`], until dropped. Cloning counts one more task.
///
/// ```
/// let tracker = cancelable::TaskTracker::new();
/// let token = tracker.token();
/// let copy = token.clone();
/// assert_eq!(tracker.len(), 2);
/// assert!(cancelable::TaskTracker::ptr_eq(token.task_tracker(), &tracker));
/// drop((token, copy));
/// assert!(tracker.is_empty());
/// ```
pub struct TaskTrackerToken {
    tracker: TaskTracker,
}

impl TaskTrackerToken {
    /// The tracker this token counts in.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// assert_eq!(tracker.token().task_tracker().len(), 1);
    /// ```
    #[must_use]
    pub fn task_tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

impl Clone for TaskTrackerToken {
    /// A new token of the same tracker: `token.task_tracker().token()`.
    fn clone(&self) -> Self {
        self.tracker.token()
    }
}

impl Drop for TaskTrackerToken {
    /// The task has ended; the last one of a closed tracker wakes its waiters.
    fn drop(&mut self) {
        self.tracker.inner.drop_task();
    }
}

impl fmt::Debug for TaskTrackerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTrackerToken")
            .field("task_tracker", &self.tracker)
            .finish()
    }
}

pin_project! {
    /// The future of [`TaskTracker::track_future`]: polls the inner future, counts as a live
    /// task until dropped.
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// let task = tracker.track_future(async {});
    /// drop(task); // a dropped, never-polled task is over too
    /// assert!(tracker.is_empty());
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct TrackedFuture<F> {
        #[pin]
        future: F,
        token: TaskTrackerToken,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<F: fmt::Debug> fmt::Debug for TrackedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedFuture")
            .field("future", &self.future)
            .field("task_tracker", self.token.task_tracker())
            .finish()
    }
}

pin_project! {
    #[project = WaitProj]
    enum Wait {
        // Closed and empty when `wait()` was called.
        Done,
        // Waits for the drain of the generation current at `wait()`.
        Pending {
            #[pin]
            drained: WaitForCancellationFutureOwned,
        },
    }
}

pin_project! {
    /// The future of [`TaskTracker::wait`].
    ///
    /// ```
    /// let tracker = cancelable::TaskTracker::new();
    /// tracker.close();
    /// futures_lite::future::block_on(tracker.wait());
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct TaskTrackerWaitFuture<'a> {
        tracker: &'a TaskTracker,
        #[pin]
        wait: Wait,
    }
}

impl Future for TaskTrackerWaitFuture<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.wait.project() {
            WaitProj::Done => Poll::Ready(()),
            // The state first: drained now means done without touching the token's list.
            WaitProj::Pending { drained } => {
                if this.tracker.inner.is_closed_and_empty() {
                    Poll::Ready(())
                } else {
                    drained.poll(cx)
                }
            }
        }
    }
}

impl fmt::Debug for TaskTrackerWaitFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTrackerWaitFuture")
            .field("task_tracker", self.tracker)
            .finish()
    }
}
