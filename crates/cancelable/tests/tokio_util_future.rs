// Ported from tokio-util 0.7.20 (https://github.com/tokio-rs/tokio, tokio-util/tests/future.rs).
// Copyright (c) Tokio Contributors. Used under the MIT License:
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction, including without limitation the rights
// to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
// copies of the Software, and to permit persons to whom the Software is
// furnished to do so, subject to the following conditions:
//
// The above copyright notice and this permission notice shall be included in all
// copies or substantial portions of the Software.
//
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
// IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
// FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
// AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
// LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
// OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
// SOFTWARE.
//
// `FutureExt::with_cancellation_token(_owned)` against tokio-util's own expectations.
//
// Edits the API forces; everything else is tokio-util's text:
//   - Import `CancellationToken` and `FutureExt` from `cancelable` instead of `tokio_util`.
//   - `#![cfg(not(loom))]` added: tokio and the test helpers are not dev-dependencies of the
//     loom build (their own `cfg(loom)` code needs loom features that build does not turn on).
//   - Formatted by `cargo fmt` with this workspace's edition 2024, which sorts imports
//     differently (no token changed).
#![cfg(not(loom))]
use std::{
    future::{Future, pending, ready},
    task::{Context, Poll},
};

use cancelable::{CancellationToken, FutureExt};
use futures_test::task::new_count_waker;
use tokio::pin;
use tokio_test::{assert_pending, assert_ready_eq};

#[derive(Default)]
struct ReadyOnTheSecondPollFuture {
    polled: bool,
}

impl Future for ReadyOnTheSecondPollFuture {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.polled {
            self.polled = true;
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

#[test]
fn ready_fut_with_cancellation_token_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();

    let ready_fut = ready(());

    let ready_with_token_fut = ready_fut.with_cancellation_token(&token);

    pin!(ready_with_token_fut);

    let res = ready_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, Some(()));
}

#[test]
fn pending_fut_with_cancellation_token_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token(&token);

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_pending!(res);
}

#[test]
fn ready_fut_with_already_cancelled_token_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();
    token.cancel();

    let ready_fut = ready(());

    let ready_fut_with_token_fut = ready_fut.with_cancellation_token(&token);

    pin!(ready_fut_with_token_fut);

    let res = ready_fut_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, None);
}

#[test]
fn pending_fut_with_already_cancelled_token_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();
    token.cancel();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token(&token);

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, None);
    assert_eq!(wake_count, 0);
}

#[test]
fn pending_fut_with_token_cancelled_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token(&token);

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert_pending!(res);

    token.cancel();

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert_ready_eq!(res, None);
    assert_eq!(wake_count, 1);
}

#[test]
fn pending_only_on_first_poll_with_cancellation_token_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();
    let fut = ReadyOnTheSecondPollFuture::default().with_cancellation_token(&token);
    pin!(fut);

    // first poll, ReadyOnTheSecondPollFuture returned Pending
    let res = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert_pending!(res);

    token.cancel();
    assert_eq!(wake_count, 1);

    // due to the polling fairness (biased behavior) of `WithCancellationToken` Future,
    // subsequent polls are biased toward polling ReadyOnTheSecondPollFuture,
    // which results in always returning Ready.
    let res = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert_ready_eq!(res, Some(()));
}

#[test]
fn ready_fut_with_cancellation_owned_token_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();

    let ready_fut = ready(());

    let ready_with_token_fut = ready_fut.with_cancellation_token_owned(token);

    pin!(ready_with_token_fut);

    let res = ready_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, Some(()));
}

#[test]
fn pending_fut_with_cancellation_token_owned_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token_owned(token);

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_pending!(res);
}

#[test]
fn ready_fut_with_already_cancelled_token_owned_test() {
    let (waker, _) = new_count_waker();
    let token = CancellationToken::new();
    token.cancel();

    let ready_fut = ready(());

    let ready_fut_with_token_fut = ready_fut.with_cancellation_token_owned(token);

    pin!(ready_fut_with_token_fut);

    let res = ready_fut_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, None);
}

#[test]
fn pending_fut_with_already_cancelled_token_owned_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();
    token.cancel();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token_owned(token);

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));

    assert_ready_eq!(res, None);
    assert_eq!(wake_count, 0);
}

#[test]
fn pending_fut_with_owned_token_cancelled_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();

    let pending_fut = pending::<()>();

    let pending_with_token_fut = pending_fut.with_cancellation_token_owned(token.clone());

    pin!(pending_with_token_fut);

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert_pending!(res);

    token.cancel();

    let res = pending_with_token_fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert_ready_eq!(res, None);
    assert_eq!(wake_count, 1);
}

#[test]
fn pending_only_on_first_poll_with_cancellation_token_owned_test() {
    let (waker, wake_count) = new_count_waker();
    let token = CancellationToken::new();
    let fut = ReadyOnTheSecondPollFuture::default().with_cancellation_token_owned(token.clone());
    pin!(fut);

    // first poll, ReadyOnTheSecondPollFuture returned Pending
    let res = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert_pending!(res);

    token.cancel();
    assert_eq!(wake_count, 1);

    // due to the polling fairness (biased behavior) of `WithCancellationToken` Future,
    // subsequent polls are biased toward polling ReadyOnTheSecondPollFuture,
    // which results in always returning Ready.
    let res = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert_ready_eq!(res, Some(()));
}
