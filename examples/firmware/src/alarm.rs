//! A cancelation fired by hardware: the SysTick interrupt handler cancels a token once its tick
//! comes. `cancelable`'s `critical-section` feature is what makes that sound: the interrupted
//! code may be inside the very token's lock, and holds it in a critical section, so the handler
//! only runs once the lock is free.

use core::cell::{Cell, RefCell};

use cancelable::{CancelReason, CancellationToken};
use cancelable_firmware::heap;
use cortex_m::peripheral::SCB;
use cortex_m::peripheral::scb::{Exception, VectActive};
use critical_section::Mutex;
use embassy_time::Instant;

struct Armed {
    at: u64,
    token: CancellationToken,
    reason: CancelReason,
}

/// What the interrupt handler saw when it cancelled the token.
#[derive(Clone, Copy, Debug)]
pub struct Fired {
    /// The tick it fired on.
    pub at: Instant,
    /// `cancel_with` returned `true`: this cancel was the one that took effect.
    pub performed: bool,
    /// The cancel ran in the SysTick exception handler.
    pub in_systick: bool,
    /// Heap allocations made during the cancel, callbacks included.
    pub allocations: usize,
}

static ARMED: Mutex<RefCell<Option<Armed>>> = Mutex::new(RefCell::new(None));
static FIRED: Mutex<Cell<Option<Fired>>> = Mutex::new(Cell::new(None));

/// Arms the alarm: at tick `at` the SysTick handler cancels `token` with `reason`. Forgets what
/// the last alarm did.
pub fn cancel_at(at: Instant, token: CancellationToken, reason: CancelReason) {
    let armed = Armed {
        at: at.as_ticks(),
        token,
        reason,
    };
    let previous = critical_section::with(|cs| {
        FIRED.borrow(cs).set(None);
        ARMED.borrow_ref_mut(cs).replace(armed)
    });
    // An alarm that never fired drops its token here, outside the critical section.
    drop(previous);
}

/// What happened when the alarm fired, once it has.
pub fn fired() -> Option<Fired> {
    critical_section::with(|cs| FIRED.borrow(cs).get())
}

/// Whether the code calling this runs in the SysTick exception handler.
pub fn in_systick() -> bool {
    SCB::vect_active() == VectActive::Exception(Exception::SysTick)
}

/// Called by the SysTick handler on every tick.
pub(crate) fn on_tick(now: u64) {
    let due = critical_section::with(|cs| {
        let mut armed = ARMED.borrow_ref_mut(cs);
        if armed.as_ref().is_some_and(|alarm| alarm.at <= now) {
            armed.take()
        } else {
            None
        }
    });
    let Some(alarm) = due else { return };
    let before = heap::allocations();
    // Interrupts stay enabled here: the core takes its own short critical sections.
    let performed = alarm.token.cancel_with(alarm.reason);
    let fired = Fired {
        at: Instant::from_ticks(now),
        performed,
        in_systick: in_systick(),
        allocations: heap::allocations() - before,
    };
    critical_section::with(|cs| FIRED.borrow(cs).set(Some(fired)));
}
