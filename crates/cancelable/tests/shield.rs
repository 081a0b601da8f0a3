//! Shields: regions of a body that finish before the operation's cancelation takes effect.
//!
//! Also run without the `std` feature (`cargo test -p cancelable --no-default-features`), where
//! shields tell whether they are nested from counters instead of the per-thread stack.
#![cfg(not(loom))]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancelReason, CancellationToken, FutureExt, Operation, Source};
use futures_lite::future::{self, block_on, poll_once};

type Steps = Arc<Mutex<Vec<&'static str>>>;

fn steps() -> (Steps, Steps) {
    let steps = Steps::default();
    (steps.clone(), steps)
}

fn trigger() -> (CancellationToken, impl Future<Output = ()> + Send + 'static) {
    let token = CancellationToken::new();
    (token.clone(), token.cancelled_owned())
}

#[test]
fn a_shielded_region_outlives_a_timeout_and_the_statement_after_it_never_runs() {
    let (log, seen) = steps();
    let started = Instant::now();
    let out: Result<(), _> = block_on(
        Operation::new("flush")
            .cancel_on(Source::new(
                smol::Timer::after(Duration::from_millis(100)),
                CancelReason::timeout(),
            ))
            .run(|cx| async move {
                log.lock().unwrap().push("start");
                cx.shield(async {
                    log.lock().unwrap().push("shield_start");
                    smol::Timer::after(Duration::from_millis(200)).await;
                    log.lock().unwrap().push("shield_end");
                })
                .await;
                log.lock().unwrap().push("after_shield");
                Ok(())
            }),
    );
    assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Timeout);
    assert_eq!(
        *seen.lock().unwrap(),
        ["start", "shield_start", "shield_end"]
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn nested_shields_complete_innermost_first() {
    let (log, seen) = steps();
    let (fire, source) = trigger();
    let out: Result<(), _> = block_on(
        Operation::new("nested")
            .cancel_on(Source::new(source, CancelReason::timeout()))
            .run(|cx| async move {
                log.lock().unwrap().push("parent_start");
                let inner_log = log.clone();
                cx.shield_with(|outer| async move {
                    let log = inner_log;
                    log.lock().unwrap().push("shield1_start");
                    outer
                        .shield(async {
                            log.lock().unwrap().push("shield2_start");
                            fire.cancel(); // the timeout passes inside both shields
                            future::yield_now().await;
                            log.lock().unwrap().push("shield2_end");
                        })
                        .await;
                    future::yield_now().await;
                    log.lock().unwrap().push("shield1_end");
                })
                .await;
                log.lock().unwrap().push("after");
                Ok(())
            }),
    );
    assert!(out.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "parent_start",
            "shield1_start",
            "shield2_start",
            "shield2_end",
            "shield1_end"
        ]
    );
}

#[test]
fn a_cancel_issued_inside_a_shield_takes_effect_when_it_ends() {
    let (log, seen) = steps();
    let out: Result<(), _> = block_on(Operation::new("manual").run(|cx| async move {
        let token = cx.token().clone();
        cx.shield(async {
            token.cancel_with(CancelReason::manual().with_message("from inside"));
            future::yield_now().await;
            log.lock().unwrap().push("shield_finished");
        })
        .await;
        log.lock().unwrap().push("after");
        Ok(())
    }));
    assert_eq!(out.unwrap_err().reason().message(), Some("from inside"));
    assert_eq!(*seen.lock().unwrap(), ["shield_finished"]);
}

#[test]
fn a_cancel_from_another_thread_during_a_shield_waits_for_it() {
    let (log, seen) = steps();
    let (release, gate) = trigger();
    let mut run = Box::pin(Operation::new("threads").run(|cx| async move {
        cx.shield(async {
            gate.await;
            log.lock().unwrap().push("shield_end");
        })
        .await;
        log.lock().unwrap().push("after");
        Ok(())
    }));
    assert!(block_on(poll_once(run.as_mut())).is_none());
    let token = run.context().token().clone();
    thread::spawn(move || token.cancel_with(CancelKind::Shutdown))
        .join()
        .unwrap();
    assert!(
        block_on(poll_once(run.as_mut())).is_none(),
        "shielded: the body is not dropped"
    );
    release.cancel();
    assert_eq!(
        block_on(run).unwrap_err().reason().kind(),
        CancelKind::Shutdown
    );
    assert_eq!(*seen.lock().unwrap(), ["shield_end"]);
}

#[cfg(feature = "std")]
#[test]
fn code_in_a_shield_sees_a_fresh_token_the_outer_cancelation_does_not_reach() {
    let out: Result<(), _> = block_on(Operation::new("fresh").run(|cx| async move {
        let op_token = cx.token().clone();
        let shielded = cx
            .shield_with(|scx| async move {
                op_token.cancel();
                assert!(scx.check().is_ok());
                assert_ne!(scx.token(), &op_token);
                let current = cancelable::current().unwrap();
                assert_eq!(current.token(), scx.token());
                assert_eq!(current.id(), scx.id());
                scx.token().clone()
            })
            .await;
        drop(shielded);
        Ok(())
    }));
    assert!(out.is_err());
}

#[test]
fn a_shields_token_can_be_cancelled_on_its_own_terms() {
    let out = block_on(Operation::new("own terms").run(|cx| async move {
        let inner = cx
            .shield_with(|scx| async move {
                scx.token().cancel_with(CancelKind::Condition);
                future::pending::<()>().cancelable(scx.token()).await
            })
            .await;
        assert_eq!(inner.unwrap_err().reason().kind(), CancelKind::Condition);
        cx.check()?;
        Ok("completed")
    }));
    assert_eq!(out, Ok("completed"));
}

#[test]
fn without_a_cancel_a_shield_returns_its_output() {
    let out = block_on(Operation::new("plain").run(|cx| async move {
        let n = cx.shield(async { 21 * 2 }).await;
        Ok(n)
    }));
    assert_eq!(out, Ok(42));
}

#[test]
fn a_shield_awaited_outside_the_body_returns_even_if_the_operation_is_cancelled() {
    let (tx, rx) = std::sync::mpsc::channel();
    let run = Operation::new("leaked context").run(move |cx| async move {
        tx.send(cx.clone()).unwrap();
        future::pending::<()>().await;
        Ok(())
    });
    let mut run = Box::pin(run);
    assert!(block_on(poll_once(run.as_mut())).is_none());
    let cx = rx.recv().unwrap();
    cx.token().cancel();
    // Nothing would ever drop this shield, so it must not park.
    assert_eq!(block_on(cx.shield(async { 5 })), 5);
    assert!(block_on(run).is_err());
}

#[test]
fn a_cancel_after_the_shield_ended_is_an_ordinary_cancelation() {
    let (log, seen) = steps();
    let out: Result<(), _> = block_on(Operation::new("after").run(|cx| async move {
        cx.shield(async {}).await;
        log.lock().unwrap().push("after_shield");
        cx.token().cancel();
        future::yield_now().await;
        log.lock().unwrap().push("never");
        Ok(())
    }));
    assert!(out.is_err());
    assert_eq!(*seen.lock().unwrap(), ["after_shield"]);
}

/// Runs `test` on a thread of its own and fails if it has not returned within 10 s: a nested
/// shield that hangs then fails the test instead of the whole run.
fn within_10s<T: Send + 'static>(test: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(test());
    });
    result
        .recv_timeout(Duration::from_secs(10))
        .expect("the operation hung: still running 10 s after its last shield ended")
}

/// What every nesting shape must give: the inner shield ends, the rest of the outer shield runs,
/// and the body stops at the outer shield's end with the parent's reason.
fn assert_stopped_at_the_outer_shields_end(out: Result<(), cancelable::Cancelled>, seen: &Steps) {
    assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    assert_eq!(*seen.lock().unwrap(), ["inner_end", "outer_end"]);
}

#[test]
fn a_shield_in_a_shield_ends_innermost_first_then_stops_the_body() {
    let (log, seen) = steps();
    let parent = CancellationToken::new();
    let p = parent.clone();
    let out = within_10s(move || {
        block_on(
            Operation::new("shield in shield")
                .parent(&parent)
                .run(|cx| async move {
                    cx.shield(async {
                        cx.shield(async {
                            p.cancel_with(CancelKind::Shutdown);
                            future::yield_now().await;
                            log.lock().unwrap().push("inner_end");
                        })
                        .await;
                        future::yield_now().await;
                        log.lock().unwrap().push("outer_end");
                    })
                    .await;
                    log.lock().unwrap().push("after");
                    Ok(())
                }),
        )
    });
    assert_stopped_at_the_outer_shields_end(out, &seen);
}

#[test]
fn a_shield_with_in_a_shield_ends_innermost_first_then_stops_the_body() {
    let (log, seen) = steps();
    let parent = CancellationToken::new();
    let p = parent.clone();
    let out = within_10s(move || {
        block_on(
            Operation::new("shield_with in shield")
                .parent(&parent)
                .run(|cx| async move {
                    cx.shield(async {
                        let fresh = cx
                            .shield_with(|inner| async move {
                                p.cancel_with(CancelKind::Shutdown);
                                future::yield_now().await;
                                inner.check().is_ok()
                            })
                            .await;
                        assert!(fresh, "the inner shield's own token is not cancelled");
                        log.lock().unwrap().push("inner_end");
                        future::yield_now().await;
                        log.lock().unwrap().push("outer_end");
                    })
                    .await;
                    log.lock().unwrap().push("after");
                    Ok(())
                }),
        )
    });
    assert_stopped_at_the_outer_shields_end(out, &seen);
}

#[test]
fn shields_on_cloned_contexts_end_innermost_first_then_stop_the_body() {
    let (log, seen) = steps();
    let parent = CancellationToken::new();
    let p = parent.clone();
    let out = within_10s(move || {
        block_on(
            Operation::new("clones")
                .parent(&parent)
                .run(|cx| async move {
                    let (outer, inner) = (cx.clone(), cx.clone());
                    let (log2, log3) = (log.clone(), log.clone());
                    outer
                        .shield(async move {
                            inner
                                .shield(async move {
                                    p.cancel_with(CancelKind::Shutdown);
                                    future::yield_now().await;
                                    log3.lock().unwrap().push("inner_end");
                                })
                                .await;
                            future::yield_now().await;
                            log2.lock().unwrap().push("outer_end");
                        })
                        .await;
                    log.lock().unwrap().push("after");
                    Ok(())
                }),
        )
    });
    assert_stopped_at_the_outer_shields_end(out, &seen);
}

/// Library code that flushes under a shield of whatever operation it is given.
async fn flush_shielded(
    cx: &cancelable::OperationContext,
    parent: &CancellationToken,
    log: &Steps,
) {
    cx.shield(async {
        parent.cancel_with(CancelKind::Shutdown);
        future::yield_now().await;
        log.lock().unwrap().push("inner_end");
    })
    .await;
}

#[test]
fn a_shield_opened_by_a_helper_inside_a_shield_ends_innermost_first_then_stops_the_body() {
    let (log, seen) = steps();
    let parent = CancellationToken::new();
    let p = parent.clone();
    let out = within_10s(move || {
        block_on(
            Operation::new("helper")
                .parent(&parent)
                .run(|cx| async move {
                    cx.shield(async {
                        flush_shielded(&cx, &p, &log).await;
                        future::yield_now().await;
                        log.lock().unwrap().push("outer_end");
                    })
                    .await;
                    log.lock().unwrap().push("after");
                    Ok(())
                }),
        )
    });
    assert_stopped_at_the_outer_shields_end(out, &seen);
}

#[test]
fn three_nested_shields_end_innermost_first_then_stop_the_body() {
    let (log, seen) = steps();
    let out: Result<(), _> = within_10s(move || {
        block_on(Operation::new("three deep").run(|cx| async move {
            cx.shield(async {
                cx.shield(async {
                    cx.shield(async {
                        cx.token().cancel_with(CancelKind::Shutdown);
                        future::yield_now().await;
                        log.lock().unwrap().push("third");
                    })
                    .await;
                    log.lock().unwrap().push("second");
                })
                .await;
                log.lock().unwrap().push("first");
            })
            .await;
            log.lock().unwrap().push("after");
            Ok(())
        }))
    });
    assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    assert_eq!(*seen.lock().unwrap(), ["third", "second", "first"]);
}

#[test]
fn side_by_side_shields_both_finish_and_the_code_after_either_never_runs() {
    let (log, seen) = steps();
    let out: Result<(), _> = within_10s(move || {
        block_on(Operation::new("side by side").run(|cx| async move {
            let first = async {
                cx.shield(async {
                    cx.token().cancel_with(CancelKind::Shutdown);
                    log.lock().unwrap().push("first_end");
                })
                .await;
                log.lock().unwrap().push("after_first");
            };
            let second = async {
                cx.shield(async {
                    // Still running when the first one has ended.
                    future::yield_now().await;
                    future::yield_now().await;
                    log.lock().unwrap().push("second_end");
                })
                .await;
                log.lock().unwrap().push("after_second");
            };
            future::zip(first, second).await;
            Ok(())
        }))
    });
    assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    assert_eq!(*seen.lock().unwrap(), ["first_end", "second_end"]);
}
