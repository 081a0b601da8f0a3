//! A kept-alive connection is read no further than needed and still misses nothing: a request
//! head that arrives in pieces is answered, so are requests that come one after another on
//! one connection, each after the answer to the one before; and the request counters add up
//! when the requests are served on several threads.

mod common;

use std::io::{BufReader, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cancelable_http::{HandlerResult, Router, ServerConfig, json};
use common::{TestServer, read_response, request_text};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

async fn health(_req: Request<Incoming>, _: ()) -> HandlerResult {
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"status": "healthy"}),
    ))
}

fn health_server(config: ServerConfig) -> TestServer {
    TestServer::start(config, |_| Router::new(()).get("/health", health))
}

#[test]
fn a_request_head_that_arrives_in_pieces_is_answered() {
    let t = health_server(ServerConfig::default());
    let mut stream = t.connect();
    let head = request_text("GET", "/health", None, false);
    // Pauses between the pieces so that each arrives on its own and the server reads each
    // with the socket empty behind it.
    for piece in head.as_bytes().chunks(7) {
        stream.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    let response = read_response(&mut BufReader::new(&stream)).expect("an answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "healthy");
}

#[test]
fn requests_one_after_another_on_a_kept_alive_connection_are_all_answered() {
    let t = health_server(ServerConfig::default());
    let stream = t.connect();
    let mut reader = BufReader::new(&stream);
    let request = request_text("GET", "/health", None, false);
    for i in 0..200 {
        (&stream).write_all(request.as_bytes()).unwrap();
        let response = read_response(&mut reader).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(response.status, 200, "request {i}");
    }
    t.until("every request counted", |s| {
        s.stats().completed_requests == 200
    });
    let stats = t.server.stats();
    assert_eq!((stats.active_requests, stats.cancelled_requests), (0, 0));
}

#[test]
fn the_request_counters_add_up_over_requests_served_on_several_threads() {
    const CLIENTS: usize = 8;
    const EACH: usize = 50;
    let executor = Arc::new(smol::Executor::new());
    let stop = cancelable::CancellationToken::new();
    let runners: Vec<_> = (0..2)
        .map(|_| {
            let (executor, stop) = (executor.clone(), stop.clone());
            thread::spawn(move || smol::block_on(executor.run(stop.cancelled_owned())))
        })
        .collect();
    let mut t = health_server(ServerConfig::default().executor(executor));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stream = t.connect();
            thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let request = request_text("GET", "/health", None, false);
                for _ in 0..EACH {
                    (&stream).write_all(request.as_bytes()).unwrap();
                    assert_eq!(read_response(&mut reader).unwrap().status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let served = (CLIENTS * EACH) as u64;
    t.until("every request counted", |s| {
        s.stats().completed_requests == served
    });
    let stats = t.server.stats();
    assert_eq!((stats.active_requests, stats.cancelled_requests), (0, 0));
    assert!(t.shutdown().stopped_in_time());
    stop.cancel();
    for runner in runners {
        runner.join().unwrap();
    }
}
