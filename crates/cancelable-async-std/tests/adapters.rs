//! The shared adapter suite, written once in `cancelable-smol`, on async-std.

use std::future::Future;

use cancelable_async_std as adapter;

fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}

fn spawn_detached(future: impl Future<Output = ()> + Send + 'static) {
    // Dropping an async-std JoinHandle detaches the task.
    drop(async_std::task::spawn(future));
}

#[path = "../../cancelable-smol/tests/adapter_suite/mod.rs"]
mod adapter_suite;
