//! The web demo: request-scoped cancelation, background jobs with a cancel button,
//! and streams that stop when the client leaves, on hyper + smol through `cancelable-http`.
//!
//! ```text
//! cargo run --release --example web_app              # http://127.0.0.1:8080
//! cargo run --release --example web_app -- --addr 127.0.0.1:0 --threads 1
//! ```
//!
//! HTTP/1.1 and HTTP/2 with prior knowledge (`curl --http2-prior-knowledge`) are served on the
//! same port; the WebSocket route needs HTTP/1.1.
//!
//! | route | what it shows |
//! |---|---|
//! | `GET /` | the dashboard |
//! | `GET /health` | `{"status":"healthy"}` |
//! | `GET /process?steps=N&step_ms=M` | request-scoped work, dropped at once if the client disconnects |
//! | `GET /timeout-operation?timeout_ms=T&work_ms=W` | `504 {"error":"timeout"}` when W > T |
//! | `POST /jobs` `{"steps":N,"step_ms":M}` | a job that outlives the request: `202 {"job_id"}` |
//! | `GET /jobs`, `GET /jobs/{id}`, `DELETE /jobs/{id}` | list, get, cancel (`409` if finished, `404` if unknown) |
//! | `GET /stream?interval_ms=I` | WebSocket: a JSON message every I ms until the client leaves |
//! | `GET /events?interval_ms=I` | server-sent events, the same |
//! | `GET /stats` | `{"active_requests","cancelled_requests","active_jobs","active_streams","completed_requests"}` |
//! | `GET /operations` | live requests, streams and jobs, then the last 50 finished |
//! | `GET /dashboard/events` | the dashboard's feed: `{"jobs","operations","stats"}` as an event whenever it changes |
//!
//! Bounds (out of range, or not a number → `400 {"error": "..."}`): `steps` 1..=10000
//! (default 10), `step_ms` 0..=60000 (default 100 for `/process`, 500 for jobs),
//! `timeout_ms` and `work_ms` 0..=600000 (defaults 1000 and 500), `interval_ms` 10..=60000
//! (default 1000). At most 32 jobs run at once (`429` past that), 256 streams (`429`);
//! bodies are at most 64 KiB and must not pause for 5 s (`408`), WebSocket messages from
//! clients at most 64 KiB too (close `1009`); the other connection bounds are the library's
//! defaults.
//!
//! Safe to open in a browser: only requests for `localhost`, loopback addresses and the
//! address it listens on are answered (`400` otherwise: DNS rebinding), requests that change
//! state from another origin get `403`, and `POST` bodies must be JSON (`415`: cross-site
//! forms); `--allow-host NAME` adds a name.
//!
//! Handlers run on one executor thread per core (`--threads N` or `WEB_APP_THREADS=N` to
//! change it; 1 runs everything on the main thread). The threads beside the main one are
//! named `web_app-worker`.
//!
//! SIGINT or SIGTERM: graceful shutdown (the listener closes, idle connections close,
//! requests, jobs and streams are cancelled with `shutdown`, the server waits up to 5 s for
//! them), then exit 0. A second SIGINT or SIGTERM during that wait ends the process at once
//! (exit 130 or 143).

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cancelable::{CancellationToken, current};
use cancelable_http::{
    AllowedHosts, Event, HandlerResult, HttpError, Jobs, RequestContext, Route, Router, Server,
    ServerConfig, html, json, path_param, query_param, read_json, sse, websocket,
};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use smol::Timer;

/// What every handler gets.
#[derive(Clone)]
struct App {
    server: Server,
    jobs: Jobs,
}

async fn dashboard(_req: Request<Incoming>, _app: App) -> HandlerResult {
    Ok(html(include_str!("dashboard.html")))
}

async fn health(_req: Request<Incoming>, _app: App) -> HandlerResult {
    Ok(json(StatusCode::OK, &json!({"status": "healthy"})))
}

/// Request-scoped work: the handler is dropped the moment the client disconnects (the layer
/// cancels the request token with `disconnected`), so no step runs for nobody.
async fn process(req: Request<Incoming>, _app: App) -> HandlerResult {
    let steps = query_u64(&req, "steps", 10, 1..=10_000)?;
    let step_ms = query_u64(&req, "step_ms", 100, 0..=60_000)?;
    let cx = current().expect("a tracked route runs as an operation");
    for step in 1..=steps {
        Timer::after(Duration::from_millis(step_ms)).await;
        cx.report_progress(step, Some(steps), "steps");
    }
    Ok(json(
        StatusCode::OK,
        &json!({"status": "completed", "steps": steps}),
    ))
}

/// A per-request timeout: `W > T` cancels the request with `timeout` and the layer answers 504.
async fn timeout_operation(req: Request<Incoming>, _app: App) -> HandlerResult {
    let timeout_ms = query_u64(&req, "timeout_ms", 1000, 0..=600_000)?;
    let work_ms = query_u64(&req, "work_ms", 500, 0..=600_000)?;
    let cx = RequestContext::of(&req).expect("served by cancelable-http");
    cx.timeout(Duration::from_millis(timeout_ms));
    Timer::after(Duration::from_millis(work_ms)).await;
    Ok(json(StatusCode::OK, &json!({"status": "completed"})))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob {
    steps: Option<u64>,
    step_ms: Option<u64>,
}

/// A background job: its token is a child of the server's, so it outlives this request.
async fn start_job(mut req: Request<Incoming>, app: App) -> HandlerResult {
    // Through a `Value` first: serde also reads a struct from an array of its fields in order
    // (`[1, 2]`), which no client of this route means.
    let body: serde_json::Value = read_json(&mut req).await?;
    if !body.is_object() {
        return Err(HttpError::bad_request(
            r#"the body must be a JSON object such as {"steps": 10, "step_ms": 500}"#,
        ));
    }
    let body: NewJob = serde_json::from_value(body)
        .map_err(|e| HttpError::bad_request(format!("invalid job: {e}")))?;
    let steps = bounded("steps", body.steps.unwrap_or(10), 1..=10_000)?;
    let step_ms = bounded("step_ms", body.step_ms.unwrap_or(500), 0..=60_000)?;
    let name = format!("job: {steps} steps of {step_ms} ms");
    let id = app.jobs.start(&name, Some(steps), move |cx| async move {
        for step in 1..=steps {
            cx.token()
                .run_until_cancelled(Timer::after(Duration::from_millis(step_ms)))
                .await;
            cx.check()?;
            cx.report_progress(step, Some(steps), "steps");
        }
        Ok(())
    })?;
    Ok(json(StatusCode::ACCEPTED, &json!({"job_id": id})))
}

async fn list_jobs(_req: Request<Incoming>, app: App) -> HandlerResult {
    Ok(json(StatusCode::OK, &app.jobs.list()))
}

async fn get_job(req: Request<Incoming>, app: App) -> HandlerResult {
    let id = path_param(&req, "id").unwrap_or_default();
    let job = app
        .jobs
        .get(id)
        .ok_or_else(|| HttpError::not_found("no such job"))?;
    Ok(json(StatusCode::OK, &job))
}

async fn cancel_job(req: Request<Incoming>, app: App) -> HandlerResult {
    let id = path_param(&req, "id").unwrap_or_default();
    app.jobs.cancel(id).await.into_result()?;
    Ok(json(StatusCode::OK, &json!({"status": "cancelled"})))
}

/// One tick of `/stream` and `/events`.
fn tick(seq: u64) -> serde_json::Value {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    json!({"seq": seq, "time_ms": time_ms})
}

/// WebSocket: the library reads the socket beside this producer, so a close or EOF cancels
/// it with `disconnected` at once; pings are answered, close frames sent.
async fn stream(mut req: Request<Incoming>, _app: App) -> HandlerResult {
    let interval = Duration::from_millis(query_u64(&req, "interval_ms", 1000, 10..=60_000)?);
    websocket(&mut req, "websocket stream", move |cx, tx| async move {
        for seq in 0.. {
            if tx.send_json(&tick(seq)).await.is_err() {
                break;
            }
            cx.report_progress(seq + 1, None, "messages");
            Timer::after(interval).await;
        }
        Ok(())
    })
}

/// Server-sent events: hyper drops the body when the client closes, which cancels this
/// producer with `disconnected`.
async fn events(req: Request<Incoming>, _app: App) -> HandlerResult {
    let interval = Duration::from_millis(query_u64(&req, "interval_ms", 1000, 10..=60_000)?);
    sse(&req, "event stream", move |cx, tx| async move {
        for seq in 0.. {
            if tx.send(Event::json(&tick(seq))).await.is_err() {
                break;
            }
            cx.report_progress(seq + 1, None, "events");
            Timer::after(interval).await;
        }
        Ok(())
    })
}

/// The dashboard feed's operation name (the feed leaves itself out of its own list).
const FEED: &str = "dashboard feed";
/// How often the feed looks for changes.
const FEED_EVERY: Duration = Duration::from_millis(200);

/// The dashboard's one subscription: jobs, operations and stats, sent whenever they change,
/// so the page needs no polling (which also counted in `completed_requests`).
async fn dashboard_events(req: Request<Incoming>, app: App) -> HandlerResult {
    sse(&req, FEED, move |_cx, tx| async move {
        let mut sent = String::new();
        loop {
            let operations: Vec<_> = app
                .server
                .operations(50)
                .into_iter()
                .filter(|o| o.name != FEED)
                .collect();
            let now = json!({
                "jobs": app.jobs.list(),
                "operations": operations,
                "stats": app.server.stats(),
            })
            .to_string();
            if now != sent {
                if tx.send(Event::data(now.clone())).await.is_err() {
                    break;
                }
                sent = now;
            }
            Timer::after(FEED_EVERY).await;
        }
        Ok(())
    })
}

async fn stats(req: Request<Incoming>, app: App) -> HandlerResult {
    // This request itself is not counted as active.
    Ok(json(StatusCode::OK, &app.server.stats_for(&req)))
}

async fn operations(_req: Request<Incoming>, app: App) -> HandlerResult {
    Ok(json(StatusCode::OK, &app.server.operations(50)))
}

/// Query parameter `name` as an integer in `range`, `default` when absent.
fn query_u64<B>(
    req: &Request<B>,
    name: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<u64, HttpError> {
    match query_param(req, name) {
        None => Ok(default),
        Some(text) => {
            let value = text.parse().map_err(|_| {
                HttpError::bad_request(format!("{name} must be an integer, got {text:?}"))
            })?;
            bounded(name, value, range)
        }
    }
}

fn bounded(name: &str, value: u64, range: RangeInclusive<u64>) -> Result<u64, HttpError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(HttpError::bad_request(format!(
            "{name} must be in {}..={}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

fn router(app: App) -> Router<App> {
    Router::new(app)
        .get("/", dashboard)
        .get("/health", health)
        .route(Route::new(Method::GET, "/process", process).tracked())
        .route(Route::new(Method::GET, "/timeout-operation", timeout_operation).tracked())
        .post("/jobs", start_job)
        .get("/jobs", list_jobs)
        .get("/jobs/{id}", get_job)
        .delete("/jobs/{id}", cancel_job)
        .get("/stream", stream)
        .get("/events", events)
        .get("/stats", stats)
        .get("/operations", operations)
        .get("/dashboard/events", dashboard_events)
}

/// The command line (and `WEB_APP_THREADS`).
struct Options {
    addr: std::net::SocketAddr,
    threads: NonZeroUsize,
    hosts: Vec<String>,
}

/// Name of the threads that run the executor beside the main thread.
const WORKER_THREAD: &str = "web_app-worker";

const USAGE: &str = "usage: web_app [--addr HOST:PORT] [--threads N] [--allow-host NAME]...";

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut threads = std::env::var("WEB_APP_THREADS").ok();
    let mut hosts = Vec::new();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value ({USAGE})"))
        };
        match name.as_str() {
            "--addr" => addr = value()?,
            "--threads" => threads = Some(value()?),
            "--allow-host" => hosts.push(value()?),
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        }
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("bad --addr {addr:?}: {e}"))?;
    let threads = match threads {
        Some(n) => n
            .parse()
            .map_err(|_| format!("--threads (or WEB_APP_THREADS) must be 1 or more, got {n:?}"))?,
        None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
    };
    Ok(Options {
        addr,
        threads,
        hosts,
    })
}

/// Serves until SIGINT or SIGTERM; connections, streams and jobs run on `executor`.
async fn serve(options: &Options, executor: Arc<smol::Executor<'static>>) -> std::io::Result<()> {
    let hosts = options
        .hosts
        .iter()
        .fold(AllowedHosts::local(), |hosts, name| {
            hosts.and(name.as_str())
        });
    // Bodies here are small JSON documents: a client silent for 5 s in the middle of one is not
    // coming back (408), and must not hold one of the 1,024 connections longer.
    let config = ServerConfig::default()
        .max_body_size(64 * 1024)
        .body_read_timeout(Duration::from_secs(5))
        .grace(Duration::from_secs(5))
        .allowed_hosts(hosts)
        .cross_origin_protection(true)
        .require_json_posts(true)
        .max_websocket_frame(64 * 1024)
        .max_websocket_message(64 * 1024)
        .executor(executor);
    let server = Server::new(config);
    let jobs = Jobs::new(&server, 32);
    let stop = CancellationToken::new();
    // Installed before the address is printed: a signal sent on seeing it is never missed.
    #[cfg(unix)]
    let _signals = cancelable_smol::cancel_on_signals(&stop, [])?;
    let listener = cancelable_http::bind(options.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let service = router(App {
        server: server.clone(),
        jobs,
    })
    .into_service();
    let report = server.serve(listener, service, &stop).await;
    eprintln!(
        "stopped ({}): {report}",
        stop.reason().map_or("no reason".into(), |r| r.to_string())
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    // One executor, run by this thread and `threads - 1` more: handlers run on all of them.
    let executor = Arc::new(smol::Executor::new());
    let finished = CancellationToken::new();
    let result = std::thread::scope(|scope| {
        for _ in 1..options.threads.get() {
            let (executor, done) = (executor.clone(), finished.clone());
            // Named so that tools (and the tests) can tell executor threads from the runtime's
            // helpers, which come and go with timers and blocking calls.
            let started = std::thread::Builder::new()
                .name(WORKER_THREAD.to_owned())
                .spawn_scoped(scope, move || {
                    smol::block_on(executor.run(done.cancelled()));
                });
            if let Err(e) = started {
                finished.cancel();
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot start an executor thread ({e}); try fewer --threads"),
                ));
            }
        }
        let result = smol::block_on(executor.run(serve(&options, executor.clone())));
        finished.cancel();
        result
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web_app: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
