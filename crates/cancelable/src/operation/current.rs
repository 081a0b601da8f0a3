//! [`current()`]: the innermost operation being polled on this thread.
//!
//! A stack per thread, pushed before each poll of a body (or shield) and popped after it, so it
//! is right whatever the executor does between polls: nested operations, several operations
//! interleaved on one thread, a body moving to another thread. Its entries are frames on the
//! call stack of those polls, linked from a thread-local pointer: entering costs two pointer
//! writes, with no allocation and no reference count.

use alloc::boxed::Box;
use core::cell::Cell;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::reason::CancelReason;
use crate::sync::Arc;
use crate::token::CancellationToken;
use crate::wait::WaitForCancellationFutureOwned;

use super::context::{OperationContext, Shared};
use super::flavor::Flavor;
use super::status::OperationId;

#[cfg(not(loom))]
std::thread_local! {
    /// The innermost frame; null outside every operation.
    static TOP: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

// Loom runs its threads on one thread of the process: each needs a stack of its own.
#[cfg(loom)]
loom::thread_local! {
    static TOP: Cell<*const Frame> = Cell::new(ptr::null());
}

fn top() -> *const Frame {
    TOP.with(Cell::get)
}

fn set_top(frame: *const Frame) {
    TOP.with(|top| top.set(frame));
}

/// One body or shield being polled on this thread: a local of [`within`], linked while the poll
/// runs.
struct Frame {
    /// The frame of the poll this one is nested in.
    prev: *const Frame,
    /// The `OperationContext<K>` being polled, for the functions below.
    cx: *const (),
    /// Its operation's record, for identity only (never dereferenced).
    op: *const (),
    /// A body, not a shield.
    main: bool,
    /// `K::current` of the context.
    current: unsafe fn(*const ()) -> Option<OperationContext>,
    /// The context's id and token.
    id_and_token: unsafe fn(*const ()) -> (OperationId, CancellationToken),
}

/// # Safety
/// `cx` points to a live `OperationContext<K>`.
unsafe fn current_of<K: Flavor>(cx: *const ()) -> Option<OperationContext> {
    // SAFETY: forwarded to the caller.
    let cx = unsafe { &*cx.cast::<OperationContext<K>>() };
    K::current(&cx.shared, cx.shield.as_ref())
}

/// # Safety
/// `cx` points to a live `OperationContext<K>`.
unsafe fn id_and_token_of<K: Flavor>(cx: *const ()) -> (OperationId, CancellationToken) {
    // SAFETY: forwarded to the caller.
    let cx = unsafe { &*cx.cast::<OperationContext<K>>() };
    (cx.id().clone(), cx.token().clone())
}

/// Calls `f` with the frame of this thread's innermost poll, if any.
fn with_frames<R>(f: impl FnOnce(Option<&Frame>) -> R) -> R {
    // SAFETY: a frame is linked only while the `within` call that owns it runs on this thread
    // (its guard unlinks it, also on unwind), and `within` calls nest, so `TOP` and every `prev`
    // from it point to live frames, whose contexts `within` borrows for as long.
    f(unsafe { top().as_ref() })
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
    with_frames(|top| {
        let top = top?;
        // SAFETY: `top.cx` is the context of a live frame (see `with_frames`), of the flavor
        // `top.current` was made for.
        unsafe { (top.current)(top.cx) }
    })
}

/// Runs `f` with `cx` on top of this thread's stack.
#[inline]
pub(crate) fn within<K: Flavor, R>(cx: &OperationContext<K>, f: impl FnOnce() -> R) -> R {
    /// Unlinks the frame when `within` returns or unwinds.
    struct Unlink(*const Frame);
    impl Drop for Unlink {
        fn drop(&mut self) {
            set_top(self.0);
        }
    }
    let frame = Frame {
        prev: top(),
        cx: ptr::from_ref(cx).cast(),
        op: Arc::as_ptr(&cx.shared).cast(),
        main: cx.is_main(),
        current: current_of::<K>,
        id_and_token: id_and_token_of::<K>,
    };
    set_top(&frame);
    let _unlink = Unlink(frame.prev);
    f()
}

/// `true` if this thread is inside a poll of the body of the operation `shared`, and not inside
/// a poll of one of its shields.
pub(crate) fn polled_in_body_outside_shields<K: Flavor>(shared: &Arc<Shared<K>>) -> bool {
    let op = Arc::as_ptr(shared).cast::<()>();
    with_frames(|mut frame| {
        let mut in_body = false;
        while let Some(f) = frame {
            if ptr::eq(f.op, op) {
                if !f.main {
                    return false;
                }
                in_body = true;
            }
            // SAFETY: a live frame's `prev` is null or a live frame (see `with_frames`).
            frame = unsafe { f.prev.as_ref() };
        }
        in_body
    })
}

/// The innermost operation whose body or shield is being polled on this thread, of either
/// flavor: its id and the token it runs under (a shield's inside a shield).
pub(crate) fn innermost() -> Option<(OperationId, CancellationToken)> {
    with_frames(|top| {
        let top = top?;
        // SAFETY: as in `current`.
        Some(unsafe { (top.id_and_token)(top.cx) })
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
