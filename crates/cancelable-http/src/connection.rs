//! One connection of the server runner: the peer watch and the bound on every phase, as the
//! [`server`](crate::server) module docs describe them.
//!
//! hyper reads a connection only when it needs bytes: not while it holds unparsed bytes (a
//! stray CRLF, a pipelined request), and not while a request body waits for its handler. So
//! every read of the socket goes through one [`Peer`]: while a request is being answered, the
//! connection task reads ahead of hyper into a bounded buffer (hyper gets those bytes later,
//! in order), and whichever read meets the end of the stream or an error cancels the request
//! token on the spot. hyper's own end-of-stream check is off (`half_close`): it stops at
//! buffered bytes, and here it would race the watch. When the buffer is full, reading stops
//! (backpressure) and [`hung_up`] looks for the FIN behind the unread bytes instead.
//!
//! The connection task checks the deadline of the current phase after each poll of hyper, on
//! the server's shared [`CoarseTimer`]: one sleep per connection, re-armed only when a phase
//! needs an earlier deadline than the armed one.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cancelable::{CancelReason, CancellationToken, WaitForCancellationFuture};
use futures_lite::Stream as _;
use futures_lite::io::AsyncWrite;
use http_body_util::{Either, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use smol::Async;

use crate::ServerConfig;
use crate::io::{CoarseSleep, CoarseTimer};
use crate::request::{RequestFuture, RequestService, small_response};
use crate::response::{BoxError, HttpError};
use crate::server::State;

/// The most bytes read ahead of hyper while a request is answered.
const READ_AHEAD: usize = 16 * 1024;
/// The most bytes read from the socket at once for hyper (hyper's own buffer starts at 8 KiB).
const CHUNK: usize = 8 * 1024;

/// How often a connection whose read-ahead buffer is full is checked for a hang-up.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Whether [`hung_up`] can see a FIN behind unread bytes on this platform.
const PROBES: bool = cfg!(any(target_os = "linux", target_os = "android"));

pub(crate) type Socket = Arc<Async<std::net::TcpStream>>;

/// Whether the peer closed (or half-closed) `socket` even though bytes it sent before are
/// still unread: `POLLRDHUP`, which reading cannot tell until those bytes are consumed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hung_up(socket: &std::net::TcpStream) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(socket, PollFlags::RDHUP)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(1..))
        && fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn hung_up(_socket: &std::net::TcpStream) -> bool {
    false
}

/// Serves one accepted HTTP/1 connection until it closes, is closed by a bound, or shutdown
/// closes it. `started` is when it was accepted; `read` holds the bytes read from it already
/// (to tell HTTP/2 from HTTP/1), which hyper gets first.
pub(crate) async fn serve<S, B>(
    socket: Socket,
    read: Vec<u8>,
    started: Instant,
    service: RequestService<S>,
    state: &State,
) where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: HttpBody<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    let peer = Peer::new(socket.clone(), started, read);
    let io = PeerIo {
        socket,
        peer: peer.clone(),
        stalled: false,
    };
    let service = ConnService {
        inner: service,
        peer: peer.clone(),
    };
    let mut builder = http1::Builder::new();
    // hyper's own end-of-stream check stops at buffered bytes; the peer watch does it instead.
    builder.half_close(true).keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = pin!(conn);
    let mut waiting = pin!(state.token.cancelled());
    let mut stopping = StopCheck::default();
    let mut graceful = false;
    let mut alarm: Option<CoarseSleep> = None;
    let mut prober: Option<smol::Timer> = None;
    std::future::poll_fn(|cx| {
        if !graceful && stopping.stopped(&state.token, waiting.as_mut(), cx) {
            graceful = true;
            if peer.lock().quiet() {
                return Poll::Ready(()); // nothing in flight: close now, not after the grace
            }
            conn.as_mut().graceful_shutdown();
        }
        loop {
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let now = Instant::now();
            match peer.after_poll(cx, now, &state.config, graceful) {
                Verdict::Close(cancel) => {
                    if let Some((token, reason)) = cancel {
                        token.cancel_with(reason);
                    }
                    return Poll::Ready(());
                }
                Verdict::BodyTimeout(token) => {
                    // The request future answers 408 now (see `ConnFuture`).
                    token.cancel_with(
                        CancelReason::timeout()
                            .with_message("the request body did not arrive in time"),
                    );
                }
                Verdict::Wait { deadline, probe } => {
                    if !probe {
                        prober = None;
                    } else if prober.is_none() {
                        prober = Some(smol::Timer::interval(PROBE_EVERY));
                    }
                    if let Some(prober) = &mut prober {
                        if Pin::new(prober).poll_next(cx).is_ready() {
                            continue;
                        }
                    }
                    if arm(&mut alarm, &state.timer, now, deadline, cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await;
}

/// Whether the server began to stop, asked on every poll of a connection task. The token's
/// waiter is polled (which takes the token's lock, shared by every connection) only when the
/// task's waker changed; while it stays the same, the waiter would wake that waker, and a flag
/// read answers.
#[derive(Default)]
pub(crate) struct StopCheck {
    registered: Option<Waker>,
}

impl StopCheck {
    /// `waiting` is `token.cancelled()`, pinned by the caller for the task's life.
    pub(crate) fn stopped(
        &mut self,
        token: &CancellationToken,
        waiting: Pin<&mut WaitForCancellationFuture<'_>>,
        cx: &mut Context<'_>,
    ) -> bool {
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return token.is_cancelled();
        }
        self.registered = Some(cx.waker().clone());
        waiting.poll(cx).is_ready()
    }
}

/// Keeps `alarm` set for `deadline` (none: no alarm needed): a fired alarm is dropped, a later
/// one replaced. `true` if `deadline` has passed already, so the caller looks again at once.
pub(crate) fn arm(
    alarm: &mut Option<CoarseSleep>,
    timer: &CoarseTimer,
    now: Instant,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> bool {
    if alarm.as_ref().is_some_and(|a| a.deadline() <= now) {
        *alarm = None; // fired: deregistered, re-armed below if still needed
    }
    let Some(deadline) = deadline else {
        return false;
    };
    if alarm.as_ref().is_none_or(|a| a.deadline() > deadline) {
        let mut sleep = timer.sleep_at(deadline);
        if Pin::new(&mut sleep).poll(cx).is_ready() {
            return true;
        }
        *alarm = Some(sleep);
    }
    false
}

/// What the connection task does after polling hyper.
enum Verdict {
    /// Keep serving; wake by `deadline` at the latest, and in [`PROBE_EVERY`] if `probe`.
    Wait {
        deadline: Option<Instant>,
        probe: bool,
    },
    /// End the connection, cancelling the request in flight (if any) first.
    Close(Option<(CancellationToken, CancelReason)>),
    /// The body bound passed: cancel the request, whose future then answers `408`.
    BodyTimeout(CancellationToken),
}

/// The state of one connection shared by hyper's transport ([`PeerIo`]), the service wrapper
/// ([`ConnService`]), the response body wrapper ([`Finish`]) and the connection task. All of
/// them run on the connection's task (after a WebSocket upgrade only the transport is left,
/// on the stream's task), so the lock is never contended.
#[derive(Clone)]
struct Peer(Arc<Mutex<Link>>);

struct Link {
    socket: Socket,
    /// Bytes read from the socket and not given to hyper yet: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A read met the end of the stream or an error: the client is gone.
    gone: bool,
    phase: Phase,
    /// hyper got `Pending` from a read since the connection task last looked: it waits for
    /// bytes.
    read_pending: bool,
    /// Since when hyper's writes have made no progress.
    write_stalled: Option<Instant>,
    /// The request was cancelled by the body bound: its answer is `408`.
    body_timed_out: bool,
    /// The read-ahead buffer is full while a request is answered: the socket is not read,
    /// and a FIN behind the unread bytes is looked for by [`hung_up`] instead.
    backlogged: bool,
    /// The last read returned less than it asked for: the socket was empty then, and the next
    /// read waits for a readiness event instead of making a system call that finds nothing.
    drained: bool,
}

enum Phase {
    /// A request head is due (the first one, or bytes of a later one have come).
    Head { since: Option<Instant> },
    /// Between a response and the first byte of the next request.
    Idle { since: Option<Instant> },
    /// A request is being answered: from the service call until its response body is done.
    Exchange(Exchange),
}

struct Exchange {
    /// The request's token, until its response is produced.
    token: Option<CancellationToken>,
    /// Since when hyper has waited for body bytes that have not come.
    waiting: Option<Instant>,
    /// When the handler first asked for body bytes.
    body_since: Option<Instant>,
    /// Body bytes given to hyper.
    body_bytes: u64,
}

impl Peer {
    fn new(socket: Socket, now: Instant, read: Vec<u8>) -> Self {
        let end = read.len();
        Self(Arc::new(Mutex::new(Link {
            socket,
            buf: read,
            start: 0,
            end,
            gone: false,
            phase: Phase::Head { since: Some(now) },
            read_pending: false,
            write_stalled: None,
            body_timed_out: false,
            backlogged: false,
            drained: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts; returns its token if the client is gone already (cancel it).
    fn begin(&self, token: &CancellationToken) -> Option<CancellationToken> {
        let mut link = self.lock();
        link.phase = Phase::Exchange(Exchange {
            token: Some(token.clone()),
            waiting: None,
            body_since: None,
            body_bytes: 0,
        });
        link.body_timed_out = false;
        link.gone.then(|| token.clone())
    }

    /// The request's response is produced: a disconnect no longer cancels it. `true` if the
    /// body bound cancelled it.
    fn responded(&self) -> bool {
        let mut link = self.lock();
        if let Phase::Exchange(x) = &mut link.phase {
            x.token = None;
        }
        std::mem::take(&mut link.body_timed_out)
    }

    /// The response body is done (sent, or dropped with the connection).
    fn finish(&self) {
        let mut link = self.lock();
        if matches!(link.phase, Phase::Exchange(_)) {
            // Stamped by the connection task after this poll of hyper (`after_poll`).
            link.phase = if link.start < link.end {
                Phase::Head { since: None }
            } else {
                Phase::Idle { since: None }
            };
        }
    }

    /// After each poll of hyper: watch the peer while a request is answered, and check the
    /// bound of the current phase.
    fn after_poll(
        &self,
        cx: &mut Context<'_>,
        now: Instant,
        config: &ServerConfig,
        stopping: bool,
    ) -> Verdict {
        let mut link = self.lock();
        if let Phase::Head { since } | Phase::Idle { since } = &mut link.phase {
            since.get_or_insert(now);
        }
        let hyper_waits = std::mem::take(&mut link.read_pending);
        if let Phase::Exchange(x) = &mut link.phase {
            if !hyper_waits {
                x.waiting = None;
                // (When hyper waits, its own pending read watches the socket.)
                if !link.gone {
                    link.read_ahead(cx);
                }
                if link.backlogged && hung_up(link.socket.get_ref()) {
                    link.gone = true;
                }
            } else {
                link.backlogged = false;
            }
            if link.gone {
                let cancel = link.token().map(|t| (t, CancelReason::disconnected()));
                return Verdict::Close(cancel);
            }
        }
        if stopping && link.quiet() {
            return Verdict::Close(None);
        }
        match link.deadline(config) {
            Some((deadline, expiry)) if deadline <= now => match expiry {
                Expiry::Close => Verdict::Close(link.token().map(|t| {
                    let why = "the client stopped reading the response";
                    (t, CancelReason::timeout().with_message(why))
                })),
                Expiry::Body => {
                    link.body_timed_out = true;
                    match link.token() {
                        Some(token) => Verdict::BodyTimeout(token),
                        None => Verdict::Close(None),
                    }
                }
            },
            next => Verdict::Wait {
                deadline: next.map(|(deadline, _)| deadline),
                probe: PROBES && link.backlogged && matches!(link.phase, Phase::Exchange(_)),
            },
        }
    }
}

/// What passing a deadline does.
enum Expiry {
    Close,
    Body,
}

impl Link {
    /// No request in flight and no response being written: safe to close at shutdown.
    fn quiet(&self) -> bool {
        !matches!(self.phase, Phase::Exchange(_)) && self.write_stalled.is_none()
    }

    fn token(&self) -> Option<CancellationToken> {
        match &self.phase {
            Phase::Exchange(x) => x.token.clone(),
            _ => None,
        }
    }

    /// The nearest deadline of the current phase, and what passing it does.
    fn deadline(&self, c: &ServerConfig) -> Option<(Instant, Expiry)> {
        let phase = match &self.phase {
            Phase::Head { since } => since.and_then(|s| s.checked_add(c.header_read_timeout)),
            Phase::Idle { since } => since.and_then(|s| s.checked_add(c.idle_timeout)),
            Phase::Exchange(x) => x.waiting.and_then(|w| {
                let silence = w.checked_add(c.body_read_timeout);
                let rate = match (c.min_body_rate, x.body_since) {
                    (0, _) | (_, None) => None,
                    (rate, Some(since)) => {
                        // Each byte buys 1/rate s beyond the grace of one body_read_timeout.
                        let credit = x.body_bytes.saturating_mul(1000) / rate;
                        since
                            .checked_add(c.body_read_timeout)
                            .and_then(|t| t.checked_add(Duration::from_millis(credit)))
                    }
                };
                silence.into_iter().chain(rate).min()
            }),
        };
        let expiry = match &self.phase {
            Phase::Exchange(_) => Expiry::Body,
            _ => Expiry::Close,
        };
        let send = self
            .write_stalled
            .and_then(|s| s.checked_add(c.send_timeout))
            .map(|d| (d, Expiry::Close));
        match (phase.map(|d| (d, expiry)), send) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Reads the socket into the free space of the buffer (at most `max` bytes, at most
    /// [`READ_AHEAD`] buffered; callers leave room and ask for at least one byte). `Ok(0)`
    /// is the end of the stream.
    fn fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let want = (self.end + max.min(CHUNK)).min(READ_AHEAD);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let Self {
            socket,
            buf,
            end,
            drained,
            ..
        } = self;
        // A short read emptied the socket: wait for the next readiness event instead of reading
        // again for nothing. The event that announced the bytes just read is still unconsumed
        // in async-io's books: the first poll takes it, the second registers for the next one
        // (re-arming the socket, which reports at once if bytes came meanwhile).
        if std::mem::take(drained)
            && (socket.poll_readable(cx)?.is_pending() || socket.poll_readable(cx)?.is_pending())
        {
            return Poll::Pending;
        }
        let space = want - *end;
        let n = ready!(read_socket(socket, cx, &mut buf[*end..want]))?;
        *drained = 0 < n && n < space;
        *end += n;
        Poll::Ready(Ok(n))
    }

    /// Reads ahead of hyper while a request is answered, until the socket has nothing more,
    /// the buffer is full, or the client is gone (`self.gone`).
    fn read_ahead(&mut self, cx: &mut Context<'_>) {
        self.backlogged = self.end - self.start >= READ_AHEAD;
        // No new readiness event since the last read that came back empty: nothing to read.
        if self.backlogged || self.socket.poll_readable(cx).is_pending() {
            return;
        }
        while self.end - self.start < READ_AHEAD {
            match self.fill(cx, READ_AHEAD) {
                Poll::Pending => return,
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
        self.backlogged = true;
    }

    /// Hands bytes to hyper: phase bookkeeping.
    fn delivered(&mut self, n: usize) {
        match &mut self.phase {
            // Stamped by the connection task after this poll of hyper (`after_poll`).
            Phase::Idle { .. } => self.phase = Phase::Head { since: None },
            Phase::Exchange(x) => {
                x.waiting = None;
                x.body_bytes += n as u64;
                x.body_since.get_or_insert_with(Instant::now);
            }
            Phase::Head { .. } => {}
        }
    }
}

/// Reads `socket` as async-io's `poll_read` does, without its second read for nothing.
///
/// The readiness event that announced bytes already read is still unconsumed when a read
/// finds the socket empty, so the first `poll_readable` is ready at once; async-io reads
/// again, a system call that finds nothing again. Polling readiness a second time registers
/// for the next event instead. If the event was a fresh one after all, the registration
/// reports it at once: re-arming a socket that has bytes makes the poller report it.
fn read_socket(socket: &Socket, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    use std::io::Read as _;
    loop {
        match socket.get_ref().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
        if socket.poll_readable(cx)?.is_pending() {
            return Poll::Pending;
        }
        ready!(socket.poll_readable(cx))?;
    }
}

/// hyper's transport: reads through the [`Peer`] (read-ahead bytes first), writes straight
/// to the socket, and reports stalled writes.
struct PeerIo {
    socket: Socket,
    peer: Peer,
    /// The last write came back `Pending` (reported to the peer as `write_stalled`).
    stalled: bool,
}

impl PeerIo {
    fn track<T>(&mut self, poll: &Poll<T>) {
        if poll.is_pending() != self.stalled {
            self.stalled = poll.is_pending();
            self.peer.lock().write_stalled = self.stalled.then(Instant::now);
        }
    }
}

impl hyper::rt::Read for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut link = self.peer.lock();
        if link.start == link.end {
            if link.gone {
                return Poll::Ready(Ok(()));
            }
            let result = match link.fill(cx, buf.remaining()) {
                Poll::Pending => {
                    link.read_pending = true;
                    if let Phase::Exchange(x) = &mut link.phase {
                        let now = Instant::now();
                        x.waiting.get_or_insert(now);
                        x.body_since.get_or_insert(now);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(n)) if n > 0 => None,
                Poll::Ready(result) => Some(result),
            };
            if let Some(result) = result {
                // The end of the stream or an error: the client is gone. Cancel before hyper
                // hears of it, so a body cut short counts as a disconnect.
                link.gone = true;
                let token = link.token();
                drop(link);
                if let Some(token) = token {
                    token.cancel_with(CancelReason::disconnected());
                }
                return Poll::Ready(result.map(drop));
            }
        }
        let n = (link.end - link.start).min(buf.remaining());
        buf.put_slice(&link.buf[link.start..link.start + n]);
        link.start += n;
        link.delivered(n);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut &*this.socket).poll_write(cx, buf);
        this.track(&poll);
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.socket).poll_close(cx)
    }
}

/// The service hyper runs: the request layer, with each request's token and response
/// reported to the [`Peer`].
struct ConnService<S> {
    inner: RequestService<S>,
    peer: Peer,
}

impl<S, B> Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<Finish<Either<B, Full<Bytes>>, Done>>;
    type Error = S::Error;
    type Future = ConnFuture<S::Future, B>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let inner = self.inner.call(req);
        if let Some(token) = self.peer.begin(inner.token()) {
            token.cancel_with(CancelReason::disconnected());
        }
        ConnFuture {
            inner,
            peer: Some(self.peer.clone()),
        }
    }
}

pin_project! {
    /// A [`RequestFuture`] whose response body reports its end to the [`Peer`], and whose
    /// answer is `408` when the body bound cancelled the request.
    struct ConnFuture<F, B> {
        #[pin]
        inner: RequestFuture<F, B>,
        peer: Option<Peer>,
    }
}

impl<F, B, E> Future for ConnFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Finish<Either<B, Full<Bytes>>, Done>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(peer) = this.peer.take() else {
            return Poll::Pending; // polled after completion
        };
        let body_timed_out = peer.responded();
        Poll::Ready(result.map(|response| {
            let response = if body_timed_out {
                let mut response = small_response(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                ));
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                response
            } else {
                response
            };
            response.map(|body| Finish {
                body,
                _done: Done(peer),
            })
        }))
    }
}

pin_project! {
    /// A response body that says when it is done by dropping `D` (hyper drops a body once
    /// it sent its end, or with the connection or stream).
    pub(crate) struct Finish<B, D> {
        #[pin]
        pub(crate) body: B,
        pub(crate) _done: D,
    }
}

/// Tells the [`Peer`] that the response is done.
struct Done(Peer);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl<B: HttpBody, D> HttpBody for Finish<B, D> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The resolution of a server's [`CoarseTimer`]: 1/8 of its shortest connection bound, at
/// least 5 ms and at most 1 s.
pub(crate) fn timer_for(config: &ServerConfig) -> CoarseTimer {
    let shortest = [
        config.header_read_timeout,
        config.idle_timeout,
        config.body_read_timeout,
        config.send_timeout,
    ]
    .into_iter()
    .min()
    .unwrap_or(Duration::from_secs(1));
    CoarseTimer::new((shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1)))
}
