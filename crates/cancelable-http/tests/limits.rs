//! Limits and bad input over real sockets: body size (413), header read timeout against slow
//! clients, max connections, and malformed input that must never stop the server.

mod common;

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use cancelable_http::{HandlerResult, Router, ServerConfig, json, read_body, read_json};
use common::{LONG, TestServer, closed_by_peer, read_response, request_text};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

#[derive(serde::Deserialize, serde::Serialize)]
struct Input {
    steps: Option<u64>,
}

async fn echo(mut req: Request<Incoming>, _: ()) -> HandlerResult {
    let input: Input = read_json(&mut req).await?;
    Ok(json(StatusCode::OK, &input))
}

async fn size(mut req: Request<Incoming>, _: ()) -> HandlerResult {
    let body = read_body(&mut req).await?;
    Ok(json(StatusCode::OK, &body.len()))
}

async fn hello(_req: Request<Incoming>, _: ()) -> HandlerResult {
    Ok(json(StatusCode::OK, &"hello"))
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config, |_| {
        Router::new(())
            .post("/echo", echo)
            .post("/size", size)
            .get("/hello", hello)
    })
}

#[test]
fn bodies_over_the_limit_get_413() {
    let t = start(ServerConfig::default().max_body_size(1000));
    // Declared too large: refused before the handler runs.
    let big = "x".repeat(1001);
    let response = t.request("POST", "/size", Some(&big));
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"], "payload too large");
    // At the limit: fine.
    let ok = "x".repeat(1000);
    assert_eq!(t.request("POST", "/size", Some(&ok)).body, "1000");
    // Chunked, no content-length: stopped while reading.
    let mut stream = t.connect();
    let chunk = "y".repeat(600);
    write!(
        stream,
        "POST /size HTTP/1.1\r\nhost: t\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    )
    .unwrap();
    let response = read_response(&mut BufReader::new(stream)).unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(t.get("/hello").status, 200, "still serving");
}

#[test]
fn bad_input_gets_the_spec_status_and_the_server_keeps_serving() {
    let t = start(ServerConfig::default());
    // Bad JSON → 400 with a JSON error.
    let response = t.request("POST", "/echo", Some("{\"steps\": tru"));
    assert_eq!(response.status, 400);
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    // Wrong JSON type → 400 too.
    assert_eq!(
        t.request("POST", "/echo", Some(r#"{"steps": "ten"}"#))
            .status,
        400
    );
    // Empty body reads as {}.
    assert_eq!(
        t.request("POST", "/echo", Some("")).body,
        r#"{"steps":null}"#
    );
    // Unknown route → 404 JSON; wrong method → 405 JSON with Allow.
    let response = t.get("/nope");
    assert_eq!(
        (response.status, response.json()["error"].as_str()),
        (404, Some("not found"))
    );
    let response = t.request("DELETE", "/hello", None);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
    assert!(response.json()["error"].is_string());
    // Garbage request line → 400 from hyper, connection closed.
    for garbage in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "\x00\x01\x02\r\n\r\n",
        "GET /hello HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let mut stream = t.connect();
        stream.write_all(garbage.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        match read_response(&mut reader) {
            Ok(response) => assert_eq!(response.status, 400, "{garbage:?}"),
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof,
                "{garbage:?}: {e}"
            ),
        }
    }
    // Oversized headers → 431 or a closed connection.
    let mut stream = t.connect();
    write!(
        stream,
        "GET /hello HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    )
    .ok();
    let _ = read_response(&mut BufReader::new(stream));
    // Still serving after all of it.
    for _ in 0..10 {
        assert_eq!(t.get("/hello").status, 200);
    }
    t.until("no active request", |s| s.stats().active_requests == 0);
}

#[test]
fn header_read_timeout_closes_slow_clients() {
    let t = start(ServerConfig::default().header_read_timeout(Duration::from_millis(200)));
    // A client that never finishes its headers.
    let mut slow = t.connect();
    slow.write_all(b"GET /hello HTTP/1.1\r\nhost: t\r\n")
        .unwrap();
    let start = Instant::now();
    assert!(closed_by_peer(&mut slow));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // A client that connects and sends nothing at all.
    let mut silent = t.connect();
    assert!(closed_by_peer(&mut silent));
    // Others are served meanwhile and after.
    assert_eq!(t.get("/hello").status, 200);
    t.until("slow connections closed", |s| s.open_connections() == 0);
}

#[test]
fn max_connections_stops_accepting_until_one_closes() {
    let t = start(ServerConfig::default().max_connections(2));
    let mut open = Vec::new();
    for _ in 0..2 {
        let stream = t.connect();
        (&stream)
            .write_all(request_text("GET", "/hello", None, false).as_bytes())
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
        open.push(stream);
    }
    assert_eq!(t.server.open_connections(), 2);
    // A third one is connected by the kernel (backlog) but not served...
    let third = t.connect();
    (&third)
        .write_all(request_text("GET", "/hello", None, true).as_bytes())
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut reader = BufReader::new(third.try_clone().unwrap());
    let early = read_response(&mut reader);
    assert!(early.is_err(), "served over the limit: {early:?}");
    assert_eq!(t.server.open_connections(), 2);
    // ...until one of the first two closes.
    drop(open.pop());
    third.set_read_timeout(Some(LONG)).unwrap();
    let response = read_response(&mut reader).unwrap();
    assert_eq!(response.status, 200);
}
