//! What every firmware image of this crate shares: the heap the core allocates from, output and
//! exit through semihosting, the panic handler, and the on-device checks.
//!
//! The images are `src/main.rs` (the scenario) and the minimal ones in `src/bin/` that
//! `run.sh --size` measures.
#![no_std]

pub mod checks;
pub mod heap;

use panic_semihosting as _;

pub use cortex_m_semihosting::hprintln as println;

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

/// Polls `future` until it is ready, spinning: all the executor the minimal images need.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Ends the emulation: qemu exits with status 0 when `success`, 1 otherwise.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Semihosting is off (the image runs on a board without a debugger): stop here.
    loop {
        cortex_m::asm::wfi();
    }
}

include!(concat!(env!("OUT_DIR"), "/machine.rs"));
