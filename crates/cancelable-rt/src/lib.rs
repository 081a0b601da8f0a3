//! The runtime-free half of [`cancelable`]'s runtime adapters: timeouts, watchers that cancel a
//! token later (after a time, once a condition holds, on a signal), spawning under a token or
//! a [`TaskTracker`](cancelable::TaskTracker), and a graceful shutdown, written once over a
//! small [`Runtime`] trait.
//!
//! Application code does not use this crate directly: it uses an adapter, `cancelable-smol` or
//! `cancelable-async-std`, whose API is the same, so switching runtime is switching the import.
//! This crate is for two other readers:
//!
//! * **Authors of an adapter for another runtime.** Implement [`Runtime`] (spawn, spawn a
//!   blocking closure, detach a task, sleep) and invoke [`adapter!`]: the adapter's whole API,
//!   with its docs, is written for your runtime. That is all the two adapters of this
//!   workspace do.
//! * **Libraries generic over the runtime.** Every function here takes the runtime as a type
//!   parameter: `cancelable_rt::timeout::<R, _>(d, fut)` works on whatever runtime the library's
//!   user picks.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::CancellationToken;
//! use cancelable_rt::Runtime;
//!
//! /// A library function that runs on any runtime.
//! async fn fetch_with_deadline<R: Runtime>(request: &CancellationToken) -> Result<u32, cancelable::Cancelled> {
//!     let _limit = cancelable_rt::cancel_after::<R>(request, Duration::from_secs(30));
//!     cancelable_rt::timeout::<R, _>(Duration::from_secs(5), async { 200 }).await
//! }
//!
//! let request = CancellationToken::new();
//! let status = smol::block_on(fetch_with_deadline::<cancelable_smol::SmolRuntime>(&request));
//! assert_eq!(status, Ok(200));
//! ```
//!
//! Signals (unix) come through async-signal, whose stream runs on any executor, so a runtime
//! supplies no signal code of its own.
//!
//! # Features
//!
//! * `tracing`: report a panicking `cancel_when` predicate with `tracing::error!` instead of a
//!   line on standard error. The adapters turn it on with their own `tracing` feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adapter;
mod runtime;
#[cfg(unix)]
mod second_signal;
mod shutdown;
#[cfg(unix)]
mod signals;
pub mod sources;
mod spawn;
mod timeout;
mod watcher;

pub use runtime::Runtime;
#[cfg(unix)]
pub use second_signal::SecondSignal;
pub use shutdown::{ShutdownReport, shutdown};
#[cfg(unix)]
pub use signals::{Signal, cancel_on_signals};
pub use spawn::{JoinHandle, spawn, spawn_blocking_tracked, spawn_tracked};
pub use timeout::{timeout, timeout_at};
pub use watcher::{Watcher, cancel_after, cancel_when, cancel_when_async};

/// What [`adapter!`]'s expansion names; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use cancelable::{CancelReason, CancellationToken, Cancelled, Source, TaskTracker};
}
