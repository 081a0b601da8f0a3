//! axum on smol, with request cancelation: an axum 0.8 `Router` (its `tokio` feature off, so
//! no tokio runtime anywhere) served by `cancelable_http::Server` on smol's executor, behind
//! tower-http's `TraceLayer` and the request layer. Each handler takes its request's
//! [`RequestContext`] as an extractor; when the client leaves, the handler is dropped at the
//! step it is in, and its token's callback says so.
//!
//! ```text
//! cargo run --release --example axum_on_smol              # http://127.0.0.1:3000
//! cargo run --release --example axum_on_smol -- --addr 127.0.0.1:0
//! ```
//!
//! | route | what it shows |
//! |---|---|
//! | `GET /work?steps=N&step_ms=M` | N steps of M ms (defaults 10 and 100), then `{"status":"completed","steps":N}`; stops at once if the client leaves |
//! | `GET /work?...&timeout_ms=T` | the same with a time limit: `504 {"error":"timeout"}` after T ms |
//! | `GET /stats` | the server's counters (`completed_requests`, `cancelled_requests`, ...) |
//!
//! Try `curl -m 1 'http://127.0.0.1:3000/work?steps=50'`: curl gives up after a second, and
//! the server prints a line such as `work stopped after 9 of 50 steps: disconnected`. HTTP/1.1 and HTTP/2
//! (`curl --http2-prior-knowledge`) are served on the same port; an HTTP/2 client cancelling
//! one request (a stream reset) stops that handler only.
//!
//! tower-http's `TimeoutLayer` is not used: it sleeps on tokio's timer, which needs a tokio
//! runtime. The request layer's own timeout ([`RequestContext::timeout`]) runs on any
//! executor and cancels the token, so the work stops too.
//!
//! SIGINT or SIGTERM: graceful shutdown (requests in flight get `503`), then exit 0.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, Request};
use axum::routing::get;
use cancelable::CancellationToken;
use cancelable_http::{HttpError, RequestContext, Server, ServerConfig, ServerStats};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

#[derive(serde::Deserialize)]
struct Work {
    steps: Option<u64>,
    step_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

/// Request-scoped work: dropped by the layer the moment the request's token is cancelled
/// (client gone: `disconnected`; time limit: `timeout`; shutdown: `shutdown`).
async fn work(cx: RequestContext, Query(work): Query<Work>) -> Result<Json<Value>, HttpError> {
    let steps = work.steps.unwrap_or(10);
    let step_ms = work.step_ms.unwrap_or(100);
    if !(1..=10_000).contains(&steps) || step_ms > 60_000 {
        return Err(HttpError::bad_request(
            "steps must be 1..=10000 and step_ms 0..=60000",
        ));
    }
    if let Some(limit) = work.timeout_ms {
        cx.timeout(Duration::from_millis(limit));
    }
    let done = Arc::new(AtomicU64::new(0));
    // Runs when the token is cancelled, just before the layer drops this handler.
    let _report = cx.token().on_cancel({
        let done = done.clone();
        move |reason| {
            let done = done.load(Relaxed);
            println!(
                "work stopped after {done} of {steps} steps: {}",
                reason.kind().as_str()
            );
        }
    });
    println!("work started: {steps} steps of {step_ms} ms");
    for step in 1..=steps {
        smol::Timer::after(Duration::from_millis(step_ms)).await;
        done.store(step, Relaxed);
    }
    println!("work completed: {steps} steps");
    Ok(Json(json!({"status": "completed", "steps": steps})))
}

/// The counters, without this request among the active ones.
async fn stats(req: Request) -> Result<Json<ServerStats>, HttpError> {
    let cx = RequestContext::of(&req).ok_or_else(|| HttpError::internal("not behind the layer"))?;
    Ok(Json(cx.server().stats_for(&req)))
}

fn app(server: &Server) -> axum::Router {
    axum::Router::new()
        .route("/work", get(work))
        .route("/stats", get(stats))
        // Inside out: the request layer first (the extractor needs its context), then the
        // trace, which so sees every answer, the layer's 504 and 503 included.
        .layer(server.cancel_layer())
        .layer(TraceLayer::new_for_http().on_response(
            |response: &axum::response::Response, latency: Duration, _span: &tracing::Span| {
                println!("answered {} in {latency:.1?}", response.status());
            },
        ))
}

fn parse_addr() -> Result<std::net::SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:3000".to_owned();
    while let Some(arg) = args.next() {
        match (arg.as_str(), arg.strip_prefix("--addr=")) {
            ("--addr", _) => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            (_, Some(value)) => addr = value.to_owned(),
            (other, None) => {
                return Err(format!(
                    "unknown argument {other:?} (usage: axum_on_smol [--addr HOST:PORT])"
                ));
            }
        }
    }
    addr.parse()
        .map_err(|e| format!("bad --addr {addr:?}: {e}"))
}

fn main() -> std::process::ExitCode {
    let addr = match parse_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = smol::block_on(async {
        let server = Server::new(ServerConfig::default().grace(Duration::from_secs(5)));
        let stop = CancellationToken::new();
        // Installed before the address is printed: a signal sent on seeing it is never missed.
        #[cfg(unix)]
        let _signals = cancelable_smol::cancel_on_signals(&stop, [])?;
        let listener = cancelable_http::bind(addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        // axum's Router is a tower service; hyper-util's adapter makes it a hyper one.
        let service = hyper_util::service::TowerToHyperService::new(app(&server));
        let report = server.serve(listener, service, &stop).await;
        eprintln!("stopped: {report}");
        std::io::Result::Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum_on_smol: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
