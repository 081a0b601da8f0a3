//! Abuse suite for the `web_app` demo's streams and browser-facing rules, against the real
//! binary on 127.0.0.1 (bounded: a few hundred connections, seconds of wall time):
//!
//! * 8 WebSocket clients hold unfinished messages just under the 64 KiB limit, then push on:
//!   each gets close `1009`, and the server's memory (VmRSS) grows by no more than
//!   8 × twice the limit (the message so far and the frame being read) plus 4 MiB;
//! * 300 SSE clients against the cap of 256 streams: 44 get `429` at once, the server keeps
//!   answering;
//! * the Host, Origin and content-type refusals a DNS-rebinding or cross-site page meets, none
//!   of which starts or cancels anything.

mod harness;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use harness::{IO_TIMEOUT, WebApp, read_ws_frame as read_frame, ws_frame as frame};
use serde_json::Value;

/// The demo's WebSocket message limit.
const LIMIT: usize = 64 * 1024;

/// Sends `head` (request line and headers) with `body` on a fresh connection: the status and
/// the JSON body (`Null` if it is not JSON).
fn send(app: &WebApp, head: &str, body: &str) -> (u16, Value) {
    let mut s = app.connect();
    let mut text = format!("{head}\r\nConnection: close\r\n");
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    s.write_all(text.as_bytes()).expect("send");
    let mut answer = Vec::new();
    BufReader::new(s).read_to_end(&mut answer).expect("read");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The server process's resident memory.
fn rss_kib(app: &WebApp) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid()))
        .expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

// ---------------------------------------------------------------------------------------------
// WebSocket: clients holding big unfinished messages
// ---------------------------------------------------------------------------------------------

fn open_ws(server: &WebApp) -> (TcpStream, BufReader<TcpStream>) {
    let s = server.connect();
    (&s).write_all(
        format!(
            "GET /stream?interval_ms=60000 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"), "handshake: {line:?}");
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    (s, r)
}

/// Sends a ping and reads until its pong: proof that the server has read everything before.
fn round_trip(s: &mut TcpStream, r: &mut BufReader<TcpStream>) {
    s.write_all(&frame(0x89, b"sync")).unwrap();
    loop {
        let (opcode, payload) = read_frame(r).expect("a pong");
        assert_ne!(opcode, 0x8, "closed while within the limit");
        if opcode == 0xa && payload == b"sync" {
            return;
        }
    }
}

#[test]
fn eight_websocket_clients_holding_big_unfinished_messages_stay_within_the_limit() {
    let server = WebApp::start();
    // Warm up the allocator and the WebSocket path once.
    drop(open_ws(&server));
    server.wait_stats(IO_TIMEOUT, "no stream", |s| s["active_streams"] == 0);
    let before = rss_kib(&server);
    let bound_kib = |clients: u64| before + clients * 2 * (LIMIT as u64 / 1024) + 4 * 1024;

    // Each client: an unfinished binary message of 60 KiB in 4 KiB fragments, then holds it.
    let fragment = vec![0x5a; 4 * 1024];
    let mut clients: Vec<_> = (0..8).map(|_| open_ws(&server)).collect();
    for (s, r) in &mut clients {
        s.write_all(&frame(0x02, &fragment)).unwrap();
        for _ in 1..15 {
            s.write_all(&frame(0x00, &fragment)).unwrap();
        }
        round_trip(s, r);
    }
    let holding = rss_kib(&server);
    assert!(
        holding <= bound_kib(8),
        "8 clients holding 60 KiB each: RSS {before} -> {holding} KiB (bound {} KiB)",
        bound_kib(8)
    );

    // Then they push on, up to 8 MiB each, until the server says 1009.
    let pushers: Vec<_> = clients
        .into_iter()
        .map(|(mut s, mut r)| {
            let reader = thread::spawn(move || {
                loop {
                    match read_frame(&mut r) {
                        // 1005: a close frame without a code.
                        Ok((0x8, payload)) => {
                            return Some(
                                payload
                                    .get(..2)
                                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                            );
                        }
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
            });
            let chunk = vec![0x5a; 32 * 1024];
            for _ in 0..256 {
                if reader.is_finished() || s.write_all(&frame(0x00, &chunk)).is_err() {
                    break;
                }
            }
            (s, reader)
        })
        .collect();
    let peak = rss_kib(&server);
    assert!(
        peak <= bound_kib(8),
        "8 clients pushing past the limit: RSS {before} -> {peak} KiB (bound {} KiB)",
        bound_kib(8)
    );
    for (s, reader) in pushers {
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert_eq!(
            reader.join().unwrap(),
            Some(1009),
            "the close past the limit"
        );
    }
    server.wait_stats(IO_TIMEOUT, "all streams released", |s| {
        s["active_streams"] == 0
    });
    assert_eq!(server.get("/health").0, 200);
    eprintln!("RSS: {before} KiB idle, {holding} KiB holding, {peak} KiB pushing");
}

// ---------------------------------------------------------------------------------------------
// SSE: 300 clients against the cap of 256
// ---------------------------------------------------------------------------------------------

#[test]
fn three_hundred_sse_clients_meet_the_cap_of_256() {
    let server = WebApp::start();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        let s = server.connect();
        (&s).write_all(
            format!(
                "GET /events?interval_ms=1000 HTTP/1.1\r\nHost: {}\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let asked = Instant::now();
        r.read_line(&mut line).unwrap();
        match line.split_whitespace().nth(1) {
            Some("200") => open.push(r),
            Some("429") => {
                assert!(
                    asked.elapsed() < Duration::from_secs(1),
                    "429 took {:?}",
                    asked.elapsed()
                );
                // The connection stays open (keep-alive): read the body by its length.
                let mut length = 0;
                while line != "\r\n" {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0; length];
                r.read_exact(&mut body).unwrap();
                let json: Value = serde_json::from_slice(&body).expect("a JSON error");
                assert!(json["error"].is_string(), "{json}");
                refused += 1;
            }
            other => panic!(
                "unexpected answer {other:?} to stream {}",
                open.len() + refused
            ),
        }
    }
    assert_eq!((open.len(), refused), (256, 44));
    assert_eq!(server.stats()["active_streams"], 256);
    assert_eq!(
        server.get("/health").0,
        200,
        "the server answers at the cap"
    );
    drop(open);
    server.wait_stats(IO_TIMEOUT, "all streams released", |s| {
        s["active_streams"] == 0
    });
    // Streams are available again.
    let s = server.connect();
    (&s).write_all(format!("GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
}

// ---------------------------------------------------------------------------------------------
// The refusals a rebinding or cross-site page meets
// ---------------------------------------------------------------------------------------------

#[test]
fn host_origin_and_csrf_refusals_change_nothing() {
    let server = WebApp::start();
    let (status, body) = send(
        &server,
        &format!(
            "POST /jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json",
            server.addr
        ),
        r#"{"steps":10000,"step_ms":60000}"#,
    );
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let host = format!("Host: {}", server.addr);
    let port = server.addr.port();
    let cases = [
        (
            400,
            format!("GET /jobs HTTP/1.1\r\nHost: rebind.evil.example:{port}"),
            "",
        ),
        (
            400,
            format!("DELETE /jobs/{id} HTTP/1.1\r\nHost: rebind.evil.example:{port}"),
            "",
        ),
        (400, "GET /jobs HTTP/1.1".to_owned(), ""),
        (400, format!("GET /jobs HTTP/1.1\r\n{host}\r\n{host}"), ""),
        (
            415,
            format!("POST /jobs HTTP/1.1\r\n{host}\r\nContent-Type: text/plain"),
            "{}",
        ),
        (
            415,
            format!(
                "POST /jobs HTTP/1.1\r\n{host}\r\nContent-Type: application/x-www-form-urlencoded"
            ),
            "steps=1",
        ),
        (
            403,
            format!(
                "POST /jobs HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nOrigin: https://evil.example"
            ),
            "{}",
        ),
        (
            403,
            format!(
                "POST /jobs HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nSec-Fetch-Site: cross-site"
            ),
            "{}",
        ),
        (
            403,
            format!("DELETE /jobs/{id} HTTP/1.1\r\n{host}\r\nOrigin: null"),
            "",
        ),
        (
            403,
            format!(
                "GET /stream HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
            ),
            "",
        ),
    ];
    for (want, head, body) in &cases {
        let (status, json) = send(&server, head, body);
        assert_eq!(status, *want, "{head:?}: {json}");
        assert!(
            json["error"].is_string(),
            "{head:?}: a JSON error, got {json}"
        );
    }
    let stats = server.stats();
    assert_eq!(
        (
            stats["active_jobs"].as_u64(),
            stats["active_streams"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let job: Value = serde_json::from_str(&server.get(&format!("/jobs/{id}")).1).unwrap();
    assert_eq!(
        job["status"], "running",
        "no refusal cancelled the job: {job}"
    );
}
