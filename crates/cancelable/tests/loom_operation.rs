//! Loom models of operations and registries: each one race, explored over every interleaving
//! (with a bounded number of preemptions). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p cancelable --release --test loom_operation`.
//!
//! Where one side only reads, the reader is the spawned thread: with the writer spawned and the
//! reader on the model's own thread, loom explored a single interleaving of these races.
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cancelable::{
    CancelKind, Cancelled, Operation, OperationFilter, OperationId, OperationStatus, Registry,
};
use loom::thread;

/// Explores `f` with at most `LOOM_MAX_PREEMPTIONS` (default 2) preemptions.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

fn pending() -> impl Future<Output = Result<(), Cancelled>> + Send + 'static {
    std::future::pending()
}

/// Polls `fut` once, which must finish it.
fn finish<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the operation should finish in one poll"),
    }
}

#[test]
fn registering_vs_cancel_all_counts_exactly_the_operations_it_cancelled() {
    model(|| {
        let registry = Registry::with_history(4);
        let before = Operation::new("before")
            .register(&registry)
            .run(|_| pending());
        let late = {
            let registry = registry.clone();
            thread::spawn(move || {
                Operation::new("late")
                    .register(&registry)
                    .run(|_| pending())
            })
        };
        let cancelled = registry.cancel_all(CancelKind::Shutdown);
        let late = late.join().unwrap();
        assert!(before.context().is_cancelled());
        assert_eq!(
            cancelled,
            1 + usize::from(late.context().is_cancelled()),
            "an operation registered during the call is cancelled and counted, or neither"
        );
    });
}

#[test]
fn registering_vs_finishing_with_the_same_id_keeps_both_in_their_place() {
    model(|| {
        let registry = Registry::with_history(4);
        let id = OperationId::from("job");
        let first = Operation::new("first")
            .id(id.clone())
            .register(&registry)
            .run(|_| pending());
        let ender = thread::spawn(move || drop(first));
        let second = Operation::new("second")
            .id(id.clone())
            .register(&registry)
            .run(|_| pending());
        ender.join().unwrap();

        assert_eq!(registry.get(&id).unwrap().name, "second");
        let stats = registry.stats();
        assert_eq!((stats.pending, stats.cancelled, stats.history), (1, 1, 1));
        let listed: Vec<_> = registry
            .list(&OperationFilter::new())
            .into_iter()
            .map(|snap| (snap.name, snap.status))
            .collect();
        assert_eq!(
            listed,
            [
                ("second".to_owned(), OperationStatus::Pending),
                ("first".to_owned(), OperationStatus::Cancelled)
            ]
        );
        drop(second);
    });
}

#[test]
fn list_during_the_end_of_an_operation_shows_it_once() {
    model(|| {
        let registry = Registry::with_history(4);
        let run = Operation::new("ending")
            .register(&registry)
            .run(|_| async { Ok(()) });
        let id = run.context().id().clone();
        let ender = thread::spawn(move || finish(run).unwrap());
        let listed = registry.list(&OperationFilter::new());
        ender.join().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].id, id);
        assert_eq!(
            registry.get(&id).unwrap().status,
            OperationStatus::Completed
        );
    });
}

#[test]
fn a_snapshot_during_completion_is_consistent() {
    model(|| {
        let run = Operation::new("completing").run(|_| async { Ok(()) });
        let watcher = {
            let cx = run.context().clone();
            thread::spawn(move || cx.snapshot())
        };
        let cx = run.context().clone();
        finish(run).unwrap();
        let snap = watcher.join().unwrap();
        match snap.status {
            OperationStatus::Pending => assert!(snap.started_at.is_none()),
            OperationStatus::Running => {
                assert!(snap.started_at.is_some() && snap.ended_at.is_none())
            }
            OperationStatus::Completed => {
                assert!(snap.ended_at.is_some() && snap.duration.is_some())
            }
            other => panic!("{other:?}"),
        }
        assert!(snap.reason.is_none() && snap.error.is_none());
        assert_eq!(cx.status(), OperationStatus::Completed);
    });
}

#[test]
fn a_snapshot_during_cancelation_has_the_reason_exactly_when_cancelled() {
    model(|| {
        let run = Operation::new("dropped").run(|_| pending());
        let watcher = {
            let cx = run.context().clone();
            thread::spawn(move || cx.snapshot())
        };
        drop(run);
        let snap = watcher.join().unwrap();
        match snap.status {
            OperationStatus::Pending => assert!(snap.reason.is_none() && snap.ended_at.is_none()),
            OperationStatus::Cancelled => {
                assert_eq!(snap.reason.unwrap().kind(), CancelKind::Manual);
                assert!(snap.ended_at.is_some());
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn an_id_asked_for_by_two_threads_at_once_is_made_once() {
    model(|| {
        let run = Operation::new("unnamed").run(|_| pending());
        let cx = run.context().clone();
        let other = {
            let cx = cx.clone();
            thread::spawn(move || cx.id().clone())
        };
        let here = cx.id().clone();
        assert_eq!(other.join().unwrap(), here);
        assert_eq!(cx.snapshot().id, here);
        drop(run);
    });
}
