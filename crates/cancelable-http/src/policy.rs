//! Request rules for servers that browsers can reach: they stop a web page on another site
//! from using your server through its visitors' browsers. The [`Router`](crate::Router)
//! applies them to every request before routing; put any other hyper service behind them with
//! [`Server::guard`].
//!
//! | rule | setting ([`ServerConfig`](crate::ServerConfig)) | a client past it gets |
//! |---|---|---|
//! | an HTTP/1.1 request has one well-formed `Host`, an HTTP/2 one an `:authority` (or a `Host`) | always | `400` |
//! | the `Host` is a name the server answers | `allowed_hosts` ([`AllowedHosts::any`] by default) | `400` |
//! | a request that changes state comes from the same origin | `cross_origin_protection` (off) | `403` |
//! | a WebSocket handshake comes from the same origin | `cross_origin_protection` (off) | `403` |
//! | a `POST` body is JSON | `require_json_posts` (off) | `415` |
//!
//! Why each one:
//! * **DNS rebinding.** A page on `evil.example` can have its name resolve to `127.0.0.1`
//!   once loaded; the visitor's browser then sends the page's requests to a server on the
//!   visitor's machine as same-origin requests, and reads the answers. Those requests carry
//!   `Host: evil.example`: a server that answers only its own names
//!   ([`AllowedHosts::local`]: `localhost`, loopback IP literals, the addresses it listens on,
//!   and the names you add) refuses them. The port is not compared.
//! * **Cross-site request forgery.** Without asking the server first (no CORS preflight), a page
//!   on another site can make the browser send a form (`application/x-www-form-urlencoded`,
//!   `multipart/form-data`, `text/plain`) or a `fetch` with those types; the page cannot read
//!   the answer, but the request has its effect. With `require_json_posts`, such a `POST` gets
//!   `415`: a cross-site JSON `POST` needs a preflight, which this server never grants. With
//!   `cross_origin_protection`, a request whose method changes state (anything but `GET`,
//!   `HEAD` and `OPTIONS`) is refused when the browser says it comes from another site
//!   (`Sec-Fetch-Site: cross-site` or `same-site`, sent by every browser since 2023) or, from
//!   older browsers, when its `Origin` is not the request's `Host`. Clients that are not
//!   browsers send neither header and pass: `curl -X DELETE` works as before.
//! * **Cross-site WebSocket hijacking.** A WebSocket handshake is a `GET` that browsers send
//!   to any site without a preflight, with the page's `Origin`; with
//!   `cross_origin_protection`, an `Origin` other than the request's `Host` gets `403`.
//!
//! ```
//! use cancelable_http::{AllowedHosts, ServerConfig};
//!
//! // The settings of the web_app demo: only local names, no cross-site requests.
//! let config = ServerConfig::default()
//!     .allowed_hosts(AllowedHosts::local().and("dashboard.example"))
//!     .cross_origin_protection(true)
//!     .require_json_posts(true);
//! # let _ = config;
//! ```

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, ORIGIN, TRANSFER_ENCODING, UPGRADE,
};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};
use pin_project_lite::pin_project;

use crate::Server;
use crate::response::HttpError;
use crate::server::State;

/// The host names a server answers ([`ServerConfig::allowed_hosts`](crate::ServerConfig::allowed_hosts)):
/// [`any`](AllowedHosts::any) name, or the [`local`](AllowedHosts::local) ones and names
/// you add. Names compare without case, a trailing dot and the port.
///
/// ```
/// use cancelable_http::AllowedHosts;
/// assert!(AllowedHosts::any().is_any());
/// assert!(!AllowedHosts::local().and("app.example").is_any());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// `None`: any host. Otherwise the names added to the local ones.
    names: Option<Vec<String>>,
}

impl AllowedHosts {
    /// Any `Host` is answered (the default: a server behind a proxy or on a public name).
    ///
    /// ```
    /// assert_eq!(cancelable_http::AllowedHosts::any(), Default::default());
    /// ```
    pub fn any() -> Self {
        Self { names: None }
    }

    /// `localhost`, loopback IP literals (`127.0.0.0/8`, `[::1]`) and the addresses the server
    /// listens on (any IP literal when it listens on `0.0.0.0` or `[::]`): what a server for
    /// this machine, or this network by address, needs.
    ///
    /// ```
    /// let _ = cancelable_http::AllowedHosts::local();
    /// ```
    pub fn local() -> Self {
        Self {
            names: Some(Vec::new()),
        }
    }

    /// Also answers `name` (a host name, or an IP literal such as `192.0.2.7` or `[2001:db8::7]`;
    /// no port). Has no effect on [`any`](AllowedHosts::any).
    ///
    /// ```
    /// let hosts = cancelable_http::AllowedHosts::local().and("app.example").and("192.0.2.7");
    /// # let _ = hosts;
    /// ```
    pub fn and(mut self, name: impl Into<String>) -> Self {
        if let Some(names) = &mut self.names {
            names.push(name.into());
        }
        self
    }

    /// `true` for [`any`](AllowedHosts::any).
    ///
    /// ```
    /// assert!(!cancelable_http::AllowedHosts::local().is_any());
    /// ```
    pub fn is_any(&self) -> bool {
        self.names.is_none()
    }

    fn allows(&self, host: &[u8], bound: &Bound) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        let host = without_dot(host);
        if host.eq_ignore_ascii_case(b"localhost")
            || names
                .iter()
                .any(|name| without_dot(name.as_bytes()).eq_ignore_ascii_case(host))
        {
            return true;
        }
        // IP literals are no names a rebinding attacker controls, but a request for another
        // address than ours is not meant for us either.
        ip_literal(host).is_some_and(|ip| ip.to_canonical().is_loopback() || bound.has(ip))
    }
}

fn without_dot(name: &[u8]) -> &[u8] {
    name.strip_suffix(b".").unwrap_or(name)
}

fn ip_literal(host: &[u8]) -> Option<IpAddr> {
    let host = std::str::from_utf8(host).ok()?;
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// The addresses a server listens on (each [`Server::serve`] adds its listener's).
#[derive(Debug, Default)]
pub(crate) struct Bound(Mutex<Vec<IpAddr>>);

impl Bound {
    pub(crate) fn add(&self, ip: IpAddr) {
        let mut ips = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }

    /// Whether a request for `ip` reaches one of our listeners.
    fn has(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let ips = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ips.iter()
            .any(|bound| bound.is_unspecified() || bound.to_canonical() == ip)
    }
}

/// A request target's authority (`host[:port]`), checked against RFC 3986's grammar (so
/// ASCII only).
#[derive(Clone, Copy)]
struct Authority<'a> {
    /// All of it, as sent.
    full: &'a [u8],
    /// The host, an IPv6 literal with its brackets.
    host: &'a [u8],
}

impl<'a> Authority<'a> {
    /// Parses `bytes`, `None` if they are not a valid authority without user info. Written
    /// out, in one pass over the bytes, because it runs on every request:
    /// `http::uri::Authority` would copy the bytes first.
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (host_end, port) = if bytes.first() == Some(&b'[') {
            let close = bytes.iter().position(|&b| b == b']')?;
            std::str::from_utf8(&bytes[1..close])
                .ok()?
                .parse::<Ipv6Addr>()
                .ok()?;
            match &bytes[close + 1..] {
                [] => (close + 1, &[][..]),
                [b':', port @ ..] => (close + 1, port),
                _ => return None,
            }
        } else {
            let mut host_end = bytes.len();
            for (i, &b) in bytes.iter().enumerate() {
                if b == b':' {
                    host_end = i;
                    break;
                }
                if !REG_NAME[usize::from(b)] {
                    return None;
                }
            }
            (host_end, bytes.get(host_end + 1..).unwrap_or_default())
        };
        if !port.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(Self {
            full: bytes,
            host: &bytes[..host_end],
        })
    }
}

/// The bytes of RFC 3986's `reg-name`: unreserved, sub-delims and `%` (of percent-encoding).
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        b += 1;
    }
    table
};

/// Checks `req` against the rules of `state`'s configuration (see the module docs).
pub(crate) fn check<B>(req: &Request<B>, state: &State) -> Result<(), HttpError> {
    let config = &state.config;
    let headers = req.headers();
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HttpError::bad_request("more than one Host header"));
    }
    let host = match host {
        Some(value) => Some(
            Authority::parse(value.as_bytes())
                .ok_or_else(|| HttpError::bad_request("malformed Host header"))?,
        ),
        None if req.version() == Version::HTTP_11 => {
            return Err(HttpError::bad_request(
                "missing Host header (HTTP/1.1 requires it)",
            ));
        }
        // HTTP/2 and later name the host in the `:authority` pseudo-header (the target's
        // authority below), a Host header only in its place (RFC 9113, section 8.3.1).
        None if req.version() > Version::HTTP_11 && req.uri().authority().is_none() => {
            return Err(HttpError::bad_request(
                "missing :authority (HTTP/2 requires it, or a Host header)",
            ));
        }
        None => None,
    };
    // An absolute-form request target names the host; Host is then ignored (RFC 9112,
    // section 3.2.2).
    let target = match req.uri().authority() {
        Some(authority) => Authority::parse(authority.as_str().as_bytes()),
        None => host,
    };
    if let Some(target) = target {
        if !config.allowed_hosts.allows(target.host, &state.bound) {
            return Err(HttpError::bad_request(format!(
                "unknown host {:?}: this server does not answer for it",
                String::from_utf8_lossy(target.host)
            )));
        }
    }
    if config.cross_origin_protection {
        check_origin(req, target)?;
    }
    if config.require_json_posts
        && req.method() == Method::POST
        && has_body(headers)
        && !is_json(headers)
    {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST bodies must be JSON: send Content-Type: application/json",
        ));
    }
    Ok(())
}

fn check_origin<B>(req: &Request<B>, target: Option<Authority<'_>>) -> Result<(), HttpError> {
    let headers = req.headers();
    let refused = |why: &'static str| Err(HttpError::new(StatusCode::FORBIDDEN, why));
    // A WebSocket handshake is judged by its Origin alone: the header every browser sends
    // with it, and the check RFC 6455 gives servers.
    let websocket = req.method() == Method::GET && has_token(headers, UPGRADE, "websocket");
    if !websocket {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
            Some(b"same-origin" | b"none") => return Ok(()),
            Some(_) => return refused("cross-origin request refused (Sec-Fetch-Site)"),
            None => {}
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(()); // not a browser, or one too old to say
    };
    // `scheme://host[:port]`; its authority must be the request's, port included.
    let same = std::str::from_utf8(origin.as_bytes())
        .ok()
        .and_then(|o| o.split_once("://"))
        .zip(target)
        .is_some_and(|((_, authority), target)| {
            authority.as_bytes().eq_ignore_ascii_case(target.full)
        });
    if same {
        Ok(())
    } else if websocket {
        refused("cross-origin WebSocket refused: Origin does not match Host")
    } else {
        refused("cross-origin request refused: Origin does not match Host")
    }
}

/// Whether a header lists `token` (comma-separated, any case).
pub(crate) fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
}

/// `application/json` or another `application/*+json` type, any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.is_char_boundary(subtype.len() - 5)
                && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
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
            return Poll::Ready(Ok(crate::request::small_response(refused)));
        }
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx).map(|r| r.map(|r| r.map(Either::Left))),
            None => Poll::Pending,
        }
    }
}
