//! The size check's operation case: the token case plus a `LocalOperation` (the form firmware
//! uses; `Operation` costs the same within a few bytes) with a `cancel_on` source and a
//! progress report.
#![no_std]
#![no_main]

use cancelable::{CancelReason, CancellationToken, LocalOperation, OperationStatus, Source};
use cancelable_firmware::{block_on, exit, heap};

#[cortex_m_rt::entry]
fn main() -> ! {
    heap::init();
    let app = CancellationToken::new();
    let child = app.child_token();
    app.cancel();
    block_on(child.cancelled());
    let deadline = CancellationToken::new();
    let run = LocalOperation::new("measure")
        .cancel_on(Source::new(
            deadline.clone().cancelled_owned(),
            CancelReason::timeout(),
        ))
        .run(|cx| async move {
            cx.report_progress(1, Some(2), "steps");
            deadline.cancel();
            core::future::pending::<Result<(), _>>().await
        });
    let cx = run.context().clone();
    let out = block_on(run);
    exit(out.is_err() && cx.status() == OperationStatus::Cancelled && child.is_cancelled())
}
