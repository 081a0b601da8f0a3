//! The core of `cancelable` in one screen.
//!
//! A root token and a child, a future raced against cancelation, a worker thread blocked until
//! cancelation, and a cancel that carries a reason every waiter can read.
//!
//! Run with `cargo run --example basic`.

use std::thread;
use std::time::Duration;

use cancelable::{CancelReason, CancellationToken};
use futures_lite::future;

fn main() {
    // A root and a child: cancelling the root reaches the child, never the other way round.
    let root = CancellationToken::new();
    let child = root.child_token();
    println!("created a root token and a child token");

    // A sibling can be cancelled alone; its parent does not notice.
    let sibling = root.child_token();
    sibling.cancel();
    println!(
        "cancelled a sibling: sibling cancelled = {}, root cancelled = {}",
        sibling.is_cancelled(),
        root.is_cancelled()
    );

    // `run_until_cancelled` races a future against the token. Here the future wins.
    let answer = future::block_on(child.run_until_cancelled(async { 6 * 7 }));
    println!("run_until_cancelled on a live token: {answer:?}");

    // A plain thread can wait too (the `std` feature): no executor needed to block on a token.
    let worker_token = child.clone();
    let worker = thread::spawn(move || {
        worker_token.wait_blocking();
        worker_token
            .reason()
            .expect("a cancelled token always has a reason")
    });

    // Someone else decides to stop everything, with a reason, a little later.
    let canceller_token = root.clone();
    let canceller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        canceller_token.cancel_with(CancelReason::shutdown().with_message("maintenance window"))
    });

    // Meanwhile the main thread awaits the child's cancelation on a tiny executor.
    println!("main: waiting for the child to be cancelled...");
    future::block_on(child.cancelled());
    let reason = child
        .reason()
        .expect("a cancelled token always has a reason");
    println!("main: child.cancelled() resolved; the child inherited the root's reason: {reason}");

    let performed = canceller.join().expect("canceller thread");
    println!("canceller thread: its cancel_with performed the cancelation: {performed}");
    let seen = worker.join().expect("worker thread");
    println!("worker thread: wait_blocking returned, reason = {seen}");

    // The first reason wins: a later cancel changes nothing and says so.
    let again = root.cancel_with(CancelReason::timeout());
    println!("a second cancel_with(timeout) performed the cancelation: {again}");

    // `check` turns the state into a `Result`, for `?` in synchronous code.
    match child.check() {
        Ok(()) => unreachable!("the child was cancelled"),
        Err(cancelled) => println!("child.check() = Err(\"{cancelled}\")"),
    }

    // On a cancelled token the future is not even polled.
    let skipped = future::block_on(child.run_until_cancelled(async {
        println!("this line is never printed");
        1
    }));
    println!("run_until_cancelled on a cancelled token: {skipped:?}");
}
