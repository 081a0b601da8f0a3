//! Polling order: when the token is checked against the future it guards.
//!
//! `run_until_cancelled(_owned)` checks the token on its first poll, `with_cancellation_token(_owned)`
//! when it is created; after that both poll the future first, so a result that is ready on the
//! poll that also sees a cancel is returned (tokio-util's order, observed on tokio-util 0.7.20).
//! `.cancelable()` checks the token before every poll and drops the future at once.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use cancelable::{CancellationToken, FutureExt};

/// A future that is ready on its `ready_on`-th poll, counting its polls and its drop.
struct Probe {
    ready_on: usize,
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

/// What a test reads off a [`Probe`] after handing it away.
struct Seen {
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Seen {
    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> bool {
        self.drops.load(Ordering::SeqCst) == 1
    }
}

fn probe(ready_on: usize) -> (Probe, Seen) {
    let polls = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let seen = Seen {
        polls: polls.clone(),
        drops: drops.clone(),
    };
    let probe = Probe {
        ready_on,
        polls,
        drops,
    };
    (probe, seen)
}

impl Future for Probe {
    type Output = u8;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
        let polls = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if polls >= self.ready_on {
            Poll::Ready(7)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// The four ways of guarding a future with tokio-util's order, as one value to loop over.
#[derive(Clone, Copy, Debug)]
enum Guard {
    RunUntilCancelled,
    RunUntilCancelledOwned,
    WithCancellationToken,
    WithCancellationTokenOwned,
}

const RUN_UNTIL_CANCELLED: [Guard; 2] = [Guard::RunUntilCancelled, Guard::RunUntilCancelledOwned];
const WITH_CANCELLATION_TOKEN: [Guard; 2] = [
    Guard::WithCancellationToken,
    Guard::WithCancellationTokenOwned,
];
const ALL: [Guard; 4] = [
    Guard::RunUntilCancelled,
    Guard::RunUntilCancelledOwned,
    Guard::WithCancellationToken,
    Guard::WithCancellationTokenOwned,
];

impl Guard {
    fn guard<'a>(
        self,
        token: &'a CancellationToken,
        future: Probe,
    ) -> Pin<Box<dyn Future<Output = Option<u8>> + 'a>> {
        match self {
            Guard::RunUntilCancelled => Box::pin(token.run_until_cancelled(future)),
            Guard::RunUntilCancelledOwned => {
                Box::pin(token.clone().run_until_cancelled_owned(future))
            }
            Guard::WithCancellationToken => Box::pin(future.with_cancellation_token(token)),
            Guard::WithCancellationTokenOwned => {
                Box::pin(future.with_cancellation_token_owned(token.clone()))
            }
        }
    }
}

#[test]
fn result_ready_on_the_poll_after_a_cancel_is_returned() {
    for guard in ALL {
        let token = CancellationToken::new();
        let (future, seen) = probe(2);
        let mut fut = guard.guard(&token, future);
        assert_eq!(poll(fut.as_mut()), Poll::Pending, "{guard:?}");
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(Some(7)), "{guard:?}");
        assert_eq!(seen.polls(), 2, "{guard:?}");
    }
}

#[test]
fn pending_future_is_polled_once_more_on_the_poll_that_sees_the_cancel() {
    for guard in ALL {
        let token = CancellationToken::new();
        let (future, seen) = probe(usize::MAX);
        let mut fut = guard.guard(&token, future);
        assert_eq!(poll(fut.as_mut()), Poll::Pending, "{guard:?}");
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(None), "{guard:?}");
        assert_eq!(seen.polls(), 2, "{guard:?}");
    }
}

#[test]
fn run_until_cancelled_checks_the_token_on_its_first_poll() {
    for guard in RUN_UNTIL_CANCELLED {
        let token = CancellationToken::new();
        let (future, seen) = probe(1);
        let mut fut = guard.guard(&token, future);
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(None), "{guard:?}");
        assert_eq!(
            seen.polls(),
            0,
            "{guard:?}: a future ready at once is never polled"
        );
        assert!(
            seen.dropped(),
            "{guard:?}: dropped on the poll that returns"
        );
    }
}

#[test]
fn with_cancellation_token_checks_the_token_when_created() {
    for guard in WITH_CANCELLATION_TOKEN {
        let token = CancellationToken::new();
        let (future, seen) = probe(1);
        let mut fut = guard.guard(&token, future);
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(Some(7)), "{guard:?}");
        assert_eq!(seen.polls(), 1, "{guard:?}");
    }
}

#[test]
fn with_cancellation_token_on_a_cancelled_token_drops_the_future_at_once() {
    for guard in WITH_CANCELLATION_TOKEN {
        let token = CancellationToken::new();
        token.cancel();
        let (future, seen) = probe(1);
        let mut fut = guard.guard(&token, future);
        assert!(
            seen.dropped(),
            "{guard:?}: dropped when the wrapper is made"
        );
        assert_eq!(poll(fut.as_mut()), Poll::Ready(None), "{guard:?}");
        assert_eq!(seen.polls(), 0, "{guard:?}");
    }
}

#[test]
fn run_until_cancelled_drops_the_future_on_the_poll_that_returns() {
    for guard in RUN_UNTIL_CANCELLED {
        let token = CancellationToken::new();
        let (future, seen) = probe(1);
        let mut fut = guard.guard(&token, future);
        assert_eq!(poll(fut.as_mut()), Poll::Ready(Some(7)), "{guard:?}");
        assert!(seen.dropped(), "{guard:?}: dropped after a result");

        let (future, seen) = probe(usize::MAX);
        let mut fut = guard.guard(&token, future);
        assert_eq!(poll(fut.as_mut()), Poll::Pending, "{guard:?}");
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(None), "{guard:?}");
        assert!(seen.dropped(), "{guard:?}: dropped after the cancel");
    }
}

#[test]
fn with_cancellation_token_keeps_the_future_until_the_wrapper_is_dropped() {
    for guard in WITH_CANCELLATION_TOKEN {
        let token = CancellationToken::new();
        let (future, seen) = probe(usize::MAX);
        let mut fut = guard.guard(&token, future);
        assert_eq!(poll(fut.as_mut()), Poll::Pending, "{guard:?}");
        token.cancel();
        assert_eq!(poll(fut.as_mut()), Poll::Ready(None), "{guard:?}");
        assert!(!seen.dropped(), "{guard:?}");
        drop(fut);
        assert!(seen.dropped(), "{guard:?}");
    }
}

#[test]
fn run_until_cancelled_wakes_nothing_after_it_returned() {
    let token = CancellationToken::new();
    let woken = Arc::new(AtomicUsize::new(0));
    let waker = Waker::from(Arc::new(CountWakes(woken.clone())));
    let (future, _seen) = probe(2);
    let mut fut = pin!(token.run_until_cancelled(future));
    let mut cx = Context::from_waker(&waker);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Some(7)));
    token.cancel();
    assert_eq!(
        woken.load(Ordering::SeqCst),
        0,
        "the waiter left with the result"
    );
}

struct CountWakes(Arc<AtomicUsize>);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancelable_drops_the_future_on_the_poll_that_sees_a_cancel_even_if_it_was_ready() {
    let token = CancellationToken::new();
    let (future, seen) = probe(2);
    let mut fut = pin!(future.cancelable(&token));
    assert_eq!(poll(fut.as_mut()), Poll::Pending);
    token.cancel();
    assert!(matches!(poll(fut.as_mut()), Poll::Ready(Err(_))));
    assert_eq!(seen.polls(), 1, "not polled once the cancel is seen");
    assert!(seen.dropped());
}

#[test]
fn cancelable_on_a_token_cancelled_before_the_first_poll_never_polls() {
    let token = CancellationToken::new();
    let (future, seen) = probe(1);
    let mut fut = pin!(future.cancelable(&token));
    token.cancel();
    assert!(matches!(poll(fut.as_mut()), Poll::Ready(Err(_))));
    assert_eq!(seen.polls(), 0);
    assert!(seen.dropped());
}
