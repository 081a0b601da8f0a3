//! Shields: a flush that must finish even when the operation times out, and what code inside
//! and after the shield sees.
//!
//! `cargo run --example shield`

use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancelReason, Operation, Source};
use smol::Timer;

fn main() {
    let started = Instant::now();
    let out: Result<(), _> = smol::block_on(
        Operation::new("save document")
            .cancel_on(Source::new(
                Timer::after(Duration::from_millis(100)),
                CancelReason::timeout().with_message("save took over 100ms"),
            ))
            .run(|cx| async move {
                println!("writing the document");
                let op = cx.clone();
                cx.shield_with(|flush| async move {
                    println!("flushing (shielded) ...");
                    Timer::after(Duration::from_millis(200)).await;
                    // The operation timed out meanwhile; the shield's own token did not.
                    assert!(op.is_cancelled());
                    assert!(!flush.is_cancelled());
                    println!("flushed after {:?}", started.elapsed());
                })
                .await;
                unreachable!("the timeout takes effect as soon as the shield ends");
            }),
    );
    let err = out.unwrap_err();
    println!("save: {err}");
    assert_eq!(err.reason().kind(), CancelKind::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(200));
}
