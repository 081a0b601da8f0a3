//! Streams that stop when the peer leaves: server-sent events ([`sse`]) and WebSocket
//! ([`websocket`]). Each runs its producer as an [`Operation`] (metadata `kind=stream`) under
//! a token that is a child of the request's (so shutdown stops it), on its own task tracked by
//! the server (so shutdown waits for it), counted in `active_streams`.
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
//!   down (`1001`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use bytes::Bytes;
use cancelable::{
    CancelKind, CancelReason, CancellationToken, Cancelled, Operation, OperationContext,
};
use futures_lite::{FutureExt as _, StreamExt as _};
use hyper::body::{Body as HttpBody, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::request::RequestContext;
use crate::response::{Body, BoxError, HttpError};
use crate::server::State;

/// Messages a producer may queue ahead of a slow peer.
const QUEUE: usize = 16;
/// How long the server waits to send its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

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

/// Starts a stream operation under `req`'s token and bumps `active_streams` until it ends.
fn stream_op<B>(req: &Request<B>, name: &str) -> Result<(Operation, Arc<State>), HttpError> {
    let cx = RequestContext::of(req).ok_or_else(|| {
        HttpError::internal("the request did not go through cancelable-http's layer")
    })?;
    let op = Operation::new(name)
        .parent(cx.token())
        .metadata("kind", "stream")
        .metadata("path", req.uri().path())
        .register(&cx.state().streams);
    Ok((op, cx.state().clone()))
}

/// Counts a stream in `active_streams` while it lives.
struct Gauge(Arc<State>);

impl Gauge {
    fn new(state: Arc<State>) -> Self {
        state.stats.active_streams.fetch_add(1, Relaxed);
        Self(state)
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
    let (op, state) = stream_op(req, name)?;
    let (tx, rx) = async_channel::bounded(QUEUE);
    let gauge = Gauge::new(state.clone());
    let run = op.run(|cx| producer(cx, EventSender { tx }));
    let token = run.context().token().clone();
    let task = state.tracker.track_future(async move {
        let _gauge = gauge;
        let _ = run.await;
    });
    smol::spawn(task).detach();
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
/// [`WsSender`]. A reader runs beside it the whole time (close, EOF or error → the stream token
/// is cancelled with `Disconnected` and the producer is dropped; pings are answered). When the
/// producer returns, the server sends a normal close frame; on shutdown, a `1001 going away`.
///
/// Not a WebSocket handshake (wrong method, missing or bad `Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, version other than 13) → `400`/`426` [`HttpError`].
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
    let accept = handshake(req)?;
    let (op, state) = stream_op(req, name)?;
    let upgrade = hyper::upgrade::on(&mut *req);
    let (tx, rx) = async_channel::bounded(QUEUE);
    let gauge = Gauge::new(state.clone());
    let run = op.run(|cx| producer(cx, WsSender { tx }));
    let token = run.context().token().clone();
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
        let io = crate::io::HyperIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        drive(ws, run, rx, &token).await;
    });
    smol::spawn(task).detach();
    let mut response = Response::new(crate::response::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

/// Runs the producer, the writer (producer → socket) and the reader (socket → disconnect
/// detection) together, then sends the close frame that fits how it ended.
async fn drive<S, Fut>(
    ws: WebSocketStream<S>,
    run: Fut,
    rx: async_channel::Receiver<Message>,
    token: &CancellationToken,
) where
    S: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
    Fut: Future<Output = Result<(), Cancelled>>,
{
    let (mut sender, mut receiver) = ws.split();
    let outcome = {
        let pump = async {
            while let Ok(message) = rx.recv().await {
                if sender.send(message).await.is_err() {
                    token.cancel_with(
                        CancelReason::disconnected().with_message("cannot write to the WebSocket"),
                    );
                    break;
                }
            }
        }
        // Once cancelled, send nothing more than the close frame.
        .or(token.cancelled());
        let read = async {
            loop {
                match receiver.next().await {
                    // A ping is answered by tungstenite; other messages are not for us.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
            token.cancel_with(
                CancelReason::disconnected().with_message("the peer closed the WebSocket"),
            );
            std::future::pending::<Result<(), Cancelled>>().await
        };
        async {
            let (outcome, ()) = futures_lite::future::zip(run, pump).await;
            outcome
        }
        .or(read)
        .await
    };
    let frame = match &outcome {
        Ok(()) => Some(close(CloseCode::Normal, "done")),
        Err(c) if c.reason().kind() == CancelKind::Disconnected => None,
        Err(c) if c.reason().kind() == CancelKind::Shutdown => {
            Some(close(CloseCode::Away, "server shutting down"))
        }
        Err(_) => Some(close(CloseCode::Normal, "cancelled")),
    };
    // Our close frame (or the reply to the peer's, queued by tungstenite), then the peer's
    // reply, each within a bound: a vanished peer must not hold the task.
    let _ = cancelable_smol::timeout(CLOSE_WAIT, async {
        let _ = sender.close(frame).await;
        while let Some(Ok(_)) = receiver.next().await {}
    })
    .await;
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Checks the client's handshake (RFC 6455 §4.2.1) and computes `Sec-WebSocket-Accept`.
fn handshake<B>(req: &Request<B>) -> Result<HeaderValue, HttpError> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if req.method() != hyper::Method::GET {
        return Err(HttpError::bad_request("a WebSocket handshake is a GET"));
    }
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(HttpError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this route speaks WebSocket: send Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HttpError::bad_request(
            "unsupported Sec-WebSocket-Version (want 13)",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| HttpError::bad_request("missing Sec-WebSocket-Key"))?;
    let accept = async_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).map_err(|_| HttpError::internal("bad accept key"))
}
