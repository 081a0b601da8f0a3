//! Loom models of `TaskTracker`: each one race between waiting and the state changes that end
//! (or restart) a wait, explored over every interleaving with a bounded number of preemptions.
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p cancelable --release --test loom_tracker`.
#![cfg(loom)]

use std::pin::pin;
use std::task::{Context, Waker};

use cancelable::TaskTracker;
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
fn last_task_finishing_vs_wait_has_no_lost_wakeup() {
    model(|| {
        let tracker = TaskTracker::new();
        let task = tracker.token();
        tracker.close();
        let finisher = thread::spawn(move || drop(task));
        loom::future::block_on(tracker.wait());
        finisher.join().unwrap();
    });
}

#[test]
fn close_vs_wait_on_an_empty_tracker_has_no_lost_wakeup() {
    model(|| {
        let tracker = TaskTracker::new();
        let closer = {
            let tracker = tracker.clone();
            thread::spawn(move || assert!(tracker.close()))
        };
        loom::future::block_on(tracker.wait());
        closer.join().unwrap();
    });
}

#[test]
fn close_vs_last_task_finishing_wakes_a_pending_waiter() {
    model(|| {
        let tracker = TaskTracker::new();
        let task = tracker.token();
        let waiting = {
            let tracker = tracker.clone();
            thread::spawn(move || loom::future::block_on(tracker.wait()))
        };
        let finisher = thread::spawn(move || drop(task));
        tracker.close();
        finisher.join().unwrap();
        waiting.join().unwrap();
        assert!(tracker.is_closed() && tracker.is_empty());
    });
}

#[test]
fn token_drop_vs_a_second_token_leaves_the_waiter_waiting_for_both() {
    model(|| {
        let tracker = TaskTracker::new();
        tracker.close();
        let first = tracker.token();
        let second = tracker.token();
        let finishers = [first, second].map(|task| thread::spawn(move || drop(task)));
        loom::future::block_on(tracker.wait());
        // Resolving means both were gone at some point, and nothing adds tasks here.
        assert!(tracker.is_empty());
        for finisher in finishers {
            finisher.join().unwrap();
        }
    });
}

#[test]
fn wait_created_before_a_brief_drain_resolves_after_reopen() {
    model(|| {
        let tracker = TaskTracker::new();
        let task = tracker.token();
        // Created before the drain, so it must resolve although the tracker ends up open.
        let waiting = tracker.wait();
        let drainer = {
            let tracker = tracker.clone();
            thread::spawn(move || {
                tracker.close();
                drop(task);
                let _late = tracker.token();
                tracker.reopen();
            })
        };
        loom::future::block_on(waiting);
        drainer.join().unwrap();
    });
}

#[test]
fn reopen_vs_last_task_finishing_then_close_wakes_an_older_waiter() {
    model(|| {
        let tracker = TaskTracker::new();
        tracker.close();
        let task = tracker.token();
        let mut waiting = pin!(tracker.wait());
        let finisher = thread::spawn(move || drop(task));
        let reopener = {
            let tracker = tracker.clone();
            thread::spawn(move || tracker.reopen())
        };
        // Poll while the races run: the waiter may register in either generation.
        let first = waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        finisher.join().unwrap();
        assert!(reopener.join().unwrap());
        // Open and empty now; closing drains it, so the waiter resolves whichever way it went.
        assert!(tracker.close());
        if first.is_pending() {
            loom::future::block_on(waiting);
        }
    });
}
