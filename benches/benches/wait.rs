//! Waiting on a live token: `cancelled()` create + first poll + drop, `on_cancel` register +
//! unregister.
//!
//! Every `select!` against a token builds a `cancelled()` future, polls it (registering the
//! task's waker) and drops it when the other branch wins, so this round trip is the per-request
//! price of being cancelable; the aim is no heap allocation for it. Peers whose wait is a
//! future join (for triggered and stop-token the future is a cloned listener/token).
//! `on_cancel` is a synchronous callback; tokio-util has none (its nearest equivalent is a
//! spawned task awaiting `cancelled()`, which measures a runtime, not the token), so ours is
//! measured alone.

use std::hint::black_box;
use std::pin::pin;

use cancelable_benches::poll_once;
use criterion::{Criterion, criterion_group, criterion_main};

fn cancelled_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("cancelled_create_poll_drop");
    let ours = cancelable::CancellationToken::new();
    g.bench_function("cancelable", |b| {
        b.iter(|| black_box(poll_once(pin!(black_box(&ours).cancelled()))))
    });
    let tokio = tokio_util::sync::CancellationToken::new();
    g.bench_function("tokio-util", |b| {
        b.iter(|| black_box(poll_once(pin!(black_box(&tokio).cancelled()))))
    });
    let shutdown = async_shutdown::ShutdownManager::<()>::new();
    g.bench_function("async-shutdown", |b| {
        b.iter(|| black_box(poll_once(pin!(shutdown.wait_shutdown_triggered()))))
    });
    let (_trigger, listener) = triggered::trigger();
    g.bench_function("triggered", |b| {
        b.iter(|| black_box(poll_once(pin!(listener.clone()))))
    });
    let source = stop_token::StopSource::new();
    let stop = source.token();
    g.bench_function("stop-token", |b| {
        b.iter(|| black_box(poll_once(pin!(stop.clone()))))
    });
    g.finish();
}

fn on_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("on_cancel_register_unregister");
    let ours = cancelable::CancellationToken::new();
    g.bench_function("cancelable", |b| {
        b.iter(|| black_box(black_box(&ours).on_cancel(|_reason| {}).unregister()))
    });
    g.finish();
}

criterion_group!(benches, cancelled_round_trip, on_cancel);
criterion_main!(benches);
