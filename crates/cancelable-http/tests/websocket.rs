//! WebSocket limits and conformance over real sockets, with a raw client that writes exactly
//! the frames a test needs: frame and message size limits answered with close `1009` at the
//! header that crosses them (before the payload), protocol errors with `1002`, invalid UTF-8
//! with `1007`, the idle timeout (ping, then `1001`), and handshake validation (`400`).

mod common;

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use cancelable::CancelKind;
use cancelable_http::{HandlerResult, Message, Router, ServerConfig, websocket};
use common::{LONG, TestServer, read_head, signal};
use hyper::Request;
use hyper::body::Incoming;

#[derive(Clone)]
struct Probe {
    reasons: SyncSender<CancelKind>,
}

/// A producer that sends nothing and reports how its stream ended.
async fn quiet(mut req: Request<Incoming>, probe: Probe) -> HandlerResult {
    websocket(&mut req, "quiet", move |cx, _tx| async move {
        let reasons = probe.reasons.clone();
        let _cb = cx.token().on_cancel(move |r| {
            let _ = reasons.send(r.kind());
        });
        std::future::pending().await
    })
}

/// A producer that sends 64 KiB messages as fast as the peer takes them, and reports how its
/// stream ended.
async fn flood(mut req: Request<Incoming>, probe: Probe) -> HandlerResult {
    websocket(&mut req, "flood", move |cx, tx| async move {
        let reasons = probe.reasons.clone();
        let _cb = cx.token().on_cancel(move |r| {
            let _ = reasons.send(r.kind());
        });
        let message = Message::binary(vec![0u8; 64 * 1024]);
        while tx.send(message.clone()).await.is_ok() {}
        std::future::pending().await
    })
}

fn start(config: ServerConfig) -> (TestServer, Receiver<CancelKind>) {
    let (reasons, rx) = signal();
    let t = TestServer::start(config, move |_| {
        Router::new(Probe { reasons })
            .get("/ws", quiet)
            .get("/flood", flood)
    });
    (t, rx)
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn handshake(version: &str, key: &str, extra: &str) -> String {
    handshake_at("/ws", version, key, extra)
}

fn handshake_at(path: &str, version: &str, key: &str, extra: &str) -> String {
    format!(
        "GET {path} {version}\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: {key}\r\n{extra}\r\n"
    )
}

/// A client socket after a successful handshake.
struct RawWs {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawWs {
    fn open(t: &TestServer) -> Self {
        Self::open_at(t, "/ws")
    }

    fn open_at(t: &TestServer, path: &str) -> Self {
        let stream = t.connect();
        (&stream)
            .write_all(
                handshake_at(path, "HTTP/1.1", KEY, "sec-websocket-version: 13\r\n").as_bytes(),
            )
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (status, _) = read_head(&mut reader).unwrap();
        assert_eq!(status, 101);
        t.until("the stream to start", |s| s.stats().active_streams == 1);
        Self { stream, reader }
    }

    /// Writes raw bytes; the server may have closed already (then the write may fail).
    fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame from the server: (first byte, payload).
    fn read_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.reader.read_exact(&mut head)?;
        assert_eq!(head[1] & 0x80, 0, "a server frame must not be masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                self.reader.read_exact(&mut n)?;
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.reader.read_exact(&mut n)?;
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(len).unwrap()];
        self.reader.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }

    /// Reads until the server's close frame and returns its status code.
    fn close_code(&mut self) -> u16 {
        loop {
            let (first, payload) = self.read_frame().expect("a close frame before the end");
            if first & 0x0f == 0x8 {
                assert!(payload.len() >= 2, "a close frame without a code");
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }
}

/// A client frame (masked with a zero key unless `masked` is false).
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, masked);
    out.extend_from_slice(payload);
    out
}

/// Just a frame header announcing `len` payload bytes.
fn header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match len {
        0..=125 => out.push(mask | len as u8),
        126..=0xffff => {
            out.push(mask | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out
}

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

fn assert_stream_ended(t: &TestServer, reasons: &Receiver<CancelKind>, kind: CancelKind) {
    assert_eq!(reasons.recv_timeout(LONG).unwrap(), kind);
    t.until("no active stream", |s| s.stats().active_streams == 0);
}

#[test]
fn frame_header_over_the_limit_closes_with_1009_before_the_payload() {
    let (t, reasons) = start(ServerConfig::default().max_websocket_frame(1024));
    let mut ws = RawWs::open(&t);
    // The header alone: the server must not wait for 2,048 bytes that never come.
    ws.write(&header(FIN | BINARY, 2048, true));
    assert_eq!(ws.close_code(), 1009);
    drop(ws);
    assert_stream_ended(&t, &reasons, CancelKind::Disconnected);
}

#[test]
fn default_limits_are_at_most_1_mib() {
    let (t, reasons) = start(ServerConfig::default());
    let mut ws = RawWs::open(&t);
    ws.write(&header(FIN | BINARY, 1024 * 1024 + 1, true));
    assert_eq!(ws.close_code(), 1009, "a frame over 1 MiB");
    drop(ws);
    assert_stream_ended(&t, &reasons, CancelKind::Disconnected);

    let mut ws = RawWs::open(&t);
    ws.write(&frame(BINARY, &vec![7; 600 * 1024], true));
    ws.write(&header(FIN | CONTINUATION, 600 * 1024, true));
    assert_eq!(ws.close_code(), 1009, "a message over 1 MiB");
    drop(ws);
    assert_stream_ended(&t, &reasons, CancelKind::Disconnected);
}

#[test]
fn message_over_the_limit_closes_with_1009_at_the_header_that_crosses_it() {
    let config = ServerConfig::default()
        .max_websocket_frame(4096)
        .max_websocket_message(4096);
    let (t, reasons) = start(config);
    let mut ws = RawWs::open(&t);
    // A fragmented message within the limit, with a ping between its fragments (control
    // frames are not part of the message), then a second message: all fine.
    ws.write(&frame(TEXT, &[b'a'; 3000], true));
    ws.write(&frame(FIN | PING, b"p", true));
    let (first, payload) = ws.read_frame().unwrap();
    assert_eq!((first & 0x0f, payload.as_slice()), (PONG, &b"p"[..]));
    ws.write(&frame(FIN | CONTINUATION, &[b'a'; 1096], true));
    ws.write(&frame(FIN | BINARY, &[1; 4096], true));
    ws.write(&frame(FIN | PING, b"q", true));
    assert_eq!(ws.read_frame().unwrap().0 & 0x0f, PONG, "still open");

    ws.write(&frame(BINARY, &[1; 3000], true));
    ws.write(&header(FIN | CONTINUATION, 3000, true));
    assert_eq!(ws.close_code(), 1009);
    drop(ws);
    assert_stream_ended(&t, &reasons, CancelKind::Disconnected);
}

#[test]
fn protocol_errors_close_with_1002() {
    let (t, reasons) = start(ServerConfig::default());
    let cases: [(&str, Vec<u8>); 9] = [
        ("an unmasked client frame", frame(FIN | TEXT, b"hi", false)),
        ("a reserved data opcode", frame(FIN | 0x3, b"hi", true)),
        ("a reserved control opcode", frame(FIN | 0xb, b"", true)),
        ("a reserved bit", frame(FIN | 0x40 | TEXT, b"hi", true)),
        ("a fragmented ping", frame(PING, b"", true)),
        ("a ping over 125 bytes", frame(FIN | PING, &[0; 126], true)),
        (
            "a continuation with nothing to continue",
            frame(FIN | CONTINUATION, b"hi", true),
        ),
        ("a new message inside a fragmented one", {
            let mut both = frame(TEXT, b"hi", true);
            both.extend(frame(FIN | TEXT, b"again", true));
            both
        }),
        (
            "a close frame with a one-byte body",
            frame(FIN | CLOSE, &[3], true),
        ),
    ];
    for (what, bytes) in cases {
        let mut ws = RawWs::open(&t);
        ws.write(&bytes);
        assert_eq!(ws.close_code(), 1002, "{what}");
        drop(ws);
        assert_stream_ended(&t, &reasons, CancelKind::Disconnected);
    }
}

#[test]
fn invalid_utf8_text_closes_with_1007() {
    let (t, reasons) = start(ServerConfig::default());
    let cases: [(&str, Vec<u8>); 2] = [
        ("a text frame", frame(FIN | TEXT, &[b'a', 0xc3, 0x28], true)),
        ("the second fragment of a text message", {
            let mut both = frame(TEXT, b"fine", true);
            both.extend(frame(FIN | CONTINUATION, &[0xff, 0xfe], true));
            both
        }),
    ];
    for (what, bytes) in cases {
        let mut ws = RawWs::open(&t);
        ws.write(&bytes);
        assert_eq!(ws.close_code(), 1007, "{what}");
        drop(ws);
        assert_stream_ended(&t, &reasons, CancelKind::Disconnected);
    }
}

#[test]
fn silent_peer_is_pinged_then_closed_with_1001_and_cancelled_with_timeout() {
    let idle = Duration::from_millis(300);
    let (t, reasons) = start(ServerConfig::default().websocket_idle_timeout(idle));
    let opened = Instant::now();
    let mut ws = RawWs::open(&t);
    let (first, _) = ws.read_frame().unwrap();
    assert_eq!(first & 0x0f, PING, "a ping after half the idle time");
    assert_eq!(ws.close_code(), 1001);
    drop(ws);
    let after = opened.elapsed();
    assert!(after >= idle, "closed after {after:?}, before {idle:?}");
    assert!(after < idle * 10, "closed only after {after:?}");
    assert_stream_ended(&t, &reasons, CancelKind::Timeout);
}

#[test]
fn peer_that_keeps_sending_but_reads_nothing_is_cancelled_with_timeout_after_send_timeout() {
    let send = Duration::from_millis(300);
    let (t, reasons) = start(
        ServerConfig::default()
            .send_timeout(send)
            .websocket_idle_timeout(Duration::from_secs(60)),
    );
    let mut ws = RawWs::open_at(&t, "/flood");
    // Pings keep the peer heard (no idle timeout) while it reads nothing: the server's
    // messages pile up in the socket buffers until a send cannot finish.
    let opened = Instant::now();
    let ping = frame(FIN | PING, b"here", true);
    let kind = loop {
        ws.write(&ping);
        if let Ok(kind) = reasons.recv_timeout(Duration::from_millis(50)) {
            break kind;
        }
        assert!(opened.elapsed() < LONG, "the flood was never cut off");
    };
    assert_eq!(kind, CancelKind::Timeout);
    assert!(
        opened.elapsed() >= send,
        "cancelled after {:?}",
        opened.elapsed()
    );
    drop(ws);
    t.until("no active stream", |s| s.stats().active_streams == 0);
}

#[test]
fn peer_that_answers_pings_stays_open() {
    let idle = Duration::from_millis(200);
    let (t, reasons) = start(ServerConfig::default().websocket_idle_timeout(idle));
    let mut ws = RawWs::open(&t);
    let opened = Instant::now();
    let mut pongs = 0;
    while pongs < 4 {
        let (first, payload) = ws.read_frame().unwrap();
        assert_eq!(first & 0x0f, PING, "only pings while the peer answers them");
        ws.write(&frame(FIN | PONG, &payload, true));
        pongs += 1;
    }
    assert!(
        opened.elapsed() > idle,
        "four pings came within the idle time"
    );
    assert_eq!(t.server.stats().active_streams, 1);
    assert!(reasons.try_recv().is_err(), "the stream was not cancelled");
}

fn handshake_status(t: &TestServer, request: &str) -> u16 {
    let mut stream = t.connect();
    stream.write_all(request.as_bytes()).unwrap();
    read_head(&mut BufReader::new(stream)).unwrap().0
}

#[test]
fn handshake_over_http_1_0_gets_400() {
    let (t, _reasons) = start(ServerConfig::default());
    let request = handshake("HTTP/1.0", KEY, "sec-websocket-version: 13\r\n");
    assert_eq!(handshake_status(&t, &request), 400);
    assert_eq!(t.server.stats().active_streams, 0);
}

#[test]
fn handshake_key_must_be_16_bytes_of_base64() {
    let (t, _reasons) = start(ServerConfig::default());
    for key in [
        "abc",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZQ==x",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        "!!!!!!!!!!!!!!!!!!!!!!==",
    ] {
        let request = handshake("HTTP/1.1", key, "sec-websocket-version: 13\r\n");
        assert_eq!(handshake_status(&t, &request), 400, "key {key:?}");
    }
    let request = handshake("HTTP/1.1", KEY, "sec-websocket-version: 13\r\n");
    assert_eq!(handshake_status(&t, &request), 101);
}

#[test]
fn handshake_version_must_be_13() {
    let (t, _reasons) = start(ServerConfig::default());
    for extra in ["sec-websocket-version: 8\r\n", ""] {
        let mut stream = t.connect();
        stream
            .write_all(handshake("HTTP/1.1", KEY, extra).as_bytes())
            .unwrap();
        let (status, headers) = read_head(&mut BufReader::new(stream)).unwrap();
        assert_eq!(status, 400, "{extra:?}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("sec-websocket-version") && v == "13"),
            "the refusal names the version it speaks: {headers:?}"
        );
    }
}
