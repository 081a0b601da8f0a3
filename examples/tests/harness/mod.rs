//! A `web_app` process for black-box tests: built from this workspace (never stale), started on
//! 127.0.0.1:0, its address read from its first line of stdout; raw HTTP/1.1 over
//! `std::net::TcpStream` so tests control every byte and every close.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Read timeout on client sockets: a server that never answers fails a test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The `web_app` example binary of this workspace, built once per test process into the same
/// target dir and profile (a no-op when up to date). `WEB_APP_BIN` overrides it.
pub fn web_app_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(build_web_app)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_web_app() -> Result<PathBuf, String> {
    match std::env::var_os("WEB_APP_BIN") {
        Some(p) => Ok(PathBuf::from(p)),
        None => build_example("web_app"),
    }
}

/// Builds example `name` of this package into the test's own target dir and profile (a no-op
/// when up to date), so a stale binary is never tested; its path.
pub fn build_example(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("the test binary is not in <target>/<profile>/deps/")?;
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").ok_or("CARGO is not set: run through cargo test")?;
    let target_dir = profile_dir.parent().ok_or("no target dir")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build --example {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} is missing after the build", bin.display()))
    }
}

/// A running `web_app`; SIGTERM then SIGKILL when dropped.
pub struct WebApp {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Reads stderr until the process closes it; joined once the process exited.
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl WebApp {
    pub fn start() -> WebApp {
        let bin = web_app_binary();
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                let mut s = sink.lock().unwrap();
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
            let _ = tx.send(reader.read_line(&mut first).map(|_| first));
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                panic!("web_app printed no first line: {other:?}");
            }
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line {line:?} is not `listening on http://ADDR`"));
        WebApp {
            child,
            addr,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// The exit status, or `None` if the process still runs after `within`. Once it returns a
    /// status, [`stderr`](WebApp::stderr) holds everything the process wrote.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to web_app");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// `GET path` on a fresh connection (`Connection: close`): status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = self.connect();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        read_response(&mut BufReader::new(s))
            .unwrap_or_else(|e| panic!("GET {path}: {e}; stderr: {}", self.stderr()))
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> Value {
        let (status, body) = self.get("/stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("/stats is JSON")
    }

    /// Polls `/stats` until `probe` holds; panics after `within`.
    pub fn wait_stats(&self, within: Duration, what: &str, probe: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let stats = self.stats();
            if probe(&stats) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}: {stats}"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for WebApp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// One response with a `content-length` body (every non-streaming response of web_app):
/// status and body.
pub fn read_response<R: BufRead>(r: &mut R) -> io::Result<(u16, String)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The header of a client WebSocket frame of `len` payload bytes, masked with a zero key (so
/// the payload goes as is).
pub fn ws_header(first: u8, len: usize) -> Vec<u8> {
    let mut out = vec![first];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// A whole client WebSocket frame (see [`ws_header`]).
pub fn ws_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ws_header(first, payload.len());
    out.extend_from_slice(payload);
    out
}

/// The next server WebSocket frame: (opcode, payload).
pub fn read_ws_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            r.read_exact(&mut n)?;
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            r.read_exact(&mut n)?;
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok((head[0] & 0x0f, payload))
}
