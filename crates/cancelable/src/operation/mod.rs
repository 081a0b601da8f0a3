//! Operations: tracked units of work with sources, shields, progress and (with `std`) a
//! registry and [`current()`](crate::current).
//!
//! An [`Operation`] runs a body future under a token of its own. That token is cancelled by any
//! of the operation's parents, by any of its `cancel_on` sources (plain futures: timers,
//! signals, conditions from any runtime), by a [`Registry`](crate::Registry), or by the body
//! itself; the body is dropped as soon as it is, unless it is inside a [shield](OperationContext::shield).
//! The operation records its status, reason, progress and times.
//!
//! ```
//! use cancelable::{CancelKind, CancelReason, CancellationToken, Operation, OperationStatus, Source};
//! use futures_lite::future;
//!
//! let request = CancellationToken::new();
//! let (deadline_tx, deadline) = oneshot();
//!
//! let run = Operation::new("import")
//!     .parent(&request)
//!     .cancel_on(Source::new(deadline, CancelReason::timeout().with_message("import took over 30s")))
//!     .metadata("file", "rows.csv")
//!     .run(|cx| async move {
//!         for row in 0..3 {
//!             cx.check()?;
//!             cx.report_progress(row + 1, Some(3), "rows");
//!         }
//!         deadline_tx(); // the deadline passes
//!         future::pending::<()>().await; // stopped here, the body is dropped
//!         Ok(3)
//!     });
//! let cx = run.context().clone();
//! let err: cancelable::Cancelled = future::block_on(run).unwrap_err();
//! assert_eq!(err.reason().kind(), CancelKind::Timeout);
//! assert_eq!(cx.status(), OperationStatus::Cancelled);
//! assert_eq!(cx.snapshot().progress.unwrap().done, 3);
//!
//! # fn oneshot() -> (impl FnOnce(), impl std::future::Future<Output = ()> + Send + 'static) {
//! #     let token = CancellationToken::new();
//! #     let fire = token.clone();
//! #     (move || fire.cancel(), token.cancelled_owned())
//! # }
//! ```
//!
//! Sources are futures, so combining them needs no new API: the first of several is several
//! `cancel_on` calls (the first to complete wins and its reason is recorded), and "all of" is a
//! joined future:
//!
//! ```
//! use cancelable::{CancelReason, CancellationToken, Operation, Source};
//! use futures_lite::future;
//!
//! let (a, b) = (CancellationToken::new(), CancellationToken::new());
//! let both = future::zip(a.clone().cancelled_owned(), b.clone().cancelled_owned());
//! let run = Operation::new("until both")
//!     .cancel_on(Source::new(both, CancelReason::condition().with_message("a and b")))
//!     .run(|_| future::pending::<Result<(), _>>());
//! a.cancel();
//! b.cancel();
//! let err = future::block_on(run).unwrap_err();
//! assert_eq!(err.reason().message(), Some("a and b"));
//! ```

mod builder;
mod context;
#[cfg(feature = "std")]
mod current;
mod flavor;
mod progress;
mod record;
mod run;
mod shield;
mod source;
mod status;

pub use builder::{LocalOperation, Operation, OperationBuilder};
#[cfg(feature = "std")]
pub(crate) use context::Shared;
pub use context::{LocalOperationContext, OperationContext};
#[cfg(feature = "std")]
pub use current::current;
pub use flavor::{Flavor, Local, Sendable};
pub use progress::{Progress, ProgressStream};
#[cfg(feature = "std")]
pub(crate) use record::RecordCopy;
pub use run::{OperationError, Run, TryRun};
pub use shield::Shield;
pub use source::{CancelSource, Source, SourceFuture};
#[cfg(feature = "std")]
pub(crate) use status::next_seq;
pub use status::{OperationId, OperationSnapshot, OperationStatus};
