//! A `LocalOperation` on the single-threaded executor: a calibration that reports progress
//! every step and is stopped by its timeout source, a timer, before it finishes. Its source,
//! body and callbacks borrow the task's own `Cell`s and `RefCell`s: none of them is `Send` or
//! `'static`, as embassy tasks need not be. Every status change is printed.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use cancelable::{CancelKind, CancelReason, LocalOperation, OperationStatus};
use cancelable_firmware::checks::Checks;
use cancelable_firmware::{check, println};
use embassy_time::{Duration, Timer};

const NAME: &str = "calibrate";
const STEPS: u64 = 10;
const STEP: Duration = Duration::from_millis(10);
/// Shorter than the `STEPS` steps take, and not on a step's tick.
const TIMEOUT: Duration = Duration::from_millis(45);

/// Runs the calibration and checks how it ended.
pub async fn run(checks: &mut Checks) {
    let timeout = CancelReason::timeout().with_message("calibration took over 45 ms");
    // What the callbacks saw and what the body measured, borrowed by all three.
    let statuses = RefCell::new(Vec::new());
    let reports = Cell::new(0_u64);
    let points = Cell::new(0_u64);

    let run = LocalOperation::new(NAME)
        .cancel_on(async {
            Timer::after(TIMEOUT).await;
            timeout.clone()
        })
        .on_status(|snapshot| {
            let (id, status) = (&snapshot.id, snapshot.status);
            match &snapshot.reason {
                Some(reason) => println!("# operation {NAME} {id}: {status} ({reason})"),
                None => println!("# operation {NAME} {id}: {status}"),
            }
            statuses.borrow_mut().push(status);
        })
        .on_progress(|id, progress| {
            println!("# operation {NAME} {id}: progress {progress}");
            reports.set(reports.get() + 1);
        })
        .run(|cx| {
            let points = &points;
            async move {
                for step in 1..=STEPS {
                    Timer::after(STEP).await;
                    points.set(step);
                    cx.report_progress(step, Some(STEPS), "points");
                }
                Ok(())
            }
        });
    let cx = run.context().clone();
    println!("# operation {NAME} {}: {}", cx.id(), cx.status());
    let pending = cx.status() == OperationStatus::Pending;

    let out = run.await;

    let err = out.as_ref().err();
    check!(
        checks,
        err.is_some_and(|e| e.reason() == &timeout) && cx.status() == OperationStatus::Cancelled,
        "LocalOperation: ended cancelled by its timeout source with \"{timeout}\""
    );
    check!(
        checks,
        pending && *statuses.borrow() == [OperationStatus::Running, OperationStatus::Cancelled],
        "LocalOperation: status went pending -> running -> cancelled, each change reported once"
    );
    let snapshot = cx.snapshot();
    let done = snapshot.progress.as_ref().map_or(0, |p| p.done);
    check!(
        checks,
        (1..STEPS).contains(&done)
            && reports.get() == done
            && points.get() == done
            && snapshot
                .reason
                .as_ref()
                .is_some_and(|r| r.kind() == CancelKind::Timeout),
        "LocalOperation: {done} of {STEPS} steps reported before the timeout, the snapshot keeps the reason"
    );
}
