//! Shared helpers for the side-by-side benchmarks of `cancelable` (see `benches/benches/`).
//!
//! Nothing here knows about the peer crates (they are dev-dependencies, SPEC §1); this is only
//! the plumbing every bench needs: polling a future once, a background thread that hammers or
//! churns while the measured thread works, a counting allocator, and a median timer for the
//! short `report`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Polls `fut` once with a no-op waker: the waiter is registered but nothing will run it.
/// This is how a task that is parked on a token looks to the token.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// A thread that runs `step` in a loop until dropped, to measure one thread's operation while
/// another thread contends for the same token.
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Background {
    /// Starts the thread and returns once it has run `step` at least once.
    pub fn spawn(mut step: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let handle = {
            let (stop, started) = (stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    step();
                    rounds += 1;
                    started.store(true, Ordering::Relaxed);
                }
                rounds
            })
        };
        while !started.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------------------------

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that forwards to [`System`] and, while [`count_heap`] runs, counts
/// allocations and requested bytes. Install it in a binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
/// Outside [`count_heap`] it costs one relaxed load per call, so timings are not distorted.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to `System`; the counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            FREED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
            FREED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap cost of one object, averaged over many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heap {
    /// Requested bytes still live per object (so container slack, e.g. a parent's child list,
    /// counts; allocator rounding does not).
    pub bytes: f64,
    /// Allocator calls per object (allocations and reallocations).
    pub allocs: f64,
}

/// Runs `make()`, which must create `n` objects and keep them alive (in a container allocated
/// beforehand, so it is not counted), and reports the heap they hold per object. Only meaningful
/// in a binary whose global allocator is [`CountingAlloc`].
pub fn count_heap(n: usize, make: impl FnOnce()) -> Heap {
    let (a0, b0, f0) = (
        ALLOCS.load(Ordering::Relaxed),
        ALLOCATED.load(Ordering::Relaxed),
        FREED.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::SeqCst);
    make();
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let allocated = ALLOCATED.load(Ordering::Relaxed) - b0;
    let freed = FREED.load(Ordering::Relaxed) - f0;
    Heap {
        bytes: (allocated as f64 - freed as f64) / n as f64,
        allocs: allocs as f64 / n as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// Timing for the short report
// ---------------------------------------------------------------------------------------------

/// How long and how often the report measures each operation.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    /// Independent runs per operation; the median is reported.
    pub runs: usize,
    /// Wall time one run of a cheap operation should take.
    pub run_time: Duration,
}

impl Timer {
    /// Nanoseconds per call of an operation that `batch(k)` performs `k` times.
    /// Calibrates `k` so one run lasts about `run_time`, then takes the median of `runs` runs.
    pub fn ns_per_op(&self, mut batch: impl FnMut(u64)) -> f64 {
        let mut k = 1u64;
        loop {
            let t = Instant::now();
            batch(k);
            let dt = t.elapsed();
            if dt >= self.run_time / 2 || k >= 1 << 40 {
                let scale = self.run_time.as_secs_f64() / dt.as_secs_f64().max(1e-9);
                k = ((k as f64 * scale) as u64).max(1);
                break;
            }
            k *= 2;
        }
        self.median(|| {
            let t = Instant::now();
            batch(k);
            t.elapsed().as_nanos() as f64 / k as f64
        })
    }

    /// Nanoseconds per element of an operation where `run()` sets up a fresh instance outside
    /// the clock and returns the time of the measured part, which handled `elements` elements.
    pub fn ns_per_element(&self, elements: usize, mut run: impl FnMut() -> Duration) -> f64 {
        run(); // warm-up: page in the allocator's memory
        self.median(|| run().as_nanos() as f64 / elements as f64)
    }

    fn median(&self, mut sample: impl FnMut() -> f64) -> f64 {
        let mut v: Vec<f64> = (0..self.runs.max(1)).map(|_| sample()).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// Runs `f` and returns how long it took.
pub fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// One line about the machine: `arch, CPU model, N threads`, from `/proc/cpuinfo` where present.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{}, {cpu}, nproc {threads}", std::env::consts::ARCH)
}

/// Today's date (UTC) as `YYYY-MM-DD`, without a date crate.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Howard Hinnant's days-to-civil algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
