//! The adapter suite, written once and run on both adapters: `tests/adapters.rs` of
//! `cancelable-smol` and of `cancelable-async-std` include this file with `#[path]` after
//! defining `adapter` (the crate under test), `block_on` and `spawn_detached` for their runtime.
//! This file covers timeouts, spawning (a dropped handle detaches), shutdown, sources and the
//! watchers; `tracker.rs` spawning on a `TaskTracker`; `signals.rs` what a process does on
//! SIGINT and SIGTERM, on real child processes.
//!
//! (It lives here rather than in the core's `tests/executors.rs` because the adapters depend on
//! the core: a core test depending on them would be a dependency cycle for publishing.)
//!
//! Nothing synchronises with sleeps: tasks hand over through tokens, channels and the tracker.
//! Timing assertions are loose upper bounds (10x).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancelReason, CancellationToken, TaskTracker};
use futures_lite::future::{self, pending};

use super::{adapter, block_on, spawn_detached};

#[cfg(unix)]
mod signals;
mod tracker;

/// A future that never finishes and reports its drop on a channel.
struct DropFlag(Option<async_channel::Sender<()>>);

impl DropFlag {
    fn new() -> (Self, async_channel::Receiver<()>) {
        let (sender, receiver) = async_channel::bounded(1);
        (Self(Some(sender)), receiver)
    }
}

impl Future for DropFlag {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        let _ = self.0.take().unwrap().try_send(());
    }
}

#[test]
fn timeout_gives_the_output_when_the_future_finishes_first() {
    block_on(async {
        assert_eq!(
            adapter::timeout(Duration::from_secs(60), async { 7 }).await,
            Ok(7)
        );
        let later = async {
            future::yield_now().await;
            8
        };
        assert_eq!(
            adapter::timeout(Duration::from_secs(60), later).await,
            Ok(8)
        );
    });
}

#[test]
fn timeout_cancels_with_a_timeout_reason_naming_the_limit_and_drops_the_future() {
    block_on(async {
        let (work, dropped) = DropFlag::new();
        let start = Instant::now();
        let err = adapter::timeout(Duration::from_millis(20), work)
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.reason().kind(), CancelKind::Timeout);
        assert_eq!(err.reason().message(), Some("deadline of 20ms elapsed"));
        assert!(dropped.try_recv().is_ok(), "the inner future was dropped");
        assert!(
            took >= Duration::from_millis(20),
            "not before the deadline: {took:?}"
        );
        assert!(
            took < Duration::from_millis(200),
            "roughly at the deadline: {took:?}"
        );
    });
}

#[test]
fn timeout_at_a_past_deadline_still_polls_the_future_once_then_times_out() {
    block_on(async {
        let past = Instant::now();
        assert_eq!(adapter::timeout_at(past, async { 1 }).await, Ok(1));
        let err = adapter::timeout_at(past, pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(
            err.reason().message(),
            Some("deadline reached 0ns after it was set")
        );
    });
}

#[test]
fn timeout_at_a_future_deadline_waits_for_it() {
    block_on(async {
        let deadline = Instant::now() + Duration::from_millis(20);
        let err = adapter::timeout_at(deadline, pending::<()>())
            .await
            .unwrap_err();
        assert!(Instant::now() >= deadline);
        assert_eq!(err.reason().kind(), CancelKind::Timeout);
    });
}

#[test]
fn spawn_gives_the_output_of_a_task_whose_token_stays_live() {
    block_on(async {
        let token = CancellationToken::new();
        assert_eq!(adapter::spawn(&token, async { "done" }).await, Ok("done"));
    });
}

#[test]
fn spawn_drops_the_inner_future_at_cancelation_before_the_handle_is_awaited() {
    block_on(async {
        let token = CancellationToken::new();
        let (work, dropped) = DropFlag::new();
        let task = adapter::spawn(&token, work);
        token.cancel_with(CancelReason::shutdown().with_message("deploy"));
        // The task drops its future on its own, without anyone awaiting the handle.
        dropped.recv().await.unwrap();
        let err = task.await.unwrap_err();
        assert_eq!(err.reason().to_string(), "shutdown: deploy");
    });
}

#[test]
fn spawn_under_an_already_cancelled_token_never_polls_the_future() {
    block_on(async {
        let token = CancellationToken::new();
        token.cancel();
        let polled = Arc::new(AtomicUsize::new(0));
        let work = {
            let polled = polled.clone();
            future::poll_fn(move |_| {
                polled.fetch_add(1, Ordering::Relaxed);
                Poll::<()>::Pending
            })
        };
        assert!(adapter::spawn(&token, work).await.is_err());
        assert_eq!(polled.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn dropping_a_spawn_handle_detaches_the_task_which_runs_to_completion() {
    block_on(async {
        let token = CancellationToken::new();
        let (go, wait) = async_channel::bounded::<()>(1);
        let (done, finished) = async_channel::bounded::<&str>(1);
        let task = adapter::spawn(&token, async move {
            wait.recv().await.unwrap();
            done.send("committed").await.unwrap();
        });
        drop(task);
        // The task is still there to be told to go on, and finishes.
        go.send(()).await.expect("the task is still running");
        assert_eq!(finished.recv().await, Ok("committed"));
    });
}

#[test]
fn shutdown_waits_for_tracked_work_whose_spawn_handle_was_dropped() {
    block_on(async {
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let committed = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let committed = committed.clone();
                // Work that does not listen to the token: a commit that must not be cut short.
                adapter::spawn(
                    &CancellationToken::new(),
                    tracker.track_future(async move {
                        future::yield_now().await;
                        committed.fetch_add(1, Ordering::Relaxed);
                    }),
                )
            })
            .collect();
        // An operation body holding the handles is dropped, and the handles with it.
        drop(handles);
        let report = adapter::shutdown(
            &root,
            CancelKind::Shutdown,
            &tracker,
            Duration::from_secs(60),
        )
        .await;
        assert!(report.stopped_in_time(), "{report}");
        assert_eq!(
            committed.load(Ordering::Relaxed),
            10,
            "every task finished its work before the shutdown said so"
        );
    });
}

#[test]
fn spawn_on_grandchildren_of_a_tree_stops_every_task_with_the_root_reason() {
    block_on(async {
        let root = CancellationToken::new();
        let tasks: Vec<_> = (0..10)
            .flat_map(|_| {
                let child = root.child_token();
                (0..10)
                    .map(|_| adapter::spawn(&child.child_token(), pending::<()>()))
                    .collect::<Vec<_>>()
            })
            .collect();
        root.cancel_with(CancelKind::Shutdown);
        for task in tasks {
            assert_eq!(
                task.await.unwrap_err().reason().kind(),
                CancelKind::Shutdown
            );
        }
    });
}

#[test]
fn shutdown_waits_for_a_tracker_draining_spawned_work_and_reports_it_in_time() {
    block_on(async {
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let token = root.child_token();
            let finished = finished.clone();
            spawn_detached(tracker.track_future(async move {
                token.cancelled().await;
                // Cleanup after cancelation that the shutdown must wait for.
                future::yield_now().await;
                finished.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let report = adapter::shutdown(
            &root,
            CancelKind::Shutdown,
            &tracker,
            Duration::from_secs(60),
        )
        .await;
        assert!(report.stopped_in_time(), "{report}");
        assert_eq!(report.still_running(), 0);
        assert_eq!(finished.load(Ordering::Relaxed), 100);
        assert!(tracker.is_closed());
        assert!(report.to_string().starts_with("every task stopped within"));
    });
}

#[test]
fn shutdown_reports_the_tasks_still_running_after_the_grace_period() {
    block_on(async {
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let stubborn = tracker.token();
        let obedient = {
            let token = root.child_token();
            tracker.track_future(async move { token.cancelled().await })
        };
        spawn_detached(obedient);
        let grace = Duration::from_millis(20);
        let report = adapter::shutdown(&root, CancelKind::Shutdown, &tracker, grace).await;
        assert!(!report.stopped_in_time());
        assert_eq!(report.still_running(), 1);
        assert!(
            report.elapsed() >= grace && report.elapsed() < grace * 10,
            "{:?}",
            report.elapsed()
        );
        assert_eq!(
            report.to_string(),
            "1 task still running after the 20ms grace period"
        );
        assert_eq!(root.reason().unwrap().kind(), CancelKind::Shutdown);
        drop(stubborn);
    });
}

#[test]
fn timeout_source_resolves_after_its_duration_with_a_timeout_reason() {
    block_on(async {
        let source = adapter::sources::timeout(Duration::from_millis(10));
        assert_eq!(
            source.reason.to_string(),
            "timeout: deadline of 10ms elapsed"
        );
        let start = Instant::now();
        source.future.await;
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn deadline_source_resolves_at_its_instant() {
    block_on(async {
        let at = Instant::now() + Duration::from_millis(10);
        let source = adapter::sources::deadline(at);
        assert_eq!(source.reason.kind(), CancelKind::Timeout);
        source.future.await;
        assert!(Instant::now() >= at);
    });
}

#[test]
fn condition_source_keeps_checking_after_a_panicking_predicate() {
    block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let predicate = {
            let calls = calls.clone();
            move || match calls.fetch_add(1, Ordering::Relaxed) {
                0 => panic!("the predicate's first check fails"),
                1 => false,
                _ => true,
            }
        };
        let source = adapter::sources::condition(predicate, Duration::from_millis(1));
        assert_eq!(source.reason.kind(), CancelKind::Condition);
        source.future.await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn sources_plug_into_an_operation_in_one_call() {
    block_on(async {
        let run = cancelable::Operation::new("slow")
            .cancel_on(adapter::sources::condition(
                || false,
                Duration::from_secs(60),
            ))
            .cancel_on(adapter::sources::timeout(Duration::from_millis(10)))
            .run(|_| pending::<Result<(), _>>());
        let err = run.await.unwrap_err();
        assert_eq!(
            err.reason().to_string(),
            "timeout: deadline of 10ms elapsed"
        );
    });
}

/// Sends `signal` (a `kill -s` name) to this very process.
#[cfg(unix)]
fn raise(signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn signals_source_resolves_when_the_process_receives_one_of_its_signals() {
    block_on(async {
        // SIGUSR2 is this test's own: no other test of the suite sends or awaits it.
        let source = adapter::sources::signals([adapter::Signal::Usr2]).unwrap();
        assert_eq!(source.reason.to_string(), "signal: SIGUSR2 received");
        raise("USR2");
        source.future.await;
    });
}

#[cfg(unix)]
#[test]
fn signals_source_of_an_empty_set_names_sigint_and_sigterm() {
    let source = adapter::sources::signals([]).unwrap();
    assert_eq!(source.reason.message(), Some("SIGINT or SIGTERM received"));
}

#[test]
fn cancel_after_cancels_a_nested_tree_with_a_timeout_reason() {
    block_on(async {
        let root = CancellationToken::new();
        let request = root.child_token();
        let grandchild = request.child_token().child_token();
        let start = Instant::now();
        let watcher = adapter::cancel_after(&request, Duration::from_millis(20));
        grandchild.cancelled().await;
        assert!(watcher.await, "the timer cancelled the token");
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            grandchild.reason().unwrap().to_string(),
            "timeout: deadline of 20ms elapsed"
        );
        assert!(!root.is_cancelled(), "never upward");
    });
}

#[test]
fn cancel_after_ends_its_timer_task_at_once_when_every_handle_is_dropped() {
    block_on(async {
        let token = CancellationToken::new();
        let watcher = adapter::cancel_after(&token, Duration::from_secs(3600));
        let start = Instant::now();
        drop(token);
        assert!(!watcher.await);
        assert!(start.elapsed() < Duration::from_secs(10));
    });
}

#[test]
fn cancel_after_ends_its_timer_task_when_someone_else_cancels_first() {
    block_on(async {
        let token = CancellationToken::new();
        let watcher = adapter::cancel_after(&token, Duration::from_secs(3600));
        token.cancel_with(CancelKind::Shutdown);
        assert!(!watcher.await);
        assert_eq!(token.reason().unwrap().kind(), CancelKind::Shutdown);
    });
}

#[test]
fn cancel_after_on_a_cancelled_token_starts_nothing() {
    let token = CancellationToken::new();
    token.cancel();
    let watcher = adapter::cancel_after(&token, Duration::from_secs(3600));
    // Ready without a runtime: no task was spawned.
    assert_eq!(future::block_on(future::poll_once(watcher)), Some(false));
}

#[test]
fn cancel_when_checks_at_once_then_every_interval_and_survives_a_panicking_predicate() {
    block_on(async {
        let token = CancellationToken::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let predicate = {
            let calls = calls.clone();
            move || match calls.fetch_add(1, Ordering::Relaxed) {
                0 => panic!("the first check panics"),
                1 | 2 => false,
                _ => true,
            }
        };
        let start = Instant::now();
        let watcher = adapter::cancel_when(&token, predicate, Duration::from_millis(5));
        assert!(watcher.await);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            4,
            "checked once at start, then 3 intervals"
        );
        assert!(start.elapsed() >= Duration::from_millis(15));
        assert_eq!(
            token.reason().unwrap().to_string(),
            "condition: predicate returned true (checked every 5ms)"
        );
    });
}

#[test]
fn cancel_when_checks_once_at_start_without_waiting_an_interval() {
    block_on(async {
        let token = CancellationToken::new();
        let start = Instant::now();
        assert!(adapter::cancel_when(&token, || true, Duration::from_secs(3600)).await);
        assert!(start.elapsed() < Duration::from_secs(10));
    });
}

#[test]
fn cancel_when_stops_checking_once_the_token_is_dropped() {
    block_on(async {
        let token = CancellationToken::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let calls = calls.clone();
            adapter::cancel_when(
                &token,
                move || calls.fetch_add(1, Ordering::Relaxed) > 1_000_000,
                Duration::from_millis(1),
            )
        };
        drop(token);
        assert!(!watcher.await);
        // The task has ended and dropped the predicate: nothing can call it again.
        assert_eq!(Arc::strong_count(&calls), 1);
    });
}

#[test]
fn cancel_when_async_drops_a_pending_check_when_the_token_is_cancelled() {
    block_on(async {
        let token = CancellationToken::new();
        let (check, dropped) = DropFlag::new();
        let mut check = Some(check);
        let watcher = adapter::cancel_when_async(
            &token,
            move || {
                let flag = check.take().expect("the first check never finishes");
                async move {
                    flag.await;
                    true
                }
            },
            Duration::from_millis(1),
        );
        token.cancel_with(CancelKind::Manual);
        assert!(!watcher.await);
        dropped.recv().await.unwrap();
    });
}

#[cfg(unix)]
#[test]
fn cancel_on_signals_cancels_every_listening_token_with_the_signal_name() {
    block_on(async {
        // SIGUSR1 is this test's own: no other test of the suite sends or awaits it.
        let first = CancellationToken::new();
        let second = CancellationToken::new();
        let a = adapter::cancel_on_signals(&first, [adapter::Signal::Usr1]).unwrap();
        let b = adapter::cancel_on_signals(&second, [adapter::Signal::Usr1]).unwrap();
        raise("USR1");
        assert!(a.await && b.await);
        for token in [first, second] {
            let reason = token.reason().unwrap();
            assert_eq!(reason.kind(), CancelKind::Signal);
            assert_eq!(reason.message(), Some("SIGUSR1 received"));
        }
    });
}

#[cfg(unix)]
#[test]
fn cancel_on_signals_ends_its_watch_when_the_token_is_dropped_or_cancelled() {
    block_on(async {
        let dropped = CancellationToken::new();
        let watcher = adapter::cancel_on_signals(&dropped, [adapter::Signal::Hup]).unwrap();
        drop(dropped);
        assert!(!watcher.await, "the task ended, and with it its Signals");
        let cancelled = CancellationToken::new();
        let watcher = adapter::cancel_on_signals(&cancelled, []).unwrap();
        cancelled.cancel();
        assert!(!watcher.await);
    });
}
