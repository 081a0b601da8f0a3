//! Memory: what an operation costs on the heap, registered or not, and that runs leave nothing
//! behind.
//!
//! A counting global allocator records this thread's allocations, so tests running in parallel
//! on other threads do not disturb the numbers.
#![cfg(all(feature = "std", not(loom)))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cancelable::{CancellationToken, Operation, OperationId, Registry};

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

/// (bytes still allocated, allocations made) by `f` on this thread.
fn measure(f: impl FnOnce()) -> (isize, usize) {
    let bytes = LIVE_BYTES.with(Cell::get);
    let count = ALLOCATIONS.with(Cell::get);
    f();
    (
        LIVE_BYTES.with(Cell::get) - bytes,
        ALLOCATIONS.with(Cell::get) - count,
    )
}

/// Polls `fut` once, which must finish it.
fn finish<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the operation should finish in one poll"),
    }
}

#[test]
fn an_operation_without_metadata_or_callbacks_allocates_its_record_and_its_token_only() {
    let parent = CancellationToken::new();
    let run = |parent: &CancellationToken| {
        let out = finish(
            Operation::new("plain")
                .parent(parent)
                .run(|_| async { Ok(1) }),
        );
        assert_eq!(out, Ok(1));
    };
    run(&parent); // this thread's first operation sets up what every later one shares
    let (bytes, allocations) = measure(|| run(&parent));
    assert_eq!(
        allocations, 2,
        "the shared record and the operation's own token"
    );
    assert_eq!(
        bytes, 0,
        "a finished and dropped operation leaves nothing behind"
    );
}

#[test]
fn a_registered_operation_allocates_nothing_more_once_the_history_is_full() {
    let registry = Registry::with_history(4);
    // One id, so that every run is listed in the same place of the registry, which has room
    // for it after the first.
    let id = OperationId::from("job");
    let run = |registry: &Registry| {
        finish(
            Operation::new("registered")
                .id(id.clone())
                .register(registry)
                .run(|_| async { Ok(()) }),
        )
        .unwrap();
    };
    for _ in 0..8 {
        run(&registry);
    }
    let (bytes, allocations) = measure(|| run(&registry));
    assert_eq!(
        allocations, 2,
        "the record and the token: the history keeps the final record without copying it \
         into new allocations"
    );
    assert_eq!(
        bytes, 0,
        "the oldest history entry made room for the new one"
    );
    assert_eq!(registry.stats().history, 4);
}

#[test]
fn progress_reports_after_the_first_reuse_its_allocation() {
    let parent = CancellationToken::new();
    let (bytes, allocations) = measure(|| {
        finish(
            Operation::new("reports")
                .parent(&parent)
                .run(|cx| async move {
                    for done in 0..100 {
                        cx.report_progress(done, Some(100), "rows");
                    }
                    Ok(())
                }),
        )
        .unwrap();
    });
    assert!(
        allocations <= 3,
        "record, token and one progress report: {allocations} allocations"
    );
    assert_eq!(bytes, 0);
}
