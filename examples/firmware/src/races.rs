//! The interrupt against the thread: round after round, the SysTick handler cancels a root
//! token at whatever instruction the main task is at while it keeps creating children,
//! registering callbacks, polling `cancelled()` futures and dropping all three. After each
//! round every rule of the tree must hold: live children cancelled with the root's reason,
//! each callback run exactly once unless unregistered first, each pending future woken, a child
//! created afterwards born cancelled.

use alloc::boxed::Box;
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use cancelable::{CancelCallback, CancelReason, CancellationToken, WaitForCancellationFutureOwned};
use cancelable_firmware::checks::Checks;
use cancelable_firmware::{check, println};
use critical_section::Mutex;
use embassy_time::Instant;
use portable_atomic::{AtomicBool, Ordering};
use portable_atomic_util::Arc;
use portable_atomic_util::task::Wake;

use crate::alarm;

const ROUNDS: u32 = 200;
/// Entries alive at once; each step replaces the oldest.
const RING: usize = 6;

/// A waker that remembers being woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(this: Arc<Self>) {
        this.0.store(true, Ordering::Release);
    }
}

/// One child with a callback and a `cancelled()` future polled once.
struct Entry {
    child: CancellationToken,
    callback: CancelCallback,
    future: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set when the future was pending at its poll: then the cancel must wake it.
    woken: Option<Arc<Flag>>,
}

#[derive(Default)]
struct Tally {
    registered: u32,
    unregistered: u32,
    /// Entries alive at the cancel whose future was pending: each must have been woken.
    live_pending: u32,
    live_woken: u32,
    bad_children: u32,
    born_live: u32,
    not_in_systick: u32,
}

static RUNS: Mutex<Cell<u32>> = Mutex::new(Cell::new(0));
static WRONG_REASON: Mutex<Cell<u32>> = Mutex::new(Cell::new(0));

fn bump(counter: &Mutex<Cell<u32>>) {
    critical_section::with(|cs| {
        let count = counter.borrow(cs);
        count.set(count.get() + 1);
    });
}

fn read(counter: &Mutex<Cell<u32>>) -> u32 {
    critical_section::with(|cs| counter.borrow(cs).get())
}

fn new_entry(parent: &CancellationToken, message: &'static str, tally: &mut Tally) -> Entry {
    let child = parent.child_token();
    let callback = child.on_cancel(move |reason| {
        bump(&RUNS);
        if reason.message() != Some(message) {
            bump(&WRONG_REASON);
        }
    });
    tally.registered += 1;
    let mut future = Box::pin(child.clone().cancelled_owned());
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let woken = match future.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Pending => Some(flag),
        Poll::Ready(()) => None,
    };
    Entry {
        child,
        callback,
        future,
        woken,
    }
}

fn retire(entry: Entry, tally: &mut Tally) {
    if entry.callback.unregister() {
        tally.unregistered += 1;
    }
}

/// One round: work until the interrupt cancels `root`, then check the survivors.
fn round(number: u32, tally: &mut Tally) {
    // Round messages differ, so a callback that saw another round's reason is caught.
    const MESSAGES: [&str; 4] = [
        "round 0 mod 4",
        "round 1 mod 4",
        "round 2 mod 4",
        "round 3 mod 4",
    ];
    let message = MESSAGES[number as usize % MESSAGES.len()];
    let root = CancellationToken::new();
    alarm::cancel_at(
        Instant::from_ticks(Instant::now().as_ticks() + 1),
        root.clone(),
        CancelReason::timeout().with_message(message),
    );
    // Start each round at another offset from the tick, so the interrupt lands elsewhere.
    cortex_m::asm::delay(number * 97 % 4000);
    let mut ring: [Option<Entry>; RING] = [const { None }; RING];
    let mut step = 0;
    while !root.is_cancelled() {
        let slot = step % RING;
        if let Some(old) = ring[slot].take() {
            retire(old, tally);
        }
        // Every other entry hangs below the previous one, so the walk goes more than one level.
        let parent = match &ring[(slot + RING - 1) % RING] {
            Some(previous) if step % 2 == 1 => previous.child.clone(),
            _ => root.clone(),
        };
        ring[slot] = Some(new_entry(&parent, message, tally));
        step += 1;
    }
    if !alarm::fired().is_some_and(|f| f.in_systick) {
        tally.not_in_systick += 1;
    }
    for mut entry in ring.into_iter().flatten() {
        let ready = entry
            .future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready();
        let reason_ok = entry
            .child
            .reason()
            .is_some_and(|r| r.message() == Some(message));
        if !ready || !reason_ok {
            tally.bad_children += 1;
        }
        if let Some(flag) = &entry.woken {
            tally.live_pending += 1;
            if flag.0.load(Ordering::Acquire) {
                tally.live_woken += 1;
            }
        }
        retire(entry, tally);
    }
    if !root.child_token().is_cancelled() {
        tally.born_live += 1;
    }
}

/// Runs the rounds and checks the tallies.
pub fn run(checks: &mut Checks) {
    let mut tally = Tally::default();
    for number in 0..ROUNDS {
        round(number, &mut tally);
    }
    let runs = read(&RUNS);
    println!(
        "# races: {ROUNDS} rounds, {} callbacks registered, {runs} ran, {} unregistered first; {} futures pending at the cancel",
        tally.registered, tally.unregistered, tally.live_pending
    );
    check!(
        checks,
        tally.not_in_systick == 0 && tally.bad_children == 0,
        "races: in {ROUNDS} rounds SysTick cancelled the root mid-work; every live child ended cancelled with that round's reason"
    );
    check!(
        checks,
        runs + tally.unregistered == tally.registered && read(&WRONG_REASON) == 0,
        "races: every on_cancel ran exactly once with its round's reason, or was unregistered before it could"
    );
    check!(
        checks,
        tally.live_pending > 0 && tally.live_woken == tally.live_pending,
        "races: every cancelled() future pending at the cancel was woken ({} of {})",
        tally.live_woken,
        tally.live_pending
    );
    check!(
        checks,
        tally.born_live == 0,
        "races: a child created after each cancel was born cancelled"
    );
}
