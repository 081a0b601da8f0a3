//! Abuse suite, connection side, against the real `web_app` binary over loopback: clients that
//! hold connections without sending their body, bytes after a request followed by a
//! disconnect, idle and half-sent connections at shutdown, and a second signal during the
//! grace period. Bounded in count and time (about half a minute in a debug build).
//!
//! Not part of plain `cargo test` (the target has `test = false`): run it with
//! `cargo test -p cancelable-examples --test abuse_connections`.

mod harness;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use harness::{WebApp, read_response};

/// The demo's connection limit (the library default).
const MAX_CONNECTIONS: usize = 1024;
/// The demo's body read timeout.
const BODY_BOUND: Duration = Duration::from_secs(5);
const LOOSE: Duration = Duration::from_secs(10);

fn silent_body(app: &WebApp) -> TcpStream {
    let mut s = app.connect();
    write!(
        s,
        "POST /jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.addr
    )
    .unwrap();
    s
}

/// The soft limit on open files of this process (`web_app` inherits it), from
/// `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn silent_body_clients_filling_the_connection_limit_make_room_within_the_body_bound() {
    // This process holds MAX_CONNECTIONS + 1 sockets, web_app as many plus its own files.
    if let Some(limit) = open_file_limit() {
        assert!(
            limit >= 2 * MAX_CONNECTIONS as u64 + 64,
            "the open-file limit is {limit}: run with `ulimit -n 4096` or more"
        );
    }
    let app = WebApp::start();
    let mut silent: Vec<TcpStream> = (0..MAX_CONNECTIONS - 1)
        .map(|_| silent_body(&app))
        .collect();
    // The last free slot answers /stats.
    app.wait_stats(LOOSE, "every silent-body request in flight", |s| {
        s["active_requests"] == MAX_CONNECTIONS - 1
    });
    silent.push(silent_body(&app));
    let t0 = Instant::now();
    let (status, body) = app.get("/health");
    let waited = t0.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        waited <= BODY_BOUND + Duration::from_secs(1),
        "a new client waited {waited:?} behind {MAX_CONNECTIONS} silent-body clients"
    );
    let refused = silent
        .into_iter()
        .filter(|s| {
            matches!(
                read_response(&mut BufReader::new(s.try_clone().unwrap())),
                Ok((408, _))
            )
        })
        .count();
    assert_eq!(
        refused, MAX_CONNECTIONS,
        "every silent-body client gets 408"
    );
    assert_eq!(app.stats()["active_jobs"], 0);
    eprintln!("new client served after {waited:?} with the limit full of silent bodies");
}

#[test]
fn stray_and_pipelined_bytes_then_a_disconnect_are_cancelled_within_100ms() {
    let app = WebApp::start();
    let pipelined = format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        let trailer = if round % 2 == 0 {
            "\r\n"
        } else {
            pipelined.as_str()
        };
        let before = app.stats();
        let mut s = app.connect();
        write!(
            s,
            "GET /process?steps=1000&step_ms=10 HTTP/1.1\r\nHost: {}\r\n\r\n{trailer}",
            app.addr
        )
        .unwrap();
        app.wait_stats(LOOSE, "the /process request running", |st| {
            st["active_requests"] == 1
        });
        drop(s);
        let closed = Instant::now();
        let cancelled = before["cancelled_requests"].as_u64().unwrap() + 1;
        app.wait_stats(LOOSE, "the request cancelled", |st| {
            st["active_requests"] == 0 && st["cancelled_requests"] == cancelled
        });
        let latency = closed.elapsed();
        assert!(
            latency <= Duration::from_millis(100),
            "round {round} ({trailer:?}): the disconnect took {latency:?}"
        );
        worst = worst.max(latency);
    }
    eprintln!("20 disconnects behind stray or pipelined bytes, worst {worst:?}");
}

#[test]
fn shutdown_with_idle_and_half_sent_connections_exits_within_1_5_s() {
    let mut app = WebApp::start();
    let mut held = Vec::new();
    for _ in 0..100 {
        let s = app.connect();
        write!(&s, "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr).unwrap();
        let (status, _) = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
        assert_eq!(status, 200);
        held.push(s);
    }
    for _ in 0..100 {
        let mut s = app.connect();
        write!(s, "GET /health HTTP/1.1\r\nHost: {}\r\nX-Half: ", app.addr).unwrap();
        held.push(s);
    }
    for _ in 0..10 {
        held.push(silent_body(&app));
    }
    app.wait_stats(LOOSE, "the silent-body requests in flight", |s| {
        s["active_requests"] == 10
    });
    let t0 = Instant::now();
    app.signal("TERM");
    let status = app.wait_exit(LOOSE).expect("web_app exits after SIGTERM");
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}: {}", app.stderr());
    assert!(
        took < Duration::from_millis(1500),
        "shutdown took {took:?}: {}",
        app.stderr()
    );
    assert!(
        app.stderr().contains("every task stopped"),
        "{}",
        app.stderr()
    );
    eprintln!("shutdown with 200 idle or half-sent connections took {took:?}");
}

/// Skips the rest of the handshake response, then reads raw WebSocket frames (server frames
/// are unmasked) until a close frame arrives.
fn wait_for_close_frame(s: &mut TcpStream) {
    let mut tail = [0u8; 4];
    while &tail != b"\r\n\r\n" {
        tail.rotate_left(1);
        s.read_exact(&mut tail[3..])
            .expect("the handshake response");
    }
    loop {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).expect("a WebSocket frame");
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                s.read_exact(&mut ext).unwrap();
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                s.read_exact(&mut ext).unwrap();
                u64::from_be_bytes(ext)
            }
            n => u64::from(n),
        };
        std::io::copy(&mut Read::by_ref(s).take(len), &mut std::io::sink()).unwrap();
        if head[0] & 0x0f == 0x8 {
            return;
        }
    }
}

fn second_signal_during_grace(second: &str) -> ExitStatus {
    let mut app = WebApp::start();
    let mut ws = app.connect();
    write!(
        ws,
        "GET /stream?interval_ms=60000 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.addr
    )
    .unwrap();
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    app.wait_stats(LOOSE, "the WebSocket stream open", |s| {
        s["active_streams"] == 1
    });
    app.signal("TERM");
    // A close frame: shutdown started, and the server waits for a reply that never comes.
    wait_for_close_frame(&mut ws);
    let t0 = Instant::now();
    app.signal(second);
    let status = app.wait_exit(LOOSE).expect("web_app exits");
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "the second signal took {:?}",
        t0.elapsed()
    );
    status
}

#[test]
fn a_second_signal_during_the_grace_period_ends_the_process_at_once() {
    assert_eq!(second_signal_during_grace("TERM").code(), Some(143));
    assert_eq!(second_signal_during_grace("INT").code(), Some(130));
}
