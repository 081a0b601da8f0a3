//! One behavioural suite, run on every executor: smol, async-std, `futures_lite::future::block_on`,
//! a minimal hand-written executor and tokio. The core never talks to an executor; it
//! only stores and wakes `Waker`s, so the same assertions must hold on all of them.
//!
//! Each behaviour is a generic `fn name<R: Runtime>()`; `behavioural_suite!` turns it into one
//! test per runtime, named `smol::name`, `async_std::name`, `futures_lite::name`,
//! `hand_written::name` and `tokio::name`. Nothing here synchronises with sleeps: the tasks and
//! threads hand over through the tokens themselves, channels and barriers.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Weak, mpsc};
use std::task::Poll;
use std::thread;

use ::futures_lite::future::{pending, poll_fn, poll_once, yield_now};
use ::futures_lite::stream::{self, StreamExt as _};
use cancelable::{CancelKind, CancelReason, CancellationToken, FutureExt as _, StreamExt as _};
use futures_core::FusedStream;

/// A spawned task's output, as a future.
type Handle<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the suite needs from an executor. `spawn` is only called inside `block_on`.
trait Runtime {
    fn block_on<F: Future>(future: F) -> F::Output;
    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T>;
}

struct Smol;

impl Runtime for Smol {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::smol::block_on(future)
    }

    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Box::pin(::smol::spawn(future))
    }
}

struct AsyncStd;

impl Runtime for AsyncStd {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::async_std::task::block_on(future)
    }

    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Box::pin(::async_std::task::spawn(future))
    }
}

/// `futures_lite::future::block_on`; a spawned task gets a thread of its own, running `block_on`.
struct FuturesLite;

impl Runtime for FuturesLite {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::futures_lite::future::block_on(future)
    }

    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        let (output, handle) = join_channel();
        thread::spawn(move || {
            let _ = output.try_send(::futures_lite::future::block_on(future));
        });
        handle
    }
}

struct HandWritten;

impl Runtime for HandWritten {
    fn block_on<F: Future>(future: F) -> F::Output {
        hand_written_executor::block_on(future)
    }

    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        hand_written_executor::spawn(future)
    }
}

/// A multi-thread tokio runtime with two workers, one per `block_on`; `spawn` is `tokio::spawn`
/// into the runtime whose `block_on` is running.
struct Tokio;

impl Runtime for Tokio {
    fn block_on<F: Future>(future: F) -> F::Output {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    }

    fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        let handle = ::tokio::spawn(future);
        Box::pin(async move { handle.await.expect("the task panicked") })
    }
}

/// A one-slot channel carrying a task's output to its handle. An executor-neutral channel
/// (`async-channel`, re-exported by smol): if the task panics the sender is dropped and the
/// handle panics too, instead of hanging.
fn join_channel<T: Send + 'static>() -> (::smol::channel::Sender<T>, Handle<T>) {
    let (sender, receiver) = ::smol::channel::bounded(1);
    let handle = async move { receiver.recv().await.expect("the task panicked") };
    (sender, Box::pin(handle))
}

/// A minimal single-threaded executor: `block_on` polls its future and the spawned tasks on the
/// calling thread and parks the thread when none of them can make progress. A task's waker is
/// the task itself (`std::task::Wake`): waking it, from any thread, queues it and unparks.
mod hand_written_executor {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, Weak};
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

    /// One `block_on` call. Waking the executor itself wakes the future given to `block_on`.
    struct Executor {
        thread: Thread,
        woken: AtomicBool,
        ready: Mutex<VecDeque<Arc<Task>>>,
    }

    struct Task {
        future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
        executor: Weak<Executor>,
    }

    impl Wake for Executor {
        fn wake(self: Arc<Self>) {
            self.woken.store(true, SeqCst);
            self.thread.unpark();
        }
    }

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            // Once `block_on` has returned, nobody runs the task any more.
            if let Some(executor) = self.executor.upgrade() {
                executor.ready.lock().unwrap().push_back(self);
                executor.thread.unpark();
            }
        }
    }

    thread_local! {
        static CURRENT: RefCell<Option<Arc<Executor>>> = const { RefCell::new(None) };
    }

    pub(super) fn block_on<F: Future>(future: F) -> F::Output {
        let executor = Arc::new(Executor {
            thread: thread::current(),
            woken: AtomicBool::new(true),
            ready: Mutex::default(),
        });
        let outer = CURRENT.replace(Some(executor.clone()));
        let waker = Waker::from(executor.clone());
        let mut future = pin!(future);
        let output = loop {
            if executor.woken.swap(false, SeqCst) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker))
                {
                    break output;
                }
            }
            let next = executor.ready.lock().unwrap().pop_front();
            if let Some(task) = next {
                let waker = Waker::from(task.clone());
                let mut cx = Context::from_waker(&waker);
                let mut slot = task.future.lock().unwrap();
                if slot
                    .as_mut()
                    .is_some_and(|f| f.as_mut().poll(&mut cx).is_ready())
                {
                    *slot = None;
                }
            } else if !executor.woken.load(SeqCst) {
                thread::park(); // Returns at once if unparked since: no lost wake-up.
            }
        };
        CURRENT.set(outer);
        output
    }

    /// Queues `future` on the executor of the `block_on` running on this thread.
    pub(super) fn spawn<T: Send + 'static>(
        future: impl Future<Output = T> + Send + 'static,
    ) -> super::Handle<T> {
        let executor = CURRENT
            .with_borrow(Option::clone)
            .expect("spawn outside block_on");
        let (output, handle) = super::join_channel();
        let future = Box::pin(async move {
            let _ = output.try_send(future.await);
        });
        let executor = Arc::downgrade(&executor);
        Arc::new(Task {
            future: Mutex::new(Some(future)),
            executor,
        })
        .wake();
        handle
    }
}

/// Awaits every task in order and collects their outputs.
async fn join_all<T>(tasks: Vec<impl Future<Output = T>>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await);
    }
    outputs
}

/// Polls `future` once, so that it registers the current task's waker, checks that it is still
/// pending, calls `parked` (which lets the cancelling side go), then awaits it. The cancelation
/// then really has to wake a sleeping task.
async fn after_parking<F: Future>(future: F, parked: impl FnOnce()) -> F::Output {
    let mut future = pin!(future);
    assert!(
        poll_once(future.as_mut()).await.is_none(),
        "resolved before anything was cancelled"
    );
    parked();
    future.await
}

/// A thread that waits for `signals` messages on `parked`, then runs `cancel`.
fn cancel_after_signals<T: Send + 'static>(
    signals: usize,
    cancel: impl FnOnce() -> T + Send + 'static,
) -> (mpsc::Sender<()>, thread::JoinHandle<T>) {
    let (parked, wait) = mpsc::channel();
    let canceller = thread::spawn(move || {
        for _ in 0..signals {
            wait.recv().expect("a waiter went away before parking");
        }
        cancel()
    });
    (parked, canceller)
}

fn cancelled_future_wakes_when_another_thread_cancels<R: Runtime>() {
    let token = CancellationToken::new();
    let (parked, canceller) = cancel_after_signals(1, {
        let token = token.clone();
        move || token.cancel_with(CancelReason::timeout().with_message("no reply in 3s"))
    });
    let reason = R::block_on(async {
        let waiter = token.clone();
        R::spawn(async move {
            after_parking(waiter.cancelled(), || parked.send(()).unwrap()).await;
            assert!(waiter.is_cancelled());
            waiter.reason()
        })
        .await
    });
    assert!(
        canceller.join().unwrap(),
        "the other thread performed the cancel"
    );
    let reason = reason.expect("a woken waiter sees the reason");
    assert_eq!(reason.kind(), CancelKind::Timeout);
    assert_eq!(reason.message(), Some("no reply in 3s"));
}

fn run_until_cancelled_gives_none_after_cancel_and_some_when_finished<R: Runtime>() {
    let token = CancellationToken::new();
    let (parked, canceller) = cancel_after_signals(1, {
        let token = token.clone();
        move || token.cancel()
    });
    R::block_on(async {
        let finished = token.run_until_cancelled(async {
            yield_now().await;
            7
        });
        assert_eq!(finished.await, Some(7));
        let finished = R::spawn(token.clone().run_until_cancelled_owned(async {
            yield_now().await;
            "done"
        }));
        assert_eq!(finished.await, Some("done"));
        let finished = R::spawn({
            let token = token.clone();
            async move { async { 8 }.with_cancellation_token_owned(token).await }
        });
        assert_eq!(finished.await, Some(8));

        let never = R::spawn({
            let token = token.clone();
            async move {
                let never = token.run_until_cancelled(pending::<u32>());
                after_parking(never, || parked.send(()).unwrap()).await
            }
        });
        assert_eq!(never.await, None);

        // Once cancelled: `None` without polling the future at all.
        let untouched = poll_fn(|_| -> Poll<u32> { panic!("polled after cancel") });
        assert_eq!(token.run_until_cancelled(untouched).await, None);
        let untouched = poll_fn(|_| -> Poll<u32> { panic!("polled after cancel") });
        assert_eq!(untouched.with_cancellation_token(&token).await, None);
    });
    canceller.join().unwrap();
}

fn cancelable_task_yields_the_reason_and_drops_its_inner_future<R: Runtime>() {
    let token = CancellationToken::new();
    let resources = Arc::new(());
    let weak: Weak<()> = Arc::downgrade(&resources);
    let inner = {
        let resources = resources.clone();
        async move {
            let _resources = resources;
            pending::<u32>().await
        }
    };
    assert_eq!(Arc::strong_count(&resources), 2);
    let (parked, canceller) = cancel_after_signals(1, {
        let token = token.clone();
        move || token.cancel_with(CancelReason::disconnected().with_message("peer left"))
    });
    let (result, alive_after_cancel) = R::block_on(async {
        let token = token.clone();
        R::spawn(async move {
            let mut work = pin!(inner.cancelable(&token));
            let result = after_parking(work.as_mut(), || parked.send(()).unwrap()).await;
            // `work` (the wrapper) is still alive here; the future inside must be gone.
            (result, weak.strong_count())
        })
        .await
    });
    canceller.join().unwrap();
    let error = result.expect_err("the token was cancelled, the inner future never finishes");
    assert_eq!(error.reason().kind(), CancelKind::Disconnected);
    assert_eq!(error.reason().message(), Some("peer left"));
    assert_eq!(error.reason().to_string(), "disconnected: peer left");
    assert_eq!(
        alive_after_cancel, 1,
        "the inner future is dropped as soon as the cancel is seen"
    );
    assert_eq!(Arc::strong_count(&resources), 1);

    // A future that finishes first gives `Ok`.
    let ok = R::block_on(async {
        let live = CancellationToken::new();
        R::spawn(async move { async { 5 }.cancelable(&live).await }).await
    });
    assert_eq!(ok, Ok(5));
}

fn a_thousand_tasks_on_their_own_child_tokens_finish_after_one_root_cancel<R: Runtime>() {
    const TASKS: usize = 1000;
    let root = CancellationToken::new();
    let (parked, canceller) = cancel_after_signals(TASKS, {
        let root = root.clone();
        move || root.cancel_with(CancelKind::Shutdown)
    });
    let kinds = R::block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                // Every other task waits on a grandchild whose middle node has no handle left.
                let own = match i % 2 {
                    0 => root.child_token(),
                    _ => root.child_token().child_token(),
                };
                let parked = parked.clone();
                R::spawn(async move {
                    after_parking(own.cancelled(), || parked.send(()).unwrap()).await;
                    own.reason().map(|reason| reason.kind())
                })
            })
            .collect();
        join_all(tasks).await
    });
    assert!(canceller.join().unwrap());
    assert_eq!(kinds.len(), TASKS);
    assert!(kinds.iter().all(|kind| *kind == Some(CancelKind::Shutdown)));
}

fn take_until_cancelled_ends_a_stream_when_another_task_cancels<R: Runtime>() {
    const BEFORE_CANCEL: usize = 100;
    let token = CancellationToken::new();
    let produced = Arc::new(AtomicUsize::new(0));
    let (count, produced_at_cancel) = R::block_on(async {
        let consumer = R::spawn({
            let token = token.clone();
            let produced = produced.clone();
            async move {
                let numbers = stream::unfold(0usize, move |n| {
                    let produced = produced.clone();
                    async move {
                        yield_now().await;
                        produced.fetch_add(1, Ordering::SeqCst);
                        Some((n, n + 1))
                    }
                });
                let mut numbers = pin!(numbers.take_until_cancelled(&token));
                let mut count = 0;
                while let Some(n) = numbers.next().await {
                    assert_eq!(n, count);
                    count += 1;
                }
                assert!(numbers.is_terminated());
                assert_eq!(numbers.next().await, None);
                count
            }
        });
        let canceller = R::spawn({
            let token = token.clone();
            let produced = produced.clone();
            async move {
                while produced.load(Ordering::SeqCst) < BEFORE_CANCEL {
                    yield_now().await;
                }
                assert!(token.cancel_with(CancelKind::Condition));
                produced.load(Ordering::SeqCst)
            }
        });
        let produced_at_cancel = canceller.await;
        (consumer.await, produced_at_cancel)
    });
    assert!(count >= BEFORE_CANCEL, "{count} items before the cancel");
    // The token is checked before every item: at most the item in flight gets through.
    assert!(
        count <= produced_at_cancel + 1,
        "{count} items, {produced_at_cancel} when cancelled"
    );
    assert_eq!(token.reason().unwrap().kind(), CancelKind::Condition);
}

fn take_until_cancelled_ends_an_endless_stream_when_another_thread_cancels<R: Runtime>() {
    const BEFORE_CANCEL: usize = 100;
    let token = CancellationToken::new();
    let (parked, canceller) = cancel_after_signals(1, {
        let token = token.clone();
        move || token.cancel()
    });
    let count = R::block_on(async {
        let token = token.clone();
        R::spawn(async move {
            let mut ones = stream::repeat(1u8).take_until_cancelled(&token);
            let mut count = 0;
            while let Some(one) = ones.next().await {
                assert_eq!(one, 1);
                count += 1;
                if count == BEFORE_CANCEL {
                    parked.send(()).unwrap();
                }
                yield_now().await;
            }
            count
        })
        .await
    });
    canceller.join().unwrap();
    assert!(count >= BEFORE_CANCEL, "{count} items before the cancel");
}

fn on_cancel_callbacks_have_run_on_the_cancelling_thread_when_cancel_returns<R: Runtime>() {
    let root = CancellationToken::new();
    let child = root.child_token();
    let (ran, callbacks) = mpsc::channel();
    let _root_callback = root.on_cancel({
        let ran = ran.clone();
        move |reason| {
            ran.send(("root", thread::current().id(), reason.kind()))
                .unwrap()
        }
    });
    let removed = child.on_cancel(|_| panic!("an unregistered callback ran"));
    assert!(removed.unregister());

    let (parked, canceller) = cancel_after_signals(1, {
        let root = root.clone();
        move || {
            root.cancel_with(CancelKind::Signal);
            // When `cancel` returns, every descendant's callback has run (guarantee 1).
            let ran: Vec<_> = callbacks.try_iter().collect();
            (thread::current().id(), ran)
        }
    });
    let (kind, callback) = R::block_on(async {
        let grandchild = child.child_token();
        let ran = ran.clone();
        R::spawn(async move {
            // Registered inside a task, run by the cancelling thread.
            let callback = grandchild.on_cancel(move |reason| {
                ran.send(("grandchild", thread::current().id(), reason.kind()))
                    .unwrap()
            });
            after_parking(grandchild.cancelled(), || parked.send(()).unwrap()).await;
            // Waiters may wake before the walk reaches the callbacks: assert nothing about them here.
            (grandchild.reason().unwrap().kind(), callback)
        })
        .await
    });
    let (cancelling_thread, mut ran_by_then) = canceller.join().unwrap();
    assert_eq!(kind, CancelKind::Signal);
    ran_by_then.sort_by_key(|&(name, ..)| name);
    assert_eq!(
        ran_by_then,
        [
            ("grandchild", cancelling_thread, CancelKind::Signal),
            ("root", cancelling_thread, CancelKind::Signal),
        ]
    );
    assert!(!callback.unregister(), "it ran, so it cannot be removed");

    // On a token already cancelled, the callback runs before `on_cancel` returns, on the
    // registering thread (here an executor's).
    let (late, registering_thread) = R::block_on(async {
        let child = child.clone();
        R::spawn(async move {
            let (ran, late) = mpsc::channel();
            let _callback = child.on_cancel(move |reason| {
                ran.send((thread::current().id(), reason.kind())).unwrap()
            });
            (late.try_recv(), thread::current().id())
        })
        .await
    });
    assert_eq!(late, Ok((registering_thread, CancelKind::Signal)));
}

fn any_of_wakes_on_shutdown_with_its_reason<R: Runtime>() {
    let server = CancellationToken::new();
    let request = server.child_token();
    let shutdown = CancellationToken::new();
    let linked = CancellationToken::any_of([&request, &shutdown]);
    let (parked, canceller) = cancel_after_signals(1, {
        let shutdown = shutdown.clone();
        move || shutdown.cancel_with(CancelReason::shutdown().with_message("deploy"))
    });
    let reason = R::block_on(async {
        let linked = linked.clone();
        R::spawn(async move {
            let waiting = linked.clone().cancelled_owned();
            after_parking(waiting, || parked.send(()).unwrap()).await;
            linked.reason()
        })
        .await
    });
    assert!(canceller.join().unwrap());
    let reason = reason.expect("woken with a reason");
    assert_eq!(reason.kind(), CancelKind::Shutdown);
    assert_eq!(reason.message(), Some("deploy"));
    assert_eq!(linked.reason(), Some(reason.clone()));
    assert!(!request.is_cancelled(), "never upward");
    assert!(!server.is_cancelled(), "never upward");

    // Linked after the shutdown: born cancelled, with the same reason, and does not wait.
    let late = CancellationToken::any_of([&request, &shutdown]);
    let late_reason = R::block_on(async {
        R::spawn(async move {
            assert!(poll_once(late.cancelled()).await.is_some());
            late.reason()
        })
        .await
    });
    assert_eq!(late_reason, Some(reason));
}

fn children_created_during_a_concurrent_cancel_are_cancelled<R: Runtime>() {
    const TASKS: usize = 64;
    const BORN_AFTER: usize = 100;
    let root = CancellationToken::new();
    let start = Arc::new(Barrier::new(2));
    // Makes children of `root` without pause, before, during and after the cancel.
    let creator = thread::spawn({
        let root = root.clone();
        let start = start.clone();
        move || {
            let mut children = Vec::new();
            let mut born_after = 0;
            while born_after < BORN_AFTER {
                let parent_was_cancelled = root.is_cancelled();
                let child = root.child_token();
                if parent_was_cancelled {
                    assert!(
                        child.is_cancelled(),
                        "a child of a cancelled token is born live"
                    );
                    born_after += 1;
                }
                children.push(child);
                if children.len() == 10 {
                    start.wait();
                }
            }
            children
        }
    });
    let canceller = thread::spawn({
        let root = root.clone();
        move || {
            start.wait();
            root.cancel_with(CancelKind::Shutdown)
        }
    });
    let kinds = R::block_on(async {
        // Tasks make their children and wait while the cancel is under way.
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let root = root.clone();
                R::spawn(async move {
                    let own = match i % 3 {
                        0 => root.child_token(),
                        1 => root.child_token().child_token(),
                        _ => CancellationToken::any_of([&root, &CancellationToken::new()]),
                    };
                    own.cancelled().await;
                    own.reason().map(|reason| reason.kind())
                })
            })
            .collect();
        join_all(tasks).await
    });
    assert!(canceller.join().unwrap());
    let children = creator.join().unwrap();
    assert!(children.len() >= 10 + BORN_AFTER);
    for child in &children {
        assert_eq!(child.reason().map(|r| r.kind()), Some(CancelKind::Shutdown));
    }
    assert!(kinds.iter().all(|kind| *kind == Some(CancelKind::Shutdown)));
}

fn drop_guard_held_by_a_task_wakes_the_waiters_when_the_task_ends<R: Runtime>() {
    let token = CancellationToken::new();
    // The tokens themselves do the hand-over: `parked` is cancelled once the waiter sleeps.
    let parked = CancellationToken::new();
    let kind = R::block_on(async {
        let waiter = R::spawn({
            let token = token.clone();
            let parked = parked.clone();
            async move {
                after_parking(token.cancelled(), || parked.cancel()).await;
                token.reason().map(|reason| reason.kind())
            }
        });
        let guard = token.clone().drop_guard();
        let holder = R::spawn(async move {
            let _guard = guard;
            parked.cancelled().await;
        });
        holder.await;
        waiter.await
    });
    assert_eq!(kind, Some(CancelKind::Manual));
}

/// One module per runtime, one `#[test]` per behaviour in each.
macro_rules! behavioural_suite {
    (runtimes { $($module:ident: $runtime:ident),* $(,)? } behaviours $behaviours:tt) => {
        $( behavioural_suite!(@module $module $runtime $behaviours); )*
    };
    (@module $module:ident $runtime:ident { $($behaviour:ident),* $(,)? }) => {
        mod $module {
            $(
                #[test]
                fn $behaviour() {
                    super::$behaviour::<super::$runtime>();
                }
            )*
        }
    };
}

behavioural_suite! {
    runtimes {
        smol: Smol,
        async_std: AsyncStd,
        futures_lite: FuturesLite,
        hand_written: HandWritten,
        tokio: Tokio,
    }
    behaviours {
        cancelled_future_wakes_when_another_thread_cancels,
        run_until_cancelled_gives_none_after_cancel_and_some_when_finished,
        cancelable_task_yields_the_reason_and_drops_its_inner_future,
        a_thousand_tasks_on_their_own_child_tokens_finish_after_one_root_cancel,
        take_until_cancelled_ends_a_stream_when_another_task_cancels,
        take_until_cancelled_ends_an_endless_stream_when_another_thread_cancels,
        on_cancel_callbacks_have_run_on_the_cancelling_thread_when_cancel_returns,
        any_of_wakes_on_shutdown_with_its_reason,
        children_created_during_a_concurrent_cancel_are_cancelled,
        drop_guard_held_by_a_task_wakes_the_waiters_when_the_task_ends,
    }
}
