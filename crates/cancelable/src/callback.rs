//! `on_cancel` callbacks: the typed entry behind the tree's callback list, and its handle.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use crate::reason::CancelReason;
use crate::tree::{CallbackHeader, CallbackVTable, NodeRef, Share, Unregistered};

/// A registered [`on_cancel`](crate::CancellationToken::on_cancel) callback.
///
/// Dropping it, or calling [`unregister`](CancelCallback::unregister), guarantees the callback
/// will not start later, even when a cancelation on another thread (or an earlier callback of the
/// same cancelation) is already under way; neither waits for a run already in progress. It owns
/// no lifetime and is `Send`, so it can be stored next to the work it guards.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// let runs = Arc::new(AtomicUsize::new(0));
///
/// let counter = runs.clone();
/// let kept = token.on_cancel(move |_| { counter.fetch_add(1, Ordering::SeqCst); });
/// let counter = runs.clone();
/// let removed = token.on_cancel(move |_| { counter.fetch_add(100, Ordering::SeqCst); });
/// assert!(removed.unregister());
///
/// token.cancel();
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// drop(kept);
/// ```
#[must_use = "dropping a CancelCallback unregisters the callback"]
pub struct CancelCallback {
    registration: Option<Registration>,
}

struct Registration {
    node: NodeRef,
    header: NonNull<CallbackHeader>,
}

// SAFETY: the closure is `Send` (required by `on_cancel`), and the entry is shared with other
// threads only through the node's lock and the atomic share count.
unsafe impl Send for CancelCallback {}
// SAFETY: `&CancelCallback` gives access to nothing.
unsafe impl Sync for CancelCallback {}

impl CancelCallback {
    /// Removes the callback. `true` exactly when the callback will never run: it was removed
    /// before it started, even if a cancelation had already taken it out of the token to run it.
    /// `false` if it has run, is running (on another thread, or it is the callback calling this),
    /// or was never registered because the token was already cancelled (then it ran inside
    /// `on_cancel`). It never blocks.
    ///
    /// ```
    /// use cancelable::CancellationToken;
    ///
    /// let token = CancellationToken::new();
    /// let callback = token.on_cancel(|_| {});
    /// token.cancel();
    /// assert!(!callback.unregister(), "it already ran");
    /// ```
    pub fn unregister(mut self) -> bool {
        self.release()
    }

    fn release(&mut self) -> bool {
        let Some(Registration { node, header }) = self.registration.take() else {
            return false;
        };
        // The handle's share, and the list's if the entry is ours, go even if dropping the
        // closure panics.
        let _handle_share = Share(header);
        // SAFETY: `header` was registered on `node` by `register`; this handle owns a share.
        match unsafe { node.unregister(header) } {
            Unregistered::FromList => {
                let _list_share = Share(header);
                // SAFETY: unlinking it gave us the closure.
                unsafe { CallbackHeader::drop_closure(header) };
                true
            }
            Unregistered::FromWalk => {
                // SAFETY: claiming it from the walk gave us the closure; the walk keeps its share.
                unsafe { CallbackHeader::drop_closure(header) };
                true
            }
            Unregistered::Started => false,
        }
    }
}

impl Drop for CancelCallback {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for CancelCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelCallback")
            .field("registered", &self.registration.is_some())
            .finish()
    }
}

/// An `on_cancel` entry: the header the tree links, then the closure.
#[repr(C)]
struct Entry<F> {
    header: CallbackHeader,
    closure: UnsafeCell<ManuallyDrop<F>>,
}

impl<F: FnOnce(&CancelReason) + Send + 'static> Entry<F> {
    const VTABLE: &'static CallbackVTable = &CallbackVTable {
        call: Self::call,
        drop_closure: Self::drop_closure,
        dealloc: Self::dealloc,
    };

    /// # Safety
    /// `header` leads to a live `Entry<F>` whose closure was neither run nor dropped, and the
    /// caller has the exclusive right to it.
    unsafe fn take(header: NonNull<CallbackHeader>) -> F {
        let entry = header.cast::<Entry<F>>();
        // SAFETY: forwarded to the caller.
        unsafe { ManuallyDrop::take(&mut *(*entry.as_ptr()).closure.get()) }
    }

    unsafe fn call(header: NonNull<CallbackHeader>, reason: &CancelReason) {
        // SAFETY: the tree calls this once, for the walk that took the entry out of its list.
        let closure = unsafe { Self::take(header) };
        closure(reason);
    }

    unsafe fn drop_closure(header: NonNull<CallbackHeader>) {
        // SAFETY: called once, by the handle that removed the entry from its list.
        drop(unsafe { Self::take(header) });
    }

    unsafe fn dealloc(header: NonNull<CallbackHeader>) {
        // SAFETY: the entry came from `Box::into_raw` in `register`; the last share frees it,
        // and the closure is already gone (`ManuallyDrop` keeps it from being dropped twice).
        drop(unsafe { Box::from_raw(header.cast::<Entry<F>>().as_ptr()) });
    }
}

/// Registers `f` on `node`, or runs it now if the node is cancelled.
pub(crate) fn register<F>(node: &NodeRef, f: F) -> CancelCallback
where
    F: FnOnce(&CancelReason) + Send + 'static,
{
    if let Some(reason) = node.node().reason() {
        f(&reason);
        return CancelCallback { registration: None };
    }
    let entry = Box::new(Entry {
        header: CallbackHeader::new(Entry::<F>::VTABLE),
        closure: UnsafeCell::new(ManuallyDrop::new(f)),
    });
    // SAFETY: `Box::into_raw` is never null; the header is the first field of the `repr(C)` entry.
    let header = unsafe { NonNull::new_unchecked(Box::into_raw(entry)) }.cast::<CallbackHeader>();
    // SAFETY: the entry lives until both shares are released, and it leaves the list before
    // the list's share is: taken by a walk or removed by `CancelCallback::release`.
    match unsafe { node.register_callback(header) } {
        Ok(()) => CancelCallback {
            registration: Some(Registration {
                node: node.clone(),
                header,
            }),
        },
        Err(reason) => {
            // SAFETY: never linked, so this thread owns the entry and its closure; free the entry
            // before running the closure so that a panic in it leaks nothing.
            let closure = unsafe {
                let closure = Entry::<F>::take(header);
                Entry::<F>::dealloc(header);
                closure
            };
            closure(&reason);
            CancelCallback { registration: None }
        }
    }
}
