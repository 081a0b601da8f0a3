//! The tower form of the request layer: `Server::cancel_layer()` wraps any
//! `tower_service::Service<http::Request<B>>` with the meaning of the hyper form (a context in
//! the extensions; `disconnected` when the response future is dropped before a response; 504 on
//! timeout, 503 on shutdown, 413 over the body limit), and `Server::serve` runs a tower stack
//! through hyper-util's adapter with the same disconnect detection, counted once even when the
//! stack carries the layer itself.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::io::{BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancellationToken};
use cancelable_http::{CancelLayer, RequestContext, Server, ServerConfig, request_token};
use common::{LONG, TestServer, read_response, request_text, signal};
use http_body_util::BodyExt as _;
use hyper::{Request, Response, StatusCode};
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};

type Reply = Result<Response<String>, Infallible>;

/// Answers with whether the request carries a context, and its token's state.
async fn echo<B>(req: Request<B>) -> Reply {
    let answer = match request_token(&req) {
        Some(token) => format!("token cancelled: {}", token.is_cancelled()),
        None => "no context".to_owned(),
    };
    Ok(Response::new(answer))
}

fn text<B: hyper::body::Body>(response: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    let bytes = smol::block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn the_layer_gives_each_request_of_a_tower_service_a_context() {
    let server = Server::new(ServerConfig::default());
    let layer: CancelLayer = server.cancel_layer();
    let service = layer.layer(tower::service_fn(echo::<String>));
    let response = smol::block_on(service.oneshot(Request::new(String::new()))).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response), "token cancelled: false");
    let stats = server.stats();
    assert_eq!((stats.completed_requests, stats.active_requests), (1, 0));
}

#[test]
fn dropping_the_response_future_before_a_response_cancels_with_disconnected() {
    let server = Server::new(ServerConfig::default());
    let (started, started_rx) = signal::<CancellationToken>();
    let service = ServiceBuilder::new()
        .layer(server.cancel_layer())
        .service_fn(move |req: Request<()>| {
            started.send(request_token(&req).unwrap().clone()).unwrap();
            std::future::pending::<Reply>()
        });
    let mut call = Box::pin(service.oneshot(Request::new(())));
    let waker = std::task::Waker::noop();
    assert!(
        call.as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    let token = started_rx.try_recv().expect("the service was called");
    assert_eq!(server.stats().active_requests, 1);
    drop(call);
    assert_eq!(token.reason().unwrap().kind(), CancelKind::Disconnected);
    let stats = server.stats();
    assert_eq!((stats.cancelled_requests, stats.active_requests), (1, 0));
}

#[test]
fn a_request_that_times_out_gets_504_and_one_cut_by_shutdown_gets_503() {
    let server = Server::new(ServerConfig::default());
    let service = ServiceBuilder::new()
        .layer(server.cancel_layer())
        .service_fn(|req: Request<()>| async move {
            if req.uri().path() == "/timeout" {
                RequestContext::of(&req)
                    .unwrap()
                    .timeout(Duration::from_millis(1));
            }
            std::future::pending::<Reply>().await
        });
    let timed_out = smol::block_on(
        service
            .clone()
            .oneshot(Request::get("/timeout").body(()).unwrap()),
    )
    .unwrap();
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(text(timed_out), r#"{"error":"timeout"}"#);

    let stopping = smol::block_on(async {
        let call = smol::spawn(service.oneshot(Request::get("/other").body(()).unwrap()));
        while server.stats().active_requests == 0 {
            smol::future::yield_now().await;
        }
        server
            .token()
            .cancel_with(cancelable::CancelReason::shutdown());
        call.await.unwrap()
    });
    assert_eq!(stopping.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.stats().cancelled_requests, 2);
}

#[test]
fn a_body_over_the_limit_gets_413_and_the_service_is_not_called() {
    let server = Server::new(ServerConfig::default().max_body_size(10));
    let service = server
        .cancel_layer()
        .layer(tower::service_fn(|_req: Request<String>| async {
            panic!("the service must not be called");
            #[allow(unreachable_code)]
            Reply::Ok(Response::new(String::new()))
        }));
    let request = Request::post("/")
        .header("content-length", "11")
        .body("x".repeat(11))
        .unwrap();
    let response = smol::block_on(service.oneshot(request)).unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// Ready only while its gate is open.
#[derive(Clone)]
struct Gate(Arc<AtomicBool>);

impl tower::Service<Request<()>> for Gate {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Reply>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.0.load(Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

#[test]
fn readiness_is_the_inner_services() {
    let server = Server::new(ServerConfig::default());
    let open = Arc::new(AtomicBool::new(false));
    let mut service = server.cancel_layer().layer(Gate(open.clone()));
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(tower::Service::poll_ready(&mut service, &mut cx).is_pending());
    open.store(true, Relaxed);
    assert!(matches!(
        tower::Service::poll_ready(&mut service, &mut cx),
        Poll::Ready(Ok(()))
    ));
    let response = smol::block_on(tower::Service::call(&mut service, Request::new(()))).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A tower stack served by `Server::serve` through hyper-util's adapter, with the layer in the
/// stack too: `/hold` never answers, anything else echoes.
fn tower_server(started: std::sync::mpsc::SyncSender<CancellationToken>) -> TestServer {
    let server = Server::new(ServerConfig::default());
    let stack = ServiceBuilder::new()
        .layer(server.cancel_layer())
        .service_fn(move |req: Request<hyper::body::Incoming>| {
            let started = started.clone();
            async move {
                if req.uri().path() == "/hold" {
                    started.send(request_token(&req).unwrap().clone()).unwrap();
                    std::future::pending::<()>().await;
                }
                echo(req).await
            }
        });
    TestServer::start_service(server, hyper_util::service::TowerToHyperService::new(stack))
}

#[test]
fn serve_runs_a_tower_stack_and_counts_each_request_once() {
    let (started, _started_rx) = signal();
    let t = tower_server(started);
    for _ in 0..3 {
        let response = t.get("/echo");
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "token cancelled: false")
        );
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.completed_requests, stats.cancelled_requests),
        (3, 0),
        "{stats:?}"
    );
}

#[test]
fn a_client_leaving_a_tower_stack_cancels_its_token_within_100ms() {
    let (started, started_rx) = signal();
    let t = tower_server(started);
    for _ in 0..5 {
        let mut stream = t.connect();
        // A stray CRLF after the request: the server's own watch sees the close anyway.
        let mut bytes = request_text("GET", "/hold", None, false);
        bytes.push_str("\r\n");
        stream.write_all(bytes.as_bytes()).unwrap();
        let token = started_rx.recv_timeout(LONG).expect("the handler started");
        let closed = Instant::now();
        drop(stream);
        smol::block_on(async {
            futures_lite::future::or(token.cancelled(), async {
                smol::Timer::after(LONG).await;
            })
            .await;
        });
        let latency = closed.elapsed();
        assert_eq!(token.reason().unwrap().kind(), CancelKind::Disconnected);
        assert!(latency < Duration::from_millis(100), "{latency:?}");
    }
    t.until("every request counted", |s| s.stats().active_requests == 0);
    let stats = t.server.stats();
    assert_eq!(
        (stats.cancelled_requests, stats.completed_requests),
        (5, 0),
        "{stats:?}"
    );
}

#[test]
fn the_same_request_keeps_its_token_through_two_layers_of_one_server() {
    let server = Server::new(ServerConfig::default());
    let (seen, seen_rx) = signal::<CancellationToken>();
    let inner = ServiceBuilder::new()
        .layer(server.cancel_layer())
        .service_fn(move |req: Request<()>| {
            seen.send(request_token(&req).unwrap().clone()).unwrap();
            async { Reply::Ok(Response::new(String::new())) }
        });
    let outer_token = {
        let (outer_seen, outer_rx) = signal::<CancellationToken>();
        let outer = server
            .cancel_layer()
            .layer(tower::service_fn(move |req: Request<()>| {
                outer_seen
                    .send(request_token(&req).unwrap().clone())
                    .unwrap();
                inner.clone().oneshot(req)
            }));
        smol::block_on(outer.oneshot(Request::new(()))).unwrap();
        outer_rx.try_recv().unwrap()
    };
    let inner_token = seen_rx.try_recv().unwrap();
    assert_eq!(inner_token, outer_token, "one request, one token");
    assert_eq!(server.stats().completed_requests, 1, "counted once");
}

#[test]
fn a_keep_alive_connection_serves_a_tower_stack_in_order() {
    let (started, _started_rx) = signal();
    let t = tower_server(started);
    let stream = t.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..3 {
        (&stream)
            .write_all(request_text("GET", "/echo", None, false).as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
    }
}

#[cfg(feature = "axum")]
#[test]
fn axum_handlers_extract_the_request_context() {
    use axum_core::extract::FromRequestParts as _;
    let server = Server::new(ServerConfig::default());
    let (mut parts, ()) = Request::new(()).into_parts();
    let missing = smol::block_on(RequestContext::from_request_parts(&mut parts, &()));
    let rejection = missing.expect_err("no layer, no context");
    assert!(
        rejection.to_string().contains("cancel_layer"),
        "{rejection}"
    );
    parts.extensions.insert(server.context());
    let cx = smol::block_on(RequestContext::from_request_parts(&mut parts, &())).unwrap();
    assert!(!cx.token().is_cancelled());
}
