//! [`current()`]: the innermost operation being polled on this thread.
//!
//! A stack per thread, pushed before each poll of a body (or shield) and popped after it, so it
//! is right whatever the executor does between polls: nested operations, several operations
//! interleaved on one thread, a body moving to another thread.

use alloc::vec::Vec;
use core::cell::RefCell;

use crate::sync::Arc;

use super::context::{OperationContext, Shared};

std::thread_local! {
    static STACK: RefCell<Vec<OperationContext>> = const { RefCell::new(Vec::new()) };
}

/// The innermost operation whose body or shield is being polled on this thread, at any depth
/// of plain async fns; `None` outside every operation.
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
    STACK.with_borrow(|stack| stack.last().cloned())
}

/// Keeps `cx` on top of this thread's stack until dropped (also when the poll unwinds).
pub(crate) struct Entered(());

pub(crate) fn enter(cx: &OperationContext) -> Entered {
    STACK.with_borrow_mut(|stack| stack.push(cx.clone()));
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
pub(crate) fn polled_in_body_outside_shields(shared: &Arc<Shared>) -> bool {
    STACK.with_borrow(|stack| {
        let mut in_body = false;
        for cx in stack.iter().filter(|cx| Arc::ptr_eq(&cx.shared, shared)) {
            if !cx.is_main() {
                return false;
            }
            in_body = true;
        }
        in_body
    })
}
