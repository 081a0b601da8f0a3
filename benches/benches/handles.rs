//! Handle and node lifetime: `clone`+drop, child create+drop, `any_of` create+drop.
//!
//! Request-scoped code clones tokens and makes short-lived children all the time; the targets are
//! clone+drop ≥3× and child create+drop ≥2× faster than tokio-util (which locks the node for the
//! handle count and locks the parent to link and unlink a child). "1000 children" shows that a
//! busy parent does not make linking slower (tokio-util swaps into a Vec, ours must stay O(1)).
//! Clone+drop is also compared with the peers' cloneable handles. `any_of` (a node with several
//! parents) has no equivalent in tokio-util or the peers, so it is measured alone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn clone_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone_drop");
    let ours = cancelable::CancellationToken::new();
    g.bench_function("cancelable", |b| b.iter(|| drop(black_box(ours.clone()))));
    let tokio = tokio_util::sync::CancellationToken::new();
    g.bench_function("tokio-util", |b| b.iter(|| drop(black_box(tokio.clone()))));
    let (abort, _registration) = futures::future::AbortHandle::new_pair();
    g.bench_function("futures-abort", |b| {
        b.iter(|| drop(black_box(abort.clone())))
    });
    let source = stop_token::StopSource::new();
    let stop = source.token();
    g.bench_function("stop-token", |b| b.iter(|| drop(black_box(stop.clone()))));
    let shutdown = async_shutdown::ShutdownManager::<()>::new();
    g.bench_function("async-shutdown", |b| {
        b.iter(|| drop(black_box(shutdown.clone())))
    });
    let (_trigger, listener) = triggered::trigger();
    g.bench_function("triggered", |b| {
        b.iter(|| drop(black_box(listener.clone())))
    });
    g.finish();
}

fn child_create_drop(c: &mut Criterion) {
    for live in [0usize, 1_000] {
        let mut g = c.benchmark_group(format!("child_create_drop/{live}_live_siblings"));
        let ours = cancelable::CancellationToken::new();
        let _kept: Vec<_> = (0..live).map(|_| ours.child_token()).collect();
        g.bench_function("cancelable", |b| {
            b.iter(|| drop(black_box(ours.child_token())))
        });
        let tokio = tokio_util::sync::CancellationToken::new();
        let _kept: Vec<_> = (0..live).map(|_| tokio.child_token()).collect();
        g.bench_function("tokio-util", |b| {
            b.iter(|| drop(black_box(tokio.child_token())))
        });
        g.finish();
    }
}

fn any_of(c: &mut Criterion) {
    let mut g = c.benchmark_group("any_of_4_parents_create_drop");
    let parents: Vec<_> = (0..4)
        .map(|_| cancelable::CancellationToken::new())
        .collect();
    g.bench_function("cancelable", |b| {
        b.iter(|| drop(black_box(cancelable::CancellationToken::any_of(&parents))))
    });
    g.finish();
}

criterion_group!(benches, clone_drop, child_create_drop, any_of);
criterion_main!(benches);
