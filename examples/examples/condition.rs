//! Cancel work when a condition becomes true: a disk-space watchdog, here a counter that a
//! "writer" fills. The condition is checked at once and then at an interval; a panicking check is
//! reported and checking goes on.
//!
//! `cargo run --example condition`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cancelable::{CancelKind, CancellationToken};
use smol::Timer;

const QUOTA: usize = 5;

fn main() {
    smol::block_on(async {
        let written = Arc::new(AtomicUsize::new(0));
        let job = CancellationToken::new();

        // The watchdog: fires once the quota is used up. Its first check panics (say, a metric
        // not registered yet): the panic is reported on stderr and the next check runs.
        let checks = AtomicUsize::new(0);
        let watchdog = {
            let written = written.clone();
            cancelable_smol::sources::condition(
                move || {
                    if checks.fetch_add(1, Ordering::Relaxed) == 0 {
                        panic!("disk metrics are not ready yet");
                    }
                    written.load(Ordering::Relaxed) >= QUOTA
                },
                Duration::from_millis(10),
            )
        };
        let watching = {
            let job = job.clone();
            smol::spawn(async move {
                watchdog.future.await;
                job.cancel_with(watchdog.reason);
            })
        };

        // The writer: one block every 5 ms until the watchdog stops it.
        let writer = {
            let written = written.clone();
            cancelable_smol::spawn(&job, async move {
                loop {
                    Timer::after(Duration::from_millis(5)).await;
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let stopped: Result<(), _> = writer.await;
        watching.await;
        let err = stopped.unwrap_err();
        println!(
            "writer stopped after {} blocks: {err}",
            written.load(Ordering::Relaxed)
        );
        assert_eq!(err.reason().kind(), CancelKind::Condition);
        assert!(written.load(Ordering::Relaxed) >= QUOTA);
    });
}
