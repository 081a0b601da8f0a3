//! A disconnect is never missed, whatever the client sent after its request: the request token
//! is cancelled with `disconnected` within 100 ms of the client's FIN or RST under
//! `Server::serve`, for the router and for any plain hyper service; a body cut short counts as a
//! disconnect, not as a bad request; pipelining keeps working and a normal response never
//! cancels; a half-close is a disconnect, but an answer that is ready is still delivered.

mod common;

use std::convert::Infallible;
use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancellationToken};
use cancelable_http::{
    HandlerResult, Router, Server, ServerConfig, json, read_body, request_token,
};
use common::{LONG, TestServer, read_response, request_text, signal};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

/// Where handlers report: "started" with the request's token, and each cancel reason with
/// the moment it arrived.
#[derive(Clone)]
struct Probe {
    started: SyncSender<CancellationToken>,
    reasons: SyncSender<(CancelKind, Instant)>,
}

struct Events {
    started: Receiver<CancellationToken>,
    reasons: Receiver<(CancelKind, Instant)>,
}

fn probe() -> (Probe, Events) {
    let (started, started_rx) = signal();
    let (reasons, reasons_rx) = signal();
    (
        Probe { started, reasons },
        Events {
            started: started_rx,
            reasons: reasons_rx,
        },
    )
}

impl Probe {
    /// Reports the token's cancel reason the moment it is cancelled, then "started".
    fn watch<B>(&self, req: &Request<B>) {
        let token = request_token(req)
            .expect("served through the layer")
            .clone();
        let reasons = self.reasons.clone();
        // Forgotten: stays registered for the token's life (a small test-only leak).
        std::mem::forget(token.on_cancel(move |reason| {
            let _ = reasons.send((reason.kind(), Instant::now()));
        }));
        self.started.send(token).unwrap();
    }
}

impl Events {
    /// Waits for the handler to start, closes `stream` as `close` says, and returns the
    /// reason the request token got and how long after the close it came.
    fn cancel_after(&self, close: impl FnOnce()) -> (CancelKind, Duration) {
        self.started
            .recv_timeout(LONG)
            .expect("the handler started");
        let closed = Instant::now();
        close();
        let (kind, at) = self
            .reasons
            .recv_timeout(LONG)
            .expect("the request token was cancelled after the client left");
        (kind, at.saturating_duration_since(closed))
    }
}

async fn forever(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    probe.watch(&req);
    std::future::pending().await
}

async fn quick(_req: Request<Incoming>, _probe: Probe) -> HandlerResult {
    Ok(json(StatusCode::OK, &"quick"))
}

async fn upload(mut req: Request<Incoming>, probe: Probe) -> HandlerResult {
    probe.watch(&req);
    let body = read_body(&mut req).await?;
    Ok(json(StatusCode::OK, &body.len()))
}

fn routed(probe: Probe) -> TestServer {
    TestServer::start(ServerConfig::default(), move |_| {
        Router::new(probe)
            .get("/forever", forever)
            .get("/quick", quick)
            .post("/upload", upload)
    })
}

/// A plain hyper service (no router): `/forever` never answers, anything else answers at once.
fn plain(probe: Probe) -> TestServer {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let probe = probe.clone();
        async move {
            if req.uri().path() == "/forever" {
                probe.watch(&req);
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(Response::new(cancelable_http::full("plain")))
        }
    });
    TestServer::start_service(Server::new(ServerConfig::default()), service)
}

fn assert_prompt_disconnect((kind, latency): (CancelKind, Duration), what: &str) {
    assert_eq!(kind, CancelKind::Disconnected, "{what}");
    assert!(
        latency < Duration::from_millis(100),
        "{what}: cancelled {latency:?} after the close (> 100 ms)"
    );
}

#[test]
fn disconnect_after_a_stray_crlf_cancels_within_100ms() {
    let (probe, events) = probe();
    let t = routed(probe);
    for _ in 0..10 {
        let mut stream = t.connect();
        let mut bytes = request_text("GET", "/forever", None, false);
        bytes.push_str("\r\n");
        stream.write_all(bytes.as_bytes()).unwrap();
        assert_prompt_disconnect(events.cancel_after(|| drop(stream)), "stray CRLF");
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().cancelled_requests, 10);
    assert_eq!(t.server.stats().completed_requests, 0);
}

#[test]
fn disconnect_behind_a_pipelined_request_cancels_within_100ms_for_any_hyper_service() {
    let (probe, events) = probe();
    let t = plain(probe);
    for _ in 0..10 {
        let mut stream = t.connect();
        let mut bytes = request_text("GET", "/forever", None, false);
        bytes.push_str(&request_text("GET", "/next", None, false));
        stream.write_all(bytes.as_bytes()).unwrap();
        assert_prompt_disconnect(events.cancel_after(|| drop(stream)), "pipelined request");
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(stats.cancelled_requests, 10, "{stats:?}");
    // The pipelined requests behind them were never served for nobody.
    assert_eq!(stats.completed_requests, 0, "{stats:?}");
}

#[test]
fn disconnect_behind_an_unread_body_cancels_within_100ms() {
    // A request with a body the handler never reads (more than hyper takes in one read),
    // then the client leaves.
    let (probe, events) = probe();
    let t = plain(probe);
    let mut stream = t.connect();
    let body = "x".repeat(12_000);
    write!(
        stream,
        "POST /forever HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    assert_prompt_disconnect(events.cancel_after(|| drop(stream)), "unread body");
}

#[test]
fn disconnect_behind_more_unread_bytes_than_the_read_ahead_holds_cancels_within_100ms() {
    // 64 KB of body the handler never reads: more than the server reads ahead (16 KiB), so
    // the FIN sits behind unread bytes in the socket.
    let (probe, events) = probe();
    let t = plain(probe);
    let mut stream = t.connect();
    let body = "x".repeat(64_000);
    write!(
        stream,
        "POST /forever HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    assert_prompt_disconnect(events.cancel_after(|| drop(stream)), "64 KB unread");
}

#[test]
fn pipelined_requests_are_answered_in_order_and_the_disconnect_after_them_is_seen() {
    let (probe, events) = probe();
    let t = routed(probe);
    let stream = t.connect();
    let mut bytes = String::new();
    for _ in 0..50 {
        bytes.push_str(&request_text("GET", "/quick", None, false));
    }
    bytes.push_str(&request_text("GET", "/forever", None, false));
    bytes.push_str("\r\n");
    (&stream).write_all(bytes.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for i in 0..50 {
        let response = read_response(&mut reader).unwrap();
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, r#""quick""#),
            "#{i}"
        );
    }
    assert_prompt_disconnect(
        events.cancel_after(|| {
            stream.shutdown(Shutdown::Both).unwrap();
            drop((stream, reader));
        }),
        "after 50 pipelined requests",
    );
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.completed_requests, stats.cancelled_requests),
        (50, 1)
    );
}

#[test]
fn a_client_vanishing_mid_body_is_cancelled_as_disconnected_not_answered_400() {
    let (probe, events) = probe();
    let t = routed(probe);
    for _ in 0..5 {
        let mut stream = t.connect();
        stream
            .write_all(b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{\"half\":")
            .unwrap();
        assert_eq!(
            events.cancel_after(|| drop(stream)).0,
            CancelKind::Disconnected
        );
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.cancelled_requests, stats.completed_requests),
        (5, 0),
        "a body cut short by the client leaving is a cancelled request: {stats:?}"
    );
}

#[test]
fn half_close_cancels_a_running_request_and_closes_the_connection() {
    let (probe, events) = probe();
    let t = routed(probe);
    let mut stream = t.connect();
    let mut bytes = request_text("GET", "/forever", None, false);
    bytes.push_str("\r\n");
    stream.write_all(bytes.as_bytes()).unwrap();
    let (kind, latency) = events.cancel_after(|| stream.shutdown(Shutdown::Write).unwrap());
    assert_eq!(kind, CancelKind::Disconnected);
    assert!(latency < Duration::from_millis(100), "{latency:?}");
    // No answer: the server cannot tell a half-close from a close.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn half_close_right_after_a_request_still_gets_an_answer_that_is_ready() {
    let (probe, _events) = probe();
    let t = routed(probe);
    for _ in 0..10 {
        let mut stream = t.connect();
        stream
            .write_all(request_text("GET", "/quick", None, false).as_bytes())
            .unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let response = read_response(&mut BufReader::new(&mut stream))
            .expect("an answer that was ready when the FIN came");
        assert_eq!(response.status, 200);
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "then the connection closes");
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().cancelled_requests, 0);
}

#[test]
fn trailing_bytes_on_a_connection_that_stays_never_cancel_a_normal_response() {
    let (probe, events) = probe();
    let t = routed(probe);
    let stream = t.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..5 {
        let mut bytes = request_text("GET", "/quick", None, false);
        bytes.push_str("\r\n");
        (&stream).write_all(bytes.as_bytes()).unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
    }
    drop((stream, reader));
    t.until("the connection to close", |s| s.open_connections() == 0);
    assert!(
        events.reasons.try_recv().is_err(),
        "a normal response was cancelled"
    );
    let stats = t.server.stats();
    assert_eq!((stats.completed_requests, stats.cancelled_requests), (5, 0));
}
