//! Structured cancelation for async Rust, on every executor and without `std`.
//!
//! A [`CancellationToken`] is a handle to a node of a cancelation tree. Cancelling a node stops
//! everything below it (children, their children, tokens linked to it with
//! [`any_of`](CancellationToken::any_of)) and tells them why, with a [`CancelReason`]. Checking a
//! token is one atomic load; waiting for one works on any executor, in a blocking thread, or in a
//! `no_std` firmware loop, and allocates nothing: a pending `cancelled()` future is itself the
//! entry the token links to. The API is a superset of `tokio_util::sync::CancellationToken`,
//! without tokio.
//!
//! ```
//! use cancelable::{CancelKind, CancelReason, CancellationToken, FutureExt};
//! use futures_lite::future;
//!
//! let server = CancellationToken::new();
//! let request = server.child_token();
//!
//! // Work that stops when its token is cancelled, on whatever executor polls it.
//! let work = future::pending::<()>().cancelable(&request);
//!
//! // A callback runs on the cancelling thread, with the reason.
//! let _log = request.on_cancel(|reason| println!("request stopped: {reason}"));
//!
//! server.cancel_with(CancelReason::shutdown().with_message("deploy"));
//!
//! let err = future::block_on(work).unwrap_err();
//! assert_eq!(err.reason().kind(), CancelKind::Shutdown);
//! assert_eq!(err.to_string(), "operation cancelled (shutdown: deploy)");
//! ```
//!
//! # What is in the box
//!
//! * [`CancellationToken`]: `child_token`, `cancel`/`cancel_with`, `is_cancelled`, `reason`,
//!   `check`, `cancelled()` futures, `run_until_cancelled`, `on_cancel` callbacks, `any_of`
//!   (multi-parent) tokens, drop guards, and with `std` blocking waits and a panic guard.
//! * [`CancelReason`] and [`CancelKind`]: why a token was cancelled; descendants inherit it.
//! * [`Cancelled`]: the error type, for `?`.
//! * [`TaskTracker`]: tokio-util's task tracker without tokio, to wait until cancelled work has
//!   really stopped.
//! * [`WeakCancellationToken`] (from [`CancellationToken::downgrade`]): watches a token without
//!   keeping it alive; its [`released`](WeakCancellationToken::released) future resolves when the
//!   token is cancelled or its last handle is dropped (what timers that cancel later hold).
//! * [`FutureExt`] and [`StreamExt`]: `.cancelable(&token)`, `.with_cancellation_token(&token)`
//!   and `.take_until_cancelled(&token)` for any future or stream.
//! * [`Operation`]: a tracked unit of work (status, reason, progress, times) whose token is
//!   cancelled by its parents and by any `cancel_on` [`Source`]; [`OperationContext::shield`] regions
//!   that finish before a cancelation takes effect; with `std`, [`current()`] for deep code and a
//!   [`Registry`] to list, watch and cancel operations by id. [`LocalOperation`] is the same for
//!   single-threaded executors and firmware: its sources, body and callbacks need not be `Send`.
//!
//! # Which tool when
//!
//! Each tool binds work to a token; they differ in when the token is looked at, what happens
//! to the future at a cancel, and what they cost.
//!
//! | tool | output | at a cancel | cost |
//! |---|---|---|---|
//! | [`fut.cancelable(&token)`](FutureExt::cancelable) | `Result<T, Cancelled>` | The token is checked before every poll. The first poll that sees the cancel drops the future without polling it again and returns the reason. Use it to stop work at once. | 85 |
//! | [`token.run_until_cancelled(fut)`](CancellationToken::run_until_cancelled) | `Option<T>` | tokio-util's order. The token is checked on the first poll (cancelled: `None`, `fut` never polled); after that `fut` is polled first, so a result ready on the poll that sees the cancel is returned. `fut` is dropped on the poll that returns. | 73 |
//! | [`fut.with_cancellation_token(&token)`](FutureExt::with_cancellation_token) | `Option<T>` | tokio-util's order, with the token checked when the wrapper is made: a cancel between making and polling does not stop a future that is ready at once. `fut` lives until the wrapper is dropped. | 66 |
//! | [`Operation::run`] | `Result<T, Cancelled>` | `Err` as soon as the operation's own token is cancelled (by its parents, its `cancel_on` sources or by id through a [`Registry`]); the body is dropped then, unless it is inside a [`shield`](OperationContext::shield), which finishes first. Adds status, reason, progress and times for whoever watches it. | 1,155, 2 allocations (registered: 2,282, 2 allocations) |
//! | the adapters' `timeout(d, fut)` (`cancelable-smol`, `cancelable-async-std`) | `Result<T, Cancelled>` | `Err` with a `Timeout` reason once `d` has passed; the timer is only made if `fut` is pending on its first poll. | 104 (smol), 205 (async-std) |
//!
//! Cost: x86_64 instructions counted by callgrind (rustc 1.95, release) to make the wrapper
//! around an already-ready future, poll it once and drop it; polling the bare future costs 6,
//! and tokio-util 0.7.20's `run_until_cancelled` and `with_cancellation_token` cost 170 and
//! 164 in the same harness. The first three never allocate, also while waiting: a pending
//! one links itself into the token's list under the node's lock.
//!
//! # Guarantees
//!
//! 1. Cancelation reaches every live descendant and never goes up. When any `cancel*` call
//!    returns, even one that lost a race, every descendant reports `is_cancelled()`. Each of
//!    their callbacks has run, is running, or was taken by the `cancel` call on another thread
//!    that got there first, which runs it before it returns (that call never waits for the
//!    other, so a losing call can return before such a callback starts).
//! 2. Descendants carry the reason of the ancestor whose cancelation reached them; the first
//!    reason wins.
//! 3. A token observed cancelled has its reason, and its ancestors on the cancelling path are
//!    observed cancelled too.
//! 4. A child of a cancelled token is born cancelled.
//! 5. No lost wake-ups: a `cancelled()` future resolves whenever it is created or polled.
//! 6. Dropping a token's last handle unlinks it in O(1) and never cancels it.
//! 7. Nothing recurses: chains of a million tokens are created, cancelled and dropped safely.
//! 8. With `std`, a panicking callback or waker does not stop the others; the first panic
//!    resumes afterwards, unless the cancelling thread is already unwinding (a guard cancelling
//!    from a destructor), where it is reported by the panic hook and dropped instead of aborting
//!    the process. Without `std` the panic unwinds at once and the tree stays consistent: the
//!    next `cancel` that reaches the unfinished part finishes it, and a callback left unrun can
//!    still be unregistered.
//! 9. No lock is held while user code runs: callbacks, and a waker's `clone`, `wake` and `drop`.
//!    `is_cancelled`, `reason`, `clone` and dropping a handle that is not the last take no lock.
//! 10. Dropping a [`CancelCallback`] or calling [`unregister`](CancelCallback::unregister)
//!     prevents any later run, also while a cancelation is running callbacks ahead of it:
//!     `unregister() == true` exactly when the callback never runs.
//!
//! # Features
//!
//! | feature            | default | what it does                                                   |
//! |--------------------|---------|----------------------------------------------------------------|
//! | `std`              | yes     | [`wait_blocking`](CancellationToken::wait_blocking), [`wait_blocking_timeout`](CancellationToken::wait_blocking_timeout), [`PanicGuard`], panic isolation of callbacks, `parking_lot` locks that park instead of spinning. Without it the crate is `no_std` + `alloc`: node locks spin (they guard a few pointer writes), and a panicking callback or waker unwinds out of `cancel` at once (guarantee 8 says what holds then). |
//! | `critical-section` | no      | Hold node locks inside a [`critical-section`](https://docs.rs/critical-section). Enable it on targets where an interrupt handler may touch tokens: a spin lock taken by the interrupted code would otherwise never be released. You must provide a critical-section implementation. |
//! | `portable-atomic`  | no      | Take atomics (and `Arc`) from `portable-atomic`, for targets without native compare-and-swap such as `thumbv6m`. Combine with `critical-section` there. |
//! | `serde`            | no      | `Serialize`/`Deserialize` for [`CancelKind`] (snake case) and [`CancelReason`] (`{"kind", "message"}`), [`OperationSnapshot`] (status and reason as snake-case strings), [`Progress`] and [`RegistryStats`]. |
//! | `tracing`          | no      | A [`tracing`](https://docs.rs/tracing) span per operation (`id`, `name`) and an event at each status change with the reason. |
//!
//! With `default-features = false` the crate builds for bare-metal targets such as
//! `thumbv7em-none-eabihf`; bring an allocator and any executor.
#![no_std]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod callback;
mod ext;
mod guard;
mod operation;
mod reason;
#[cfg(feature = "std")]
mod registry;
mod sync;
mod task_tracker;
mod token;
mod tree;
mod wait;
mod weak;

pub use callback::CancelCallback;
pub use ext::{
    Cancelable, FutureExt, StreamExt, TakeUntilCancelled, WithCancellationTokenFuture,
    WithCancellationTokenFutureOwned,
};
#[cfg(feature = "std")]
pub use guard::PanicGuard;
pub use guard::{DropGuard, DropGuardRef};
#[cfg(feature = "std")]
pub use operation::current;
pub use operation::{
    CancelSource, Flavor, Local, LocalOperation, LocalOperationContext, Operation,
    OperationBuilder, OperationContext, OperationError, OperationId, OperationSnapshot,
    OperationStatus, Progress, ProgressStream, Run, Sendable, Shield, Source, SourceFuture, TryRun,
};
pub use reason::{CancelKind, CancelReason, Cancelled};
#[cfg(feature = "std")]
pub use registry::{DEFAULT_HISTORY, OperationFilter, Registry, RegistryStats};
pub use task_tracker::{TaskTracker, TaskTrackerToken, TaskTrackerWaitFuture, TrackedFuture};
pub use token::CancellationToken;
pub use wait::{
    RunUntilCancelledFuture, RunUntilCancelledFutureOwned, WaitForCancellationFuture,
    WaitForCancellationFutureOwned,
};
pub use weak::{Released, WeakCancellationToken};
