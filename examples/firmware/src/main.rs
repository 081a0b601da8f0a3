//! `cancelable` on a microcontroller: the scenario run under qemu by `run.sh`.
//!
//! Two sensor tasks sample under a token tree until a hardware interrupt (SysTick) cancels it;
//! then an `Operation` runs until its timeout source stops it. Each step checks itself and
//! prints `ok N - ...` or `not ok N - ...`; the last line is `firmware: N passed, M failed`,
//! and qemu's exit status is 0 only if every check passed.
#![no_std]
#![no_main]

extern crate alloc;

mod alarm;
mod calibration;
mod sensors;
mod systick;

use cancelable_firmware::checks::Checks;
use cancelable_firmware::{MACHINE, heap, println};
use embassy_executor::Spawner;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    heap::init();
    let peripherals = cortex_m::Peripherals::take().expect("taken once, here");
    systick::start(peripherals.SYST);
    println!("# cancelable on {MACHINE}, embassy-executor, SysTick at 1 kHz");

    let mut checks = Checks::new();
    sensors::run(spawner, &mut checks).await;
    calibration::run(&mut checks).await;
    checks.finish()
}
