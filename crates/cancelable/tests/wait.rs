//! Waiting: `cancelled()` futures, blocking waits, and the wake-ups behind them.

mod common;
use common::size;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

use cancelable::CancellationToken;
use futures_lite::future::block_on;

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A waker that counts its wake-ups, and the counter to read them from.
fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

#[test]
fn cancelled_resolves_at_once_when_already_cancelled() {
    let token = CancellationToken::new();
    token.cancel();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(pin!(token.cancelled()).poll(&mut cx), Poll::Ready(()));
    assert_eq!(
        pin!(token.clone().cancelled_owned()).poll(&mut cx),
        Poll::Ready(())
    );
}

#[test]
fn pending_cancelled_future_is_woken_by_cancel() {
    let token = CancellationToken::new();
    let (wakes, std_waker) = counting_waker();
    let mut cx = Context::from_waker(&std_waker);
    let mut fut = pin!(token.cancelled());
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    token.cancel();
    assert_eq!(wakes.count(), 1);
    assert_eq!(fut.poll(&mut cx), Poll::Ready(()));
}

#[test]
fn waiter_on_a_grandchild_is_woken_by_the_root() {
    let root = CancellationToken::new();
    let leaf = root.child_token().child_token();
    let (wakes, std_waker) = counting_waker();
    let mut cx = Context::from_waker(&std_waker);
    let mut fut = pin!(leaf.cancelled());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    root.cancel();
    assert_eq!(wakes.count(), 1);
    assert!(fut.poll(&mut cx).is_ready());
}

#[test]
fn ten_thousand_pending_waiters_are_all_woken_by_one_cancel() {
    let token = CancellationToken::new();
    let (wakes, std_waker) = counting_waker();
    let mut cx = Context::from_waker(&std_waker);
    let mut futures: Vec<_> = (0..size(10_000))
        .map(|_| Box::pin(token.cancelled()))
        .collect();
    for fut in &mut futures {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    token.cancel();
    assert_eq!(wakes.count(), size(10_000));
    for fut in &mut futures {
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    }
}

#[test]
fn dropped_pending_waiter_is_not_woken_and_others_still_are() {
    let token = CancellationToken::new();
    let (wakes, std_waker) = counting_waker();
    let mut cx = Context::from_waker(&std_waker);
    let mut kept = Box::pin(token.cancelled());
    let mut dropped = Box::pin(token.cancelled());
    assert!(kept.as_mut().poll(&mut cx).is_pending());
    assert!(dropped.as_mut().poll(&mut cx).is_pending());
    drop(dropped);
    token.cancel();
    assert_eq!(wakes.count(), 1);
    assert!(kept.as_mut().poll(&mut cx).is_ready());
}

#[test]
fn no_lost_wakeup_when_cancel_races_the_first_poll() {
    for _ in 0..size(2_000) {
        let token = CancellationToken::new();
        let canceller = token.clone();
        let cancel = thread::spawn(move || canceller.cancel());
        block_on(token.cancelled());
        cancel.join().unwrap();
    }
}

#[test]
fn owned_future_outlives_every_other_handle() {
    let token = CancellationToken::new();
    let child = token.child_token();
    let fut = child.cancelled_owned();
    let waiter = thread::spawn(move || block_on(fut));
    token.cancel();
    waiter.join().unwrap();
}

#[cfg(feature = "std")]
#[test]
fn wait_blocking_returns_once_cancelled_from_another_thread() {
    let token = CancellationToken::new();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let t = token.child_token();
            thread::spawn(move || t.wait_blocking())
        })
        .collect();
    token.cancel();
    for waiter in waiters {
        waiter.join().unwrap();
    }
}

#[cfg(feature = "std")]
#[test]
fn wait_blocking_timeout_reports_timeout_then_cancel() {
    let token = CancellationToken::new();
    let start = Instant::now();
    assert!(!token.wait_blocking_timeout(Duration::from_millis(20)));
    assert!(start.elapsed() >= Duration::from_millis(20));
    let canceller = token.clone();
    let handle = thread::spawn(move || canceller.cancel());
    assert!(token.wait_blocking_timeout(Duration::from_secs(60)));
    handle.join().unwrap();
}

#[cfg(feature = "std")]
#[test]
fn wait_blocking_timeout_with_an_unrepresentable_timeout_waits_for_cancel() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    let handle = thread::spawn(move || canceller.cancel());
    assert!(token.wait_blocking_timeout(Duration::MAX));
    handle.join().unwrap();
}

#[test]
fn run_until_cancelled_returns_the_output_when_the_future_wins() {
    let token = CancellationToken::new();
    assert_eq!(block_on(token.run_until_cancelled(async { 5 })), Some(5));
    assert_eq!(
        block_on(token.clone().run_until_cancelled_owned(async { 6 })),
        Some(6)
    );
}

#[test]
fn run_until_cancelled_on_a_cancelled_token_never_polls_the_future() {
    let token = CancellationToken::new();
    token.cancel();
    let polled = AtomicUsize::new(0);
    let fut = std::future::poll_fn(|_| {
        polled.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(1)
    });
    assert_eq!(block_on(token.run_until_cancelled(fut)), None);
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}

#[test]
fn run_until_cancelled_stops_a_pending_future_when_cancelled() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    let handle = thread::spawn(move || canceller.cancel());
    let out = block_on(token.run_until_cancelled(std::future::pending::<u8>()));
    assert_eq!(out, None);
    handle.join().unwrap();
}

/// A waker whose `wake` panics.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker failed");
    }
}

#[cfg(feature = "std")]
#[test]
fn panicking_waker_does_not_stop_the_other_wakeups() {
    let token = CancellationToken::new();
    let (counting, good) = counting_waker();
    let bad = Waker::from(Arc::new(PanickingWaker));
    // More than one batch of wakers, with panicking ones among them.
    let mut futures: Vec<_> = (0..100).map(|_| Box::pin(token.cancelled())).collect();
    for (i, fut) in futures.iter_mut().enumerate() {
        let waker = if i % 30 == 7 { &bad } else { &good };
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| token.cancel()));
    assert_eq!(
        result.unwrap_err().downcast_ref::<&str>(),
        Some(&"waker failed")
    );
    assert_eq!(counting.count(), 96);
    for fut in &mut futures {
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&good))
                .is_ready()
        );
    }
}

#[test]
fn waiters_dropped_between_wake_batches_are_skipped() {
    // Waiters dropped by their owners while a cancel is waking others must simply be gone.
    for _ in 0..size(200) {
        let token = CancellationToken::new();
        let mut futures: Vec<_> = (0..100)
            .map(|_| Box::pin(token.clone().cancelled_owned()))
            .collect();
        let mut cx = Context::from_waker(Waker::noop());
        for fut in &mut futures {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        let dropper = thread::spawn(move || drop(futures));
        token.cancel();
        dropper.join().unwrap();
    }
}

/// A waker whose `clone` runs `on_clone` (user code that may touch the tree).
fn waker_that_on_clone(on_clone: impl Fn() + Send + Sync + 'static) -> Waker {
    use std::task::{RawWaker, RawWakerVTable};
    type Hook = Box<dyn Fn() + Send + Sync>;
    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` came from `Arc::into_raw` and the waker being cloned owns a count.
        unsafe {
            Arc::increment_strong_count(data.cast::<Hook>());
            (*data.cast::<Hook>())();
        }
        RawWaker::new(data, &VTABLE)
    }
    unsafe fn drop(data: *const ()) {
        // SAFETY: every waker owns one count of the `Arc`.
        unsafe { Arc::decrement_strong_count(data.cast::<Hook>()) };
    }
    unsafe fn wake(data: *const ()) {
        // SAFETY: as for `drop`: waking by value consumes the waker.
        unsafe { drop(data) };
    }
    unsafe fn wake_by_ref(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);
    let hook: Arc<Hook> = Arc::new(Box::new(on_clone));
    let raw = RawWaker::new(Arc::into_raw(hook).cast(), &VTABLE);
    // SAFETY: the vtable's functions keep the `Arc`'s count, which this waker now owns.
    unsafe { Waker::from_raw(raw) }
}

#[test]
fn repoll_with_a_new_waker_clones_it_without_holding_the_node_lock() {
    // The new waker's `clone` creates a child of the very token being waited on, which takes the
    // node's lock: if the lock were held around the clone this would deadlock. The test thread
    // gives up after a bound far above the microseconds the work takes.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let token = CancellationToken::new();
        let mut fut = pin!(token.cancelled());
        let mut first = Context::from_waker(Waker::noop());
        assert_eq!(fut.as_mut().poll(&mut first), Poll::Pending);
        let inner = token.clone();
        let waker = waker_that_on_clone(move || drop(inner.child_token()));
        assert_eq!(
            fut.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        );
        token.cancel();
        assert_eq!(
            fut.poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(())
        );
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("re-polling with a new waker deadlocked on the node lock");
}

#[test]
fn panicking_waker_leaves_no_cancelled_future_pending() {
    // Every node gets a waiter with a panicking waker and one with a counting waker, and a
    // grandchild: with `std` the walk finishes before the panic resumes; without it the panic
    // unwinds at once, and the next cancel that reaches the nodes finishes the work.
    let root = CancellationToken::new();
    let children: Vec<_> = (0..3).map(|_| root.child_token()).collect();
    let grandchildren: Vec<_> = children.iter().map(|c| c.child_token()).collect();
    let bad = Waker::from(Arc::new(PanickingWaker));
    let (wakes, good) = counting_waker();
    let mut futures: Vec<_> = children
        .iter()
        .chain(&grandchildren)
        .flat_map(|t| [Box::pin(t.cancelled()), Box::pin(t.cancelled())])
        .collect();
    for (i, fut) in futures.iter_mut().enumerate() {
        let waker = if i % 2 == 0 { &bad } else { &good };
        assert_eq!(
            fut.as_mut().poll(&mut Context::from_waker(waker)),
            Poll::Pending
        );
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| root.cancel()));
    assert!(result.is_err());
    // Later cancels finish the interrupted walk (each may meet another panicking waker).
    for _ in 0..futures.len() {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| root.cancel())).is_ok() {
            break;
        }
    }
    assert!(grandchildren.iter().all(CancellationToken::is_cancelled));
    for fut in &mut futures {
        assert_eq!(
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(())
        );
    }
    assert_eq!(wakes.count(), 6, "every well-behaved waiter is woken once");
}
