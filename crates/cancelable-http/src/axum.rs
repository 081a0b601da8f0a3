//! axum glue (feature `axum`): [`RequestContext`] is an extractor, and [`HttpError`] a response,
//! through the traits of `axum-core` (the crate axum re-exports them from, which pulls in
//! neither axum's router nor a runtime).
//!
//! ```
//! use std::time::Duration;
//! use cancelable_http::{RequestContext, Server, ServerConfig};
//!
//! // Dropped at once when the client leaves; 504 after 2 s.
//! async fn slow(cx: RequestContext) -> &'static str {
//!     cx.timeout(Duration::from_secs(2));
//!     smol::Timer::after(Duration::from_secs(60)).await;
//!     "done"
//! }
//!
//! let server = Server::new(ServerConfig::default());
//! let app: axum::Router = axum::Router::new()
//!     .route("/slow", axum::routing::get(slow))
//!     .layer(server.cancel_layer());
//! # let _ = app;
//! ```

use axum_core::extract::FromRequestParts;
use axum_core::response::IntoResponse;
use hyper::http::request::Parts;

use crate::{HttpError, RequestContext};

/// Extracts the request's context; without one (a route not behind
/// [`Server::cancel_layer`](crate::Server::cancel_layer) or [`Server::serve`](crate::Server::serve)),
/// the request is refused with `500 {"error": "..."}`: a wiring mistake, not the client's.
///
/// ```
/// use axum_core::extract::FromRequestParts;
/// use cancelable_http::{RequestContext, Server, ServerConfig};
///
/// let server = Server::new(ServerConfig::default());
/// let (mut parts, ()) = hyper::Request::new(()).into_parts();
/// parts.extensions.insert(server.context());
/// let cx = smol::block_on(RequestContext::from_request_parts(&mut parts, &())).unwrap();
/// assert!(!cx.token().is_cancelled());
/// ```
impl<S: Sync> FromRequestParts<S> for RequestContext {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HttpError> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| {
                HttpError::internal(
                    "the request has no cancelation context: put the route behind \
                 Server::cancel_layer() or serve it with Server::serve",
                )
            })
    }
}

/// The `{"error": "..."}` response of [`HttpError::into_response`], for axum handlers that
/// return `Result<_, HttpError>`.
///
/// ```
/// use axum_core::response::IntoResponse;
/// let response = IntoResponse::into_response(cancelable_http::HttpError::not_found("no such job"));
/// assert_eq!(response.status(), 404);
/// ```
impl IntoResponse for HttpError {
    fn into_response(self) -> axum_core::response::Response {
        HttpError::into_response(self).map(axum_core::body::Body::new)
    }
}
