//! The request layer as tower middleware (feature `tower`): [`CancelLayer`], made by
//! [`Server::cancel_layer`](crate::Server::cancel_layer), wraps any
//! `tower_service::Service<http::Request<B>>` into a [`RequestService`], with the meaning of
//! the hyper form described in the [`request`] docs: each request gets a
//! [`RequestContext`](crate::RequestContext) in its extensions; its token is cancelled with
//! `Disconnected` when the response future is dropped before it produced a response, a
//! timeout answers `504`, shutdown `503`, a declared body over the limit `413`. Readiness is the
//! inner service's.
//!
//! # Serving a tower stack
//!
//! [`Server::serve`](crate::Server::serve) takes hyper services; hyper-util's
//! `TowerToHyperService` turns a tower stack (an axum `Router`, a `ServiceBuilder` stack) into
//! one, and the stack then gets the server's limits, graceful shutdown and disconnect watch like
//! any hyper service. The layer may also sit inside the stack, under other middleware that
//! wants the context: a request keeps the context the server gave it, and is counted once.
//!
//! ```
//! use std::convert::Infallible;
//! use cancelable::CancellationToken;
//! use cancelable_http::{Server, ServerConfig, request_token};
//! use hyper::{Request, Response, body::Incoming};
//! use tower::ServiceBuilder;
//!
//! smol::block_on(async {
//!     let server = Server::new(ServerConfig::default());
//!     let stack = ServiceBuilder::new()
//!         .layer(server.cancel_layer())
//!         .service_fn(|req: Request<Incoming>| async move {
//!             let token = request_token(&req).expect("behind the layer");
//!             Ok::<_, Infallible>(Response::new(format!("cancelled: {}", token.is_cancelled())))
//!         });
//!     let listener = cancelable_http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!     let stop = CancellationToken::new();
//!     stop.cancel(); // a real server waits for a signal here
//!     let service = hyper_util::service::TowerToHyperService::new(stack);
//!     let report = server.serve(listener, service, &stop).await;
//!     assert!(report.stopped_in_time());
//! });
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{Request, Response};

use crate::request::{self, RequestFuture, RequestService};
use crate::server::State;

/// A `tower_layer::Layer` that wraps a service into a [`RequestService`], made by
/// [`Server::cancel_layer`](crate::Server::cancel_layer). `Clone` is cheap (one reference
/// count).
///
/// ```
/// use std::convert::Infallible;
/// use cancelable_http::{Server, ServerConfig, request_token};
/// use hyper::{Request, Response};
/// use tower::{Layer, ServiceExt};
///
/// let server = Server::new(ServerConfig::default());
/// let service = server.cancel_layer().layer(tower::service_fn(|req: Request<String>| async move {
///     let cancelled = request_token(&req).unwrap().is_cancelled();
///     Ok::<_, Infallible>(Response::new(format!("cancelled: {cancelled}")))
/// }));
/// let response = smol::block_on(service.oneshot(Request::new(String::new()))).unwrap();
/// assert_eq!(response.status(), 200);
/// ```
#[derive(Clone, Debug)]
pub struct CancelLayer {
    state: Arc<State>,
}

impl CancelLayer {
    pub(crate) fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

impl<S> tower_layer::Layer<S> for CancelLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService::new(inner, self.state.clone())
    }
}

impl<S, B, B2> tower_service::Service<Request<B>> for RequestService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<B2>>,
{
    type Response = Response<Either<B2, Full<Bytes>>>;
    type Error = S::Error;
    type Future = RequestFuture<S::Future, B2>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.parts_mut().0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (inner, state) = self.parts_mut();
        request::start(state, req, |req| inner.call(req))
    }
}
