//! HTTP/2 with prior knowledge (h2c) on the HTTP/1.1 port: a client's RST_STREAM cancels that
//! request's token with `disconnected` at once while its sibling streams go on; closing the
//! connection, or a GOAWAY carrying an error, cancels every request of the connection.
//!
//! Well-behaved traffic goes through the `h2` crate's client (over smol, through tokio-util's
//! compat adapter: no tokio runtime); the misbehaving client is a few hand-written frames over a
//! raw socket, so the test controls every byte.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cancelable::{CancelKind, CancellationToken};
use cancelable_http::{
    AllowedHosts, Event, HandlerResult, Router, ServerConfig, json, read_body, request_token, sse,
};
use common::{LONG, TestServer, read_response, request_text, signal};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

/// What handlers report: `(path, token)` when they start, `(path, reason, when)` when their
/// token is cancelled.
#[derive(Clone)]
struct Probe {
    started: SyncSender<(String, CancellationToken)>,
    reasons: SyncSender<(String, CancelKind, Instant)>,
    release: async_channel::Receiver<()>,
}

struct Events {
    started: Receiver<(String, CancellationToken)>,
    reasons: Receiver<(String, CancelKind, Instant)>,
    release: async_channel::Sender<()>,
}

fn probe() -> (Probe, Events) {
    let (started, started_rx) = signal();
    let (reasons, reasons_rx) = signal();
    let (release_tx, release) = async_channel::unbounded();
    (
        Probe {
            started,
            reasons,
            release,
        },
        Events {
            started: started_rx,
            reasons: reasons_rx,
            release: release_tx,
        },
    )
}

impl Probe {
    fn watch<B>(&self, req: &Request<B>) {
        let path = req.uri().path().to_owned();
        let token = request_token(req)
            .expect("served through the layer")
            .clone();
        let reasons = self.reasons.clone();
        let name = path.clone();
        // Forgotten: stays registered for the token's life (a small test-only leak).
        std::mem::forget(token.on_cancel(move |reason| {
            let _ = reasons.send((name.clone(), reason.kind(), Instant::now()));
        }));
        self.started.send((path, token)).unwrap();
    }
}

impl Events {
    /// Waits until `n` handlers started; their tokens, by path.
    fn started(&self, n: usize) -> Vec<(String, CancellationToken)> {
        let mut all: Vec<_> = (0..n)
            .map(|_| self.started.recv_timeout(LONG).expect("a handler started"))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The next cancelation: which path, why, and how long after `since`.
    fn cancelled(&self, since: Instant) -> (String, CancelKind, Duration) {
        let (path, kind, at) = self
            .reasons
            .recv_timeout(LONG)
            .expect("a request token was cancelled");
        (path, kind, at.saturating_duration_since(since))
    }
}

/// Never answers.
async fn hold(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    probe.watch(&req);
    std::future::pending().await
}

/// Answers once the test releases it.
async fn wait(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    probe.watch(&req);
    probe.release.recv().await.expect("released");
    Ok(json(StatusCode::OK, &"released"))
}

async fn hello(_req: Request<Incoming>, _probe: Probe) -> HandlerResult {
    Ok(json(StatusCode::OK, &"hello"))
}

/// Server-sent events until the client leaves; the producer's token is what it reports.
async fn events(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    sse(&req, "ticks", move |cx, tx| async move {
        let token = cx.token().clone();
        let reasons = probe.reasons.clone();
        std::mem::forget(token.on_cancel(move |reason| {
            let _ = reasons.send(("/events".to_owned(), reason.kind(), Instant::now()));
        }));
        probe.started.send(("/events".to_owned(), token)).unwrap();
        for n in 0u64.. {
            if tx.send(Event::json(&n)).await.is_err() {
                break;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        cx.check()
    })
}

/// Reads the whole body (bounded by the server's body limit).
async fn upload(mut req: Request<Incoming>, probe: Probe) -> HandlerResult {
    probe.watch(&req);
    let body = read_body(&mut req).await?;
    Ok(json(StatusCode::OK, &body.len()))
}

fn start(config: ServerConfig, probe: Probe) -> TestServer {
    TestServer::start(config, move |_| {
        Router::new(probe)
            .get("/hold", hold)
            .get("/hold2", hold)
            .get("/wait", wait)
            .get("/hello", hello)
            .post("/upload", upload)
            .post("/hold", hold)
            .get("/events", events)
    })
}

/// An `h2` client connection over smol; the connection is driven by its own task.
async fn connect(addr: SocketAddr) -> (h2::client::SendRequest<Bytes>, smol::Task<()>) {
    let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (client, connection) = h2::client::handshake(tcp.compat())
        .await
        .expect("an HTTP/2 handshake on the HTTP/1.1 port");
    let driver = smol::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://test{path}")).body(()).unwrap()
}

/// Sends a GET on a new stream; the response future and the stream's send half.
async fn send(
    client: &mut h2::client::SendRequest<Bytes>,
    path: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    client.clone().ready().await.unwrap();
    client.send_request(get(path), true).unwrap()
}

/// A connection closed `took` after the test's view of when its `bound` began: not before the
/// bound (less 50 ms, as the server may start counting a moment before the test does), and
/// well within the test's patience.
fn closed_by_the_bound(took: Duration, bound: Duration) {
    assert!(
        took >= bound - Duration::from_millis(50),
        "closed after {took:?}"
    );
    assert!(took < LONG, "{took:?}");
}

/// The status and body of a response.
async fn read(response: h2::client::ResponseFuture) -> (u16, String) {
    let response = response.await.expect("a response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8(text).unwrap())
}

#[test]
fn http2_with_prior_knowledge_and_http1_share_the_port() {
    let (probe, _events) = probe();
    let t = start(ServerConfig::default(), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        for _ in 0..3 {
            let (response, _) = send(&mut client, "/hello").await;
            assert_eq!(read(response).await, (200, r#""hello""#.to_owned()));
        }
    });
    let response = t.get("/hello");
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#""hello""#)
    );
    t.until("every request counted", |s| {
        s.stats().completed_requests == 4
    });
}

#[test]
fn the_host_rules_read_an_http2_requests_authority() {
    // HTTP/2 names the host in `:authority`, not in a Host header.
    let (probe, _events) = probe();
    let t = start(
        ServerConfig::default().allowed_hosts(AllowedHosts::local()),
        probe,
    );
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        for (authority, status) in [(t.addr.to_string(), 200), ("evil.example".into(), 400)] {
            client.clone().ready().await.unwrap();
            let request = Request::get(format!("http://{authority}/hello"))
                .body(())
                .unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            assert_eq!(read(response).await.0, status, "{authority}");
        }
    });
}

#[test]
fn rst_stream_cancels_that_request_within_100ms_while_a_sibling_stream_completes() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default(), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        let (_held, mut held_stream) = send(&mut client, "/hold").await;
        let (sibling, _) = send(&mut client, "/wait").await;
        let started = events.started(2);
        assert_eq!(started[0].0, "/hold");
        let reset = Instant::now();
        held_stream.send_reset(h2::Reason::CANCEL);
        let (path, kind, latency) = events.cancelled(reset);
        assert_eq!((path.as_str(), kind), ("/hold", CancelKind::Disconnected));
        assert!(
            latency < Duration::from_millis(100),
            "cancelled {latency:?} after the RST_STREAM (> 100 ms)"
        );
        // The sibling on the same connection goes on and answers.
        let sibling_token = &started[1].1;
        assert!(!sibling_token.is_cancelled());
        events.release.send(()).await.unwrap();
        assert_eq!(read(sibling).await, (200, r#""released""#.to_owned()));
        assert!(
            !sibling_token.is_cancelled(),
            "a normal response never cancels"
        );
        // The connection still takes new streams.
        let (response, _) = send(&mut client, "/hello").await;
        assert_eq!(read(response).await.0, 200);
    });
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.cancelled_requests, stats.completed_requests),
        (1, 2),
        "{stats:?}"
    );
}

#[test]
fn an_event_stream_stops_when_the_client_resets_its_stream() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default(), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        let (response, mut stream) = send(&mut client, "/events").await;
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = body.data().await.expect("an event").unwrap();
        assert!(first.starts_with(b"data: 0"), "{first:?}");
        events.started(1);
        let reset = Instant::now();
        stream.send_reset(h2::Reason::CANCEL);
        let (path, kind, latency) = events.cancelled(reset);
        assert_eq!((path.as_str(), kind), ("/events", CancelKind::Disconnected));
        assert!(latency < Duration::from_millis(100), "{latency:?}");
    });
    t.until("the stream to end", |s| s.stats().active_streams == 0);
}

#[test]
fn closing_the_connection_cancels_every_request_of_it_within_100ms() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default(), probe);
    for _ in 0..5 {
        let mut raw = raw::Client::connect(t.addr);
        raw.get(1, "/hold");
        raw.get(3, "/hold2");
        events.started(2);
        let closed = Instant::now();
        drop(raw);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (path, kind, latency) = events.cancelled(closed);
            assert_eq!(kind, CancelKind::Disconnected, "{path}");
            assert!(latency < Duration::from_millis(100), "{path}: {latency:?}");
            seen.push(path);
        }
        seen.sort();
        assert_eq!(seen, ["/hold", "/hold2"]);
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().cancelled_requests, 10);
}

#[test]
fn goaway_with_an_error_cancels_every_request_of_the_connection() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default(), probe);
    let mut raw = raw::Client::connect(t.addr);
    raw.get(1, "/hold");
    raw.get(3, "/hold2");
    events.started(2);
    let sent = Instant::now();
    // The socket stays open: the GOAWAY alone says the client is gone.
    raw.goaway(0, raw::INTERNAL_ERROR);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (path, kind, latency) = events.cancelled(sent);
        assert_eq!(kind, CancelKind::Disconnected, "{path}");
        assert!(latency < Duration::from_millis(100), "{path}: {latency:?}");
        seen.push(path);
    }
    seen.sort();
    assert_eq!(seen, ["/hold", "/hold2"]);
    t.until("every request counted", |s| s.stats().active_requests == 0);
}

#[test]
fn http1_keeps_working_beside_http2() {
    let (probe, _events) = probe();
    let t = start(ServerConfig::default(), probe);
    let stream = t.connect();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    for _ in 0..3 {
        (&stream)
            .write_all(request_text("GET", "/hello", None, false).as_bytes())
            .unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status, 200);
    }
}

#[test]
fn goaway_without_an_error_lets_the_requests_in_flight_finish() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default(), probe);
    let mut raw = raw::Client::connect(t.addr);
    raw.get(1, "/wait");
    raw.get(3, "/wait");
    let started = events.started(2);
    raw.goaway(0, raw::NO_ERROR);
    for _ in 0..2 {
        events.release.send_blocking(()).unwrap();
    }
    let mut answered = Vec::new();
    for frame in raw.until_closed() {
        assert_ne!(frame.kind, raw::RST_STREAM, "{frame:?}");
        if frame.kind == raw::DATA && frame.flags & raw::END_STREAM != 0 {
            answered.push(frame.stream);
        }
        if answered.len() == 2 {
            break;
        }
    }
    answered.sort();
    assert_eq!(answered, [1, 3], "both responses came");
    assert!(started.iter().all(|(_, token)| !token.is_cancelled()));
    t.until("every request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().completed_requests, 2);
}

#[test]
fn a_stream_past_max_concurrent_streams_is_refused_and_the_others_go_on() {
    let (probe, events) = probe();
    let t = start(ServerConfig::default().max_concurrent_streams(2), probe);
    let mut raw = raw::Client::connect(t.addr);
    raw.handshake();
    raw.get(1, "/hold");
    raw.get(3, "/hold");
    raw.get(5, "/hold");
    let refused = raw
        .until(|f| f.kind == raw::RST_STREAM)
        .expect("a RST_STREAM");
    assert_eq!(
        (refused.stream, refused.error_code()),
        (5, raw::REFUSED_STREAM)
    );
    let started = events.started(2);
    assert!(started.iter().all(|(_, token)| !token.is_cancelled()));
    // Every request that reaches the service is counted: once the connection is gone and
    // nothing is in flight, exactly the two accepted streams were ever requests.
    drop(raw);
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.cancelled_requests, stats.completed_requests),
        (2, 0),
        "the refused stream never became a request"
    );
}

#[test]
fn a_body_over_the_limit_gets_413_on_http2() {
    let (probe, _events) = probe();
    let t = start(ServerConfig::default().max_body_size(10), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        client.clone().ready().await.unwrap();
        for declared in [true, false] {
            let mut request = Request::post("http://test/upload");
            if declared {
                request = request.header("content-length", "11");
            }
            let (response, mut body) = client
                .send_request(request.body(()).unwrap(), false)
                .unwrap();
            body.send_data(Bytes::from_static(b"01234567890"), true)
                .unwrap();
            assert_eq!(read(response).await.0, 413, "declared length: {declared}");
        }
    });
}

#[test]
fn a_header_list_over_the_limit_gets_431() {
    let (probe, _events) = probe();
    let t = start(ServerConfig::default(), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        client.clone().ready().await.unwrap();
        let request = Request::get("http://test/hello")
            .header("x-big", "x".repeat(20_000))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        assert_eq!(read(response).await.0, 431);
    });
}

#[test]
fn a_client_that_sends_no_request_is_closed_after_the_header_read_timeout() {
    let bound = Duration::from_millis(300);
    let (probe, _events) = probe();
    let t = start(ServerConfig::default().header_read_timeout(bound), probe);
    let mut raw = raw::Client::connect(t.addr);
    let start = Instant::now();
    let frames = raw.until_closed();
    closed_by_the_bound(start.elapsed(), bound);
    assert!(
        frames.iter().any(|f| f.kind == raw::GOAWAY),
        "a GOAWAY before the close: {frames:?}"
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let bound = Duration::from_millis(300);
    let (probe, _events) = probe();
    let t = start(
        ServerConfig::default()
            .idle_timeout(bound)
            .header_read_timeout(LONG),
        probe,
    );
    let mut raw = raw::Client::connect(t.addr);
    raw.get(1, "/hello");
    raw.until(|f| f.stream == 1 && f.flags & raw::END_STREAM != 0)
        .expect("the response");
    let answered = Instant::now();
    raw.until_closed();
    let idle = answered.elapsed();
    assert!(
        idle >= bound - Duration::from_millis(50),
        "closed after {idle:?}"
    );
    assert!(
        idle < LONG / 2,
        "the idle bound, not the header one: {idle:?}"
    );
}

#[test]
fn a_header_block_left_open_closes_the_connection_after_the_header_read_timeout() {
    let bound = Duration::from_millis(300);
    let (probe, events) = probe();
    let t = start(ServerConfig::default().header_read_timeout(bound), probe);
    let mut raw = raw::Client::connect(t.addr);
    raw.get(1, "/hold");
    events.started(1);
    // HEADERS without END_HEADERS: a CONTINUATION is due and never comes.
    let block = raw::request_block("GET", "/hello");
    raw.write(&raw::frame(raw::HEADERS, raw::END_STREAM, 3, &block[..2]));
    let sent = Instant::now();
    let (path, kind, _) = events.cancelled(sent);
    assert_eq!((path.as_str(), kind), ("/hold", CancelKind::Timeout));
    raw.until_closed();
    closed_by_the_bound(sent.elapsed(), bound);
}

#[test]
fn a_body_that_never_comes_closes_the_connection_after_the_body_read_timeout() {
    let bound = Duration::from_millis(300);
    let (probe, events) = probe();
    let t = start(ServerConfig::default().body_read_timeout(bound), probe);
    let mut raw = raw::Client::connect(t.addr);
    raw.handshake();
    raw.post(1, "/upload");
    events.started(1);
    let sent = Instant::now();
    let (_, kind, _) = events.cancelled(sent);
    assert_eq!(kind, CancelKind::Timeout);
    raw.until_closed();
    closed_by_the_bound(sent.elapsed(), bound);
    t.until("every request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().cancelled_requests, 1);
}

#[test]
fn a_body_the_handler_leaves_unread_is_not_held_against_the_client() {
    // The client sends all the flow-control credit it has (1 MiB) to a handler that never
    // reads it: blocked by the server, it owes nothing, however long that lasts.
    let bound = Duration::from_millis(200);
    let (probe, events) = probe();
    let t = start(
        ServerConfig::default()
            .body_read_timeout(bound)
            .min_body_rate(1_000_000),
        probe,
    );
    let mut raw = raw::Client::connect(t.addr);
    raw.handshake();
    raw.post(1, "/hold");
    let chunk = raw::frame(raw::DATA, 0, 1, &[b'x'; 16 * 1024]);
    for _ in 0..64 {
        raw.write(&chunk);
    }
    let (_, token) = events.started(1).remove(0);
    // A request started after this one on another connection, whose body never comes: its
    // `timeout` shows that the body bounds have passed for this one too.
    let mut stalled = raw::Client::connect(t.addr);
    stalled.handshake();
    stalled.post(1, "/upload");
    events.started(1);
    let (_, kind, _) = events.cancelled(Instant::now());
    assert_eq!(kind, CancelKind::Timeout);
    assert!(!token.is_cancelled(), "{:?}", token.reason());
    let closed = Instant::now();
    drop(raw);
    let (_, kind, _) = events.cancelled(closed);
    assert_eq!(kind, CancelKind::Disconnected);
}

#[test]
fn a_response_the_client_grants_no_credit_for_closes_the_connection_after_the_send_timeout() {
    // The client reads every frame, so the socket never stalls, but it gives each stream 50
    // bytes of credit and never grants more.
    let bound = Duration::from_millis(300);
    let (probe, events) = probe();
    let t = start(ServerConfig::default().send_timeout(bound), probe);
    let mut raw = raw::Client::connect(t.addr);
    // The window parameter comes third, past the first eight payload bytes.
    raw.write(&raw::settings(&[(0x2, 0), (0x3, 100), (0x4, 50)]));
    raw.handshake();
    raw.get(1, "/events");
    let sent = Instant::now();
    events.started(1);
    let frames = raw.until_closed();
    let (path, kind, _) = events.cancelled(sent);
    assert_eq!((path.as_str(), kind), ("/events", CancelKind::Timeout));
    closed_by_the_bound(sent.elapsed(), bound);
    let data: usize = (frames.iter())
        .filter(|f| f.kind == raw::DATA && f.stream == 1)
        .map(|f| f.payload.len())
        .sum();
    assert_eq!(
        data, 50,
        "the server sends what the window allows, then waits"
    );
    assert!(frames.iter().any(|f| f.kind == raw::GOAWAY), "{frames:?}");
    t.until("every request counted", |s| s.stats().active_requests == 0);
}

#[test]
fn a_client_that_grants_credit_as_it_reads_keeps_a_long_response_going() {
    // Windows of 64 bytes: the server runs out of credit every few events and waits for the
    // client's next grant, far longer in all than the bound, never that long at once.
    let bound = Duration::from_millis(100);
    let (probe, events) = probe();
    let t = start(ServerConfig::default().send_timeout(bound), probe);
    smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(t.addr).await.unwrap();
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(64)
            .handshake::<_, Bytes>(tcp.compat())
            .await
            .unwrap();
        let _driver = smol::spawn(async move {
            let _ = connection.await;
        });
        let (response, _) = send(&mut client.clone(), "/events").await;
        let (_, token) = events.started(1).remove(0);
        let mut body = response.await.unwrap().into_body();
        let started = Instant::now();
        let mut ticks = 0;
        while started.elapsed() < 4 * bound {
            let chunk = body.data().await.expect("the stream goes on").unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            ticks += chunk.windows(5).filter(|w| w == b"data:").count();
        }
        assert!(ticks >= 10, "{ticks} events");
        assert!(!token.is_cancelled(), "{:?}", token.reason());
    });
}

#[test]
fn shutdown_sends_goaway_answers_503_and_waits_for_nothing_else() {
    let (probe, events) = probe();
    let mut t = start(ServerConfig::default().grace(LONG), probe);
    let mut busy = raw::Client::connect(t.addr);
    busy.get(1, "/hold");
    events.started(1);
    let mut idle = raw::Client::connect(t.addr);
    idle.handshake();
    let stopping = Instant::now();
    t.stop.cancel();
    for client in [&mut busy, &mut idle] {
        let frames = client.until_closed();
        assert!(
            frames.iter().any(|f| f.kind == raw::GOAWAY),
            "a GOAWAY: {frames:?}"
        );
    }
    assert!(t.wait_stopped().stopped_in_time());
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    assert_eq!(t.server.stats().cancelled_requests, 1);
}

#[test]
fn the_503_of_a_request_cut_by_shutdown_reaches_an_http2_client() {
    let (probe, events) = probe();
    let mut t = start(ServerConfig::default().grace(LONG), probe);
    smol::block_on(async {
        let (mut client, _driver) = connect(t.addr).await;
        let (response, _) = send(&mut client, "/hold").await;
        events.started(1);
        t.stop.cancel();
        assert_eq!(read(response).await.0, 503);
    });
    assert!(t.wait_stopped().stopped_in_time());
}

#[test]
fn http2_can_be_turned_off() {
    let (probe, _events) = probe();
    let t = start(ServerConfig::default().http2(false), probe);
    let mut tcp = t.connect();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    tcp.write_all(&raw::frame(raw::SETTINGS, 0, 0, &[]))
        .unwrap();
    // HTTP/1.1 refuses the preface: the connection closes, no HTTP/2 SETTINGS come.
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

/// A hand-written HTTP/2 client: the connection preface, frames written byte for byte, and a
/// reader of the server's frames (RFC 9113).
mod raw {
    use super::*;

    pub const NO_ERROR: u32 = 0x0;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const REFUSED_STREAM: u32 = 0x7;

    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;

    pub const ACK: u8 = 0x1;

    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;

    pub struct Client {
        pub tcp: TcpStream,
    }

    /// One frame from the server.
    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of a RST_STREAM or GOAWAY.
        pub fn error_code(&self) -> u32 {
            let at = if self.kind == GOAWAY { 4 } else { 0 };
            u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
        }
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A SETTINGS frame with these parameters.
    pub fn settings(parameters: &[(u16, u32)]) -> Vec<u8> {
        let payload: Vec<u8> = (parameters.iter())
            .flat_map(|&(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
            .collect();
        frame(SETTINGS, 0, 0, &payload)
    }

    /// An HPACK header block for `method path` (static table entries and literals without
    /// indexing, no Huffman coding).
    pub fn request_block(method: &str, path: &str) -> Vec<u8> {
        let mut block = vec![match method {
            "GET" => 0x82,
            "POST" => 0x83,
            other => panic!("no static entry for {other}"),
        }];
        block.push(0x86); // :scheme http
        for (index, value) in [(0x04, path), (0x01, "test")] {
            block.push(index); // literal without indexing, indexed name (:path, :authority)
            block.push(u8::try_from(value.len()).unwrap());
            block.extend_from_slice(value.as_bytes());
        }
        block
    }

    impl Client {
        /// Connects and sends the preface and an empty SETTINGS frame.
        pub fn connect(addr: SocketAddr) -> Self {
            let tcp = TcpStream::connect(addr).unwrap();
            tcp.set_nodelay(true).unwrap();
            tcp.set_read_timeout(Some(LONG)).unwrap();
            let mut client = Self { tcp };
            client.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            client.write(&frame(SETTINGS, 0, 0, &[]));
            client
        }

        pub fn write(&mut self, bytes: &[u8]) {
            self.tcp.write_all(bytes).unwrap();
        }

        /// A complete GET request on `stream`.
        pub fn get(&mut self, stream: u32, path: &str) {
            let block = request_block("GET", path);
            self.write(&frame(HEADERS, END_STREAM | END_HEADERS, stream, &block));
        }

        /// Acknowledges the server's SETTINGS and waits for its connection window grant, so
        /// that the server's windows apply.
        pub fn handshake(&mut self) {
            let settings = self
                .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
                .expect("the server's SETTINGS");
            assert_eq!(settings.stream, 0);
            self.write(&frame(SETTINGS, ACK, 0, &[]));
            self.until(|f| f.kind == WINDOW_UPDATE && f.stream == 0)
                .expect("the server's connection window grant");
        }

        /// A POST request head on `stream`, its body to follow.
        pub fn post(&mut self, stream: u32, path: &str) {
            let block = request_block("POST", path);
            self.write(&frame(HEADERS, END_HEADERS, stream, &block));
        }

        pub fn goaway(&mut self, last_stream: u32, error: u32) {
            let mut payload = last_stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&error.to_be_bytes());
            self.write(&frame(GOAWAY, 0, 0, &payload));
        }

        /// The next frame, or `None` once the server closed the connection.
        pub fn read_frame(&mut self) -> Option<Frame> {
            let mut head = [0u8; 9];
            match self.tcp.read_exact(&mut head) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("reading a frame: {e}"),
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0; len];
            self.tcp.read_exact(&mut payload).ok()?;
            let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
            Some(Frame {
                kind: head[3],
                flags: head[4],
                stream,
                payload,
            })
        }

        /// Reads frames until one matches; `None` if the connection closed first.
        pub fn until(&mut self, mut want: impl FnMut(&Frame) -> bool) -> Option<Frame> {
            while let Some(frame) = self.read_frame() {
                if want(&frame) {
                    return Some(frame);
                }
            }
            None
        }

        /// Reads frames until the server closes the connection; the frames read.
        pub fn until_closed(&mut self) -> Vec<Frame> {
            std::iter::from_fn(|| self.read_frame()).collect()
        }
    }
}
