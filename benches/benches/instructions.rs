//! Instruction counts per operation under callgrind: the repeatable side of the report.
//!
//! Wall-clock times move with the machine's load and with the CPU (an uncontended atomic
//! read-modify-write costs about 2 ns on one x86 CPU and 6 ns on another); instruction counts
//! do not. `benches/callgrind` runs this binary under `valgrind --tool=callgrind` twice per row,
//! with `N` and `2N` operations, counting only inside [`region`], and prints
//! `(I(2N) - I(N)) / N`: the marginal instructions of one operation, without setup and
//! first-call effects.
//!
//! Run alone it prints the rows it knows: `cargo bench -p cancelable-benches --bench
//! instructions -- --list`. One measurement: `... -- ROW N`.
//!
//! The `http_*` rows are whole requests: `/health` answered by a server to in-process clients
//! over loopback, `N` requests in all, split over the row's connections, after a warm-up. Part
//! of their work runs on other threads (the reactor's, axum's runtime), so the script counts
//! the whole process for them, and `I(2N) - I(N)` still leaves one request's instructions,
//! client included (the same client for every server).

#[path = "support/http.rs"]
mod http;

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cancelable_benches::poll_once;

type Ours = cancelable::CancellationToken;
type Tokio = tokio_util::sync::CancellationToken;

/// The only code callgrind counts (`--toggle-collect=*instructions::region*`).
#[inline(never)]
fn region<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `n` handle clones and drops.
macro_rules! clone_drop {
    ($t:expr, $n:expr) => {{
        let t = $t;
        region(|| (0..$n).for_each(|_| drop(black_box(t.clone()))));
    }};
}

/// `n` child creations and drops under a parent with `live` other children.
macro_rules! child_churn {
    ($t:ty, $live:expr, $n:expr) => {{
        let t = <$t>::new();
        let kept: Vec<_> = (0..$live).map(|_| t.child_token()).collect();
        region(|| (0..$n).for_each(|_| drop(black_box(t.child_token()))));
        drop(kept);
    }};
}

/// One `cancel` of a root with `n` children.
macro_rules! cancel_wide {
    ($t:ty, $n:expr) => {{
        let root = <$t>::new();
        let kids: Vec<_> = (0..$n).map(|_| root.child_token()).collect();
        region(|| root.cancel());
        drop(kids);
    }};
}

/// One `cancel` of the top of a chain `n` deep.
macro_rules! cancel_deep {
    ($t:ty, $n:expr) => {{
        let mut chain = vec![<$t>::new()];
        for _ in 1..$n {
            let next = chain.last().unwrap().child_token();
            chain.push(next);
        }
        region(|| chain[0].cancel());
    }};
}

/// One `cancel` of a token with `n` pending `cancelled()` futures.
macro_rules! cancel_waiters {
    ($t:ty, $n:expr) => {{
        let t = <$t>::new();
        let mut waiters: Vec<_> = (0..$n).map(|_| Box::pin(t.cancelled())).collect();
        for w in &mut waiters {
            assert!(poll_once(w.as_mut()).is_pending());
        }
        region(|| t.cancel());
    }};
}

/// `n` `cancelled()` futures created, polled once and dropped.
macro_rules! cancelled_round_trip {
    ($t:ty, $n:expr) => {{
        let t = <$t>::new();
        region(|| (0..$n).for_each(|_| _ = black_box(poll_once(pin!(black_box(&t).cancelled())))));
    }};
}

/// `n` checks.
macro_rules! is_cancelled {
    ($t:expr, $n:expr) => {{
        let t = $t;
        region(|| (0..$n).for_each(|_| _ = black_box(black_box(&t).is_cancelled())));
    }};
}

const ROWS: &[&str] = &[
    "is_cancelled/ours",
    "is_cancelled/tokio",
    "is_cancelled/atomic_bool",
    "clone_drop/ours",
    "clone_drop/tokio",
    "clone_drop/arc",
    "child_churn_empty/ours",
    "child_churn_empty/tokio",
    "child_churn_busy/ours",
    "child_churn_busy/tokio",
    "cancel_wide/ours",
    "cancel_wide/tokio",
    "cancel_deep/ours",
    "cancel_deep/tokio",
    "cancel_waiters/ours",
    "cancel_waiters/tokio",
    "cancelled_round_trip/ours",
    "cancelled_round_trip/tokio",
    "on_cancel_unregister/ours",
    "any_of_4/ours",
    "operation_run/ours",
    "operation_run_registered/ours",
    "operation_run/bare",
    "http_1/plain_hyper",
    "http_1/layer",
    "http_1/router",
    "http_1/axum",
    "http_64/plain_hyper",
    "http_64/layer",
    "http_64/router",
    "http_64/axum",
];

/// The parent of the busy churn rows keeps this many children alive.
const LIVE_SIBLINGS: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // `cargo bench` without `--bench instructions` runs every bench binary with its own filter:
    // this one measures only when asked for a row.
    let (row, n) = match words.as_slice() {
        [row, n] if ROWS.contains(row) => (*row, n.parse::<usize>().expect("N is a count")),
        _ => {
            if args.iter().any(|a| a == "--list") {
                ROWS.iter().for_each(|row| println!("{row}"));
            }
            return;
        }
    };
    match row {
        "is_cancelled/ours" => is_cancelled!(Ours::new(), n),
        "is_cancelled/tokio" => is_cancelled!(Tokio::new(), n),
        "is_cancelled/atomic_bool" => {
            let flag = AtomicBool::new(false);
            region(|| (0..n).for_each(|_| _ = black_box(black_box(&flag).load(Ordering::Acquire))));
        }
        "clone_drop/ours" => clone_drop!(Ours::new(), n),
        "clone_drop/tokio" => clone_drop!(Tokio::new(), n),
        "clone_drop/arc" => clone_drop!(Arc::new(AtomicBool::new(false)), n),
        "child_churn_empty/ours" => child_churn!(Ours, 0, n),
        "child_churn_empty/tokio" => child_churn!(Tokio, 0, n),
        "child_churn_busy/ours" => child_churn!(Ours, LIVE_SIBLINGS, n),
        "child_churn_busy/tokio" => child_churn!(Tokio, LIVE_SIBLINGS, n),
        "cancel_wide/ours" => cancel_wide!(Ours, n),
        "cancel_wide/tokio" => cancel_wide!(Tokio, n),
        "cancel_deep/ours" => cancel_deep!(Ours, n),
        "cancel_deep/tokio" => cancel_deep!(Tokio, n),
        "cancel_waiters/ours" => cancel_waiters!(Ours, n),
        "cancel_waiters/tokio" => cancel_waiters!(Tokio, n),
        "cancelled_round_trip/ours" => cancelled_round_trip!(Ours, n),
        "cancelled_round_trip/tokio" => cancelled_round_trip!(Tokio, n),
        "on_cancel_unregister/ours" => {
            let t = Ours::new();
            region(|| (0..n).for_each(|_| _ = black_box(t.on_cancel(|_| {}).unregister())));
        }
        "any_of_4/ours" => {
            let parents: Vec<_> = (0..4).map(|_| Ours::new()).collect();
            region(|| (0..n).for_each(|_| drop(black_box(Ours::any_of(&parents)))));
        }
        "operation_run/ours" => {
            let parent = Ours::new();
            region(|| {
                (0..n).for_each(|_| {
                    let run = cancelable::Operation::new("bench")
                        .parent(&parent)
                        .run(|_| async { Ok(black_box(1)) });
                    _ = black_box(poll_once(pin!(run)));
                })
            });
        }
        "operation_run_registered/ours" => {
            let parent = Ours::new();
            let registry = cancelable::Registry::with_history(100);
            region(|| {
                (0..n).for_each(|_| {
                    let run = cancelable::Operation::new("bench")
                        .parent(&parent)
                        .register(&registry)
                        .run(|_| async { Ok(black_box(1)) });
                    _ = black_box(poll_once(pin!(run)));
                })
            });
        }
        "operation_run/bare" => {
            let parent = Ours::new();
            region(|| {
                (0..n).for_each(|_| {
                    let fut = cancelable::FutureExt::cancelable(async { black_box(1) }, &parent);
                    _ = black_box(poll_once(pin!(fut)));
                })
            });
        }
        _ if row.starts_with("http_") => http_row(row, n),
        _ => unreachable!("every row of ROWS has an arm"),
    }
}

/// `http_{connections}/{server}`: `n` requests in all, after the warm-up.
fn http_row(row: &str, n: usize) {
    let (connections, server) = row["http_".len()..].split_once('/').expect("http_C/SERVER");
    let variant = match server {
        "plain_hyper" => http::Variant::PlainHyper,
        "layer" => http::Variant::Layer,
        "router" => http::Variant::Router,
        "axum" => http::Variant::Axum,
        _ => unreachable!("every http row names a server"),
    };
    let connections: usize = connections.parse().expect("a connection count");
    let mut load = http::Load::new(variant, connections);
    load.run(n / connections);
}
