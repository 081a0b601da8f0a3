//! The heap: `cancelable` needs `alloc` (a token's node lives on the heap).
//!
//! `embedded-alloc`'s allocator takes a critical section for each call, so interrupt handlers
//! may allocate and free too (a cancel from an interrupt frees callbacks and may grow its walk
//! stack). The wrapper counts allocations, so the scenario can report what a step allocated.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::mem::MaybeUninit;

use critical_section::Mutex;
use embedded_alloc::LlffHeap;

/// Bytes of RAM given to the heap.
pub const HEAP_SIZE: usize = 6 * 1024;

struct CountingHeap {
    heap: LlffHeap,
    allocations: Mutex<Cell<usize>>,
}

// SAFETY: every call is forwarded to `LlffHeap`, a `GlobalAlloc`; the count is bookkeeping.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        critical_section::with(|cs| {
            let count = self.allocations.borrow(cs);
            count.set(count.get() + 1);
        });
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.heap.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    heap: LlffHeap::empty(),
    allocations: Mutex::new(Cell::new(0)),
};

/// Gives the heap its memory. Call once, first thing in `main`.
pub fn init() {
    // In `.uninit`: not zeroed at start-up, and not counted in `.bss` by the size check.
    #[unsafe(link_section = ".uninit.HEAP")]
    static mut MEMORY: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    // SAFETY: called once before any allocation (a second call panics in `init`); nothing
    // else refers to `MEMORY`.
    unsafe { HEAP.heap.init(&raw mut MEMORY as usize, HEAP_SIZE) }
}

/// Bytes allocated now.
pub fn used() -> usize {
    HEAP.heap.used()
}

/// Allocations made since start-up.
pub fn allocations() -> usize {
    critical_section::with(|cs| HEAP.allocations.borrow(cs).get())
}
