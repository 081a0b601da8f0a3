//! HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the same port: the server reads the
//! first bytes of a connection, and the 24-byte HTTP/2 connection preface (RFC 9113,
//! section 3.4) sends it to hyper's HTTP/2 server, anything else to HTTP/1.1 (the bytes read
//! are handed to hyper either way).
//!
//! Each stream is a request through the same layer as HTTP/1.1, and hyper runs each one as a
//! task of its own on the server's executor ([`StreamTasks`]). Cancelation:
//!
//! * a RST_STREAM from the client: hyper drops that stream's service future, whose drop guard
//!   cancels the request token with `Disconnected`; the other streams go on;
//! * the connection closing (end of stream or error on read), or a GOAWAY with an error code
//!   ([`frames`]): every request of the connection not done yet (its response not produced,
//!   or not sent in full) is cancelled with `Disconnected` on the spot, before hyper hears of
//!   it, and the stream tasks end with the connection. A GOAWAY without error is a graceful
//!   goodbye: the client opens no new streams and its requests in flight are answered
//!   (RFC 9113, section 6.8);
//! * a bound passing (see [`server`](crate::server)): every request of the connection not done
//!   yet is cancelled with `Timeout`, and the connection closed.

mod frames;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use cancelable::{CancelReason, CancellationToken};
use futures_lite::FutureExt as _;
use futures_lite::io::{AsyncRead, AsyncWrite};
use http_body_util::{Either, Full};
use hyper::body::{Body as HttpBody, Incoming};
use hyper::server::conn::http2;
use hyper::service::Service;
use hyper::{Request, Response};
use pin_project_lite::pin_project;

use crate::ServerConfig;
use crate::connection::{Finish, Socket, StopCheck, arm};
use crate::io::CoarseSleep;
use crate::request::{RequestFuture, RequestService};
use crate::response::BoxError;
use crate::server::State;
use frames::Watch;

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The most bytes read from the socket at once.
const CHUNK: usize = 8 * 1024;
/// The flow-control windows the server grants (hyper's defaults, set here because the frame
/// watch counts the client's credit from them).
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The largest header list accepted (hyper's default, set here because the docs promise it):
/// past it h2 answers `431`.
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Response bytes h2 buffers per stream beyond what the client's flow-control credit lets it
/// send (hyper's default is about 400 KiB): a client that grants no credit holds at most this
/// much per open stream; a handler writing more waits.
const SEND_BUF: usize = 64 * 1024;

/// What the first bytes of a connection are.
pub(crate) enum Sniffed {
    Http1(Vec<u8>),
    Http2(Vec<u8>),
    /// The client left, sent nothing in time, or shutdown came first.
    Gone,
}

/// Reads the first bytes of a connection until they tell the HTTP/2 preface from anything
/// else; bounded by the header read timeout (from `started`) and by shutdown.
pub(crate) async fn sniff(socket: &Socket, state: &State, started: Instant) -> Sniffed {
    let read = async {
        let mut read = Vec::new();
        loop {
            let have = read.len();
            read.resize(have + CHUNK, 0);
            let n = futures_lite::AsyncReadExt::read(&mut &**socket, &mut read[have..])
                .await
                .unwrap_or(0);
            read.truncate(have + n);
            if n == 0 {
                return Sniffed::Gone;
            }
            let common = read.len().min(PREFACE.len());
            if read[..common] != PREFACE[..common] {
                return Sniffed::Http1(read);
            }
            if common == PREFACE.len() {
                return Sniffed::Http2(read);
            }
        }
    };
    let late = async {
        match started.checked_add(state.config.header_read_timeout) {
            Some(deadline) => state.timer.sleep_at(deadline).await,
            None => std::future::pending().await,
        }
        Sniffed::Gone
    };
    let stopping = async {
        state.token.cancelled().await;
        Sniffed::Gone
    };
    read.or(late).or(stopping).await
}

/// Serves one HTTP/2 connection until it closes, a bound or the client's GOAWAY closes it, or
/// shutdown does (GOAWAY, then the requests in flight are answered). `read` holds the bytes
/// read already, from the preface on.
pub(crate) async fn serve<S, B>(
    socket: Socket,
    read: Vec<u8>,
    started: Instant,
    service: RequestService<S>,
    state: &Arc<State>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let config = &state.config;
    // Streams followed: those hyper lets open, and as many refused ones in passing.
    let max_streams = usize::try_from(config.max_concurrent_streams)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .saturating_add(16);
    let link = Link(Arc::new(Mutex::new(Shared {
        watch: Watch::new(STREAM_WINDOW, max_streams),
        pending: HashMap::new(),
        next: 0,
        busy: 0,
        idle_since: started,
        gone: false,
        write_stalled: None,
    })));
    let io = H2Io {
        socket,
        read,
        at: 0,
        scratch: Vec::new(),
        link: link.clone(),
        stalled: false,
    };
    let tasks = StreamTasks {
        closed: CancellationToken::new(),
        state: state.clone(),
    };
    let closed = tasks.closed.clone();
    let service = H2Service {
        inner: service,
        link: link.clone(),
    };
    let mut builder = http2::Builder::new(tasks);
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buf_size(SEND_BUF);
    let conn = builder.serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut waiting = pin!(state.token.cancelled());
    let mut stopping = StopCheck::default();
    let mut graceful = false;
    let mut alarm: Option<CoarseSleep> = None;
    std::future::poll_fn(|cx| {
        if !graceful && stopping.stopped(&state.token, waiting.as_mut(), cx) {
            graceful = true;
            conn.as_mut().graceful_shutdown(); // GOAWAY: no new streams
        }
        loop {
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let now = Instant::now();
            let deadline = match link.check(now, config, graceful) {
                Check::Close(reason) => {
                    if let Some(reason) = reason {
                        link.cancel_pending(reason);
                    }
                    if !graceful {
                        // A GOAWAY before the close, when the socket takes it.
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().poll(cx);
                    }
                    return Poll::Ready(());
                }
                Check::Wait(deadline) => deadline,
            };
            if arm(&mut alarm, &state.timer, now, deadline, cx) {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
    // Stream tasks still running end with the connection (their requests are cancelled with
    // `Disconnected` by the layer's drop guard, if nothing cancelled them before).
    closed.cancel();
}

/// What the connection task does after polling hyper.
enum Check {
    /// Keep serving; wake by the deadline at the latest.
    Wait(Option<Instant>),
    /// End the connection, cancelling the requests waiting for their response with the reason
    /// (if any).
    Close(Option<CancelReason>),
}

/// The state of one connection shared by the transport ([`H2Io`]), the service wrapper
/// ([`H2Service`]) and its futures and bodies (on the stream tasks), and the connection task.
#[derive(Clone)]
struct Link(Arc<Mutex<Shared>>);

struct Shared {
    watch: Watch,
    /// The tokens of the requests not done yet (their response produced and sent, or their
    /// stream reset).
    pending: HashMap<u64, CancellationToken>,
    /// Requests begun so far (the idle bound applies once one came, before it the header read
    /// bound).
    next: u64,
    /// Requests whose response is not done yet (produced and sent).
    busy: usize,
    /// Since when no request has been busy.
    idle_since: Instant,
    /// A read met the end of the stream or an error: the client is gone.
    gone: bool,
    /// Since when the transport's writes have made no progress.
    write_stalled: Option<Instant>,
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts: followed until it is done; cancelled at once if the client is gone
    /// already.
    fn begin(&self, token: &CancellationToken) -> InFlight {
        let mut shared = self.lock();
        shared.busy += 1;
        let key = shared.next;
        shared.next += 1;
        let gone = shared.gone || shared.watch.client().failed;
        if !gone {
            shared.pending.insert(key, token.clone());
        }
        drop(shared);
        if gone {
            token.cancel_with(CancelReason::disconnected());
        }
        InFlight {
            link: self.clone(),
            key,
        }
    }

    /// Cancels every request not done yet with `reason`.
    fn cancel_pending(&self, reason: CancelReason) {
        let tokens: Vec<_> = self.lock().pending.drain().map(|(_, t)| t).collect();
        for token in tokens {
            token.cancel_with(reason.clone());
        }
    }

    /// Bytes from the client: a GOAWAY with an error cancels the requests waiting.
    fn received(&self, bytes: &[u8]) {
        let failed = {
            let mut shared = self.lock();
            let before = shared.watch.client().failed;
            shared.watch.received(bytes, Instant::now());
            !before && shared.watch.client().failed
        };
        if failed {
            self.cancel_pending(CancelReason::disconnected());
        }
    }

    /// The end of the stream or a read error: the client is gone. Cancels before hyper hears
    /// of it, so a body cut short counts as a disconnect.
    fn gone(&self) {
        self.lock().gone = true;
        self.cancel_pending(CancelReason::disconnected());
    }

    /// After each poll of hyper: close, or the next deadline.
    fn check(&self, now: Instant, c: &ServerConfig, stopping: bool) -> Check {
        let shared = self.lock();
        let client = shared.watch.client();
        if shared.gone || client.failed {
            return Check::Close(Some(CancelReason::disconnected()));
        }
        let quiet = shared.busy == 0 && shared.write_stalled.is_none();
        if stopping && quiet {
            return Check::Close(None);
        }
        let idle = (shared.busy == 0).then(|| {
            let bound = if shared.next > 0 {
                c.idle_timeout
            } else {
                c.header_read_timeout
            };
            (shared.idle_since.checked_add(bound), None)
        });
        let head = client.header_block.map(|since| {
            let why = "the client did not finish a request head in time";
            (since.checked_add(c.header_read_timeout), Some(why))
        });
        let send = shared.write_stalled.map(|since| {
            let why = "the client stopped reading the response";
            (since.checked_add(c.send_timeout), Some(why))
        });
        let credit = client.starved_since().map(|since| {
            let why = "the client granted no flow-control credit for the response";
            (since.checked_add(c.send_timeout), Some(why))
        });
        let body = (shared.busy > 0)
            .then(|| client.body_deadline(c.body_read_timeout, c.min_body_rate))
            .flatten()
            .map(|at| (Some(at), Some("the request body did not arrive in time")));
        let next = [idle, head, send, credit, body]
            .into_iter()
            .flatten()
            .filter_map(|(at, why)| Some((at?, why)))
            .min_by_key(|(at, _)| *at);
        match next {
            Some((at, why)) if at <= now => {
                Check::Close(why.map(|why| CancelReason::timeout().with_message(why)))
            }
            next => Check::Wait(next.map(|(at, _)| at)),
        }
    }
}

/// A request not done yet: unfollowed when dropped (its response sent, or its stream reset).
struct InFlight {
    link: Link,
    key: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut shared = self.link.lock();
        shared.pending.remove(&self.key);
        shared.busy -= 1;
        if shared.busy == 0 {
            shared.idle_since = Instant::now();
        }
    }
}

/// hyper's transport: the bytes read while sniffing first, then the socket; every byte each
/// way goes past the frame watch.
struct H2Io {
    socket: Socket,
    read: Vec<u8>,
    /// How much of `read` hyper has had.
    at: usize,
    /// Allocated on the first socket read: hyper's cursor can only be filled safely by copying.
    scratch: Vec<u8>,
    link: Link,
    /// The last write came back `Pending` (reported as `write_stalled`).
    stalled: bool,
}

impl hyper::rt::Read for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.at < this.read.len() {
            let n = (this.read.len() - this.at).min(buf.remaining());
            let bytes = &this.read[this.at..this.at + n];
            this.link.received(bytes);
            buf.put_slice(bytes);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if this.scratch.is_empty() {
            this.scratch = vec![0; CHUNK];
        }
        let want = buf.remaining().min(this.scratch.len());
        match ready!(Pin::new(&mut &*this.socket).poll_read(cx, &mut this.scratch[..want])) {
            Ok(0) => {
                this.link.gone();
                Poll::Ready(Ok(()))
            }
            Ok(n) => {
                let bytes = &this.scratch[..n];
                this.link.received(bytes);
                buf.put_slice(bytes);
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                this.link.gone();
                Poll::Ready(Err(e))
            }
        }
    }
}

impl hyper::rt::Write for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut &*this.socket).poll_write(cx, buf);
        let stall_changed = poll.is_pending() != this.stalled;
        if stall_changed || matches!(poll, Poll::Ready(Ok(_))) {
            let mut shared = this.link.lock();
            if stall_changed {
                this.stalled = poll.is_pending();
                shared.write_stalled = this.stalled.then(Instant::now);
            }
            if let Poll::Ready(Ok(n)) = poll {
                shared.watch.sent(&buf[..n.min(buf.len())], Instant::now());
            }
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_close(cx)
    }
}

/// The service hyper runs: the request layer, with each request followed by the [`Link`].
struct H2Service<S> {
    inner: RequestService<S>,
    link: Link,
}

impl<S, B> Service<Request<Incoming>> for H2Service<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<Finish<Either<B, Full<Bytes>>, InFlight>>;
    type Error = S::Error;
    type Future = H2Future<S::Future, B>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let inner = self.inner.call(req);
        let in_flight = self.link.begin(inner.token());
        H2Future {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// A [`RequestFuture`] followed by the [`Link`] until its response body is done.
    struct H2Future<F, B> {
        #[pin]
        inner: RequestFuture<F, B>,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for H2Future<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Finish<Either<B, Full<Bytes>>, InFlight>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(in_flight) = this.in_flight.take() else {
            return Poll::Pending; // polled after completion
        };
        Poll::Ready(result.map(|response| {
            response.map(|body| Finish {
                body,
                _done: in_flight,
            })
        }))
    }
}

/// hyper's executor for the stream tasks of one connection: each runs on the server's
/// executor, tracked by the server (shutdown waits for it), until it is done or the connection
/// is gone.
#[derive(Clone)]
struct StreamTasks {
    /// Cancelled when the connection task ends.
    closed: CancellationToken,
    state: Arc<State>,
}

impl<F> hyper::rt::Executor<F> for StreamTasks
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    fn execute(&self, stream: F) {
        let closed = self.closed.clone();
        let task = self.state.tracker.track_future(async move {
            closed.run_until_cancelled(stream).await;
        });
        self.state.spawn(task);
    }
}
