//! HTTP: requests per second on `/health` through cancelable-http
//! against plain hyper on smol with the same handler and against axum 0.8 on a 2-worker tokio
//! runtime, with 1 and 64 keep-alive connections, and the disconnect-to-cancel latency (median,
//! p99 over 1,000 disconnects).
//!
//! `cargo bench -p cancelable-benches --bench http` (add `-- --quick` for a short run). The
//! load is an in-process client on one thread over loopback; the servers run on smol's global
//! executor. Each figure is the median of alternating runs, so drift hits every variant alike.
//! `HTTP_BENCH_ONE=router:1` runs one variant (`plain`, `layer`, `router`, `axum`) with that
//! many connections, alone, for a profiler. `HTTP_BENCH_PARTS=1` adds the parts: plain hyper with only the header timeout, with only
//! the layer. On a shared machine the socket figures move by ±10% from run to run; the
//! in-memory line (the layer's and the header timer's own cost per request) does not, nor do
//! the allocations per request. Instructions per request: `benches/callgrind http_1/router
//! http_1/plain_hyper` (and `http_64/...`).
//!
//! Then the tower rows (an axum 0.8 `Router` on smol: alone, behind `cancel_layer()`, under
//! `Server::serve`) and the HTTP/2 rows (h2c, 64 streams in flight over 4 connections: plain
//! hyper's http2 server on smol, the same with the layer, `Server::serve`).
//! `HTTP_BENCH_SECTION=tower` runs only those, `HTTP_BENCH_SECTION=tower-memory` only their
//! in-memory lines (the layer's own cost on the tower path, and whole requests over an
//! in-process pipe on one thread; both steady under callgrind).

#[path = "support/http.rs"]
mod support;
#[path = "support/tower_http2.rs"]
mod tower_http2;

use std::time::Duration;

use cancelable_benches::{CountingAlloc, count_heap};
use support::{Variant, compare, disconnect_latencies, quantile};

// Counts only inside `count_heap` (one relaxed load per call otherwise).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "http".contains(f.as_str())) {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick" || a == "--smoke")
        || !args.iter().any(|a| a == "--bench");
    let (run, rounds, disconnects) = if quick {
        (Duration::from_millis(200), 1, 100)
    } else {
        (Duration::from_secs(2), 5, 1000)
    };
    // `HTTP_BENCH_SECTION=tower` runs only the tower and HTTP/2 rows, `tower-memory` only
    // their in-memory lines (for callgrind).
    if let Some(section) = std::env::var_os("HTTP_BENCH_SECTION") {
        tower_and_http2(quick, run, rounds, section == "tower-memory");
        return;
    }
    let variants = [
        Variant::PlainHyper,
        Variant::Layer,
        Variant::Router,
        Variant::Axum,
    ];
    // `HTTP_BENCH_ONE=router:1` (plain, layer, router or axum, then connections) runs one
    // variant alone for `run`, for a profiler or `strace -f -c` around the process.
    if let Some(one) = std::env::var_os("HTTP_BENCH_ONE") {
        let one = one.to_string_lossy();
        let (name, connections) = one.split_once(':').unwrap_or((&one, "1"));
        let keys = ["plain", "layer", "router", "axum"];
        let Some(i) = keys.iter().position(|k| *k == name) else {
            eprintln!("HTTP_BENCH_ONE: expected one of {keys:?}, then `:` and a connection count");
            std::process::exit(2);
        };
        let connections = connections.parse().unwrap_or(1);
        let s = support::measure(variants[i], connections, run);
        println!(
            "{} with {connections} connection(s): {:.0} req/s, {:.1} µs CPU per request",
            variants[i].name(),
            s.rps,
            s.cpu_per_request.as_secs_f64() * 1e6
        );
        return;
    }
    println!(
        "## HTTP /health ({} run, {rounds} alternating rounds of {run:?}, medians)",
        if quick { "quick" } else { "full" }
    );
    println!();
    println!(
        "Requests per second, and CPU time per request of the whole process (client included). \
         The ratios are throughput ratios (above 1: the first is faster), CPU ratios in brackets:"
    );
    println!();
    println!(
        "| connections | {} | {} | {} | {} | layer / plain | router / plain | router / axum |",
        variants[0].name(),
        variants[1].name(),
        variants[2].name(),
        variants[3].name()
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for connections in [1, 64] {
        let s = compare(&variants, connections, run, rounds);
        let cell = |x: &support::Sample| {
            format!(
                "{:.0} req/s, {:.1} µs CPU",
                x.rps,
                x.cpu_per_request.as_secs_f64() * 1e6
            )
        };
        let cpu = |x: &support::Sample| x.cpu_per_request.as_secs_f64();
        println!(
            "| {connections} | {} | {} | {} | {} | {:.3} (CPU {:.3}) | {:.3} (CPU {:.3}) | {:.3} (CPU {:.3}) |",
            cell(&s[0]),
            cell(&s[1]),
            cell(&s[2]),
            cell(&s[3]),
            s[1].rps / s[0].rps,
            cpu(&s[0]) / cpu(&s[1]),
            s[2].rps / s[0].rps,
            cpu(&s[0]) / cpu(&s[2]),
            s[2].rps / s[3].rps,
            cpu(&s[3]) / cpu(&s[2]),
        );
    }
    if std::env::var_os("HTTP_BENCH_PARTS").is_some() {
        let parts = [
            Variant::PlainHyper,
            Variant::PlainTimer,
            Variant::PlainLayer,
            Variant::Layer,
        ];
        for connections in [1, 64] {
            let s = compare(&parts, connections, run, rounds);
            for (v, x) in parts.iter().zip(&s) {
                println!(
                    "parts: {connections} conns, {}: {:.0} req/s, {:?} CPU/req",
                    v.name(),
                    x.rps,
                    x.cpu_per_request
                );
            }
        }
    }
    let n = if quick { 10_000 } else { 200_000 };
    let (layer, bare) = support::layer_overhead(n);
    println!();
    println!(
        "in memory, per request: the layer's call + poll + drop {layer:.0} ns vs the bare service {bare:.0} ns (+{:.0} ns); \
         hyper's header-timeout sleep on a CoarseTimer {:.0} ns",
        layer - bare,
        support::header_timer_cost(n)
    );
    allocations(&variants);
    let lat = disconnect_latencies(disconnects);
    println!();
    println!(
        "disconnect → request token cancelled, over {disconnects} disconnects: median {:?}, p99 {:?}, max {:?}",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    tower_and_http2(quick, run, rounds, false);
}

/// The tower rows (an axum `Router` on smol, alone, behind `cancel_layer()`, under
/// `Server::serve`) and the HTTP/2 rows (64 streams over 4 connections: plain hyper h2 on
/// smol, the same with the layer, `Server::serve`).
fn tower_and_http2(quick: bool, run: Duration, rounds: usize, memory_only: bool) {
    use tower_http2::{H2, Tower, alternate, measure_h2, measure_tower};
    let n = if quick { 10_000 } else { 200_000 };
    let (layered, alone) = tower_http2::tower_layer_overhead(n);
    println!();
    println!(
        "in memory, per request: the axum Router behind the layer {layered:.0} ns vs the Router alone {alone:.0} ns (+{:.0} ns, {:+.1}%)",
        layered - alone,
        (layered / alone - 1.0) * 100.0
    );
    let [axum, axum_layer, h2, h2_layer] =
        tower_http2::pipe_costs(if quick { 2_000 } else { 50_000 });
    let change = |a: f64, b: f64| (b / a - 1.0) * 100.0;
    println!(
        "in memory, end to end (hyper and its client over an in-process pipe, one thread), per request: \
         axum {axum:.0} ns, axum behind the layer {axum_layer:.0} ns ({:+.1}%); \
         HTTP/2, 64 streams over 4 connections: plain hyper {h2:.0} ns, with the layer {h2_layer:.0} ns ({:+.1}%)",
        change(axum, axum_layer),
        change(h2, h2_layer)
    );
    if memory_only {
        return;
    }
    let cell = |x: &support::Sample| {
        format!(
            "{:.0} req/s, {:.1} µs CPU",
            x.rps,
            x.cpu_per_request.as_secs_f64() * 1e6
        )
    };
    // Throughput ratio and CPU-per-request ratio of `b` against `a` (1.000 = the same cost).
    let ratio = |a: &support::Sample, b: &support::Sample| {
        format!(
            "{:.3} (CPU {:.3})",
            b.rps / a.rps,
            a.cpu_per_request.as_secs_f64() / b.cpu_per_request.as_secs_f64()
        )
    };
    let tower = [Tower::Axum, Tower::AxumLayer, Tower::AxumServe];
    println!();
    println!("## tower: axum 0.8 on smol, HTTP/1.1 /health (medians)");
    println!();
    println!(
        "| connections | {} | {} | {} | layer / alone |",
        tower[0].name(),
        tower[1].name(),
        tower[2].name()
    );
    println!("|---:|---:|---:|---:|---:|");
    for connections in [1, 64] {
        let runs: Vec<Box<dyn Fn() -> support::Sample>> = tower
            .iter()
            .map(|&v| Box::new(move || measure_tower(v, connections, run)) as Box<_>)
            .collect();
        let runs: Vec<&dyn Fn() -> support::Sample> = runs.iter().map(|r| &**r).collect();
        let s = alternate(&runs, rounds);
        println!(
            "| {connections} | {} | {} | {} | {} |",
            cell(&s[0]),
            cell(&s[1]),
            cell(&s[2]),
            ratio(&s[0], &s[1])
        );
    }
    let h2 = [H2::Plain, H2::PlainLayer, H2::Serve];
    let (connections, streams) = (4, 16);
    println!();
    println!(
        "## HTTP/2 (h2c): {} streams in flight over {connections} connections, /health (medians)",
        connections * streams
    );
    println!();
    println!(
        "| {} | {} | {} | layer / plain | serve / plain |",
        h2[0].name(),
        h2[1].name(),
        h2[2].name()
    );
    println!("|---:|---:|---:|---:|---:|");
    let runs: Vec<Box<dyn Fn() -> support::Sample>> = h2
        .iter()
        .map(|&v| Box::new(move || measure_h2(v, connections, streams, run)) as Box<_>)
        .collect();
    let runs: Vec<&dyn Fn() -> support::Sample> = runs.iter().map(|r| &**r).collect();
    let s = alternate(&runs, rounds);
    println!(
        "| {} | {} | {} | {} | {} |",
        cell(&s[0]),
        cell(&s[1]),
        cell(&s[2]),
        ratio(&s[0], &s[1]),
        ratio(&s[0], &s[2])
    );
}

/// Heap allocations per request of each server (client included: it allocates nothing per
/// request), over 1,000 requests on 1 warm connection and 6,400 on 64.
fn allocations(variants: &[Variant]) {
    println!();
    for (connections, n) in [(1, 1000), (64, 100)] {
        let cells: Vec<String> = variants
            .iter()
            .map(|&v| {
                let mut load = support::Load::new(v, connections);
                let heap = count_heap(n * connections, || load.run(n));
                format!("{} {:.2}", v.name(), heap.allocs)
            })
            .collect();
        println!(
            "allocations per request, {connections} connection(s): {}",
            cells.join("; ")
        );
    }
}
