//! The request rules for servers browsers can reach, over real sockets: `Host` syntax (always),
//! the `Host` allow-list against DNS rebinding, cross-origin protection and JSON-only posts
//! against CSRF, a foreign `Origin` on a WebSocket handshake; through the `Router` and through
//! `Server::guard` around any hyper service.

mod common;

use std::convert::Infallible;
use std::io::{BufReader, Write};

use cancelable_http::{AllowedHosts, HandlerResult, Router, Server, ServerConfig, json, websocket};
use common::{Response, TestServer, read_head, read_response};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

async fn hello(_req: Request<Incoming>, _state: ()) -> HandlerResult {
    Ok(json(StatusCode::OK, &serde_json::json!({"hello": "world"})))
}

async fn ws(mut req: Request<Incoming>, _state: ()) -> HandlerResult {
    websocket(&mut req, "ws", |_cx, _tx| std::future::pending())
}

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config, |_| {
        Router::new(())
            .get("/hello", hello)
            .post("/hello", hello)
            .delete("/hello", hello)
            .get("/ws", ws)
    })
}

/// The browser-facing rules on, as the web_app demo has them.
fn strict() -> ServerConfig {
    ServerConfig::default()
        .allowed_hosts(AllowedHosts::local().and("app.example"))
        .cross_origin_protection(true)
        .require_json_posts(true)
}

/// Sends `head` (request line and header lines, without the blank line) and `body`.
fn send(t: &TestServer, head: &str, body: &str) -> Response {
    let mut stream = t.connect();
    let mut text = format!("{head}\r\nconnection: close\r\n");
    if !body.is_empty() {
        text.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    read_response(&mut BufReader::new(stream)).expect("a response")
}

fn assert_refused(response: &Response, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    assert!(
        response.json()["error"].is_string(),
        "{what}: a JSON error: {response:?}"
    );
}

#[test]
fn http_1_1_request_without_host_gets_400() {
    let t = start(ServerConfig::default());
    assert_refused(&send(&t, "GET /hello HTTP/1.1", ""), 400, "no Host");
    // HTTP/1.0 has no Host requirement.
    assert_eq!(send(&t, "GET /hello HTTP/1.0", "").status, 200);
}

#[test]
fn request_with_two_host_headers_gets_400() {
    let t = start(ServerConfig::default());
    let r = send(
        &t,
        "GET /hello HTTP/1.1\r\nhost: a.example\r\nhost: b.example",
        "",
    );
    assert_refused(&r, 400, "two Host headers");
    let r = send(
        &t,
        "GET /hello HTTP/1.1\r\nhost: a.example\r\nhost: a.example",
        "",
    );
    assert_refused(&r, 400, "the same Host twice");
}

#[test]
fn malformed_host_gets_400() {
    let t = start(ServerConfig::default());
    for host in [
        "a b",
        "user@a.example",
        "a.example:port",
        "[::1",
        "a/b",
        "[a.example]",
    ] {
        let r = send(&t, &format!("GET /hello HTTP/1.1\r\nhost: {host}"), "");
        assert_refused(&r, 400, &format!("Host {host:?}"));
    }
}

#[test]
fn any_host_is_answered_by_default() {
    let t = start(ServerConfig::default());
    for host in ["evil.example", "localhost:1", "10.1.2.3"] {
        let r = send(&t, &format!("GET /hello HTTP/1.1\r\nhost: {host}"), "");
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
}

#[test]
fn local_hosts_answer_localhost_loopback_literals_and_added_names_only() {
    let t = start(strict());
    let port = t.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        "127.8.9.10:1".to_owned(),
        "localhost".to_owned(),
        "LocalHost:99".to_owned(),
        "localhost.".to_owned(),
        "[::1]".to_owned(),
        "[::1]:8080".to_owned(),
        "app.example".to_owned(),
        "APP.example:443".to_owned(),
    ] {
        let r = send(&t, &format!("GET /hello HTTP/1.1\r\nhost: {host}"), "");
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
    for host in [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "app.example.evil",
        "10.1.2.3",
        "[2001:db8::1]:80",
    ] {
        let r = send(&t, &format!("GET /hello HTTP/1.1\r\nhost: {host}"), "");
        assert_refused(&r, 400, &format!("Host {host}"));
    }
    // The absolute form's authority is what counts, not the Host header.
    let r = send(
        &t,
        "GET http://evil.example/hello HTTP/1.1\r\nhost: localhost",
        "",
    );
    assert_refused(&r, 400, "absolute-form target on another host");
}

#[test]
fn cross_origin_posts_and_deletes_get_403() {
    let t = start(strict());
    let host = "host: localhost:8080\r\ncontent-type: application/json";
    for (method, extra) in [
        ("POST", "origin: http://evil.example"),
        ("POST", "origin: http://localhost:9999"),
        ("POST", "origin: null"),
        ("DELETE", "origin: https://evil.example"),
        ("POST", "sec-fetch-site: cross-site"),
        ("DELETE", "sec-fetch-site: same-site"),
        // Sec-Fetch-Site wins over a matching Origin.
        (
            "POST",
            "sec-fetch-site: cross-site\r\norigin: http://localhost:8080",
        ),
    ] {
        let r = send(
            &t,
            &format!("{method} /hello HTTP/1.1\r\n{host}\r\n{extra}"),
            "{}",
        );
        assert_refused(&r, 403, &format!("{method} with {extra:?}"));
    }
    for (method, extra) in [
        ("POST", "origin: http://localhost:8080"),
        ("POST", "origin: http://LOCALHOST:8080"),
        ("DELETE", "origin: http://localhost:8080"),
        ("POST", "sec-fetch-site: same-origin"),
        ("POST", "sec-fetch-site: none"),
        // Neither header: not a browser, or a browser too old to say.
        ("DELETE", "x-nothing: 1"),
        // Safe methods are never refused.
        (
            "GET",
            "origin: http://evil.example\r\nsec-fetch-site: cross-site",
        ),
    ] {
        let r = send(
            &t,
            &format!("{method} /hello HTTP/1.1\r\n{host}\r\n{extra}"),
            "{}",
        );
        assert_eq!(r.status, 200, "{method} with {extra:?}: {r:?}");
    }
}

#[test]
fn post_bodies_must_be_json_or_get_415() {
    let t = start(strict());
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
    ] {
        let head = match content_type {
            Some(ct) => format!("POST /hello HTTP/1.1\r\nhost: localhost\r\ncontent-type: {ct}"),
            None => "POST /hello HTTP/1.1\r\nhost: localhost".to_owned(),
        };
        assert_refused(
            &send(&t, &head, r#"{"a":1}"#),
            415,
            &format!("{content_type:?}"),
        );
    }
    for content_type in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let head =
            format!("POST /hello HTTP/1.1\r\nhost: localhost\r\ncontent-type: {content_type}");
        assert_eq!(send(&t, &head, "{}").status, 200, "{content_type}");
    }
    // No body, no content type needed: `curl -X POST`, `curl -X DELETE`.
    assert_eq!(
        send(&t, "POST /hello HTTP/1.1\r\nhost: localhost", "").status,
        200
    );
    assert_eq!(
        send(&t, "DELETE /hello HTTP/1.1\r\nhost: localhost", "").status,
        200
    );
}

#[test]
fn cross_origin_and_content_type_rules_are_off_by_default() {
    let t = start(ServerConfig::default());
    let r = send(
        &t,
        "POST /hello HTTP/1.1\r\nhost: evil.example\r\norigin: http://evil.example:1\r\ncontent-type: text/plain",
        "hi",
    );
    assert_eq!(r.status, 200, "{r:?}");
}

fn ws_handshake(t: &TestServer, extra: &str) -> u16 {
    let mut stream = t.connect();
    let head = format!(
        "GET /ws HTTP/1.1\r\nhost: localhost:8080\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13{extra}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    read_head(&mut BufReader::new(stream))
        .expect("a response")
        .0
}

#[test]
fn websocket_handshake_with_a_foreign_origin_gets_403() {
    let t = start(strict());
    assert_eq!(ws_handshake(&t, "\r\norigin: http://evil.example"), 403);
    assert_eq!(ws_handshake(&t, "\r\norigin: http://localhost:1"), 403);
    assert_eq!(t.server.stats().active_streams, 0);
    assert_eq!(ws_handshake(&t, "\r\norigin: http://localhost:8080"), 101);
    // Non-browser clients send no Origin.
    assert_eq!(ws_handshake(&t, ""), 101);
}

#[test]
fn guard_puts_any_hyper_service_behind_the_rules() {
    let server = Server::new(strict());
    let service = server.guard(hyper::service::service_fn(|_req| async {
        Ok::<_, Infallible>(hyper::Response::new(cancelable_http::full("ok")))
    }));
    let t = TestServer::start_service(server, service);
    assert_eq!(
        send(&t, "GET / HTTP/1.1\r\nhost: localhost", "").status,
        200
    );
    assert_refused(
        &send(&t, "GET / HTTP/1.1\r\nhost: evil.example", ""),
        400,
        "unknown host",
    );
    assert_refused(&send(&t, "GET / HTTP/1.1", ""), 400, "no Host");
    assert_refused(
        &send(
            &t,
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\norigin: http://evil.example",
            "{}",
        ),
        403,
        "foreign Origin",
    );
    assert_refused(
        &send(
            &t,
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain",
            "x",
        ),
        415,
        "text/plain",
    );
}
