//! The shape of the tree: propagation down, never up, reasons, born-cancelled children,
//! `any_of` links, deep chains, and what dropping handles does and does not do.

mod common;
use common::size;

use cancelable::{CancelKind, CancelReason, CancellationToken};

#[test]
fn cancel_reaches_children_and_grandchildren() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let grandchild = child.child_token();
    root.cancel();
    assert!(child.is_cancelled());
    assert!(grandchild.is_cancelled());
}

#[test]
fn cancelling_a_child_never_affects_its_parent_or_siblings() {
    let root = CancellationToken::new();
    let a = root.child_token();
    let b = root.child_token();
    let a_child = a.child_token();
    a.cancel();
    assert!(a_child.is_cancelled());
    assert!(!root.is_cancelled());
    assert!(!b.is_cancelled());
}

#[test]
fn descendants_inherit_the_reason_of_the_cancelled_ancestor() {
    let root = CancellationToken::new();
    let mid = root.child_token();
    let leaf = mid.child_token();
    let reason = CancelReason::timeout().with_message(String::from("no reply in 3s"));
    assert!(mid.cancel_with(reason.clone()));
    assert_eq!(leaf.reason(), Some(reason.clone()));
    assert_eq!(mid.reason(), Some(reason));
    assert_eq!(root.reason(), None);
}

#[test]
fn first_reason_wins_and_later_cancels_report_false() {
    let token = CancellationToken::new();
    let child = token.child_token();
    assert!(child.cancel_with(CancelKind::Disconnected));
    assert!(token.cancel_with(CancelKind::Shutdown));
    assert!(!token.cancel_with(CancelKind::Timeout));
    token.cancel();
    assert_eq!(token.reason().unwrap().kind(), CancelKind::Shutdown);
    assert_eq!(child.reason().unwrap().kind(), CancelKind::Disconnected);
}

#[test]
fn cancel_uses_the_manual_reason() {
    let token = CancellationToken::new();
    token.cancel();
    assert_eq!(token.reason(), Some(CancelReason::manual()));
}

#[test]
fn reason_is_some_exactly_when_cancelled() {
    let token = CancellationToken::new();
    assert_eq!(token.reason(), None);
    assert!(token.check().is_ok());
    token.cancel_with(CancelKind::Condition);
    assert!(token.is_cancelled());
    assert_eq!(
        token.check().unwrap_err().reason().kind(),
        CancelKind::Condition
    );
}

#[test]
fn child_created_after_cancel_is_born_cancelled_with_the_reason() {
    let root = CancellationToken::new();
    root.cancel_with(CancelReason::signal().with_message("SIGTERM"));
    let child = root.child_token();
    let grandchild = child.child_token();
    assert_eq!(child.reason(), root.reason());
    assert_eq!(grandchild.reason(), root.reason());
}

#[test]
fn clones_share_one_node() {
    let token = CancellationToken::new();
    let clone = token.clone();
    assert_eq!(token, clone);
    assert_ne!(token, CancellationToken::new());
    clone.cancel();
    assert!(token.is_cancelled());
}

#[test]
fn dropping_handles_never_cancels() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let grandchild = child.child_token();
    drop(child);
    assert!(!grandchild.is_cancelled());
    drop(root.clone());
    assert!(!root.is_cancelled());
}

#[test]
fn grandchild_of_a_dropped_middle_node_is_still_reached() {
    let root = CancellationToken::new();
    let grandchild = root.child_token().child_token();
    root.cancel_with(CancelKind::Shutdown);
    assert_eq!(grandchild.reason().unwrap().kind(), CancelKind::Shutdown);
}

#[test]
fn cancel_reaches_through_nodes_whose_handles_are_all_gone() {
    let root = CancellationToken::new();
    let mut leaf = root.child_token();
    for _ in 0..3 {
        leaf = leaf.child_token(); // the previous level's only handle goes here
    }
    let sibling = leaf.clone();
    drop(leaf);
    root.cancel_with(CancelKind::Signal);
    assert_eq!(sibling.reason().unwrap().kind(), CancelKind::Signal);
}

#[test]
fn child_of_a_dropped_parent_still_works_on_its_own() {
    let root = CancellationToken::new();
    let parent = root.child_token();
    let child = parent.child_token();
    drop(parent);
    let grandchild = child.child_token();
    assert!(child.cancel_with(CancelKind::Timeout));
    assert_eq!(grandchild.reason().unwrap().kind(), CancelKind::Timeout);
    assert!(!root.is_cancelled());
}

#[test]
fn any_of_node_stays_reachable_through_parents_without_handles() {
    let root = CancellationToken::new();
    let (a, b) = (root.child_token(), root.child_token());
    let linked = CancellationToken::any_of([&a, &b]);
    drop((a, b));
    root.cancel_with(CancelKind::Shutdown);
    assert_eq!(linked.reason().unwrap().kind(), CancelKind::Shutdown);
}

#[test]
fn parents_and_children_dropped_on_different_threads_in_any_order() {
    // Under Miri this is also a leak and use-after-free check of a parent's last drop racing
    // its children's.
    let root = CancellationToken::new();
    for round in 0..size(200) {
        let parent = root.child_token();
        let children: Vec<_> = (0..3).map(|_| parent.child_token()).collect();
        let linked = CancellationToken::any_of([&parent, &children[0]]);
        let grandchild = children[1].child_token();
        let dropper = std::thread::spawn(move || drop((children, linked)));
        if round % 2 == 0 {
            drop(parent);
        } else {
            parent.cancel();
        }
        dropper.join().unwrap();
        assert_eq!(grandchild.is_cancelled(), round % 2 == 1);
    }
    root.cancel();
}

#[test]
fn any_of_is_cancelled_by_whichever_parent_goes_first() {
    let a = CancellationToken::new();
    let b = CancellationToken::new();
    let linked = CancellationToken::any_of([&a, &b]);
    let below = linked.child_token();
    b.cancel_with(CancelKind::Timeout);
    assert_eq!(linked.reason().unwrap().kind(), CancelKind::Timeout);
    assert_eq!(below.reason().unwrap().kind(), CancelKind::Timeout);
    a.cancel_with(CancelKind::Manual);
    assert_eq!(linked.reason().unwrap().kind(), CancelKind::Timeout);
    let late = CancellationToken::any_of([&a]).child_token();
    assert_eq!(late.reason().unwrap().kind(), CancelKind::Manual);
}

#[test]
fn any_of_never_cancels_its_parents() {
    let a = CancellationToken::new();
    let b = CancellationToken::new();
    let linked = CancellationToken::any_of([&a, &b]);
    linked.cancel();
    assert!(!a.is_cancelled());
    assert!(!b.is_cancelled());
}

#[test]
fn any_of_an_already_cancelled_token_is_born_cancelled() {
    let live = CancellationToken::new();
    let dead = CancellationToken::new();
    dead.cancel_with(CancelKind::Disconnected);
    let linked = CancellationToken::any_of([&live, &dead]);
    assert_eq!(linked.reason().unwrap().kind(), CancelKind::Disconnected);
}

#[test]
fn any_of_nothing_is_cancelled_only_directly() {
    let linked = CancellationToken::any_of([]);
    assert!(!linked.is_cancelled());
    assert!(linked.cancel_with(CancelKind::Condition));
    assert_eq!(linked.reason().unwrap().kind(), CancelKind::Condition);
}

#[test]
fn dropped_any_of_token_unlinks_from_every_parent() {
    let a = CancellationToken::new();
    let b = CancellationToken::new();
    for _ in 0..size(1000) {
        drop(CancellationToken::any_of([&a, &b, &a]));
    }
    let survivor = CancellationToken::any_of([&a, &b]);
    a.cancel();
    assert!(survivor.is_cancelled());
    assert!(!b.is_cancelled());
}

#[test]
fn any_of_a_token_and_its_own_child_is_cancelled_once() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let linked = CancellationToken::any_of([&root, &child]);
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let _cb = linked.on_cancel(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    root.cancel();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn million_deep_chain_is_created_cancelled_and_dropped_without_overflow() {
    let root = CancellationToken::new();
    let mut leaf = root.clone();
    for _ in 0..size(1_000_000) {
        leaf = leaf.child_token();
    }
    root.cancel_with(CancelKind::Shutdown);
    assert_eq!(leaf.reason().unwrap().kind(), CancelKind::Shutdown);
    drop(root);
    drop(leaf);
}

#[test]
fn million_deep_chain_dropped_from_the_root_side_first() {
    // Only the leaf keeps the chain alive; dropping it frees a million nodes in one loop.
    let mut leaf = CancellationToken::new();
    for _ in 0..size(1_000_000) {
        leaf = leaf.child_token();
    }
    drop(leaf);
}

#[test]
fn wide_tree_is_cancelled_completely() {
    let root = CancellationToken::new();
    let children: Vec<_> = (0..size(100_000)).map(|_| root.child_token()).collect();
    root.cancel();
    assert!(children.iter().all(CancellationToken::is_cancelled));
}

#[test]
fn tokens_are_send_sync_and_one_pointer() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<CancellationToken>();
    assert_send_sync::<cancelable::CancelCallback>();
    assert_send_sync::<cancelable::WaitForCancellationFutureOwned>();
    assert_send_sync::<cancelable::Cancelled>();
    assert_eq!(size_of::<CancellationToken>(), size_of::<usize>());
    assert_eq!(size_of::<Option<CancellationToken>>(), size_of::<usize>());
}

#[test]
fn debug_shows_the_reason() {
    let token = CancellationToken::default();
    assert_eq!(format!("{token:?}"), "CancellationToken { reason: None }");
    token.cancel_with(CancelKind::Timeout);
    assert!(format!("{token:?}").contains("Timeout"));
}
