//! Operations: an import that reports progress and has a timeout, and a job cancelled by id
//! from another thread through a registry, the way a dashboard would.
//!
//! `cargo run --example operations`

use std::thread;
use std::time::Duration;

use cancelable::{
    CancelKind, CancelReason, CancellationToken, Operation, OperationFilter, OperationStatus,
    Registry, Source,
};
use smol::Timer;

fn main() {
    let registry = Registry::new();
    let server = CancellationToken::new();

    // 1. An import that finishes: progress every 25 rows, a generous timeout.
    let rows: Vec<u32> = (0..100).collect();
    let imported = smol::block_on(
        Operation::new("import")
            .parent(&server)
            .cancel_on(Source::new(
                Timer::after(Duration::from_secs(30)),
                CancelReason::timeout().with_message("import took over 30s"),
            ))
            .metadata("file", "rows.csv")
            .on_progress(|id, p| println!("[{id}] import: {p}"))
            .register(&registry)
            .run(|cx| async move {
                let mut stored = 0u64;
                for (i, _row) in rows.iter().enumerate() {
                    cx.check()?;
                    Timer::after(Duration::from_micros(200)).await; // store(row)
                    stored += 1;
                    if (i + 1) % 25 == 0 {
                        cx.report_progress(stored, Some(rows.len() as u64), "rows");
                    }
                }
                Ok(stored)
            }),
    );
    println!("import: {imported:?}");
    assert_eq!(imported, Ok(100));

    // 2. The same import with a timeout shorter than the work.
    let slow = smol::block_on(
        Operation::new("slow import")
            .cancel_on(Source::new(
                Timer::after(Duration::from_millis(50)),
                CancelReason::timeout().with_message("import took over 50ms"),
            ))
            .register(&registry)
            .run(|cx| async move {
                for i in 0..1_000u64 {
                    Timer::after(Duration::from_millis(5)).await;
                    cx.report_progress(i + 1, Some(1_000), "rows");
                }
                Ok(())
            }),
    );
    println!("slow import: {}", slow.as_ref().unwrap_err());
    assert_eq!(slow.unwrap_err().reason().kind(), CancelKind::Timeout);

    // 3. A background job, cancelled by id from another thread (a dashboard's Cancel button).
    let job = Operation::new("nightly report")
        .id("job-1")
        .parent(&server)
        .register(&registry)
        .run(|cx| async move {
            let mut step = 0;
            loop {
                step += 1;
                cx.report_progress(step, None, "steps");
                Timer::after(Duration::from_millis(2)).await;
            }
        });
    let dashboard = {
        let registry = registry.clone();
        thread::spawn(move || {
            // Wait until the job has made some progress, then cancel it by its id.
            while registry
                .get("job-1")
                .and_then(|job| job.progress)
                .is_none_or(|p| p.done < 5)
            {
                thread::sleep(Duration::from_millis(1));
            }
            for job in registry.list(&OperationFilter::new().active()) {
                println!(
                    "dashboard sees {} ({}) at {}",
                    job.name,
                    job.status,
                    job.progress.unwrap()
                );
            }
            assert!(registry.cancel(
                "job-1",
                CancelReason::manual().with_message("cancel button")
            ));
        })
    };
    let outcome: Result<(), _> = smol::block_on(job);
    dashboard.join().unwrap();
    println!("job: {}", outcome.unwrap_err());

    let job = registry.get("job-1").unwrap();
    assert_eq!(job.status, OperationStatus::Cancelled);
    let stats = registry.stats();
    println!(
        "registry: {} completed, {} cancelled, average completed duration {:?}",
        stats.completed,
        stats.cancelled,
        stats.average_duration.unwrap()
    );
    assert_eq!(
        (stats.active(), stats.completed, stats.cancelled),
        (0, 1, 2)
    );
}
