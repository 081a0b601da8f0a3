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
mod races;
mod sensors;
mod systick;

use alloc::vec::Vec;

use cancelable::CancellationToken;
use cancelable_firmware::checks::Checks;
use cancelable_firmware::{MACHINE, heap, println};
use embassy_executor::Spawner;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    heap::init();
    let peripherals = cortex_m::Peripherals::take().expect("taken once, here");
    systick::start(peripherals.SYST);
    println!("# cancelable on {MACHINE}, embassy-executor, SysTick at 1 kHz");

    footprint();

    let mut checks = Checks::new();
    sensors::run(spawner, &mut checks).await;
    calibration::run(&mut checks).await;
    races::run(&mut checks);
    checks.finish()
}

/// Prints the heap a child token and an `on_cancel` callback take on this target.
fn footprint() {
    const N: usize = 8;
    let root = CancellationToken::new();
    let mut children = Vec::with_capacity(N);
    let mut callbacks = Vec::with_capacity(N);
    let start = heap::used();
    children.extend((0..N).map(|_| root.child_token()));
    let tokens = heap::used();
    callbacks.extend(children.iter().map(|child| child.on_cancel(|_| {})));
    let with_callbacks = heap::used();
    println!(
        "# heap: {} bytes per child token, {} per on_cancel callback",
        (tokens - start) / N,
        (with_callbacks - tokens) / N
    );
}
