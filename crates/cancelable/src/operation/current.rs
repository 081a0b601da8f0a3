//! [`current()`]: the innermost operation being polled on this thread.
//!
//! A stack per thread, pushed before each poll of a body (or shield) and popped after it, so it
//! is right whatever the executor does between polls: nested operations, several operations
//! interleaved on one thread, a body moving to another thread.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::reason::CancelReason;
use crate::sync::Arc;
use crate::token::CancellationToken;
use crate::wait::WaitForCancellationFutureOwned;

use super::context::{OperationContext, Shared};
use super::flavor::Flavor;
use super::status::OperationId;

std::thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// One body or shield being polled on this thread.
#[derive(Debug)]
pub enum Entry {
    /// Of an [`Operation`](crate::Operation): `current()` can hand its context out.
    Sendable(OperationContext),
    /// Of a [`LocalOperation`](crate::LocalOperation), whose context may not outlive its scope
    /// (so cannot be kept here): what nesting checks and nested operations need of it.
    Local {
        /// The operation's record, for identity only (never dereferenced).
        op: *const (),
        /// Its body, not a shield.
        main: bool,
        id: OperationId,
        /// The token of the body or shield being polled.
        token: CancellationToken,
    },
}

impl Entry {
    fn is<K: Flavor>(&self, op: &Arc<Shared<K>>) -> bool {
        let ptr = Arc::as_ptr(op).cast::<()>();
        match self {
            Entry::Sendable(cx) => core::ptr::eq(Arc::as_ptr(&cx.shared).cast(), ptr),
            Entry::Local { op, .. } => core::ptr::eq(*op, ptr),
        }
    }

    fn is_main(&self) -> bool {
        match self {
            Entry::Sendable(cx) => cx.is_main(),
            Entry::Local { main, .. } => *main,
        }
    }

    fn id_and_token(&self) -> (&OperationId, &CancellationToken) {
        match self {
            Entry::Sendable(cx) => (cx.id(), cx.token()),
            Entry::Local { id, token, .. } => (id, token),
        }
    }
}

/// The innermost operation whose body or shield is being polled on this thread, at any depth
/// of plain async fns; `None` outside every operation, and inside a
/// [`LocalOperation`](crate::LocalOperation)'s body (its context cannot leave its scope).
///
/// Deep library code can use it to check cancelation without a context parameter.
///
/// ```
/// use cancelable::{Cancelled, Operation};
/// use futures_lite::future;
///
/// async fn deep_helper() -> Result<u32, Cancelled> {
///     if let Some(cx) = cancelable::current() {
///         cx.check()?;
///         cx.report_progress(1, None, "deep");
///     }
///     Ok(7)
/// }
///
/// assert!(cancelable::current().is_none());
/// let out = future::block_on(Operation::new("outer").run(|_| async { deep_helper().await }));
/// assert_eq!(out, Ok(7));
/// ```
pub fn current() -> Option<OperationContext> {
    STACK.with_borrow(|stack| match stack.last() {
        Some(Entry::Sendable(cx)) => Some(cx.clone()),
        _ => None,
    })
}

/// Keeps `cx` on top of this thread's stack until dropped (also when the poll unwinds).
pub(crate) struct Entered(());

pub(crate) fn enter<K: Flavor>(cx: &OperationContext<K>) -> Entered {
    let entry = K::stack_entry(&cx.shared, &cx.token);
    STACK.with_borrow_mut(|stack| stack.push(entry));
    Entered(())
}

impl Drop for Entered {
    fn drop(&mut self) {
        STACK.with_borrow_mut(|stack| {
            stack.pop();
        });
    }
}

/// `true` if this thread is inside a poll of the body of the operation `shared`, and not inside
/// a poll of one of its shields.
pub(crate) fn polled_in_body_outside_shields<K: Flavor>(shared: &Arc<Shared<K>>) -> bool {
    STACK.with_borrow(|stack| {
        let mut in_body = false;
        for entry in stack.iter().filter(|entry| entry.is(shared)) {
            if !entry.is_main() {
                return false;
            }
            in_body = true;
        }
        in_body
    })
}

/// The innermost operation whose body or shield is being polled on this thread, of either
/// flavor: its id and the token it runs under (a shield's inside a shield).
pub(crate) fn innermost() -> Option<(OperationId, CancellationToken)> {
    STACK.with_borrow(|stack| {
        let (id, token) = stack.last()?.id_and_token();
        Some((id.clone(), token.clone()))
    })
}

/// The link of an operation to the one whose body (or shield) first polled it and which it
/// records as its parent: that one's cancelation reaches this one, wherever this one runs
/// afterwards. Boxed, and only when there is such a parent, so that every other operation's run
/// future stays one pointer larger, not a wait future larger.
pub(crate) struct ParentLink(Option<Pin<Box<Linked>>>);

pin_project! {
    struct Linked {
        token: CancellationToken,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
    }
}

impl ParentLink {
    pub(crate) fn new() -> Self {
        Self(None)
    }

    /// Links to `parent`: its cancelation now reaches the operation.
    pub(crate) fn link(&mut self, parent: CancellationToken) {
        self.0 = Some(Box::pin(Linked {
            cancelled: parent.clone().cancelled_owned(),
            token: parent,
        }));
    }

    /// The parent's reason once it is cancelled (then the link is done).
    #[inline]
    pub(crate) fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Option<CancelReason> {
        let linked = self.0.as_mut()?.as_mut().project();
        if linked.cancelled.poll(cx) == Poll::Pending {
            return None;
        }
        let reason = linked.token.reason().unwrap_or_default();
        self.0 = None;
        Some(reason)
    }
}

impl core::fmt::Debug for ParentLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ParentLink")
            .field("parent", &self.0.as_ref().map(|linked| &linked.token))
            .finish()
    }
}
