//! The baseline of the size check: a minimal firmware with a heap and a future polled to
//! completion, without `cancelable`.
#![no_std]
#![no_main]

extern crate alloc;

use cancelable_firmware::{block_on, exit, heap};

#[cortex_m_rt::entry]
fn main() -> ! {
    heap::init();
    let value = alloc::boxed::Box::new(core::hint::black_box(1_u32));
    let ready = block_on(async { *value == 1 });
    exit(ready)
}
