//! `cancel` cost per node reached: a 100,000-wide tree, a 10,000-deep chain, 10,000 waiters.
//!
//! Cancelation is the rare, heavy operation: the target is the tree and the chain ≥2× faster per
//! node than tokio-util (which locks every node and each parent-child pair on the way) and
//! waking 10,000 parked `cancelled()` futures no slower. Only the `cancel` call is timed; building
//! the tree and dropping it afterwards happen outside the clock (`iter_custom`). Waiters are
//! futures pinned and polled once with a no-op waker, so the time is registration bookkeeping
//! plus `wake`, not a scheduler. Peers that can park many waiters on one signal (stop-token,
//! async-shutdown, triggered) join the waiter group; none of them has child tokens.

use std::hint::black_box;
use std::time::Duration;

use cancelable_benches::{poll_once, time};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

const WIDE: usize = 100_000;
const DEEP: usize = 10_000;
const WAITERS: usize = 10_000;

/// Times only `cancel(&state)`, on a fresh `state` from `build()` each iteration.
fn bench<S>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    build: impl Fn() -> S,
    cancel: impl Fn(&S),
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let state = build();
                    let dt = time(|| cancel(black_box(&state)));
                    drop(state); // dropping the tree is not part of the measurement
                    dt
                })
                .sum()
        })
    });
}

/// A group reporting time per node (or waiter); few, short samples since each builds a big tree.
fn group<'a>(c: &'a mut Criterion, name: &str, elements: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

/// Root plus `WIDE` children, all handles kept alive.
macro_rules! wide {
    ($token:ty) => {
        || {
            let root = <$token>::new();
            let kids: Vec<_> = (0..WIDE).map(|_| root.child_token()).collect();
            (root, kids)
        }
    };
}

/// A chain `DEEP` nodes long (each the child of the previous), all handles kept alive.
macro_rules! deep {
    ($token:ty) => {
        || {
            let mut chain = vec![<$token>::new()];
            for _ in 1..DEEP {
                let next = chain.last().unwrap().child_token();
                chain.push(next);
            }
            chain
        }
    };
}

fn wide_tree(c: &mut Criterion) {
    let mut g = group(c, "cancel/100k_wide_tree", WIDE);
    bench(
        &mut g,
        "cancelable",
        wide!(cancelable::CancellationToken),
        |(root, _)| root.cancel(),
    );
    bench(
        &mut g,
        "tokio-util",
        wide!(tokio_util::sync::CancellationToken),
        |(root, _)| root.cancel(),
    );
    g.finish();
}

fn deep_chain(c: &mut Criterion) {
    let mut g = group(c, "cancel/10k_deep_chain", DEEP);
    bench(
        &mut g,
        "cancelable",
        deep!(cancelable::CancellationToken),
        |chain| chain[0].cancel(),
    );
    bench(
        &mut g,
        "tokio-util",
        deep!(tokio_util::sync::CancellationToken),
        |chain| chain[0].cancel(),
    );
    g.finish();
}

/// `WAITERS` futures from `$wait`, each boxed (so it stays pinned) and polled once.
macro_rules! parked {
    ($source:expr, |$s:ident| $wait:expr) => {
        || {
            let $s = $source;
            let mut waiters: Vec<_> = (0..WAITERS).map(|_| Box::pin($wait)).collect();
            for w in &mut waiters {
                assert!(poll_once(w.as_mut()).is_pending());
            }
            ($s, waiters)
        }
    };
}

fn waiters(c: &mut Criterion) {
    let mut g = group(c, "cancel/10k_waiters", WAITERS);
    bench(
        &mut g,
        "cancelable",
        parked!(cancelable::CancellationToken::new(), |t| t
            .clone()
            .cancelled_owned()),
        |(t, _)| t.cancel(),
    );
    bench(
        &mut g,
        "tokio-util",
        parked!(tokio_util::sync::CancellationToken::new(), |t| t
            .clone()
            .cancelled_owned()),
        |(t, _)| t.cancel(),
    );
    bench(
        &mut g,
        "async-shutdown",
        parked!(async_shutdown::ShutdownManager::<()>::new(), |m| m
            .wait_shutdown_triggered()),
        |(m, _)| m.trigger_shutdown(()).unwrap(),
    );
    bench(
        &mut g,
        "triggered",
        parked!(triggered::trigger(), |p| p.1.clone()),
        |((trigger, _), _)| trigger.trigger(),
    );
    // stop-token cancels by dropping the source, which `bench` cannot time; time it by hand.
    g.bench_function("stop-token", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (source, waiters) = parked!(Some(stop_token::StopSource::new()), |s| {
                        s.as_ref().unwrap().token()
                    })();
                    let mut source = source;
                    let dt = time(|| drop(source.take()));
                    drop(waiters);
                    dt
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, wide_tree, deep_chain, waiters);
criterion_main!(benches);
