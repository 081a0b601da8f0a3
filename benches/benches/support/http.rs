//! HTTP load for the `http` bench and the report: `/health` through cancelable-http, through
//! plain hyper on smol with the same handler and through axum on tokio, driven by an in-process
//! client over loopback (bounded in time), and the disconnect-to-cancel latency of the request
//! layer.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cancelable::CancellationToken;
use cancelable_http::io::FuturesIo;
use cancelable_http::{HandlerResult, Router, Server, ServerConfig, request_token};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// Which server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// hyper's http1 server on smol, one task per connection, no layer.
    PlainHyper,
    /// `Server::serve` (request layer, limits, shutdown) around the same `service_fn`.
    Layer,
    /// `Server::serve` with the `Router` (a boxed body, matchit lookup).
    Router,
    /// The plain accept loop, service wrapped in `Server::layer` only.
    PlainLayer,
    /// The plain accept loop with hyper's header read timeout on a `CoarseTimer`.
    PlainTimer,
    /// axum 0.8 (default features) on a tokio runtime with 2 worker threads, the same response.
    Axum,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::PlainHyper => "plain hyper on smol",
            Variant::Layer => "cancelable-http (layer + runner)",
            Variant::Router => "cancelable-http (layer + runner + Router)",
            Variant::PlainLayer => "plain loop + layer",
            Variant::PlainTimer => "plain loop + header timeout (CoarseTimer)",
            Variant::Axum => "axum 0.8 on tokio (2 workers)",
        }
    }
}

/// The handler every server of these benches runs (the tower and HTTP/2 rows too).
pub async fn health(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(br#"{"status":"healthy"}"#)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// [`health`] as a `Router` handler: the same bytes and content type, no serialisation, so
/// the servers are compared on the same work.
async fn routed_health(_req: Request<Incoming>, _: ()) -> HandlerResult {
    let mut response = Response::new(cancelable_http::full(Bytes::from_static(
        br#"{"status":"healthy"}"#,
    )));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A running server; stops when dropped.
struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    done: Option<thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            let _ = done.join();
        }
    }
}

/// axum's `/health`: the body and content type of [`health`].
async fn axum_health() -> impl axum::response::IntoResponse {
    (
        [(hyper::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"healthy"}"#,
    )
}

/// axum on its own tokio runtime (2 workers, as a small service would run it), `TCP_NODELAY`
/// like the others.
fn start_axum() -> Running {
    use axum::serve::ListenerExt as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let done = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .unwrap()
                .tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
            let app = axum::Router::new().route("/health", axum::routing::get(axum_health));
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .unwrap();
        });
    });
    Running {
        addr,
        stop,
        done: Some(done),
    }
}

fn start(variant: Variant) -> Running {
    if variant == Variant::Axum {
        return start_axum();
    }
    let listener = smol::block_on(cancelable_http::bind("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let done = thread::spawn(move || {
        smol::block_on(async move {
            match variant {
                Variant::PlainHyper | Variant::PlainLayer | Variant::PlainTimer => {
                    let server = Server::new(ServerConfig::default());
                    let accept = plain_accept(variant, &listener, &server, |task| {
                        smol::spawn(task).detach()
                    });
                    futures_lite::future::or(accept, token.cancelled()).await;
                }
                Variant::Layer => {
                    let server =
                        Server::new(ServerConfig::default().grace(Duration::from_millis(100)));
                    server
                        .serve(listener, hyper::service::service_fn(health), &token)
                        .await;
                }
                Variant::Router => {
                    let server =
                        Server::new(ServerConfig::default().grace(Duration::from_millis(100)));
                    let router = Router::new(()).get("/health", routed_health).into_service();
                    server.serve(listener, router, &token).await;
                }
                Variant::Axum => unreachable!("started by start_axum"),
            }
        })
    });
    Running {
        addr,
        stop,
        done: Some(done),
    }
}

/// Sends `GET /health` and reads one response at a time, until `deadline`.
pub async fn client(addr: SocketAddr, deadline: Instant, count: Arc<AtomicU64>) {
    let mut stream = smol::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    let mut n = 0u64;
    while Instant::now() < deadline {
        stream.write_all(request).await.unwrap();
        let mut have = 0;
        loop {
            let k = stream.read(&mut buf[have..]).await.unwrap();
            assert!(k > 0, "server closed the connection");
            have += k;
            if let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                if have >= end + 4 + len {
                    break;
                }
            }
        }
        n += 1;
    }
    count.fetch_add(n, Ordering::Relaxed);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// CPU time this process has used (user + system), from `/proc/self/stat`; `None` elsewhere.
/// Unlike wall-clock throughput it barely moves when other processes load the machine.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15 (in clock ticks).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux target we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// One measurement: requests per second and CPU time per request (client and server, the
/// whole process), or wall time per request where CPU time cannot be read.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub rps: f64,
    pub cpu_per_request: Duration,
}

/// Throughput and CPU cost per request of `variant`.
pub fn measure(variant: Variant, connections: usize, run: Duration) -> Sample {
    let server = start(variant);
    let cpu_start = cpu_time();
    let count = Arc::new(AtomicU64::new(0));
    let ex = smol::LocalExecutor::new();
    let start = Instant::now();
    let deadline = start + run;
    let tasks: Vec<_> = (0..connections)
        .map(|_| ex.spawn(client(server.addr, deadline, count.clone())))
        .collect();
    smol::block_on(ex.run(async {
        for task in tasks {
            task.await;
        }
    }));
    let took = start.elapsed();
    let cpu = match (cpu_start, cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => took,
    };
    drop(server);
    let n = count.load(Ordering::Relaxed).max(1);
    Sample {
        rps: n as f64 / took.as_secs_f64(),
        cpu_per_request: cpu / u32::try_from(n).unwrap_or(u32::MAX),
    }
}

/// Medians (requests/s, CPU per request) of `rounds` alternating runs of each variant, so
/// drift and other processes' load hit all alike.
pub fn compare(
    variants: &[Variant],
    connections: usize,
    run: Duration,
    rounds: usize,
) -> Vec<Sample> {
    let mut samples = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            samples[i].push(measure(*v, connections, run));
        }
    }
    samples
        .into_iter()
        .map(|s| {
            let mut rps: Vec<f64> = s.iter().map(|x| x.rps).collect();
            let mut cpu: Vec<Duration> = s.iter().map(|x| x.cpu_per_request).collect();
            rps.sort_by(f64::total_cmp);
            cpu.sort();
            Sample {
                rps: rps[rps.len() / 2],
                cpu_per_request: cpu[cpu.len() / 2],
            }
        })
        .collect()
}

#[derive(Clone)]
struct Probe {
    started: mpsc::SyncSender<()>,
    cancelled: mpsc::SyncSender<Instant>,
}

async fn hold(req: Request<Incoming>, probe: Probe) -> HandlerResult {
    let token = request_token(&req).unwrap().clone();
    let cancelled = probe.cancelled.clone();
    let _callback = token.on_cancel(move |_| {
        let _ = cancelled.send(Instant::now());
    });
    probe.started.send(()).unwrap();
    std::future::pending().await
}

/// `n` disconnect-to-cancel latencies: from the client's `close` of a connection whose request
/// is in flight to the request token's cancel callback running on the server.
pub fn disconnect_latencies(n: usize) -> Vec<Duration> {
    let (started, started_rx) = mpsc::sync_channel(1);
    let (cancelled, cancelled_rx) = mpsc::sync_channel(1);
    let listener = smol::block_on(cancelable_http::bind("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let server = thread::spawn(move || {
        let server = Server::new(ServerConfig::default().grace(Duration::from_millis(100)));
        let router = Router::new(Probe { started, cancelled })
            .get("/hold", hold)
            .into_service();
        smol::block_on(server.serve(listener, router, &token));
    });
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /hold HTTP/1.1\r\nhost: bench\r\n\r\n")
            .unwrap();
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let closed = Instant::now();
        drop(stream);
        let at = cancelled_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        out.push(at.saturating_duration_since(closed));
    }
    stop.cancel();
    let _ = server.join();
    out.sort();
    out
}

/// The `q` quantile (0..=1) of sorted `values`.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The layer's own cost per request, without sockets: `RequestService::call` around a service
/// that answers at once, polled to completion and dropped, against calling that service bare.
/// Returns (layer, bare) in nanoseconds per request.
pub fn layer_overhead(iterations: u32) -> (f64, f64) {
    use hyper::service::Service as _;
    let server = Server::new(ServerConfig::default());
    let bare = hyper::service::service_fn(|_req: Request<http_body_util::Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
    });
    let layered = server.layer(bare);
    let waker = std::task::Waker::noop();
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(iterations)
    };
    let mut with_layer = || {
        let fut = std::pin::pin!(layered.call(Request::new(http_body_util::Empty::new())));
        assert!(
            fut.poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        );
    };
    let mut without = || {
        let fut = std::pin::pin!(bare.call(Request::new(http_body_util::Empty::new())));
        assert!(
            fut.poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        );
    };
    // Alternate, keep the medians of 5.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..5 {
        a.push(time(&mut with_layer));
        b.push(time(&mut without));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    (a[2], b[2])
}

/// hyper's per-request header-timeout work on the server's `CoarseTimer` (make a sleep, poll
/// it once while pending, drop it), in nanoseconds.
pub fn header_timer_cost(iterations: u32) -> f64 {
    use hyper::rt::Timer as _;
    let timer = cancelable_http::io::CoarseTimer::new(Duration::from_secs(1));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            let mut sleep = timer.sleep(Duration::from_secs(10));
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(iterations));
    }
    samples.sort_by(f64::total_cmp);
    samples[2]
}

/// Whether `buf` holds a whole `/health` response; panics on anything but a `200`.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n";

/// A fixed amount of `/health` load, for counts rather than times (instructions under
/// callgrind, allocations): a server and its keep-alive clients, each connection warmed up by
/// one request, that [`Load::run`] sends requests through.
///
/// The smol servers and the clients share one executor on the calling thread, so a count does
/// not depend on how threads interleave (under callgrind, a server on threads of its own moves
/// by several percent from run to run). axum runs on its own 2-worker tokio runtime as in
/// [`start`], with the clients on the calling thread.
pub struct Load {
    ex: Arc<smol::Executor<'static>>,
    clients: Vec<Arc<smol::Async<std::net::TcpStream>>>,
    stop: CancellationToken,
    server: Option<smol::Task<()>>,
    axum: Option<Running>,
}

impl Load {
    /// Starts `variant` and opens `connections` connections to it.
    pub fn new(variant: Variant, connections: usize) -> Self {
        let ex = Arc::new(smol::Executor::new());
        let stop = CancellationToken::new();
        let (addr, server, axum) = if variant == Variant::Axum {
            let running = start_axum();
            (running.addr, None, Some(running))
        } else {
            let listener =
                smol::block_on(cancelable_http::bind("127.0.0.1:0".parse().unwrap())).unwrap();
            let addr = listener.local_addr().unwrap();
            let task = ex.spawn(serve_on(variant, listener, stop.clone(), ex.clone()));
            (addr, Some(task), None)
        };
        let clients = (0..connections)
            .map(|_| {
                let s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                Arc::new(smol::Async::new(s).unwrap())
            })
            .collect();
        let mut load = Self {
            ex,
            clients,
            stop,
            server,
            axum,
        };
        load.run(1);
        load
    }

    /// Sends `per_connection` requests through each connection, one at a time per connection
    /// (all connections at once), and reads their answers.
    pub fn run(&mut self, per_connection: usize) {
        let ex = self.ex.clone();
        let clients = &self.clients;
        let all = async {
            let tasks: Vec<_> = clients
                .iter()
                .map(|s| {
                    let s = s.clone();
                    ex.spawn(async move {
                        let mut buf = [0u8; 1024];
                        for _ in 0..per_connection {
                            get_health(&s, &mut buf).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
        };
        smol::block_on(self.ex.run(all));
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.clients.clear();
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            smol::block_on(self.ex.run(server));
        }
        self.axum.take();
    }
}

/// The plain variants' accept loop: hyper's http1 server per connection, handed to `spawn`;
/// with hyper's header timeout on a `CoarseTimer` (`PlainTimer`) or `server`'s layer
/// (`PlainLayer`) where the variant says so.
async fn plain_accept(
    variant: Variant,
    listener: &smol::net::TcpListener,
    server: &Server,
    spawn: impl Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) {
    let timer = cancelable_http::io::CoarseTimer::new(Duration::from_secs(1));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        if variant == Variant::PlainTimer {
            builder
                .timer(timer.clone())
                .header_read_timeout(Duration::from_secs(10));
        }
        let io = FuturesIo::new(stream);
        if variant == Variant::PlainLayer {
            let service = server.layer(hyper::service::service_fn(health));
            spawn(Box::pin(async move {
                let _ = builder.serve_connection(io, service).await;
            }));
        } else {
            spawn(Box::pin(async move {
                let _ = builder
                    .serve_connection(io, hyper::service::service_fn(health))
                    .await;
            }));
        }
    }
}

/// Serves `variant` (not axum) on `listener` with every task on `ex`, until `stop`.
async fn serve_on(
    variant: Variant,
    listener: smol::net::TcpListener,
    stop: CancellationToken,
    ex: Arc<smol::Executor<'static>>,
) {
    let config = ServerConfig::default()
        .grace(Duration::from_millis(100))
        .executor(ex.clone());
    match variant {
        Variant::PlainHyper | Variant::PlainLayer | Variant::PlainTimer => {
            let server = Server::new(config);
            let accept = plain_accept(variant, &listener, &server, |task| ex.spawn(task).detach());
            futures_lite::future::or(accept, stop.cancelled()).await;
        }
        Variant::Layer => {
            let service = hyper::service::service_fn(health);
            Server::new(config).serve(listener, service, &stop).await;
        }
        Variant::Router => {
            let router = Router::new(()).get("/health", routed_health).into_service();
            Server::new(config).serve(listener, router, &stop).await;
        }
        Variant::Axum => unreachable!("axum runs on tokio"),
    }
}

async fn get_health(mut stream: &smol::Async<std::net::TcpStream>, buf: &mut [u8]) {
    stream.write_all(HEALTH).await.unwrap();
    let mut have = 0;
    while !response_complete(&buf[..have]) {
        let k = stream.read(&mut buf[have..]).await.unwrap();
        assert!(k > 0, "server closed the connection");
        have += k;
    }
}
