//! Memory: what an operation costs on the heap, registered or not, and that runs leave nothing
//! behind.
//!
//! Allocations are counted per thread (see `common/counting.rs`).
#![cfg(all(feature = "std", not(loom)))]

#[path = "common/counting.rs"]
mod counting;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cancelable::{CancellationToken, Operation, OperationId, Registry};
use counting::measure;

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
    let ((), bytes, allocations) = measure(|| run(&parent));
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
    let ((), bytes, allocations) = measure(|| run(&registry));
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
    let ((), bytes, allocations) = measure(|| {
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
