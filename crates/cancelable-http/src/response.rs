//! Responses: the [`Body`] type handlers return, JSON helpers and [`HttpError`], the error a
//! handler returns with `?` (bad input, limits, cancelation), rendered as `{"error": "..."}`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use bytes::Bytes;
use cancelable::{CancelKind, Cancelled};
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// Errors a streaming [`Body`] may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of the responses of [`Router`](crate::Router) handlers: a boxed body, so a handler
/// can return a fixed JSON document or a stream (see [`sse`](crate::sse)) with one type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A [`Body`] holding `bytes`.
///
/// ```
/// let body = cancelable_http::full("hello");
/// # let _ = body;
/// ```
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A response with `status` and `value` serialised as JSON (`content-type: application/json`).
///
/// ```
/// use hyper::StatusCode;
/// let response = cancelable_http::json(StatusCode::ACCEPTED, &serde_json::json!({"job_id": "ab12"}));
/// assert_eq!(response.status(), 202);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, bytes, "application/json"),
        Err(e) => {
            HttpError::internal(format!("cannot serialise the response: {e}")).into_response()
        }
    }
}

/// A `200` response with an HTML page (`content-type: text/html; charset=utf-8`).
///
/// ```
/// let page = cancelable_http::html("<!doctype html><title>hi</title>");
/// assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
/// ```
pub fn html(page: &'static str) -> Response<Body> {
    with_type(StatusCode::OK, page, "text/html; charset=utf-8")
}

fn with_type(
    status: StatusCode,
    bytes: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An HTTP error: a status and a message, sent as `{"error": message}` (plus `"reason"` for
/// cancelations). Handlers of a [`Router`](crate::Router) return it with `?`.
///
/// A [`Cancelled`] converts by its reason: `Timeout` → `504 {"error":"timeout"}`, `Shutdown` →
/// `503 {"error":"shutting down"}`, `Disconnected` → `499` (nobody reads it), anything else →
/// `503 {"error":"cancelled"}`.
///
/// ```
/// use cancelable::{CancelReason, Cancelled};
/// use cancelable_http::HttpError;
///
/// let err = HttpError::from(Cancelled::new(CancelReason::timeout()));
/// assert_eq!(err.status(), 504);
/// assert_eq!(err.message(), "timeout");
/// assert_eq!(HttpError::not_found("no such job").status(), 404);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    message: Cow<'static, str>,
    reason: Option<CancelKind>,
}

impl HttpError {
    /// An error with any status.
    ///
    /// ```
    /// let err = cancelable_http::HttpError::new(hyper::StatusCode::CONFLICT, "job already finished");
    /// assert_eq!(err.status(), 409);
    /// ```
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            reason: None,
        }
    }

    /// `400 Bad Request`.
    ///
    /// ```
    /// assert_eq!(cancelable_http::HttpError::bad_request("steps must be 1..=10000").status(), 400);
    /// ```
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    ///
    /// ```
    /// assert_eq!(cancelable_http::HttpError::not_found("not found").status(), 404);
    /// ```
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `500 Internal Server Error`.
    ///
    /// ```
    /// assert_eq!(cancelable_http::HttpError::internal("oops").status(), 500);
    /// ```
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status code.
    ///
    /// ```
    /// assert_eq!(cancelable_http::HttpError::bad_request("x").status(), hyper::StatusCode::BAD_REQUEST);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message (the `"error"` field).
    ///
    /// ```
    /// assert_eq!(cancelable_http::HttpError::bad_request("bad").message(), "bad");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: `{"error": message}`, plus `"reason"` (snake case) for a cancelation.
    ///
    /// ```
    /// let response = cancelable_http::HttpError::not_found("not found").into_response();
    /// assert_eq!(response.status(), 404);
    /// ```
    pub fn into_response(self) -> Response<Body> {
        with_type(self.status, self.body_bytes(), "application/json")
    }

    /// The JSON document of [`into_response`](HttpError::into_response).
    pub(crate) fn body_bytes(&self) -> Bytes {
        #[derive(serde::Serialize)]
        struct Repr<'a> {
            error: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'static str>,
        }
        let repr = Repr {
            error: &self.message,
            // A timeout is exactly `{"error":"timeout"}`: clients match on it.
            reason: self
                .reason
                .filter(|kind| *kind != CancelKind::Timeout)
                .map(CancelKind::as_str),
        };
        serde_json::to_vec(&repr)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

impl From<Cancelled> for HttpError {
    fn from(cancelled: Cancelled) -> Self {
        let kind = cancelled.reason().kind();
        let (status, message) = match kind {
            CancelKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            CancelKind::Shutdown => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
            CancelKind::Disconnected => (client_closed(), "client disconnected"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        };
        Self {
            status,
            message: Cow::Borrowed(message),
            reason: Some(kind),
        }
    }
}

/// 499, nginx's "client closed request": what a request cancelled by its client's disconnect
/// answers (nobody reads it; it shows in logs).
fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}
