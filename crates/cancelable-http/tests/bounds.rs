//! Every phase of a connection is bounded: a body that stops coming (or trickles) gets `408`
//! after `body_read_timeout` / below `min_body_rate`, so silent-body clients cannot hold the
//! connection limit; a keep-alive connection idles for `idle_timeout`, independently of the
//! header read timeout; a client that stops reading its response is dropped after
//! `send_timeout`.

mod common;

use std::io::{BufReader, Write};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cancelable::CancelKind;
use cancelable_http::{Body, HandlerResult, Router, ServerConfig, json, read_body, request_token};
use common::{LONG, TestServer, closed_by_peer, read_response, request_text, signal};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

async fn upload(mut req: Request<Incoming>, _: ()) -> HandlerResult {
    let body = read_body(&mut req).await?;
    Ok(json(StatusCode::OK, &body.len()))
}

async fn hello(_req: Request<Incoming>, _: ()) -> HandlerResult {
    Ok(json(StatusCode::OK, &"hello"))
}

/// An endless response body: 64 KiB chunks as fast as the client takes them.
async fn firehose(_req: Request<Incoming>, _: ()) -> HandlerResult {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_lite::stream::repeat_with(move || {
        Ok::<_, cancelable_http::BoxError>(hyper::body::Frame::data(chunk.clone()))
    });
    let body: Body = http_body_util::StreamBody::new(stream).boxed_unsync();
    Ok(Response::new(body))
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config, |_| {
        Router::new(())
            .post("/upload", upload)
            .get("/hello", hello)
            .get("/firehose", firehose)
    })
}

const SILENT_BODY: &[u8] = b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n";

#[test]
fn a_body_that_never_comes_gets_408_after_the_body_read_timeout() {
    let bound = Duration::from_millis(300);
    let t = start(ServerConfig::default().body_read_timeout(bound));
    let mut stream = t.connect();
    stream.write_all(SILENT_BODY).unwrap();
    let start = Instant::now();
    let response = read_response(&mut BufReader::new(&mut stream)).expect("a 408");
    let took = start.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert!(response.json()["error"].is_string(), "{response:?}");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(took >= bound, "408 after {took:?}, before the bound");
    assert!(took < bound * 10, "408 only after {took:?}");
    assert!(closed_by_peer(&mut stream));
    t.until("the request counted", |s| s.stats().active_requests == 0);
    assert_eq!(t.server.stats().cancelled_requests, 1);
}

#[test]
fn the_handler_sees_its_body_timeout_as_a_timeout_cancelation() {
    let (tx, rx) = signal();
    let t = TestServer::start(
        ServerConfig::default().body_read_timeout(Duration::from_millis(100)),
        move |_| {
            Router::new(tx).post(
                "/upload",
                |mut req: Request<Incoming>, tx: std::sync::mpsc::SyncSender<CancelKind>| async move {
                    let token = request_token(&req).unwrap().clone();
                    std::mem::forget(token.on_cancel(move |reason| {
                        let _ = tx.send(reason.kind());
                    }));
                    let body = read_body(&mut req).await?;
                    Ok(json(StatusCode::OK, &body.len()))
                },
            )
        },
    );
    let mut stream = t.connect();
    stream.write_all(SILENT_BODY).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), CancelKind::Timeout);
}

#[test]
fn a_body_trickled_below_the_minimum_rate_gets_408() {
    let bound = Duration::from_millis(300);
    let t = start(
        ServerConfig::default()
            .body_read_timeout(bound)
            .min_body_rate(1000),
    );
    let mut stream = t.connect();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n")
        .unwrap();
    // 20 bytes per second, never silent for as long as the bound: only the rate stops it.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < LONG && stream.write_all(b"x").is_ok() {
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let start = Instant::now();
    let response = read_response(&mut BufReader::new(&mut stream)).expect("a 408");
    assert_eq!(response.status, 408, "{response:?}");
    assert!(start.elapsed() < bound * 10, "{:?}", start.elapsed());
    drop(stream);
    writer.join().unwrap();
}

#[test]
fn silent_body_clients_filling_the_connection_limit_cannot_lock_others_out() {
    let bound = Duration::from_millis(500);
    let t = start(
        ServerConfig::default()
            .max_connections(8)
            .body_read_timeout(bound),
    );
    let silent: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = t.connect();
            stream.write_all(SILENT_BODY).unwrap();
            stream
        })
        .collect();
    t.until("all eight requests in flight", |s| {
        s.stats().active_requests == 8
    });
    let start = Instant::now();
    let response = t.get("/hello");
    let took = start.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        took < bound + Duration::from_secs(1),
        "a new client waited {took:?} behind silent-body clients"
    );
    for stream in silent {
        let response = read_response(&mut BufReader::new(stream)).unwrap();
        assert_eq!(response.status, 408);
    }
}

#[test]
fn the_idle_timeout_closes_a_keep_alive_connection_before_the_header_read_timeout() {
    let idle = Duration::from_millis(300);
    let t = start(
        ServerConfig::default()
            .header_read_timeout(Duration::from_secs(30))
            .idle_timeout(idle),
    );
    let mut stream = t.connect();
    (&stream)
        .write_all(request_text("GET", "/hello", None, false).as_bytes())
        .unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(&mut stream))
            .unwrap()
            .status,
        200
    );
    let start = Instant::now();
    assert!(closed_by_peer(&mut stream));
    let took = start.elapsed();
    // The idle time starts on the server a moment before the client has read the response.
    assert!(
        took >= idle / 2 && took < idle * 10,
        "closed after {took:?}"
    );
}

#[test]
fn the_header_read_timeout_does_not_cut_a_longer_idle_timeout() {
    let t = start(
        ServerConfig::default()
            .header_read_timeout(Duration::from_millis(200))
            .idle_timeout(Duration::from_secs(30)),
    );
    let stream = t.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    (&stream)
        .write_all(request_text("GET", "/hello", None, false).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    // Idle for five header timeouts, then a second request on the same connection.
    thread::sleep(Duration::from_secs(1));
    (&stream)
        .write_all(request_text("GET", "/hello", None, false).as_bytes())
        .unwrap();
    let second = read_response(&mut reader).expect("the idle connection was kept");
    assert_eq!(second.status, 200);
}

#[test]
fn a_client_that_stops_reading_its_response_is_dropped_after_the_send_timeout() {
    let t = start(ServerConfig::default().send_timeout(Duration::from_millis(300)));
    let stream = t.connect();
    (&stream)
        .write_all(request_text("GET", "/firehose", None, false).as_bytes())
        .unwrap();
    t.until("the connection open", |s| s.open_connections() == 1);
    t.until("the connection dropped", |s| s.open_connections() == 0);
    drop(stream);
}
