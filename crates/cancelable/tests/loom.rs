//! Loom models: each one race of the tree, explored over every interleaving (with a bounded
//! number of preemptions). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p cancelable --release --test loom`.
#![cfg(loom)]

use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use cancelable::{CancelKind, CancelReason, CancellationToken};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Explores `f` with at most `LOOM_MAX_PREEMPTIONS` (default 2) preemptions.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

#[test]
fn cancel_vs_child_token() {
    model(|| {
        let root = CancellationToken::new();
        let maker = {
            let root = root.clone();
            thread::spawn(move || root.child_token())
        };
        root.cancel_with(CancelKind::Shutdown);
        let child = maker.join().unwrap();
        assert_eq!(child.reason().unwrap().kind(), CancelKind::Shutdown);
    });
}

#[test]
fn cancel_vs_drop_of_a_child() {
    model(|| {
        let root = CancellationToken::new();
        let doomed = root.child_token();
        let kept = root.child_token();
        let dropper = thread::spawn(move || drop(doomed));
        root.cancel();
        dropper.join().unwrap();
        assert!(kept.is_cancelled());
    });
}

#[test]
fn cancel_vs_first_poll_of_cancelled_has_no_lost_wakeup() {
    model(|| {
        let token = CancellationToken::new();
        let waiter = {
            let token = token.clone();
            thread::spawn(move || loom::future::block_on(token.cancelled()))
        };
        token.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn cancel_vs_dropping_a_pending_waiter() {
    model(|| {
        let token = CancellationToken::new();
        let waiter = {
            let token = token.clone();
            thread::spawn(move || {
                let mut fut = pin!(token.cancelled());
                let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            })
        };
        token.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn cancel_vs_repoll_with_another_waker() {
    model(|| {
        let token = CancellationToken::new();
        let waiter = {
            let token = token.clone();
            thread::spawn(move || {
                let mut fut = pin!(token.cancelled());
                let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                loom::future::block_on(fut);
            })
        };
        token.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn cancel_of_a_parent_vs_waiting_on_a_child() {
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let waiter = thread::spawn(move || loom::future::block_on(child.cancelled_owned()));
        root.cancel();
        waiter.join().unwrap();
    });
}

#[test]
fn cancel_vs_on_cancel_register_and_unregister() {
    model(|| {
        let token = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let registrar = {
            let token = token.clone();
            let runs = runs.clone();
            thread::spawn(move || {
                let kept_runs = runs.clone();
                let kept = token.on_cancel(move |_| {
                    kept_runs.fetch_add(1, Ordering::SeqCst);
                });
                let removed = token.on_cancel(move |_| {
                    runs.fetch_add(10, Ordering::SeqCst);
                });
                (kept, removed.unregister())
            })
        };
        token.cancel();
        let (kept, removed) = registrar.join().unwrap();
        let expected = if removed { 1 } else { 11 };
        assert_eq!(runs.load(Ordering::SeqCst), expected);
        assert!(!kept.unregister());
    });
}

#[test]
fn concurrent_cancel_with_has_one_winner_and_a_consistent_reason() {
    model(|| {
        let token = CancellationToken::new();
        let child = token.child_token();
        let other = {
            let token = token.clone();
            thread::spawn(move || token.cancel_with(CancelReason::timeout().with_message("b")))
        };
        let mine = token.cancel_with(CancelKind::Shutdown);
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one cancel_with wins");
        let expected = if mine {
            CancelReason::shutdown()
        } else {
            CancelReason::timeout().with_message("b")
        };
        assert_eq!(token.reason(), Some(expected.clone()));
        assert_eq!(child.reason(), Some(expected));
    });
}

#[test]
fn observed_cancelled_child_implies_cancelled_parent() {
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let observer = {
            let root = root.clone();
            thread::spawn(move || {
                if child.is_cancelled() {
                    assert!(root.is_cancelled());
                    assert!(child.reason().is_some());
                }
            })
        };
        root.cancel();
        observer.join().unwrap();
    });
}

#[test]
fn any_of_linking_vs_parent_cancel() {
    model(|| {
        let a = CancellationToken::new();
        let b = CancellationToken::new();
        let linker = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || CancellationToken::any_of([&b, &a]))
        };
        a.cancel_with(CancelKind::Condition);
        let linked = linker.join().unwrap();
        assert_eq!(linked.reason().unwrap().kind(), CancelKind::Condition);
        assert!(!b.is_cancelled());
    });
}

#[test]
fn drop_of_a_middle_node_vs_cancel_of_the_root() {
    model(|| {
        let root = CancellationToken::new();
        let middle = root.child_token();
        let leaf = middle.child_token();
        let dropper = thread::spawn(move || drop(middle));
        root.cancel();
        dropper.join().unwrap();
        assert!(leaf.is_cancelled());
    });
}

#[test]
fn drop_of_an_any_of_node_vs_cancel_of_a_parent() {
    model(|| {
        let a = CancellationToken::new();
        let b = CancellationToken::new();
        let linked = CancellationToken::any_of([&a, &b]);
        let dropper = thread::spawn(move || drop(linked));
        a.cancel();
        dropper.join().unwrap();
        assert!(!b.is_cancelled());
    });
}

#[test]
fn cancel_vs_grandchild_creation_vs_middle_drop() {
    model(|| {
        let root = CancellationToken::new();
        let middle = root.child_token();
        let maker = {
            let middle = middle.clone();
            thread::spawn(move || middle.child_token())
        };
        let dropper = thread::spawn(move || drop(middle));
        root.cancel_with(CancelKind::Timeout);
        dropper.join().unwrap();
        let grandchild = maker.join().unwrap();
        assert_eq!(grandchild.reason().unwrap().kind(), CancelKind::Timeout);
    });
}

#[test]
fn two_cancels_of_overlapping_subtrees_with_a_waiter() {
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let waiter = {
            let leaf = child.child_token();
            thread::spawn(move || loom::future::block_on(leaf.cancelled_owned()))
        };
        let other = {
            let child = child.clone();
            thread::spawn(move || child.cancel_with(CancelKind::Disconnected))
        };
        root.cancel();
        other.join().unwrap();
        waiter.join().unwrap();
        assert!(child.is_cancelled());
    });
}

#[test]
fn overlapping_cancels_both_return_with_the_whole_subtree_cancelled() {
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let grandchild = child.child_token();
        let leaf = grandchild.child_token();
        let other = {
            let (child, grandchild, leaf) = (child.clone(), grandchild.clone(), leaf.clone());
            thread::spawn(move || {
                child.cancel_with(CancelKind::Disconnected);
                assert!(grandchild.is_cancelled() && leaf.is_cancelled());
            })
        };
        root.cancel_with(CancelKind::Shutdown);
        assert!(grandchild.is_cancelled() && leaf.is_cancelled());
        // Below `child`, every node carries the reason that reached `child`.
        assert_eq!(grandchild.reason(), child.reason());
        assert_eq!(leaf.reason(), child.reason());
        other.join().unwrap();
    });
}

/// Counts the runs of a callback and the drops of its closure's captured state.
#[derive(Default)]
struct Tally {
    runs: AtomicUsize,
    drops: AtomicUsize,
}

/// A callback closure that records in `tally` whether it ran and when its state is dropped.
fn tallied(tally: &Arc<Tally>) -> impl FnOnce(&CancelReason) + Send + 'static {
    struct Captured(Arc<Tally>);
    impl Drop for Captured {
        fn drop(&mut self) {
            self.0.drops.fetch_add(1, Ordering::SeqCst);
        }
    }
    let captured = Captured(tally.clone());
    move |_| {
        captured.0.runs.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn unregister_vs_a_walk_that_took_the_entry() {
    // The walk takes the entry out under the lock and runs it later, with the lock released:
    // `unregister` in that window must win the entry, or report that it started.
    model(|| {
        let token = CancellationToken::new();
        let tally = Arc::new(Tally::default());
        let callback = token.on_cancel(tallied(&tally));
        let canceller = {
            let token = token.clone();
            thread::spawn(move || token.cancel())
        };
        let removed = callback.unregister();
        canceller.join().unwrap();
        let runs = tally.runs.load(Ordering::SeqCst);
        assert_eq!(removed, runs == 0, "true exactly when it never ran");
        assert!(runs <= 1);
        assert_eq!(
            tally.drops.load(Ordering::SeqCst),
            1,
            "the closure is dropped once"
        );
    });
}

#[test]
fn dropping_a_callback_handle_vs_a_walk_of_the_parent() {
    // The handle of a grandchild's callback is dropped while the root's cancelation walks down:
    // the closure either runs or is dropped unrun, once, and its entry is freed either way.
    model(|| {
        let root = CancellationToken::new();
        let grandchild = root.child_token().child_token();
        let tally = Arc::new(Tally::default());
        let callback = grandchild.on_cancel(tallied(&tally));
        let dropper = thread::spawn(move || drop(callback));
        root.cancel();
        dropper.join().unwrap();
        assert!(grandchild.is_cancelled());
        assert!(tally.runs.load(Ordering::SeqCst) <= 1);
        assert_eq!(tally.drops.load(Ordering::SeqCst), 1);
        assert_eq!(
            Arc::strong_count(&tally),
            1,
            "no entry is left holding the closure"
        );
    });
}

#[test]
fn released_vs_drop_of_the_last_handle_has_no_lost_wakeup() {
    model(|| {
        let token = CancellationToken::new();
        let weak = token.downgrade();
        let watcher = thread::spawn(move || loom::future::block_on(weak.released()));
        drop(token);
        watcher.join().unwrap();
    });
}

#[test]
fn upgrade_vs_drop_of_the_last_handle() {
    // `upgrade` either gets a live token (which then cancels normally) or nothing; the node is
    // freed once, by whichever of the handles goes last.
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let weak = child.downgrade();
        let upgrader = thread::spawn(move || {
            let cancelled = weak.upgrade().map(|t| t.cancel_with(CancelKind::Timeout));
            (weak, cancelled)
        });
        drop(child);
        let (weak, cancelled) = upgrader.join().unwrap();
        assert!(cancelled.is_none() || cancelled == Some(true));
        assert!(!root.is_cancelled());
        // Whichever way it went, every strong handle is gone now: a failed upgrade must not
        // have touched the count, so the node reads dead and `released()` resolves.
        assert!(weak.upgrade().is_none());
        loom::future::block_on(weak.released());
    });
}

#[test]
fn released_vs_cancel_of_the_parent() {
    model(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let weak = child.downgrade();
        let watcher = thread::spawn(move || {
            loom::future::block_on(weak.released());
            weak.is_cancelled() || weak.upgrade().is_none()
        });
        root.cancel();
        assert!(watcher.join().unwrap());
        drop(child);
    });
}

// Children and `any_of` nodes hold no reference on their parents: a parent whose last handle
// goes while children are still linked lingers until the last of them leaves. Every node is
// tracked under loom, so a model also fails if any node or up-link is never freed.

#[test]
fn drop_of_a_child_vs_drop_of_its_parent_frees_both() {
    model(|| {
        let root = CancellationToken::new();
        let parent = root.child_token();
        let child = parent.child_token();
        let dropper = thread::spawn(move || drop(child));
        drop(parent);
        dropper.join().unwrap();
        root.cancel();
    });
}

#[test]
fn drop_of_the_last_child_vs_drop_of_a_lingering_chain() {
    // `middle` lingers for `leaf` once its handle is gone; whichever of the two drops goes
    // last takes both out of the tree, up the chain.
    model(|| {
        let root = CancellationToken::new();
        let top = root.child_token();
        let middle = top.child_token();
        let leaf = middle.child_token();
        drop(middle);
        let dropper = thread::spawn(move || drop(leaf));
        drop(top);
        dropper.join().unwrap();
        assert!(!root.is_cancelled());
    });
}

#[test]
fn drop_of_a_child_with_entries_vs_cancel_of_its_parent() {
    // The walk enters `child` (it had a child of its own) holding a weak reference while the
    // child's last handle goes: whichever lets go last frees it.
    model(|| {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        drop(child.child_token());
        let dropper = thread::spawn(move || drop(child));
        parent.cancel();
        dropper.join().unwrap();
    });
}

#[test]
fn cancel_of_the_root_reaches_the_child_of_a_lingering_node_while_it_leaves() {
    model(|| {
        let root = CancellationToken::new();
        let middle = root.child_token();
        let leaf = middle.child_token();
        let kept = leaf.clone();
        drop(middle);
        let dropper = thread::spawn(move || drop(leaf));
        root.cancel_with(CancelKind::Shutdown);
        dropper.join().unwrap();
        assert_eq!(kept.reason().unwrap().kind(), CancelKind::Shutdown);
    });
}

#[test]
fn child_creation_vs_the_parents_last_drop() {
    // Whichever handle of `parent` goes last, the new child keeps it in the tree, so the root's
    // cancelation still reaches the child; dropping the child then frees the parent.
    model(|| {
        let root = CancellationToken::new();
        let parent = root.child_token();
        let other = parent.clone();
        let maker = thread::spawn(move || {
            let child = parent.child_token();
            drop(parent);
            child
        });
        drop(other);
        let child = maker.join().unwrap();
        root.cancel_with(CancelKind::Timeout);
        assert_eq!(child.reason().unwrap().kind(), CancelKind::Timeout);
    });
}

#[test]
fn any_of_with_several_parents_vs_their_drops() {
    model(|| {
        let a = CancellationToken::new();
        let b = CancellationToken::new();
        let linked = CancellationToken::any_of([&a, &b, &a]);
        let below = linked.child_token();
        let dropper = thread::spawn(move || drop(linked));
        drop(a);
        dropper.join().unwrap();
        b.cancel_with(CancelKind::Condition);
        assert_eq!(below.reason().unwrap().kind(), CancelKind::Condition);
    });
}

#[test]
fn drop_of_an_any_of_node_vs_the_last_drops_of_both_parents() {
    model(|| {
        let a = CancellationToken::new();
        let b = CancellationToken::new();
        let linked = CancellationToken::any_of([&a, &b]);
        let dropper = thread::spawn(move || drop(linked));
        drop(a);
        drop(b);
        dropper.join().unwrap();
    });
}

#[test]
fn released_of_a_parent_that_lingers_for_its_child() {
    // The last handle of `parent` goes while a weak waiter watches it and a child keeps it in
    // the tree: the waiter is woken (the token is dead), and the child's drop frees the node.
    model(|| {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        let weak = parent.downgrade();
        let watcher = thread::spawn(move || {
            loom::future::block_on(weak.released());
            weak.upgrade().is_none()
        });
        drop(parent);
        assert!(watcher.join().unwrap());
        drop(child);
    });
}
