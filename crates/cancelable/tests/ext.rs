//! `FutureExt` and `StreamExt`: binding any future or stream to a token.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use cancelable::{CancelKind, CancellationToken, FutureExt, StreamExt};
use futures_lite::future::block_on;
use futures_lite::{StreamExt as _, stream};

#[test]
fn cancelable_returns_ok_when_the_future_finishes() {
    let token = CancellationToken::new();
    assert_eq!(block_on(async { 3 }.cancelable(&token)), Ok(3));
}

#[test]
fn cancelable_returns_the_reason_when_cancelled() {
    let token = CancellationToken::new();
    token.cancel_with(CancelKind::Disconnected);
    let err = block_on(std::future::pending::<()>().cancelable(&token)).unwrap_err();
    assert_eq!(err.reason().kind(), CancelKind::Disconnected);
}

#[test]
fn cancelable_drops_the_inner_future_on_the_poll_that_sees_the_cancel() {
    let token = CancellationToken::new();
    let alive = Arc::new(());
    let held = alive.clone();
    let inner = async move {
        let _held = held;
        std::future::pending::<()>().await
    };
    let mut fut = pin!(inner.cancelable(&token));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(Arc::strong_count(&alive), 2);
    token.cancel();
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "inner future dropped while the wrapper lives"
    );
}

#[test]
fn with_cancellation_token_matches_tokio_util_meaning() {
    let token = CancellationToken::new();
    assert_eq!(
        block_on(async { 1 }.with_cancellation_token(&token)),
        Some(1)
    );
    assert_eq!(
        block_on(async { 2 }.with_cancellation_token_owned(token.clone())),
        Some(2)
    );
    token.cancel();
    assert_eq!(block_on(async { 1 }.with_cancellation_token(&token)), None);
    assert_eq!(
        block_on(async { 2 }.with_cancellation_token_owned(token)),
        None
    );
}

#[test]
fn take_until_cancelled_yields_until_cancel_then_ends() {
    let token = CancellationToken::new();
    let mut numbers = stream::iter(0..).take_until_cancelled(&token);
    block_on(async {
        assert_eq!(numbers.next().await, Some(0));
        assert_eq!(numbers.next().await, Some(1));
        token.cancel();
        assert_eq!(numbers.next().await, None);
        assert_eq!(numbers.next().await, None);
    });
    assert!(futures_core::FusedStream::is_terminated(&numbers));
}

#[test]
fn take_until_cancelled_wakes_a_pending_stream() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    let handle = std::thread::spawn(move || canceller.cancel());
    let mut never = stream::pending::<u8>().take_until_cancelled(&token);
    assert_eq!(block_on(never.next()), None);
    handle.join().unwrap();
}

#[test]
fn take_until_cancelled_ends_with_the_stream() {
    let token = CancellationToken::new();
    let items: Vec<_> = block_on(stream::iter(0..3).take_until_cancelled(&token).collect());
    assert_eq!(items, vec![0, 1, 2]);
}
