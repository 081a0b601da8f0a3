//! `TaskTracker` on several executors (smol, async-std, tokio and plain threads running
//! `futures_lite::future::block_on`): the tracker only stores and wakes wakers, so the same
//! behaviour must hold on each. Nothing synchronises with sleeps: tasks hand over through
//! tokens, channels and the tracker itself.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use cancelable::{CancellationToken, TaskTracker};
use futures_lite::future::{block_on, poll_once};

type Handle<T> = Pin<Box<dyn Future<Output = T> + Send>>;

trait Runtime {
    fn block_on<F: Future>(future: F) -> F::Output;
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T>;
}

struct Smol;
impl Runtime for Smol {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::smol::block_on(future)
    }
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Box::pin(::smol::spawn(future))
    }
}

struct AsyncStd;
impl Runtime for AsyncStd {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::async_std::task::block_on(future)
    }
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Box::pin(::async_std::task::spawn(future))
    }
}

/// Each task on a thread of its own, running `futures_lite::future::block_on`.
struct Threads;
impl Runtime for Threads {
    fn block_on<F: Future>(future: F) -> F::Output {
        block_on(future)
    }
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        let (sender, receiver) = ::smol::channel::bounded(1);
        thread::spawn(move || {
            let _ = sender.try_send(block_on(future));
        });
        Box::pin(async move { receiver.recv().await.expect("the task panicked") })
    }
}

struct Tokio;
impl Runtime for Tokio {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
            .block_on(future)
    }
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        let handle = ::tokio::spawn(future);
        Box::pin(async move { handle.await.expect("the task panicked") })
    }
}

fn wait_resolves_only_once_closed_and_the_last_task_has_ended<R: Runtime>() {
    R::block_on(async {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let token = shutdown.child_token();
                R::spawn(tracker.track_future(async move { token.cancelled().await }))
            })
            .collect();
        let mut waiting = pin!(tracker.wait());
        assert!(poll_once(waiting.as_mut()).await.is_none(), "open, 8 tasks");
        tracker.close();
        assert!(
            poll_once(waiting.as_mut()).await.is_none(),
            "closed, 8 tasks"
        );
        assert_eq!(tracker.len(), 8);

        shutdown.cancel();
        waiting.await;
        assert!(tracker.is_empty());
        for handle in handles {
            handle.await;
        }
    });
}

fn what_tracked_tasks_did_is_visible_once_wait_returns<R: Runtime>() {
    R::block_on(async {
        let tracker = TaskTracker::new();
        let done = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let done = done.clone();
                R::spawn(tracker.track_future(async move {
                    // Relaxed on purpose: the tracker's own ordering must publish it.
                    done.fetch_add(1, Ordering::Relaxed);
                }))
            })
            .collect();
        tracker.close();
        tracker.wait().await;
        assert_eq!(done.load(Ordering::Relaxed), 16);
        for handle in handles {
            handle.await;
        }
    });
}

fn every_waiter_on_every_task_wakes_when_the_tracker_drains<R: Runtime>() {
    R::block_on(async {
        let tracker = TaskTracker::new();
        let last = tracker.token();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let tracker = tracker.clone();
                // Each first polls before or after the drain: either way it must resolve.
                R::spawn(async move { tracker.wait().await })
            })
            .collect();
        tracker.close();
        drop(last);
        for waiter in waiters {
            waiter.await;
        }
    });
}

fn a_token_held_by_a_thread_keeps_wait_pending_until_dropped<R: Runtime>() {
    R::block_on(async {
        let tracker = TaskTracker::new();
        let token = tracker.token();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let worker = thread::spawn(move || {
            released.recv().unwrap();
            drop(token);
        });
        tracker.close();
        let mut waiting = pin!(tracker.wait());
        assert!(poll_once(waiting.as_mut()).await.is_none());
        release.send(()).unwrap();
        waiting.await;
        worker.join().unwrap();
    });
}

fn a_tracker_reopened_and_closed_again_drains_a_second_time<R: Runtime>() {
    R::block_on(async {
        let tracker = TaskTracker::new();
        tracker.close();
        tracker.wait().await;
        assert!(tracker.reopen());

        let gate = CancellationToken::new();
        let task = {
            let gate = gate.clone();
            R::spawn(tracker.track_future(async move { gate.cancelled().await }))
        };
        let mut second = pin!(tracker.wait());
        assert!(poll_once(second.as_mut()).await.is_none(), "reopened");
        tracker.close();
        assert!(poll_once(second.as_mut()).await.is_none(), "a task is live");
        gate.cancel();
        second.await;
        task.await;
    });
}

macro_rules! on_runtimes {
    (runtimes { $($module:ident: $runtime:ident),* $(,)? } behaviours $behaviours:tt) => {
        $( on_runtimes!(@module $module $runtime $behaviours); )*
    };
    (@module $module:ident $runtime:ident { $($behaviour:ident),* $(,)? }) => {
        mod $module {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour::<super::$runtime>();
                }
            )*
        }
    };
}

on_runtimes! {
    runtimes { smol: Smol, async_std: AsyncStd, threads: Threads, tokio: Tokio }
    behaviours {
        wait_resolves_only_once_closed_and_the_last_task_has_ended,
        what_tracked_tasks_did_is_visible_once_wait_returns,
        every_waiter_on_every_task_wakes_when_the_tracker_drains,
        a_token_held_by_a_thread_keeps_wait_pending_until_dropped,
        a_tracker_reopened_and_closed_again_drains_a_second_time,
    }
}

// Executor-independent behaviour, checked once.

#[test]
fn wait_on_a_closed_empty_tracker_is_ready_without_a_token() {
    let tracker = TaskTracker::new();
    assert!(tracker.close());
    assert_eq!(block_on(poll_once(tracker.wait())), Some(()));
}

#[test]
fn an_open_empty_tracker_never_resolves_wait() {
    let tracker = TaskTracker::new();
    assert!(block_on(poll_once(tracker.wait())).is_none());
}

#[test]
fn a_wait_created_before_a_brief_drain_resolves_after_reopen_and_new_tasks() {
    let tracker = TaskTracker::new();
    let task = tracker.token();
    let before = tracker.wait();
    tracker.close();
    drop(task);
    let _new_task = tracker.token();
    tracker.reopen();
    assert_eq!(block_on(poll_once(before)), Some(()));
    // A wait created after the drain belongs to the next generation.
    assert!(block_on(poll_once(tracker.wait())).is_none());
}

#[test]
fn len_counts_tokens_and_tracked_futures_until_they_are_dropped() {
    let tracker = TaskTracker::new();
    let token = tracker.token();
    let copy = token.clone();
    let tracked = tracker.track_future(async { 7 });
    assert_eq!(tracker.len(), 3);
    assert_eq!(block_on(tracked), 7);
    assert_eq!(tracker.len(), 2);
    drop(token);
    drop(copy);
    assert_eq!(tracker.len(), 0);
    assert!(tracker.is_empty());
}

#[test]
fn clones_share_tasks_and_the_closed_flag() {
    let tracker = TaskTracker::default();
    let clone = tracker.clone();
    assert!(TaskTracker::ptr_eq(&tracker, &clone));
    assert!(!TaskTracker::ptr_eq(&tracker, &TaskTracker::new()));
    let _task = clone.token();
    assert_eq!(tracker.len(), 1);
    assert!(clone.close());
    assert!(tracker.is_closed());
    assert!(!tracker.close(), "second close reports it was closed");
    assert!(tracker.reopen());
    assert!(!clone.is_closed());
    assert!(!clone.reopen(), "second reopen reports it was open");
}

#[test]
fn debug_shows_the_count_and_the_closed_flag() {
    let tracker = TaskTracker::new();
    let _task = tracker.token();
    tracker.close();
    assert_eq!(
        format!("{tracker:?}"),
        "TaskTracker { len: 1, is_closed: true }"
    );
    let waiting = tracker.wait();
    assert!(format!("{waiting:?}").starts_with("TaskTrackerWaitFuture"));
}
