//! [`WeakCancellationToken`]: a handle that watches a token without keeping it alive.
//!
//! What a timer, a signal handler or a polling task needs when it may cancel a token later: it
//! must not keep the token's node alive (a request whose handles are all dropped should cost
//! nothing after that), and it must learn when its work has become pointless, that is when the
//! token is cancelled or dropped, so it can stop instead of sleeping on.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::token::CancellationToken;
use crate::tree::{WaitEntry, WeakNodeRef};

/// A weak handle to a token's node, from [`CancellationToken::downgrade`].
///
/// It does not keep the node alive: once every [`CancellationToken`] handle of the node is
/// dropped, [`upgrade`](Self::upgrade) returns `None`. [`released`](Self::released) resolves
/// when the token is cancelled or its last handle is dropped, whichever comes first: the moment
/// a pending "cancel this later" job can stop.
///
/// Handles are the token's clones and whatever holds one (a
/// [`CancelCallback`](crate::CancelCallback), an owned future, a drop guard); child tokens are
/// not. A token whose handles are all dropped is dead even while
/// children made from it still run: they stay reached by its ancestors' cancelation, but a
/// timer watching the dead token stops, so keep a handle for as long as a deadline should bound
/// the work below it.
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// let weak = token.downgrade();
/// assert_eq!(weak.upgrade().as_ref(), Some(&token));
///
/// drop(token);
/// assert!(weak.upgrade().is_none(), "a weak handle keeps nothing alive");
/// futures_lite::future::block_on(weak.released()); // resolves at once: the token is gone
/// ```
pub struct WeakCancellationToken {
    node: WeakNodeRef,
}

impl WeakCancellationToken {
    pub(crate) fn new(node: WeakNodeRef) -> Self {
        Self { node }
    }

    /// A strong handle to the token, unless all of its handles were dropped.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let weak = token.downgrade();
    /// weak.upgrade().unwrap().cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn upgrade(&self) -> Option<CancellationToken> {
        self.node.upgrade().map(CancellationToken::from_node)
    }

    /// Whether the token was cancelled, even if it has no handles left. One atomic load.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let weak = token.downgrade();
    /// token.cancel();
    /// drop(token);
    /// assert!(weak.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.node.node().is_cancelled()
    }

    /// A future that resolves once the token is cancelled or its last strong handle is dropped.
    /// `'static + Send`, and it holds only this weak reference; like
    /// [`cancelled()`](CancellationToken::cancelled) it allocates nothing while it waits.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    /// use futures_lite::future;
    ///
    /// let token = CancellationToken::new();
    /// let weak = token.downgrade();
    /// let watcher = std::thread::spawn(move || future::block_on(weak.released()));
    /// drop(token); // never cancelled: dropping the last handle releases the watcher
    /// watcher.join().unwrap();
    /// ```
    pub fn released(&self) -> Released {
        Released {
            token: self.clone(),
            waiter: WaitEntry::default(),
        }
    }
}

impl Clone for WeakCancellationToken {
    /// Another weak handle to the same node: one atomic increment.
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl PartialEq for WeakCancellationToken {
    /// Weak handles are equal when they lead to the same node.
    fn eq(&self, other: &Self) -> bool {
        self.node.addr() == other.node.addr()
    }
}

impl Eq for WeakCancellationToken {}

impl fmt::Debug for WeakCancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakCancellationToken")
            .field("cancelled", &self.is_cancelled())
            .field("alive", &!self.node.node().is_dead())
            .finish()
    }
}

impl core::panic::UnwindSafe for WeakCancellationToken {}
impl core::panic::RefUnwindSafe for WeakCancellationToken {}

pin_project! {
    /// The future of [`WeakCancellationToken::released`]: resolves once the token is cancelled
    /// or its last strong handle is dropped.
    #[must_use = "futures do nothing unless polled"]
    pub struct Released {
        token: WeakCancellationToken,
        #[pin]
        waiter: WaitEntry<WeakNodeRef>,
    }
}

impl Future for Released {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        this.waiter.poll_released(&this.token.node, cx)
    }
}

impl fmt::Debug for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Released")
            .field("token", &self.token)
            .finish()
    }
}
