//! The `cancel_after` memory test (`tests/memory_suite/mod.rs`) on smol.

use std::future::Future;

use cancelable_smol as adapter;

#[global_allocator]
static ALLOCATOR: memory_suite::Counting = memory_suite::Counting;

fn block_on<F: Future>(future: F) -> F::Output {
    smol::block_on(future)
}

mod memory_suite;
