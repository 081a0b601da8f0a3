//! Black-box integration tests of the `web_app` demo over real sockets on 127.0.0.1.
//!
//! Every test starts its own server process (`--addr 127.0.0.1:0`), talks to it with raw
//! HTTP/1.1 over `std::net::TcpStream` (so disconnects, half requests and garbage are under the
//! test's control) or with tungstenite for `/stream`, and holds it to the fixed route table:
//! paths, status codes, JSON fields, status and reason strings. Waiting is done by polling the
//! server's own state (`/stats`, `/jobs/{id}`) against a deadline, never by sleeping a guessed
//! amount. Time bounds are loose (about 10x what is expected) except where the acceptance
//! criterion itself names the number (disconnect visible in `/stats` within 100 ms).

mod harness;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound for anything that should take milliseconds.
const LOOSE: Duration = Duration::from_secs(5);
/// Read timeout on client sockets, so a server that never answers fails a test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

const STATUSES: [&str; 5] = ["pending", "running", "completed", "cancelled", "failed"];
const REASONS: [&str; 6] = [
    "manual",
    "timeout",
    "signal",
    "condition",
    "disconnected",
    "shutdown",
];

// ---------------------------------------------------------------------------------------------
// Server process harness
// ---------------------------------------------------------------------------------------------

/// A running `web_app` process on a free port; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// Starts web_app with extra command-line arguments and environment variables.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let bin = harness::web_app_binary();
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));

        // Keep draining both pipes for the life of the process so it never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr piped");
        let err_buf = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = err_buf.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let out_pipe = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(out_pipe);
            let mut first = String::new();
            let res = reader.read_line(&mut first).map(|_| first);
            let _ = tx.send(res);
            let _ = io::copy(&mut reader, &mut io::sink());
        });

        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading web_app's stdout failed: {e}"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "web_app printed no first line within 30 s; stderr: {}",
                    stderr.lock().unwrap()
                )
            }
        };
        let line = first.trim_end();
        let Some(addr) = line.strip_prefix("listening on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "first stdout line must be `listening on http://ADDR`, got {line:?}; stderr: {}",
                stderr.lock().unwrap()
            );
        };
        let addr: SocketAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        assert_ne!(
            addr.port(),
            0,
            "the printed address must carry the real port"
        );
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit, polling against a deadline.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to web_app");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// One request on a fresh connection (`Connection: close`), full response read.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut s = self.connect();
        s.write_all(request_bytes(self.addr, method, path, body).as_bytes())
            .expect("send request");
        let mut r = BufReader::new(s);
        read_response(&mut r).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: no valid response: {e}; stderr: {}",
                self.stderr()
            )
        })
    }

    fn get(&self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    fn stats(&self) -> Stats {
        let r = self.get("/stats");
        assert_eq!(r.status, 200, "GET /stats: {r:?}");
        Stats::from_json(&r.json())
    }

    fn job(&self, id: &str) -> Value {
        let r = self.get(&format!("/jobs/{id}"));
        assert_eq!(r.status, 200, "GET /jobs/{id}: {r:?}");
        let v = r.json();
        check_job_shape(&v);
        v
    }

    fn start_job(&self, body: &str) -> String {
        let r = self.request("POST", "/jobs", Some(body));
        assert_eq!(r.status, 202, "POST /jobs {body}: {r:?}");
        job_id_of(&r.json())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill(); // SIGKILL, the last resort
                let _ = self.child.wait();
            }
        }
    }
}

fn request_bytes(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str("Content-Type: application/json\r\n");
        req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        req.push_str("\r\n");
    }
    req
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 response reader (content-length, chunked, or until EOF)
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    fn json(&self) -> Value {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "a JSON body must be sent as application/json: {self:?}"
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// The body is a JSON object with a string `error` field.
    fn assert_json_error(&self) {
        let v = self.json();
        assert!(
            v.get("error").is_some_and(Value::is_string),
            "expected a JSON body with a string `error` field: {self:?}"
        );
    }
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads the status line and headers. `Ok(None)` if the connection closed before any byte.
type Headers = Vec<(String, String)>;

fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<(u16, Headers)>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::other(format!("bad status line {line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in headers",
            ));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header {h:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some((status, headers)))
}

fn read_response<R: BufRead>(r: &mut R) -> io::Result<Response> {
    let (status, headers) = read_head(r)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"))?;
    let mut body = Vec::new();
    BodyReader::new(r, &headers).read_to_end(&mut body)?;
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a response body incrementally (needed for SSE, which hyper sends chunked).
struct BodyReader<'a, R> {
    inner: &'a mut R,
    mode: BodyMode,
}

enum BodyMode {
    Length(u64),
    Chunked { left_in_chunk: u64, done: bool },
    UntilEof,
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    fn new(inner: &'a mut R, headers: &[(String, String)]) -> Self {
        let mode = if header_of(headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            BodyMode::Chunked {
                left_in_chunk: 0,
                done: false,
            }
        } else if let Some(n) = header_of(headers, "content-length").and_then(|v| v.parse().ok()) {
            BodyMode::Length(n)
        } else {
            BodyMode::UntilEof
        };
        BodyReader { inner, mode }
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.mode {
            BodyMode::Length(0) => Ok(0),
            BodyMode::Length(left) => {
                let max = buf.len().min(*left as usize);
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
                }
                *left -= n as u64;
                Ok(n)
            }
            BodyMode::UntilEof => self.inner.read(buf),
            BodyMode::Chunked {
                left_in_chunk,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *left_in_chunk == 0 {
                    let mut line = String::new();
                    if self.inner.read_line(&mut line)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "eof in chunk size",
                        ));
                    }
                    let size = line.trim().split(';').next().unwrap_or_default();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
                    if size == 0 {
                        // Trailers, then the final empty line.
                        loop {
                            let mut t = String::new();
                            if self.inner.read_line(&mut t)? == 0 || t.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left_in_chunk = size;
                }
                let max = buf.len().min(*left_in_chunk as usize);
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in chunk"));
                }
                *left_in_chunk -= n as u64;
                if *left_in_chunk == 0 {
                    let mut crlf = String::new();
                    self.inner.read_line(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contract helpers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    active_requests: u64,
    cancelled_requests: u64,
    active_jobs: u64,
    active_streams: u64,
    completed_requests: u64,
}

impl Stats {
    fn from_json(v: &Value) -> Stats {
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("/stats is not an object: {v}"));
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = [
            "active_requests",
            "cancelled_requests",
            "active_jobs",
            "active_streams",
            "completed_requests",
        ]
        .into();
        assert_eq!(keys, want, "/stats fields: {v}");
        let f = |k: &str| {
            obj[k]
                .as_u64()
                .unwrap_or_else(|| panic!("/stats {k} is not a non-negative integer: {v}"))
        };
        Stats {
            active_requests: f("active_requests"),
            cancelled_requests: f("cancelled_requests"),
            active_jobs: f("active_jobs"),
            active_streams: f("active_streams"),
            completed_requests: f("completed_requests"),
        }
    }
}

/// Polls `probe` until it returns `Some`, or panics after `within` naming `what`.
fn poll_until<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn wait_stats(
    server: &Server,
    within: Duration,
    what: &str,
    pred: impl Fn(&Stats) -> bool,
) -> Stats {
    let deadline = Instant::now() + within;
    loop {
        let s = server.stats();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for /stats: {what}; last: {s:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

fn check_status_and_reason(v: &Value) {
    let status = v["status"]
        .as_str()
        .unwrap_or_else(|| panic!("status not a string: {v}"));
    assert!(STATUSES.contains(&status), "unknown status {status:?}: {v}");
    match &v["reason"] {
        Value::Null => assert!(
            status != "cancelled",
            "a cancelled entry must carry its reason: {v}"
        ),
        Value::String(r) => assert!(REASONS.contains(&r.as_str()), "unknown reason {r:?}: {v}"),
        other => panic!("reason must be a string or null, got {other}: {v}"),
    }
}

/// The job shape: `{"id","name","status","progress":{"done","total"},"reason"}`, exactly.
fn check_job_shape(v: &Value) {
    assert_eq!(
        keys_of(v),
        set(&["id", "name", "status", "progress", "reason"]),
        "job fields: {v}"
    );
    assert!(v["id"].is_string(), "job id: {v}");
    assert!(v["name"].is_string(), "job name: {v}");
    assert_eq!(
        keys_of(&v["progress"]),
        set(&["done", "total"]),
        "progress fields: {v}"
    );
    assert!(v["progress"]["done"].is_u64(), "progress.done: {v}");
    assert!(
        v["progress"]["total"].is_u64() || v["progress"]["total"].is_null(),
        "progress.total: {v}"
    );
    check_status_and_reason(v);
}

fn job_id_of(v: &Value) -> String {
    assert_eq!(keys_of(v), set(&["job_id"]), "POST /jobs body: {v}");
    let id = v["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("job_id not a string: {v}"));
    // 128-bit random: 32 hex digits, or another URL-safe encoding of at least 22 characters.
    assert!(id.len() >= 22, "job id {id:?} too short to be unguessable");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "job id {id:?} is not URL-safe"
    );
    id.to_string()
}

fn done_of(job: &Value) -> u64 {
    job["progress"]["done"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Simple routes
// ---------------------------------------------------------------------------------------------

#[test]
fn health_returns_healthy() {
    let server = Server::start();
    let r = server.get("/health");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"status": "healthy"}));
}

#[test]
fn stats_of_an_idle_server_are_zero() {
    let server = Server::start();
    let s = server.stats();
    assert_eq!(
        (
            s.active_requests,
            s.cancelled_requests,
            s.active_jobs,
            s.active_streams
        ),
        (0, 0, 0, 0),
        "an idle server (the /stats request itself excluded) shows nothing active: {s:?}"
    );
}

#[test]
fn dashboard_page_is_html() {
    let server = Server::start();
    let r = server.get("/");
    assert_eq!(r.status, 200, "GET /: status {}", r.status);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "GET / content-type {ct:?}");
    assert!(
        r.body.to_ascii_lowercase().contains("<html"),
        "GET / is not an HTML page"
    );
}

#[test]
fn unknown_route_is_404() {
    let server = Server::start();
    for path in ["/nope", "/jobs/x/y", "/healthz", "/stats/1"] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "GET {path}: {r:?}");
    }
    let r = server.request("DELETE", "/health", None);
    assert!(
        r.status == 404 || r.status == 405,
        "DELETE /health must be 404 or 405: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// /process: request-scoped work
// ---------------------------------------------------------------------------------------------

#[test]
fn process_completes_and_a_normal_response_cancels_nothing() {
    let server = Server::start();
    let before = server.stats();
    let r = server.get("/process?steps=3&step_ms=10");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "completed", "steps": 3})
    );
    let after = wait_stats(&server, LOOSE, "the /process request finished", |s| {
        s.active_requests == 0
    });
    assert!(
        after.completed_requests > before.completed_requests,
        "completed_requests must count the finished /process: before {before:?}, after {after:?}"
    );
    assert_eq!(
        after.cancelled_requests, before.cancelled_requests,
        "a normal response must not cancel the request: before {before:?}, after {after:?}"
    );
}

#[test]
fn keep_alive_connection_closed_after_responses_cancels_nothing() {
    let server = Server::start();
    let before = server.stats();
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for path in [
        "/process?steps=2&step_ms=1",
        "/health",
        "/process?steps=1&step_ms=0",
    ] {
        // No `Connection: close`: HTTP/1.1 keeps the connection open between requests.
        w.write_all(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
            .unwrap();
        let resp =
            read_response(&mut r).unwrap_or_else(|e| panic!("GET {path} on keep-alive: {e}"));
        assert_eq!(resp.status, 200, "GET {path} on keep-alive: {resp:?}");
    }
    // The client leaves after its answers: nothing was running, so nothing is cancelled.
    drop(w);
    drop(r);
    let after = wait_stats(&server, LOOSE, "the keep-alive requests finished", |s| {
        s.active_requests == 0 && s.completed_requests >= before.completed_requests + 2
    });
    assert_eq!(
        after.cancelled_requests, before.cancelled_requests,
        "closing a keep-alive connection after complete responses cancelled a request: {after:?}"
    );
}

#[test]
fn concurrent_process_requests_run_in_parallel() {
    let server = Server::start();
    let addr = server.addr;
    let t0 = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                s.write_all(
                    request_bytes(addr, "GET", "/process?steps=10&step_ms=20", None).as_bytes(),
                )
                .unwrap();
                read_response(&mut BufReader::new(s)).unwrap()
            })
        })
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.json(),
            serde_json::json!({"status": "completed", "steps": 10})
        );
    }
    let took = t0.elapsed();
    // One takes 200 ms; 16 one after another would take 3.2 s.
    assert!(
        took < Duration::from_millis(1600),
        "16 concurrent /process took {took:?}: serialised?"
    );
}

#[test]
fn process_client_disconnect_cancels_the_request_within_100ms() {
    let server = Server::start();
    let before = server.stats();
    let mut s = server.connect();
    s.write_all(
        request_bytes(server.addr, "GET", "/process?steps=1000&step_ms=10", None).as_bytes(),
    )
    .unwrap();
    wait_stats(&server, LOOSE, "the /process request active", |st| {
        st.active_requests == before.active_requests + 1
    });

    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    let closed = Instant::now();
    let after = wait_stats(&server, LOOSE, "the disconnected request cancelled", |st| {
        st.active_requests == before.active_requests
            && st.cancelled_requests == before.cancelled_requests + 1
    });
    let latency = closed.elapsed();
    assert!(
        latency <= Duration::from_millis(100),
        "the disconnect took {latency:?} (> 100 ms) to show in /stats: {after:?}"
    );
    eprintln!("disconnect -> cancelled in /stats: {latency:?}");

    // If the server keeps finished requests in /operations, that one is `cancelled`/`disconnected`.
    let ops = server.get("/operations");
    assert_eq!(ops.status, 200, "{ops:?}");
    let ops = ops.json();
    let finished_requests: Vec<&Value> = ops
        .as_array()
        .expect("/operations is an array")
        .iter()
        .filter(|o| o["kind"] == "request" && o["status"] != "running" && o["status"] != "pending")
        .collect();
    if !finished_requests.is_empty() {
        assert!(
            finished_requests
                .iter()
                .any(|o| o["status"] == "cancelled" && o["reason"] == "disconnected"),
            "the request history must show the disconnected /process as cancelled/disconnected: {ops}"
        );
    }
}

#[test]
fn process_rejects_bad_query_values_with_json_400() {
    let server = Server::start();
    for path in [
        "/process?steps=abc",
        "/process?steps=3&step_ms=x",
        "/process?steps=-1",
        "/timeout-operation?timeout_ms=abc&work_ms=10",
        "/timeout-operation?timeout_ms=50&work_ms=1e3",
        "/events?interval_ms=abc",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 400, "GET {path}: {r:?}");
        r.assert_json_error();
    }
    assert_eq!(server.get("/health").status, 200);
}

// ---------------------------------------------------------------------------------------------
// /timeout-operation
// ---------------------------------------------------------------------------------------------

#[test]
fn timeout_operation_completes_when_work_fits() {
    let server = Server::start();
    let r = server.get("/timeout-operation?timeout_ms=500&work_ms=10");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"status": "completed"}));
    // The exact numbers of the brief: 10 ms of work under a 50 ms timeout.
    let r = server.get("/timeout-operation?timeout_ms=50&work_ms=10");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"status": "completed"}));
}

#[test]
fn timeout_operation_returns_504_promptly_and_not_early() {
    let server = Server::start();
    let t0 = Instant::now();
    let r = server.get("/timeout-operation?timeout_ms=50&work_ms=5000");
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"error": "timeout"}));
    assert!(
        took >= Duration::from_millis(50),
        "504 after {took:?}, before the 50 ms timeout"
    );
    assert!(
        took < Duration::from_millis(2500),
        "504 after {took:?}, not prompt"
    );
    wait_stats(&server, LOOSE, "the timed-out request gone", |s| {
        s.active_requests == 0
    });
    // If the server keeps finished requests in /operations, that one is `cancelled`/`timeout`.
    let ops = server.get("/operations").json();
    let finished_requests: Vec<&Value> = ops
        .as_array()
        .expect("/operations is an array")
        .iter()
        .filter(|o| o["kind"] == "request" && !is_live(o))
        .collect();
    if !finished_requests.is_empty() {
        assert!(
            finished_requests
                .iter()
                .any(|o| o["status"] == "cancelled" && o["reason"] == "timeout"),
            "the request history must show the timed-out request as cancelled/timeout: {ops}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

#[test]
fn job_lifecycle_start_progress_cancel_conflict() {
    let server = Server::start();
    let id = server.start_job(r#"{"steps":50,"step_ms":20}"#);

    let list = server.get("/jobs");
    assert_eq!(list.status, 200, "{list:?}");
    let list = list.json();
    let entry = list
        .as_array()
        .unwrap_or_else(|| panic!("GET /jobs is not an array: {list}"))
        .iter()
        .find(|j| j["id"] == id.as_str())
        .unwrap_or_else(|| panic!("GET /jobs does not list {id}: {list}"));
    check_job_shape(entry);
    assert!(
        entry["status"] == "running" || entry["status"] == "pending",
        "a fresh 1 s job is live: {entry}"
    );
    assert_eq!(
        entry["progress"]["total"], 50,
        "total is the job's steps: {entry}"
    );
    assert_eq!(entry["reason"], Value::Null, "{entry}");

    // Progress moves.
    let first = poll_until(LOOSE, "progress.done > 0", || {
        let j = server.job(&id);
        (done_of(&j) > 0).then_some(done_of(&j))
    });
    poll_until(LOOSE, "progress.done advancing", || {
        (done_of(&server.job(&id)) > first).then_some(())
    });
    assert!(
        server.stats().active_jobs >= 1,
        "a running job is counted in active_jobs"
    );

    let r = server.request("DELETE", &format!("/jobs/{id}"), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"status": "cancelled"}));

    let j = server.job(&id);
    assert_eq!(j["status"], "cancelled", "{j}");
    assert_eq!(j["reason"], "manual", "{j}");
    assert!(
        done_of(&j) < 50,
        "a cancelled job did not finish its steps: {j}"
    );
    let stopped_at = done_of(&j);

    let r = server.request("DELETE", &format!("/jobs/{id}"), None);
    assert_eq!(r.status, 409, "second DELETE: {r:?}");

    wait_stats(&server, LOOSE, "active_jobs back to 0", |s| {
        s.active_jobs == 0
    });
    // The cancelled job really stopped: its progress does not move any more.
    let j = server.job(&id);
    assert_eq!(j["status"], "cancelled", "{j}");
    assert!(
        done_of(&j) <= stopped_at + 1,
        "the job kept working after cancel: {j}"
    );

    // Finished jobs stay listed (bounded history).
    let list = server.get("/jobs").json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "the cancelled job is kept in GET /jobs: {list}"
    );
}

#[test]
fn unknown_job_id_is_404() {
    let server = Server::start();
    let long = "a".repeat(4000);
    for id in [
        "00000000000000000000000000000000",
        "nope",
        "ffffffffffffffffffffffffffffffff",
        "%2e%2e",
        long.as_str(),
    ] {
        let r = server.get(&format!("/jobs/{id}"));
        assert_eq!(r.status, 404, "GET /jobs/{id}: {r:?}");
        let r = server.request("DELETE", &format!("/jobs/{id}"), None);
        assert_eq!(r.status, 404, "DELETE /jobs/{id}: {r:?}");
    }
}

#[test]
fn short_job_completes_with_done_equal_to_total() {
    let server = Server::start();
    let id = server.start_job(r#"{"steps":3,"step_ms":1}"#);
    let j = poll_until(LOOSE, "the short job completed", || {
        let j = server.job(&id);
        (j["status"] == "completed").then_some(j)
    });
    assert_eq!(j["progress"]["done"], 3, "{j}");
    assert_eq!(j["progress"]["total"], 3, "{j}");
    assert_eq!(j["reason"], Value::Null, "{j}");
    let r = server.request("DELETE", &format!("/jobs/{id}"), None);
    assert_eq!(r.status, 409, "DELETE of a completed job: {r:?}");
    let j = server.job(&id);
    assert_eq!(
        j["status"], "completed",
        "a 409 DELETE changes nothing: {j}"
    );
    wait_stats(&server, LOOSE, "active_jobs back to 0", |s| {
        s.active_jobs == 0
    });
}

#[test]
fn post_jobs_with_empty_object_uses_defaults() {
    let server = Server::start();
    let id = server.start_job("{}");
    let j = server.job(&id);
    assert!(
        ["pending", "running", "completed"].contains(&j["status"].as_str().unwrap()),
        "{j}"
    );
    let r = server.request("DELETE", &format!("/jobs/{id}"), None);
    assert!(r.status == 200 || r.status == 409, "{r:?}");
    let id2 = server.start_job(r#"{"steps":2}"#);
    let id3 = server.start_job(r#"{"step_ms":1}"#);
    assert_ne!(id, id2);
    assert_ne!(id2, id3);
    for id in [id2, id3] {
        let r = server.request("DELETE", &format!("/jobs/{id}"), None);
        assert!(r.status == 200 || r.status == 409, "{r:?}");
    }
}

#[test]
fn post_jobs_rejects_bad_json_and_wrong_types_with_json_400() {
    let server = Server::start();
    for body in [
        r#"{"steps":"#,
        "not json",
        r#"{"steps":"ten"}"#,
        r#"{"step_ms":[1]}"#,
        r#"{"steps":-1}"#,
        r#"{"steps":1.5}"#,
        "[1,2]",
        "\"steps\"",
    ] {
        let r = server.request("POST", "/jobs", Some(body));
        assert_eq!(r.status, 400, "POST /jobs {body}: {r:?}");
        r.assert_json_error();
    }
    assert_eq!(
        server.stats().active_jobs,
        0,
        "no job was started by bad input"
    );
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn too_many_concurrent_jobs_is_429() {
    let server = Server::start();
    let mut ids = Vec::new();
    let mut rejected = None;
    for _ in 0..2000 {
        let r = server.request("POST", "/jobs", Some(r#"{"steps":10000,"step_ms":1000}"#));
        match r.status {
            202 => ids.push(job_id_of(&r.json())),
            429 => {
                rejected = Some(r);
                break;
            }
            _ => panic!("POST /jobs: {r:?}"),
        }
    }
    let rejected = rejected.unwrap_or_else(|| {
        panic!("2000 concurrent jobs started without a 429: no concurrency limit")
    });
    rejected.assert_json_error();
    assert!(!ids.is_empty(), "the limit must allow at least one job");
    assert_eq!(
        server.stats().active_jobs,
        ids.len() as u64,
        "every accepted job is active"
    );

    for id in &ids {
        let r = server.request("DELETE", &format!("/jobs/{id}"), None);
        assert_eq!(r.status, 200, "DELETE /jobs/{id}: {r:?}");
    }
    wait_stats(
        &server,
        LOOSE,
        "active_jobs back to 0 after cancelling all",
        |s| s.active_jobs == 0,
    );
    // Capacity is back.
    let id = server.start_job(r#"{"steps":1,"step_ms":1}"#);
    poll_until(LOOSE, "the job after the limit completed", || {
        (server.job(&id)["status"] == "completed").then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// Opens `/events`, checks the head, returns the reader positioned at the body.
fn open_sse(server: &Server, path: &str) -> (BufReader<TcpStream>, Vec<(String, String)>) {
    let mut s = server.connect();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).expect("SSE head").expect("SSE response");
    assert_eq!(status, 200, "GET {path}: {headers:?}");
    let ct = header_of(&headers, "content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/event-stream"),
        "GET {path} content-type {ct:?}"
    );
    (r, headers)
}

/// Reads `n` SSE `data:` events from the body, each must be JSON.
fn read_sse_events(body: &mut impl BufRead, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut data = String::new();
    while events.len() < n {
        let mut line = String::new();
        let got = body.read_line(&mut line).expect("read SSE line");
        assert!(got > 0, "SSE stream ended after {} events", events.len());
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !data.is_empty() {
                let v: Value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data:?}"));
                events.push(v);
                data.clear();
            }
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
        // Comments (`:` keep-alives), `event:`, `id:`, `retry:` lines are allowed and skipped.
    }
    events
}

#[test]
fn sse_events_are_json_and_stop_when_the_client_leaves() {
    let server = Server::start();
    let (mut r, headers) = open_sse(&server, "/events?interval_ms=10");
    let events = {
        let mut body = BufReader::new(BodyReader::new(&mut r, &headers));
        read_sse_events(&mut body, 3)
    };
    assert_eq!(events.len(), 3);
    wait_stats(&server, LOOSE, "the SSE stream counted", |s| {
        s.active_streams == 1
    });

    let s = r.into_inner();
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    assert_stream_released(&server, Instant::now(), "the SSE client closed its socket");
    assert_eq!(server.get("/health").status, 200);
}

fn open_ws(server: &Server, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let url = format!("ws://{}{path}", server.addr);
    let (ws, resp) = tungstenite::client::client(url.as_str(), server.connect())
        .unwrap_or_else(|e| panic!("WebSocket handshake to {url} failed: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

fn read_ws_json(ws: &mut tungstenite::WebSocket<TcpStream>, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        match ws.read().expect("WebSocket read") {
            tungstenite::Message::Text(t) => out.push(
                serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("WebSocket text is not JSON ({e}): {t:?}")),
            ),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected JSON text messages, got {other:?}"),
        }
    }
    out
}

/// After the only stream of this server lost its peer at `left`: `active_streams` is back to 0
/// within 100 ms (the producer is cancelled within milliseconds), and `/operations`
/// shows the finished stream `cancelled` with reason `disconnected` (the producer saw it).
fn assert_stream_released(server: &Server, left: Instant, how: &str) {
    wait_stats(
        server,
        LOOSE,
        &format!("active_streams back to 0 after {how}"),
        |s| s.active_streams == 0,
    );
    let latency = left.elapsed();
    assert!(
        latency <= Duration::from_millis(100),
        "the stream took {latency:?} (> 100 ms) to stop after {how}"
    );
    eprintln!("stream released {latency:?} after {how}");
    let ops = server.get("/operations").json();
    let streams: Vec<&Value> = ops
        .as_array()
        .expect("/operations is an array")
        .iter()
        .filter(|o| o["kind"] == "stream")
        .collect();
    assert!(
        !streams.is_empty(),
        "/operations lists no finished stream after {how}: {ops}"
    );
    for o in streams {
        check_operation_shape(o);
        assert_eq!(
            (o["status"].as_str(), o["reason"].as_str()),
            (Some("cancelled"), Some("disconnected")),
            "the stream after {how}: {o}"
        );
    }
}

#[test]
fn websocket_messages_are_json_and_stop_on_abrupt_disconnect() {
    let server = Server::start();
    let mut ws = open_ws(&server, "/stream?interval_ms=10");
    assert_eq!(read_ws_json(&mut ws, 3).len(), 3);
    wait_stats(&server, LOOSE, "the WebSocket stream counted", |s| {
        s.active_streams == 1
    });
    // Drop the TCP connection without a close frame.
    ws.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(ws);
    assert_stream_released(
        &server,
        Instant::now(),
        "a WebSocket drop without close frame",
    );
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn websocket_stops_on_polite_close() {
    let server = Server::start();
    let mut ws = open_ws(&server, "/stream?interval_ms=10");
    assert_eq!(read_ws_json(&mut ws, 3).len(), 3);
    wait_stats(&server, LOOSE, "the WebSocket stream counted", |s| {
        s.active_streams == 1
    });
    // Pings are answered.
    ws.send(tungstenite::Message::Ping(b"are you there"[..].into()))
        .expect("send ping");
    let deadline = Instant::now() + LOOSE;
    loop {
        match ws
            .read()
            .expect("WebSocket read while waiting for the pong")
        {
            tungstenite::Message::Pong(p) => {
                assert_eq!(
                    &p[..],
                    b"are you there",
                    "the pong echoes the ping's payload"
                );
                break;
            }
            tungstenite::Message::Text(_) | tungstenite::Message::Ping(_) => {}
            other => panic!("unexpected message while waiting for the pong: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no pong within {LOOSE:?}");
    }

    let left = Instant::now();
    ws.close(None).expect("send close frame");
    // The server replies with its close frame, which completes the close handshake.
    let deadline = Instant::now() + LOOSE;
    loop {
        match ws.read() {
            Ok(_) => assert!(Instant::now() < deadline, "no close reply within {LOOSE:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("the close handshake did not complete cleanly: {e}"),
        }
    }
    assert_stream_released(&server, left, "a polite WebSocket close");
}

#[test]
fn two_streams_are_counted_and_released_independently() {
    let server = Server::start();
    let (mut r, headers) = open_sse(&server, "/events?interval_ms=10");
    {
        let mut body = BufReader::new(BodyReader::new(&mut r, &headers));
        read_sse_events(&mut body, 1);
    }
    let mut ws = open_ws(&server, "/stream?interval_ms=10");
    read_ws_json(&mut ws, 1);
    wait_stats(&server, LOOSE, "both streams counted", |s| {
        s.active_streams == 2
    });
    drop(ws);
    wait_stats(&server, LOOSE, "one stream left", |s| s.active_streams == 1);
    drop(r);
    wait_stats(&server, LOOSE, "no stream left", |s| s.active_streams == 0);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// Reads whatever answer a misbehaving request gets: `Some(status)` or `None` when the server
/// closed (or reset) the connection without a response.
fn answer_status(s: TcpStream) -> Option<u16> {
    let mut r = BufReader::new(s);
    match read_head(&mut r) {
        Ok(Some((status, _))) => Some(status),
        Ok(None) => None,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            None
        }
        Err(e) => panic!("unexpected answer to bad input: {e}"),
    }
}

#[test]
fn garbage_request_line_gets_400_or_close_and_server_keeps_serving() {
    let server = Server::start();
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /health HTTP/1.1\r\nbad header line\r\n\r\n",
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(garbage).unwrap();
        match answer_status(s) {
            None | Some(400) => {}
            Some(other) => panic!(
                "{:?} must get 400 or a closed connection, got {other}",
                String::from_utf8_lossy(garbage)
            ),
        }
        assert_eq!(
            server.get("/health").status,
            200,
            "server alive after garbage"
        );
    }
}

#[test]
fn oversized_body_gets_413_or_close() {
    let server = Server::start();
    let pad = "x".repeat(2 * 1024 * 1024);
    let body = format!(r#"{{"steps":1,"step_ms":1,"pad":"{pad}"}}"#);
    let mut s = server.connect();
    let head = format!(
        "POST /jobs HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before reading it all: write errors are fine.
    let writer = {
        let mut w = s.try_clone().unwrap();
        thread::spawn(move || {
            let _ = w.write_all(body.as_bytes());
        })
    };
    match answer_status(s) {
        None | Some(413) => {}
        Some(other) => {
            panic!("a 2 MiB body to POST /jobs must get 413 or a closed connection, got {other}")
        }
    }
    writer.join().unwrap();
    assert_eq!(
        server.stats().active_jobs,
        0,
        "the oversized request started no job"
    );
    assert_eq!(
        server.get("/health").status,
        200,
        "server alive after an oversized body"
    );

    // A body that claims a huge length but never sends it.
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{{",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    match answer_status(s) {
        None | Some(413) => {}
        Some(other) => {
            panic!("Content-Length: 1 GiB must get 413 or a closed connection, got {other}")
        }
    }
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn slow_client_with_half_headers_is_closed_while_others_are_served() {
    let server = Server::start();
    let mut slow = server.connect();
    slow.write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\nX-Slow: ", server.addr).as_bytes())
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let opened = Instant::now();

    // Others are served meanwhile, promptly.
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(server.get("/health").status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a stalled client slows others down"
        );
    }

    // The server closes the stalled connection after its header read timeout.
    let answer = answer_status(slow);
    let after = opened.elapsed();
    assert!(
        answer.is_none() || answer == Some(408) || answer == Some(400),
        "a stalled header read must end with a close (or 408/400), got {answer:?}"
    );
    assert!(
        after < Duration::from_secs(100),
        "the stalled connection stayed open {after:?}: no header read timeout"
    );
    assert_eq!(server.get("/health").status, 200);
}

// ---------------------------------------------------------------------------------------------
// Churn
// ---------------------------------------------------------------------------------------------

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

fn churn(server: &Server, cycles: usize) {
    let process = request_bytes(server.addr, "GET", "/process?steps=1000&step_ms=10", None);
    let events = format!(
        "GET /events?interval_ms=10 HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    let ws = format!(
        "GET /stream?interval_ms=10 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    for i in 0..cycles {
        let mut s = TcpStream::connect(server.addr).expect("connect during churn");
        // Writes may fail if the server already dropped us; that is part of the churn.
        let _ = match i % 8 {
            0 | 1 => Ok(()),                                            // connect, close
            2 => s.write_all(&process.as_bytes()[..process.len() / 2]), // half a request line
            3 | 4 => s.write_all(process.as_bytes()),                   // full request, then leave
            5 => s.write_all(events.as_bytes()),                        // SSE, then leave
            6 => s.write_all(ws.as_bytes()), // WebSocket upgrade, then leave
            _ => s.write_all(b"POST /jobs HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"st"), // half a body
        };
        drop(s);
    }
}

#[test]
fn ten_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let server = Server::start();
    let idle = |s: &Stats| s.active_requests == 0 && s.active_streams == 0;
    churn(&server, 500); // warm up allocator arenas and the accept path
    wait_stats(&server, Duration::from_secs(20), "idle after warm-up", idle);
    let rss_before = vm_rss_kib(server.pid());

    let t0 = Instant::now();
    churn(&server, 5_000);
    wait_stats(
        &server,
        Duration::from_secs(20),
        "idle after 5,000 cycles",
        idle,
    );
    let rss_half = vm_rss_kib(server.pid());
    churn(&server, 5_000);
    let took = t0.elapsed();

    let s = wait_stats(&server, Duration::from_secs(20), "idle after churn", idle);
    assert_eq!(s.active_jobs, 0, "churn started no job: {s:?}");
    assert!(
        s.cancelled_requests > 0,
        "the dropped /process requests were seen and cancelled: {s:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "10,000 cycles took {took:?}"
    );
    let rss_after = vm_rss_kib(server.pid());
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over 10,000 cycles"
    );
    // Bounded histories are full by the first half; the second half must be flat (a leak of
    // about 800 bytes per connection or more would show here).
    assert!(
        rss_after < rss_half + 4 * 1024,
        "RSS still growing in the second 5,000 cycles: {rss_half} KiB -> {rss_after} KiB"
    );
    // The server still answers normally.
    let r = server.get("/process?steps=2&step_ms=1");
    assert_eq!(r.status, 200, "{r:?}");
    eprintln!(
        "churn: 10,000 cycles in {took:?}; RSS {rss_before} -> {rss_half} -> {rss_after} KiB; {s:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_with_running_job_and_open_stream_exits_zero_and_ends_the_stream() {
    let mut server = Server::start();
    let id = server.start_job(r#"{"steps":10000,"step_ms":100}"#);
    poll_until(LOOSE, "the job running", || {
        (server.job(&id)["status"] == "running").then_some(())
    });
    let (mut r, headers) = open_sse(&server, "/events?interval_ms=10");
    {
        let mut body = BufReader::new(BodyReader::new(&mut r, &headers));
        read_sse_events(&mut body, 1);
    }
    // And a request in flight: 10 s of work that shutdown must cancel, not wait for.
    let mut inflight = server.connect();
    inflight
        .write_all(
            request_bytes(server.addr, "GET", "/process?steps=1000&step_ms=10", None).as_bytes(),
        )
        .unwrap();
    wait_stats(&server, LOOSE, "job, stream and request active", |s| {
        s.active_jobs == 1 && s.active_streams == 1 && s.active_requests == 1
    });
    let (req_tx, req_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = req_tx.send(read_response(&mut BufReader::new(inflight)));
    });

    // Read the stream to its end on another thread.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let res = BodyReader::new(&mut r, &headers).read_to_end(&mut sink);
        let _ = tx.send(res.map(|_| ()));
    });

    let t0 = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "web_app did not exit within 10 s of SIGTERM; stderr: {}",
                server.stderr()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}; stderr: {}",
        server.stderr()
    );
    let ended = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the SSE stream did not end at shutdown");
    // A clean end of the chunked body, or the connection closed by the exiting server.
    if let Err(e) = ended {
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "the stream ended with {e}"
        );
    }
    // The in-flight request got an answer that is not a completion (e.g. 503), or a close.
    match req_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the in-flight /process did not end at shutdown")
    {
        Ok(resp) => assert_ne!(
            resp.status,
            200,
            "a 10 s /process completed during a shutdown that took {:?}: {resp:?}",
            t0.elapsed()
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "the in-flight request ended with {e}"
        ),
    }
    eprintln!("shutdown took {:?}", t0.elapsed());
}

#[test]
fn sigint_on_an_idle_server_exits_zero() {
    let mut server = Server::start();
    assert_eq!(server.get("/health").status, 200);
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("web_app did not exit within 10 s of SIGINT"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGINT: {status:?}"
    );
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "nothing listens after shutdown"
    );
}

// ---------------------------------------------------------------------------------------------
// /operations (the dashboard's route)
// ---------------------------------------------------------------------------------------------

fn check_operation_shape(o: &Value) {
    assert_eq!(
        keys_of(o),
        set(&[
            "id",
            "name",
            "kind",
            "status",
            "progress",
            "reason",
            "duration_ms"
        ]),
        "operation fields: {o}"
    );
    assert!(o["id"].is_string() && o["name"].is_string(), "{o}");
    let kind = o["kind"].as_str().unwrap_or_default();
    assert!(
        ["job", "request", "stream"].contains(&kind),
        "kind {kind:?}: {o}"
    );
    assert_eq!(keys_of(&o["progress"]), set(&["done", "total"]), "{o}");
    assert!(o["progress"]["done"].is_u64(), "{o}");
    assert!(
        o["progress"]["total"].is_u64() || o["progress"]["total"].is_null(),
        "{o}"
    );
    assert!(o["duration_ms"].is_u64(), "duration_ms: {o}");
    check_status_and_reason(o);
}

fn is_live(o: &Value) -> bool {
    o["status"] == "running" || o["status"] == "pending"
}

#[test]
fn operations_lists_live_job_first_with_kind_job() {
    let server = Server::start();
    // Some finished history first: a completed job, a cancelled job, completed requests.
    let done_id = server.start_job(r#"{"steps":1,"step_ms":1}"#);
    poll_until(LOOSE, "the short job completed", || {
        (server.job(&done_id)["status"] == "completed").then_some(())
    });
    let cancelled_id = server.start_job(r#"{"steps":1000,"step_ms":100}"#);
    assert_eq!(
        server
            .request("DELETE", &format!("/jobs/{cancelled_id}"), None)
            .status,
        200
    );
    for _ in 0..60 {
        assert_eq!(server.get("/process?steps=1&step_ms=1").status, 200);
    }
    let live_id = server.start_job(r#"{"steps":1000,"step_ms":10}"#);
    poll_until(LOOSE, "the live job progressing", || {
        (done_of(&server.job(&live_id)) > 0).then_some(())
    });

    let r = server.get("/operations");
    assert_eq!(r.status, 200, "{r:?}");
    let ops = r.json();
    let ops = ops
        .as_array()
        .unwrap_or_else(|| panic!("/operations is not an array: {ops}"));
    for o in ops {
        check_operation_shape(o);
    }
    let live = ops
        .iter()
        .find(|o| o["id"] == live_id.as_str())
        .unwrap_or_else(|| panic!("/operations lacks the running job {live_id}: {ops:?}"));
    assert_eq!(live["kind"], "job", "{live}");
    assert_eq!(live["status"], "running", "{live}");
    assert_eq!(live["reason"], Value::Null, "{live}");
    assert!(live["progress"]["done"].as_u64().unwrap() > 0, "{live}");

    let first_finished = ops.iter().position(|o| !is_live(o)).unwrap_or(ops.len());
    assert!(
        ops[first_finished..].iter().all(|o| !is_live(o)),
        "live operations come first: {ops:?}"
    );
    assert!(
        ops.len() - first_finished <= 50,
        "at most 50 finished operations, got {}",
        ops.len() - first_finished
    );
    if let Some(c) = ops.iter().find(|o| o["id"] == cancelled_id.as_str()) {
        assert_eq!(
            (
                c["kind"].as_str(),
                c["status"].as_str(),
                c["reason"].as_str()
            ),
            (Some("job"), Some("cancelled"), Some("manual")),
            "{c}"
        );
    }
    assert_eq!(
        server
            .request("DELETE", &format!("/jobs/{live_id}"), None)
            .status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Limits and safety: Host, Origin, content type, WebSocket limits, stream bounds
// ---------------------------------------------------------------------------------------------

/// Sends `head` (request line and headers, no blank line) with `body`, on a fresh connection.
fn send_raw(server: &Server, head: &str, body: &str) -> Response {
    let mut s = server.connect();
    let mut text = format!("{head}\r\nConnection: close\r\n");
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    s.write_all(text.as_bytes()).expect("send request");
    read_response(&mut BufReader::new(s)).expect("a response")
}

fn assert_refused(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    r.assert_json_error();
}

#[test]
fn requests_for_another_host_name_get_400_and_change_nothing() {
    let server = Server::start();
    let id = server.start_job(r#"{"steps":1000,"step_ms":100}"#);
    // A DNS-rebinding page reaches the server under its own name.
    for (method, path) in [
        ("GET", "/jobs".to_string()),
        ("DELETE", format!("/jobs/{id}")),
    ] {
        let r = send_raw(
            &server,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: evil.example:{}",
                server.addr.port()
            ),
            "",
        );
        assert_refused(&r, 400, &format!("{method} {path} for evil.example"));
    }
    assert_eq!(
        server.job(&id)["status"],
        "running",
        "the job was not cancelled"
    );
    // Local names are answered, whatever the port.
    for host in ["localhost", "localhost:1", "127.0.0.1:9", "[::1]:8080"] {
        let r = send_raw(
            &server,
            &format!("GET /health HTTP/1.1\r\nHost: {host}"),
            "",
        );
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
}

#[test]
fn requests_without_host_or_with_two_get_400() {
    let server = Server::start();
    assert_refused(
        &send_raw(&server, "GET /health HTTP/1.1", ""),
        400,
        "no Host",
    );
    let two = format!(
        "GET /health HTTP/1.1\r\nHost: {0}\r\nHost: {0}",
        server.addr
    );
    assert_refused(&send_raw(&server, &two, ""), 400, "two Host headers");
}

#[test]
fn cross_site_form_and_text_posts_get_415_and_start_no_job() {
    let server = Server::start();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = send_raw(
            &server,
            &format!(
                "POST /jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}",
                server.addr
            ),
            r#"{"steps":10000,"step_ms":60000}"#,
        );
        assert_refused(&r, 415, content_type);
    }
    let r = send_raw(
        &server,
        &format!("POST /jobs HTTP/1.1\r\nHost: {}", server.addr),
        r#"{"steps":1}"#,
    );
    assert_refused(&r, 415, "a body without a content type");
    assert_eq!(server.stats().active_jobs, 0);
    assert_eq!(server.get("/jobs").json(), serde_json::json!([]));
}

#[test]
fn posts_and_deletes_from_another_origin_get_403_and_curl_keeps_working() {
    let server = Server::start();
    let json = "Content-Type: application/json";
    let host = format!("Host: {}", server.addr);
    for extra in [
        "Origin: http://evil.example".to_string(),
        format!("Origin: http://127.0.0.1:{}", server.addr.port() ^ 1),
        "Sec-Fetch-Site: cross-site".to_string(),
    ] {
        let r = send_raw(
            &server,
            &format!("POST /jobs HTTP/1.1\r\n{host}\r\n{json}\r\n{extra}"),
            "{}",
        );
        assert_refused(&r, 403, &format!("POST with {extra}"));
    }
    assert_eq!(server.stats().active_jobs, 0);
    // The same origin, as the dashboard sends it.
    let r = send_raw(
        &server,
        &format!(
            "POST /jobs HTTP/1.1\r\n{host}\r\n{json}\r\nOrigin: http://{}\r\nSec-Fetch-Site: same-origin",
            server.addr
        ),
        r#"{"steps":1000,"step_ms":100}"#,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let id = job_id_of(&r.json());
    let r = send_raw(
        &server,
        &format!("DELETE /jobs/{id} HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example"),
        "",
    );
    assert_refused(&r, 403, "DELETE from another origin");
    assert_eq!(server.job(&id)["status"], "running");
    // `curl -X DELETE`: no Origin, no content type.
    let r = send_raw(
        &server,
        &format!("DELETE /jobs/{id} HTTP/1.1\r\n{host}"),
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.job(&id)["reason"], "manual");
}

/// Sends a WebSocket handshake for `/stream` with `extra` header lines; the status and socket.
fn ws_handshake(
    server: &Server,
    version: &str,
    key: &str,
    extra: &str,
) -> (u16, BufReader<TcpStream>) {
    let mut s = server.connect();
    s.write_all(
        format!(
            "GET /stream?interval_ms=60000 {version}\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (status, _) = read_head(&mut r).unwrap().expect("a handshake answer");
    (status, r)
}

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[test]
fn websocket_from_another_origin_gets_403() {
    let server = Server::start();
    let (status, _) = ws_handshake(
        &server,
        "HTTP/1.1",
        WS_KEY,
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(status, 403);
    let origin = format!("Origin: http://{}\r\n", server.addr);
    let (status, _) = ws_handshake(&server, "HTTP/1.1", WS_KEY, &origin);
    assert_eq!(status, 101);
}

#[test]
fn websocket_handshake_over_http_1_0_or_with_a_bad_key_gets_400() {
    let server = Server::start();
    assert_eq!(ws_handshake(&server, "HTTP/1.0", WS_KEY, "").0, 400);
    assert_eq!(ws_handshake(&server, "HTTP/1.1", "not-a-key", "").0, 400);
    assert_eq!(
        ws_handshake(&server, "HTTP/1.1", "AAAAAAAAAAAAAAAAAAAAAAA=", "").0,
        400
    );
    assert_eq!(server.stats().active_streams, 0);
}

/// Reads server frames until a close frame: its status code.
fn ws_close_code(r: &mut BufReader<TcpStream>) -> u16 {
    loop {
        let (opcode, payload) = harness::read_ws_frame(r).expect("a close frame before the end");
        if opcode == 0x8 {
            assert!(payload.len() >= 2, "a close frame without a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[test]
fn websocket_frame_over_64_kib_gets_1009_at_its_header() {
    let server = Server::start();
    let (status, mut r) = ws_handshake(&server, "HTTP/1.1", WS_KEY, "");
    assert_eq!(status, 101);
    // Only the header of a 100 KiB binary frame: the answer must not wait for the payload.
    r.get_mut()
        .write_all(&harness::ws_header(0x82, 100 * 1024))
        .unwrap();
    let code = ws_close_code(&mut r);
    drop(r); // a client closes once it has the close frame
    assert_eq!(code, 1009);
    assert_stream_released(&server, Instant::now(), "a frame over the limit");
}

#[test]
fn websocket_protocol_error_gets_1002_and_invalid_utf8_gets_1007() {
    let server = Server::start();
    let (_, mut r) = ws_handshake(&server, "HTTP/1.1", WS_KEY, "");
    r.get_mut()
        .write_all(&harness::ws_frame(0x83, b"reserved opcode"))
        .unwrap();
    assert_eq!(ws_close_code(&mut r), 1002);
    drop(r);
    let (_, mut r) = ws_handshake(&server, "HTTP/1.1", WS_KEY, "");
    r.get_mut()
        .write_all(&harness::ws_frame(0x81, &[0xc3, 0x28]))
        .unwrap();
    assert_eq!(ws_close_code(&mut r), 1007);
    drop(r);
    wait_stats(&server, LOOSE, "both streams ended", |s| {
        s.active_streams == 0
    });
}

#[test]
fn stream_intervals_below_10_ms_get_400() {
    let server = Server::start();
    for path in ["/events?interval_ms=9", "/stream?interval_ms=1"] {
        // Only the head: a stream that was wrongly accepted would never end.
        let mut s = server.connect();
        s.write_all(request_bytes(server.addr, "GET", path, None).as_bytes())
            .unwrap();
        let (status, _) = read_head(&mut BufReader::new(s))
            .unwrap()
            .expect("an answer");
        assert_eq!(status, 400, "{path}");
        assert_refused(
            &server.get(&format!("{path}0000000")),
            400,
            "interval over 60 s",
        );
    }
    let (mut r, headers) = open_sse(&server, "/events?interval_ms=10");
    let mut body = BufReader::new(BodyReader::new(&mut r, &headers));
    assert_eq!(read_sse_events(&mut body, 2).len(), 2);
}

#[test]
fn invalid_percent_escape_stays_literal() {
    let server = Server::start();
    let r = server.get("/process?steps=%+5");
    assert_refused(&r, 400, "steps=%+5");
    let error = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(r#""% 5""#),
        "the value is shown as sent: {error}"
    );
}

#[test]
fn dashboard_feed_pushes_jobs_operations_and_stats() {
    let server = Server::start();
    let (mut r, headers) = open_sse(&server, "/dashboard/events");
    let mut body = BufReader::new(BodyReader::new(&mut r, &headers));
    let first = read_sse_events(&mut body, 1).remove(0);
    assert_eq!(
        keys_of(&first),
        set(&["jobs", "operations", "stats"]),
        "{first}"
    );
    Stats::from_json(&first["stats"]);
    let id = server.start_job(r#"{"steps":3,"step_ms":10}"#);
    // Pushed: the job shows up, then completes, without another request from this client.
    let mut seen_done = false;
    let deadline = Instant::now() + LOOSE;
    while !seen_done {
        assert!(
            Instant::now() < deadline,
            "no completed job {id} in the feed"
        );
        let event = read_sse_events(&mut body, 1).remove(0);
        for job in event["jobs"].as_array().unwrap() {
            check_job_shape(job);
            seen_done |= job["id"] == id.as_str() && job["status"] == "completed";
        }
        for o in event["operations"].as_array().unwrap() {
            check_operation_shape(o);
            assert_ne!(o["name"], "dashboard feed", "the feed lists itself: {o}");
        }
    }
}

/// Executor threads of a web_app started with `args` and `env`, once it has served a request:
/// its main thread and the threads it names `web_app-worker`. Counted by name because the
/// runtime's helper threads (a timer thread while a sleep is pending, blocking-pool threads)
/// come and go.
fn executor_threads(args: &[&str], env: &[(&str, &str)]) -> usize {
    let server = Server::start_with(args, env);
    assert_eq!(server.get("/process?steps=2&step_ms=1").status, 200);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("list threads");
    let workers = tasks
        .map(|task| {
            let comm = task.expect("a thread's entry").path().join("comm");
            std::fs::read_to_string(comm).unwrap_or_default()
        })
        .filter(|name| name.trim_end() == "web_app-worker")
        .count();
    1 + workers
}

#[test]
fn serves_on_one_executor_thread_per_core_by_default() {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(executor_threads(&["--threads", "1"], &[]), 1, "--threads 1");
    assert_eq!(executor_threads(&["--threads", "3"], &[]), 3, "--threads 3");
    assert_eq!(
        executor_threads(&[], &[("WEB_APP_THREADS", "4")]),
        4,
        "WEB_APP_THREADS=4"
    );
    assert_eq!(
        executor_threads(&[], &[]),
        cores,
        "the default, {cores} cores"
    );
}

// ---------------------------------------------------------------------------------------------
// Careless and hostile clients
// ---------------------------------------------------------------------------------------------

/// Sends `/process` (10 s of work) followed by `trailer` on one connection, closes it once the
/// request runs, and returns how long the disconnect took to show as a cancelled request.
fn disconnect_after(server: &Server, trailer: &str) -> Duration {
    let before = server.stats();
    let mut s = server.connect();
    let mut bytes = format!(
        "GET /process?steps=1000&step_ms=10 HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    bytes.push_str(trailer);
    s.write_all(bytes.as_bytes()).unwrap();
    wait_stats(server, LOOSE, "the /process request active", |st| {
        st.active_requests == before.active_requests + 1
    });
    drop(s);
    let closed = Instant::now();
    wait_stats(server, LOOSE, "the disconnected request cancelled", |st| {
        st.active_requests == before.active_requests
            && st.cancelled_requests == before.cancelled_requests + 1
    });
    closed.elapsed()
}

#[test]
fn process_disconnect_after_stray_or_pipelined_bytes_is_cancelled_within_100ms() {
    let server = Server::start();
    let pipelined = format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    for (what, trailer) in [
        ("a stray CRLF", "\r\n"),
        ("a pipelined request", &pipelined),
    ] {
        let latency = disconnect_after(&server, trailer);
        assert!(
            latency <= Duration::from_millis(100),
            "the disconnect after {what} took {latency:?} (> 100 ms) to show in /stats"
        );
    }
    let ops = server.get("/operations").json();
    let cancelled = ops
        .as_array()
        .expect("/operations is an array")
        .iter()
        .filter(|o| o["name"] == "GET /process" && o["reason"] == "disconnected")
        .count();
    assert_eq!(cancelled, 2, "both requests cancelled/disconnected: {ops}");
}

#[test]
fn post_jobs_whose_body_never_comes_gets_408_and_starts_no_job() {
    let server = Server::start();
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"steps\":",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let r = read_response(&mut BufReader::new(s)).expect("an answer to a body that never comes");
    assert_eq!(r.status, 408, "{r:?}");
    r.assert_json_error();
    // The demo's body read timeout is 5 s.
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let stats = server.stats();
    assert_eq!(stats.active_jobs, 0, "{stats:?}");
}

#[test]
fn sigterm_closes_idle_and_half_sent_connections_and_exits_at_once() {
    let mut server = Server::start();
    let mut held = Vec::new();
    for _ in 0..10 {
        let s = server.connect();
        (&s).write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
            .unwrap();
        let r = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
        assert_eq!(r.status, 200);
        held.push(s); // idle keep-alive
    }
    for _ in 0..10 {
        let mut s = server.connect();
        s.write_all(
            format!("GET /health HTTP/1.1\r\nHost: {}\r\nX-Half: ", server.addr).as_bytes(),
        )
        .unwrap();
        held.push(s); // half-sent head
    }
    assert_eq!(
        server.get("/health").status,
        200,
        "all 20 were accepted before"
    );
    let t0 = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("web_app exits after SIGTERM");
    let took = t0.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; stderr: {}",
        server.stderr()
    );
    assert!(
        took < Duration::from_millis(1500),
        "exit took {took:?} with only idle and half-sent connections; stderr: {}",
        server.stderr()
    );
    let report = poll_until(LOOSE, "the shutdown report on stderr", || {
        let stderr = server.stderr();
        stderr.contains("stopped (").then_some(stderr)
    });
    assert!(
        report.contains("every task stopped"),
        "shutdown waited for connections with nothing in flight: {report}"
    );
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
        io::copy(&mut Read::by_ref(s).take(len), &mut io::sink()).unwrap();
        if head[0] & 0x0f == 0x8 {
            return;
        }
    }
}

/// Starts a shutdown that stays in its grace period (a WebSocket peer that never answers the
/// server's close frame holds it for a while), sends `second`, and returns the exit status.
fn second_signal_during_grace(second: &str) -> ExitStatus {
    let mut server = Server::start();
    let mut ws = server.connect();
    ws.write_all(
        format!(
            "GET /stream?interval_ms=60000 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101", "the WebSocket handshake");
    wait_stats(&server, LOOSE, "the WebSocket stream counted", |s| {
        s.active_streams == 1
    });
    server.signal("TERM");
    wait_for_close_frame(&mut ws); // shutdown started; the server now waits for our reply
    let t0 = Instant::now();
    server.signal(second);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("web_app exits after the second signal");
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "the second signal took {:?} to end the process",
        t0.elapsed()
    );
    status
}

#[test]
fn a_second_sigterm_during_the_grace_period_exits_143_at_once() {
    let status = second_signal_during_grace("TERM");
    assert_eq!(status.code(), Some(143), "{status:?}");
}

#[test]
fn a_sigint_during_the_grace_period_exits_130_at_once() {
    let status = second_signal_during_grace("INT");
    assert_eq!(status.code(), Some(130), "{status:?}");
}
