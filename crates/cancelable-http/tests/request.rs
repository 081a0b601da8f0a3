//! The request token over real sockets: cancelled with `disconnected` when the client leaves
//! mid-request, never after a normal response, `timeout` → 504, `shutdown` → 503 and a
//! graceful stop within the grace period; any hyper service can be wrapped.

mod common;

use std::convert::Infallible;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancellationToken, current};
use cancelable_http::{
    HandlerResult, RequestContext, Route, Router, ServerConfig, json, request_token,
};
use common::{LONG, TestServer, closed_by_peer, read_response, request_text, signal};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

/// What handlers tell the test: that they started, and the reason their token got.
#[derive(Clone)]
struct Probe {
    started: SyncSender<()>,
    reasons: SyncSender<(CancelKind, Instant)>,
    tokens: Arc<Mutex<Vec<CancellationToken>>>,
}

struct Events {
    started: Receiver<()>,
    reasons: Receiver<(CancelKind, Instant)>,
    tokens: Arc<Mutex<Vec<CancellationToken>>>,
}

fn probe() -> (Probe, Events) {
    let (started, started_rx) = signal();
    let (reasons, reasons_rx) = signal();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    (
        Probe {
            started,
            reasons,
            tokens: tokens.clone(),
        },
        Events {
            started: started_rx,
            reasons: reasons_rx,
            tokens,
        },
    )
}

/// Registers the callback that reports the request token's reason, then says "started".
fn watch(req: &Request<Incoming>, probe: &Probe) -> CancellationToken {
    let token = request_token(req).expect("layer").clone();
    let reasons = probe.reasons.clone();
    // Forgotten: it stays registered for the token's life (a small test-only leak); it runs
    // on the cancelling thread the moment the token is cancelled.
    std::mem::forget(token.on_cancel(move |reason| {
        let _ = reasons.send((reason.kind(), Instant::now()));
    }));
    probe.tokens.lock().unwrap().push(token.clone());
    probe.started.send(()).unwrap();
    token
}

async fn forever(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    watch(&req, &probe);
    std::future::pending().await
}

async fn quick(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    watch(&req, &probe);
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

async fn tracked(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    // Inside a tracked route, `current()` is the request's operation: a child of its token.
    let cx = current().expect("tracked routes run as operations");
    assert!(!cx.is_cancelled());
    cx.report_progress(1, Some(2), "half");
    let token = watch(&req, &probe);
    token.cancelled().await;
    assert!(
        cx.is_cancelled(),
        "the operation is a child of the request token"
    );
    std::future::pending().await
}

fn router(probe: Probe) -> impl FnOnce(&cancelable_http::Server) -> Router<Probe> {
    move |_| {
        Router::new(probe)
            .get("/forever", forever)
            .get("/quick", quick)
            .route(
                Route::new(Method::GET, "/slow-timeout", forever)
                    .timeout(Duration::from_millis(100)),
            )
            .route(Route::new(Method::GET, "/tracked", tracked).tracked())
    }
}

#[test]
fn client_disconnect_cancels_the_request_with_disconnected() {
    let (probe, events) = probe();
    let t = TestServer::start(ServerConfig::default(), router(probe));
    for _ in 0..20 {
        let mut stream = t.connect();
        stream
            .write_all(request_text("GET", "/forever", None, false).as_bytes())
            .unwrap();
        events.started.recv_timeout(LONG).unwrap();
        let closed = Instant::now();
        drop(stream);
        let (kind, at) = events
            .reasons
            .recv_timeout(LONG)
            .expect("cancelled after the close");
        assert_eq!(kind, CancelKind::Disconnected);
        // hyper drops the future within about a millisecond; 100 ms is a loose bound.
        assert!(
            at.duration_since(closed) < Duration::from_millis(100),
            "{:?}",
            at.duration_since(closed)
        );
    }
    t.until("no active request", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(stats.cancelled_requests, 20);
    assert_eq!(stats.completed_requests, 0);
}

#[test]
fn half_close_also_cancels() {
    let (probe, events) = probe();
    let t = TestServer::start(ServerConfig::default(), router(probe));
    let stream = t.connect();
    (&stream)
        .write_all(request_text("GET", "/forever", None, false).as_bytes())
        .unwrap();
    events.started.recv_timeout(LONG).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (kind, _) = events.reasons.recv_timeout(LONG).unwrap();
    assert_eq!(kind, CancelKind::Disconnected);
}

#[test]
fn a_normal_response_does_not_cancel() {
    let (probe, events) = probe();
    let t = TestServer::start(ServerConfig::default(), router(probe));
    // Keep-alive: two responses on one connection, then the client closes it.
    let stream = t.connect();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        (&stream)
            .write_all(request_text("GET", "/quick", None, false).as_bytes())
            .unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status, 200);
    }
    drop((stream, reader));
    t.until("the connection to close", |s| s.open_connections() == 0);
    // A connection: close request too.
    assert_eq!(t.get("/quick").status, 200);
    t.until("the connection to close", |s| s.open_connections() == 0);
    let tokens = events.tokens.lock().unwrap();
    assert_eq!(tokens.len(), 3);
    assert!(
        tokens.iter().all(|t| !t.is_cancelled()),
        "a normal response cancelled its token"
    );
    assert!(events.reasons.try_recv().is_err());
    let stats = t.server.stats();
    assert_eq!(
        (
            stats.completed_requests,
            stats.cancelled_requests,
            stats.active_requests
        ),
        (3, 0, 0)
    );
}

#[test]
fn route_timeout_answers_504_and_cancels_with_timeout() {
    let (probe, events) = probe();
    let t = TestServer::start(ServerConfig::default(), router(probe));
    let start = Instant::now();
    let response = t.get("/slow-timeout");
    let took = start.elapsed();
    assert_eq!(response.status, 504);
    assert_eq!(response.body, r#"{"error":"timeout"}"#);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(took >= Duration::from_millis(100), "early: {took:?}");
    assert!(took < Duration::from_secs(1), "late: {took:?}");
    assert_eq!(
        events.reasons.recv_timeout(LONG).unwrap().0,
        CancelKind::Timeout
    );
    assert_eq!(t.server.stats().cancelled_requests, 1);
}

#[test]
fn request_context_timeout_from_the_handler() {
    async fn dynamic(req: Request<Incoming>, _: ()) -> HandlerResult {
        let cx = RequestContext::of(&req).unwrap().clone();
        cx.timeout(Duration::from_millis(30));
        smol::Timer::after(Duration::from_secs(30)).await;
        Ok(json(StatusCode::OK, &"late"))
    }
    let t = TestServer::start(ServerConfig::default(), |_| {
        Router::new(()).get("/d", dynamic)
    });
    let start = Instant::now();
    assert_eq!(t.get("/d").status, 504);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn tracked_route_is_an_operation_child_of_the_request() {
    let (probe, events) = probe();
    let t = TestServer::start(ServerConfig::default(), router(probe));
    let stream = t.connect();
    (&stream)
        .write_all(request_text("GET", "/tracked", None, false).as_bytes())
        .unwrap();
    events.started.recv_timeout(LONG).unwrap();
    let live = t.server.operations(50);
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].name.as_str(), live[0].kind.as_str(), live[0].status),
        ("GET /tracked", "request", "running")
    );
    assert_eq!(
        (live[0].progress.done, live[0].progress.total),
        (1, Some(2))
    );
    drop(stream);
    assert_eq!(
        events.reasons.recv_timeout(LONG).unwrap().0,
        CancelKind::Disconnected
    );
    t.until("the operation to finish", |s| {
        s.operations(50)
            .first()
            .is_some_and(|o| o.status == "cancelled")
    });
    let done = &t.server.operations(50)[0];
    assert_eq!(done.reason, Some("disconnected"));
}

#[test]
fn shutdown_cancels_in_flight_requests_and_waits() {
    let (probe, events) = probe();
    let mut t = TestServer::start(
        ServerConfig::default().grace(Duration::from_secs(5)),
        router(probe),
    );
    let mut streams = Vec::new();
    for _ in 0..3 {
        let stream = t.connect();
        (&stream)
            .write_all(request_text("GET", "/forever", None, false).as_bytes())
            .unwrap();
        events.started.recv_timeout(LONG).unwrap();
        streams.push(stream);
    }
    // An idle keep-alive connection too: it must be closed, not waited for.
    let mut idle = t.connect();
    let start = Instant::now();
    let report = t.shutdown();
    assert!(report.stopped_in_time(), "{report}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    for _ in 0..3 {
        assert_eq!(
            events.reasons.recv_timeout(LONG).unwrap().0,
            CancelKind::Shutdown
        );
    }
    for stream in streams {
        let response = read_response(&mut std::io::BufReader::new(stream)).unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.json()["reason"], "shutdown");
    }
    assert!(closed_by_peer(&mut idle));
    assert_eq!(t.server.stats().active_requests, 0);
    // No longer accepting.
    assert!(std::net::TcpStream::connect(t.addr).is_err() || t.server.token().is_cancelled());
}

#[test]
fn shutdown_gives_up_after_the_grace_period() {
    let mut t = TestServer::start(
        ServerConfig::default().grace(Duration::from_millis(200)),
        |_| Router::new(()),
    );
    // Work that ignores cancelation, tracked by the server.
    let stuck = t.server.tracker().token();
    let start = Instant::now();
    let report = t.shutdown();
    let took = start.elapsed();
    assert!(!report.stopped_in_time());
    assert_eq!(report.still_running(), 1);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    drop(stuck);
}

#[test]
fn the_layer_wraps_any_hyper_service() {
    let server = cancelable_http::Server::new(ServerConfig::default());
    let seen = Arc::new(Mutex::new(None));
    let slot = seen.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let slot = slot.clone();
        async move {
            *slot.lock().unwrap() = request_token(&req).cloned();
            Ok::<_, Infallible>(hyper::Response::new(cancelable_http::full("plain hyper")))
        }
    });
    let t = TestServer::start_service(server, service);
    let response = t.get("/anything");
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "plain hyper")
    );
    let token = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the service saw a request token");
    assert!(!token.is_cancelled());
    t.server.token().cancel_with(CancelKind::Shutdown);
    assert!(
        token.is_cancelled(),
        "the request token is a child of the server token"
    );
}
