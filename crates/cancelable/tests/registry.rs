//! The registry: live operations and history, filters, cancel by id, statistics, and a stress
//! test on real threads.
#![cfg(all(feature = "std", not(loom)))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use cancelable::{
    CancelKind, CancelReason, CancellationToken, Operation, OperationFilter, OperationStatus,
    Registry,
};
use futures_lite::future::{self, block_on, poll_once};

fn pending_body() -> impl std::future::Future<Output = Result<(), cancelable::Cancelled>> {
    future::pending()
}

#[test]
fn an_operation_is_listed_for_the_time_of_run_then_kept_in_history() {
    let registry = Registry::new();
    let (release_tx, release) = {
        let t = CancellationToken::new();
        (t.clone(), t.cancelled_owned())
    };
    let mut run = Box::pin(
        Operation::new("job")
            .register(&registry)
            .run(|_| async move {
                release.await;
                Ok(())
            }),
    );
    let id = run.context().id().clone();
    assert_eq!(registry.get(&id).unwrap().status, OperationStatus::Pending);
    assert_eq!(registry.stats().pending, 1);

    assert!(block_on(poll_once(run.as_mut())).is_none());
    assert_eq!(registry.get(&id).unwrap().status, OperationStatus::Running);
    assert_eq!(registry.stats().running, 1);

    release_tx.cancel();
    block_on(run).unwrap();
    let stats = registry.stats();
    assert_eq!((stats.active(), stats.history, stats.completed), (0, 1, 1));
    assert_eq!(
        registry.get(&id).unwrap().status,
        OperationStatus::Completed
    );
}

#[test]
fn unregistered_operations_are_not_listed() {
    let registry = Registry::new();
    block_on(Operation::new("quiet").run(|_| async { Ok(()) })).unwrap();
    assert!(registry.list(&OperationFilter::new()).is_empty());
}

#[test]
fn list_filters_by_status_case_insensitive_name_and_parent() {
    let registry = Registry::new();
    let parent = Operation::new("Nightly Import")
        .id("p")
        .register(&registry)
        .run(|_| pending_body());
    let child = Operation::new("import rows")
        .child_of(parent.context())
        .register(&registry)
        .run(|_| pending_body());
    let other = Operation::new("export")
        .register(&registry)
        .run(|_| pending_body());
    block_on(
        Operation::new("old import")
            .register(&registry)
            .run(|_| async { Ok(()) }),
    )
    .unwrap();

    let names = |filter: OperationFilter| -> Vec<String> {
        registry.list(&filter).into_iter().map(|s| s.name).collect()
    };
    assert_eq!(
        names(OperationFilter::new()),
        ["Nightly Import", "import rows", "export", "old import"]
    );
    assert_eq!(
        names(OperationFilter::new().name_contains("IMPORT")),
        ["Nightly Import", "import rows", "old import"]
    );
    assert_eq!(names(OperationFilter::new().parent("p")), ["import rows"]);
    assert_eq!(
        names(OperationFilter::new().status(OperationStatus::Completed)),
        ["old import"]
    );
    assert_eq!(
        names(OperationFilter::new().active().name_contains("import")),
        ["Nightly Import", "import rows"]
    );
    assert!(names(OperationFilter::new().status(OperationStatus::Failed)).is_empty());
    drop((parent, child, other));
}

#[test]
fn cancel_by_id_cancels_with_the_reason_and_unknown_ids_give_false() {
    let registry = Registry::new();
    let run = Operation::new("victim")
        .register(&registry)
        .run(|_| pending_body());
    let id = run.context().id().clone();
    assert!(registry.cancel(&id, CancelReason::manual().with_message("dashboard")));
    let err = block_on(run).unwrap_err();
    assert_eq!(err.reason().message(), Some("dashboard"));
    let snap = registry.get(&id).unwrap();
    assert_eq!(snap.status, OperationStatus::Cancelled);
    assert_eq!(snap.reason.unwrap().kind(), CancelKind::Manual);

    assert!(!registry.cancel("unknown", CancelKind::Manual));
    assert!(
        !registry.cancel(&id, CancelKind::Manual),
        "finished: nothing to cancel"
    );
}

#[test]
fn cancel_all_cancels_every_live_operation_and_counts_them() {
    let registry = Registry::new();
    let runs: Vec<_> = (0..5)
        .map(|i| {
            Operation::new(format!("op {i}"))
                .register(&registry)
                .run(|_| pending_body())
        })
        .collect();
    runs[0].context().token().cancel(); // already cancelled: not counted
    assert_eq!(registry.cancel_all(CancelKind::Shutdown), 4);
    for run in runs {
        assert!(block_on(run).is_err());
    }
    assert_eq!(registry.stats().cancelled, 5);
    assert_eq!(registry.cancel_all(CancelKind::Shutdown), 0);
}

#[test]
fn stats_count_active_by_status_outcomes_and_the_average_completed_duration() {
    let registry = Registry::new();
    let mut running = Box::pin(
        Operation::new("running")
            .register(&registry)
            .run(|_| pending_body()),
    );
    assert!(block_on(poll_once(running.as_mut())).is_none());
    let _pending = Operation::new("pending")
        .register(&registry)
        .run(|_| pending_body());
    let mut durations = Vec::new();
    for ms in [1, 2, 3] {
        let run = Operation::new("timed")
            .register(&registry)
            .run(move |_| async move {
                smol::Timer::after(Duration::from_millis(ms)).await;
                Ok(())
            });
        let id = run.context().id().clone();
        block_on(run).unwrap();
        durations.push(registry.get(&id).unwrap().duration.unwrap());
    }
    block_on(
        Operation::new("bad")
            .register(&registry)
            .try_run(|_| async { Err::<(), _>("no") }),
    )
    .unwrap_err();

    let stats = registry.stats();
    assert_eq!((stats.pending, stats.running), (1, 1));
    assert_eq!((stats.completed, stats.cancelled, stats.failed), (3, 0, 1));
    assert_eq!(stats.history, 4);
    let mean = durations.iter().sum::<Duration>() / 3;
    let average = stats.average_duration.unwrap();
    assert!(
        average.abs_diff(mean) < Duration::from_micros(2),
        "{average:?} vs {mean:?}"
    );
}

#[test]
fn history_is_bounded_and_keeps_the_latest() {
    let registry = Registry::with_history(10);
    for i in 0..15 {
        block_on(
            Operation::new(format!("op_{i}"))
                .register(&registry)
                .run(|_| async { Ok(()) }),
        )
        .unwrap();
    }
    let names: Vec<_> = registry
        .list(&OperationFilter::new())
        .into_iter()
        .map(|s| s.name)
        .collect();
    let expected: Vec<_> = (5..15).map(|i| format!("op_{i}")).collect();
    assert_eq!(names, expected);
    assert_eq!(
        registry.stats().completed,
        15,
        "counters outlive the history"
    );
}

#[test]
fn the_default_history_keeps_1000() {
    let registry = Registry::new();
    for _ in 0..1005 {
        block_on(
            Operation::new("op")
                .register(&registry)
                .run(|_| async { Ok(()) }),
        )
        .unwrap();
    }
    assert_eq!(registry.stats().history, cancelable::DEFAULT_HISTORY);
    assert_eq!(cancelable::DEFAULT_HISTORY, 1000);
    assert_eq!(registry.cleanup(Duration::ZERO), 1000);
    assert_eq!(registry.stats().history, 0);
}

#[test]
fn cleanup_keeps_recent_entries_and_live_operations() {
    let registry = Registry::new();
    let live = Operation::new("live")
        .register(&registry)
        .run(|_| pending_body());
    block_on(
        Operation::new("done")
            .register(&registry)
            .run(|_| async { Ok(()) }),
    )
    .unwrap();
    assert_eq!(registry.cleanup(Duration::from_secs(3600)), 0);
    assert_eq!(registry.cleanup(Duration::ZERO), 1);
    assert_eq!(registry.list(&OperationFilter::new()).len(), 1);
    drop(live);
    assert_eq!(
        registry
            .get(registry.list(&OperationFilter::new())[0].id.clone())
            .unwrap()
            .name,
        "live"
    );
}

#[test]
fn a_dropped_operation_leaves_the_live_list() {
    let registry = Registry::new();
    let run = Operation::new("abandoned")
        .register(&registry)
        .run(|_| pending_body());
    drop(run);
    let stats = registry.stats();
    assert_eq!((stats.active(), stats.cancelled), (0, 1));
}

#[test]
fn the_global_registry_is_one_per_process() {
    assert!(std::ptr::eq(Registry::global(), Registry::global()));
    let run = Operation::new("global")
        .register(Registry::global())
        .run(|_| async { Ok(()) });
    let id = run.context().id().clone();
    block_on(run).unwrap();
    assert_eq!(Registry::global().get(&id).unwrap().name, "global");
}

#[test]
fn a_status_callback_can_use_the_registry() {
    let registry = Registry::new();
    let inside = registry.clone();
    let found = Arc::new(AtomicBool::new(false));
    let seen = found.clone();
    block_on(
        Operation::new("reentrant")
            .register(&registry)
            .on_status(move |snap| {
                if snap.status.is_terminal() {
                    let stored = inside.get(&snap.id).unwrap();
                    seen.store(stored.status == snap.status, Ordering::SeqCst);
                }
            })
            .run(|_| async { Ok(()) }),
    )
    .unwrap();
    assert!(
        found.load(Ordering::SeqCst),
        "in the history by the time the callback runs"
    );
}

#[cfg(feature = "serde")]
#[test]
fn snapshots_serialise_status_and_reason_as_snake_case_strings() {
    let registry = Registry::new();
    let run = Operation::new("job")
        .id("j1")
        .metadata("steps", "3")
        .register(&registry)
        .run(|cx| async move {
            cx.report_progress(1, Some(3), "steps");
            cx.token()
                .cancel_with(CancelReason::timeout().with_message("too slow"));
            cx.check()
        });
    block_on(run).unwrap_err();
    let snap = registry.get("j1").unwrap();
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["id"], "j1");
    assert_eq!(json["status"], "cancelled");
    assert_eq!(json["reason"], "timeout");
    assert_eq!(json["reason_message"], "too slow");
    assert_eq!(json["progress"]["done"], 1);
    assert_eq!(json["progress"]["total"], 3);
    assert_eq!(json["metadata"]["steps"], "3");
    assert!(json["duration_secs"].is_f64());
    let back: cancelable::OperationSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!((back.status, back.reason), (snap.status, snap.reason));

    let stats = serde_json::to_value(registry.stats()).unwrap();
    assert_eq!(stats["cancelled"], 1);
}

/// Many operations start, report, get cancelled by id and finish on worker threads, while
/// other threads cancel by id, list and read statistics; at the end the registry is consistent
/// and nothing is left behind.
#[test]
fn stress_on_real_threads_ends_consistent_with_nothing_leaked() {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 250;
    const TOTAL: usize = WORKERS * PER_WORKER;
    let registry = Registry::with_history(500);
    let live_bodies = Arc::new(AtomicUsize::new(0));
    let cancelled_results = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(WORKERS + 3));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (registry, live, cancelled, start) = (
                registry.clone(),
                live_bodies.clone(),
                cancelled_results.clone(),
                start.clone(),
            );
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_WORKER {
                    let live = live.clone();
                    let run = Operation::new(format!("w{w}"))
                        .id(format!("w{w}-{i}"))
                        .register(&registry)
                        .run(move |cx| async move {
                            struct Body(Arc<AtomicUsize>);
                            impl Drop for Body {
                                fn drop(&mut self) {
                                    self.0.fetch_sub(1, Ordering::SeqCst);
                                }
                            }
                            live.fetch_add(1, Ordering::SeqCst);
                            let _body = Body(live);
                            for step in 0..20 {
                                cx.report_progress(step, Some(20), "steps");
                                future::yield_now().await;
                            }
                            if i % 3 == 0 {
                                // Runs until the canceller finds it.
                                future::pending::<()>().await;
                            }
                            Ok(())
                        });
                    if block_on(run).is_err() {
                        cancelled.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();

    let canceller = {
        let (registry, done, start) = (registry.clone(), done.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            let mut hits = 0usize;
            while !done.load(Ordering::SeqCst) {
                // Every other live operation, by the id a dashboard would have listed.
                for snap in registry
                    .list(&OperationFilter::new().active())
                    .iter()
                    .step_by(2)
                {
                    if registry.cancel(&snap.id, CancelKind::Manual) {
                        hits += 1;
                    }
                }
                thread::yield_now();
            }
            hits
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (registry, done, start) = (registry.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                while !done.load(Ordering::SeqCst) {
                    if r == 0 {
                        let stats = registry.stats();
                        assert!(stats.active() <= WORKERS);
                        assert!(stats.history <= 500);
                    } else {
                        for snap in registry.list(&OperationFilter::new().active()) {
                            assert!(snap.status.is_active());
                        }
                    }
                }
            })
        })
        .collect();

    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let hits = canceller.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }

    let stats = registry.stats();
    assert_eq!(stats.active(), 0, "nothing left live");
    assert_eq!(
        (stats.completed + stats.cancelled + stats.failed) as usize,
        TOTAL,
        "every operation finished exactly once"
    );
    assert_eq!(
        stats.cancelled as usize,
        cancelled_results.load(Ordering::SeqCst)
    );
    assert!(
        stats.cancelled as usize <= hits,
        "only cancels by id cancel here"
    );
    assert!(
        stats.cancelled as usize >= TOTAL / 3,
        "every third one waited to be cancelled"
    );
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.history, 500);
    assert_eq!(
        live_bodies.load(Ordering::SeqCst),
        0,
        "every body was dropped"
    );
    let listed = registry.list(&OperationFilter::new());
    assert_eq!(listed.len(), 500);
    assert!(listed.iter().all(|s| s.status.is_terminal()));
    eprintln!("cancelled by id: {} of {TOTAL}", stats.cancelled);
}

#[test]
fn live_operations_sharing_an_explicit_id_are_all_listed_counted_and_cancelled() {
    let registry = Registry::new();
    let first = Operation::new("first")
        .id("job-7")
        .register(&registry)
        .run(|_| pending_body());
    let second = Operation::new("second")
        .id("job-7")
        .register(&registry)
        .run(|_| pending_body());
    let names: Vec<_> = registry
        .list(&OperationFilter::new())
        .into_iter()
        .map(|snap| snap.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(registry.stats().pending, 2);
    assert_eq!(
        registry.get("job-7").unwrap().name,
        "second",
        "get gives the latest started"
    );
    assert_eq!(registry.cancel_all(CancelKind::Shutdown), 2);
    assert!(block_on(first).is_err());
    assert!(block_on(second).is_err());
    assert_eq!(registry.stats().cancelled, 2);
}

#[test]
fn cancel_by_id_reaches_every_live_operation_with_that_id() {
    let registry = Registry::new();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            Operation::new("twin")
                .id("twin")
                .register(&registry)
                .run(|_| pending_body())
        })
        .collect();
    assert!(registry.cancel("twin", CancelKind::Manual));
    assert!(runs.iter().all(|run| run.context().is_cancelled()));
}

#[test]
fn cancel_and_cancel_all_count_only_operations_this_call_cancelled() {
    let registry = Registry::new();
    let run = Operation::new("cancelled already")
        .register(&registry)
        .run(|_| pending_body());
    run.context().token().cancel();
    assert!(
        !registry.cancel(run.context().id(), CancelKind::Manual),
        "live but cancelled already: like cancel_all, not counted"
    );
    assert_eq!(registry.cancel_all(CancelKind::Manual), 0);

    // Parents and children: each one this call found not cancelled counts, whichever the
    // registry visits first.
    let pairs: Vec<_> = (0..20)
        .map(|i| {
            let parent = Operation::new(format!("parent {i}"))
                .register(&registry)
                .run(|_| pending_body());
            let child = Operation::new(format!("child {i}"))
                .child_of(parent.context())
                .register(&registry)
                .run(|_| pending_body());
            (parent, child)
        })
        .collect();
    assert_eq!(registry.cancel_all(CancelKind::Shutdown), 40);
    drop(pairs);
}

#[test]
fn many_live_operations_are_listed_in_the_order_they_were_registered_and_found_by_id() {
    let registry = Registry::new();
    let runs: Vec<_> = (0..200)
        .map(|i| {
            Operation::new(format!("op {i}"))
                .register(&registry)
                .run(|_| pending_body())
        })
        .collect();
    let names: Vec<_> = registry
        .list(&OperationFilter::new())
        .into_iter()
        .map(|snap| snap.name)
        .collect();
    let expected: Vec<_> = (0..200).map(|i| format!("op {i}")).collect();
    assert_eq!(names, expected);
    for (i, run) in runs.iter().enumerate() {
        let id = run.context().id();
        assert_eq!(registry.get(id).unwrap().name, format!("op {i}"));
    }
    assert_eq!(registry.stats().pending, 200);
    assert_eq!(registry.cancel_all(CancelKind::Shutdown), 200);
    drop(runs);
    assert_eq!(registry.stats().cancelled, 200);
    assert!(registry.list(&OperationFilter::new().active()).is_empty());
}
