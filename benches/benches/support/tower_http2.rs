//! HTTP load for the tower and HTTP/2 rows of the `http` bench: an axum `Router` on smol with
//! and without the request layer, and HTTP/2 with prior knowledge (many streams over a few
//! connections) through plain hyper, plain hyper with the layer, and `Server::serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cancelable::CancellationToken;
use cancelable_http::io::{FuturesIo, SmolExecutor};
use cancelable_http::{RequestService, Server, ServerConfig};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;
use tower_layer::Layer as _;

use crate::support::{Sample, client, cpu_time, health};

/// Who answers `/health` in the tower rows (HTTP/1.1, one smol task per connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tower {
    /// hyper's http1 server running the axum `Router` (through hyper-util's adapter).
    Axum,
    /// The same with the `Router` behind `Server::cancel_layer()`.
    AxumLayer,
    /// `Server::serve` (layer, limits, disconnect watch, shutdown) around the `Router`.
    AxumServe,
}

impl Tower {
    pub fn name(self) -> &'static str {
        match self {
            Tower::Axum => "axum on smol",
            Tower::AxumLayer => "axum + cancel_layer",
            Tower::AxumServe => "axum under Server::serve",
        }
    }
}

/// Who answers `/health` in the HTTP/2 rows (h2c, prior knowledge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H2 {
    /// hyper's http2 server on smol (`SmolExecutor`), no layer.
    Plain,
    /// The same around `Server::layer`.
    PlainLayer,
    /// `Server::serve`: preface sniffing, the layer, the frame watch and the bounds.
    Serve,
}

impl H2 {
    pub fn name(self) -> &'static str {
        match self {
            H2::Plain => "plain hyper h2 on smol",
            H2::PlainLayer => "plain hyper h2 + layer",
            H2::Serve => "Server::serve (h2c)",
        }
    }
}

/// The axum app: the same `/health`.
fn router() -> axum::Router {
    axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            (
                [(hyper::header::CONTENT_TYPE, "application/json")],
                r#"{"status":"healthy"}"#,
            )
        }),
    )
}

/// A server on its own thread; stops when dropped.
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

/// Runs `serve(listener, stop)` on a thread of its own.
fn run<F, Fut>(serve: F) -> Running
where
    F: FnOnce(smol::net::TcpListener, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = smol::block_on(cancelable_http::bind("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let done = thread::spawn(move || smol::block_on(serve(listener, token)));
    Running {
        addr,
        stop,
        done: Some(done),
    }
}

/// Accepts until `stop`, handing each connection to `conn` on a task of its own.
async fn accept_loop<F, Fut>(listener: smol::net::TcpListener, stop: CancellationToken, conn: F)
where
    F: Fn(FuturesIo<smol::net::TcpStream>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            smol::spawn(conn(FuturesIo::new(stream))).detach();
        }
    };
    futures_lite::future::or(accept, stop.cancelled()).await;
}

fn start_tower(variant: Tower) -> Running {
    run(move |listener, stop| async move {
        let server = Server::new(ServerConfig::default().grace(Duration::from_millis(100)));
        match variant {
            Tower::Axum => {
                let app = router();
                let serve = |io| {
                    let service = hyper_util::service::TowerToHyperService::new(app.clone());
                    async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                };
                accept_loop(listener, stop, serve).await;
            }
            Tower::AxumLayer => {
                let app = server.cancel_layer().layer(router());
                let serve = |io| {
                    let service = hyper_util::service::TowerToHyperService::new(app.clone());
                    async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                };
                accept_loop(listener, stop, serve).await;
            }
            Tower::AxumServe => {
                let service = hyper_util::service::TowerToHyperService::new(router());
                server.serve(listener, service, &stop).await;
            }
        }
    })
}

fn start_h2(variant: H2) -> Running {
    run(move |listener, stop| async move {
        let server = Server::new(ServerConfig::default().grace(Duration::from_millis(100)));
        match variant {
            H2::Plain => {
                let serve = |io| async move {
                    let _ = hyper::server::conn::http2::Builder::new(SmolExecutor)
                        .serve_connection(io, hyper::service::service_fn(health))
                        .await;
                };
                accept_loop(listener, stop, serve).await;
            }
            H2::PlainLayer => {
                let serve = |io| {
                    let service = server.layer(hyper::service::service_fn(health));
                    async move {
                        let _ = hyper::server::conn::http2::Builder::new(SmolExecutor)
                            .serve_connection(io, service)
                            .await;
                    }
                };
                accept_loop(listener, stop, serve).await;
            }
            H2::Serve => {
                server
                    .serve(listener, hyper::service::service_fn(health), &stop)
                    .await;
            }
        }
    })
}

/// `streams` request loops over one HTTP/2 connection until `deadline`: each sends
/// `GET /health` and reads its whole response, again and again.
async fn h2_client(addr: SocketAddr, streams: usize, deadline: Instant, count: Arc<AtomicU64>) {
    let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, connection) = h2::client::handshake(tcp.compat()).await.unwrap();
    let driver = smol::spawn(async move {
        let _ = connection.await;
    });
    let loops = (0..streams).map(|_| {
        let mut sender = sender.clone();
        let count = count.clone();
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                sender = sender.ready().await.unwrap();
                let request = Request::get("http://bench/health").body(()).unwrap();
                let (response, _) = sender.send_request(request, true).unwrap();
                let response = response.await.unwrap();
                assert_eq!(response.status(), 200);
                let mut body = response.into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                n += 1;
            }
            count.fetch_add(n, Ordering::Relaxed);
        }
    });
    let ex = smol::LocalExecutor::new();
    let tasks: Vec<_> = loops.map(|l| ex.spawn(l)).collect();
    ex.run(async {
        for task in tasks {
            task.await;
        }
    })
    .await;
    drop(sender);
    driver.cancel().await;
}

/// Requests per second and CPU time per request (the whole process, client included) of a
/// load against `server` for `run`.
fn measure(server: Running, load: impl FnOnce(SocketAddr, Instant, Arc<AtomicU64>)) -> Sample {
    let cpu_start = cpu_time();
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    load(server.addr, start, count.clone());
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

/// The HTTP/1.1 load of the other rows: `connections` keep-alive connections, one request at
/// a time each.
pub fn measure_tower(variant: Tower, connections: usize, run: Duration) -> Sample {
    measure(start_tower(variant), |addr, start, count| {
        let ex = smol::LocalExecutor::new();
        let tasks: Vec<_> = (0..connections)
            .map(|_| ex.spawn(client(addr, start + run, count.clone())))
            .collect();
        smol::block_on(ex.run(async {
            for task in tasks {
                task.await;
            }
        }));
    })
}

/// `connections` HTTP/2 connections with `streams` requests in flight on each.
pub fn measure_h2(variant: H2, connections: usize, streams: usize, run: Duration) -> Sample {
    measure(start_h2(variant), |addr, start, count| {
        let ex = smol::LocalExecutor::new();
        let tasks: Vec<_> = (0..connections)
            .map(|_| ex.spawn(h2_client(addr, streams, start + run, count.clone())))
            .collect();
        smol::block_on(ex.run(async {
            for task in tasks {
                task.await;
            }
        }));
    })
}

/// Medians of `rounds` alternating runs of each of `runs`, so drift and other processes' load
/// hit all alike.
pub fn alternate(runs: &[&dyn Fn() -> Sample], rounds: usize) -> Vec<Sample> {
    let mut samples = vec![Vec::new(); runs.len()];
    for _ in 0..rounds {
        for (i, run) in runs.iter().enumerate() {
            samples[i].push(run());
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

/// The layer's own cost per request on the tower path, without sockets: the axum `Router`
/// behind `cancel_layer()` against the `Router` alone, each called and polled to completion
/// with a no-op waker. Returns (layered, alone) in nanoseconds per request.
pub fn tower_layer_overhead(iterations: u32) -> (f64, f64) {
    let server = Server::new(ServerConfig::default());
    let mut alone = router();
    let mut layered = server.cancel_layer().layer(router());
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..5 {
        a.push(per_call(iterations, || call_layered(&mut layered)));
        b.push(per_call(iterations, || call_alone(&mut alone)));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    (a[2], b[2])
}

/// Nanoseconds per call of `f`.
fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn health_request() -> Request<axum::body::Body> {
    Request::get("/health")
        .body(axum::body::Body::empty())
        .unwrap()
}

/// One request through `service`, polled to completion with a no-op waker.
fn call_once<S: tower_service::Service<Request<axum::body::Body>>>(service: &mut S) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let response = std::pin::pin!(service.call(health_request()));
    assert!(response.poll(&mut cx).is_ready());
}

// Separate, never inlined: callgrind's inclusive cost of each is the per-request cost of its
// path (`HTTP_BENCH_SECTION=tower-memory`).
#[inline(never)]
fn call_layered(service: &mut RequestService<axum::Router>) {
    call_once(service);
}

#[inline(never)]
fn call_alone(service: &mut axum::Router) {
    call_once(service);
}

/// One end of an in-memory full-duplex byte stream (two of smol's pipes): a server and its
/// client on one thread with no kernel in between, so callgrind counts the same instructions
/// run after run.
struct Duplex {
    read: piper::Reader,
    write: piper::Writer,
}

fn duplex() -> (Duplex, Duplex) {
    let (r1, w1) = piper::pipe(64 * 1024);
    let (r2, w2) = piper::pipe(64 * 1024);
    (
        Duplex {
            read: r1,
            write: w2,
        },
        Duplex {
            read: r2,
            write: w1,
        },
    )
}

impl futures_lite::AsyncRead for Duplex {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for Duplex {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.write).poll_close(cx)
    }
}

/// hyper's executor on a thread-local executor: the HTTP/2 stream tasks stay on this thread.
#[derive(Clone)]
struct Local(std::rc::Rc<smol::LocalExecutor<'static>>);

impl<F: Future + 'static> hyper::rt::Executor<F> for Local {
    fn execute(&self, fut: F) {
        self.0.spawn(fut).detach();
    }
}

/// `requests` sequential `GET /health` on one HTTP/1.1 keep-alive connection to `service`
/// (a tower service, through hyper-util's adapter), client and server on this thread.
fn pipe_h1<S, B>(service: S, requests: u64)
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
    let (server_end, mut client_end) = duplex();
    let ex = smol::LocalExecutor::new();
    let service = hyper_util::service::TowerToHyperService::new(service);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(FuturesIo::new(server_end), service);
    let server = ex.spawn(async move {
        let _ = conn.await;
    });
    smol::block_on(ex.run(async move {
        let mut buf = vec![0u8; 4096];
        for _ in 0..requests {
            client_end
                .write_all(b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n")
                .await
                .unwrap();
            let mut have = 0;
            loop {
                have += client_end.read(&mut buf[have..]).await.unwrap();
                let head = buf[..have].windows(4).position(|w| w == b"\r\n\r\n");
                if let Some(end) = head {
                    let text = std::str::from_utf8(&buf[..end]).unwrap();
                    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap();
                    if have >= end + 4 + len {
                        break;
                    }
                }
            }
        }
        drop(client_end);
        server.await;
    }));
}

/// `connections` HTTP/2 connections with `streams` request loops each, `per_stream` requests
/// per loop, to `service`; client, server and stream tasks on this thread.
fn pipe_h2<S, B>(service: S, connections: usize, streams: usize, per_stream: u64)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ex = std::rc::Rc::new(smol::LocalExecutor::new());
    let mut clients = Vec::new();
    for _ in 0..connections {
        let (server_end, client_end) = duplex();
        let conn = hyper::server::conn::http2::Builder::new(Local(ex.clone()))
            .serve_connection(FuturesIo::new(server_end), service.clone());
        ex.spawn(async move {
            let _ = conn.await;
        })
        .detach();
        let local = ex.clone();
        clients.push(ex.spawn(async move {
            let (sender, connection) = h2::client::handshake(client_end.compat()).await.unwrap();
            let driver = local.spawn(async move {
                let _ = connection.await;
            });
            let loops: Vec<_> = (0..streams)
                .map(|_| {
                    let mut sender = sender.clone();
                    local.spawn(async move {
                        for _ in 0..per_stream {
                            sender = sender.ready().await.unwrap();
                            let request = Request::get("http://bench/health").body(()).unwrap();
                            let (response, _) = sender.send_request(request, true).unwrap();
                            let mut body = response.await.unwrap().into_body();
                            while let Some(chunk) = body.data().await {
                                let chunk = chunk.unwrap();
                                let _ = body.flow_control().release_capacity(chunk.len());
                            }
                        }
                    })
                })
                .collect();
            for l in loops {
                l.await;
            }
            drop(sender);
            driver.cancel().await;
        }));
    }
    smol::block_on(ex.run(async {
        for client in clients {
            client.await;
        }
    }));
}

// One function per path, never inlined: under callgrind
// (`HTTP_BENCH_SECTION=tower-memory`), each one's inclusive cost divided by its requests is the
// path's whole per-request cost, client included.
#[inline(never)]
fn pipe_axum(requests: u64) {
    pipe_h1(router(), requests);
}

#[inline(never)]
fn pipe_axum_layer(requests: u64) {
    let server = Server::new(ServerConfig::default());
    pipe_h1(server.cancel_layer().layer(router()), requests);
}

#[inline(never)]
fn pipe_h2_plain(per_stream: u64) {
    pipe_h2(hyper::service::service_fn(health), 4, 16, per_stream);
}

#[inline(never)]
fn pipe_h2_layer(per_stream: u64) {
    let server = Server::new(ServerConfig::default());
    pipe_h2(
        server.layer(hyper::service::service_fn(health)),
        4,
        16,
        per_stream,
    );
}

/// Nanoseconds per request, end to end in memory on one thread (medians of 5 alternating
/// runs): (axum alone, axum behind the layer, plain hyper h2, plain hyper h2 with the layer).
/// The HTTP/2 runs are 64 request loops over 4 connections.
pub fn pipe_costs(requests: u64) -> [f64; 4] {
    let per_stream = (requests / 64).max(1);
    let h2_requests = per_stream * 64;
    let runs: [(&dyn Fn(), u64); 4] = [
        (&|| pipe_axum(requests), requests),
        (&|| pipe_axum_layer(requests), requests),
        (&|| pipe_h2_plain(per_stream), h2_requests),
        (&|| pipe_h2_layer(per_stream), h2_requests),
    ];
    let mut samples = vec![Vec::new(); runs.len()];
    for _ in 0..5 {
        for (i, (run, n)) in runs.iter().enumerate() {
            let start = Instant::now();
            run();
            samples[i].push(start.elapsed().as_nanos() as f64 / *n as f64);
        }
    }
    let mut medians = [0.0; 4];
    for (median, mut s) in medians.iter_mut().zip(samples) {
        s.sort_by(f64::total_cmp);
        *median = s[2];
    }
    medians
}
