//! Memory: what a token costs on the heap, and that churn does not accumulate.
//!
//! Allocations are counted per thread (see `common/counting.rs`).

#[path = "common/counting.rs"]
mod counting;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use cancelable::CancellationToken;
use counting::measure;

#[test]
fn idle_child_token_costs_one_allocation_of_at_most_64_bytes() {
    let parent = CancellationToken::new();
    let (child, bytes, allocations) = measure(|| parent.child_token());
    assert_eq!(allocations, 1);
    assert!(bytes <= 64, "an idle child costs {bytes} bytes");
    drop(child);
}

#[test]
fn million_child_create_drop_cycles_stay_at_constant_memory() {
    let parent = CancellationToken::new();
    let _sibling = parent.child_token();
    let ((), bytes, _) = measure(|| {
        for _ in 0..1_000_000 {
            drop(parent.child_token());
        }
    });
    assert_eq!(bytes, 0, "child churn left {bytes} bytes behind");
    parent.cancel();
}

#[test]
fn callback_churn_stays_at_constant_memory() {
    let token = CancellationToken::new();
    let ((), bytes, _) = measure(|| {
        for i in 0..100_000u64 {
            let callback = token.on_cancel(move |_| {
                let _ = i;
            });
            if i % 2 == 0 {
                assert!(callback.unregister());
            }
        }
    });
    assert_eq!(bytes, 0);
}

#[test]
fn any_of_churn_stays_at_constant_memory() {
    let a = CancellationToken::new();
    let b = CancellationToken::new();
    let ((), bytes, _) = measure(|| {
        for _ in 0..100_000 {
            drop(CancellationToken::any_of([&a, &b]));
        }
    });
    assert_eq!(bytes, 0);
}

#[test]
fn checking_cloning_and_reading_the_reason_never_allocate() {
    let token = CancellationToken::new();
    let ((), _, allocations) = measure(|| {
        for _ in 0..1000 {
            assert!(!token.is_cancelled());
            drop(token.clone());
            assert!(token.reason().is_none());
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn cancelling_a_wide_tree_of_idle_children_allocates_nothing() {
    let root = CancellationToken::new();
    let children: Vec<_> = (0..10_000).map(|_| root.child_token()).collect();
    let ((), _, allocations) = measure(|| root.cancel());
    assert_eq!(allocations, 0);
    assert!(children.iter().all(CancellationToken::is_cancelled));
}

#[test]
fn awaiting_an_already_cancelled_token_allocates_nothing() {
    let token = CancellationToken::new();
    token.cancel();
    let mut cx = Context::from_waker(Waker::noop());
    let ((), _, allocations) = measure(|| {
        assert!(pin!(token.cancelled()).poll(&mut cx).is_ready());
    });
    assert_eq!(allocations, 0);
}

#[test]
fn pending_cancelled_future_allocates_nothing() {
    let token = CancellationToken::new();
    let mut cx = Context::from_waker(Waker::noop());
    let ((), _, allocations) = measure(|| {
        let mut fut = pin!(token.cancelled());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    });
    assert_eq!(allocations, 0);
}

#[test]
fn future_that_finishes_first_never_registers_a_waiter() {
    let token = CancellationToken::new();
    let mut cx = Context::from_waker(Waker::noop());
    let ((), _, allocations) = measure(|| {
        assert!(
            pin!(token.run_until_cancelled(async { 1 }))
                .poll(&mut cx)
                .is_ready()
        );
    });
    assert_eq!(allocations, 0);
}

#[test]
fn a_cancelled_subtree_is_freed_when_its_handles_drop() {
    let ((), bytes, _) = measure(|| {
        let root = CancellationToken::new();
        let mut leaf = root.child_token();
        for _ in 0..1000 {
            leaf = leaf.child_token();
        }
        let _callback = leaf.on_cancel(|_| {});
        root.cancel_with(cancelable::CancelReason::timeout().with_message(String::from("t")));
    });
    assert_eq!(bytes, 0);
}

#[test]
fn closure_that_panics_when_dropped_by_unregister_frees_its_entry() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("captured state failed to drop");
        }
    }
    let token = CancellationToken::new();
    let unregister_one = || {
        let held = PanicsOnDrop;
        let callback = token.on_cancel(move |_| drop(held));
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback.unregister()));
        assert!(result.is_err(), "the closure's drop panicked");
    };
    // The default panic hook allocates as it reports (backtrace caches, the test harness's
    // captured output), so it is silenced while the entry's bytes are counted.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ((), bytes, _) = measure(unregister_one);
    std::panic::set_hook(hook);
    assert_eq!(bytes, 0, "the callback entry leaked {bytes} bytes");
    assert!(token.on_cancel(|_| {}).unregister(), "the list is intact");
}

#[test]
fn watched_children_dropped_uncancelled_leave_nothing_behind() {
    // The shape of `cancel_after` on request tokens: each child is watched by a weak handle and
    // a pending `released()` future; dropping the child releases the watcher, and dropping the
    // watcher frees the node.
    let parent = CancellationToken::new();
    let mut cx = Context::from_waker(Waker::noop());
    let ((), bytes, _) = measure(|| {
        for _ in 0..100_000 {
            let child = parent.child_token();
            let weak = child.downgrade();
            let mut released = Box::pin(weak.released());
            assert!(released.as_mut().poll(&mut cx).is_pending());
            drop(child);
            assert!(released.as_mut().poll(&mut cx).is_ready());
        }
    });
    assert_eq!(bytes, 0, "watched child churn left {bytes} bytes behind");
}

#[test]
fn a_chain_without_handles_is_freed_by_the_drop_of_its_leaf() {
    let root = CancellationToken::new();
    let ((), bytes, _) = measure(|| {
        let mut leaf = root.child_token();
        for _ in 0..1000 {
            leaf = leaf.child_token(); // each level lingers for the next one
        }
        root.cancel();
        assert!(leaf.is_cancelled());
        drop(leaf);
    });
    assert_eq!(bytes, 0, "the chain left {bytes} bytes behind");
}

#[test]
fn parents_dropped_before_their_children_leave_nothing_behind() {
    let root = CancellationToken::new();
    let ((), bytes, _) = measure(|| {
        for _ in 0..10_000 {
            let parent = root.child_token();
            let child = parent.child_token();
            let linked = CancellationToken::any_of([&parent, &root]);
            let grandchild = child.child_token();
            drop(parent);
            drop((child, linked));
            drop(grandchild);
        }
    });
    assert_eq!(bytes, 0, "parent-first drops left {bytes} bytes behind");
}
