//! The short side-by-side report of the performance targets: one Markdown table, `cancelable` vs tokio-util.
//!
//! Run it with `benches/report` (`--quick`, `--smoke` or `REPORT_QUICK=1` for a smoke run;
//! `--runs N` for N runs in separate processes, printed as ranges). The criterion benches next to
//! this file measure the same operations more carefully and with more peers; this binary exists
//! so the README's table and a CI smoke run take seconds, with simple `Instant` loops (median of
//! several runs of a few ms each, ours and the peer's runs alternating) and a counting allocator
//! for the memory rows. It asserts no threshold: the "met?" column reports, CI does not gate on
//! it. Run by `cargo test --benches` (no `--bench` argument) it does the quick version.
//!
//! The output starts with the CPU model: ratios against tokio-util differ between CPUs (see
//! the README), so a table without it says little. Two floor rows put ours next to the
//! primitive it cannot beat: an `AtomicBool` load for `is_cancelled`, an `Arc` clone + drop for
//! `clone` + drop.

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::time::Duration;

#[path = "support/http.rs"]
mod http_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cancelable_benches::{
    Background, CountingAlloc, Heap, Timer, count_heap, cpu_model, machine, poll_once, time, today,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const WIDE: usize = 100_000;
const DEEP: usize = 10_000;
const WAITERS: usize = 10_000;
const LIVE_SIBLINGS: usize = 1_000;
/// Objects per memory measurement.
const MEM_N: usize = 10_000;

type Ours = cancelable::CancellationToken;
type Tokio = tokio_util::sync::CancellationToken;

/// What the performance targets ask of a row.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// tokio-util time / ours ≥ x.
    Faster(f64),
    /// Ours uses at most this many heap bytes.
    MaxBytes(f64),
    /// Ours allocates nothing (an aim, not a bar).
    NoAlloc,
    /// Ours takes at most x times the peer column's time (a wrapper's cost against what it
    /// wraps); the ratio column then shows ours / peer.
    AtMostTimes(f64),
    /// No target.
    None,
}

#[derive(Clone, Copy)]
enum Value {
    Ns(f64),
    Heap(Heap),
    /// Inline size of a value, in bytes.
    Size(usize),
}

struct Row {
    op: &'static str,
    ours: Value,
    tokio: Option<Value>,
    target: Target,
}

/// Asks a child process for one run's rows (`--runs N`); prints them as tab-separated lines.
const EMIT_ROWS: &str = "--emit-rows";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => {
            let n = args
                .get(i + 1)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .expect("--runs needs a positive count");
            args.drain(i..=i + 1);
            n
        }
        None => 1,
    };
    // `cargo bench -- FILTER` runs every bench binary: stay quiet unless the filter matches us.
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.parse::<usize>().is_err())
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "report".contains(f.as_str())) {
        return;
    }
    let quick = std::env::var_os("REPORT_QUICK").is_some_and(|v| v != "0")
        || args.iter().any(|a| a == "--quick" || a == "--smoke")
        || !args.iter().any(|a| a == "--bench"); // `cargo test` runs benches without `--bench`
    if args.iter().any(|a| a == EMIT_ROWS) {
        emit_rows(&measure(quick));
    } else if runs == 1 {
        print_report(&[measure(quick)], quick);
    } else {
        // Separate processes: each run gets its own heap layout and its own luck with the
        // scheduler, which is what a range should cover.
        let exe = std::env::current_exe().expect("the report's own binary");
        let all: Vec<Vec<Row>> = (1..=runs)
            .map(|run| {
                eprintln!("report: run {run} of {runs}");
                let out = std::process::Command::new(&exe)
                    .args(&args)
                    .arg(EMIT_ROWS)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .expect("a run of the report");
                assert!(out.status.success(), "run {run} failed: {}", out.status);
                parse_rows(&String::from_utf8_lossy(&out.stdout))
            })
            .collect();
        print_report(&all, quick);
    }
}

/// One run of every row.
fn measure(quick: bool) -> Vec<Row> {
    let timer = if quick {
        Timer {
            runs: 3,
            run_time: Duration::from_millis(1),
        }
    } else {
        Timer {
            runs: 21,
            run_time: Duration::from_millis(10),
        }
    };

    let mut rows = Vec::new();
    let mut push = |op, (ours, tokio): (f64, f64), target| {
        rows.push(Row {
            op,
            ours: Value::Ns(ours),
            tokio: Some(Value::Ns(tokio)),
            target,
        });
    };

    // Single-thread rows: `$op!(Type)` builds a token and returns the batch closure `|k|` (or,
    // for `cancel`, a closure returning the time of one cancelation); ours and tokio-util's runs
    // alternate so both see the same machine load.
    macro_rules! pair {
        ($op:ident) => {
            timer.ns_per_op_pair($op!(Ours), $op!(Tokio))
        };
        ($op:ident, $elements:expr) => {
            timer.ns_per_element_pair($elements, $op!(Ours), $op!(Tokio))
        };
    }
    // Rows with a second thread: run one after the other, never two background threads at once.
    macro_rules! sequential {
        ($op:ident) => {
            ($op!(Ours), $op!(Tokio))
        };
    }

    // Ours, tokio-util's and the floor's runs alternate; both rows show the same value of ours.
    macro_rules! with_floor {
        ($op:ident, $floor:expr, $row:expr, $target:expr, $floor_row:expr, $floor_target:expr) => {{
            let [ours, tokio, floor] = timer.ns_per_op_all([
                Box::new($op!(Ours)) as Box<dyn FnMut(u64)>,
                Box::new($op!(Tokio)),
                Box::new($floor),
            ]);
            push($row, (ours, tokio), $target);
            push($floor_row, (ours, floor), $floor_target);
        }};
    }

    macro_rules! is_cancelled {
        ($t:ty) => {{
            let t = <$t>::new();
            move |k: u64| (0..k).for_each(|_| _ = black_box(black_box(&t).is_cancelled()))
        }};
    }
    let flag = AtomicBool::new(false);
    with_floor!(
        is_cancelled,
        |k: u64| (0..k).for_each(|_| _ = black_box(black_box(&flag).load(Ordering::Acquire))),
        "`is_cancelled`, one thread",
        // The bar on one thread is the floor below; the 10× bar is for a shared token.
        Target::None,
        "`is_cancelled` vs an `AtomicBool` load, the floor (peer column)",
        Target::None
    );

    macro_rules! is_cancelled_contended {
        ($t:ty) => {{
            let t = <$t>::new();
            let other = t.clone();
            let bg = Background::spawn(move || _ = black_box(other.is_cancelled()));
            timer.ns_per_op_contended(&bg, |k| {
                (0..k).for_each(|_| _ = black_box(black_box(&t).is_cancelled()))
            })
        }};
    }
    push(
        "`is_cancelled`, 2 threads on one token",
        sequential!(is_cancelled_contended),
        Target::Faster(10.0),
    );

    macro_rules! is_cancelled_churn {
        ($t:ty) => {{
            let t = <$t>::new();
            let parent = t.clone();
            let bg = Background::spawn(move || drop(black_box(parent.child_token())));
            timer.ns_per_op_contended(&bg, |k| {
                (0..k).for_each(|_| _ = black_box(black_box(&t).is_cancelled()))
            })
        }};
    }
    push(
        "`is_cancelled` while another thread churns children",
        sequential!(is_cancelled_churn),
        Target::Faster(10.0),
    );

    macro_rules! clone_drop {
        ($t:ty) => {{
            let t = <$t>::new();
            move |k: u64| (0..k).for_each(|_| drop(black_box(t.clone())))
        }};
    }
    let arc = Arc::new(AtomicBool::new(false));
    with_floor!(
        clone_drop,
        move |k: u64| (0..k).for_each(|_| drop(black_box(arc.clone()))),
        "`clone` + drop",
        Target::Faster(3.0),
        "`clone` + drop vs an `Arc` clone + drop, the floor (peer column)",
        // At most 1.2× the floor.
        Target::Faster(1.0 / 1.2)
    );

    macro_rules! child_create_drop {
        ($t:ty, $live:expr) => {{
            let t = <$t>::new();
            let kept: Vec<_> = (0..$live).map(|_| t.child_token()).collect();
            move |k: u64| {
                let _alive = &kept;
                (0..k).for_each(|_| drop(black_box(t.child_token())))
            }
        }};
        ($t:ty) => {
            child_create_drop!($t, 0)
        };
    }
    push(
        "child create + drop, empty parent",
        pair!(child_create_drop),
        Target::Faster(2.0),
    );
    macro_rules! child_create_drop_busy {
        ($t:ty) => {
            child_create_drop!($t, LIVE_SIBLINGS)
        };
    }
    push(
        "child create + drop, parent with 1,000 live children",
        pair!(child_create_drop_busy),
        Target::Faster(2.0),
    );

    macro_rules! cancel_wide {
        ($t:ty) => {
            || {
                let root = <$t>::new();
                let kids: Vec<_> = (0..WIDE).map(|_| root.child_token()).collect();
                let dt = time(|| root.cancel());
                drop(kids);
                dt
            }
        };
    }
    push(
        "`cancel` 100,000-wide tree, per node",
        pair!(cancel_wide, WIDE),
        Target::Faster(2.0),
    );

    macro_rules! cancel_deep {
        ($t:ty) => {
            || {
                let mut chain = vec![<$t>::new()];
                for _ in 1..DEEP {
                    let next = chain.last().unwrap().child_token();
                    chain.push(next);
                }
                time(|| chain[0].cancel())
            }
        };
    }
    push(
        "`cancel` 10,000-deep chain, per node",
        pair!(cancel_deep, DEEP),
        Target::Faster(2.0),
    );

    macro_rules! cancel_waiters {
        ($t:ty) => {
            || {
                let t = <$t>::new();
                let mut waiters: Vec<_> = (0..WAITERS).map(|_| Box::pin(t.cancelled())).collect();
                waiters
                    .iter_mut()
                    .for_each(|w| assert!(poll_once(w.as_mut()).is_pending()));
                time(|| t.cancel())
            }
        };
    }
    push(
        "`cancel` with 10,000 pending waiters, per waiter",
        pair!(cancel_waiters, WAITERS),
        Target::Faster(1.0),
    );

    macro_rules! cancelled_round_trip {
        ($t:ty) => {{
            let t = <$t>::new();
            move |k: u64| {
                (0..k).for_each(|_| _ = black_box(poll_once(pin!(black_box(&t).cancelled()))))
            }
        }};
    }
    push(
        "`cancelled()` create + first poll + drop",
        pair!(cancelled_round_trip),
        Target::None,
    );

    let t = Ours::new();
    let ns =
        timer.ns_per_op(|k| (0..k).for_each(|_| _ = black_box(t.on_cancel(|_| {}).unregister())));
    rows.push(Row {
        op: "`on_cancel` register + `unregister`",
        ours: Value::Ns(ns),
        tokio: None,
        target: Target::None,
    });
    let parents: Vec<_> = (0..4).map(|_| Ours::new()).collect();
    let ns = timer.ns_per_op(|k| (0..k).for_each(|_| drop(black_box(Ours::any_of(&parents)))));
    rows.push(Row {
        op: "`any_of` 4 parents, create + drop",
        ours: Value::Ns(ns),
        tokio: None,
        target: Target::None,
    });

    // What tracking costs: an operation around an empty body, created, run and dropped, alone
    // and registered; the bare `.cancelable(&token)` wrapper sits in the peer column (measured
    // alternating with each), and the ratio column shows how many times its time each takes.
    let parent = Ours::new();
    let registry = cancelable::Registry::with_history(100);
    let bare = |k: u64| {
        (0..k).for_each(|_| {
            let fut = cancelable::FutureExt::cancelable(async { black_box(1) }, &parent);
            _ = black_box(poll_once(pin!(fut)));
        })
    };
    let (run, bare_run) = timer.ns_per_op_pair(
        |k| {
            (0..k).for_each(|_| {
                let run = cancelable::Operation::new("bench")
                    .parent(&parent)
                    .run(|_| async { Ok(black_box(1)) });
                _ = black_box(poll_once(pin!(run)));
            })
        },
        bare,
    );
    let (registered, bare_registered) = timer.ns_per_op_pair(
        |k| {
            (0..k).for_each(|_| {
                let run = cancelable::Operation::new("bench")
                    .parent(&parent)
                    .register(&registry)
                    .run(|_| async { Ok(black_box(1)) });
                _ = black_box(poll_once(pin!(run)));
            })
        },
        bare,
    );
    rows.push(Row {
        op: "`Operation::run` (empty body) vs bare `.cancelable(&token)`",
        ours: Value::Ns(run),
        tokio: Some(Value::Ns(bare_run)),
        target: Target::AtMostTimes(8.0),
    });
    rows.push(Row {
        op: "the same with `.register(&registry)` vs bare `.cancelable(&token)`",
        ours: Value::Ns(registered),
        tokio: Some(Value::Ns(bare_registered)),
        target: Target::AtMostTimes(16.0),
    });

    // The adapters' `timeout(d, ready)` against each runtime's own timeout; the peer sits in
    // the tokio-util column (the row's name says which it is). Ready at once: no timer is armed.
    let d = Duration::from_secs(1);
    let (ours, peer) = timer.ns_per_op_pair(
        |k| {
            (0..k).for_each(|_| {
                let fut = cancelable_smol::timeout(d, std::future::ready(black_box(1)));
                _ = black_box(cancelable_benches::poll_once(std::pin::pin!(fut)));
            })
        },
        |k| {
            (0..k).for_each(|_| {
                let fut = async_std::future::timeout(d, std::future::ready(black_box(1)));
                _ = black_box(cancelable_benches::poll_once(std::pin::pin!(fut)));
            })
        },
    );
    rows.push(Row {
        op: "adapter `timeout(d, ready)` (smol) vs `async_std::future::timeout`",
        ours: Value::Ns(ours),
        tokio: Some(Value::Ns(peer)),
        target: Target::None,
    });

    // Memory: the heap each idle object holds, averaged over MEM_N of them.
    macro_rules! child_heap {
        ($t:ty) => {{
            let root = <$t>::new();
            let mut kids = Vec::with_capacity(MEM_N);
            count_heap(MEM_N, || {
                kids.extend((0..MEM_N).map(|_| root.child_token()))
            })
        }};
    }
    let (ours, tokio) = (child_heap!(Ours), child_heap!(Tokio));
    rows.push(Row {
        op: "heap per idle child token",
        ours: Value::Heap(ours),
        tokio: Some(Value::Heap(tokio)),
        target: Target::MaxBytes(64.0),
    });
    macro_rules! waiter_heap {
        ($t:ty) => {{
            let t = <$t>::new();
            waiter_heap(|| t.cancelled())
        }};
    }
    let (ours, tokio) = (waiter_heap!(Ours), waiter_heap!(Tokio));
    rows.push(Row {
        op: "heap per pending `cancelled()` waiter",
        ours: Value::Heap(ours),
        tokio: Some(Value::Heap(tokio)),
        target: Target::NoAlloc,
    });
    // The waiter's other half: what a task keeps inline for each `cancelled()` it awaits.
    rows.push(Row {
        op: "inline size of a `cancelled()` future",
        ours: Value::Size(size_of_val(&Ours::new().cancelled())),
        tokio: Some(Value::Size(size_of_val(&Tokio::new().cancelled()))),
        target: Target::None,
    });
    let t = Ours::new();
    let mut callbacks = Vec::with_capacity(MEM_N);
    let ours = count_heap(MEM_N, || {
        callbacks.extend((0..MEM_N).map(|_| t.on_cancel(|_| {})))
    });
    drop(callbacks);
    rows.push(Row {
        op: "heap per `on_cancel` registration",
        ours: Value::Heap(ours),
        tokio: None,
        target: Target::None,
    });

    // HTTP: `/health` through cancelable-http's runner and layer against plain hyper
    // on smol with the same handler, as CPU time per request of the whole process (client
    // included; wall-clock throughput on a shared machine is too noisy for a 5% bar), and the
    // disconnect-to-cancel latency. `--bench http` prints the throughput too.
    let (run, rounds, disconnects) = if quick {
        (Duration::from_millis(100), 1, 100)
    } else {
        (Duration::from_secs(1), 5, 1000)
    };
    use http_support::Variant;
    for (connections, op) in [
        (
            1,
            "HTTP `/health`, 1 keep-alive connection: cancelable-http vs plain hyper on smol (CPU per request)",
        ),
        (
            64,
            "HTTP `/health`, 64 keep-alive connections: cancelable-http vs plain hyper on smol (CPU per request)",
        ),
    ] {
        let s = http_support::compare(
            &[Variant::PlainHyper, Variant::Layer],
            connections,
            run,
            rounds,
        );
        rows.push(Row {
            op,
            ours: Value::Ns(s[1].cpu_per_request.as_nanos() as f64),
            tokio: Some(Value::Ns(s[0].cpu_per_request.as_nanos() as f64)),
            target: Target::Faster(0.95),
        });
    }
    let latencies = http_support::disconnect_latencies(disconnects);
    for (q, op) in [
        (
            0.5,
            "HTTP client disconnect → request token cancelled, median",
        ),
        (
            0.99,
            "HTTP client disconnect → request token cancelled, 99th percentile",
        ),
    ] {
        rows.push(Row {
            op,
            ours: Value::Ns(http_support::quantile(&latencies, q).as_nanos() as f64),
            tokio: None,
            target: Target::None,
        });
    }
    rows
}

/// One run's rows as tab-separated lines, for the parent of `--runs N`.
fn emit_rows(rows: &[Row]) {
    fn value(v: &Value) -> String {
        match v {
            Value::Ns(ns) => format!("ns:{ns}"),
            Value::Heap(h) => format!("heap:{}:{}", h.bytes, h.allocs),
            Value::Size(bytes) => format!("size:{bytes}"),
        }
    }
    for row in rows {
        let target = match row.target {
            Target::Faster(x) => format!("faster:{x}"),
            Target::MaxBytes(b) => format!("bytes:{b}"),
            Target::NoAlloc => "noalloc".to_owned(),
            Target::AtMostTimes(x) => format!("times:{x}"),
            Target::None => "none".to_owned(),
        };
        println!(
            "{}\t{}\t{}\t{target}",
            row.op,
            value(&row.ours),
            row.tokio.as_ref().map_or("-".to_owned(), value)
        );
    }
}

/// The rows [`emit_rows`] printed.
fn parse_rows(text: &str) -> Vec<Row> {
    fn value(s: &str) -> Option<Value> {
        let mut parts = s.split(':');
        let num = |p: Option<&str>| p.and_then(|p| p.parse::<f64>().ok());
        match parts.next()? {
            "ns" => Some(Value::Ns(num(parts.next())?)),
            "heap" => Some(Value::Heap(Heap {
                bytes: num(parts.next())?,
                allocs: num(parts.next())?,
            })),
            "size" => Some(Value::Size(parts.next()?.parse().ok()?)),
            _ => None,
        }
    }
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "a row of a run: {line:?}");
            let target = match f[3].split_once(':') {
                Some(("faster", x)) => Target::Faster(x.parse().expect("a ratio")),
                Some(("bytes", b)) => Target::MaxBytes(b.parse().expect("a size")),
                Some(("times", x)) => Target::AtMostTimes(x.parse().expect("a ratio")),
                _ if f[3] == "noalloc" => Target::NoAlloc,
                _ => Target::None,
            };
            Row {
                // Leaked once per row and run: the report is a short-lived process.
                op: Box::leak(f[0].to_owned().into_boxed_str()),
                ours: value(f[1]).expect("our value"),
                tokio: value(f[2]),
                target,
            }
        })
        .collect()
}

/// Heap held by the token per pending waiter: `MEM_N` futures from `make`, each polled once,
/// minus the `Box` that pins each future (that memory is the future itself, which a task keeps
/// inline in its own state).
fn waiter_heap<F: Future>(mut make: impl FnMut() -> F) -> Heap {
    let mut waiters: Vec<Pin<Box<F>>> = Vec::with_capacity(MEM_N);
    let heap = count_heap(MEM_N, || {
        for _ in 0..MEM_N {
            let mut w = Box::pin(make());
            assert!(poll_once(w.as_mut()).is_pending());
            waiters.push(w);
        }
    });
    Heap {
        bytes: heap.bytes - size_of::<F>() as f64,
        allocs: heap.allocs - 1.0,
    }
}

/// The table; with several runs each cell is the range over the runs, and "met?" says in how
/// many of them the target was met.
fn print_report(runs: &[Vec<Row>], quick: bool) {
    println!("## cancelable vs tokio-util");
    println!();
    println!("CPU: **{}**", cpu_model());
    println!();
    println!(
        "{} · {} · tokio-util 0.7 · {} run{}{}",
        today(),
        machine(),
        if quick { "quick" } else { "full" },
        if quick { " (smoke, noisy)" } else { "" },
        if runs.len() > 1 {
            format!(" · ranges over {} runs in separate processes", runs.len())
        } else {
            String::new()
        }
    );
    println!();
    println!("| operation | cancelable | tokio-util | ratio (tokio-util / ours) | target | met? |");
    println!("|---|---:|---:|---:|---|---|");
    for (i, row) in runs[0].iter().enumerate() {
        let each: Vec<&Row> = runs.iter().map(|run| &run[i]).collect();
        assert!(
            each.iter().all(|r| r.op == row.op),
            "the runs measured different rows"
        );
        let ratios: Vec<Option<f64>> = each.iter().map(|r| ratio(r)).collect();
        let (target, mets): (String, Vec<Option<bool>>) = match row.target {
            Target::Faster(x) if x < 1.0 => (
                format!("≤{:.0}% slower", (1.0 / x - 1.0) * 100.0),
                ratios.iter().map(|r| r.map(|r| r >= x)).collect(),
            ),
            Target::Faster(x) if x <= 1.0 => (
                "no slower".to_owned(),
                ratios.iter().map(|r| r.map(|r| r >= x)).collect(),
            ),
            Target::Faster(x) => (
                format!("≥{x}× faster"),
                ratios.iter().map(|r| r.map(|r| r >= x)).collect(),
            ),
            Target::MaxBytes(b) => (
                format!("≤{b} B"),
                each.iter()
                    .map(|r| heap(&r.ours).map(|h| h.bytes <= b))
                    .collect(),
            ),
            Target::NoAlloc => (
                "0 allocations (aim)".to_owned(),
                each.iter()
                    .map(|r| heap(&r.ours).map(|h| h.allocs < 0.01))
                    .collect(),
            ),
            Target::AtMostTimes(x) => (
                format!("≤{x}× its time"),
                ratios.iter().map(|r| r.map(|r| r <= x)).collect(),
            ),
            Target::None => ("—".to_owned(), vec![None]),
        };
        let of_its_time = match row.target {
            Target::AtMostTimes(_) => " its time",
            _ => "",
        };
        let met = mets.iter().flatten().filter(|&&m| m).count();
        let judged = mets.iter().flatten().count();
        let ours: Vec<Value> = each.iter().map(|r| r.ours).collect();
        let peer: Option<Vec<Value>> = each.iter().map(|r| r.tokio).collect();
        let ratios: Option<Vec<f64>> = ratios.into_iter().collect();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.op,
            show(&ours),
            peer.as_deref().map_or("n/a".to_owned(), show),
            ratios.map_or("—".to_owned(), |r| {
                let (lo, hi) = bounds(&r);
                if format!("{lo:.1}") == format!("{hi:.1}") {
                    format!("{lo:.1}×{of_its_time}")
                } else {
                    format!("{lo:.1}–{hi:.1}×{of_its_time}")
                }
            }),
            target,
            match (met, judged) {
                (_, 0) => "—".to_owned(),
                (m, j) if m == j => "yes".to_owned(),
                (0, _) => "**no**".to_owned(),
                (m, j) => format!("**{m} of {j} runs**"),
            }
        );
    }
    println!();
    println!(
        "Times are medians per operation (per node or waiter where stated); heap is requested bytes \
         still held per object, amortized over {MEM_N} (a parent's child list included), and \
         allocator calls per object. The two-thread rows need two otherwise idle cores to be stable."
    );
}

/// Peer / ours, where the two can be compared.
fn ratio(row: &Row) -> Option<f64> {
    if let (Target::AtMostTimes(_), Value::Ns(o), Some(Value::Ns(t))) =
        (row.target, &row.ours, &row.tokio)
    {
        return Some(o / t);
    }
    match (&row.ours, &row.tokio) {
        (Value::Ns(o), Some(Value::Ns(t))) => Some(t / o),
        (Value::Heap(o), Some(Value::Heap(t))) if o.bytes > 0.5 => Some(t.bytes / o.bytes),
        (Value::Size(o), Some(Value::Size(t))) if *o > 0 => Some(*t as f64 / *o as f64),
        _ => None,
    }
}

fn bounds(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn heap(v: &Value) -> Option<Heap> {
    match v {
        Value::Heap(h) => Some(*h),
        _ => None,
    }
}

/// A cell: one value, or the range of the values of several runs.
fn show(values: &[Value]) -> String {
    let one = |v: &Value| match v {
        Value::Ns(ns) => ns_text(*ns, *ns),
        Value::Heap(h) => format!("{:.0} B, {:.2} allocs", h.bytes, h.allocs),
        Value::Size(bytes) => format!("{bytes} B"),
    };
    match values {
        [v] => one(v),
        _ if values.iter().all(|v| matches!(v, Value::Ns(_))) => {
            let ns: Vec<f64> = values
                .iter()
                .map(|v| match v {
                    Value::Ns(ns) => *ns,
                    _ => unreachable!(),
                })
                .collect();
            let (lo, hi) = bounds(&ns);
            ns_text(lo, hi)
        }
        _ => {
            let mut texts: Vec<String> = values.iter().map(one).collect();
            texts.dedup();
            texts.join(" / ")
        }
    }
}

/// `lo`–`hi` nanoseconds in the unit that suits `hi` (just one number if they agree).
fn ns_text(lo: f64, hi: f64) -> String {
    let (scale, unit, digits) = match hi {
        ns if ns < 10.0 => (1.0, "ns", 2),
        ns if ns < 1000.0 => (1.0, "ns", 1),
        _ => (1000.0, "µs", 2),
    };
    let (lo, hi) = (
        format!("{:.*}", digits, lo / scale),
        format!("{:.*}", digits, hi / scale),
    );
    if lo == hi {
        format!("{lo} {unit}")
    } else {
        format!("{lo}–{hi} {unit}")
    }
}
