//! SSE and WebSocket over real sockets: the producer sees `disconnected` within milliseconds
//! of the peer leaving (close frame, TCP close, or SSE client close), keep-alives and pings
//! work, shutdown sends a close frame, and `active_streams` goes back to 0.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use cancelable::CancelKind;
use cancelable_http::{Event, HandlerResult, Router, ServerConfig, sse, websocket};
use common::{LONG, TestServer, read_head, request_text, signal};
use hyper::Request;
use hyper::body::Incoming;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

#[derive(Clone)]
struct Probe {
    reasons: SyncSender<(CancelKind, Instant)>,
}

/// A producer that sends `n` messages then waits forever (or returns after `n` if `finite`).
async fn events(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    let finite = req.uri().query() == Some("finite");
    sse(&req, "events", move |cx, tx| async move {
        let reasons = probe.reasons.clone();
        let _cb = cx.token().on_cancel(move |r| {
            let _ = reasons.send((r.kind(), Instant::now()));
        });
        for n in 0..3 {
            tx.send(Event::json(&n).event("tick"))
                .await
                .map_err(|_| cx.check().unwrap_err())?;
        }
        if finite {
            return Ok(());
        }
        std::future::pending().await
    })
}

async fn ws(mut req: Request<Incoming>, probe: Probe) -> HandlerResult {
    websocket(&mut req, "ws", move |cx, tx| async move {
        let reasons = probe.reasons.clone();
        let _cb = cx.token().on_cancel(move |r| {
            let _ = reasons.send((r.kind(), Instant::now()));
        });
        for n in 0..3 {
            tx.send_json(&serde_json::json!({"n": n}))
                .await
                .map_err(|_| cx.check().unwrap_err())?;
        }
        // Then quiet: a disconnect must be seen without any write failing.
        std::future::pending().await
    })
}

async fn ws_finite(mut req: Request<Incoming>, _probe: Probe) -> HandlerResult {
    websocket(&mut req, "ws-finite", |_cx, tx| async move {
        tx.send(cancelable_http::Message::text("only")).await.ok();
        Ok(())
    })
}

fn start(config: ServerConfig) -> (TestServer, Receiver<(CancelKind, Instant)>) {
    let (reasons, rx) = signal();
    let t = TestServer::start(config, move |_| {
        Router::new(Probe { reasons })
            .get("/events", events)
            .get("/ws", ws)
            .get("/ws-finite", ws_finite)
    });
    (t, rx)
}

/// Reads SSE body lines (chunked framing lines are skipped) until `n` `data:` lines came.
fn read_data_lines(reader: &mut impl BufRead, n: usize) -> Vec<String> {
    let mut data = Vec::new();
    while data.len() < n {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        if let Some(rest) = line.trim_end().strip_prefix("data: ") {
            data.push(rest.to_owned());
        }
    }
    data
}

fn open_sse(t: &TestServer, query: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = t.connect();
    (&stream)
        .write_all(request_text("GET", &format!("/events{query}"), None, false).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (status, headers) = read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "text/event-stream")
    );
    (stream, reader)
}

#[test]
fn sse_producer_sees_disconnected_when_the_client_closes() {
    let (t, reasons) = start(ServerConfig::default());
    for _ in 0..10 {
        let (stream, mut reader) = open_sse(&t, "");
        assert_eq!(read_data_lines(&mut reader, 3), ["0", "1", "2"]);
        assert_eq!(t.server.stats().active_streams, 1);
        let closed = Instant::now();
        drop((stream, reader));
        let (kind, at) = reasons.recv_timeout(LONG).unwrap();
        assert_eq!(kind, CancelKind::Disconnected);
        assert!(
            at.duration_since(closed) < Duration::from_millis(100),
            "{:?}",
            at.duration_since(closed)
        );
        t.until("no active stream", |s| s.stats().active_streams == 0);
    }
    let ops = t.server.operations(50);
    assert!(
        ops.iter()
            .all(|o| o.kind == "stream" && o.reason == Some("disconnected")),
        "{ops:?}"
    );
}

#[test]
fn sse_keep_alive_comments_and_a_clean_end() {
    let (t, _reasons) = start(ServerConfig::default().keep_alive(Duration::from_millis(20)));
    let (_stream, mut reader) = open_sse(&t, "");
    read_data_lines(&mut reader, 3);
    // Silence → a `:` comment line.
    let mut line = String::new();
    while line.trim_end() != ":" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    drop((_stream, reader));
    t.until("no active stream", |s| s.stats().active_streams == 0);
    // A finite producer ends the body (chunked terminator), the stream counts as completed.
    let (_stream, mut reader) = open_sse(&t, "?finite");
    read_data_lines(&mut reader, 3);
    let mut rest = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "0\r\n" {
            break;
        }
        rest.push_str(&line);
    }
    t.until("the stream to end", |s| s.stats().active_streams == 0);
}

fn ws_connect(t: &TestServer, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = t.connect();
    let url = format!("ws://{}{path}", t.addr);
    let (socket, response) = tungstenite::client(url.as_str(), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    socket
}

fn read_text(socket: &mut tungstenite::WebSocket<TcpStream>) -> String {
    loop {
        match socket.read().unwrap() {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn websocket_close_frame_and_tcp_close_both_cancel_with_disconnected() {
    let (t, reasons) = start(ServerConfig::default());
    for graceful in [true, false, true, false] {
        let mut socket = ws_connect(&t, "/ws");
        for n in 0..3 {
            assert_eq!(read_text(&mut socket), format!("{{\"n\":{n}}}"));
        }
        assert_eq!(t.server.stats().active_streams, 1);
        // A ping is answered while the producer is silent.
        socket.send(Message::Ping(b"hi".to_vec().into())).unwrap();
        match socket.read().unwrap() {
            Message::Pong(payload) => assert_eq!(&payload[..], b"hi"),
            other => panic!("expected a pong, got {other:?}"),
        }
        let closed = Instant::now();
        if graceful {
            socket.close(None).unwrap();
            // The server answers the close handshake.
            loop {
                match socket.read() {
                    Ok(Message::Close(_)) => continue,
                    Ok(other) => panic!("after close: {other:?}"),
                    Err(_) => break,
                }
            }
        } else {
            drop(socket); // TCP close, no close frame
        }
        let (kind, at) = reasons.recv_timeout(LONG).unwrap();
        assert_eq!(kind, CancelKind::Disconnected);
        assert!(
            at.duration_since(closed) < Duration::from_millis(100),
            "{:?}",
            at.duration_since(closed)
        );
        t.until("no active stream", |s| s.stats().active_streams == 0);
    }
}

#[test]
fn websocket_producer_end_and_shutdown_send_close_frames() {
    let (mut t, reasons) = start(ServerConfig::default());
    // The producer returns: a normal close frame.
    let mut socket = ws_connect(&t, "/ws-finite");
    assert_eq!(read_text(&mut socket), "only");
    match socket.read().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected close, got {other:?}"),
    }
    // Shutdown: 1001 going away, and the producer sees `shutdown`.
    let mut socket = ws_connect(&t, "/ws");
    for _ in 0..3 {
        read_text(&mut socket);
    }
    let report = t.shutdown();
    assert!(report.stopped_in_time(), "{report}");
    assert_eq!(reasons.recv_timeout(LONG).unwrap().0, CancelKind::Shutdown);
    match socket.read().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close, got {other:?}"),
    }
    assert_eq!(t.server.stats().active_streams, 0);
}

#[test]
fn a_plain_get_on_a_websocket_route_is_refused() {
    let (t, _reasons) = start(ServerConfig::default());
    let response = t.get("/ws");
    assert_eq!(response.status, 426);
    assert!(response.json()["error"].is_string());
    assert_eq!(t.server.stats().active_streams, 0);
}

/// Opens `/events` and returns the status of the answer (and the socket, kept open).
fn sse_status(t: &TestServer) -> (u16, TcpStream) {
    let stream = t.connect();
    (&stream)
        .write_all(request_text("GET", "/events", None, false).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (status, headers) = read_head(&mut reader).unwrap();
    if status != 200 {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["error"].is_string(), "{json}");
    }
    (status, stream)
}

#[test]
fn streams_past_max_streams_are_refused_with_429_and_start_nothing() {
    let (t, _reasons) = start(ServerConfig::default().max_streams(2));
    let (status, sse) = sse_status(&t);
    assert_eq!(status, 200);
    let socket = ws_connect(&t, "/ws");
    assert_eq!(t.server.stats().active_streams, 2);
    // Both kinds are refused past the cap, and nothing is started for them.
    let (status, _refused) = sse_status(&t);
    assert_eq!(status, 429);
    let url = format!("ws://{}/ws", t.addr);
    match tungstenite::client(url.as_str(), t.connect()) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected a 429 handshake failure, got {other:?}"),
    }
    assert_eq!(t.server.stats().active_streams, 2);
    assert_eq!(
        t.server
            .operations(50)
            .iter()
            .filter(|o| o.kind == "stream")
            .count(),
        2,
        "refused streams are not operations"
    );
    // A slot frees up when a stream ends.
    drop(sse);
    t.until("one stream left", |s| s.stats().active_streams == 1);
    let (status, _sse) = sse_status(&t);
    assert_eq!(status, 200);
    drop(socket);
}

#[test]
fn the_default_stream_cap_is_256() {
    let (t, reasons) = start(ServerConfig::default());
    // Each producer reports its cancelation into a bounded channel: keep it drained.
    let reported = std::thread::spawn(move || reasons.iter().take(256).count());
    let open: Vec<TcpStream> = (0..256)
        .map(|_| {
            let (status, stream) = sse_status(&t);
            assert_eq!(status, 200);
            stream
        })
        .collect();
    assert_eq!(t.server.stats().active_streams, 256);
    let started = Instant::now();
    assert_eq!(sse_status(&t).0, 429);
    assert!(started.elapsed() < LONG / 10, "the refusal came at once");
    drop(open);
    t.until("no active stream", |s| s.stats().active_streams == 0);
    assert_eq!(reported.join().unwrap(), 256);
}
