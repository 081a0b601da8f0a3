//! Shutdown edges: the listener closes when shutdown starts (new clients are refused at once),
//! connections with no request in flight (idle keep-alive, half-sent heads) are closed at
//! once, and the grace period is for requests in flight only.

mod common;

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use cancelable_http::{HandlerResult, Router, ServerConfig, json};
use common::{LONG, TestServer, closed_by_peer, read_response, request_text};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

async fn hello(_req: Request<Incoming>, _: ()) -> HandlerResult {
    Ok(json(StatusCode::OK, &"hello"))
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config, |_| Router::new(()).get("/hello", hello))
}

#[test]
fn new_clients_are_refused_as_soon_as_shutdown_starts() {
    let mut t = start(ServerConfig::default().grace(LONG));
    // Tracked work that ignores cancelation keeps shutdown in its grace period.
    let stuck = t.server.tracker().token();
    t.stop.cancel();
    let start = Instant::now();
    loop {
        // A connection attempt that is neither accepted nor refused waits in a full backlog.
        match std::net::TcpStream::connect_timeout(&t.addr, Duration::from_millis(100)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => assert!(
                start.elapsed() < Duration::from_secs(1),
                "not refused {:?} into shutdown: {other:?}",
                start.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Still in the grace period (a connection accepted just before the stop closes at once).
    t.until("only the stuck work left", |s| s.tracker().len() == 1);
    drop(stuck);
    assert!(t.wait_stopped().stopped_in_time());
}

#[test]
fn idle_and_half_sent_connections_are_closed_at_once_on_shutdown() {
    let mut t = start(
        ServerConfig::default()
            .grace(Duration::from_secs(5))
            .header_read_timeout(Duration::from_secs(30))
            .idle_timeout(Duration::from_secs(30)),
    );
    let mut idle = Vec::new();
    for _ in 0..10 {
        let stream = t.connect();
        (&stream)
            .write_all(request_text("GET", "/hello", None, false).as_bytes())
            .unwrap();
        let response = read_response(&mut BufReader::new(stream.try_clone().unwrap())).unwrap();
        assert_eq!(response.status, 200);
        idle.push(stream);
    }
    let mut half = Vec::new();
    for _ in 0..10 {
        let mut stream = t.connect();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nhost: t\r\nx-par")
            .unwrap();
        half.push(stream);
    }
    let silent = t.connect(); // connected, nothing sent
    t.until("all 21 connections served", |s| s.open_connections() == 21);
    let start = Instant::now();
    let report = t.shutdown();
    let took = start.elapsed();
    assert!(report.stopped_in_time(), "{report}");
    assert_eq!(report.still_running(), 0);
    assert!(
        took < Duration::from_millis(1500),
        "shutdown waited {took:?} for connections with nothing in flight"
    );
    for mut stream in idle.into_iter().chain(half).chain([silent]) {
        assert!(closed_by_peer(&mut stream));
    }
}
