//! Weak handles: `downgrade`, `upgrade`, and `released()`, which resolves when a token is
//! cancelled or its last handle is dropped, without keeping it alive.

mod common;
use common::size;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use cancelable::{CancelKind, CancellationToken};
use futures_lite::future::block_on;

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

#[test]
fn upgrade_gives_the_same_token_while_any_handle_lives() {
    let token = CancellationToken::new();
    let weak = token.downgrade();
    let clone = token.clone();
    drop(token);
    assert_eq!(weak.upgrade(), Some(clone.clone()));
    assert_eq!(weak.clone(), weak);
    drop(clone);
    assert_eq!(weak.upgrade(), None);
}

#[test]
fn failed_upgrades_leave_a_dead_token_dead() {
    // A failed upgrade must not touch the count: the token stays dead, however often it is
    // asked, and `released()` still resolves at once.
    let token = CancellationToken::new();
    let weak = token.downgrade();
    drop(token);
    for _ in 0..3 {
        assert!(weak.upgrade().is_none());
    }
    block_on(weak.released());
    assert!(format!("{weak:?}").contains("alive: false"));
}

#[test]
fn weak_handle_keeps_nothing_alive_and_can_cancel_through_upgrade() {
    let parent = CancellationToken::new();
    let child = parent.child_token();
    let grandchild = child.child_token();
    let weak = child.downgrade();
    weak.upgrade().unwrap().cancel_with(CancelKind::Timeout);
    assert_eq!(grandchild.reason().unwrap().kind(), CancelKind::Timeout);
    assert!(!parent.is_cancelled());
    drop((child, grandchild));
    assert!(weak.upgrade().is_none());
    assert!(weak.is_cancelled(), "the reason stays readable");
}

#[test]
fn dead_child_is_unlinked_even_while_weak_handles_remain() {
    // A dropped child with a weak handle left must not be reached by its parent's cancel: it
    // left the parent's list when it died.
    let parent = CancellationToken::new();
    let weak = parent.child_token().downgrade();
    parent.cancel();
    assert!(!weak.is_cancelled());
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_token_whose_handles_are_gone_is_dead_even_while_its_children_live() {
    let root = CancellationToken::new();
    let parent = root.child_token();
    let child = parent.child_token();
    let weak = parent.downgrade();
    let (wakes, waker) = counting_waker();
    let mut released = pin!(weak.released());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(released.as_mut().poll(&mut cx), Poll::Pending);
    drop(parent);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(released.poll(&mut cx), Poll::Ready(()));
    assert!(weak.upgrade().is_none());
    // It still links the child to the root, so the root's cancelation reaches both.
    root.cancel();
    assert!(child.is_cancelled());
    assert!(weak.is_cancelled());
}

#[test]
fn released_resolves_when_the_token_is_cancelled() {
    let token = CancellationToken::new();
    let weak = token.downgrade();
    let (wakes, waker) = counting_waker();
    let mut released = pin!(weak.released());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(released.as_mut().poll(&mut cx), Poll::Pending);
    token.cancel();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(released.poll(&mut cx), Poll::Ready(()));
}

#[test]
fn released_resolves_when_the_last_handle_is_dropped_uncancelled() {
    let parent = CancellationToken::new();
    let token = parent.child_token();
    let weak = token.downgrade();
    let (wakes, waker) = counting_waker();
    let mut released = pin!(weak.released());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(released.as_mut().poll(&mut cx), Poll::Pending);
    let clone = token.clone();
    drop(token);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "a handle is left");
    assert_eq!(released.as_mut().poll(&mut cx), Poll::Pending);
    drop(clone);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(released.poll(&mut cx), Poll::Ready(()));
    assert!(!weak.is_cancelled());
}

#[test]
fn released_is_ready_at_once_for_a_dead_or_cancelled_token() {
    let token = CancellationToken::new();
    let weak = token.downgrade();
    token.cancel();
    block_on(weak.released());
    let weak = CancellationToken::new().downgrade();
    block_on(weak.released());
}

#[test]
fn released_of_an_any_of_token_resolves_when_it_is_dropped() {
    let a = CancellationToken::new();
    let b = CancellationToken::new();
    let linked = CancellationToken::any_of([&a, &b]);
    let weak = linked.downgrade();
    let waiter = thread::spawn(move || block_on(weak.released()));
    drop(linked);
    waiter.join().unwrap();
    a.cancel();
}

#[test]
fn pending_released_future_may_be_dropped_before_and_after_the_token_dies() {
    let token = CancellationToken::new();
    let weak = token.downgrade();
    let mut cx = Context::from_waker(Waker::noop());
    let mut before = Box::pin(weak.released());
    let mut after = Box::pin(weak.released());
    assert!(before.as_mut().poll(&mut cx).is_pending());
    assert!(after.as_mut().poll(&mut cx).is_pending());
    drop(before);
    drop(token);
    drop(weak);
    // The future's own weak reference keeps the node's memory until here.
    drop(after);
}

#[test]
fn repolling_released_with_a_new_waker_still_gets_woken() {
    let token = CancellationToken::new();
    let weak = token.downgrade();
    let mut released = pin!(weak.released());
    assert!(
        released
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    let (wakes, waker) = counting_waker();
    assert!(
        released
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(token);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
}

#[test]
fn last_handle_dropped_on_another_thread_releases_every_watcher() {
    for _ in 0..size(500) {
        let token = CancellationToken::new().child_token();
        let watchers: Vec<_> = (0..3)
            .map(|_| {
                let weak = token.downgrade();
                thread::spawn(move || block_on(weak.released()))
            })
            .collect();
        let dropper = thread::spawn(move || drop(token));
        dropper.join().unwrap();
        for watcher in watchers {
            watcher.join().unwrap();
        }
    }
}

#[test]
fn weak_handles_are_send_sync_static_and_one_pointer() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<cancelable::WeakCancellationToken>();
    assert_send_sync::<cancelable::Released>();
    assert_eq!(
        std::mem::size_of::<cancelable::WeakCancellationToken>(),
        std::mem::size_of::<usize>()
    );
}
