//! 10,000 connect/disconnect cycles (idle, half-sent request, request in flight,
//! SSE stream, WebSocket) leave no request, stream, connection or task behind, keep the
//! operations history bounded and the memory flat.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use cancelable_http::{Event, HandlerResult, Route, Router, ServerConfig, sse, websocket};
use common::{TestServer, request_text};
use hyper::body::Incoming;
use hyper::{Method, Request};

const CYCLES: usize = 10_000;

async fn forever(_req: Request<Incoming>, _: ()) -> HandlerResult {
    std::future::pending().await
}

async fn events(req: Request<Incoming>, _: ()) -> HandlerResult {
    sse(&req, "events", |_cx, tx| async move {
        tx.send(Event::data("hello")).await.ok();
        std::future::pending().await
    })
}

async fn ws(mut req: Request<Incoming>, _: ()) -> HandlerResult {
    websocket(&mut req, "ws", |_cx, tx| async move {
        tx.send_json(&1).await.ok();
        std::future::pending().await
    })
}

/// Resident memory of this process, in bytes (Linux), else 0.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[test]
fn ten_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let t = TestServer::start(ServerConfig::default().request_history(100), |_| {
        Router::new(())
            .get("/forever", forever)
            .route(Route::new(Method::GET, "/tracked", forever).tracked())
            .get("/events", events)
            .get("/ws", ws)
    });
    let start = Instant::now();
    let mut rss_early = 0;
    for i in 0..CYCLES {
        let mut stream = t.connect();
        match i % 5 {
            0 => {}
            1 => stream.write_all(b"GET /forever HTTP/1.1\r\nhost:").unwrap(),
            2 => stream
                .write_all(request_text("GET", "/tracked", None, false).as_bytes())
                .unwrap(),
            3 => stream
                .write_all(request_text("GET", "/events", None, false).as_bytes())
                .unwrap(),
            _ if i % 50 == 4 => {
                let (socket, _) =
                    tungstenite::client(format!("ws://{}/ws", t.addr).as_str(), stream).unwrap();
                drop(socket);
                continue;
            }
            _ => stream
                .write_all(request_text("GET", "/forever", None, false).as_bytes())
                .unwrap(),
        }
        drop(stream);
        if i == 2_000 {
            t.until("the first cycles to settle", |s| s.open_connections() == 0);
            rss_early = rss();
        }
    }
    t.until("every connection closed", |s| s.open_connections() == 0);
    t.until("no request, stream or task left", |s| {
        let stats = s.stats();
        stats.active_requests == 0 && stats.active_streams == 0 && s.tracker().is_empty()
    });
    let took = start.elapsed();
    let stats = t.server.stats();
    assert_eq!(
        (
            stats.active_requests,
            stats.active_streams,
            stats.active_jobs
        ),
        (0, 0, 0)
    );
    // Tracked requests and streams: history bounded (100 each), nothing live.
    let ops = t.server.operations(usize::MAX);
    assert!(ops.len() <= 200, "{}", ops.len());
    assert!(
        ops.iter().all(|o| o.status == "cancelled"),
        "{:?}",
        ops.iter().find(|o| o.status != "cancelled")
    );
    let growth = rss().saturating_sub(rss_early);
    assert!(
        growth < 16 << 20,
        "memory grew by {growth} bytes over {} cycles",
        CYCLES - 2_000
    );
    eprintln!("{CYCLES} cycles in {took:?}, rss growth {growth} B, stats {stats:?}");
    assert!(took < Duration::from_secs(60));
}
