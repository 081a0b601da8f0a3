//! Streams that stop when the peer leaves: server-sent events ([`sse`]) and WebSocket
//! ([`websocket`]). Each runs its producer as an [`Operation`] (metadata `kind=stream`) under
//! a token that is a child of the request's (so shutdown stops it), on its own task tracked by
//! the server (so shutdown waits for it), counted in `active_streams`. At most
//! [`max_streams`](crate::ServerConfig::max_streams) (256) are open at once: one more is
//! refused with `429 {"error": ...}` before anything starts.
//!
//! How the producer learns the peer left, within milliseconds, never waiting for a write to
//! fail:
//! * SSE: hyper watches the connection while it streams a response body and drops the body
//!   when the client closes; the body's drop guard cancels the stream token with
//!   `Disconnected`, which drops the producer. Keep-alive comments (`:` lines) go out when no
//!   event was sent for a while, for proxies and for peers that vanish without a close.
//! * WebSocket: a reader runs beside the producer and reads the socket all the time; a close
//!   frame, an EOF or a read error cancels the stream token with `Disconnected`. Pings are
//!   answered by the reader (tungstenite queues the pong, the next read or write flushes it);
//!   the server sends a close frame when the producer finishes (`1000`) or the server shuts
//!   down (`1001`). What a peer may send is bounded (frame and message size, idle time; see
//!   [`websocket`]), and a peer that breaks a rule gets the close code that names it.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::{WebSocketReceiver, WebSocketStream};
use bytes::Bytes;
use cancelable::{
    CancelKind, CancelReason, CancellationToken, Cancelled, Operation, OperationContext,
};
use futures_lite::{AsyncReadExt as _, FutureExt as _, StreamExt as _};
use hyper::body::{Body as HttpBody, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::frame_limit::{FrameLimit, TooBig};
use crate::policy::has_token;
use crate::request::RequestContext;
use crate::response::{Body, BoxError, HttpError};
use crate::server::State;

/// Messages a producer may queue ahead of a slow peer.
const QUEUE: usize = 16;
/// How long the server waits to send its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// tungstenite's read buffer per WebSocket, allocated up front (its default is 128 KiB): the
/// streams here mostly send, and a peer's large message grows the buffer only as it comes.
const READ_BUFFER: usize = 8 * 1024;

/// One server-sent event.
///
/// ```
/// use cancelable_http::Event;
/// let event = Event::data("line one\nline two").event("tick").id("7");
/// assert_eq!(event.to_string(), "event: tick\nid: 7\ndata: line one\ndata: line two\n\n");
/// assert_eq!(Event::json(&serde_json::json!({"n": 1})).to_string(), "data: {\"n\":1}\n\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl Event {
    /// An event carrying `data` (several lines become several `data:` lines).
    ///
    /// ```
    /// let _ = cancelable_http::Event::data("hello");
    /// ```
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// An event carrying `value` as JSON.
    ///
    /// ```
    /// let _ = cancelable_http::Event::json(&[1, 2, 3]);
    /// ```
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self::data(
            serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        )
    }

    /// Sets the event type (`event:` field).
    ///
    /// ```
    /// let _ = cancelable_http::Event::data("x").event("update");
    /// ```
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the event id (`id:` field).
    ///
    /// ```
    /// let _ = cancelable_http::Event::data("x").id("42");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Field values must not contain newlines; they are cut at the first one.
        let one_line = |s: &str| s.lines().next().unwrap_or("").to_owned();
        if let Some(event) = &self.event {
            writeln!(f, "event: {}", one_line(event))?;
        }
        if let Some(id) = &self.id {
            writeln!(f, "id: {}", one_line(id))?;
        }
        if self.data.is_empty() {
            writeln!(f, "data: ")?;
        }
        for line in self.data.lines() {
            writeln!(f, "data: {line}")?;
        }
        writeln!(f)
    }
}

/// The peer left (or the stream was stopped): what sending on a closed stream returns.
///
/// ```
/// assert_eq!(cancelable_http::Closed.to_string(), "the stream is closed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stream is closed")
    }
}

impl std::error::Error for Closed {}

/// Where an SSE producer sends its events (see [`sse`]).
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: async_channel::Sender<Event>,
}

impl EventSender {
    /// Queues `event` for the client; waits while the queue is full (a slow client slows the
    /// producer down). `Err(Closed)` once the client is gone.
    ///
    /// ```
    /// # let _ = |tx: cancelable_http::EventSender| async move { tx.send(cancelable_http::Event::data("x")).await };
    /// ```
    pub async fn send(&self, event: Event) -> Result<(), Closed> {
        self.tx.send(event).await.map_err(|_| Closed)
    }
}

/// Takes one of the server's stream slots (`429` when all are taken), then starts a stream
/// operation under `req`'s token; the slot is held (and counted in `active_streams`) until
/// the returned [`Gauge`] drops.
fn stream_op<B>(req: &Request<B>, name: &str) -> Result<(Operation, Arc<State>, Gauge), HttpError> {
    let cx = RequestContext::of(req).ok_or_else(|| {
        HttpError::internal("the request did not go through cancelable-http's layer")
    })?;
    let gauge = Gauge::take(cx.state().clone())?;
    let op = Operation::new(name.to_owned())
        .parent(cx.token())
        .metadata("kind", "stream")
        .metadata("path", req.uri().path())
        .register(&cx.state().streams);
    Ok((op, cx.state().clone(), gauge))
}

/// One of the server's [`max_streams`](crate::ServerConfig::max_streams) slots, counted in
/// `active_streams` while it lives.
struct Gauge(Arc<State>);

impl Gauge {
    fn take(state: Arc<State>) -> Result<Self, HttpError> {
        let limit = state.config.max_streams;
        let taken = state
            .stats
            .active_streams
            .fetch_update(Relaxed, Relaxed, |open| (open < limit).then_some(open + 1));
        match taken {
            Ok(_) => Ok(Self(state)),
            Err(_) => Err(HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many streams open (limit {limit}); try again later"),
            )),
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.stats.active_streams.fetch_sub(1, Relaxed);
    }
}

/// A server-sent-events response: `producer` runs on its own task with the stream's context
/// and an [`EventSender`]; its events go out as they come, with a keep-alive comment after
/// [`ServerConfig::keep_alive`](crate::ServerConfig::keep_alive) of silence. The stream ends when the producer returns; when the client leaves, the
/// stream token is cancelled with `Disconnected` and the producer is dropped.
///
/// ```
/// use std::time::Duration;
/// use cancelable_http::{Event, HandlerResult, sse};
/// use hyper::{Request, body::Incoming};
///
/// async fn events(req: Request<Incoming>, _state: ()) -> HandlerResult {
///     sse(&req, "ticks", |cx, tx| async move {
///         for n in 0.. {
///             tx.send(Event::json(&serde_json::json!({"n": n}))).await.map_err(|_| cx.check().unwrap_err())?;
///             smol::Timer::after(Duration::from_secs(1)).await;
///         }
///         Ok(())
///     })
/// }
/// # let _ = events;
/// ```
pub fn sse<B, F, Fut>(
    req: &Request<B>,
    name: &str,
    producer: F,
) -> Result<Response<Body>, HttpError>
where
    F: FnOnce(OperationContext, EventSender) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Cancelled>> + Send + 'static,
{
    let (op, state, gauge) = stream_op(req, name)?;
    let (tx, rx) = async_channel::bounded(QUEUE);
    let run = op.run(|cx| producer(cx, EventSender { tx }));
    let token = run.context().token().clone();
    let task = state.tracker.track_future(async move {
        let _gauge = gauge;
        let _ = run.await;
    });
    state.spawn(task);
    let body = SseBody {
        rx: Box::pin(rx),
        keep_alive: smol::Timer::after(state.config.keep_alive),
        every: state.config.keep_alive,
        guard: Some(token),
    };
    let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The body of an SSE response; its drop guard is the disconnect detection.
struct SseBody {
    rx: Pin<Box<async_channel::Receiver<Event>>>,
    keep_alive: smol::Timer,
    every: Duration,
    /// The stream token, cancelled with `Disconnected` if the body is dropped before the
    /// producer finished (hyper drops it when the client closes).
    guard: Option<CancellationToken>,
}

impl HttpBody for SseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match this.rx.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => {
                this.keep_alive.set_after(this.every);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(event.to_string())))));
            }
            Poll::Ready(None) => {
                this.guard = None; // the producer ended: nothing to cancel
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if Pin::new(&mut this.keep_alive).poll(cx).is_ready() {
            this.keep_alive.set_after(this.every);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b":\n\n")))));
        }
        Poll::Pending
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(token) = self.guard.take() {
            token.cancel_with(
                CancelReason::disconnected().with_message("the client closed the event stream"),
            );
        }
    }
}

/// Where a WebSocket producer sends its messages (see [`websocket`]).
#[derive(Clone, Debug)]
pub struct WsSender {
    tx: async_channel::Sender<Message>,
}

impl WsSender {
    /// Queues `message`; waits while the queue is full. `Err(Closed)` once the peer is gone.
    ///
    /// ```
    /// # let _ = |tx: cancelable_http::WsSender| async move { tx.send(cancelable_http::Message::text("hi")).await };
    /// ```
    pub async fn send(&self, message: Message) -> Result<(), Closed> {
        self.tx.send(message).await.map_err(|_| Closed)
    }

    /// Sends `value` as a JSON text message.
    ///
    /// ```
    /// # let _ = |tx: cancelable_http::WsSender| async move { tx.send_json(&serde_json::json!({"n": 1})).await };
    /// ```
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Closed> {
        let text = serde_json::to_string(value).map_err(|_| Closed)?;
        self.send(Message::text(text)).await
    }
}

/// Accepts a WebSocket upgrade on `req` and answers `101 Switching Protocols`; once hyper has
/// handed over the connection, `producer` runs on its own task with the stream's context and a
/// [`WsSender`]. A reader runs beside it the whole time: pings are answered; a close frame,
/// EOF or read error cancels the stream token with `Disconnected` and drops the producer.
/// When the producer returns, the server sends a normal close frame (`1000`); on shutdown,
/// `1001 going away`.
///
/// What the peer may send is bounded by the server's [`ServerConfig`](crate::ServerConfig):
///
/// | peer sends | the server answers |
/// |---|---|
/// | a frame header over `max_websocket_frame` (1 MiB) | close `1009`, before reading the payload |
/// | a frame header that takes its message over `max_websocket_message` (1 MiB) | close `1009`, the same |
/// | a protocol error (unmasked frame, reserved opcode or bit, bad control or continuation frame) | close `1002` |
/// | text that is not UTF-8 | close `1007` |
/// | nothing for half of `websocket_idle_timeout` (60 s) | a ping |
/// | nothing for all of it | close `1001`; the stream is cancelled with `Timeout` |
/// | a message not taken by the peer within `send_timeout` (30 s) | the stream is cancelled with `Timeout`, close `1000` within a second, then the connection ends |
///
/// After a close for the peer's fault the stream is cancelled with `Disconnected`. A peer
/// that holds an unfinished message keeps at most about the two limits of memory in use.
///
/// The handshake must be a `GET` over HTTP/1.1 or later with `Upgrade: websocket`,
/// `Connection: upgrade`, a `Sec-WebSocket-Key` of 16 bytes in base64 and
/// `Sec-WebSocket-Version: 13` (RFC 6455, section 4.2.1); otherwise `400` (`426` without
/// `Upgrade`). Past [`max_streams`](crate::ServerConfig::max_streams) open streams: `429`.
///
/// ```
/// use std::time::Duration;
/// use cancelable_http::{HandlerResult, websocket};
/// use hyper::{Request, body::Incoming};
///
/// async fn stream(mut req: Request<Incoming>, _state: ()) -> HandlerResult {
///     websocket(&mut req, "ticks", |_cx, tx| async move {
///         for n in 0u64.. {
///             if tx.send_json(&serde_json::json!({"n": n})).await.is_err() { break }
///             smol::Timer::after(Duration::from_secs(1)).await;
///         }
///         Ok(())
///     })
/// }
/// # let _ = stream;
/// ```
pub fn websocket<B, F, Fut>(
    req: &mut Request<B>,
    name: &str,
    producer: F,
) -> Result<Response<Body>, HttpError>
where
    B: Send + 'static,
    F: FnOnce(OperationContext, WsSender) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Cancelled>> + Send + 'static,
{
    let accept = match handshake(req) {
        Ok(accept) => accept,
        Err(refused) => return Ok(*refused),
    };
    let (op, state, gauge) = stream_op(req, name)?;
    let upgrade = hyper::upgrade::on(&mut *req);
    let (tx, rx) = async_channel::bounded(QUEUE);
    let run = op.run(|cx| producer(cx, WsSender { tx }));
    let token = run.context().token().clone();
    let limits = Limits::of(&state.config);
    let task = state.tracker.track_future(async move {
        let _gauge = gauge;
        // Until hyper hands the connection over, a cancelation (shutdown) still stops us.
        let upgraded = async { Some(upgrade.await) }
            .or(async {
                token.cancelled().await;
                None
            })
            .await;
        let Some(Ok(upgraded)) = upgraded else {
            token.cancel_with(CancelReason::disconnected().with_message("the upgrade failed"));
            let _ = run.await; // records the cancelation
            return;
        };
        let io = FrameLimit::new(
            crate::io::HyperIo::new(upgraded),
            limits.max_frame,
            limits.max_message,
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_frame_size(Some(limits.max_frame))
            .max_message_size(Some(limits.max_message));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        drive(ws, run, rx, &token, &limits).await;
    });
    state.spawn(task);
    let mut response = Response::new(crate::response::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

/// What a WebSocket peer may send, from the server's configuration.
#[derive(Clone, Copy)]
struct Limits {
    max_frame: usize,
    max_message: usize,
    idle: Duration,
    /// How long one message may take to go out: a peer that stops reading ends the stream.
    send: Duration,
}

impl Limits {
    fn of(config: &crate::ServerConfig) -> Self {
        Self {
            max_frame: config.max_websocket_frame,
            max_message: config.max_websocket_message,
            idle: config.websocket_idle_timeout,
            send: config.send_timeout,
        }
    }
}

/// How the reader saw the WebSocket end.
enum Ending {
    /// The peer closed it, went away or broke the connection: nothing more to say.
    PeerLeft,
    /// The peer broke a rule: the server closes with this code and reason.
    Fault(CloseCode, &'static str),
    /// The peer sent nothing for the idle timeout.
    Idle(Duration),
}

impl Ending {
    fn of(error: &WsError) -> Self {
        match error {
            WsError::Capacity(_) => Ending::Fault(CloseCode::Size, "message too big"),
            WsError::Io(e) if TooBig::is(e) => Ending::Fault(CloseCode::Size, "message too big"),
            WsError::Utf8(_) => Ending::Fault(CloseCode::Invalid, "invalid UTF-8"),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ending::PeerLeft,
            WsError::Protocol(_) => Ending::Fault(CloseCode::Protocol, "protocol error"),
            _ => Ending::PeerLeft,
        }
    }

    fn reason(&self) -> CancelReason {
        match self {
            Ending::PeerLeft => {
                CancelReason::disconnected().with_message("the peer closed the WebSocket")
            }
            Ending::Fault(code, why) => CancelReason::disconnected()
                .with_message(format!("closed the WebSocket with {code}: {why}")),
            Ending::Idle(limit) => CancelReason::timeout()
                .with_message(format!("the WebSocket peer sent nothing for {limit:?}")),
        }
    }

    fn frame(&self) -> Option<CloseFrame> {
        match self {
            Ending::PeerLeft => None,
            Ending::Fault(code, why) => Some(close(*code, why)),
            Ending::Idle(_) => Some(close(CloseCode::Away, "idle timeout")),
        }
    }
}

/// Reads the peer's frames until the WebSocket ends: answers pings (tungstenite queues the
/// pong), asks for a ping of ours (through `ping`) after half of `idle` of silence, and gives
/// up after all of it.
async fn read<S>(
    receiver: &mut WebSocketReceiver<S>,
    idle: Duration,
    ping: &async_channel::Sender<()>,
) -> Ending
where
    S: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
{
    let mut heard = Instant::now();
    let mut pinged = false;
    let mut timer = smol::Timer::at(heard + idle / 2);
    loop {
        let next = async { Some(receiver.next().await) }
            .or(async {
                (&mut timer).await;
                None
            })
            .await;
        match next {
            Some(Some(Ok(Message::Close(_))) | None) => return Ending::PeerLeft,
            Some(Some(Err(e))) => return Ending::of(&e),
            Some(Some(Ok(_))) => {
                heard = Instant::now();
                pinged = false;
                timer.set_at(heard + idle / 2);
            }
            None if pinged => return Ending::Idle(idle),
            None => {
                pinged = true;
                let _ = ping.try_send(());
                timer.set_at(heard + idle);
            }
        }
    }
}

/// What the writer does next.
enum Out {
    Send(Message),
    /// The producer dropped its sender.
    Closed,
    /// The producer returned and its messages are out.
    Done,
}

/// Runs the producer, the writer (producer → socket) and the reader (socket → disconnect
/// detection) together, then sends the close frame that fits how it ended.
async fn drive<S, Fut>(
    ws: WebSocketStream<FrameLimit<S>>,
    run: Fut,
    rx: async_channel::Receiver<Message>,
    token: &CancellationToken,
    limits: &Limits,
) where
    S: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
    Fut: Future<Output = Result<(), Cancelled>>,
{
    let (mut sender, mut receiver) = ws.split();
    let (ping_tx, ping_rx) = async_channel::bounded(1);
    let mut run = pin!(run);
    let mut produced = None;
    // Cancelled once the producer has returned: the writer then stops when its queue is empty.
    let done = CancellationToken::new();
    let ended = {
        let pump = async {
            let mut open = true;
            loop {
                // Our pings first: a busy producer must not starve the idle check. The writer
                // serves them until the producer returns, even if it dropped its sender early.
                let next = async {
                    match ping_rx.recv().await {
                        Ok(()) => Out::Send(Message::Ping(Bytes::new())),
                        Err(_) => std::future::pending().await,
                    }
                }
                .or(async {
                    if open {
                        rx.recv().await.map_or(Out::Closed, Out::Send)
                    } else {
                        done.cancelled().await;
                        Out::Done
                    }
                })
                .await;
                match next {
                    Out::Send(message) => {
                        match cancelable_smol::timeout(limits.send, sender.send(message)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => {
                                token.cancel_with(
                                    CancelReason::disconnected()
                                        .with_message("cannot write to the WebSocket"),
                                );
                                break;
                            }
                            Err(_) => {
                                token.cancel_with(CancelReason::timeout().with_message(format!(
                                    "the WebSocket peer read nothing for {:?}",
                                    limits.send
                                )));
                                break;
                            }
                        }
                    }
                    Out::Closed => open = false,
                    Out::Done => break,
                }
            }
        }
        // Once cancelled, send nothing more than the close frame.
        .or(token.cancelled());
        let produce = async {
            let record = async {
                produced = Some(run.as_mut().await);
                done.cancel();
            };
            futures_lite::future::zip(record, pump).await;
            None
        };
        let read = async { Some(read(&mut receiver, limits.idle, &ping_tx).await) };
        produce.or(read).await
    };
    let (frame, linger) = match (ended, produced) {
        (Some(ending), produced) => {
            token.cancel_with(ending.reason());
            if produced.is_none() {
                let _ = run.await; // the producer sees the cancelation, which is recorded
            }
            (ending.frame(), matches!(ending, Ending::Fault(..)))
        }
        (None, Some(Ok(()))) => (Some(close(CloseCode::Normal, "done")), false),
        (None, Some(Err(c))) if c.reason().kind() == CancelKind::Shutdown => {
            (Some(close(CloseCode::Away, "server shutting down")), false)
        }
        (None, Some(Err(c))) if c.reason().kind() != CancelKind::Disconnected => {
            (Some(close(CloseCode::Normal, "cancelled")), false)
        }
        (None, _) => (None, false),
    };
    // Our close frame (or the reply to the peer's, queued by tungstenite), then the peer's
    // reply, each within a bound: a vanished peer must not hold the task.
    let _ = cancelable_smol::timeout(CLOSE_WAIT, async {
        let _ = sender.close(frame).await;
        while let Some(Ok(_)) = receiver.next().await {}
        // After a fault the reader stopped at the error, with more of the peer's bytes likely
        // on their way: read and drop them until the peer closes, so that closing with unread
        // bytes does not reset the connection before the peer has read our close frame.
        if linger {
            if let Ok(mut ws) = WebSocketStream::reunite(sender, receiver) {
                let mut sink = [0u8; 4096];
                while let Ok(1..) = ws.get_mut().get_mut().read(&mut sink).await {}
            }
        }
    })
    .await;
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Checks the client's handshake (RFC 6455, section 4.2.1) and computes
/// `Sec-WebSocket-Accept`; a refusal is the response to send.
fn handshake<B>(req: &Request<B>) -> Result<HeaderValue, Box<Response<Body>>> {
    let refuse = |error: HttpError| Box::new(error.into_response());
    let headers = req.headers();
    if req.method() != hyper::Method::GET {
        return Err(refuse(HttpError::bad_request(
            "a WebSocket handshake is a GET",
        )));
    }
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(refuse(HttpError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this route speaks WebSocket: send Upgrade: websocket",
        )));
    }
    if req.version() < hyper::Version::HTTP_11 {
        return Err(refuse(HttpError::bad_request(
            "a WebSocket handshake needs HTTP/1.1 or later",
        )));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        let mut refused = refuse(HttpError::bad_request(
            "unsupported Sec-WebSocket-Version (want 13)",
        ));
        refused.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(refused);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| {
            data_encoding::BASE64
                .decode(key)
                .is_ok_and(|nonce| nonce.len() == 16)
        })
        .ok_or_else(|| {
            refuse(HttpError::bad_request(
                "Sec-WebSocket-Key must be 16 bytes in base64",
            ))
        })?;
    let accept = async_tungstenite::tungstenite::handshake::derive_accept_key(key);
    HeaderValue::from_str(&accept).map_err(|_| refuse(HttpError::internal("bad accept key")))
}
