//! Callbacks and guards: reacting to cancelation without a task that waits for it.
//!
//! - `on_cancel` registers a closure that runs once, on the cancelling thread, with the reason;
//! - the returned `CancelCallback` unregisters it (explicitly, or by being dropped);
//! - a callback registered on an already-cancelled token runs at once;
//! - `drop_guard` / `drop_guard_ref` cancel when a scope ends, `panic_guard` only when it unwinds.
//!
//! Run with `cargo run --example callbacks`.

use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use cancelable::{CancelReason, CancellationToken};

fn main() {
    callbacks();
    println!();
    guards();
}

fn callbacks() {
    println!("== on_cancel");
    let token = CancellationToken::new();
    let runs = Arc::new(AtomicUsize::new(0));

    // A callback sees the reason: here it would release a resource tied to the operation.
    let counter = Arc::clone(&runs);
    let close_file = token.on_cancel(move |reason| {
        counter.fetch_add(1, Ordering::SeqCst);
        println!("callback 'close file' runs: reason = {reason}");
    });

    // Callbacks on a child run too, with the reason inherited from the parent.
    let child = token.child_token();
    let counter = Arc::clone(&runs);
    let _child_cb = child.on_cancel(move |reason| {
        counter.fetch_add(1, Ordering::SeqCst);
        println!(
            "callback on the child runs: kind = {:?}, message = {:?}",
            reason.kind(),
            reason.message()
        );
    });

    // Unregistering before cancelation: the callback will never run, and `unregister` says so.
    let never = token.on_cancel(|_| unreachable!("unregistered before the cancel"));
    println!(
        "unregistered a callback before cancel: removed = {}",
        never.unregister()
    );

    // Dropping the handle unregisters as well: keep the handle for as long as the callback matters.
    drop(token.on_cancel(|_| unreachable!("dropped before the cancel")));
    println!("dropped another callback's handle: it is gone too");

    println!("cancelling with a reason...");
    let reason = CancelReason::condition().with_message("disk almost full");
    token.cancel_with(reason);
    // By the time `cancel_with` returns, every callback of the token and its descendants has run.
    println!(
        "cancel_with returned; callbacks run so far: {}",
        runs.load(Ordering::SeqCst)
    );

    // Too late to unregister a callback that already ran: `unregister` returns false.
    println!(
        "unregister after it ran: removed = {}",
        close_file.unregister()
    );

    // Registering on a cancelled token runs the callback immediately, before `on_cancel` returns,
    // so "register, then check" races cannot lose a cancelation.
    let counter = Arc::clone(&runs);
    let _late = token.on_cancel(move |reason| {
        counter.fetch_add(1, Ordering::SeqCst);
        println!("late callback runs immediately: reason = {reason}");
    });
    println!(
        "on_cancel returned; callbacks run in total: {}",
        runs.load(Ordering::SeqCst)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

fn guards() {
    println!("== guards");

    // drop_guard: the token is cancelled when the guard goes out of scope, whatever the exit path.
    let token = CancellationToken::new();
    {
        let _guard = token.clone().drop_guard();
        println!(
            "inside the scope with a DropGuard: cancelled = {}",
            token.is_cancelled()
        );
    }
    println!(
        "after the scope: cancelled = {} ({:?})",
        token.is_cancelled(),
        token.reason()
    );

    // disarm: the work finished normally, hand the token back without cancelling it.
    let token = CancellationToken::new();
    let guard = token.clone().drop_guard();
    let _back: CancellationToken = guard.disarm();
    println!("DropGuard disarmed: cancelled = {}", token.is_cancelled());

    // drop_guard_ref borrows the token instead of taking a handle.
    let token = CancellationToken::new();
    drop(token.drop_guard_ref());
    println!("DropGuardRef dropped: cancelled = {}", token.is_cancelled());

    // panic_guard: cancels only if the thread unwinds, so siblings stop when a worker panics.
    // Quiet the default panic message for this demonstration; the narrative says what happens.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| println!("worker thread panics (on purpose)")));

    let healthy = CancellationToken::new();
    let t = healthy.clone();
    thread::spawn(move || {
        let _guard = t.panic_guard();
        // ... work that finishes normally ...
    })
    .join()
    .expect("the healthy worker does not panic");
    println!(
        "worker returned normally: cancelled = {}",
        healthy.is_cancelled()
    );

    let crashed = CancellationToken::new();
    let t = crashed.clone();
    let result = thread::spawn(move || {
        let _guard = t.panic_guard();
        panic!("worker failed");
    })
    .join();
    panic::set_hook(default_hook);
    assert!(result.is_err());
    println!(
        "worker panicked: cancelled = {} ({:?})",
        crashed.is_cancelled(),
        crashed.reason()
    );
}
