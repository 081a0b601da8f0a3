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

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;

use crate::reason::Cancelled;
use crate::sync::Arc;
use crate::token::CancellationToken;

mod context;
#[cfg(feature = "std")]
mod current;
mod progress;
mod run;
mod shield;
mod source;
mod status;

pub use context::OperationContext;
pub(crate) use context::Shared;
#[cfg(feature = "std")]
pub use current::current;
pub use progress::{Progress, ProgressStream};
pub use run::{OperationError, Run, TryRun};
pub use shield::Shield;
pub use source::{CancelSource, Source, SourceFuture};
pub use status::{OperationId, OperationSnapshot, OperationStatus};

use context::{ProgressFn, SharedInit, StatusFn};
use run::BoxedSource;

/// A builder for one tracked unit of work; [`run`](Operation::run) or
/// [`try_run`](Operation::try_run) start it.
///
/// ```
/// use cancelable::{Operation, OperationStatus};
/// use futures_lite::future;
///
/// let rows = future::block_on(
///     Operation::new("count")
///         .on_status(|snap| eprintln!("{} is {}", snap.name, snap.status))
///         .run(|cx| async move {
///             cx.report_progress(10, Some(10), "rows");
///             Ok(10)
///         }),
/// );
/// assert_eq!(rows, Ok(10));
/// ```
#[must_use = "an operation does nothing until `run` or `try_run` is awaited"]
pub struct Operation {
    name: String,
    id: Option<OperationId>,
    metadata: BTreeMap<String, String>,
    parents: Vec<CancellationToken>,
    parent_id: Option<OperationId>,
    sources: Vec<BoxedSource>,
    on_progress: Vec<ProgressFn>,
    on_status: Vec<StatusFn>,
    #[cfg(feature = "std")]
    registry: Option<crate::registry::Registry>,
}

impl Operation {
    /// A builder for an operation called `name` (names need not be unique; ids are).
    ///
    /// ```
    /// let op = cancelable::Operation::new("import");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: None,
            metadata: BTreeMap::new(),
            parents: Vec::new(),
            parent_id: None,
            sources: Vec::new(),
            on_progress: Vec::new(),
            on_status: Vec::new(),
            #[cfg(feature = "std")]
            registry: None,
        }
    }

    /// Uses `id` instead of a generated one. Ids of live operations in one registry must be
    /// unique: a second live operation with the same id hides the first from lookups by id.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let id = futures_lite::future::block_on(
    ///     Operation::new("job").id("7f3a").run(|cx| async move { Ok(cx.id().to_string()) }),
    /// );
    /// assert_eq!(id.unwrap(), "7f3a");
    /// ```
    pub fn id(mut self, id: impl Into<OperationId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds a metadata pair, shown in snapshots (a second value for a key replaces the first).
    ///
    /// ```
    /// use cancelable::Operation;
    /// let snap = futures_lite::future::block_on(
    ///     Operation::new("import")
    ///         .metadata("file", "rows.csv")
    ///         .run(|cx| async move { Ok(cx.snapshot()) }),
    /// )
    /// .unwrap();
    /// assert_eq!(snap.metadata.get("file").map(String::as_str), Some("rows.csv"));
    /// ```
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Cancels the operation when `token` is cancelled, with the token's reason. Call it
    /// several times for several parents: the first to be cancelled wins.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancellationToken, Operation};
    /// use futures_lite::future;
    ///
    /// let (server, request) = (CancellationToken::new(), CancellationToken::new());
    /// let run = Operation::new("handler")
    ///     .parent(&server)
    ///     .parent(&request)
    ///     .run(|_| future::pending::<Result<(), _>>());
    /// request.cancel_with(CancelKind::Disconnected);
    /// let err = future::block_on(run).unwrap_err();
    /// assert_eq!(err.reason().kind(), CancelKind::Disconnected);
    /// assert!(!server.is_cancelled());
    /// ```
    pub fn parent(mut self, token: &CancellationToken) -> Self {
        self.parents.push(token.clone());
        self
    }

    /// Makes this operation a child of another one: cancelled with it (like
    /// [`parent`](Operation::parent) with its token) and listed with its id as `parent_id`.
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::future;
    ///
    /// future::block_on(Operation::new("outer").run(|outer| async move {
    ///     let inner = Operation::new("inner").child_of(&outer).run(|cx| async move {
    ///         Ok(cx.parent_id().cloned())
    ///     });
    ///     assert_eq!(inner.await?.as_ref(), Some(outer.id()));
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn child_of(mut self, parent: &OperationContext) -> Self {
        self.parent_id = Some(parent.id().clone());
        self.parent(parent.token())
    }

    /// Cancels the operation when `source` fires: a [`Source`] (any future and the reason it
    /// cancels with when it completes), or any future whose output is the [`CancelReason`] to
    /// cancel with. Timers of any runtime, signals, conditions, a joined future for "all of":
    /// the runtime adapters' `sources::*` plug in as they are. Sources are polled with the
    /// operation and dropped as soon as it ends or is cancelled. The first source seen complete
    /// wins and its reason is recorded; sources that complete between the same two polls of the
    /// operation count in the order they were added.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason, Operation, Source};
    /// use futures_lite::future;
    ///
    /// let run = Operation::new("quick")
    ///     .cancel_on(Source::new(future::pending::<()>(), CancelReason::timeout()))
    ///     .cancel_on(async { CancelReason::condition().with_message("ready at once") })
    ///     .run(|_| future::pending::<Result<(), _>>());
    /// let err = future::block_on(run).unwrap_err();
    /// assert_eq!(err.reason().kind(), CancelKind::Condition);
    /// ```
    pub fn cancel_on<S>(mut self, source: S) -> Self
    where
        S: CancelSource,
        S::Future: Send + 'static,
    {
        self.sources.push(Box::pin(source.into_cancel_future()));
        self
    }

    /// Calls `f` with the operation's id and each progress report, on the reporting thread.
    /// With `std` a panic in `f` is caught: the body and the other callbacks go on.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let run = Operation::new("t")
    ///     .on_progress(|id, p| eprintln!("{id}: {p}"))
    ///     .run(|cx| async move { Ok(cx.report_progress(1, Some(2), "files")) });
    /// futures_lite::future::block_on(run).unwrap();
    /// ```
    pub fn on_progress<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationId, &super::Progress) + Send + Sync + 'static,
    {
        self.on_progress.push(Box::new(f));
        self
    }

    /// Calls `f` with a snapshot at each status change (`Running`, then the terminal one),
    /// on the thread that made the change. With `std` a panic in `f` is caught.
    ///
    /// ```
    /// use cancelable::{Operation, OperationStatus};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let run = Operation::new("t")
    ///     .on_status(move |snap| log.lock().unwrap().push(snap.status))
    ///     .run(|_| async { Ok(()) });
    /// futures_lite::future::block_on(run).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [OperationStatus::Running, OperationStatus::Completed]);
    /// ```
    pub fn on_status<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationSnapshot) + Send + Sync + 'static,
    {
        self.on_status.push(Box::new(f));
        self
    }

    /// Lists the operation in `registry` from `run` until it ends; then its final snapshot
    /// moves to the registry's history.
    ///
    /// ```
    /// use cancelable::{Operation, OperationStatus, Registry};
    ///
    /// let registry = Registry::new();
    /// let run = Operation::new("job").register(&registry).run(|_| async { Ok(()) });
    /// let id = run.context().id().clone();
    /// assert_eq!(registry.get(&id).unwrap().status, OperationStatus::Pending);
    /// futures_lite::future::block_on(run).unwrap();
    /// assert_eq!(registry.get(&id).unwrap().status, OperationStatus::Completed);
    /// ```
    #[cfg(feature = "std")]
    pub fn register(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Starts the operation: `body` gets the context and returns a future whose output is
    /// `Result<T, Cancelled>` (so `cx.check()?` works). The returned future resolves to the
    /// value, or to `Err(Cancelled)` as soon as the operation is cancelled (the body is
    /// dropped then, unless it is inside a shield).
    ///
    /// The status is `Pending` until the first poll, `Running` then, and at the end
    /// `Completed`, or `Cancelled` (also when the body returns `Err(Cancelled)`), or `Failed`
    /// if the body panics (the panic then resumes). Dropping the future before it ends
    /// cancels the operation (reason `manual`).
    ///
    /// With `std`, an operation started while another one's body is being polled records that
    /// one as its `parent_id` (without linking their tokens: use
    /// [`child_of`](Operation::child_of) for that).
    ///
    /// ```
    /// use cancelable::Operation;
    /// let n = futures_lite::future::block_on(Operation::new("t").run(|_| async { Ok(5) }));
    /// assert_eq!(n, Ok(5));
    /// ```
    pub fn run<F, Fut, T>(self, body: F) -> Run<Fut>
    where
        F: FnOnce(OperationContext) -> Fut,
        Fut: Future<Output = Result<T, Cancelled>>,
    {
        let (cx, sources) = self.start();
        let body = body(cx.clone());
        Run::new(cx, body, sources)
    }

    /// Starts the operation with a fallible body. An `Err(e)` records `Failed` with `e`'s text
    /// and comes back as [`OperationError::Failed`]; a cancelation comes back as
    /// [`OperationError::Cancelled`] (also an error the body returns after the operation was
    /// cancelled: that is the cancelation seen through `?`).
    ///
    /// ```
    /// use cancelable::{Operation, OperationError};
    /// use futures_lite::future;
    ///
    /// let out = future::block_on(Operation::new("read").try_run(|_| async {
    ///     Err::<(), _>(std::io::Error::other("disk full"))
    /// }));
    /// match out {
    ///     Err(OperationError::Failed(e)) => assert_eq!(e.to_string(), "disk full"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn try_run<F, Fut, T, E>(self, body: F) -> TryRun<Fut>
    where
        F: FnOnce(OperationContext) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let (cx, sources) = self.start();
        let body = body(cx.clone());
        TryRun::new(cx, body, sources)
    }

    fn start(self) -> (OperationContext, Vec<BoxedSource>) {
        #[cfg_attr(not(feature = "std"), allow(unused_variables))]
        let (generated, seq) = status::generate();
        let id = self.id.unwrap_or(generated);
        let token = match self.parents.as_slice() {
            [] => CancellationToken::new(),
            [parent] => parent.child_token(),
            parents => CancellationToken::any_of(parents),
        };
        #[cfg(feature = "std")]
        let parent_id = self
            .parent_id
            .or_else(|| current::current().map(|cx| cx.id().clone()));
        #[cfg(not(feature = "std"))]
        let parent_id = self.parent_id;
        let shared = Arc::new(Shared::new(SharedInit {
            id,
            #[cfg(feature = "std")]
            seq,
            name: self.name,
            metadata: self.metadata,
            parent_id,
            token: token.clone(),
            on_progress: self.on_progress,
            on_status: self.on_status,
            #[cfg(feature = "std")]
            registry: self.registry,
        }));
        #[cfg(feature = "std")]
        if let Some(registry) = &shared.registry {
            registry.insert(&shared);
        }
        (OperationContext { shared, token }, self.sources)
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("metadata", &self.metadata)
            .field("parents", &self.parents.len())
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}
