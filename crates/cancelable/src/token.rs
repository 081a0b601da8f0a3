//! [`CancellationToken`], the public handle to a node of the cancelation tree.

use core::fmt;
use core::future::Future;
use core::hash::{Hash, Hasher};

use crate::callback::{self, CancelCallback};
use crate::guard::{DropGuard, DropGuardRef};
use crate::reason::{CancelReason, Cancelled};
use crate::tree::NodeRef;
use crate::wait::{
    RunUntilCancelledFuture, RunUntilCancelledFutureOwned, WaitForCancellationFuture,
    WaitForCancellationFutureOwned,
};
use crate::weak::WeakCancellationToken;

/// A handle to a node of a cancelation tree: one pointer, cheap to clone, `Send + Sync`.
///
/// Clones are handles to the same node; [`child_token`](Self::child_token) and
/// [`any_of`](Self::any_of) make new nodes below it. Cancelling a node cancels every live
/// descendant, with the same [`CancelReason`]; it never affects ancestors. Dropping handles
/// never cancels (use [`drop_guard`](Self::drop_guard) for that).
///
/// It is a superset of `tokio_util::sync::CancellationToken`: every method of that type exists
/// here with the same signature and meaning, on any executor and without `std`.
///
/// ```
/// use cancelable::{CancelKind, CancellationToken};
///
/// let server = CancellationToken::new();
/// let request = server.child_token();
/// let subtask = request.child_token();
///
/// request.cancel_with(CancelKind::Disconnected);
/// assert!(subtask.is_cancelled());
/// assert_eq!(subtask.reason().unwrap().kind(), CancelKind::Disconnected);
/// assert!(!server.is_cancelled());
/// ```
pub struct CancellationToken {
    node: NodeRef,
}

impl CancellationToken {
    /// A new root token.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// assert!(!token.is_cancelled());
    /// ```
    pub fn new() -> Self {
        Self {
            node: NodeRef::new_root(),
        }
    }

    /// A new token cancelled whenever this one is, with the same reason; cancelling the child
    /// never affects `self`. A child of a cancelled token is born cancelled.
    ///
    /// Dropping every handle of the child unlinks it from `self` in O(1), so a long-lived parent
    /// with many short-lived children stays at constant memory.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let parent = CancellationToken::new();
    /// let child = parent.child_token();
    /// child.cancel();
    /// assert!(!parent.is_cancelled());
    ///
    /// parent.cancel();
    /// assert!(parent.child_token().is_cancelled());
    /// ```
    pub fn child_token(&self) -> CancellationToken {
        Self {
            node: self.node.child(),
        }
    }

    /// A new token cancelled when any of `tokens` is, inheriting the reason of the first one
    /// to be cancelled (a *linked* token with several parents). With no tokens it is cancelled
    /// only directly. Dropping it unlinks it from every parent.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancellationToken};
    ///
    /// let request = CancellationToken::new();
    /// let shutdown = CancellationToken::new();
    /// let work = CancellationToken::any_of([&request, &shutdown]);
    ///
    /// shutdown.cancel_with(CancelKind::Shutdown);
    /// assert_eq!(work.reason().unwrap().kind(), CancelKind::Shutdown);
    /// assert!(!request.is_cancelled());
    /// ```
    pub fn any_of<'a>(tokens: impl IntoIterator<Item = &'a CancellationToken>) -> Self {
        Self {
            node: NodeRef::any_of(tokens.into_iter().map(|token| &token.node)),
        }
    }

    /// Whether the token is cancelled: one atomic load, never blocks, takes no lock.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// assert!(!token.is_cancelled());
    /// token.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.node.node().is_cancelled()
    }

    /// Cancels this token and every live descendant with [`CancelReason::manual()`].
    ///
    /// When it returns, every live descendant reports `is_cancelled()`, even where a concurrent
    /// `cancel` on another thread got to part of the tree first (this call helps it finish,
    /// never waits for it). Each `on_cancel` callback of the subtree has run, is running, or was
    /// taken by that other thread's `cancel`, which runs it (unless it is unregistered first)
    /// before that call returns; likewise each waiting task has been woken, or will be by the
    /// call that took it. A call that wins the whole subtree returns only after all of its
    /// callbacks ran and all of its waiters were woken.
    ///
    /// With `std`, a panic in a callback or waker is resumed here after everything else is done
    /// (or, if this thread is already unwinding, e.g. in a [`PanicGuard`](crate::PanicGuard),
    /// dropped after being reported by the panic hook). Without `std` it unwinds at once; the
    /// tree stays consistent, and the next `cancel` that reaches the unfinished part finishes it.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// token.cancel();
    /// assert_eq!(token.reason().unwrap().kind(), cancelable::CancelKind::Manual);
    /// ```
    pub fn cancel(&self) {
        self.cancel_with(CancelReason::manual());
    }

    /// Cancels with `reason`; `true` if this call cancelled the token, `false` if it already
    /// was (the first reason stays).
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason, CancellationToken};
    ///
    /// let token = CancellationToken::new();
    /// assert!(token.cancel_with(CancelReason::timeout().with_message("3s")));
    /// assert!(!token.cancel_with(CancelKind::Shutdown));
    /// assert_eq!(token.reason().unwrap().to_string(), "timeout: 3s");
    /// ```
    pub fn cancel_with(&self, reason: impl Into<CancelReason>) -> bool {
        self.node.cancel(reason.into())
    }

    /// Why the token was cancelled: `Some` exactly when it is cancelled. Takes no lock.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// assert_eq!(token.reason(), None);
    /// token.cancel_with(cancelable::CancelKind::Signal);
    /// assert_eq!(token.reason().unwrap().kind(), cancelable::CancelKind::Signal);
    /// ```
    pub fn reason(&self) -> Option<CancelReason> {
        self.node.node().reason()
    }

    /// `Err(Cancelled)` with the reason when cancelled, for `?` in synchronous code.
    ///
    /// ```
    /// use cancelable::{CancellationToken, Cancelled};
    ///
    /// fn crunch(items: &[u64], token: &CancellationToken) -> Result<u64, Cancelled> {
    ///     let mut sum = 0;
    ///     for item in items {
    ///         token.check()?;
    ///         sum += item;
    ///     }
    ///     Ok(sum)
    /// }
    ///
    /// let token = CancellationToken::new();
    /// assert_eq!(crunch(&[1, 2, 3], &token), Ok(6));
    /// token.cancel();
    /// assert!(crunch(&[1, 2, 3], &token).is_err());
    /// ```
    pub fn check(&self) -> Result<(), Cancelled> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(Cancelled::new(reason)),
        }
    }

    /// A future that resolves once the token is cancelled (at once if it already is). It never
    /// misses a cancelation, whenever it is created or first polled.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// futures_lite::future::block_on(token.cancelled());
    /// ```
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        WaitForCancellationFuture::new(self)
    }

    /// Like [`cancelled`](Self::cancelled), but owns the token: `'static + Send`.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// let done = token.clone().cancelled_owned();
    /// token.cancel();
    /// futures_lite::future::block_on(done);
    /// ```
    pub fn cancelled_owned(self) -> WaitForCancellationFutureOwned {
        WaitForCancellationFutureOwned::new(self)
    }

    /// Runs `fut` until it finishes (`Some(output)`) or the token is cancelled (`None`); `fut`
    /// is dropped on the poll that returns.
    ///
    /// tokio-util's order: the token is checked on the first poll, and if it is cancelled by
    /// then the output is `None` without polling `fut`. After that `fut` is polled first and
    /// the token only while `fut` is pending, so a result that is ready on the poll that also
    /// sees a cancel is returned. To stop at the cancel instead, use
    /// [`FutureExt::cancelable`](crate::FutureExt::cancelable).
    ///
    /// ```
    /// use cancelable::CancellationToken;
    /// use futures_lite::future;
    ///
    /// let token = CancellationToken::new();
    /// assert_eq!(future::block_on(token.run_until_cancelled(async { 1 + 1 })), Some(2));
    /// ```
    pub fn run_until_cancelled<F: Future>(&self, fut: F) -> RunUntilCancelledFuture<'_, F> {
        RunUntilCancelledFuture::new(self, fut)
    }

    /// Like [`run_until_cancelled`](Self::run_until_cancelled), owning the token.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// let work = token.run_until_cancelled_owned(async { unreachable!() });
    /// assert_eq!(futures_lite::future::block_on(work), None::<()>);
    /// ```
    pub fn run_until_cancelled_owned<F: Future>(self, fut: F) -> RunUntilCancelledFutureOwned<F> {
        RunUntilCancelledFutureOwned::new(self, fut)
    }

    /// A guard that cancels this token (reason `Manual`) when dropped.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// drop(token.clone().drop_guard());
    /// assert!(token.is_cancelled());
    /// ```
    pub fn drop_guard(self) -> DropGuard {
        DropGuard::new(self)
    }

    /// A borrowed guard that cancels this token (reason `Manual`) when dropped.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// drop(token.drop_guard_ref());
    /// assert!(token.is_cancelled());
    /// ```
    pub fn drop_guard_ref(&self) -> DropGuardRef<'_> {
        DropGuardRef::new(self)
    }

    /// Registers `f` to run once, with the reason, when the token is cancelled: synchronously
    /// on the thread that cancels, before `cancel` returns. If the token is already cancelled,
    /// `f` runs before `on_cancel` returns.
    ///
    /// Registration and removal are O(1). Dropping the returned [`CancelCallback`] (or calling
    /// [`CancelCallback::unregister`]) prevents a later run, even while a `cancel` is already
    /// running other callbacks ahead of it, and never blocks. Keep callbacks short: they run
    /// inside `cancel`.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use cancelable::{CancelKind, CancellationToken};
    ///
    /// let token = CancellationToken::new();
    /// let (tx, rx) = mpsc::channel();
    /// let _callback = token.on_cancel(move |reason| tx.send(reason.kind()).unwrap());
    /// token.cancel_with(CancelKind::Timeout);
    /// assert_eq!(rx.try_recv(), Ok(CancelKind::Timeout));
    /// ```
    pub fn on_cancel<F>(&self, f: F) -> CancelCallback
    where
        F: FnOnce(&CancelReason) + Send + 'static,
    {
        callback::register(&self.node, f)
    }

    /// Blocks the calling thread until the token is cancelled.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// let worker = token.clone();
    /// let handle = std::thread::spawn(move || worker.wait_blocking());
    /// token.cancel();
    /// handle.join().unwrap();
    /// ```
    #[cfg(feature = "std")]
    pub fn wait_blocking(&self) {
        crate::wait::wait_blocking(&self.node, None);
    }

    /// Blocks the calling thread until the token is cancelled or `timeout` passes; `true` if it
    /// was cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// assert!(!token.wait_blocking_timeout(Duration::from_millis(1)));
    /// token.cancel();
    /// assert!(token.wait_blocking_timeout(Duration::ZERO));
    /// ```
    #[cfg(feature = "std")]
    pub fn wait_blocking_timeout(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now().checked_add(timeout);
        // A timeout too large to represent is no timeout at all.
        crate::wait::wait_blocking(&self.node, deadline)
    }

    /// A guard that cancels the token only if dropped while the thread is panicking.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let guard = token.panic_guard();
    /// drop(guard);
    /// assert!(!token.is_cancelled());
    /// ```
    #[cfg(feature = "std")]
    pub fn panic_guard(&self) -> crate::PanicGuard {
        crate::PanicGuard::new(self.clone())
    }

    /// A [`WeakCancellationToken`]: a handle that can cancel this token later, or learn that it
    /// was cancelled or dropped, without keeping it alive. What a timer or a signal handler
    /// that cancels the token should hold.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let weak = token.downgrade();
    /// assert!(!weak.is_cancelled());
    /// drop(token);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakCancellationToken {
        WeakCancellationToken::new(self.node.downgrade())
    }

    pub(crate) fn from_node(node: NodeRef) -> Self {
        Self { node }
    }

    pub(crate) fn node_ref(&self) -> &NodeRef {
        &self.node
    }

    /// The error for a token known to be cancelled.
    pub(crate) fn cancelled_error(&self) -> Cancelled {
        Cancelled::new(self.reason().unwrap_or_default())
    }
}

impl Default for CancellationToken {
    /// A new root token, like [`CancellationToken::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for CancellationToken {
    /// Another handle to the same node: one atomic increment, no lock.
    #[inline]
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("reason", &self.reason())
            .finish()
    }
}

impl PartialEq for CancellationToken {
    /// Handles are equal when they lead to the same node.
    fn eq(&self, other: &Self) -> bool {
        self.node.addr() == other.node.addr()
    }
}

impl Eq for CancellationToken {}

impl Hash for CancellationToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.node.addr().hash(state)
    }
}

// A token has no state a panic could leave half-updated: every change is one atomic step or
// finished under a lock that is released on unwind.
impl core::panic::UnwindSafe for CancellationToken {}
impl core::panic::RefUnwindSafe for CancellationToken {}
