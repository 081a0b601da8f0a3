//! The `cancel_after` memory test (`tests/memory_suite/mod.rs`) on async-std (written once in `cancelable-smol`).

use std::future::Future;

use cancelable_async_std as adapter;

#[global_allocator]
static ALLOCATOR: memory_suite::Counting = memory_suite::Counting;

fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}

#[path = "../../cancelable-smol/tests/memory_suite/mod.rs"]
mod memory_suite;
