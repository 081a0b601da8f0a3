//! `current()`: the innermost operation being polled, per poll and per thread.
#![cfg(all(feature = "std", not(loom)))]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use cancelable::{Operation, OperationContext, current};
use futures_lite::future::{self, block_on};

fn current_name() -> Option<String> {
    current().map(|cx| cx.name().to_owned())
}

async fn deep(levels: u32) -> Option<String> {
    if levels == 0 {
        future::yield_now().await;
        return current_name();
    }
    Box::pin(deep(levels - 1)).await
}

#[test]
fn none_outside_every_operation() {
    assert!(current().is_none());
    let run = Operation::new("not yet").run(|_| async { Ok(()) });
    assert!(
        current().is_none(),
        "building an operation does not enter it"
    );
    block_on(run).unwrap();
    assert!(current().is_none());
}

#[test]
fn the_innermost_operation_at_any_depth_of_plain_async_fns() {
    let out = block_on(Operation::new("outer").run(|outer| async move {
        assert_eq!(deep(5).await.as_deref(), Some("outer"));
        let inner = Operation::new("inner")
            .run(|_| async { Ok(deep(3).await) })
            .await?;
        assert_eq!(inner.as_deref(), Some("inner"));
        assert_eq!(
            deep(2).await.as_deref(),
            Some("outer"),
            "back to the outer one"
        );
        assert_eq!(current().unwrap().id(), outer.id());
        Ok(())
    }));
    out.unwrap();
}

#[test]
fn an_operation_first_polled_inside_another_records_it_as_parent() {
    block_on(Operation::new("outer").run(|outer| async move {
        let run = Operation::new("inner").run(|cx| async move { Ok(cx.parent_id()) });
        assert_eq!(
            run.context().parent_id(),
            None,
            "recorded at the first poll"
        );
        assert_eq!(run.await?.as_ref(), Some(outer.id()));
        Ok(())
    }))
    .unwrap();
}

#[test]
fn the_recorded_parents_cancel_reaches_a_child_its_shield_keeps_polling() {
    let out: Result<(), _> = block_on(Operation::new("outer").run(|outer| async move {
        let child = Operation::new("child").run(|_| future::pending::<Result<(), _>>());
        let child_cx = child.context().clone();
        // The outer body stays alive in its shield, so the child is polled on after the cancel.
        let shielded = outer.shield(async {
            future::yield_now().await;
            outer.token().cancel_with(cancelable::CancelKind::Shutdown);
            future::yield_now().await;
        });
        let (_, child_out) = future::zip(shielded, child).await;
        assert_eq!(child_cx.parent_id().as_ref(), Some(outer.id()));
        assert_eq!(
            child_out.unwrap_err().reason().kind(),
            cancelable::CancelKind::Shutdown
        );
        Ok(())
    }));
    assert!(out.is_err());
}

#[test]
fn an_operation_first_polled_inside_a_shield_is_protected_by_it() {
    let flushed = Arc::new(std::sync::Mutex::new(None));
    let seen = flushed.clone();
    let out: Result<(), _> = block_on(Operation::new("outer").run(|outer| async move {
        let token = outer.token().clone();
        outer
            .shield(async move {
                let flush = Operation::new("flush").run(|cx| async move {
                    token.cancel_with(cancelable::CancelKind::Shutdown); // arrives mid-flush
                    future::yield_now().await;
                    cx.check()?;
                    Ok(cx.parent_id())
                });
                *seen.lock().unwrap() = Some(flush.await);
            })
            .await;
        Ok(())
    }));
    assert!(out.is_err(), "the outer body stops at the shield's end");
    let flush = flushed.lock().unwrap().take().unwrap();
    assert!(
        flush.unwrap().is_some(),
        "the shielded operation is its parent"
    );
}

#[test]
fn an_operation_first_polled_outside_every_operation_has_no_parent() {
    let mut moved = None;
    block_on(Operation::new("creator").run(|_| async {
        // Built here but run elsewhere (as a spawned task would be).
        moved = Some(Operation::new("spawned").run(|cx| async move { Ok(cx.parent_id()) }));
        Ok(())
    }))
    .unwrap();
    assert_eq!(block_on(moved.unwrap()), Ok(None));
}

#[test]
fn two_operations_interleaved_on_one_thread_each_see_themselves() {
    let steps = Arc::new(AtomicUsize::new(0));
    let body = |steps: Arc<AtomicUsize>| {
        move |cx: OperationContext| async move {
            for _ in 0..50 {
                assert_eq!(current().unwrap().id(), cx.id());
                steps.fetch_add(1, Ordering::SeqCst);
                future::yield_now().await;
            }
            Ok(())
        }
    };
    let a = Operation::new("a").run(body(steps.clone()));
    let b = Operation::new("b").run(body(steps.clone()));
    let (a, b) = block_on(future::zip(a, b));
    a.unwrap();
    b.unwrap();
    assert_eq!(steps.load(Ordering::SeqCst), 100);
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_body_moved_to_another_thread_sees_its_operation_there_and_not_on_the_first() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut run = Box::pin(Operation::new("mover").run(move |cx| async move {
        let first = thread::current().id();
        assert_eq!(current().unwrap().id(), cx.id());
        // Pending until the test thread sends: the future then moves to another thread.
        future::poll_fn(|_| match rx.lock().unwrap().try_recv() {
            Ok(()) => Poll::Ready(()),
            Err(_) => Poll::Pending,
        })
        .await;
        assert_ne!(thread::current().id(), first);
        assert_eq!(current().unwrap().id(), cx.id());
        Ok(cx.name().to_owned())
    }));
    let waker = Waker::from(Arc::new(NoopWake));
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert!(current().is_none(), "popped after the poll");
    tx.send(()).unwrap();
    let out = thread::spawn(move || {
        let waker = Waker::from(Arc::new(NoopWake));
        let polled = Pin::new(&mut run).poll(&mut Context::from_waker(&waker));
        assert!(current().is_none());
        polled
    })
    .join()
    .unwrap();
    assert_eq!(out, Poll::Ready(Ok("mover".to_owned())));
}

#[test]
fn right_on_a_multi_threaded_executor() {
    let ex = Arc::new(smol::Executor::new());
    let shutdown = cancelable::CancellationToken::new();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let ex = ex.clone();
            let shutdown = shutdown.clone();
            thread::spawn(move || block_on(ex.run(shutdown.cancelled_owned())))
        })
        .collect();
    let moved = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let moved = moved.clone();
            ex.spawn(
                Operation::new(format!("task {i}")).run(move |cx| async move {
                    let mut last = thread::current().id();
                    for _ in 0..100 {
                        assert_eq!(current().unwrap().id(), cx.id());
                        smol::future::yield_now().await;
                        if thread::current().id() != last {
                            moved.fetch_add(1, Ordering::Relaxed);
                            last = thread::current().id();
                        }
                    }
                    Ok(i)
                }),
            )
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(block_on(task), Ok(i));
    }
    shutdown.cancel();
    for t in threads {
        t.join().unwrap();
    }
    // Not guaranteed by the executor, so only reported: how often bodies changed threads.
    eprintln!(
        "bodies moved between threads {} times",
        moved.load(Ordering::Relaxed)
    );
}

#[test]
fn the_body_closure_runs_at_the_first_poll_inside_its_operation() {
    // Built outside every operation, awaited inside one.
    let built = Operation::new("ahead").run(|cx| {
        let seen = current().map(|c| c.id().clone());
        async move { Ok(seen.as_ref() == Some(cx.id())) }
    });
    let out = block_on(Operation::new("outer").run(|_| built));
    assert_eq!(
        out,
        Ok(true),
        "current() in the body closure is the operation itself"
    );
}

#[test]
fn an_operation_built_ahead_of_time_records_the_one_that_first_polls_it_as_parent() {
    let built = Operation::new("ahead").run(|cx| async move { Ok(cx.parent_id()) });
    let cx = built.context().clone();
    block_on(Operation::new("outer").run(|outer| async move {
        assert_eq!(built.await?.as_ref(), Some(outer.id()));
        Ok(())
    }))
    .unwrap();
    assert!(cx.parent_id().is_some());
}

#[test]
fn the_recorded_parents_cancel_reaches_the_child_even_after_it_moved_away() {
    let (moved, arrived) = std::sync::mpsc::channel();
    let mut outer = Box::pin(Operation::new("outer").run(move |_| async move {
        let mut inner =
            Box::pin(Operation::new("inner").run(|_| future::pending::<Result<(), _>>()));
        assert!(future::poll_once(inner.as_mut()).await.is_none()); // first polled here
        moved.send(inner).unwrap(); // then runs on another thread
        future::pending::<()>().await;
        Ok(())
    }));
    assert!(block_on(future::poll_once(outer.as_mut())).is_none());
    let inner = arrived.recv().unwrap();
    assert_eq!(
        inner.context().parent_id().as_ref(),
        Some(outer.context().id())
    );
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || done.send(block_on(inner)));
    outer
        .context()
        .token()
        .cancel_with(cancelable::CancelKind::Shutdown);
    let err = result
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the parent's cancel never reached the child that records it as parent")
        .unwrap_err();
    assert_eq!(err.reason().kind(), cancelable::CancelKind::Shutdown);
}
