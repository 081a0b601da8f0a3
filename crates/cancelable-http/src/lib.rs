//! HTTP integration for [`cancelable`]: request-scoped cancelation for services on hyper 1 and
//! smol, HTTP/1.1 and HTTP/2. Each request gets a token, a child of the server's, that is
//! cancelled with `Disconnected` when the client goes away (or, on HTTP/2, resets the stream),
//! `Timeout` after its route's limit (the client gets `504`), and `Shutdown` when the server
//! stops, so the handler and everything it started stop too. Around it: a server runner with
//! limits and graceful shutdown, a router, background
//! [`Jobs`] with cancel-by-id, and [SSE](sse) and [WebSocket](websocket) streams whose producer
//! stops within milliseconds of the peer leaving.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::CancellationToken;
//! use cancelable_http::{HandlerResult, RequestContext, Route, Router, Server, ServerConfig, json};
//! use hyper::{Method, Request, StatusCode, body::Incoming};
//!
//! async fn slow(req: Request<Incoming>, _state: ()) -> HandlerResult {
//!     let token = RequestContext::of(&req).unwrap().token().clone();
//!     // Dropped at once if the client leaves, the route times out or the server stops.
//!     smol::Timer::after(Duration::from_secs(60)).await;
//!     Ok(json(StatusCode::OK, &serde_json::json!({"cancelled": token.is_cancelled()})))
//! }
//!
//! smol::block_on(async {
//!     let server = Server::new(ServerConfig::default().grace(Duration::from_secs(1)));
//!     let router = Router::new(())
//!         .route(Route::new(Method::GET, "/slow", slow).timeout(Duration::from_millis(20)));
//!     let listener = cancelable_http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let stop = CancellationToken::new();
//!     let serving = smol::spawn({
//!         let (server, stop) = (server.clone(), stop.clone());
//!         async move { server.serve(listener, router.into_service(), &stop).await }
//!     });
//!
//!     // A client: the route's timeout answers 504 {"error":"timeout"}.
//!     use futures_lite::{AsyncReadExt, AsyncWriteExt};
//!     let mut tcp = smol::net::TcpStream::connect(addr).await.unwrap();
//!     tcp.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
//!     let mut reply = String::new();
//!     tcp.read_to_string(&mut reply).await.unwrap();
//!     assert!(reply.starts_with("HTTP/1.1 504"));
//!     assert!(reply.ends_with(r#"{"error":"timeout"}"#));
//!
//!     stop.cancel(); // graceful shutdown
//!     assert!(serving.await.stopped_in_time());
//!     assert_eq!(server.stats().cancelled_requests, 1);
//! });
//! ```
//!
//! # Pieces
//!
//! | item | what it does |
//! |---|---|
//! | [`Server`], [`ServerConfig`] | bind, accept, serve HTTP/1.1 and HTTP/2 (h2c) on one port; a disconnect seen whatever the client sent after its request, an HTTP/2 stream reset cancels its request; a bound on every phase (head, idle keep-alive, body, response), max connections, HTTP/2 streams per connection, max body size, max streams, WebSocket limits, the executor; graceful shutdown ([`server`] module docs) |
//! | [`Server::layer`] → [`RequestService`] | the request token for **any** hyper service, on any executor ([`request`] module docs) |
//! | `Server::cancel_layer` → `CancelLayer` | the same for **any** tower service: axum, tower-http stacks (feature `tower`, `tower` module docs) |
//! | [`RequestContext`], [`request_token`] | a handler's way to its token; [`RequestContext::timeout`] |
//! | [`Router`], [`Route`] | path + method routing (`404`/`405` as JSON), per-route timeouts, tracked routes |
//! | [`read_body`], [`read_json`], [`query_param`], [`path_param`] | input, with `400`/`413` errors |
//! | [`json`], [`html`], [`HttpError`] | output; a [`Cancelled`](cancelable::Cancelled) becomes `504`/`503` |
//! | [`Jobs`] | background jobs: random ids, list/get/cancel, history, concurrency limit (`429`) |
//! | [`sse`], [`websocket`] | streams that stop when the peer leaves, at most `max_streams` at once (`429`); WebSocket frame, message and idle limits (close `1009`, `1002`, `1007`, `1001`) |
//! | [`policy`], [`AllowedHosts`], [`Server::guard`] | for servers browsers reach: the `Host` allow-list against DNS rebinding, cross-origin and JSON-only rules against CSRF ([`policy`] module docs) |
//! | [`Server::stats`], [`Server::operations`] | counters and the live/finished operations for a dashboard |
//! | [`io`] | the hyper ↔ futures-io glue, a hyper timer on async-io, a hyper executor on smol |
//!
//! No tokio runtime anywhere: hyper uses tokio's `sync` part, and HTTP/2 (through `h2`) its
//! I/O traits, not its reactor, timers or tasks.
//!
//! # Features
//!
//! - `http2` (default): HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the same port,
//!   told apart by the connection preface (`curl --http2-prior-knowledge`; TLS and ALPN are the
//!   job of a proxy in front). Without it, the server speaks HTTP/1.1 only and hyper's HTTP/2
//!   code is not built.
//! - `tower`: `CancelLayer` and `Server::cancel_layer`, the layer as tower middleware, for
//!   axum's `Router` and `tower-http` stacks. Adds only `tower-layer` and `tower-service` (the
//!   trait crates, no runtime).
//! - `axum` (implies `tower`): [`RequestContext`] as an axum extractor
//!   (`async fn handler(cx: RequestContext)`) and [`HttpError`] as an axum response. Adds
//!   only `axum-core`, the crate where axum's extractor traits live.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
mod axum;
mod connection;
mod counter;
mod frame_limit;
#[cfg(feature = "http2")]
mod http2;
pub mod io;
mod jobs;
pub mod policy;
pub mod request;
mod response;
mod router;
pub mod server;
mod stream;
#[cfg(feature = "tower")]
pub mod tower;

pub use async_tungstenite::tungstenite::Message;
pub use jobs::{CancelOutcome, JobError, JobInfo, Jobs};
pub use policy::{AllowedHosts, Guard};
pub use request::{
    RequestContext, RequestFuture, RequestService, query_param, read_body, read_json, request_token,
};
pub use response::{Body, BoxError, HttpError, full, html, json};
pub use router::{HandlerResult, Route, Router, RouterFuture, RouterService, path_param};
pub use server::{OperationInfo, ProgressInfo, Server, ServerConfig, ServerStats, bind};
pub use stream::{Closed, Event, EventSender, WsSender, sse, websocket};
#[cfg(feature = "tower")]
pub use tower::CancelLayer;
