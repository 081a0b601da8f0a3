//! The jobs manager: ids, lifecycle through the registry, cancel (manual, 409, 404), the
//! concurrency limit (429 over HTTP), bounded history, jobs outliving their request, shutdown.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cancelable::{CancelKind, Cancelled, OperationContext};
use cancelable_http::{
    CancelOutcome, HandlerResult, HttpError, JobError, Jobs, Router, Server, ServerConfig, json,
};
use common::{LONG, TestServer};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

/// A job of `steps` steps of `step`; each step is a timer raced against the token.
fn stepper(
    steps: u64,
    step: Duration,
) -> impl FnOnce(
    OperationContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Cancelled>> + Send>> {
    move |cx| {
        Box::pin(async move {
            for n in 1..=steps {
                cx.token()
                    .run_until_cancelled(smol::Timer::after(step))
                    .await;
                cx.check()?;
                cx.report_progress(n, Some(steps), "steps");
            }
            Ok(())
        })
    }
}

fn wait(what: &str, mut probe: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !probe() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn lifecycle_start_progress_cancel_conflict_unknown_complete() {
    let server = Server::new(ServerConfig::default());
    let jobs = Jobs::new(&server, 8);
    smol::block_on(async {
        // Start: a 32-hex-digit id; progress starts at 0 / total.
        let id = jobs
            .start("long", Some(1000), stepper(1000, Duration::from_millis(2)))
            .unwrap();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let first = jobs.get(&id).unwrap();
        assert_eq!(
            (first.name.as_str(), first.progress.total),
            ("long", Some(1000))
        );
        assert!(["pending", "running"].contains(&first.status));
        // Progress moves.
        wait("progress", || jobs.get(&id).unwrap().progress.done >= 3);
        assert_eq!(jobs.get(&id).unwrap().status, "running");
        assert_eq!(jobs.active(), 1);
        // Cancel: stopped when cancel returns, reason manual; again → already finished.
        assert_eq!(jobs.cancel(&id).await, CancelOutcome::Cancelled);
        let info = jobs.get(&id).unwrap();
        assert_eq!((info.status, info.reason), ("cancelled", Some("manual")));
        assert!(info.progress.done < 1000);
        assert_eq!(jobs.cancel(&id).await, CancelOutcome::AlreadyFinished);
        assert_eq!(
            CancelOutcome::AlreadyFinished
                .into_result()
                .unwrap_err()
                .status(),
            409
        );
        // Unknown.
        assert_eq!(
            jobs.cancel("f".repeat(32).as_str()).await,
            CancelOutcome::NotFound
        );
        assert!(jobs.get("nope").is_none());
        // Completion: done == total.
        let quick = jobs
            .start("quick", Some(5), stepper(5, Duration::from_millis(1)))
            .unwrap();
        wait("completion", || {
            jobs.get(&quick).unwrap().status == "completed"
        });
        let info = jobs.get(&quick).unwrap();
        assert_eq!(
            (info.progress.done, info.progress.total, info.reason),
            (5, Some(5), None)
        );
        assert_eq!(jobs.cancel(&quick).await, CancelOutcome::AlreadyFinished);
        wait("no active job", || jobs.active() == 0);
        assert_eq!(server.stats().active_jobs, 0);
        // A failing body.
        let bad = jobs
            .start("bad", None, |_| async {
                Err(Cancelled::new(CancelKind::Condition))
            })
            .unwrap();
        wait("end", || {
            jobs.get(&bad).unwrap().status != "running"
                && jobs.get(&bad).unwrap().status != "pending"
        });
    });
}

#[test]
fn the_limit_refuses_with_429_and_frees_on_completion() {
    let server = Server::new(ServerConfig::default());
    let jobs = Jobs::new(&server, 2);
    let a = jobs
        .start("a", None, stepper(1, Duration::from_secs(60)))
        .unwrap();
    let _b = jobs
        .start("b", None, stepper(1, Duration::from_secs(60)))
        .unwrap();
    let err = jobs
        .start("c", None, stepper(1, Duration::ZERO))
        .unwrap_err();
    assert_eq!(err, JobError::LimitReached { limit: 2 });
    assert_eq!(HttpError::from(err).status(), 429);
    assert_eq!(smol::block_on(jobs.cancel(&a)), CancelOutcome::Cancelled);
    wait("a slot", || jobs.active() == 1);
    jobs.start("c", None, stepper(1, Duration::ZERO)).unwrap();
}

#[test]
fn ids_are_unique_and_history_is_bounded() {
    let server = Server::new(ServerConfig::default().job_history(10));
    let jobs = Jobs::new(&server, 64);
    let mut ids = HashSet::new();
    for _ in 0..50 {
        let id = jobs
            .start("t", Some(1), stepper(1, Duration::ZERO))
            .unwrap();
        assert!(ids.insert(id));
        wait("a slot", || jobs.active() < 64);
    }
    wait("all done", || jobs.active() == 0);
    wait("history settled", || {
        jobs.list().iter().all(|j| j.status == "completed")
    });
    assert_eq!(jobs.list().len(), 10);
}

#[derive(Clone)]
struct App {
    jobs: Jobs,
}

async fn start_job(_req: Request<Incoming>, app: App) -> HandlerResult {
    let id = app
        .jobs
        .start("http job", Some(3), stepper(3, Duration::from_millis(20)))?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"job_id": id}),
    ))
}

#[test]
fn a_job_outlives_its_request_and_shutdown_cancels_it() {
    let mut jobs_slot = None;
    let mut t = TestServer::start(
        ServerConfig::default().grace(Duration::from_secs(5)),
        |server| {
            let jobs = Jobs::new(server, 1);
            jobs_slot = Some(jobs.clone());
            Router::new(App { jobs }).post("/jobs", start_job)
        },
    );
    let jobs = jobs_slot.unwrap();
    let response = t.request("POST", "/jobs", Some("{}"));
    assert_eq!(response.status, 202);
    let id = response.json()["job_id"].as_str().unwrap().to_owned();
    // The request is over (connection closed); the job goes on and completes.
    wait("completion", || {
        jobs.get(&id).unwrap().status == "completed"
    });
    // Limit 1 over HTTP: the second concurrent start → 429 JSON.
    let long = jobs
        .start("long", None, stepper(1, Duration::from_secs(60)))
        .unwrap();
    let refused = t.request("POST", "/jobs", Some("{}"));
    assert_eq!(refused.status, 429);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("too many jobs")
    );
    // Shutdown cancels the running job with `shutdown` and waits for it.
    let report = t.shutdown();
    assert!(report.stopped_in_time(), "{report}");
    let info = jobs.get(&long).unwrap();
    assert_eq!((info.status, info.reason), ("cancelled", Some("shutdown")));
    assert_eq!(
        jobs.start("late", None, stepper(1, Duration::ZERO))
            .unwrap_err(),
        JobError::ShuttingDown
    );
}

#[test]
fn a_job_seen_finished_no_longer_counts_against_the_limit() {
    // Whoever sees a job's final status may start the next one at once: the slot is free by
    // then, on whatever thread the job ran.
    let server = Server::new(ServerConfig::default());
    let jobs = Jobs::new(&server, 1);
    for round in 0..500 {
        let id = jobs
            .start("quick", None, |_| async { Ok(()) })
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let start = std::time::Instant::now();
        while jobs.get(&id).unwrap().status != "completed" {
            assert!(start.elapsed() < LONG, "round {round}: never completed");
            std::thread::yield_now();
        }
        assert_eq!(jobs.active(), 0, "round {round}: finished, still counted");
    }
}

#[test]
fn a_cancel_that_comes_as_the_job_completes_reports_it_finished() {
    // The body's last poll holds its thread until the cancel has been sent: the job completes
    // anyway (its body returned), and the cancel must say so rather than `Cancelled`.
    let server = Server::new(ServerConfig::default());
    let jobs = Jobs::new(&server, 1);
    let (in_last_poll, last_poll) = std::sync::mpsc::channel();
    let (sent_tx, sent) = std::sync::mpsc::channel::<()>();
    let id = jobs
        .start("finishing", None, move |_| {
            std::future::poll_fn(move |_| {
                in_last_poll.send(()).unwrap();
                sent.recv_timeout(LONG).expect("the cancel was sent");
                std::task::Poll::Ready(Ok(()))
            })
        })
        .unwrap();
    last_poll.recv_timeout(LONG).expect("the body is polled");
    smol::block_on(async {
        let mut cancel = std::pin::pin!(jobs.cancel(&id));
        // The first poll sends the cancel, then waits for the job to stop.
        assert!(
            futures_lite::future::poll_once(cancel.as_mut())
                .await
                .is_none()
        );
        sent_tx.send(()).unwrap();
        assert_eq!(cancel.await, CancelOutcome::AlreadyFinished);
    });
    assert_eq!(jobs.get(&id).unwrap().status, "completed");
}
