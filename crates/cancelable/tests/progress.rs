//! Progress: reports, callbacks (and their panics), status callbacks, the stream helper.
#![cfg(all(feature = "std", not(loom)))]

use std::sync::{Arc, Mutex};

use cancelable::{Operation, OperationId, OperationStatus, Progress};
use futures_lite::future::block_on;
use futures_lite::{StreamExt, stream};

#[test]
fn progress_callbacks_get_the_operation_id_and_every_report_in_order() {
    let seen: Arc<Mutex<Vec<(OperationId, Progress)>>> = Arc::default();
    let log = seen.clone();
    let out = block_on(
        Operation::new("steps")
            .id("op-1")
            .on_progress(move |id, p| log.lock().unwrap().push((id.clone(), p.clone())))
            .run(|cx| async move {
                cx.report_progress(1, Some(2), "Step 1");
                cx.report_progress(2, Some(2), String::from("Step 2"));
                Ok(())
            }),
    );
    out.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                OperationId::from("op-1"),
                Progress::new(1, Some(2), "Step 1")
            ),
            (
                OperationId::from("op-1"),
                Progress::new(2, Some(2), "Step 2")
            ),
        ]
    );
}

#[test]
fn a_panicking_progress_callback_breaks_neither_the_body_nor_the_other_callbacks() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let out = block_on(
        Operation::new("noisy")
            .on_progress(|_, _| panic!("callback bug"))
            .on_progress(move |_, p| log.lock().unwrap().push(p.done))
            .run(|cx| async move {
                cx.report_progress(1, None, "");
                cx.report_progress(2, None, "");
                Ok("body went on")
            }),
    );
    assert_eq!(out, Ok("body went on"));
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
}

#[test]
fn a_panicking_status_callback_does_not_stop_the_others() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let run = Operation::new("status")
        .on_status(|_| panic!("callback bug"))
        .on_status(move |snap| log.lock().unwrap().push(snap.status))
        .run(|_| async { Ok(1) });
    let cx = run.context().clone();
    assert_eq!(block_on(run), Ok(1));
    assert_eq!(cx.status(), OperationStatus::Completed);
    assert_eq!(
        *seen.lock().unwrap(),
        [OperationStatus::Running, OperationStatus::Completed]
    );
}

#[test]
fn status_callbacks_see_the_cancel_reason() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let out: Result<(), _> = block_on(
        Operation::new("why")
            .on_status(move |snap| {
                let reason = snap.reason.as_ref().map(|r| r.kind().as_str());
                log.lock().unwrap().push((snap.status.as_str(), reason));
            })
            .run(|cx| async move {
                cx.token().cancel_with(cancelable::CancelKind::Timeout);
                futures_lite::future::yield_now().await;
                Ok(())
            }),
    );
    assert!(out.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [("running", None), ("cancelled", Some("timeout"))]
    );
}

#[test]
fn the_latest_report_is_in_snapshots() {
    let run = Operation::new("latest").run(|cx| async move {
        cx.report_progress(3, Some(10), "rows");
        Ok(())
    });
    let cx = run.context().clone();
    assert_eq!(cx.snapshot().progress, None);
    block_on(run).unwrap();
    assert_eq!(
        cx.snapshot().progress,
        Some(Progress::new(3, Some(10), "rows"))
    );
}

#[test]
fn progress_displays_done_total_message_and_percentage() {
    assert_eq!(
        Progress::new(3, Some(12), "rows").to_string(),
        "3/12 rows (25%)"
    );
    assert_eq!(Progress::new(5, None, "rows").to_string(), "5 rows");
    assert_eq!(Progress::new(0, Some(0), "").to_string(), "0/0");
}

#[test]
fn the_stream_helper_reports_every_n_items_and_at_the_end() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let items = block_on(
        Operation::new("stream")
            .on_progress(move |_, p| log.lock().unwrap().push((p.done, p.total)))
            .run(|cx| async move {
                Ok(cx
                    .progress_stream(stream::iter(0..25), 10)
                    .collect::<Vec<_>>()
                    .await)
            }),
    )
    .unwrap();
    assert_eq!(items, (0..25).collect::<Vec<_>>());
    assert_eq!(
        *seen.lock().unwrap(),
        [(10, Some(25)), (20, Some(25)), (25, Some(25))]
    );
}

#[test]
fn the_stream_helper_ends_at_cancelation() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let yielded = Arc::new(Mutex::new(0));
    let count = yielded.clone();
    let out: Result<(), _> = block_on(
        Operation::new("endless")
            .on_progress(move |_, p| log.lock().unwrap().push(p.done))
            .run(|cx| async move {
                let mut items = cx.progress_stream(stream::repeat(()), 4);
                let mut n = 0;
                while items.next().await.is_some() {
                    n += 1;
                    if n == 10 {
                        cx.token().cancel();
                    }
                }
                *count.lock().unwrap() = n;
                cx.check()
            }),
    );
    assert!(out.is_err());
    assert_eq!(*yielded.lock().unwrap(), 10, "no item after the cancel");
    assert_eq!(
        *seen.lock().unwrap(),
        [4, 8, 10],
        "the last report says how far it got"
    );
}

#[test]
fn the_stream_helper_counts_items_and_takes_a_message() {
    let out = block_on(Operation::new("lines").run(|cx| async move {
        let mut lines = cx
            .progress_stream(stream::iter(["a", "b", "c"]), 0)
            .with_message("lines");
        lines.next().await;
        lines.next().await;
        Ok((lines.seen(), cx.snapshot().progress.unwrap()))
    }));
    let (seen, last) = out.unwrap();
    assert_eq!(seen, 2);
    assert_eq!(
        last,
        Progress::new(2, Some(3), "lines"),
        "every = 0 counts as 1"
    );
}

#[test]
fn progress_metadata_reaches_callbacks_and_snapshots() {
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let log = seen.clone();
    let last = block_on(
        Operation::new("upload")
            .on_progress(move |_, p| log.lock().unwrap().push(p.clone()))
            .run(|cx| async move {
                cx.report(Progress::new(1, Some(2), "files").with_metadata("file", "a.csv"));
                cx.report(
                    Progress::new(2, Some(2), "files")
                        .with_metadata("file", "b.csv")
                        .with_metadata("bytes", "2048"),
                );
                Ok(cx.snapshot().progress.unwrap())
            }),
    )
    .unwrap();
    let files: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.metadata["file"].clone())
        .collect();
    assert_eq!(files, ["a.csv", "b.csv"]);
    assert_eq!(last.metadata["bytes"], "2048");
    assert_eq!(
        last.to_string(),
        "2/2 files (100%) [bytes=2048, file=b.csv]"
    );
}

#[test]
fn plain_reports_carry_no_metadata() {
    let last = block_on(Operation::new("plain").run(|cx| async move {
        cx.report_progress(1, None, "rows");
        Ok(cx.snapshot().progress.unwrap())
    }))
    .unwrap();
    assert!(last.metadata.is_empty());
}

#[cfg(feature = "serde")]
#[test]
fn progress_metadata_is_in_the_json_only_when_there_is_some() {
    let plain = serde_json::to_value(Progress::new(1, Some(2), "rows")).unwrap();
    assert_eq!(
        plain,
        serde_json::json!({"done": 1, "total": 2, "message": "rows"})
    );
    let rich = Progress::new(1, None, "").with_metadata("file", "a.csv");
    let json = serde_json::to_value(&rich).unwrap();
    assert_eq!(json["metadata"]["file"], "a.csv");
    assert_eq!(serde_json::from_value::<Progress>(json).unwrap(), rich);
    assert_eq!(
        serde_json::from_value::<Progress>(plain).unwrap(),
        Progress::new(1, Some(2), "rows")
    );
}
