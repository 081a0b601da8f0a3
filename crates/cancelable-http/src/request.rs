//! The request-scoped token: [`RequestService`] wraps any hyper service (or, with the `tower`
//! feature, any tower service through `CancelLayer`) so that each request
//! gets a [`RequestContext`] (a token that is a child of the server's) in its extensions, and
//! turns the ways a request can end early into cancelations of that token:
//!
//! * the client goes away: under [`Server::serve`](crate::Server::serve) the connection's
//!   reader cancels the token with `Disconnected` within about a millisecond of the close,
//!   whatever the client sent after its request (see the [`server`](crate::server) docs);
//!   when hyper drops the in-flight service future (the connection closed, or, on HTTP/2, the
//!   client reset the request's stream), the future's drop guard does the same. A
//!   request that produced its response has its guard disarmed first: **a normal response
//!   never cancels**.
//! * its body stops coming (under [`Server::serve`](crate::Server::serve)): after
//!   `body_read_timeout` or below `min_body_rate` the token is cancelled with `Timeout` and
//!   the client gets `408`.
//! * the route's timeout ([`RequestContext::timeout`], [`Route::timeout`](crate::Route::timeout)):
//!   the token is cancelled with `Timeout` and the client gets `504 {"error":"timeout"}`.
//! * shutdown: the server token is cancelled with `Shutdown`, so is every request token, and the
//!   client gets `503`.
//!
//! A request that went through the layer of the same server once keeps its context when it
//! meets the layer again further in (a tower stack with the layer, served by
//! [`Server::serve`](crate::Server::serve)): one token per request, counted once.
//!
//! In each case the handler future is dropped at once (work it spawned under the token, or
//! operations started with the token as parent, stop too); a handler that wants to finish a
//! step first can watch the token itself or use an operation's shield.
//!
//! With the layer alone on your own hyper connection, hyper notices a closed connection only
//! while it holds no unread bytes: not after a stray CRLF or a pipelined request, and not
//! while a request body waits for its handler. [`Server::serve`](crate::Server::serve)
//! watches the socket itself and has no such gap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use cancelable::{CancelReason, CancellationToken, Cancelled, RunUntilCancelledFutureOwned};
use http_body_util::{BodyExt as _, Either, Full, Limited};
use hyper::body::Body as HttpBody;
use hyper::header::CONTENT_LENGTH;
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use pin_project_lite::pin_project;

use crate::counter::Counter;
use crate::response::HttpError;
use crate::server::State;

/// What a request carries in its extensions once it went through a [`RequestService`]: its
/// token and a handle to the server it belongs to. `Clone` is cheap (two reference counts).
///
/// ```
/// use cancelable_http::RequestContext;
/// use hyper::Request;
///
/// fn handler(req: &Request<()>) {
///     let cx = RequestContext::of(req).expect("served by cancelable-http");
///     if cx.token().is_cancelled() { /* the client left, the route timed out, or shutdown */ }
/// }
/// # let _ = handler;
/// ```
#[derive(Clone, Debug)]
pub struct RequestContext {
    token: CancellationToken,
    state: Arc<State>,
}

impl RequestContext {
    /// The context of `req`, if it went through a [`RequestService`].
    ///
    /// ```
    /// assert!(cancelable_http::RequestContext::of(&hyper::Request::new(())).is_none());
    /// ```
    pub fn of<B>(req: &Request<B>) -> Option<&RequestContext> {
        req.extensions().get::<RequestContext>()
    }

    /// The request's token: a child of the server's; cancelled with `Disconnected`, `Timeout`
    /// or `Shutdown` as described in the [module docs](crate::request).
    ///
    /// ```
    /// use cancelable_http::{Server, ServerConfig};
    /// let server = Server::new(ServerConfig::default());
    /// let cx = server.context();
    /// assert!(!cx.token().is_cancelled());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Cancels the request with `Timeout` after `limit` (the client then gets
    /// `504 {"error":"timeout"}`), unless it ended first. The timer holds only a weak handle
    /// and ends with the request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancelable_http::{Server, ServerConfig};
    ///
    /// let cx = Server::new(ServerConfig::default()).context();
    /// smol::block_on(async {
    ///     cx.timeout(Duration::from_millis(1));
    ///     cx.token().cancelled().await;
    ///     assert_eq!(cx.token().reason().unwrap().kind(), cancelable::CancelKind::Timeout);
    /// });
    /// ```
    pub fn timeout(&self, limit: Duration) {
        if !self.token.is_cancelled() {
            cancelable_smol::cancel_after(&self.token, limit);
        }
    }

    /// The server the request belongs to.
    ///
    /// ```
    /// use cancelable_http::{Server, ServerConfig};
    /// let server = Server::new(ServerConfig::default());
    /// assert_eq!(server.context().server().stats().active_requests, 0);
    /// ```
    pub fn server(&self) -> crate::Server {
        crate::Server::from_state(self.state.clone())
    }

    pub(crate) fn new(token: CancellationToken, state: Arc<State>) -> Self {
        Self { token, state }
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }
}

/// The token of `req` (see [`RequestContext::token`]), if it went through a [`RequestService`].
///
/// ```
/// assert!(cancelable_http::request_token(&hyper::Request::new(())).is_none());
/// ```
pub fn request_token<B>(req: &Request<B>) -> Option<&CancellationToken> {
    RequestContext::of(req).map(RequestContext::token)
}

/// The layer: wraps any `hyper::service::Service<Request<B>>` so each request gets a
/// [`RequestContext`] (made by [`Server::layer`](crate::Server::layer)).
///
/// Responses are the inner service's, or a small JSON one made here (`Either::Right`): `413`
/// when the `content-length` is over the server's body limit, `504`/`503` when the request was
/// cancelled by its timeout or by shutdown.
///
/// ```
/// use std::convert::Infallible;
/// use cancelable_http::{Server, ServerConfig, request_token};
/// use hyper::{Request, Response};
///
/// let server = Server::new(ServerConfig::default());
/// // Any hyper service, here a plain function.
/// let service = server.layer(hyper::service::service_fn(|req: Request<String>| async move {
///     let token = request_token(&req).unwrap();
///     Ok::<_, Infallible>(Response::new(format!("cancelled? {}", token.is_cancelled())))
/// }));
/// let response = smol::block_on(hyper::service::Service::call(&service, Request::new(String::new()))).unwrap();
/// assert_eq!(response.status(), 200);
/// ```
#[derive(Clone, Debug)]
pub struct RequestService<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> RequestService<S> {
    pub(crate) fn new(inner: S, state: Arc<State>) -> Self {
        Self { inner, state }
    }

    /// The inner service and the server, borrowed apart (the tower form calls the inner
    /// service by `&mut`).
    #[cfg(feature = "tower")]
    pub(crate) fn parts_mut(&mut self) -> (&mut S, &Arc<State>) {
        (&mut self.inner, &self.state)
    }
}

impl<S, B, B2> Service<Request<B>> for RequestService<S>
where
    S: Service<Request<B>, Response = Response<B2>>,
{
    type Response = Response<Either<B2, Full<Bytes>>>;
    type Error = S::Error;
    type Future = RequestFuture<S::Future, B2>;

    fn call(&self, req: Request<B>) -> Self::Future {
        start(&self.state, req, |req| self.inner.call(req))
    }
}

/// A request's way through the layer (both the hyper and the tower form): its context goes into
/// the extensions, then `call` runs unless the declared body is over the limit.
///
/// A request that already carries a context of the same server (the layer twice in one
/// stack, e.g. [`Server::serve`](crate::Server::serve) around a tower stack that has the
/// layer too) keeps it: one request, one token, counted once, by the outer layer.
pub(crate) fn start<B, F: Future, B2>(
    state: &Arc<State>,
    mut req: Request<B>,
    call: impl FnOnce(Request<B>) -> F,
) -> RequestFuture<F, B2> {
    let outer = RequestContext::of(&req)
        .filter(|cx| Arc::ptr_eq(&cx.state, state))
        .map(|cx| cx.token.clone());
    if let Some(token) = outer {
        return RequestFuture {
            race: token.clone().run_until_cancelled_owned(Maybe {
                inner: Some(call(req)),
            }),
            token,
            state: state.clone(),
            done: false,
            counted: false,
            _body: std::marker::PhantomData,
        };
    }
    state.stats.started_requests.add();
    let token = state.token.child_token();
    let too_big = content_length(&req).is_some_and(|len| len > state.config.max_body_size);
    req.extensions_mut()
        .insert(RequestContext::new(token.clone(), state.clone()));
    let inner = if too_big { None } else { Some(call(req)) };
    RequestFuture {
        race: token.clone().run_until_cancelled_owned(Maybe { inner }),
        token,
        state: state.clone(),
        done: false,
        counted: true,
        _body: std::marker::PhantomData,
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pin_project! {
    /// An optional future: `None` is "refused before calling the handler" (`Ready(None)`).
    struct Maybe<F> {
        #[pin]
        inner: Option<F>,
    }
}

impl<F: Future> Future for Maybe<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.as_pin_mut() {
            Some(fut) => fut.poll(cx).map(Some),
            None => Poll::Ready(None),
        }
    }
}

pin_project! {
    /// The future of a [`RequestService`] call: the inner service's future raced against the
    /// request token, with a drop guard that cancels the token with `Disconnected` when hyper
    /// drops the future before it produced a response (the client went away).
    pub struct RequestFuture<F, B> {
        #[pin]
        race: RunUntilCancelledFutureOwned<Maybe<F>>,
        token: CancellationToken,
        state: Arc<State>,
        // Set once a response (ours or the handler's) was produced: disarms the drop guard.
        done: bool,
        // Whether this layer counts the request in the server's stats (not when an outer
        // layer of the same server does).
        counted: bool,
        _body: std::marker::PhantomData<fn() -> B>,
    }

    impl<F, B> PinnedDrop for RequestFuture<F, B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Runs before the fields are dropped: the handler sees `Disconnected` (its
                // callbacks run now), then its future is dropped.
                this.token.cancel_with(CancelReason::disconnected());
                if *this.counted {
                    this.state.stats.cancelled_requests.add();
                }
            }
        }
    }
}

impl<F, B> RequestFuture<F, B> {
    /// The request's token.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl<F, B, E> Future for RequestFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.done {
            return Poll::Pending; // polled after completion: stay quiet
        }
        let outcome = ready!(this.race.poll(cx));
        *this.done = true;
        let count = |counter: &Counter| {
            if *this.counted {
                counter.add();
            }
        };
        let stats = &this.state.stats;
        let response = match outcome {
            Some(Some(result)) => {
                // A response produced while the token was already cancelled still counts
                // as a cancelled request (the handler answered its cancelation).
                if this.token.is_cancelled() {
                    count(&stats.cancelled_requests);
                } else {
                    count(&stats.completed_requests);
                }
                return Poll::Ready(result.map(|r| r.map(Either::Left)));
            }
            Some(None) => {
                count(&stats.completed_requests);
                HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload too large")
            }
            None => {
                count(&stats.cancelled_requests);
                let reason = this.token.reason().unwrap_or_else(CancelReason::manual);
                HttpError::from(Cancelled::new(reason))
            }
        };
        Poll::Ready(Ok(small_response(response)))
    }
}

pub(crate) fn small_response<B>(error: HttpError) -> Response<Either<B, Full<Bytes>>> {
    let mut response = Response::new(Either::Right(Full::new(error.body_bytes())));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads the whole request body, at most the server's `max_body_size` bytes: `413` past it,
/// `400` if the client sent a broken body. A client that leaves halfway cancels the request
/// with `Disconnected` (under [`Server::serve`](crate::Server::serve)), so the handler is
/// dropped before it sees that `400`.
///
/// ```
/// use cancelable_http::{Server, ServerConfig, read_body};
/// use hyper::{Request, StatusCode};
/// use http_body_util::Full;
///
/// let server = Server::new(ServerConfig::default().max_body_size(4));
/// let mut req = Request::new(Full::new(bytes::Bytes::from_static(b"12345")));
/// req.extensions_mut().insert(server.context());
/// let err = smol::block_on(read_body(&mut req)).unwrap_err();
/// assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
/// ```
pub async fn read_body<B>(req: &mut Request<B>) -> Result<Bytes, HttpError>
where
    B: HttpBody + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = RequestContext::of(req)
        .map(|cx| cx.state.config.max_body_size)
        .unwrap_or(crate::server::DEFAULT_MAX_BODY);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(req.body_mut(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
        )),
        Err(e) => Err(HttpError::bad_request(format!("cannot read the body: {e}"))),
    }
}

/// Reads the body (as [`read_body`]) and parses it as JSON: `400 {"error": "invalid JSON: ..."}`
/// when it is not valid JSON of type `T`. An empty body is read as `{}`, so a type whose fields
/// are all optional accepts it.
///
/// ```
/// use cancelable_http::{Server, ServerConfig, read_json};
/// use hyper::Request;
/// use http_body_util::Full;
///
/// #[derive(serde::Deserialize)]
/// struct Job { steps: Option<u64> }
///
/// let server = Server::new(ServerConfig::default());
/// let mut req = Request::new(Full::new(bytes::Bytes::from_static(br#"{"steps": 3}"#)));
/// req.extensions_mut().insert(server.context());
/// let job: Job = smol::block_on(read_json(&mut req)).unwrap();
/// assert_eq!(job.steps, Some(3));
///
/// let mut bad = Request::new(Full::new(bytes::Bytes::from_static(b"{steps")));
/// let err = smol::block_on(read_json::<Job, _>(&mut bad)).err().unwrap();
/// assert_eq!(err.status(), 400);
/// ```
pub async fn read_json<T, B>(req: &mut Request<B>) -> Result<T, HttpError>
where
    T: serde::de::DeserializeOwned,
    B: HttpBody + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_body(req).await?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|e| HttpError::bad_request(format!("invalid JSON: {e}")))
}

/// The value of query parameter `name` in `req`'s URI, decoded as an HTML form does
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, invalid UTF-8 replaced
/// by U+FFFD); a `%` not followed by two hex digits stays as it is. `None` when absent; the
/// first occurrence wins.
///
/// ```
/// let req = hyper::Request::get("/process?steps=5&name=a%20b+c&odd=%+5").body(()).unwrap();
/// assert_eq!(cancelable_http::query_param(&req, "steps").as_deref(), Some("5"));
/// assert_eq!(cancelable_http::query_param(&req, "name").as_deref(), Some("a b c"));
/// assert_eq!(cancelable_http::query_param(&req, "odd").as_deref(), Some("% 5"));
/// assert_eq!(cancelable_http::query_param(&req, "other"), None);
/// ```
pub fn query_param<B>(req: &Request<B>, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
