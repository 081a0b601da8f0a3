//! Local operations: sources, bodies and callbacks that are not `Send` (state in
//! `Rc<RefCell<..>>`), on a single-threaded executor.
//!
//! Also run without the `std` feature (`cargo test -p cancelable --no-default-features`): local
//! operations are for firmware and custom executors first.
#![cfg(not(loom))]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use cancelable::{
    CancelKind, CancelReason, CancellationToken, Flavor, LocalOperation, LocalOperationContext,
    Operation, OperationContext, OperationError, OperationStatus, Source,
};
use futures_lite::future::{self, block_on, poll_once};

/// A timer of a single-threaded executor: `fire()` wakes whoever awaits `expired()`.
#[derive(Clone, Default)]
struct LocalTimer(Rc<RefCell<(bool, Option<Waker>)>>);

impl LocalTimer {
    fn fire(&self) {
        let mut state = self.0.borrow_mut();
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }

    fn expired(&self) -> Expired {
        Expired(self.clone())
    }
}

struct Expired(LocalTimer);

impl Future for Expired {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = (self.0).0.borrow_mut();
        if state.0 {
            Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

type Log = Rc<RefCell<Vec<String>>>;

#[test]
fn rc_state_in_sources_body_and_callbacks_on_a_single_threaded_executor() {
    let log = Log::default();
    let timer = LocalTimer::default();
    let executor = smol::LocalExecutor::new();
    let (on_progress, on_status, in_body) = (log.clone(), log.clone(), log.clone());
    let body_timer = timer.clone();
    let run = LocalOperation::new("sampler")
        .cancel_on(Source::new(
            timer.expired(),
            CancelReason::timeout().with_message("sampling took over 10 ticks"),
        ))
        .on_progress(move |_, p| on_progress.borrow_mut().push(p.to_string()))
        .on_status(move |snap| on_status.borrow_mut().push(snap.status.to_string()))
        .run(|cx| async move {
            for sample in 1..=3 {
                in_body.borrow_mut().push(format!("sample {sample}"));
                cx.report_progress(sample, None, "samples");
                if sample == 2 {
                    body_timer.fire(); // the deadline passes while sampling
                }
                future::yield_now().await;
            }
            Ok(())
        });
    let cx = run.context().clone();
    let err = block_on(executor.run(executor.spawn(run))).unwrap_err();
    assert_eq!(err.reason().kind(), CancelKind::Timeout);
    assert_eq!(cx.status(), OperationStatus::Cancelled);
    assert_eq!(
        *log.borrow(),
        [
            "running",
            "sample 1",
            "1 samples",
            "sample 2",
            "2 samples",
            "cancelled"
        ]
    );
}

#[test]
fn a_local_operation_completes_with_its_value_and_progress() {
    let done = Rc::new(Cell::new(0));
    let seen = done.clone();
    let run = LocalOperation::new("count")
        .id("local-1")
        .metadata("board", "lm3s6965")
        .on_progress(move |id, p| {
            assert_eq!(id, "local-1");
            seen.set(p.done);
        })
        .run(|cx| async move {
            let shared = Rc::new(7); // the body holds what is not Send across an await
            future::yield_now().await;
            cx.report_progress(*shared, Some(7), "rows");
            Ok(*shared * 6)
        });
    let cx = run.context().clone();
    assert_eq!(cx.status(), OperationStatus::Pending);
    assert_eq!(block_on(run), Ok(42));
    let snap = cx.snapshot();
    assert_eq!(snap.status, OperationStatus::Completed);
    assert_eq!(snap.metadata["board"], "lm3s6965");
    assert_eq!(done.get(), 7);
}

#[test]
fn sources_and_callbacks_may_borrow_from_the_enclosing_scope() {
    let reports = RefCell::new(Vec::new());
    let stop = Cell::new(false);
    let run = LocalOperation::new("borrowing")
        .cancel_on(async {
            future::poll_fn(|_| {
                if stop.get() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            CancelReason::condition().with_message("stop flag set")
        })
        .on_progress(|_, p| reports.borrow_mut().push(p.done))
        .run(|cx| async move {
            cx.report_progress(1, None, "");
            future::pending::<()>().await;
            Ok(())
        });
    let mut run = Box::pin(run);
    assert!(block_on(poll_once(run.as_mut())).is_none());
    stop.set(true);
    let err = block_on(run).unwrap_err();
    assert_eq!(err.reason().message(), Some("stop flag set"));
    assert_eq!(*reports.borrow(), [1]);
}

#[test]
fn a_parent_cancelled_on_another_thread_stops_a_local_operation() {
    let parent = CancellationToken::new();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flag = Flag(dropped.clone());
    let run = LocalOperation::new("child")
        .parent(&parent)
        .run(|_| async move {
            let _flag = flag;
            future::pending::<()>().await;
            Ok(())
        });
    let remote = parent.clone();
    let canceller = std::thread::spawn(move || remote.cancel_with(CancelKind::Shutdown));
    let err = block_on(run).unwrap_err();
    canceller.join().unwrap();
    assert_eq!(err.reason().kind(), CancelKind::Shutdown);
    assert!(dropped.get(), "the body was dropped at cancelation");
}

#[test]
fn nested_shields_of_a_local_operation_end_innermost_first() {
    let log = Log::default();
    let inner_log = log.clone();
    let out: Result<(), _> = block_on(LocalOperation::new("shields").run(|cx| async move {
        cx.shield(async {
            cx.clone()
                .shield(async {
                    cx.token().cancel_with(CancelKind::Shutdown);
                    future::yield_now().await;
                    inner_log.borrow_mut().push("inner_end".to_string());
                })
                .await;
            inner_log.borrow_mut().push("outer_end".to_string());
        })
        .await;
        inner_log.borrow_mut().push("after".to_string());
        Ok(())
    }));
    assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    assert_eq!(*log.borrow(), ["inner_end", "outer_end"]);
}

#[test]
fn try_run_records_the_error_of_a_local_body() {
    let run = LocalOperation::new("parse").try_run(|_| async {
        let input = Rc::new("x1");
        input.parse::<u32>()
    });
    let cx = run.context().clone();
    let err = block_on(run).unwrap_err();
    assert!(matches!(err, OperationError::Failed(_)));
    assert_eq!(cx.status(), OperationStatus::Failed);
}

/// Library code written once for both forms.
async fn checkpoint<K: Flavor>(
    cx: &OperationContext<K>,
    step: u64,
) -> Result<(), cancelable::Cancelled> {
    cx.check()?;
    cx.report_progress(step, None, "steps");
    Ok(())
}

#[test]
fn code_generic_over_the_flavor_serves_both_forms_and_links_them() {
    let out = block_on(Operation::new("outer").run(|outer| async move {
        checkpoint(&outer, 1).await?;
        let inner = LocalOperation::new("inner").child_of(&outer).run(
            |cx: LocalOperationContext<'_>| async move {
                checkpoint(&cx, 2).await?;
                Ok(cx.parent_id())
            },
        );
        let parent = inner.await?;
        Ok(parent == Some(outer.id().clone()))
    }));
    assert_eq!(out, Ok(true));
}

#[cfg(feature = "std")]
#[test]
fn current_does_not_hand_out_a_local_operations_context() {
    let out = block_on(Operation::new("outer").run(|_| async move {
        assert_eq!(cancelable::current().unwrap().name(), "outer");
        let inner =
            LocalOperation::new("inner").run(|_| async { Ok(cancelable::current().is_none()) });
        let hidden = inner.await?;
        assert_eq!(cancelable::current().unwrap().name(), "outer");
        Ok(hidden)
    }));
    assert_eq!(out, Ok(true));
}

#[cfg(feature = "std")]
#[test]
fn a_panicking_local_callback_does_not_reach_the_body() {
    let calls = Rc::new(Cell::new(0));
    let counted = calls.clone();
    let out = block_on(
        LocalOperation::new("isolated")
            .on_progress(|_, _| panic!("a bug in this callback"))
            .on_progress(move |_, _| counted.set(counted.get() + 1))
            .run(|cx| async move {
                cx.report_progress(1, None, "");
                Ok(1)
            }),
    );
    assert_eq!(out, Ok(1));
    assert_eq!(calls.get(), 1);
}
