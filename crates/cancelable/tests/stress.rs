//! Races on real threads: the same questions the loom models ask, at scale and with real
//! timing. Each test asserts the invariant after every round.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use cancelable::{CancelKind, CancelReason, CancellationToken};

const ROUNDS: usize = 200;

#[test]
fn children_created_while_cancelling_all_end_up_cancelled() {
    for _ in 0..ROUNDS {
        let root = CancellationToken::new();
        let start = Arc::new(Barrier::new(3));
        let makers: Vec<_> = (0..2)
            .map(|_| {
                let root = root.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    (0..200)
                        .map(|_| root.child_token().child_token())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        start.wait();
        root.cancel_with(CancelKind::Shutdown);
        for maker in makers {
            for child in maker.join().unwrap() {
                assert_eq!(child.reason().unwrap().kind(), CancelKind::Shutdown);
            }
        }
    }
}

#[test]
fn children_dropped_while_cancelling_leave_the_rest_cancelled() {
    for _ in 0..ROUNDS {
        let root = CancellationToken::new();
        let doomed: Vec<_> = (0..300).map(|_| root.child_token()).collect();
        let kept: Vec<_> = (0..300).map(|_| root.child_token()).collect();
        let dropper = thread::spawn(move || drop(doomed));
        root.cancel();
        dropper.join().unwrap();
        assert!(kept.iter().all(CancellationToken::is_cancelled));
    }
}

#[test]
fn concurrent_cancels_have_one_winner_and_one_reason() {
    for _ in 0..ROUNDS {
        let token = CancellationToken::new();
        let child = token.child_token();
        let start = Arc::new(Barrier::new(4));
        let wins: Vec<_> = (0..4)
            .map(|i| {
                let token = token.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    let reason = CancelReason::manual().with_message(format!("thread {i}"));
                    token.cancel_with(reason.clone()).then_some(reason)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(wins.len(), 1);
        assert_eq!(token.reason().as_ref(), Some(&wins[0]));
        assert_eq!(child.reason().as_ref(), Some(&wins[0]));
    }
}

#[test]
fn callbacks_registered_and_unregistered_while_cancelling_run_exactly_when_kept() {
    for _ in 0..ROUNDS {
        let token = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(3));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let token = token.clone();
                let runs = runs.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    let mut kept = Vec::new();
                    let mut removed = 0;
                    for i in 0..200 {
                        let runs = runs.clone();
                        let callback = token.on_cancel(move |_| {
                            runs.fetch_add(1, Ordering::SeqCst);
                        });
                        if i % 2 == 0 {
                            removed += usize::from(callback.unregister());
                        } else {
                            kept.push(callback);
                        }
                    }
                    (kept, removed)
                })
            })
            .collect();
        start.wait();
        token.cancel();
        let removed: usize = workers
            .into_iter()
            .map(|w| {
                let (kept, removed) = w.join().unwrap();
                drop(kept);
                removed
            })
            .sum();
        assert_eq!(runs.load(Ordering::SeqCst), 400 - removed);
    }
}

#[test]
fn any_of_linked_while_a_parent_cancels_is_cancelled() {
    for _ in 0..ROUNDS {
        let a = CancellationToken::new();
        let b = CancellationToken::new();
        let linker = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                (0..200)
                    .map(|_| CancellationToken::any_of([&b, &a]))
                    .collect::<Vec<_>>()
            })
        };
        a.cancel_with(CancelKind::Condition);
        for linked in linker.join().unwrap() {
            assert_eq!(linked.reason().unwrap().kind(), CancelKind::Condition);
        }
        assert!(!b.is_cancelled());
    }
}

#[cfg(feature = "std")]
#[test]
fn waiters_on_many_threads_all_wake() {
    for _ in 0..20 {
        let token = CancellationToken::new();
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let token = token.child_token();
                thread::spawn(move || {
                    if i % 2 == 0 {
                        token.wait_blocking();
                    } else {
                        futures_lite::future::block_on(token.cancelled());
                    }
                })
            })
            .collect();
        token.cancel();
        for waiter in waiters {
            waiter.join().unwrap();
        }
    }
}

#[test]
fn middle_of_a_chain_dropped_while_the_root_cancels() {
    for _ in 0..ROUNDS {
        let root = CancellationToken::new();
        let middle = root.child_token();
        let leaves: Vec<_> = (0..50)
            .map(|_| middle.child_token().child_token())
            .collect();
        let dropper = thread::spawn(move || drop(middle));
        root.cancel();
        dropper.join().unwrap();
        assert!(leaves.iter().all(CancellationToken::is_cancelled));
    }
}

/// A tree of `depth` levels and `fanout` children per node, as (token, children) in preorder.
fn build(root: &CancellationToken, depth: usize, fanout: usize) -> Vec<CancellationToken> {
    let mut all = vec![root.clone()];
    let mut level = vec![root.clone()];
    for _ in 0..depth {
        level = level
            .iter()
            .flat_map(|parent| (0..fanout).map(move |_| parent.child_token()))
            .collect();
        all.extend(level.iter().cloned());
    }
    all
}

#[test]
fn overlapping_cancels_each_return_with_their_subtree_cancelled() {
    for _ in 0..ROUNDS / 4 {
        let root = CancellationToken::new();
        let tree = build(&root, 6, 3);
        let start = Arc::new(Barrier::new(4));
        // Each thread cancels a different node on the same path down, then checks that everything
        // below its node is cancelled the moment its call returns (whoever got there first).
        let cancellers: Vec<_> = [0usize, 1, 4, 13]
            .into_iter()
            .map(|index| {
                let node = tree[index].clone();
                let below: Vec<_> = build_descendants(&tree, index);
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    node.cancel_with(CancelKind::Shutdown);
                    below.iter().all(CancellationToken::is_cancelled)
                })
            })
            .collect();
        for canceller in cancellers {
            assert!(
                canceller.join().unwrap(),
                "a cancel returned with live descendants"
            );
        }
        assert!(tree.iter().all(CancellationToken::is_cancelled));
    }
}

/// The descendants of `tree[index]` in a tree made by `build(_, _, 3)`: in level order, the
/// children of node `i` are `3i + 1 ..= 3i + 3`.
fn build_descendants(tree: &[CancellationToken], index: usize) -> Vec<CancellationToken> {
    let mut out = Vec::new();
    let mut level = vec![index];
    while !level.is_empty() {
        level = level
            .iter()
            .flat_map(|&i| (3 * i + 1..=3 * i + 3).filter(|&c| c < tree.len()))
            .collect();
        out.extend(level.iter().map(|&i| tree[i].clone()));
    }
    out
}
