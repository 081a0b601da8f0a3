//! Ctrl-C (SIGINT) or SIGTERM cancels a tree of work: three services with two workers each.
//! The program reports the reason, waits for every worker to finish its cleanup through a
//! `TaskTracker` (with a grace period), and exits 0.
//!
//! `cargo run --example signals`, then press Ctrl-C. CI sends SIGINT once it reads `ready`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use cancelable::{CancellationToken, TaskTracker};
use smol::Timer;

#[cfg(unix)]
fn main() -> std::io::Result<ExitCode> {
    smol::block_on(async {
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        // SIGINT or SIGTERM cancels the root. Installed before `ready` is printed, so a signal
        // sent on seeing it is never missed.
        let _signals = cancelable_smol::cancel_on_signals(&root, [])?;

        for service in ["http", "jobs", "metrics"] {
            let service_token = root.child_token();
            for worker in 0..2 {
                let token = service_token.child_token();
                let work = tracker.track_future(async move {
                    let mut ticks = 0u64;
                    while token
                        .run_until_cancelled(Timer::after(Duration::from_millis(20)))
                        .await
                        .is_some()
                    {
                        ticks += 1;
                    }
                    // Cleanup after cancelation: what the tracker waits for.
                    Timer::after(Duration::from_millis(10)).await;
                    println!(
                        "{service}/{worker}: stopped after {ticks} ticks ({})",
                        token.reason().unwrap()
                    );
                });
                smol::spawn(work).detach();
            }
        }

        println!(
            "ready: {} workers running, press Ctrl-C to stop",
            tracker.len()
        );
        std::io::stdout().flush()?;

        root.cancelled().await;
        let reason = root.reason().expect("cancelled");
        println!("stopping: {reason}");
        // Already cancelled by the signal: `shutdown` keeps that reason and waits for the work.
        let report =
            cancelable_smol::shutdown(&root, reason, &tracker, Duration::from_secs(5)).await;
        println!("{report}");
        Ok(if report.stopped_in_time() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

#[cfg(not(unix))]
fn main() {
    println!("this example listens for unix signals");
}
