//! Time for embassy on the Cortex-M SysTick: a 1 kHz tick, the timer queue it drives, and the
//! hook through which the tick handler fires [`alarm`](crate::alarm)s.
//!
//! Neither emulated board has an embassy HAL, and SysTick is on every Cortex-M, so the driver
//! is this page: each tick advances the clock and wakes the timers that are due.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cancelable_firmware::CORE_CLOCK_HZ;
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            queue.schedule_wake(at, waker);
            // Already due: wake it now rather than at the next tick.
            queue.next_expiration(self.ticks.borrow(cs).get());
        });
    }
}

/// Starts the tick. Call once, before anything waits for time.
pub fn start(mut syst: SYST) {
    const RELOAD: u64 = CORE_CLOCK_HZ as u64 / TICK_HZ - 1;
    const _: () = assert!(
        RELOAD <= 0x00ff_ffff,
        "SysTick's reload register has 24 bits"
    );
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD as u32);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    let now = critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        ticks.set(ticks.get() + 1);
        DRIVER.queue.borrow_ref_mut(cs).next_expiration(ticks.get());
        ticks.get()
    });
    crate::alarm::on_tick(now);
}
