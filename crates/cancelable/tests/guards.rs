//! Guards: `DropGuard`, `DropGuardRef` and `PanicGuard` cancel exactly when they should.

#[cfg(feature = "std")]
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(feature = "std")]
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
#[cfg(feature = "std")]
use std::thread;

use cancelable::{CancelKind, CancellationToken};

#[test]
fn drop_guard_cancels_with_manual_reason_when_dropped() {
    let token = CancellationToken::new();
    let child = token.child_token();
    drop(token.clone().drop_guard());
    assert_eq!(child.reason().unwrap().kind(), CancelKind::Manual);
}

#[test]
fn disarmed_drop_guard_returns_the_same_token_uncancelled() {
    let token = CancellationToken::new();
    let guard = token.clone().drop_guard();
    assert_eq!(guard.token(), &token);
    let back = guard.disarm();
    assert_eq!(back, token);
    assert!(!token.is_cancelled());
}

#[test]
fn drop_guard_ref_cancels_unless_disarmed() {
    let kept = CancellationToken::new();
    let guard = kept.drop_guard_ref();
    assert_eq!(guard.token(), &kept);
    assert_eq!(guard.disarm(), &kept);
    assert!(!kept.is_cancelled());

    let dropped = CancellationToken::new();
    drop(dropped.drop_guard_ref());
    assert!(dropped.is_cancelled());
}

#[test]
fn drop_guard_on_an_already_cancelled_token_keeps_the_first_reason() {
    let token = CancellationToken::new();
    token.cancel_with(CancelKind::Timeout);
    drop(token.clone().drop_guard());
    assert_eq!(token.reason().unwrap().kind(), CancelKind::Timeout);
}

#[cfg(feature = "std")]
#[test]
fn panic_guard_cancels_only_during_a_panic() {
    let token = CancellationToken::new();
    drop(token.panic_guard());
    assert!(!token.is_cancelled());

    let result = catch_unwind(AssertUnwindSafe(|| {
        let _guard = token.panic_guard();
        panic!("worker died");
    }));
    assert!(result.is_err());
    let reason = token.reason().unwrap();
    assert_eq!(reason.kind(), CancelKind::Manual);
    assert_eq!(reason.message(), Some("thread panicked"));
}

#[cfg(feature = "std")]
#[test]
fn disarmed_panic_guard_does_not_cancel_during_a_panic() {
    let token = CancellationToken::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let guard = token.panic_guard();
        let _token = guard.disarm();
        panic!("worker died");
    }));
    assert!(result.is_err());
    assert!(!token.is_cancelled());
}

#[cfg(feature = "std")]
#[test]
fn panic_guard_survives_a_panicking_callback_while_the_thread_unwinds() {
    // The guard cancels from a destructor that runs during unwinding: a callback that panics
    // then must not turn the unwinding into an abort ("panic in a destructor during cleanup").
    let token = CancellationToken::new();
    let child = token.child_token();
    let _boom = token.on_cancel(|_| panic!("callback failed"));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let _later = child.on_cancel(move |_| flag.store(true, Ordering::SeqCst));
    let worker = {
        let token = token.clone();
        thread::spawn(move || {
            let _guard = token.panic_guard();
            panic!("worker died");
        })
    };
    let payload = worker
        .join()
        .expect_err("the worker's own panic reaches join");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker died"));
    assert_eq!(token.reason().unwrap().message(), Some("thread panicked"));
    assert!(child.is_cancelled());
    assert!(ran.load(Ordering::SeqCst));
}

#[cfg(feature = "std")]
#[test]
fn drop_guard_dropped_by_a_panic_survives_a_panicking_callback() {
    let token = CancellationToken::new();
    let _boom = token.on_cancel(|_| panic!("callback failed"));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _guard = token.clone().drop_guard();
        panic!("request failed");
    }));
    let payload = result.expect_err("the original panic goes on");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"request failed"));
    assert_eq!(token.reason().unwrap().kind(), CancelKind::Manual);
}
