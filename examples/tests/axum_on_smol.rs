//! The `axum_on_smol` example, black-box over real sockets: a normal response, a client that
//! leaves (its handler stops, counted as cancelled), a time limit (`504`), and
//! HTTP/2 on the same port; then SIGTERM and a clean exit.

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound of every wait (10x what a healthy run needs).
const LONG: Duration = Duration::from_secs(10);

/// The example binary, built once per test process.
fn binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| harness::build_example("axum_on_smol"))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A running example: its address and its stdout, line by line.
struct App {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
}

impl App {
    fn start() -> App {
        let mut child = Command::new(binary())
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines.recv_timeout(LONG).expect("a first line");
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("not 'listening on http://ADDR': {first:?}"))
            .parse()
            .unwrap();
        App { child, addr, lines }
    }

    /// Waits for a stdout line starting with `prefix`; the line.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line starting with {prefix:?}"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    fn send(&self, path: &str) -> TcpStream {
        let mut tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(LONG)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        tcp
    }

    /// One request; the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut reply = String::new();
        self.send(path).read_to_string(&mut reply).unwrap();
        let status = reply
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {reply:?}"));
        let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/stats").1).unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_normal_request_is_answered_and_traced() {
    let app = App::start();
    let (status, body) = app.get("/work?steps=2&step_ms=10");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"completed","steps":2}"#);
    assert_eq!(app.line("work completed"), "work completed: 2 steps");
    assert!(app.line("answered").starts_with("answered 200 OK"));
    let stats = app.stats();
    assert_eq!(
        (
            stats["completed_requests"].as_u64(),
            stats["cancelled_requests"].as_u64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );
}

#[test]
fn a_client_that_leaves_stops_its_handler_and_is_counted_cancelled() {
    let app = App::start();
    for round in 1..=3 {
        let tcp = app.send("/work?steps=100&step_ms=50");
        app.line("work started");
        let left = Instant::now();
        drop(tcp);
        let stopped = app.line("work stopped");
        let latency = left.elapsed();
        assert!(stopped.ends_with("of 100 steps: disconnected"), "{stopped}");
        // The line is read from a pipe: a loose bound on the cancelation itself.
        assert!(latency < Duration::from_millis(100) * 10, "{latency:?}");
        assert_eq!(app.stats()["cancelled_requests"], round, "round {round}");
    }
}

#[test]
fn a_request_over_its_time_limit_gets_504_and_its_handler_stops() {
    let app = App::start();
    let (status, body) = app.get("/work?steps=100&step_ms=50&timeout_ms=100");
    assert_eq!((status, body.as_str()), (504, r#"{"error":"timeout"}"#));
    let stopped = app.line("work stopped");
    assert!(stopped.ends_with("of 100 steps: timeout"), "{stopped}");
    assert!(app.line("answered").starts_with("answered 504"));
}

/// One HTTP/2 frame: its type, flags, stream and payload.
fn read_h2_frame(tcp: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).unwrap();
    (head[3], head[4], stream, payload)
}

#[test]
fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let app = App::start();
    let mut tcp = TcpStream::connect(app.addr).unwrap();
    tcp.set_read_timeout(Some(LONG)).unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // SETTINGS, empty
    // HEADERS on stream 1, END_STREAM | END_HEADERS; HPACK without Huffman coding:
    // `:method GET` and `:scheme http` from the static table, `:path` and `:authority` literal.
    let (path, authority) = ("/work?steps=1&step_ms=0", app.addr.to_string());
    let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, authority.len() as u8]);
    block.extend_from_slice(authority.as_bytes());
    let mut frame = (block.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[0x1, 0x5, 0, 0, 0, 1]);
    frame.extend_from_slice(&block);
    tcp.write_all(&frame).unwrap();
    let mut status = None;
    let mut body = Vec::new();
    loop {
        let (kind, flags, stream, payload) = read_h2_frame(&mut tcp);
        match (kind, stream) {
            (0x4, 0) if flags & 0x1 == 0 => tcp.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap(),
            // `:status 200` is entry 8 of the static table: the encoder's one-byte form.
            (0x1, 1) => status = Some(payload.first() == Some(&0x88)),
            (0x0, 1) => body.extend_from_slice(&payload),
            (0x7, _) => panic!("GOAWAY: {payload:?}"),
            (0x3, 1) => panic!("RST_STREAM: {payload:?}"),
            _ => {}
        }
        if stream == 1 && flags & 0x1 != 0 && kind <= 0x1 {
            break; // END_STREAM
        }
    }
    assert_eq!(status, Some(true), "a :status 200 response");
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"{"status":"completed","steps":1}"#
    );
}

#[test]
fn sigterm_stops_it_cleanly() {
    let mut app = App::start();
    assert_eq!(app.get("/work?steps=1&step_ms=0").0, 200);
    let pid = app.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = app.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < LONG, "still running after SIGTERM");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}
