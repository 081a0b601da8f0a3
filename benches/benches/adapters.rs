//! The adapters' `timeout(d, ready)`: what wrapping an already-ready future in a cancelable
//! timeout costs, against each runtime's own way to time out (smol: racing an async-io `Timer`;
//! async-std: `async_std::future::timeout`).
//!
//! The ready case is the common one (most calls beat their deadline) and the one where an
//! adapter's overhead shows: the inner future is polled first, no timer is armed, and the
//! `Timeout` reason is built only when the timer wins, so the adapter should match its runtime.

use std::future::ready;
use std::hint::black_box;
use std::pin::pin;
use std::time::Duration;

use cancelable_benches::poll_once;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_lite::FutureExt as _;

const D: Duration = Duration::from_secs(1);

fn timeout_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("timeout_ready");
    g.bench_function("cancelable-smol", |b| {
        b.iter(|| {
            black_box(poll_once(pin!(cancelable_smol::timeout(
                D,
                ready(black_box(1))
            ))))
        })
    });
    g.bench_function("async-io Timer race", |b| {
        b.iter(|| {
            let raced = async { Some(ready(black_box(1)).await) }.or(async {
                smol::Timer::after(D).await;
                None
            });
            black_box(poll_once(pin!(raced)))
        })
    });
    g.bench_function("cancelable-async-std", |b| {
        b.iter(|| {
            black_box(poll_once(pin!(cancelable_async_std::timeout(
                D,
                ready(black_box(1))
            ))))
        })
    });
    g.bench_function("async_std::future::timeout", |b| {
        b.iter(|| {
            black_box(poll_once(pin!(async_std::future::timeout(
                D,
                ready(black_box(1))
            ))))
        })
    });
    g.finish();
}

criterion_group!(benches, timeout_ready);
criterion_main!(benches);
