//! What tracking costs: `Operation::run` around an empty body against a bare
//! `.cancelable(&token)`, both created, polled to completion and dropped per iteration.
//!
//! The operation allocates its record and a token of its own (a child of the parent), reads
//! the monotonic clock when it starts and when it ends, and links a frame for `current()` around
//! the poll; the bare wrapper checks the token and polls. Registering in a `Registry` adds an
//! id, an insert into one shard of the registry and, at the end, a copy of the record into the
//! history (no allocation once the history is full).

use std::hint::black_box;
use std::pin::pin;

use cancelable::{CancellationToken, FutureExt, Operation, Registry};
use cancelable_benches::poll_once;
use criterion::{Criterion, criterion_group, criterion_main};

fn run_empty_body(c: &mut Criterion) {
    let mut g = c.benchmark_group("operation_run_empty_body");
    let parent = CancellationToken::new();
    g.bench_function("bare .cancelable(&token)", |b| {
        b.iter(|| black_box(poll_once(pin!(async { black_box(1) }.cancelable(&parent)))))
    });
    g.bench_function("Operation::run", |b| {
        b.iter(|| {
            let run = Operation::new("bench")
                .parent(&parent)
                .run(|_| async { Ok(black_box(1)) });
            black_box(poll_once(pin!(run)))
        })
    });
    let registry = Registry::with_history(100);
    g.bench_function("Operation::run + register", |b| {
        b.iter(|| {
            let run = Operation::new("bench")
                .parent(&parent)
                .register(&registry)
                .run(|_| async { Ok(black_box(1)) });
            black_box(poll_once(pin!(run)))
        })
    });
    g.finish();
}

criterion_group!(benches, run_empty_body);
criterion_main!(benches);
