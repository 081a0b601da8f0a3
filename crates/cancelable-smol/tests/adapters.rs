//! The shared adapter suite (`tests/adapter_suite/mod.rs`) on smol.

use std::future::Future;

use cancelable_smol as adapter;

fn block_on<F: Future>(future: F) -> F::Output {
    smol::block_on(future)
}

fn spawn_detached(future: impl Future<Output = ()> + Send + 'static) {
    smol::spawn(future).detach();
}

mod adapter_suite;
