//! An `Operation` on the single-threaded executor: a calibration that reports progress every
//! step and is stopped by its timeout source, a timer, before it finishes. Every status change
//! is printed.

use alloc::vec::Vec;
use core::cell::RefCell;

use cancelable::{CancelKind, CancelReason, Operation, OperationStatus, Source};
use cancelable_firmware::checks::Checks;
use cancelable_firmware::{check, println};
use critical_section::Mutex;
use embassy_time::{Duration, Timer};

const NAME: &str = "calibrate";
const STEPS: u64 = 10;
const STEP: Duration = Duration::from_millis(10);
/// Shorter than the `STEPS` steps take, and not on a step's tick.
const TIMEOUT: Duration = Duration::from_millis(45);

static STATUSES: Mutex<RefCell<Vec<OperationStatus>>> = Mutex::new(RefCell::new(Vec::new()));
static REPORTS: Mutex<RefCell<u64>> = Mutex::new(RefCell::new(0));

/// Runs the calibration and checks how it ended.
pub async fn run(checks: &mut Checks) {
    let timeout = CancelReason::timeout().with_message("calibration took over 45 ms");
    let run = Operation::new(NAME)
        .cancel_on(Source::new(Timer::after(TIMEOUT), timeout.clone()))
        .on_status(|snapshot| {
            let (id, status) = (&snapshot.id, snapshot.status);
            match &snapshot.reason {
                Some(reason) => println!("# operation {NAME} {id}: {status} ({reason})"),
                None => println!("# operation {NAME} {id}: {status}"),
            }
            critical_section::with(|cs| STATUSES.borrow_ref_mut(cs).push(status));
        })
        .on_progress(|id, progress| {
            println!("# operation {NAME} {id}: progress {progress}");
            critical_section::with(|cs| *REPORTS.borrow_ref_mut(cs) += 1);
        })
        .run(|cx| async move {
            for step in 1..=STEPS {
                Timer::after(STEP).await;
                cx.report_progress(step, Some(STEPS), "points");
            }
            Ok(())
        });
    let cx = run.context().clone();
    println!("# operation {NAME} {}: {}", cx.id(), cx.status());
    let pending = cx.status() == OperationStatus::Pending;

    let out = run.await;

    let err = out.as_ref().err();
    check!(
        checks,
        err.is_some_and(|e| e.reason() == &timeout) && cx.status() == OperationStatus::Cancelled,
        "Operation: ended cancelled by its timeout source with \"{timeout}\""
    );
    let statuses = critical_section::with(|cs| STATUSES.borrow(cs).borrow().clone());
    check!(
        checks,
        pending && statuses == [OperationStatus::Running, OperationStatus::Cancelled],
        "Operation: status went pending -> running -> cancelled, each change reported once"
    );
    let snapshot = cx.snapshot();
    let done = snapshot.progress.as_ref().map_or(0, |p| p.done);
    let reports = critical_section::with(|cs| *REPORTS.borrow(cs).borrow());
    check!(
        checks,
        (1..STEPS).contains(&done)
            && reports == done
            && snapshot
                .reason
                .as_ref()
                .is_some_and(|r| r.kind() == CancelKind::Timeout),
        "Operation: {done} of {STEPS} steps reported before the timeout, the snapshot keeps the reason"
    );
}
