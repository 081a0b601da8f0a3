//! `cancelable` on an executor written from scratch: no runtime crate at all.
//!
//! The tokens only ever use the `Waker` a future is polled with, so any executor works. This
//! one is the smallest honest executor: a queue of runnable tasks, a `Waker` made from
//! `std::task::Wake` on an `Arc<Task>` (waking pushes the task back onto the queue), and a
//! loop on one thread that polls whatever is runnable and sleeps on a condition variable when
//! nothing is. A separate timer thread cancels the token; its wake-ups cross threads.
//!
//! Run with `cargo run --example custom_executor`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use cancelable::{CancelReason, CancellationToken, FutureExt, StreamExt as _};
use futures_lite::{StreamExt as _, stream};

// ---------------------------------------------------------------------------------------------
// The executor.

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The run queue, shared by the executor loop and every waker.
struct Queue {
    runnable: Mutex<VecDeque<Arc<Task>>>,
    /// Signalled when a task is pushed, so the idle executor sleeps instead of spinning.
    ready: Condvar,
}

impl Queue {
    fn push(&self, task: Arc<Task>) {
        self.runnable.lock().unwrap().push_back(task);
        self.ready.notify_one();
    }
}

struct Task {
    name: &'static str,
    /// `None` once the future completed.
    future: Mutex<Option<BoxFuture>>,
    queue: Arc<Queue>,
    /// Set while the task sits in the queue, so many wakes before a poll queue it once.
    queued: AtomicBool,
    polls: AtomicUsize,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let queue = Arc::clone(&self.queue);
            queue.push(self);
        }
    }
}

struct Executor {
    queue: Arc<Queue>,
    tasks: Vec<Arc<Task>>,
}

impl Executor {
    fn new() -> Self {
        let queue = Arc::new(Queue {
            runnable: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        });
        Executor {
            queue,
            tasks: Vec::new(),
        }
    }

    fn spawn(&mut self, name: &'static str, future: impl Future<Output = ()> + Send + 'static) {
        let task = Arc::new(Task {
            name,
            future: Mutex::new(Some(Box::pin(future))),
            queue: Arc::clone(&self.queue),
            queued: AtomicBool::new(true),
            polls: AtomicUsize::new(0),
        });
        self.tasks.push(Arc::clone(&task));
        self.queue.push(task);
    }

    /// Runs until every spawned task has completed.
    fn run(&self) {
        let mut remaining = self.tasks.len();
        while remaining > 0 {
            let task = {
                let mut runnable = self.queue.runnable.lock().unwrap();
                loop {
                    if let Some(task) = runnable.pop_front() {
                        break task;
                    }
                    // Nothing to do: sleep until a waker (maybe on another thread) pushes a task.
                    runnable = self.queue.ready.wait(runnable).unwrap();
                }
            };
            // Clear the flag *before* polling: a wake during the poll must queue the task again.
            task.queued.store(false, Ordering::Release);
            let mut slot = task.future.lock().unwrap();
            let Some(future) = slot.as_mut() else {
                continue; // a stale wake of a finished task
            };
            task.polls.fetch_add(1, Ordering::Relaxed);
            let waker = Waker::from(Arc::clone(&task));
            if future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                *slot = None;
                remaining -= 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A sleep future, the one piece of "runtime" the tasks need. A real executor would keep a timer
// wheel; a thread per sleep keeps this example short and shows wakes arriving from elsewhere.

struct Sleep {
    deadline: Instant,
    started: bool,
}

fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + duration,
        started: false,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Poll::Ready(());
        }
        if !self.started {
            self.started = true;
            let waker = cx.waker().clone();
            let wait = self.deadline - now;
            thread::spawn(move || {
                thread::sleep(wait);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let start = Instant::now();
    let elapsed = move || start.elapsed().as_millis();

    let token = CancellationToken::new();
    let mut executor = Executor::new();

    // 1. A task that does nothing but wait for the cancelation.
    let t = token.clone();
    executor.spawn("waiter", async move {
        t.cancelled().await;
        println!(
            "[{:>3} ms] waiter: token cancelled, reason = {}",
            elapsed(),
            t.reason().unwrap()
        );
    });

    // 2. A periodic worker that is stopped in the middle of its loop.
    let t = token.clone();
    executor.spawn("ticker", async move {
        let ticks = AtomicUsize::new(0);
        let outcome = t
            .run_until_cancelled(async {
                loop {
                    sleep(Duration::from_millis(40)).await;
                    let n = ticks.fetch_add(1, Ordering::Relaxed) + 1;
                    println!("[{:>3} ms] ticker: tick {n}", elapsed());
                }
            })
            .await;
        // The loop never ends by itself: the only way out is the cancelation, hence `None`.
        assert!(outcome.is_none());
        let n = ticks.load(Ordering::Relaxed);
        println!(
            "[{:>3} ms] ticker: stopped by cancelation after {n} ticks",
            elapsed()
        );
    });

    // 3. A short job that finishes before the cancel: `run_until_cancelled` returns `Some`.
    let t = token.clone();
    executor.spawn("short job", async move {
        let result = t
            .run_until_cancelled(async {
                sleep(Duration::from_millis(30)).await;
                "report.pdf"
            })
            .await;
        println!(
            "[{:>3} ms] short job: finished first, result = {result:?}",
            elapsed()
        );
    });

    // 4. A long job wrapped with `cancelable`: the error carries the reason, the inner future
    //    (and its sleep) is dropped at the cancelation.
    let child = token.child_token();
    executor.spawn("long job", async move {
        let result = sleep(Duration::from_secs(10)).cancelable(&child).await;
        match result {
            Ok(()) => println!("long job: finished (unexpected)"),
            Err(cancelled) => println!("[{:>3} ms] long job: {cancelled}", elapsed()),
        }
    });

    // 5. A stream of readings that simply ends at the cancelation: the consumer needs no
    //    special case, its `while let` loop just sees the end of the stream.
    let t = token.clone();
    executor.spawn("stream", async move {
        let readings = stream::unfold(0u32, |n| async move {
            sleep(Duration::from_millis(60)).await;
            Some((n * 10, n + 1))
        });
        let mut readings = Box::pin(readings.take_until_cancelled(&t));
        let mut count = 0;
        while let Some(value) = readings.next().await {
            count += 1;
            println!("[{:>3} ms] stream: reading {value}", elapsed());
        }
        println!("[{:>3} ms] stream: ended after {count} readings", elapsed());
    });

    // The timer thread: a deadline for the whole batch, enforced from outside the executor.
    let t = token.clone();
    let timer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        println!(
            "[{:>3} ms] timer thread: deadline reached, cancelling",
            elapsed()
        );
        t.cancel_with(CancelReason::timeout().with_message("batch deadline of 150 ms"));
    });

    executor.run();
    timer.join().expect("timer thread");

    // Cancelation wakes only the tasks that wait: the waiter was polled twice (once to register,
    // once after the wake), not in a busy loop.
    println!(
        "all tasks completed after {} ms; polls per task:",
        elapsed()
    );
    for task in &executor.tasks {
        println!("  {:<10} {}", task.name, task.polls.load(Ordering::Relaxed));
    }
}
