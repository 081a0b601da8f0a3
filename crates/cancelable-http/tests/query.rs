//! `query_param`: form-urlencoded decoding (`+` is a space, `%XX` a byte), with escapes that
//! are not two hex digits kept as they are, over a real request.

mod common;

use cancelable_http::{HandlerResult, Router, ServerConfig, json, query_param};
use common::TestServer;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

async fn echo(req: Request<Incoming>, _state: ()) -> HandlerResult {
    let value = query_param(&req, "v");
    Ok(json(StatusCode::OK, &serde_json::json!({ "v": value })))
}

fn decoded(t: &TestServer, query: &str) -> Option<String> {
    let response = t.get(&format!("/echo?{query}"));
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["v"].as_str().map(str::to_owned)
}

#[test]
fn query_param_keeps_an_invalid_escape_literal() {
    let t = TestServer::start(ServerConfig::default(), |_| {
        Router::new(()).get("/echo", echo)
    });
    // `%+5` is not an escape: its `%` stays (and `+` is a space as always), never byte 0x05.
    assert_eq!(decoded(&t, "v=%+5").as_deref(), Some("% 5"));
    assert_eq!(decoded(&t, "v=%-1").as_deref(), Some("%-1"));
    assert_eq!(decoded(&t, "v=%zz").as_deref(), Some("%zz"));
    assert_eq!(decoded(&t, "v=50%").as_deref(), Some("50%"));
    assert_eq!(decoded(&t, "v=%4").as_deref(), Some("%4"));
}

#[test]
fn query_param_decodes_form_urlencoding() {
    let t = TestServer::start(ServerConfig::default(), |_| {
        Router::new(()).get("/echo", echo)
    });
    assert_eq!(decoded(&t, "v=a%20b+c").as_deref(), Some("a b c"));
    assert_eq!(decoded(&t, "v=%C3%A9t%C3%A9").as_deref(), Some("été"));
    assert_eq!(
        decoded(&t, "x=1&v=2&v=3").as_deref(),
        Some("2"),
        "the first wins"
    );
    assert_eq!(
        decoded(&t, "%76=named+by+an+escape").as_deref(),
        Some("named by an escape")
    );
    assert_eq!(decoded(&t, "v").as_deref(), Some(""));
    assert_eq!(decoded(&t, "w=1"), None);
}
