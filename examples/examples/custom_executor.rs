//! `cancelable` on an executor written from scratch: no runtime crate at all.
//!
//! The tokens only ever use the `Waker` a future is polled with, so any executor works. This
//! one is the smallest honest single-threaded executor: tasks are futures it owns (they need not
//! be `Send`), a queue of runnable task ids that wakers push onto (a `Waker` made from
//! `std::task::Wake`, usable on any thread), timers kept in an `Rc<RefCell<..>>` on the
//! executor's thread, and a loop that polls whatever is runnable and sleeps on a condition
//! variable until the next timer when nothing is. A separate thread cancels the token; its
//! wake-ups cross threads.
//!
//! The last task is a `LocalOperation`: its timeout source, its body and its callbacks hold
//! `Rc`s (the executor's timers, a log), which a `Send` operation would reject.
//!
//! Run with `cargo run --example custom_executor`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use cancelable::{
    CancelReason, CancellationToken, FutureExt, LocalOperation, Source, StreamExt as _,
};
use futures_lite::{StreamExt as _, stream};

// ---------------------------------------------------------------------------------------------
// The executor.

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The ids of runnable tasks, shared by the executor loop and every waker.
struct Queue {
    runnable: Mutex<VecDeque<usize>>,
    /// Signalled when a task is pushed, so the idle executor sleeps instead of spinning.
    ready: Condvar,
}

impl Queue {
    fn push(&self, id: usize) {
        self.runnable.lock().unwrap().push_back(id);
        self.ready.notify_one();
    }

    /// The next runnable task, waiting for one until `deadline` (forever without one); `None`
    /// when the deadline came first.
    fn pop_or_wait(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut runnable = self.runnable.lock().unwrap();
        loop {
            if let Some(id) = runnable.pop_front() {
                return Some(id);
            }
            runnable = match deadline {
                None => self.ready.wait(runnable).unwrap(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.ready.wait_timeout(runnable, left).unwrap().0
                }
            };
        }
    }
}

/// What a task's `Waker` holds: its id and the queue, never the future, so the future need not
/// be `Send` while the waker may be used on any thread.
struct TaskWaker {
    id: usize,
    queue: Arc<Queue>,
    /// Set while the task sits in the queue, so many wakes before a poll queue it once.
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.push(self.id);
        }
    }
}

struct Task {
    name: &'static str,
    /// `None` once the future completed.
    future: Option<LocalFuture>,
    waker: Arc<TaskWaker>,
    polls: usize,
}

struct Executor {
    queue: Arc<Queue>,
    tasks: Vec<Task>,
    timers: Timers,
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
            timers: Timers::default(),
        }
    }

    /// This executor's timers, for the tasks' sleeps.
    fn timers(&self) -> Timers {
        self.timers.clone()
    }

    fn spawn(&mut self, name: &'static str, future: impl Future<Output = ()> + 'static) {
        let id = self.tasks.len();
        self.tasks.push(Task {
            name,
            future: Some(Box::pin(future)),
            waker: Arc::new(TaskWaker {
                id,
                queue: Arc::clone(&self.queue),
                queued: AtomicBool::new(true),
            }),
            polls: 0,
        });
        self.queue.push(id);
    }

    /// Runs until every spawned task has completed.
    fn run(&mut self) {
        let mut remaining = self.tasks.len();
        while remaining > 0 {
            self.timers.fire_expired();
            // Nothing runnable: sleep until a waker (maybe on another thread) pushes a task, or
            // until the next timer is due.
            let Some(id) = self.queue.pop_or_wait(self.timers.next_deadline()) else {
                continue;
            };
            let task = &mut self.tasks[id];
            // Clear the flag *before* polling: a wake during the poll must queue the task again.
            task.waker.queued.store(false, Ordering::Release);
            let Some(future) = task.future.as_mut() else {
                continue; // a stale wake of a finished task
            };
            task.polls += 1;
            let waker = Waker::from(Arc::clone(&task.waker));
            if future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                task.future = None;
                remaining -= 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timers, the one piece of "runtime" the tasks need. They live on the executor's thread in an
// `Rc<RefCell<..>>`, as in most single-threaded executors: the futures that use them are not
// `Send`. A real executor would keep a timer wheel; a list keeps this example short.

/// A pending sleep's deadline and the waker of its latest poll.
type TimerSlot = Rc<RefCell<(Instant, Option<Waker>)>>;

#[derive(Clone, Default)]
struct Timers(Rc<RefCell<Vec<TimerSlot>>>);

impl Timers {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep {
            timers: self.clone(),
            deadline: Instant::now() + duration,
            slot: None,
        }
    }

    /// Wakes the sleeps whose deadline has passed.
    fn fire_expired(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        self.0.borrow_mut().retain(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.0 > now {
                return true;
            }
            due.extend(slot.1.take());
            false
        });
        // Woken outside the borrow: a wake may run code that sleeps again.
        due.into_iter().for_each(Waker::wake);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.0.borrow().iter().map(|slot| slot.borrow().0).min()
    }
}

struct Sleep {
    timers: Timers,
    deadline: Instant,
    slot: Option<TimerSlot>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        match &self.slot {
            Some(slot) => slot.borrow_mut().1 = Some(cx.waker().clone()),
            None => {
                let slot = Rc::new(RefCell::new((deadline, Some(cx.waker().clone()))));
                self.timers.0.borrow_mut().push(Rc::clone(&slot));
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // A sleep dropped early (its task was cancelled) takes its timer with it.
        if let Some(slot) = self.slot.take() {
            self.timers.0.borrow_mut().retain(|s| !Rc::ptr_eq(s, &slot));
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let start = Instant::now();
    let elapsed = move || start.elapsed().as_millis();

    let token = CancellationToken::new();
    let mut executor = Executor::new();
    let timers = executor.timers();

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
    let (t, timer) = (token.clone(), timers.clone());
    executor.spawn("ticker", async move {
        let ticks = AtomicUsize::new(0);
        let outcome = t
            .run_until_cancelled(async {
                loop {
                    timer.sleep(Duration::from_millis(40)).await;
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
    let (t, timer) = (token.clone(), timers.clone());
    executor.spawn("short job", async move {
        let result = t
            .run_until_cancelled(async {
                timer.sleep(Duration::from_millis(30)).await;
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
    let (child, timer) = (token.child_token(), timers.clone());
    executor.spawn("long job", async move {
        let result = timer
            .sleep(Duration::from_secs(10))
            .cancelable(&child)
            .await;
        match result {
            Ok(()) => println!("long job: finished (unexpected)"),
            Err(cancelled) => println!("[{:>3} ms] long job: {cancelled}", elapsed()),
        }
    });

    // 5. A stream of readings that simply ends at the cancelation: the consumer needs no
    //    special case, its `while let` loop just sees the end of the stream.
    let (t, timer) = (token.clone(), timers.clone());
    executor.spawn("stream", async move {
        let readings = stream::unfold(0u32, move |n| {
            let sleep = timer.sleep(Duration::from_millis(60));
            async move {
                sleep.await;
                Some((n * 10, n + 1))
            }
        });
        let mut readings = Box::pin(readings.take_until_cancelled(&t));
        let mut count = 0;
        while let Some(value) = readings.next().await {
            count += 1;
            println!("[{:>3} ms] stream: reading {value}", elapsed());
        }
        println!("[{:>3} ms] stream: ended after {count} readings", elapsed());
    });

    // 6. A local operation: its timeout source, body and callbacks hold `Rc`s (the executor's
    //    timers, a log), so they are not `Send`. It also has the batch token as parent; its own
    //    100 ms timeout comes first.
    let log = Rc::new(RefCell::new(Vec::new()));
    let (progress_log, status_log, timer) = (log.clone(), log.clone(), timers.clone());
    let sweep = LocalOperation::new("sensor sweep")
        .parent(&token)
        .cancel_on(Source::new(
            timers.sleep(Duration::from_millis(100)),
            CancelReason::timeout().with_message("sweep took over 100 ms"),
        ))
        .on_progress(move |_, p| progress_log.borrow_mut().push(p.to_string()))
        .on_status(move |snap| {
            let line = match &snap.reason {
                Some(reason) => format!("{} ({reason})", snap.status),
                None => snap.status.to_string(),
            };
            println!("[{:>3} ms] local op: {line}", elapsed());
            status_log.borrow_mut().push(line);
        })
        .run(|cx| async move {
            for reading in 1..=10 {
                timer.sleep(Duration::from_millis(25)).await;
                cx.report_progress(reading, Some(10), "readings");
            }
            Ok(10)
        });
    executor.spawn("local op", async move {
        let outcome = sweep.await;
        let err = outcome.expect_err("the sweep needs 250 ms and has 100");
        println!("[{:>3} ms] local op: {err}", elapsed());
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
        println!("  {:<10} {}", task.name, task.polls);
    }
    println!("local op log: {:?}", log.borrow());
}
