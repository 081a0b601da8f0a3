//! Acceptance: `cancel_after` leaves nothing behind. 100,000 request-scoped tokens with a
//! one-hour `cancel_after`, cancelled or simply dropped, keep memory flat: every timer task ends
//! and frees its timer, task and the token's node. Written once, run by both adapters
//! (`tests/cancel_after_memory.rs`), each with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use cancelable::CancellationToken;

use super::{adapter, block_on};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting the bytes it hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// `n` tokens with an hour-long `cancel_after`, each cancelled (`cancel`) or dropped; returns
/// once every timer task has ended.
async fn churn(n: usize, cancel: bool) {
    let root = CancellationToken::new();
    for chunk in 0..n / 1_000 {
        let mut watchers = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let request = root.child_token();
            watchers.push(adapter::cancel_after(&request, Duration::from_secs(3600)));
            if cancel {
                request.cancel();
            }
        }
        for watcher in watchers {
            assert!(!watcher.await, "chunk {chunk}: no timer fired");
        }
    }
}

#[test]
fn a_hundred_thousand_cancel_after_timers_on_cancelled_or_dropped_tokens_leave_memory_flat() {
    block_on(async {
        // Warm up: runtime threads, reactor, timer and task caches reach their steady size.
        churn(10_000, true).await;
        churn(10_000, false).await;
        let before = LIVE.load(Ordering::Relaxed);
        churn(100_000, true).await;
        churn(100_000, false).await;
        let grown = LIVE.load(Ordering::Relaxed) - before;
        // A leak of the smallest piece (a node, ~64 B) per token would be 12.8 MB here.
        assert!(
            grown < 512 * 1024,
            "live heap grew by {grown} bytes over 200,000 timers"
        );
    });
}
