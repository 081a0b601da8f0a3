//! The smol server runner: [`Server`] binds, accepts, serves HTTP/1.1 and HTTP/2 with hyper
//! through the [request layer](crate::request), enforces the limits of [`ServerConfig`] and
//! shuts down gracefully.
//!
//! # HTTP/2
//!
//! With the `http2` feature (default), a connection that opens with the HTTP/2 connection
//! preface is served as HTTP/2 with prior knowledge (h2c, `curl --http2-prior-knowledge`), any
//! other as HTTP/1.1, on the same port. Each HTTP/2 stream is a request with its own token:
//!
//! * a `RST_STREAM` from the client cancels that request with `Disconnected` at once; the other
//!   streams of the connection go on;
//! * the connection closing, or a `GOAWAY` carrying an error code, cancels every request of the
//!   connection with `Disconnected`; a `GOAWAY` without error is a graceful goodbye (RFC 9113,
//!   section 6.8): no new streams, and the requests in flight are answered;
//! * a request that produced its response is not cancelled by any of these, as on HTTP/1.1.
//!
//! # Disconnects
//!
//! A client that leaves while its request is answered is noticed within milliseconds,
//! whatever it sent after the request (a stray CRLF, a pipelined request, a body its handler
//! has not read yet): the server reads ahead of hyper while a request is in flight (at most
//! 16 KiB, kept for hyper in order), and the read that meets the end of the stream or an error
//! cancels the request token with `Disconnected` before anything else hears of it. A body cut
//! short by the client leaving therefore counts as a cancelled request, not as a `400`. A
//! client with more than 16 KiB queued behind its request (a large body the handler does not
//! read yet, a deep pipeline) is not read further until the handler catches up; on Linux and
//! Android its FIN is still seen behind the unread bytes (`POLLRDHUP`, checked every 20 ms
//! while the buffer is full), elsewhere only once the handler has read up to it.
//!
//! A FIN is a disconnect, also when the client only half-closed (`shutdown(SHUT_WR)`): the
//! server cannot tell a half-close from a close, and treating the FIN as the client leaving
//! is what stops work nobody waits for. The request in flight is cancelled and the
//! connection closed without an answer; an answer that was complete before the FIN was read
//! (the usual case for a handler that answers at once) is still delivered. A client that
//! wants a slow answer keeps its sending side open until it has read it.
//!
//! # Bounds
//!
//! No phase of a connection can hold a connection slot past its bound in [`ServerConfig`]:
//!
//! | phase | bound | past it |
//! |---|---|---|
//! | the first request head, from the connection's start | `header_read_timeout` | connection closed |
//! | idle between a response and the next request's first byte | `idle_timeout` | connection closed |
//! | a later request head, from its first byte | `header_read_timeout` | connection closed |
//! | a request body the handler waits for | `body_read_timeout` and `min_body_rate` | request cancelled with `Timeout`; `408` and the connection closed (only closed if a response started) |
//! | a response the client does not read | `send_timeout` | connection closed |
//!
//! On HTTP/2 the same bounds hold for the connection, with these differences (past any of
//! them, every request of the connection whose response is not sent in full is cancelled
//! with `Timeout`, and the connection closed after a `GOAWAY`):
//!
//! | phase | bound |
//! |---|---|
//! | no stream open: before the first request, then between requests | `header_read_timeout`, then `idle_timeout` |
//! | a header block left open (`HEADERS` without `END_HEADERS`) | `header_read_timeout` |
//! | a request body the client owes | `body_read_timeout` and `min_body_rate`, counted only while the client holds flow-control credit for a body that has not ended, so a handler that leaves its body unread never holds it against the client; a client that keeps a request body open on purpose (streaming) must send within `body_read_timeout` |
//! | a response the client grants no flow-control credit for (it reads every frame but sends no `WINDOW_UPDATE` for a stream or the connection once the window is used up) | `send_timeout`, counted from the moment a response under way has no credit left |
//! | streams open at once | `max_concurrent_streams`; past it a new stream is refused (`RST_STREAM`, `REFUSED_STREAM`) |
//! | a header list | 16 KiB; past it the request is answered `431` |
//! | buffered request body bytes | 1 MiB per connection (the flow-control windows) |
//!
//! The time a handler takes is the route's business ([`Route::timeout`](crate::Route::timeout)).
//! Deadlines are checked on a timer shared by all connections, up to 1/8 of the shortest
//! bound late (at least 5 ms, at most 1 s). After a WebSocket upgrade the connection leaves
//! these bounds: the stream has its own.
//!
//! # Shutdown
//!
//! Shutdown, when the token given to [`Server::serve`] is cancelled (by a signal, a test, an
//! admin route):
//! 1. the listener closes: new clients are refused at once;
//! 2. the server token is cancelled with `Shutdown`, so every request token, job and stream
//!    (all its descendants) is; connections with no request in flight (idle keep-alive,
//!    half-sent request heads) close at once, busy ones after their response (`503` for a
//!    request that was cancelled); HTTP/2 connections get a `GOAWAY` first;
//! 3. the runner waits through the [`TaskTracker`] of every connection, job and stream for at
//!    most the grace period (`cancelable_smol::shutdown`), then returns its [`ShutdownReport`].
//!    The grace is for requests in flight and what they started.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use cancelable::{
    CancelReason, CancellationToken, OperationFilter, OperationSnapshot, Registry, TaskTracker,
};
use cancelable_smol::ShutdownReport;
use futures_lite::FutureExt as _;
use hyper::body::{Body as HttpBody, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use smol::net::TcpListener;

use crate::connection;
use crate::counter::Counter;
#[cfg(feature = "http2")]
use crate::http2::{self, Sniffed};
use crate::io::CoarseTimer;
use crate::policy::{AllowedHosts, Bound};
use crate::request::{RequestContext, RequestService};
use crate::response::BoxError;

pub(crate) const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// Limits and timings of a [`Server`]. Every field has a default (shown below); the builder
/// methods change one each.
///
/// ```
/// use std::time::Duration;
/// use cancelable_http::ServerConfig;
///
/// let config = ServerConfig::default()
///     .max_connections(10_000)
///     .header_read_timeout(Duration::from_secs(5))
///     .max_body_size(64 * 1024)
///     .grace(Duration::from_secs(3));
/// assert_eq!(config.max_body_size, 64 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Connections served at once (1,024). At the limit the server stops accepting until one
    /// closes; new clients wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request head (10 s): counted from the connection's
    /// start for its first request, from the head's first byte for later ones. Past it the
    /// connection is closed without a response.
    pub header_read_timeout: Duration,
    /// The largest request body accepted, in bytes (1 MiB): a larger `content-length` gets
    /// `413` before the handler runs, and [`read_body`](crate::read_body) stops reading there.
    pub max_body_size: u64,
    /// How long shutdown waits for requests, jobs and streams to stop (10 s).
    pub grace: Duration,
    /// Finished tracked requests and streams kept for [`Server::operations`] (100 each).
    pub request_history: usize,
    /// Finished jobs kept for [`Jobs::list`](crate::Jobs::list) and `get` (100).
    pub job_history: usize,
    /// How long an SSE stream may stay silent before a keep-alive comment goes out (15 s).
    pub keep_alive: Duration,
    /// How long a keep-alive connection may sit idle between a response and the first byte of
    /// the next request (30 s); then it is closed without a response.
    pub idle_timeout: Duration,
    /// The longest the server waits for request body bytes that the handler asked for (30 s).
    /// Past it the request is cancelled with `Timeout` and the client gets
    /// `408 {"error": "..."}` and a closed connection (or only the close, when a response has
    /// started already).
    pub body_read_timeout: Duration,
    /// The slowest request body accepted, in bytes per second (256; `0` turns the check off):
    /// once [`body_read_timeout`](ServerConfig::body_read_timeout) has passed since the
    /// handler first asked for the body, the body must have kept up with this rate on average,
    /// or the request ends as for `body_read_timeout`. Stops clients that trickle a byte now
    /// and then to hold a connection for hours.
    pub min_body_rate: u64,
    /// The longest a response may make no progress because the client does not read it (30 s);
    /// then the connection is closed (and the request in flight, if any, cancelled with
    /// `Timeout`). On HTTP/2 this also bounds a response the client grants no flow-control
    /// credit for. A WebSocket message that takes longer to go out ends its stream the same
    /// way.
    pub send_timeout: Duration,

    // Browser safety, stream bounds and the executor (the `policy` and `stream` modules).
    /// The names a request's `Host` may carry ([`AllowedHosts::any`] by default): another
    /// name gets `400`. Applied by the [`Router`](crate::Router) and [`Server::guard`]
    /// (see the [`policy`](crate::policy) module), which also refuse an HTTP/1.1 request
    /// without `Host` or any request with two, with `400`, whatever this setting.
    pub allowed_hosts: AllowedHosts,
    /// Refuse cross-origin requests that change state (off by default): a request with a
    /// method other than `GET`, `HEAD` or `OPTIONS` whose `Sec-Fetch-Site` says another site,
    /// or whose `Origin` does not match its `Host`, and a WebSocket handshake whose `Origin`
    /// does not match, get `403`.
    pub cross_origin_protection: bool,
    /// Require `Content-Type: application/json` on `POST` requests with a body (off by
    /// default): another type gets `415`. Browsers send JSON cross-site only after a CORS
    /// preflight, which this server does not grant, so forms and `text/plain` posts from other
    /// sites cannot reach a handler.
    pub require_json_posts: bool,
    /// SSE and WebSocket streams open at once (256): one more gets `429` at once.
    pub max_streams: usize,
    /// The largest WebSocket frame payload a peer may send, in bytes (1 MiB): a larger frame
    /// header closes the WebSocket with `1009` before its payload is read.
    pub max_websocket_frame: usize,
    /// The largest WebSocket message a peer may send, in bytes, all its fragments together
    /// (1 MiB): the frame header that goes past it closes the WebSocket with `1009`.
    pub max_websocket_message: usize,
    /// How long a WebSocket peer may stay silent (60 s): after half of it the server sends a
    /// ping, after all of it the server closes with `1001` and cancels the stream with
    /// `Timeout`.
    pub websocket_idle_timeout: Duration,
    /// Where the server runs its connections, streams and jobs: smol's global executor when
    /// `None` (the default; one thread unless `SMOL_THREADS` says more), or an executor of
    /// yours, run on as many threads as you like.
    pub executor: Option<Arc<smol::Executor<'static>>>,
    /// Whether HTTP/2 with prior knowledge (h2c) is served beside HTTP/1.1 on the same port
    /// (`true`; feature `http2`). When `false`, a client that opens with the HTTP/2 preface
    /// gets its connection closed.
    #[cfg(feature = "http2")]
    pub http2: bool,
    /// The most streams (requests) an HTTP/2 client may have open on one connection at once
    /// (128; feature `http2`). Past it, a new stream is refused with `RST_STREAM`
    /// (`REFUSED_STREAM`), which tells the client it may retry it.
    #[cfg(feature = "http2")]
    pub max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            max_body_size: DEFAULT_MAX_BODY,
            grace: Duration::from_secs(10),
            request_history: 100,
            job_history: 100,
            keep_alive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: 256,
            send_timeout: Duration::from_secs(30),

            allowed_hosts: AllowedHosts::any(),
            cross_origin_protection: false,
            require_json_posts: false,
            max_streams: 256,
            max_websocket_frame: 1024 * 1024,
            max_websocket_message: 1024 * 1024,
            websocket_idle_timeout: Duration::from_secs(60),
            executor: None,
            #[cfg(feature = "http2")]
            http2: true,
            #[cfg(feature = "http2")]
            max_concurrent_streams: 128,
        }
    }
}

impl ServerConfig {
    /// Sets [`max_connections`](ServerConfig::max_connections) (at least 1).
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().max_connections(0).max_connections, 1);
    /// ```
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`header_read_timeout`](ServerConfig::header_read_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().header_read_timeout(Duration::from_secs(1));
    /// assert_eq!(c.header_read_timeout, Duration::from_secs(1));
    /// ```
    pub fn header_read_timeout(mut self, limit: Duration) -> Self {
        self.header_read_timeout = limit;
        self
    }

    /// Sets [`max_body_size`](ServerConfig::max_body_size).
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().max_body_size(10).max_body_size, 10);
    /// ```
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Sets [`grace`](ServerConfig::grace).
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(cancelable_http::ServerConfig::default().grace(Duration::ZERO).grace, Duration::ZERO);
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets [`request_history`](ServerConfig::request_history).
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().request_history(5).request_history, 5);
    /// ```
    pub fn request_history(mut self, n: usize) -> Self {
        self.request_history = n;
        self
    }

    /// Sets [`job_history`](ServerConfig::job_history).
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().job_history(5).job_history, 5);
    /// ```
    pub fn job_history(mut self, n: usize) -> Self {
        self.job_history = n;
        self
    }

    /// Sets [`keep_alive`](ServerConfig::keep_alive) (at least 1 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().keep_alive(Duration::from_secs(30));
    /// assert_eq!(c.keep_alive, Duration::from_secs(30));
    /// ```
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every.max(Duration::from_millis(1));
        self
    }

    /// Sets [`idle_timeout`](ServerConfig::idle_timeout) (at least 1 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().idle_timeout(Duration::from_secs(5));
    /// assert_eq!(c.idle_timeout, Duration::from_secs(5));
    /// ```
    pub fn idle_timeout(mut self, limit: Duration) -> Self {
        self.idle_timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// Sets [`body_read_timeout`](ServerConfig::body_read_timeout) (at least 1 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().body_read_timeout(Duration::from_secs(5));
    /// assert_eq!(c.body_read_timeout, Duration::from_secs(5));
    /// ```
    pub fn body_read_timeout(mut self, limit: Duration) -> Self {
        self.body_read_timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// Sets [`min_body_rate`](ServerConfig::min_body_rate), in bytes per second.
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().min_body_rate(0).min_body_rate, 0);
    /// ```
    pub fn min_body_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_body_rate = bytes_per_second;
        self
    }

    /// Sets [`send_timeout`](ServerConfig::send_timeout) (at least 1 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().send_timeout(Duration::from_secs(5));
    /// assert_eq!(c.send_timeout, Duration::from_secs(5));
    /// ```
    pub fn send_timeout(mut self, limit: Duration) -> Self {
        self.send_timeout = limit.max(Duration::from_millis(1));
        self
    }

    /// Sets [`allowed_hosts`](ServerConfig::allowed_hosts).
    ///
    /// ```
    /// use cancelable_http::{AllowedHosts, ServerConfig};
    /// let c = ServerConfig::default().allowed_hosts(AllowedHosts::local().and("app.example"));
    /// assert!(!c.allowed_hosts.is_any());
    /// ```
    pub fn allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Sets [`cross_origin_protection`](ServerConfig::cross_origin_protection).
    ///
    /// ```
    /// assert!(cancelable_http::ServerConfig::default().cross_origin_protection(true).cross_origin_protection);
    /// ```
    pub fn cross_origin_protection(mut self, on: bool) -> Self {
        self.cross_origin_protection = on;
        self
    }

    /// Sets [`require_json_posts`](ServerConfig::require_json_posts).
    ///
    /// ```
    /// assert!(cancelable_http::ServerConfig::default().require_json_posts(true).require_json_posts);
    /// ```
    pub fn require_json_posts(mut self, on: bool) -> Self {
        self.require_json_posts = on;
        self
    }

    /// Sets [`max_streams`](ServerConfig::max_streams).
    ///
    /// ```
    /// assert_eq!(cancelable_http::ServerConfig::default().max_streams(8).max_streams, 8);
    /// ```
    pub fn max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// Sets [`max_websocket_frame`](ServerConfig::max_websocket_frame).
    ///
    /// ```
    /// let c = cancelable_http::ServerConfig::default().max_websocket_frame(16 * 1024);
    /// assert_eq!(c.max_websocket_frame, 16 * 1024);
    /// ```
    pub fn max_websocket_frame(mut self, bytes: usize) -> Self {
        self.max_websocket_frame = bytes;
        self
    }

    /// Sets [`max_websocket_message`](ServerConfig::max_websocket_message).
    ///
    /// ```
    /// let c = cancelable_http::ServerConfig::default().max_websocket_message(64 * 1024);
    /// assert_eq!(c.max_websocket_message, 64 * 1024);
    /// ```
    pub fn max_websocket_message(mut self, bytes: usize) -> Self {
        self.max_websocket_message = bytes;
        self
    }

    /// Sets [`websocket_idle_timeout`](ServerConfig::websocket_idle_timeout) (at least 2 ms).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let c = cancelable_http::ServerConfig::default().websocket_idle_timeout(Duration::from_secs(30));
    /// assert_eq!(c.websocket_idle_timeout, Duration::from_secs(30));
    /// ```
    pub fn websocket_idle_timeout(mut self, limit: Duration) -> Self {
        self.websocket_idle_timeout = limit.max(Duration::from_millis(2));
        self
    }

    /// Sets [`executor`](ServerConfig::executor): the server's tasks run on `executor`, which
    /// you run on threads of your own (see the web_app example for all cores).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let executor = Arc::new(smol::Executor::new());
    /// let c = cancelable_http::ServerConfig::default().executor(executor.clone());
    /// assert!(c.executor.is_some());
    /// ```
    pub fn executor(mut self, executor: Arc<smol::Executor<'static>>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Sets [`http2`](ServerConfig::http2).
    ///
    /// ```
    /// assert!(!cancelable_http::ServerConfig::default().http2(false).http2);
    /// ```
    #[cfg(feature = "http2")]
    pub fn http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }

    /// Sets [`max_concurrent_streams`](ServerConfig::max_concurrent_streams) (at least 1).
    ///
    /// ```
    /// let c = cancelable_http::ServerConfig::default().max_concurrent_streams(32);
    /// assert_eq!(c.max_concurrent_streams, 32);
    /// ```
    #[cfg(feature = "http2")]
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = n.max(1);
        self
    }
}

/// Live counters. Those of every request are per-thread [`Counter`]s, and a request in flight
/// is one that started and has not ended yet: two additions per request, on a cache line no
/// other thread writes as long as at most 16 threads serve requests (more share shards).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) started_requests: Counter,
    pub(crate) cancelled_requests: Counter,
    pub(crate) completed_requests: Counter,
    pub(crate) active_jobs: AtomicUsize,
    pub(crate) active_streams: AtomicUsize,
    pub(crate) connections: AtomicUsize,
}

/// What every request, job and stream of one server shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) token: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) stats: Counters,
    pub(crate) config: ServerConfig,
    pub(crate) requests: Registry,
    pub(crate) streams: Registry,
    pub(crate) jobs: Registry,
    /// The timer of every connection's deadlines.
    pub(crate) timer: CoarseTimer,
    /// The addresses `serve` listens on: allowed `Host` values.
    pub(crate) bound: Bound,
}

impl State {
    /// Runs `task` on the configured executor, or smol's global one.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        match &self.config.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }
}

/// The counters of `GET /stats`, serialised with exactly these field names (clients read them).
///
/// ```
/// use cancelable_http::{Server, ServerConfig};
/// let stats = Server::new(ServerConfig::default()).stats();
/// let json = serde_json::to_value(stats).unwrap();
/// assert_eq!(json["active_requests"], 0);
/// assert_eq!(json.as_object().unwrap().len(), 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ServerStats {
    /// Requests whose handler is running.
    pub active_requests: usize,
    /// Requests cancelled before their handler answered (client gone, timeout, shutdown).
    pub cancelled_requests: u64,
    /// Jobs pending or running.
    pub active_jobs: usize,
    /// SSE and WebSocket streams open.
    pub active_streams: usize,
    /// Requests answered normally (including refusals such as `413`).
    pub completed_requests: u64,
}

/// An operation as the dashboard lists it (`GET /operations`).
///
/// ```
/// use cancelable_http::{Server, ServerConfig};
/// assert!(Server::new(ServerConfig::default()).operations(50).is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OperationInfo {
    /// The operation's id (a job's is its 128-bit random id).
    pub id: String,
    /// Its name (`GET /process`, `job`, ...).
    pub name: String,
    /// `job`, `request` or `stream`.
    pub kind: String,
    /// `pending`, `running`, `completed`, `cancelled` or `failed`.
    pub status: &'static str,
    /// The last progress reported.
    pub progress: ProgressInfo,
    /// Why it was cancelled (`disconnected`, `timeout`, `manual`, `shutdown`, ...).
    pub reason: Option<&'static str>,
    /// How long it ran, or has been running so far.
    pub duration_ms: u64,
}

/// `{"done": n, "total": n | null}`.
///
/// ```
/// let p = cancelable_http::ProgressInfo { done: 1, total: Some(4) };
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"done":1,"total":4}"#);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgressInfo {
    /// Units done.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
}

impl ProgressInfo {
    pub(crate) fn of(snapshot: &OperationSnapshot) -> Self {
        snapshot
            .progress
            .as_ref()
            .map(|p| ProgressInfo {
                done: p.done,
                total: p.total,
            })
            .unwrap_or_default()
    }
}

impl OperationInfo {
    fn of(snapshot: &OperationSnapshot) -> Self {
        OperationInfo {
            id: snapshot.id.as_str().to_owned(),
            name: snapshot.name.clone(),
            kind: snapshot
                .metadata
                .get("kind")
                .cloned()
                .unwrap_or_else(|| "request".to_owned()),
            status: snapshot.status.as_str(),
            progress: ProgressInfo::of(snapshot),
            reason: snapshot.reason.as_ref().map(|r| r.kind().as_str()),
            duration_ms: snapshot
                .duration
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// A server: its token (parent of every request, job and stream token), its task tracker, its
/// counters and registries, and the runner [`serve`](Server::serve). `Clone` shares it.
///
/// ```no_run
/// use std::convert::Infallible;
/// use cancelable::CancellationToken;
/// use cancelable_http::{Server, ServerConfig};
///
/// smol::block_on(async {
///     let server = Server::new(ServerConfig::default());
///     let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
///     let stop = CancellationToken::new();
///     cancelable_smol::cancel_on_signals(&stop, [])?; // SIGINT, SIGTERM
///     let service = hyper::service::service_fn(|_req| async {
///         Ok::<_, Infallible>(hyper::Response::new(cancelable_http::full("hi")))
///     });
///     let report = server.serve(listener, service, &stop).await;
///     println!("{report}");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    state: Arc<State>,
}

impl Server {
    /// A server with `config`, not serving yet (see [`serve`](Server::serve); the
    /// [`layer`](Server::layer) works without it, with any executor).
    ///
    /// ```
    /// let server = cancelable_http::Server::new(cancelable_http::ServerConfig::default());
    /// assert!(!server.token().is_cancelled());
    /// ```
    pub fn new(config: ServerConfig) -> Self {
        let state = State {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            stats: Counters::default(),
            requests: Registry::with_history(config.request_history),
            streams: Registry::with_history(config.request_history),
            jobs: Registry::with_history(config.job_history),
            timer: connection::timer_for(&config),
            config,
            bound: Bound::default(),
        };
        Self {
            state: Arc::new(state),
        }
    }

    pub(crate) fn from_state(state: Arc<State>) -> Self {
        Self { state }
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The server token: every request, job and stream token descends from it. Cancelling it
    /// (with `Shutdown`, say) cancels them all; [`serve`](Server::serve) then stops too.
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// let child = server.token().child_token();
    /// server.token().cancel_with(cancelable::CancelKind::Shutdown);
    /// assert!(child.is_cancelled());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.state.token
    }

    /// The tracker that shutdown waits for: connections, jobs and streams are tracked in it.
    /// Track your own background work here to have shutdown wait for it too.
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// let _work = server.tracker().token();
    /// assert_eq!(server.tracker().len(), 1);
    /// ```
    pub fn tracker(&self) -> &TaskTracker {
        &self.state.tracker
    }

    /// The configuration.
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// assert_eq!(server.config().max_connections, 1024);
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// Wraps `service` in the request layer (see [`RequestService`]): use this to run hyper
    /// yourself, on any executor; [`serve`](Server::serve) does it for you.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// let server = cancelable_http::Server::new(Default::default());
    /// let service = server.layer(hyper::service::service_fn(|_req: hyper::Request<()>| async {
    ///     Ok::<_, Infallible>(hyper::Response::new(String::new()))
    /// }));
    /// # let _ = service;
    /// ```
    pub fn layer<S>(&self, service: S) -> RequestService<S> {
        RequestService::new(service, self.state.clone())
    }

    /// The layer as tower middleware (feature `tower`): wraps a `tower_service::Service` into
    /// a [`RequestService`] with the meaning of [`layer`](Server::layer). See the
    /// [`tower`](crate::tower) module docs for serving a tower stack (an axum `Router`).
    ///
    /// ```
    /// use cancelable_http::{Server, ServerConfig};
    /// let server = Server::new(ServerConfig::default());
    /// let stack = tower::ServiceBuilder::new()
    ///     .layer(server.cancel_layer())
    ///     .service_fn(|_req: hyper::Request<String>| async {
    ///         Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
    ///     });
    /// # let _ = stack;
    /// ```
    #[cfg(feature = "tower")]
    pub fn cancel_layer(&self) -> crate::CancelLayer {
        crate::CancelLayer::new(self.state.clone())
    }

    /// A [`RequestContext`] not tied to a connection: a fresh child of the server token. For
    /// calling handlers directly (tests) or running request-like work outside HTTP.
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// let cx = server.context();
    /// server.token().cancel();
    /// assert!(cx.token().is_cancelled());
    /// ```
    pub fn context(&self) -> RequestContext {
        RequestContext::new(self.state.token.child_token(), self.state.clone())
    }

    /// The counters of `GET /stats`.
    ///
    /// ```
    /// let stats = cancelable_http::Server::new(Default::default()).stats();
    /// assert_eq!((stats.active_requests, stats.active_streams, stats.active_jobs), (0, 0, 0));
    /// ```
    pub fn stats(&self) -> ServerStats {
        let c = &self.state.stats;
        // Ended before started: a request that ends meanwhile counts as in flight rather than
        // as never started.
        let cancelled = c.cancelled_requests.get();
        let completed = c.completed_requests.get();
        let started = c.started_requests.get();
        let active = started.saturating_sub(cancelled + completed);
        ServerStats {
            active_requests: usize::try_from(active).unwrap_or(usize::MAX),
            cancelled_requests: cancelled,
            active_jobs: c.active_jobs.load(Relaxed),
            active_streams: c.active_streams.load(Relaxed),
            completed_requests: completed,
        }
    }

    /// [`stats`](Server::stats) as seen from inside request `req`: `req` itself is not counted
    /// in `active_requests` (a `/stats` handler reports the *other* requests in flight).
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// let req = hyper::Request::new(());
    /// assert_eq!(server.stats_for(&req).active_requests, 0);
    /// ```
    pub fn stats_for<B>(&self, req: &Request<B>) -> ServerStats {
        let mut stats = self.stats();
        if RequestContext::of(req).is_some_and(|cx| Arc::ptr_eq(cx.state(), &self.state)) {
            stats.active_requests = stats.active_requests.saturating_sub(1);
        }
        stats
    }

    /// Open connections right now.
    ///
    /// ```
    /// assert_eq!(cancelable_http::Server::new(Default::default()).open_connections(), 0);
    /// ```
    pub fn open_connections(&self) -> usize {
        self.state.stats.connections.load(Relaxed)
    }

    /// The operations of the dashboard: live tracked requests, streams and jobs (newest
    /// first), then at most `finished` of the most recently finished ones (newest first).
    ///
    /// ```
    /// let server = cancelable_http::Server::new(Default::default());
    /// assert_eq!(server.operations(50).len(), 0);
    /// ```
    pub fn operations(&self, finished: usize) -> Vec<OperationInfo> {
        let registries = [&self.state.requests, &self.state.streams, &self.state.jobs];
        let mut live = Vec::new();
        let mut done = Vec::new();
        for registry in registries {
            for snap in registry.list(&OperationFilter::new()) {
                if snap.status.is_active() {
                    live.push(snap);
                } else {
                    done.push(snap);
                }
            }
        }
        live.sort_by_key(|s| std::cmp::Reverse(s.started_at));
        done.sort_by_key(|s| std::cmp::Reverse(s.ended_at));
        done.truncate(finished);
        live.iter().chain(&done).map(OperationInfo::of).collect()
    }

    /// Serves HTTP/1.1 and HTTP/2 (h2c) on `listener` with `service` (wrapped in the
    /// [layer](Server::layer)), one smol task per connection (and per HTTP/2 stream), until
    /// `shutdown` (or the server token) is cancelled; then shuts down gracefully as described
    /// in the [module docs](crate::server) and returns the report. Accept errors (e.g. out of
    /// file descriptors) are retried after 10 ms.
    ///
    /// A tower service (an axum `Router`, a `tower::ServiceBuilder` stack) is served through
    /// hyper-util's `TowerToHyperService`, with the same limits, shutdown and disconnect
    /// detection: see the `tower` module docs (feature `tower`).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use cancelable::CancellationToken;
    /// use cancelable_http::Server;
    ///
    /// smol::block_on(async {
    ///     let server = Server::new(Default::default());
    ///     let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let stop = CancellationToken::new();
    ///     stop.cancel(); // stop at once
    ///     let service = hyper::service::service_fn(|_req| async {
    ///         Ok::<_, Infallible>(hyper::Response::new(cancelable_http::full("")))
    ///     });
    ///     let report = server.serve(listener, service, &stop).await;
    ///     assert!(report.stopped_in_time());
    /// });
    /// ```
    pub async fn serve<S, B>(
        &self,
        listener: TcpListener,
        service: S,
        shutdown: &CancellationToken,
    ) -> ShutdownReport
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let state = &self.state;
        if let Ok(addr) = listener.local_addr() {
            state.bound.add(addr.ip());
        }
        let permits = Arc::new(smol::lock::Semaphore::new(state.config.max_connections));
        let stop = async {
            futures_lite::future::or(shutdown.cancelled(), state.token.cancelled()).await;
            None
        };
        let mut stop = pin!(stop);
        loop {
            let accepted = async {
                let permit = permits.acquire_arc().await;
                Some((permit, listener.accept().await))
            }
            .or(stop.as_mut())
            .await;
            let Some((permit, accepted)) = accepted else {
                break;
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(_) => {
                    smol::Timer::after(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let service = self.layer(service.clone());
            let conn_state = state.clone();
            let task = state.tracker.track_future(async move {
                let started = Instant::now();
                conn_state.stats.connections.fetch_add(1, Relaxed);
                let _open = Open(&conn_state.stats.connections);
                let _permit = permit;
                let socket: Arc<smol::Async<std::net::TcpStream>> = stream.into();
                let _ = socket.get_ref().set_nodelay(true);
                #[cfg(feature = "http2")]
                let read = if conn_state.config.http2 {
                    match http2::sniff(&socket, &conn_state, started).await {
                        Sniffed::Http1(read) => read,
                        Sniffed::Http2(read) => {
                            return http2::serve(socket, read, started, service, &conn_state).await;
                        }
                        Sniffed::Gone => return,
                    }
                } else {
                    Vec::new()
                };
                #[cfg(not(feature = "http2"))]
                let read = Vec::new();
                connection::serve(socket, read, started, service, &conn_state).await;
            });
            state.spawn(task);
        }
        // New clients are refused from now on, not left waiting in the backlog.
        drop(listener);
        let why = match shutdown.reason() {
            Some(reason) => format!("server stopping ({reason})"),
            None => "server stopping".to_owned(),
        };
        cancelable_smol::shutdown(
            &state.token,
            CancelReason::shutdown().with_message(why),
            &state.tracker,
            state.config.grace,
        )
        .await
    }
}

/// Binds a listener: `Server::serve`'s usual first step, with the address in the error.
///
/// ```
/// smol::block_on(async {
///     let listener = cancelable_http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
///     assert_ne!(listener.local_addr().unwrap().port(), 0);
/// });
/// ```
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    // The standard library listens with a backlog of 128. A burst of clients larger than that,
    // arriving while the accept loop is busy for a moment, overflows it, and each client whose
    // SYN is dropped waits a full second for its retransmission. Listening again only raises
    // the backlog (the kernel caps it at `net.core.somaxconn`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::net::listen(&listener, BACKLOG)?;
    Ok(listener)
}

/// The listen backlog [`bind`] asks for where the platform lets it be raised.
#[cfg(any(target_os = "linux", target_os = "android"))]
const BACKLOG: i32 = 4096;

/// Counts a connection as open while it lives.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
