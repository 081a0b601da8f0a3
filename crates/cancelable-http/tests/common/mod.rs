//! Shared helpers of the integration tests: a server on 127.0.0.1:0 on its own thread, a tiny
//! blocking HTTP/1.1 client over raw `TcpStream`s, and event-driven waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cancelable::CancellationToken;
use cancelable_http::{Router, Server, ServerConfig};
use cancelable_smol::ShutdownReport;

/// Upper bound of every wait: generous (10x what a healthy run needs) so a loaded machine does
/// not fail a test, tight enough that a hang fails it.
pub const LONG: Duration = Duration::from_secs(10);

/// A server serving `router` on 127.0.0.1:0 from a background thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    pub stop: CancellationToken,
    done: Option<mpsc::Receiver<ShutdownReport>>,
}

impl TestServer {
    pub fn start<S: Clone + Send + Sync + 'static>(
        config: ServerConfig,
        router: impl FnOnce(&Server) -> Router<S>,
    ) -> Self {
        let server = Server::new(config);
        let service = router(&server).into_service();
        Self::start_service(server, service)
    }

    pub fn start_service<S, B>(server: Server, service: S) -> Self
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<B>,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<cancelable_http::BoxError>,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<cancelable_http::BoxError>,
    {
        let stop = CancellationToken::new();
        let listener =
            smol::block_on(cancelable_http::bind("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let (srv, stp) = (server.clone(), stop.clone());
        thread::spawn(move || {
            let report = smol::block_on(srv.serve(listener, service, &stp));
            let _ = tx.send(report);
        });
        Self {
            addr,
            server,
            stop,
            done: Some(rx),
        }
    }

    /// Cancels the stop token and waits for `serve` to return its report.
    pub fn shutdown(&mut self) -> ShutdownReport {
        self.stop.cancel();
        self.wait_stopped()
    }

    pub fn wait_stopped(&mut self) -> ShutdownReport {
        self.done
            .take()
            .expect("stopped once")
            .recv_timeout(LONG)
            .expect("serve returned within the bound")
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(LONG)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// One request on a fresh connection (`connection: close`), the whole response.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut stream = self.connect();
        stream
            .write_all(request_text(method, path, body, true).as_bytes())
            .unwrap();
        read_response(&mut BufReader::new(stream)).expect("a response")
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    /// Waits until `probe` holds (checking on every counter change would need hooks; the
    /// counters are atomics, so polling them at 1 ms is the event here), panics after `LONG`.
    pub fn until(&self, what: &str, mut probe: impl FnMut(&Server) -> bool) -> Duration {
        let start = Instant::now();
        while !probe(&self.server) {
            assert!(
                start.elapsed() < LONG,
                "timed out waiting for {what}: {:?}",
                self.server.stats()
            );
            thread::sleep(Duration::from_millis(1));
        }
        start.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn request_text(method: &str, path: &str, body: Option<&str>, close: bool) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
    if close {
        text.push_str("connection: close\r\n");
    }
    match body {
        Some(body) => text.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => text.push_str("\r\n"),
    }
    text
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Reads a status line and headers.
pub fn read_head<R: BufRead>(r: &mut R) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| std::io::Error::other(h.to_owned()))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok((status, headers))
}

/// Reads one response with a `content-length` body (every non-streaming response here).
pub fn read_response<R: BufRead>(r: &mut R) -> std::io::Result<Response> {
    let (status, headers) = read_head(r)?;
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    let len: usize = response
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    response.body = String::from_utf8(body).map_err(std::io::Error::other)?;
    Ok(response)
}

/// `true` once the peer closed `stream` (EOF or reset), `false` if it sent data instead.
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("the server kept the connection open")
        }
        Err(_) => true,
    }
}

/// A one-shot signal from a handler to the test thread (`std` channel: no sleeps).
pub fn signal<T>() -> (mpsc::SyncSender<T>, mpsc::Receiver<T>) {
    mpsc::sync_channel(64)
}
