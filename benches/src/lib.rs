//! Shared helpers for the side-by-side benchmarks of `cancelable` (see `benches/benches/`).
//!
//! Nothing here knows about the peer crates (they are dev-dependencies only, so tokio stays out of the libraries); this is only
//! the plumbing every bench needs: polling a future once, a background thread that hammers or
//! churns while the measured thread works, a counting allocator, and a median timer for the
//! short `report`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    rounds: Arc<Padded>,
    handle: Option<JoinHandle<()>>,
}

/// A counter on its own cache line, so publishing it does not disturb what is measured.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

impl Background {
    /// Starts the thread and returns once it has run `step` at least once.
    pub fn spawn(mut step: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(Padded::default());
        let handle = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    step();
                    n += 1;
                    rounds.0.store(n, Ordering::Relaxed);
                }
            })
        };
        let this = Self {
            stop,
            rounds,
            handle: Some(handle),
        };
        while this.rounds() == 0 {
            std::hint::spin_loop();
        }
        this
    }

    /// How many times `step` has run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.0.load(Ordering::Relaxed)
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
    pub fn ns_per_op(&self, batch: impl FnMut(u64)) -> f64 {
        let [ns] = self.interleaved([Self::per_op(self.run_time, batch)]);
        ns
    }

    /// [`Timer::ns_per_op`] while `bg` contends. On a shared machine the background thread is not
    /// always running at the same time as the measured one; this takes twice the samples and
    /// keeps the half during which `bg` made the most progress, i.e. really ran alongside.
    pub fn ns_per_op_contended(&self, bg: &Background, batch: impl FnMut(u64)) -> f64 {
        let mut sample = Self::per_op(self.run_time, batch);
        let mut samples: Vec<(u64, f64)> = (0..2 * self.runs.max(1))
            .map(|_| {
                let before = bg.rounds();
                let ns = sample();
                (bg.rounds() - before, ns)
            })
            .collect();
        samples.sort_by_key(|s| std::cmp::Reverse(s.0));
        samples.truncate(self.runs.max(1));
        let mut ns: Vec<f64> = samples.into_iter().map(|(_, ns)| ns).collect();
        ns.sort_by(f64::total_cmp);
        ns[ns.len() / 2]
    }

    /// [`Timer::ns_per_op`] for two operations, their runs alternating so that both see the same
    /// background load (the machine may be shared); returns `(a, b)`.
    pub fn ns_per_op_pair(&self, a: impl FnMut(u64), b: impl FnMut(u64)) -> (f64, f64) {
        let [a, b] = self.interleaved([
            Box::new(Self::per_op(self.run_time, a)) as Box<dyn FnMut() -> f64>,
            Box::new(Self::per_op(self.run_time, b)),
        ]);
        (a, b)
    }

    /// [`Timer::ns_per_op`] for several operations, their runs alternating; the results in the
    /// same order.
    pub fn ns_per_op_all<'a, const N: usize>(
        &self,
        batches: [Box<dyn FnMut(u64) + 'a>; N],
    ) -> [f64; N] {
        self.interleaved(
            batches.map(|b| Box::new(Self::per_op(self.run_time, b)) as Box<dyn FnMut() -> f64>),
        )
    }

    /// Nanoseconds per element of an operation where `run()` sets up a fresh instance outside
    /// the clock and returns the time of the measured part, which handled `elements` elements.
    pub fn ns_per_element(&self, elements: usize, run: impl FnMut() -> Duration) -> f64 {
        let [ns] = self.interleaved([Self::per_element(elements, run)]);
        ns
    }

    /// [`Timer::ns_per_element`] for two operations, runs alternating; returns `(a, b)`.
    pub fn ns_per_element_pair(
        &self,
        elements: usize,
        a: impl FnMut() -> Duration,
        b: impl FnMut() -> Duration,
    ) -> (f64, f64) {
        let [a, b] = self.interleaved([
            Box::new(Self::per_element(elements, a)) as Box<dyn FnMut() -> f64>,
            Box::new(Self::per_element(elements, b)),
        ]);
        (a, b)
    }

    /// A sampler for `batch`, calibrated so that one sample takes about `run_time`.
    fn per_op(run_time: Duration, mut batch: impl FnMut(u64)) -> impl FnMut() -> f64 {
        let mut k = 1u64;
        loop {
            let t = Instant::now();
            batch(k);
            let dt = t.elapsed();
            if dt >= run_time / 2 || k >= 1 << 40 {
                let scale = run_time.as_secs_f64() / dt.as_secs_f64().max(1e-9);
                k = ((k as f64 * scale) as u64).max(1);
                break;
            }
            k *= 2;
        }
        move || {
            let t = Instant::now();
            batch(k);
            t.elapsed().as_nanos() as f64 / k as f64
        }
    }

    /// A sampler for `run`, after one warm-up run (pages in the allocator's memory).
    fn per_element(elements: usize, mut run: impl FnMut() -> Duration) -> impl FnMut() -> f64 {
        run();
        move || run().as_nanos() as f64 / elements as f64
    }

    /// Takes `runs` samples of each sampler, alternating between them, and returns the medians.
    fn interleaved<const N: usize>(&self, mut samplers: [impl FnMut() -> f64; N]) -> [f64; N] {
        let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
        for _ in 0..self.runs.max(1) {
            for (sampler, out) in samplers.iter_mut().zip(&mut samples) {
                out.push(sampler());
            }
        }
        samples.map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
    }
}

/// Runs `f` and returns how long it took.
pub fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// The CPU model, from `/proc/cpuinfo` where present (`unknown CPU` elsewhere). Ratios against
/// tokio-util depend on it: an uncontended atomic read-modify-write costs several times more on
/// some CPUs than on others, and the two crates do different numbers of them.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// One line about the machine: `arch, CPU model, N threads`.
pub fn machine() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{}, {}, {threads} threads",
        std::env::consts::ARCH,
        cpu_model()
    )
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
