//! Timeouts are cancelations with a reason: `timeout` and `timeout_at` give `Err(Cancelled)`
//! with a `Timeout` reason that says which deadline passed, and a spawned task stops with its
//! token's reason.
//!
//! `cargo run --example timeout`

use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancellationToken};
use smol::Timer;

fn main() {
    smol::block_on(async {
        // A quick reply beats its deadline.
        let reply = cancelable_smol::timeout(Duration::from_secs(1), async { "pong" }).await;
        println!("quick call: {reply:?}");
        assert_eq!(reply, Ok("pong"));

        // A slow one is cancelled, and the error says why.
        let slow = async {
            Timer::after(Duration::from_secs(10)).await;
            "too late"
        };
        let err = cancelable_smol::timeout(Duration::from_millis(50), slow)
            .await
            .unwrap_err();
        println!("slow call: {err}");
        assert_eq!(err.reason().kind(), CancelKind::Timeout);

        // A deadline shared by several steps of one request.
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut steps = 0;
        let outcome = loop {
            let step = Timer::after(Duration::from_millis(30));
            match cancelable_smol::timeout_at(deadline, step).await {
                Ok(_) => steps += 1,
                Err(err) => break err,
            }
        };
        println!("request: {steps} steps done, then {outcome}");
        assert!((1..=4).contains(&steps));

        // Work spawned under a token stops with the token's reason.
        let request = CancellationToken::new();
        let task = cancelable_smol::spawn(&request, smol::future::pending::<()>());
        request.cancel_with(cancelable::CancelReason::disconnected().with_message("client left"));
        let err = task.await.unwrap_err();
        println!("spawned task: {err}");
        assert_eq!(err.reason().kind(), CancelKind::Disconnected);
    });
}
