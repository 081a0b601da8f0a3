//! `is_cancelled` — the check every loop iteration and every poll makes, so it must be free.
//!
//! The target is ≥10× faster than tokio-util, whose check locks the node's mutex. The three
//! groups show why that matters: alone (uncontended lock vs one atomic load), with a second
//! thread checking the same token (the mutex's cache line bounces, an atomic load shares it), and
//! while another thread creates and drops children of the token (tokio-util locks the parent for
//! both; ours must not make the checker wait).
//! Peers with a flag check (futures' `AbortHandle`, async-shutdown, triggered) join the first
//! group; stop-token has no check at all (its token is only a future).

use std::hint::black_box;

use cancelable_benches::Background;
use criterion::{Criterion, criterion_group, criterion_main};

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_cancelled/one_thread");
    let ours = cancelable::CancellationToken::new();
    g.bench_function("cancelable", |b| b.iter(|| black_box(&ours).is_cancelled()));
    let tokio = tokio_util::sync::CancellationToken::new();
    g.bench_function("tokio-util", |b| {
        b.iter(|| black_box(&tokio).is_cancelled())
    });
    let (abort, _registration) = futures::future::AbortHandle::new_pair();
    g.bench_function("futures-abort", |b| {
        b.iter(|| black_box(&abort).is_aborted())
    });
    let shutdown = async_shutdown::ShutdownManager::<()>::new();
    g.bench_function("async-shutdown", |b| {
        b.iter(|| black_box(&shutdown).is_shutdown_triggered())
    });
    let (_trigger, listener) = triggered::trigger();
    g.bench_function("triggered", |b| {
        b.iter(|| black_box(&listener).is_triggered())
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_cancelled/two_threads");
    let ours = cancelable::CancellationToken::new();
    let other = ours.clone();
    let _bg = Background::spawn(move || {
        black_box(other.is_cancelled());
    });
    g.bench_function("cancelable", |b| b.iter(|| black_box(&ours).is_cancelled()));
    drop(_bg);
    let tokio = tokio_util::sync::CancellationToken::new();
    let other = tokio.clone();
    let _bg = Background::spawn(move || {
        black_box(other.is_cancelled());
    });
    g.bench_function("tokio-util", |b| {
        b.iter(|| black_box(&tokio).is_cancelled())
    });
    g.finish();
}

fn child_churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_cancelled/while_children_churn");
    let ours = cancelable::CancellationToken::new();
    let parent = ours.clone();
    let _bg = Background::spawn(move || drop(black_box(parent.child_token())));
    g.bench_function("cancelable", |b| b.iter(|| black_box(&ours).is_cancelled()));
    drop(_bg);
    let tokio = tokio_util::sync::CancellationToken::new();
    let parent = tokio.clone();
    let _bg = Background::spawn(move || drop(black_box(parent.child_token())));
    g.bench_function("tokio-util", |b| {
        b.iter(|| black_box(&tokio).is_cancelled())
    });
    g.finish();
}

criterion_group!(benches, one_thread, two_threads, child_churn);
criterion_main!(benches);
