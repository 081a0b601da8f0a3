//! A counting global allocator for the memory tests (`#[path = "common/counting.rs"] mod
//! counting;`): it records this thread's allocations, so tests running in parallel on other
//! threads do not disturb the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE_BYTES.try_with(|b| b.set(b.get() + layout.size() as isize));
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|b| b.set(b.get() - layout.size() as isize));
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `f` returns, then the bytes it left allocated and the allocations it made, on this
/// thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, isize, usize) {
    let bytes = LIVE_BYTES.with(Cell::get);
    let count = ALLOCATIONS.with(Cell::get);
    let out = f();
    (
        out,
        LIVE_BYTES.with(Cell::get) - bytes,
        ALLOCATIONS.with(Cell::get) - count,
    )
}
