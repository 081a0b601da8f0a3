//! Operations: builder, status lifecycle, parents and sources, outcomes of `run`/`try_run`.
#![cfg(all(feature = "std", not(loom)))]

use std::collections::HashSet;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use cancelable::{
    CancelKind, CancelReason, CancellationToken, Cancelled, Operation, OperationError, OperationId,
    OperationStatus, Source,
};
use futures_lite::future::{self, block_on, poll_once};

/// A future we complete by hand: `fire()` makes it ready.
fn trigger() -> (CancellationToken, impl Future<Output = ()> + Send + 'static) {
    let token = CancellationToken::new();
    (token.clone(), token.cancelled_owned())
}

/// Sets its flag when dropped: tells when a body or a source is released.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
fn drop_flag() -> (Arc<AtomicBool>, DropFlag) {
    let flag = Arc::new(AtomicBool::new(false));
    (flag.clone(), DropFlag(flag))
}

#[test]
fn status_goes_pending_running_completed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let run = Operation::new("lifecycle")
        .on_status(move |snap| log.lock().unwrap().push(snap.status))
        .run(|cx| async move {
            assert_eq!(cx.status(), OperationStatus::Running);
            Ok(7)
        });
    let cx = run.context().clone();
    assert_eq!(cx.status(), OperationStatus::Pending);
    assert!(cx.snapshot().started_at.is_none());

    assert_eq!(block_on(run), Ok(7));
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Completed);
    assert_eq!((snap.reason, snap.error), (None, None));
    assert!(snap.started_at.unwrap() <= snap.ended_at.unwrap());
    assert!(snap.duration.is_some());
    assert_eq!(
        *seen.lock().unwrap(),
        [OperationStatus::Running, OperationStatus::Completed]
    );
}

#[test]
fn generated_ids_are_unique_and_explicit_ids_are_kept() {
    let ids: HashSet<OperationId> = (0..10_000).map(|_| OperationId::generate()).collect();
    assert_eq!(ids.len(), 10_000);
    let run = Operation::new("named")
        .id("job-42")
        .run(|_| async { Ok(()) });
    assert_eq!(run.context().id(), "job-42");
}

#[test]
fn name_and_metadata_are_in_the_snapshot() {
    let snap = block_on(
        Operation::new("import")
            .metadata("file", "rows.csv")
            .metadata("user", String::from("ada"))
            .run(|cx| async move { Ok(cx.snapshot()) }),
    )
    .unwrap();
    assert_eq!(snap.name, "import");
    assert_eq!(snap.metadata["file"], "rows.csv");
    assert_eq!(snap.metadata["user"], "ada");
}

#[test]
fn any_parent_cancels_the_operation_with_its_reason_and_drops_the_body() {
    let (a, b) = (CancellationToken::new(), CancellationToken::new());
    let (dropped, flag) = drop_flag();
    let mut run = Box::pin(Operation::new("two parents").parent(&a).parent(&b).run(
        |_| async move {
            let _flag = flag;
            future::pending::<()>().await;
            Ok(())
        },
    ));
    assert!(block_on(poll_once(run.as_mut())).is_none());
    b.cancel_with(CancelReason::disconnected().with_message("client left"));
    let err = block_on(run.as_mut()).unwrap_err();
    assert_eq!(err.reason().kind(), CancelKind::Disconnected);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!a.is_cancelled(), "cancelation never goes up");
    assert_eq!(
        run.context().snapshot().reason.unwrap().message(),
        Some("client left")
    );
}

#[test]
fn first_source_to_fire_wins_and_its_reason_is_recorded() {
    let (fire_a, a) = trigger();
    let (fire_b, b) = trigger();
    let mut run = Box::pin(
        Operation::new("sources")
            .cancel_on(Source::new(a, CancelReason::timeout()))
            .cancel_on(Source::new(
                b,
                CancelReason::condition().with_message("b first"),
            ))
            .run(|_| future::pending::<Result<(), _>>()),
    );
    assert!(block_on(poll_once(run.as_mut())).is_none());
    fire_b.cancel();
    // The operation sees `b` complete at its next poll; `a` completing after that changes nothing.
    let err = block_on(run.as_mut()).unwrap_err();
    fire_a.cancel();
    assert_eq!(err.reason().kind(), CancelKind::Condition);
    let snap = run.context().snapshot();
    assert_eq!(snap.status, OperationStatus::Cancelled);
    assert_eq!(snap.reason.unwrap().message(), Some("b first"));
}

#[test]
fn sources_complete_between_two_polls_count_in_the_order_they_were_added() {
    let (fire_a, a) = trigger();
    let (fire_b, b) = trigger();
    let mut run = Box::pin(
        Operation::new("tie")
            .cancel_on(Source::new(a, CancelReason::timeout()))
            .cancel_on(Source::new(b, CancelReason::condition()))
            .run(|_| future::pending::<Result<(), _>>()),
    );
    assert!(block_on(poll_once(run.as_mut())).is_none());
    fire_b.cancel();
    fire_a.cancel();
    assert_eq!(
        block_on(run).unwrap_err().reason().kind(),
        CancelKind::Timeout
    );
}

#[test]
fn a_parent_cancelled_before_a_source_fires_keeps_the_parents_reason() {
    let parent = CancellationToken::new();
    let (fire, source) = trigger();
    let run = Operation::new("late source")
        .parent(&parent)
        .cancel_on(Source::new(source, CancelReason::timeout()))
        .run(|_| future::pending::<Result<(), _>>());
    parent.cancel_with(CancelKind::Shutdown);
    fire.cancel();
    assert_eq!(
        block_on(run).unwrap_err().reason().kind(),
        CancelKind::Shutdown
    );
}

#[test]
fn sources_are_dropped_as_soon_as_the_operation_ends() {
    let (dropped, flag) = drop_flag();
    let (release, gate) = trigger();
    let source = async move {
        let _flag = flag;
        future::pending::<()>().await;
    };
    let mut run = Box::pin(
        Operation::new("ends")
            .cancel_on(Source::new(source, CancelReason::timeout()))
            .run(|_| async move {
                gate.await;
                Ok(1)
            }),
    );
    assert!(block_on(poll_once(run.as_mut())).is_none());
    assert!(
        !dropped.load(Ordering::SeqCst),
        "a live operation keeps its sources"
    );
    release.cancel();
    assert_eq!(block_on(poll_once(run.as_mut())), Some(Ok(1)));
    // The run future still exists: the source went away with the end, not with the future.
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn the_body_is_dropped_at_cancelation_and_the_next_statement_never_runs() {
    let after = Arc::new(AtomicBool::new(false));
    let seen = after.clone();
    let (dropped, flag) = drop_flag();
    let mut run = Box::pin(Operation::new("stop").run(|_| async move {
        let _flag = flag;
        future::pending::<()>().await;
        seen.store(true, Ordering::SeqCst);
        Ok(())
    }));
    assert!(block_on(poll_once(run.as_mut())).is_none());
    let token = run.context().token().clone();
    thread::spawn(move || token.cancel()).join().unwrap();
    assert!(block_on(run.as_mut()).is_err());
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!after.load(Ordering::SeqCst));
}

#[test]
fn a_cancel_from_another_thread_wakes_the_waiting_operation() {
    let (started_tx, started) = std::sync::mpsc::channel();
    let run = Operation::new("wake").run(move |cx| async move {
        started_tx.send(cx.token().clone()).unwrap();
        future::pending::<()>().await;
        Ok(())
    });
    let canceller = thread::spawn(move || {
        started.recv().unwrap().cancel_with(CancelKind::Signal);
    });
    assert_eq!(
        block_on(run).unwrap_err().reason().kind(),
        CancelKind::Signal
    );
    canceller.join().unwrap();
}

#[test]
fn cancel_after_completion_leaves_completed() {
    let run = Operation::new("done").run(|_| async { Ok(()) });
    let cx = run.context().clone();
    block_on(run).unwrap();
    cx.token().cancel_with(CancelKind::Timeout);
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Completed);
    assert_eq!(snap.reason, None);
}

#[test]
fn a_body_returning_cancelled_is_recorded_cancelled() {
    let run = Operation::new("checked").run(|cx| async move {
        cx.token()
            .cancel_with(CancelReason::manual().with_message("stop"));
        cx.check()?;
        Ok(())
    });
    let cx = run.context().clone();
    let err = block_on(run).unwrap_err();
    assert_eq!(err.reason().message(), Some("stop"));
    assert_eq!(cx.status(), OperationStatus::Cancelled);
    assert_eq!(cx.snapshot().reason.unwrap().message(), Some("stop"));
}

#[test]
fn a_cancelled_error_from_elsewhere_cancels_the_operation_token_too() {
    let run = Operation::new("foreign").run(|_| async {
        Err::<(), _>(Cancelled::new(
            CancelReason::condition().with_message("quota"),
        ))
    });
    let cx = run.context().clone();
    block_on(run).unwrap_err();
    assert_eq!(cx.token().reason().unwrap().message(), Some("quota"));
    assert_eq!(cx.snapshot().reason.unwrap().kind(), CancelKind::Condition);
}

#[test]
fn try_run_records_failed_with_the_error_text_and_gives_the_error_back() {
    let run = Operation::new("read")
        .try_run(|_| async { Err::<(), _>(std::io::Error::other("disk full")) });
    let cx = run.context().clone();
    match block_on(run) {
        Err(OperationError::Failed(e)) => assert_eq!(e.to_string(), "disk full"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Failed);
    assert_eq!(snap.error.as_deref(), Some("disk full"));
    assert_eq!(snap.reason, None);
}

#[test]
fn try_run_counts_an_error_after_cancelation_as_the_cancelation() {
    #[derive(Debug)]
    struct AppError(String);
    impl std::fmt::Display for AppError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl From<Cancelled> for AppError {
        fn from(c: Cancelled) -> Self {
            AppError(c.to_string())
        }
    }
    let run = Operation::new("app").try_run(|cx| async move {
        cx.token().cancel_with(CancelKind::Timeout);
        cx.check()?;
        Ok::<(), AppError>(())
    });
    let cx = run.context().clone();
    let err = block_on(run).unwrap_err();
    assert_eq!(
        err.cancelled().unwrap().reason().kind(),
        CancelKind::Timeout
    );
    assert_eq!(cx.status(), OperationStatus::Cancelled);
}

#[test]
fn try_run_cancelled_from_outside_returns_cancelled() {
    let parent = CancellationToken::new();
    parent.cancel_with(CancelKind::Shutdown);
    let out = block_on(
        Operation::new("t")
            .parent(&parent)
            .try_run(|_| async { Ok::<_, std::io::Error>(1) }),
    );
    assert!(matches!(out, Err(OperationError::Cancelled(_))));
}

#[test]
fn an_already_cancelled_parent_means_the_body_never_runs() {
    let parent = CancellationToken::new();
    parent.cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let seen = ran.clone();
    let out = block_on(Operation::new("late").parent(&parent).run(|_| async move {
        seen.store(true, Ordering::SeqCst);
        Ok(())
    }));
    assert!(out.is_err());
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_panicking_body_is_recorded_failed_and_the_panic_resumes() {
    let run = Operation::new("boom").run(|_| async {
        if true {
            panic!("bad row");
        }
        Ok(())
    });
    let cx = run.context().clone();
    let payload = catch_unwind(AssertUnwindSafe(|| block_on(run))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"bad row"));
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Failed);
    assert_eq!(snap.error.as_deref(), Some("panicked: bad row"));
    assert!(
        cancelable::current().is_none(),
        "the current() stack unwound too"
    );
}

#[test]
fn dropping_the_run_future_early_cancels_the_operation() {
    let mut run = Box::pin(Operation::new("abandoned").run(|_| future::pending::<Result<(), _>>()));
    assert!(block_on(poll_once(run.as_mut())).is_none());
    let cx = run.context().clone();
    drop(run);
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Cancelled);
    assert_eq!(snap.reason.unwrap().kind(), CancelKind::Manual);
    assert!(
        cx.token().is_cancelled(),
        "helpers holding the token learn it is over"
    );
}

#[test]
fn operation_errors_say_what_happened() {
    let cancelled: OperationError<std::io::Error> =
        Cancelled::new(CancelReason::timeout().with_message("30s")).into();
    assert_eq!(cancelled.to_string(), "operation cancelled (timeout: 30s)");
    let failed = OperationError::Failed(std::io::Error::other("disk full"));
    assert_eq!(failed.to_string(), "operation failed: disk full");
    let as_error: &dyn std::error::Error = &failed;
    assert!(
        as_error.source().is_none(),
        "the text is not repeated as a source"
    );
}

#[test]
fn run_futures_are_send_when_their_body_is() {
    fn assert_send<T: Send>(_: &T) {}
    let run = Operation::new("send").run(|cx| async move {
        future::yield_now().await;
        cx.check()
    });
    assert_send(&run);
    assert_send(run.context());
    block_on(run).unwrap();
}

#[test]
fn many_operations_on_a_shared_parent_leave_nothing_behind() {
    let parent = CancellationToken::new();
    let bodies = Arc::new(AtomicUsize::new(0));
    for i in 0..1_000u64 {
        let live = bodies.clone();
        let out = block_on(
            Operation::new("child")
                .parent(&parent)
                .run(|cx| async move {
                    live.fetch_add(1, Ordering::SeqCst);
                    cx.report_progress(i, None, "");
                    live.fetch_sub(1, Ordering::SeqCst);
                    Ok(i)
                }),
        );
        assert_eq!(out, Ok(i));
    }
    assert_eq!(bodies.load(Ordering::SeqCst), 0);
}

#[test]
fn an_operation_cancelled_before_its_first_poll_never_calls_its_body() {
    let called = Arc::new(AtomicBool::new(false));
    let seen = called.clone();
    let run = Operation::new("never started").run(move |_| {
        seen.store(true, Ordering::SeqCst);
        async { Ok(()) }
    });
    assert!(
        !called.load(Ordering::SeqCst),
        "run() does not call the body"
    );
    run.context().token().cancel();
    assert!(block_on(run).is_err());
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn cx_cancel_cancels_the_operation_with_the_reason() {
    let run = Operation::new("search").run(|cx| async move {
        assert!(cx.cancel(CancelReason::condition().with_message("found it")));
        assert!(!cx.cancel(CancelKind::Manual), "the first reason stays");
        future::yield_now().await;
        Ok(())
    });
    let cx = run.context().clone();
    let err = block_on(run).unwrap_err();
    assert_eq!(err.reason().message(), Some("found it"));
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Cancelled);
    assert_eq!(snap.reason.unwrap().kind(), CancelKind::Condition);
}

#[test]
fn cx_cancel_inside_a_shield_cancels_the_shield_only() {
    let out = block_on(Operation::new("shielded").run(|cx| async move {
        let inner = cx
            .shield_with(|scx| async move {
                scx.cancel(CancelKind::Timeout);
                scx.check()
            })
            .await;
        assert_eq!(inner.unwrap_err().reason().kind(), CancelKind::Timeout);
        cx.check()?;
        Ok("the operation goes on")
    }));
    assert_eq!(out, Ok("the operation goes on"));
}

#[test]
fn snapshots_can_be_built_for_tests_and_mocks() {
    let mut snap = cancelable::OperationSnapshot::new("job-1", "import", OperationStatus::Running);
    assert_eq!((snap.id.as_str(), snap.name.as_str()), ("job-1", "import"));
    assert_eq!((snap.reason.clone(), snap.progress.clone()), (None, None));
    assert!(snap.metadata.is_empty() && snap.started_at.is_none());
    snap.metadata.insert("file".into(), "rows.csv".into());
    snap.parent_id = Some("batch-9".into());
    let filter = cancelable::OperationFilter::new()
        .parent("batch-9")
        .status(OperationStatus::Running);
    assert!(filter.matches(&snap));
}

#[test]
fn a_finished_snapshot_ends_exactly_its_duration_after_it_started() {
    for _ in 0..100 {
        let run = Operation::new("timed").run(|_| async {
            thread::sleep(std::time::Duration::from_micros(50));
            Ok(())
        });
        let cx = run.context().clone();
        block_on(run).unwrap();
        let snap = cx.snapshot();
        let (started, ended) = (snap.started_at.unwrap(), snap.ended_at.unwrap());
        assert_eq!(
            ended.duration_since(started).unwrap(),
            snap.duration.unwrap(),
            "the wall-clock times and the duration come from one reading each"
        );
        assert_eq!(
            cx.snapshot(),
            snap,
            "a finished operation's snapshot does not change"
        );
    }
}

/// The end time is read only when some handle could show it; every way a handle outlives the
/// run must still see one.
#[test]
fn every_handle_that_outlives_the_run_sees_its_end_time() {
    fn assert_timed(cx: &cancelable::OperationContext, how: &str) {
        let snap = cx.snapshot();
        assert!(snap.status.is_terminal(), "{how}: {:?}", snap.status);
        let (started, ended) = (snap.started_at.unwrap(), snap.ended_at.unwrap());
        assert!(started <= ended, "{how}");
        assert!(snap.duration.is_some(), "{how}");
    }

    // The body hands its own context out and completes.
    let slot = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    block_on(Operation::new("handed out").run(move |cx| async move {
        *keep.lock().unwrap() = Some(cx);
        Ok(())
    }))
    .unwrap();
    assert_timed(slot.lock().unwrap().as_ref().unwrap(), "handed out");

    // `current()` inside the body, kept after a cancelation.
    let parent = CancellationToken::new();
    let slot = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    let cancel = parent.clone();
    let out = block_on(
        Operation::new("current")
            .parent(&parent)
            .run(move |_| async move {
                *keep.lock().unwrap() = cancelable::current();
                cancel.cancel();
                future::pending::<Result<(), Cancelled>>().await
            }),
    );
    assert!(out.is_err());
    assert_timed(slot.lock().unwrap().as_ref().unwrap(), "current()");

    // A clone taken before the run future is dropped unfinished.
    let run = Operation::new("dropped").run(|_| future::pending::<Result<(), Cancelled>>());
    let cx = run.context().clone();
    drop(run);
    assert_timed(&cx, "dropped unfinished");

    // A failing `try_run`.
    let run = Operation::new("failed").try_run(|_| async { Err::<(), _>("no") });
    let cx = run.context().clone();
    assert!(block_on(run).is_err());
    assert_timed(&cx, "failed");
}
