//! [`Router`]: paths (matched by `matchit`, `{name}` segments) and methods to handlers, with
//! per-route timeouts and tracking, and JSON errors for what matches nothing (`404`, `405`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cancelable::Operation;
use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderValue};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};

use crate::policy;
use crate::request::RequestContext;
use crate::response::{Body, HttpError};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A handler whose future renders its error already: one allocation per request for the
/// handler's future, and none more to map its output.
type Handler<S> = Arc<dyn Fn(Request<Incoming>, S) -> BoxFuture<Response<Body>> + Send + Sync>;

/// What a handler returns: a response, or an error sent as `{"error": "..."}`.
pub type HandlerResult = Result<Response<Body>, HttpError>;

/// One route: a method, a path and a handler `async fn(Request<Incoming>, S) -> HandlerResult`
/// (`S` is the router's state), with options.
///
/// ```
/// use std::time::Duration;
/// use cancelable_http::{HandlerResult, Route, json};
/// use hyper::{Method, Request, StatusCode, body::Incoming};
///
/// async fn slow(_req: Request<Incoming>, _state: ()) -> HandlerResult {
///     Ok(json(StatusCode::OK, &serde_json::json!({"status": "completed"})))
/// }
/// let route = Route::new(Method::GET, "/slow", slow).timeout(Duration::from_secs(2)).tracked();
/// # let _ = route;
/// ```
pub struct Route<S> {
    method: Method,
    path: String,
    /// `"GET /path"`: the operation name of a tracked request, made once.
    name: String,
    handler: Handler<S>,
    timeout: Option<Duration>,
    tracked: bool,
}

impl<S> std::fmt::Debug for Route<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("tracked", &self.tracked)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    /// A route for `method` and `path` (`/jobs/{id}` captures a segment; read it with
    /// [`path_param`]).
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Route};
    /// # async fn get_job(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let route = Route::new(hyper::Method::GET, "/jobs/{id}", get_job);
    /// # let _ = route;
    /// ```
    pub fn new<H, Fut>(method: Method, path: impl Into<String>, handler: H) -> Self
    where
        H: Fn(Request<Incoming>, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let path = path.into();
        Self {
            name: format!("{method} {path}"),
            method,
            path,
            handler: Arc::new(move |req, state| {
                let fut = handler(req, state);
                Box::pin(async move { fut.await.unwrap_or_else(HttpError::into_response) })
            }),
            timeout: None,
            tracked: false,
        }
    }

    /// Cancels each request of this route with `Timeout` after `limit`: the handler is
    /// dropped and the client gets `504 {"error":"timeout"}`.
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Route};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let route = Route::new(hyper::Method::GET, "/", h).timeout(std::time::Duration::from_secs(30));
    /// # let _ = route;
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Runs each request of this route as an [`Operation`] (metadata `kind=request`, named
    /// `"GET /path"`) registered with the server, so it is listed by
    /// [`Server::operations`](crate::Server::operations) with its status, progress and reason,
    /// and [`cancelable::current()`] works inside the handler (report progress with
    /// `current().unwrap().report_progress(..)`).
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Route};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let route = Route::new(hyper::Method::GET, "/process", h).tracked();
    /// # let _ = route;
    /// ```
    pub fn tracked(mut self) -> Self {
        self.tracked = true;
        self
    }
}

/// The path parameters a route captured (`{id}`), in the request's extensions.
#[derive(Clone, Debug, Default)]
struct PathParams(Vec<(String, String)>);

/// The value of path parameter `name` of the route that matched `req`.
///
/// ```
/// let req = hyper::Request::new(());
/// assert_eq!(cancelable_http::path_param(&req, "id"), None);
/// ```
pub fn path_param<'r, B>(req: &'r Request<B>, name: &str) -> Option<&'r str> {
    let params = req.extensions().get::<PathParams>()?;
    params
        .0
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

struct Methods<S> {
    routes: Vec<Route<S>>,
    allow: HeaderValue,
}

/// Routes requests to handlers by path and method; a hyper `Service`. Unknown paths get
/// `404 {"error":"not found"}`, known paths with another method `405 {"error":"method not
/// allowed"}` with an `Allow` header. Before routing, each request is checked against the
/// server's request rules (see [`policy`](crate::policy): `400` for a missing, repeated or
/// unknown `Host`, `403` cross-origin, `415` a `POST` body that is not JSON, as configured).
/// `S` is state handed to every handler (cloned per request): put your `Jobs`, `Server`
/// handles and such in it.
///
/// ```
/// use cancelable_http::{HandlerResult, Router, json};
/// use hyper::{Request, StatusCode, body::Incoming};
///
/// async fn health(_req: Request<Incoming>, _state: ()) -> HandlerResult {
///     Ok(json(StatusCode::OK, &serde_json::json!({"status": "healthy"})))
/// }
/// let router = Router::new(()).get("/health", health);
/// # let _ = router;
/// ```
pub struct Router<S> {
    state: S,
    matcher: matchit::Router<usize>,
    paths: HashMap<String, usize>,
    methods: Vec<Methods<S>>,
}

impl<S> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("paths", &self.paths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router whose handlers get a clone of `state`.
    ///
    /// ```
    /// let router = cancelable_http::Router::new(());
    /// # let _ = router;
    /// ```
    pub fn new(state: S) -> Self {
        Self {
            state,
            matcher: matchit::Router::new(),
            paths: HashMap::new(),
            methods: Vec::new(),
        }
    }

    /// Adds `route`.
    ///
    /// # Panics
    ///
    /// If the path is not a valid `matchit` pattern or conflicts with another one (a
    /// programming error, found at start-up).
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Route, Router};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let router = Router::new(()).route(Route::new(hyper::Method::PUT, "/x", h));
    /// # let _ = router;
    /// ```
    pub fn route(mut self, route: Route<S>) -> Self {
        let slot = match self.paths.get(&route.path) {
            Some(&slot) => slot,
            None => {
                let slot = self.methods.len();
                if let Err(e) = self.matcher.insert(route.path.clone(), slot) {
                    panic!("invalid route {:?}: {e}", route.path);
                }
                self.paths.insert(route.path.clone(), slot);
                self.methods.push(Methods {
                    routes: Vec::new(),
                    allow: HeaderValue::from_static(""),
                });
                slot
            }
        };
        let methods = &mut self.methods[slot];
        methods.routes.retain(|r| r.method != route.method);
        methods.routes.push(route);
        let allow: Vec<&str> = methods.routes.iter().map(|r| r.method.as_str()).collect();
        methods.allow =
            HeaderValue::from_str(&allow.join(", ")).unwrap_or(HeaderValue::from_static(""));
        self
    }

    /// Adds a `GET` route.
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Router};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let router = Router::new(()).get("/", h);
    /// # let _ = router;
    /// ```
    pub fn get<H, Fut>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request<Incoming>, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Route::new(Method::GET, path, handler))
    }

    /// Adds a `POST` route.
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Router};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let router = Router::new(()).post("/jobs", h);
    /// # let _ = router;
    /// ```
    pub fn post<H, Fut>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request<Incoming>, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Route::new(Method::POST, path, handler))
    }

    /// Adds a `DELETE` route.
    ///
    /// ```
    /// # use cancelable_http::{HandlerResult, Router};
    /// # async fn h(_r: hyper::Request<hyper::body::Incoming>, _s: ()) -> HandlerResult { unimplemented!() }
    /// let router = Router::new(()).delete("/jobs/{id}", h);
    /// # let _ = router;
    /// ```
    pub fn delete<H, Fut>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request<Incoming>, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.route(Route::new(Method::DELETE, path, handler))
    }

    /// Freezes the router into a cheaply cloned hyper service.
    ///
    /// ```
    /// let service = cancelable_http::Router::new(()).into_service();
    /// let _copy = service.clone();
    /// ```
    pub fn into_service(self) -> RouterService<S> {
        RouterService {
            inner: Arc::new(self),
        }
    }

    fn dispatch(&self, mut req: Request<Incoming>) -> RouterFuture {
        // Borrowed: only a tracked route keeps the context (a clone) past the handler call.
        let cx = RequestContext::of(&req);
        if let Some(Err(refused)) = cx.map(|cx| policy::check(&req, cx.state())) {
            return ready(refused.into_response());
        }
        let (slot, params) = match self.matcher.at(req.uri().path()) {
            Ok(found) => {
                let params: Vec<(String, String)> = found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (*found.value, params)
            }
            Err(_) => return ready(HttpError::not_found("not found").into_response()),
        };
        let methods = &self.methods[slot];
        let Some(route) = methods.routes.iter().find(|r| r.method == req.method()) else {
            let mut response = HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .into_response();
            response.headers_mut().insert(ALLOW, methods.allow.clone());
            return ready(response);
        };
        if let (Some(limit), Some(cx)) = (route.timeout, cx) {
            cx.timeout(limit);
        }
        let tracked = cx.filter(|_| route.tracked).cloned();
        if !params.is_empty() {
            req.extensions_mut().insert(PathParams(params));
        }
        let fut = (route.handler)(req, self.state.clone());
        match tracked {
            Some(cx) => {
                let op = Operation::new(route.name.clone())
                    .parent(cx.token())
                    .metadata("kind", "request")
                    .register(&cx.state().requests)
                    .run(|_| async move { Ok(fut.await) });
                RouterFuture(Inner::Running(Box::pin(async move {
                    op.await
                        .unwrap_or_else(|cancelled| HttpError::from(cancelled).into_response())
                })))
            }
            None => RouterFuture(Inner::Running(fut)),
        }
    }
}

fn ready(response: Response<Body>) -> RouterFuture {
    RouterFuture(Inner::Ready(Some(response)))
}

/// The future of a [`RouterService`] call: the handler's, or an answer made without one
/// (`404`, `405`, a refused request).
///
/// ```
/// use cancelable_http::Router;
/// use hyper::service::Service as _;
///
/// let service = Router::new(()).into_service();
/// # let _ = |req: hyper::Request<hyper::body::Incoming>| {
/// let future: cancelable_http::RouterFuture = service.call(req);
/// # };
/// ```
pub struct RouterFuture(Inner);

enum Inner {
    /// Taken by the poll that returns it.
    Ready(Option<Response<Body>>),
    Running(BoxFuture<Response<Body>>),
}

impl Future for RouterFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Inner::Ready(response) => Poll::Ready(Ok(response
                .take()
                .expect("`RouterFuture` polled after completion"))),
            Inner::Running(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

impl std::fmt::Debug for RouterFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "done",
            Inner::Running(_) => "running",
        };
        f.debug_tuple("RouterFuture").field(&state).finish()
    }
}

/// A frozen [`Router`] as a hyper service (`Clone` shares it).
pub struct RouterService<S> {
    inner: Arc<Router<S>>,
}

impl<S> Clone for RouterService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for RouterService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<S: Clone + Send + Sync + 'static> Service<Request<Incoming>> for RouterService<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouterFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.inner.dispatch(req)
    }
}
