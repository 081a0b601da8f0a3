//! `TaskTrackerExt`: spawning on a `TaskTracker` with tokio-util's call shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cancelable::{CancellationToken, FutureExt as _, TaskTracker};
use futures_lite::future;

use super::adapter::TaskTrackerExt as _;
use super::block_on;

#[test]
fn tokio_utils_spawn_and_wait_example_runs_with_only_its_imports_changed() {
    // tokio-util's `TaskTracker` example "Spawn tasks and wait for them to exit", with a counter
    // where it prints.
    let ran = Arc::new(AtomicUsize::new(0));
    block_on(async {
        let tracker = TaskTracker::new();

        for i in 0..10 {
            let ran = ran.clone();
            tracker.spawn(async move {
                ran.fetch_add(i, Ordering::Relaxed);
            });
        }
        // Once we spawned everything, we close the tracker.
        tracker.close();

        // Wait for everything to finish.
        tracker.wait().await;
    });
    assert_eq!(ran.load(Ordering::Relaxed), 45);
}

#[test]
fn tracker_spawn_counts_the_task_until_it_ends_and_its_handle_gives_the_output() {
    block_on(async {
        let tracker = TaskTracker::new();
        let (go, wait) = async_channel::bounded::<()>(1);
        let task = tracker.spawn(async move {
            wait.recv().await.unwrap();
            "done"
        });
        assert_eq!(tracker.len(), 1);
        tracker.close();
        assert!(future::poll_once(tracker.wait()).await.is_none());
        go.send(()).await.unwrap();
        assert_eq!(task.await, "done");
        tracker.wait().await;
        assert!(tracker.is_empty());
    });
}

#[test]
fn tracker_spawn_handles_detach_when_dropped_and_the_tracker_waits_for_the_tasks() {
    block_on(async {
        let tracker = TaskTracker::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let finished = finished.clone();
            drop(tracker.spawn(async move {
                future::yield_now().await;
                finished.fetch_add(1, Ordering::Relaxed);
            }));
        }
        tracker.close();
        tracker.wait().await;
        assert_eq!(finished.load(Ordering::Relaxed), 10);
    });
}

#[test]
fn tracker_spawn_with_a_cancellation_token_is_tokio_utils_graceful_shutdown() {
    block_on(async {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let cleaned_up = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let token = token.clone();
            let cleaned_up = cleaned_up.clone();
            tracker.spawn(async move {
                let stopped = future::pending::<()>()
                    .with_cancellation_token_owned(token)
                    .await;
                assert_eq!(stopped, None);
                cleaned_up.fetch_add(1, Ordering::Relaxed);
            });
        }
        tracker.close();
        token.cancel();
        tracker.wait().await;
        assert_eq!(cleaned_up.load(Ordering::Relaxed), 10);
    });
}

#[test]
fn tracker_spawn_blocking_counts_the_closure_until_it_returns() {
    block_on(async {
        let tracker = TaskTracker::new();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let task = tracker.spawn_blocking(move || {
            // Blocks its thread until the test lets it return.
            wait.recv().unwrap();
            7
        });
        assert_eq!(tracker.len(), 1);
        tracker.close();
        assert!(future::poll_once(tracker.wait()).await.is_none());
        go.send(()).unwrap();
        tracker.wait().await;
        assert_eq!(task.await, 7);
    });
}

#[test]
fn tracker_spawn_blocking_handles_detach_when_dropped() {
    block_on(async {
        let tracker = TaskTracker::new();
        let (done, finished) = async_channel::bounded::<u32>(1);
        drop(tracker.spawn_blocking(move || done.send_blocking(42).unwrap()));
        assert_eq!(finished.recv().await, Ok(42));
        tracker.close();
        tracker.wait().await;
    });
}
