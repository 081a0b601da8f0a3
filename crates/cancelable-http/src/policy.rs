//! Request rules for servers that browsers can reach.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::Service;
use hyper::{Request, Response};
use pin_project_lite::pin_project;

use crate::Server;
use crate::response::HttpError;
use crate::server::State;

/// The host names a server answers: [`any`](AllowedHosts::any) name, or the
/// [`local`](AllowedHosts::local) ones plus names you add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// `None`: any host.
    names: Option<Vec<String>>,
}

impl AllowedHosts {
    /// Any `Host` is answered.
    pub fn any() -> Self {
        Self { names: None }
    }

    /// `localhost`, loopback IP literals and the addresses the server listens on.
    pub fn local() -> Self {
        Self {
            names: Some(Vec::new()),
        }
    }

    /// Also allows `name`.
    pub fn and(mut self, name: impl Into<String>) -> Self {
        if let Some(names) = &mut self.names {
            names.push(name.into());
        }
        self
    }

    /// `true` for [`any`](AllowedHosts::any).
    pub fn is_any(&self) -> bool {
        self.names.is_none()
    }
}

/// The addresses a server listens on.
#[derive(Debug, Default)]
pub(crate) struct Bound(Mutex<Vec<IpAddr>>);

impl Bound {
    pub(crate) fn add(&self, ip: IpAddr) {
        let mut ips = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
}

/// Checks `req` against the rules of `state`'s configuration.
pub(crate) fn check<B>(_req: &Request<B>, _state: &State) -> Result<(), HttpError> {
    Ok(())
}

/// Any hyper service behind the request rules of a server's [`ServerConfig`](crate::ServerConfig)
/// (made by [`Server::guard`]); the [`Router`](crate::Router) applies them itself.
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    state: Arc<State>,
}

impl Server {
    /// Puts `service` behind the request rules of this server's configuration: `Host`,
    /// cross-origin and content-type checks (see the [module docs](crate::policy)). The
    /// [`Router`](crate::Router) applies them itself; use this for other hyper services.
    pub fn guard<S>(&self, service: S) -> Guard<S> {
        Guard {
            inner: service,
            state: self.state().clone(),
        }
    }
}

impl<S, B, B2> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<B2>>,
{
    type Response = Response<Either<B2, Full<Bytes>>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        match check(&req, &self.state) {
            Ok(()) => GuardFuture {
                inner: Some(self.inner.call(req)),
                refused: None,
            },
            Err(refused) => GuardFuture {
                inner: None,
                refused: Some(refused),
            },
        }
    }
}

pin_project! {
    /// The future of a [`Guard`] call: the inner service's, or a refusal.
    #[derive(Debug)]
    pub struct GuardFuture<F> {
        #[pin]
        inner: Option<F>,
        refused: Option<HttpError>,
    }
}

impl<F, B, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(refused) = this.refused.take() {
            return Poll::Ready(Ok(refusal(&refused)));
        }
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx).map(|r| r.map(|r| r.map(Either::Left))),
            None => Poll::Pending,
        }
    }
}

/// The JSON response of a refused request.
fn refusal<B>(error: &HttpError) -> Response<Either<B, Full<Bytes>>> {
    let mut response = Response::new(Either::Right(Full::new(error.body_bytes())));
    *response.status_mut() = error.status();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
