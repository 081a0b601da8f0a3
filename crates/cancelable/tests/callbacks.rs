//! `on_cancel`: exactly once, on the cancelling thread, with the reason; unregistration; panics.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use cancelable::{CancelCallback, CancelKind, CancelReason, CancellationToken};

fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let handle = count.clone();
    (count, move || handle.clone())
}

#[test]
fn callback_runs_once_with_the_reason_before_cancel_returns() {
    let token = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let _cb = token.on_cancel(move |reason| log.lock().unwrap().push(reason.clone()));
    token.cancel_with(CancelReason::timeout().with_message("3s"));
    token.cancel();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![CancelReason::timeout().with_message("3s")]
    );
}

#[test]
fn callback_runs_on_the_cancelling_thread() {
    let token = CancellationToken::new();
    let ran_on = Arc::new(Mutex::new(None));
    let slot = ran_on.clone();
    let _cb = token.on_cancel(move |_| *slot.lock().unwrap() = Some(thread::current().id()));
    let canceller = token.clone();
    let id = thread::spawn(move || {
        canceller.cancel();
        thread::current().id()
    })
    .join()
    .unwrap();
    assert_eq!(*ran_on.lock().unwrap(), Some(id));
}

#[test]
fn callback_on_an_already_cancelled_token_runs_before_on_cancel_returns() {
    let token = CancellationToken::new();
    token.cancel_with(CancelKind::Shutdown);
    let (count, handle) = counter();
    let c = handle();
    let cb = token.on_cancel(move |reason| {
        assert_eq!(reason.kind(), CancelKind::Shutdown);
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(!cb.unregister());
}

#[test]
fn descendant_callbacks_run_with_the_ancestors_reason() {
    let root = CancellationToken::new();
    let leaf = root.child_token().child_token();
    let seen = Arc::new(Mutex::new(None));
    let slot = seen.clone();
    let _cb = leaf.on_cancel(move |reason| *slot.lock().unwrap() = Some(reason.kind()));
    root.cancel_with(CancelKind::Signal);
    assert_eq!(*seen.lock().unwrap(), Some(CancelKind::Signal));
}

#[test]
fn callbacks_of_one_token_run_in_registration_order() {
    let token = CancellationToken::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let callbacks: Vec<_> = (0..5)
        .map(|i| {
            let order = order.clone();
            token.on_cancel(move |_| order.lock().unwrap().push(i))
        })
        .collect();
    token.cancel();
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    drop(callbacks);
}

#[test]
fn unregistered_callback_never_runs_and_reports_true() {
    let token = CancellationToken::new();
    let (count, handle) = counter();
    let c = handle();
    let cb = token.on_cancel(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(cb.unregister());
    token.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[test]
fn dropped_callback_never_runs() {
    let token = CancellationToken::new();
    let (count, handle) = counter();
    let c = handle();
    drop(token.on_cancel(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    }));
    token.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[test]
fn unregister_after_the_run_reports_false() {
    let token = CancellationToken::new();
    let cb = token.on_cancel(|_| {});
    token.cancel();
    assert!(!cb.unregister());
}

#[test]
fn callback_survives_dropping_its_token_and_runs_when_the_parent_cancels() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let (count, handle) = counter();
    let c = handle();
    let _cb = child.on_cancel(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    drop(child);
    root.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn closure_of_an_unregistered_callback_is_dropped_at_once() {
    let token = CancellationToken::new();
    let payload = Arc::new(());
    let held = payload.clone();
    let cb = token.on_cancel(move |_| drop(held));
    assert_eq!(Arc::strong_count(&payload), 2);
    drop(cb);
    assert_eq!(Arc::strong_count(&payload), 1);
}

#[test]
fn closure_is_released_after_it_runs_even_if_the_handle_lives_on() {
    let token = CancellationToken::new();
    let payload = Arc::new(());
    let held = payload.clone();
    let cb = token.on_cancel(move |_| {
        let _keep = &held;
    });
    token.cancel();
    assert_eq!(Arc::strong_count(&payload), 1);
    drop(cb);
}

#[cfg(feature = "std")]
#[test]
fn panicking_callback_does_not_stop_the_others_and_resumes_after() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let (count, handle) = counter();
    let mut callbacks = Vec::new();
    for token in [&root, &child] {
        let c = handle();
        callbacks.push(token.on_cancel(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        callbacks.push(token.on_cancel(|_| panic!("callback failed")));
        let c = handle();
        callbacks.push(token.on_cancel(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let grandchild = child.child_token();
    let result = catch_unwind(AssertUnwindSafe(|| root.cancel()));
    let payload = result.expect_err("the first panic resumes out of cancel");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback failed"));
    assert_eq!(count.load(Ordering::SeqCst), 4);
    assert!(grandchild.is_cancelled());
}

#[test]
fn panicking_callback_on_a_cancelled_token_panics_out_of_on_cancel() {
    let token = CancellationToken::new();
    token.cancel();
    let result = catch_unwind(AssertUnwindSafe(|| token.on_cancel(|_| panic!("late"))));
    assert!(result.is_err());
    assert!(token.is_cancelled());
}

#[test]
fn callback_may_use_the_tree_it_is_called_from() {
    // Callbacks run with no lock held: creating children, registering callbacks or cancelling
    // other tokens from inside one must not deadlock.
    let root = CancellationToken::new();
    let other = CancellationToken::new();
    let inner = root.clone();
    let target = other.clone();
    let _cb = root.on_cancel(move |_| {
        assert!(inner.child_token().is_cancelled());
        target.cancel_with(CancelKind::Condition);
        drop(inner.on_cancel(|_| {}));
    });
    root.cancel();
    assert_eq!(other.reason().unwrap().kind(), CancelKind::Condition);
}

/// A flag a callback sets when it runs.
fn flag() -> (
    Arc<AtomicUsize>,
    impl FnOnce(&CancelReason) + Send + 'static,
) {
    let ran = Arc::new(AtomicUsize::new(0));
    let seen = ran.clone();
    (ran, move |_: &CancelReason| {
        seen.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn callback_unregistered_by_an_earlier_callback_of_the_same_token_never_runs() {
    let token = CancellationToken::new();
    let later: Arc<Mutex<Option<CancelCallback>>> = Arc::default();
    let verdict = Arc::new(Mutex::new(None));
    let _first = {
        let (later, verdict) = (later.clone(), verdict.clone());
        token.on_cancel(move |_| {
            let handle = later.lock().unwrap().take().unwrap();
            *verdict.lock().unwrap() = Some(handle.unregister());
        })
    };
    let (ran, f) = flag();
    *later.lock().unwrap() = Some(token.on_cancel(f));
    token.cancel();
    assert_eq!(
        *verdict.lock().unwrap(),
        Some(true),
        "unregister saw it not started"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "so it must never run");
}

#[test]
fn callback_dropped_by_an_ancestor_callback_never_runs() {
    let root = CancellationToken::new();
    let grandchild = root.child_token().child_token();
    let (ran, f) = flag();
    let handle = Arc::new(Mutex::new(Some(grandchild.on_cancel(f))));
    let _drops_it = {
        let handle = handle.clone();
        root.on_cancel(move |_| drop(handle.lock().unwrap().take()))
    };
    root.cancel();
    assert!(grandchild.is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn unregister_reports_true_exactly_when_the_callback_never_runs_across_threads() {
    for _ in 0..common::size(2_000) {
        let root = CancellationToken::new();
        let child = root.child_token();
        // Callbacks on the root first, so the child's is taken and then waits its turn.
        let _before: Vec<_> = (0..4).map(|_| root.on_cancel(|_| {})).collect();
        let (ran, f) = flag();
        let handle = child.on_cancel(f);
        let canceller = thread::spawn(move || root.cancel());
        let removed = handle.unregister();
        canceller.join().unwrap();
        assert_eq!(removed, ran.load(Ordering::SeqCst) == 0);
    }
}

#[test]
fn panicking_callback_leaves_every_later_callback_run_or_unregistrable() {
    // With `std` the panic is held until every callback ran; without it the panic unwinds out of
    // `cancel` at once. Either way no callback may end up neither run nor removable.
    let root = CancellationToken::new();
    let child = root.child_token();
    let _boom = root.on_cancel(|_| panic!("callback failed"));
    let (ran, f) = flag();
    let later = root.on_cancel(f);
    let (child_ran, g) = flag();
    let child_later = child.on_cancel(g);
    let result = catch_unwind(AssertUnwindSafe(|| root.cancel()));
    assert!(result.is_err());
    // A second cancel finishes whatever the unwinding left undone.
    assert!(!root.cancel_with(CancelKind::Manual));
    assert!(child.is_cancelled());
    assert_eq!(later.unregister(), ran.load(Ordering::SeqCst) == 0);
    assert_eq!(
        child_later.unregister(),
        child_ran.load(Ordering::SeqCst) == 0
    );
}

#[test]
fn panic_payload_that_panics_when_dropped_does_not_stop_later_callbacks() {
    struct Nasty;
    impl Drop for Nasty {
        fn drop(&mut self) {
            panic!("payload dropped");
        }
    }
    let token = CancellationToken::new();
    let _first = token.on_cancel(|_| panic!("first"));
    let _second = token.on_cancel(|_| std::panic::panic_any(Nasty));
    let (ran, f) = flag();
    let _third = token.on_cancel(f);
    let result = catch_unwind(AssertUnwindSafe(|| token.cancel()));
    #[cfg(feature = "std")]
    {
        let payload = result.expect_err("the first panic resumes");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"first"));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
    #[cfg(not(feature = "std"))]
    {
        assert!(result.is_err());
        drop(ran);
    }
}

#[test]
fn losing_cancel_returns_at_once_while_the_winner_still_runs_the_callbacks_it_took() {
    // What guarantee 1 promises a losing call: every descendant is cancelled, and callbacks the
    // winner took run on the winner's thread before the winner returns; nobody waits.
    let root = CancellationToken::new();
    let child = root.child_token();
    let grandchild = child.child_token();
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let _slow = root.on_cancel(move |_| {
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    let (ran, f) = flag();
    let _queued = grandchild.on_cancel(f);
    let winner = {
        let root = root.clone();
        thread::spawn(move || root.cancel())
    };
    entered_rx.recv().unwrap();
    assert!(!child.cancel_with(CancelKind::Timeout));
    assert_eq!(grandchild.reason().unwrap().kind(), CancelKind::Manual);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "queued behind the slow callback"
    );
    release_tx.send(()).unwrap();
    winner.join().unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "run before the winning cancel returned"
    );
}
