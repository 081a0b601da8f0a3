//! The size check's token case: the baseline plus `new`, `child_token`, `cancel` and
//! `cancelled()`.
#![no_std]
#![no_main]

use cancelable::CancellationToken;
use cancelable_firmware::{block_on, exit, heap};

#[cortex_m_rt::entry]
fn main() -> ! {
    heap::init();
    let app = CancellationToken::new();
    let child = app.child_token();
    app.cancel();
    block_on(child.cancelled());
    exit(child.is_cancelled())
}
