//! The builder of operations, [`OperationBuilder`], in its two forms: [`Operation`] (parts
//! that are `Send`) and [`LocalOperation`] (parts that need not be).

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;

use crate::reason::Cancelled;
use crate::sync::Arc;
use crate::token::CancellationToken;

use super::context::{OperationContext, Shared, SharedInit};
use super::flavor::{BoxedSource, Callbacks, Flavor, Local, Metadata, Sendable};
use super::progress::Progress;
use super::run::{Run, TryRun};
use super::source::CancelSource;
use super::status::{OperationId, OperationSnapshot};

/// A builder for one tracked unit of work whose sources, callbacks and context may go to any
/// thread; [`run`](OperationBuilder::run) or [`try_run`](OperationBuilder::try_run) start it.
/// [`LocalOperation`] is the form for parts that are not `Send`.
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
pub type Operation = OperationBuilder<Sendable>;

/// A builder for an operation whose sources, body and callbacks need not be `Send` nor
/// `'static`: for single-threaded executors, firmware, and state in `Rc<RefCell<..>>`. Its
/// context ([`LocalOperationContext`](crate::LocalOperationContext)) and run future stay on the
/// thread that runs them. Everything else is as for [`Operation`]: status, reasons, progress,
/// shields, sources, with and without `std`, with the same allocations. It cannot be listed in a
/// [`Registry`](crate::Registry) (which other threads read), and [`current()`](crate::current)
/// does not hand its context out.
///
/// ```
/// use cancelable::{CancelKind, CancelReason, LocalOperation, OperationStatus};
/// use futures_lite::future;
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let (on_progress, on_status) = (log.clone(), log.clone());
/// let deadline = Rc::new(RefCell::new(false)); // a timer of a single-threaded executor
/// let timer = deadline.clone();
///
/// let run = LocalOperation::new("sample")
///     .cancel_on(async move {
///         future::poll_fn(|_| if *timer.borrow() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }).await;
///         CancelReason::timeout().with_message("sampling took too long")
///     })
///     .on_progress(move |_, p| on_progress.borrow_mut().push(p.to_string()))
///     .on_status(move |snap| on_status.borrow_mut().push(snap.status.to_string()))
///     .run(|cx| async move {
///         cx.report_progress(1, Some(2), "samples");
///         *deadline.borrow_mut() = true; // the deadline passes
///         future::yield_now().await;
///         cx.report_progress(2, Some(2), "samples"); // never reached
///         Ok(())
///     });
/// let err = future::block_on(run).unwrap_err();
/// assert_eq!(err.reason().kind(), CancelKind::Timeout);
/// assert_eq!(*log.borrow(), ["running", "1/2 samples (50%)", "cancelled"]);
/// ```
pub type LocalOperation<'a> = OperationBuilder<Local<'a>>;

/// The builder behind [`Operation`] and [`LocalOperation`]; the [`Flavor`] says what its parts
/// may be. Start from [`Operation::new`] or [`LocalOperation::new`].
///
/// ```
/// let op: cancelable::OperationBuilder<cancelable::Sendable> = cancelable::Operation::new("t");
/// ```
#[must_use = "an operation does nothing until `run` or `try_run` is awaited"]
pub struct OperationBuilder<K: Flavor> {
    name: Cow<'static, str>,
    id: Option<OperationId>,
    metadata: Metadata,
    parents: Parents,
    parent_id: Option<OperationId>,
    sources: Vec<BoxedSource<K>>,
    callbacks: Option<Box<Callbacks<K>>>,
    #[cfg(feature = "std")]
    registry: Option<crate::registry::Registry>,
}

impl OperationBuilder<Sendable> {
    /// A builder for an operation called `name` (names need not be unique). A `&'static str`
    /// is kept as it is; other names are passed as a `String`.
    ///
    /// ```
    /// let op = cancelable::Operation::new("import");
    /// let n = 7;
    /// let op = cancelable::Operation::new(format!("import {n}"));
    /// ```
    #[inline]
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::named(name.into())
    }

    /// Cancels the operation when `source` fires: a [`Source`](crate::Source) (any future and
    /// the reason it cancels with when it completes), or any future whose output is the
    /// [`CancelReason`](crate::CancelReason) to cancel with. Timers of any runtime, signals,
    /// conditions, a joined future for "all of": the runtime adapters' `sources::*` plug in as
    /// they are. Sources are polled with the operation and dropped as soon as it ends or is
    /// cancelled. The first source seen complete wins and its reason is recorded; sources that
    /// complete between the same two polls of the operation count in the order they were added.
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
    #[inline]
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
    #[inline]
    pub fn on_progress<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationId, &Progress) + Send + Sync + 'static,
    {
        self.callbacks
            .get_or_insert_default()
            .on_progress
            .push(Box::new(f));
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
    #[inline]
    pub fn on_status<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationSnapshot) + Send + Sync + 'static,
    {
        self.callbacks
            .get_or_insert_default()
            .on_status
            .push(Box::new(f));
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
    #[inline]
    pub fn register(mut self, registry: &crate::registry::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }
}

impl<'a> OperationBuilder<Local<'a>> {
    /// A builder for a local operation called `name` (see [`Operation::new`]).
    ///
    /// ```
    /// let op = cancelable::LocalOperation::new("sample");
    /// ```
    #[inline]
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::named(name.into())
    }

    /// Like [`Operation::cancel_on`], for a source that need be neither `Send` nor `'static`.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason, LocalOperation};
    /// use futures_lite::future;
    /// use std::cell::Cell;
    ///
    /// let expired = Cell::new(true); // borrowed by the source: not 'static
    /// let run = LocalOperation::new("t")
    ///     .cancel_on(async {
    ///         if expired.get() { CancelReason::timeout() } else { future::pending().await }
    ///     })
    ///     .run(|_| future::pending::<Result<(), _>>());
    /// assert_eq!(future::block_on(run).unwrap_err().reason().kind(), CancelKind::Timeout);
    /// ```
    #[inline]
    pub fn cancel_on<S>(mut self, source: S) -> Self
    where
        S: CancelSource,
        S::Future: 'a,
    {
        self.sources.push(Box::pin(source.into_cancel_future()));
        self
    }

    /// Like [`Operation::on_progress`], for a callback that need be neither `Send`, `Sync`
    /// nor `'static`.
    ///
    /// ```
    /// use cancelable::LocalOperation;
    /// use std::cell::Cell;
    ///
    /// let last = Cell::new(0);
    /// let run = LocalOperation::new("t")
    ///     .on_progress(|_, p| last.set(p.done))
    ///     .run(|cx| async move { Ok(cx.report_progress(3, None, "rows")) });
    /// futures_lite::future::block_on(run).unwrap();
    /// assert_eq!(last.get(), 3);
    /// ```
    #[inline]
    pub fn on_progress<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationId, &Progress) + 'a,
    {
        self.callbacks
            .get_or_insert_default()
            .on_progress
            .push(Box::new(f));
        self
    }

    /// Like [`Operation::on_status`], for a callback that need be neither `Send`, `Sync` nor
    /// `'static`.
    ///
    /// ```
    /// use cancelable::{LocalOperation, OperationStatus};
    /// use std::cell::RefCell;
    ///
    /// let seen = RefCell::new(Vec::new());
    /// let run = LocalOperation::new("t")
    ///     .on_status(|snap| seen.borrow_mut().push(snap.status))
    ///     .run(|_| async { Ok(()) });
    /// futures_lite::future::block_on(run).unwrap();
    /// assert_eq!(*seen.borrow(), [OperationStatus::Running, OperationStatus::Completed]);
    /// ```
    #[inline]
    pub fn on_status<F>(mut self, f: F) -> Self
    where
        F: Fn(&OperationSnapshot) + 'a,
    {
        self.callbacks
            .get_or_insert_default()
            .on_status
            .push(Box::new(f));
        self
    }
}

impl<K: Flavor> OperationBuilder<K> {
    #[inline]
    fn named(name: Cow<'static, str>) -> Self {
        Self {
            name,
            id: None,
            metadata: None,
            parents: Parents::None,
            parent_id: None,
            sources: Vec::new(),
            callbacks: None,
            #[cfg(feature = "std")]
            registry: None,
        }
    }

    /// Uses `id` instead of a generated one (generated ones are unique in the process). An
    /// explicit id may be reused: a [`Registry`](crate::Registry) lists, counts and cancels
    /// every live operation with it; [`get`](crate::Registry::get) gives the latest started.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let id = futures_lite::future::block_on(
    ///     Operation::new("job").id("7f3a").run(|cx| async move { Ok(cx.id().to_string()) }),
    /// );
    /// assert_eq!(id.unwrap(), "7f3a");
    /// ```
    #[inline]
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
    #[inline]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata
            .get_or_insert_default()
            .insert(key.into(), value.into());
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
    #[inline]
    pub fn parent(mut self, token: &CancellationToken) -> Self {
        self.parents = match self.parents {
            // The operation's own token, made now: a child of its only parent.
            Parents::None => Parents::One(token.child_token()),
            // That child stands for the first parent: it is cancelled with it, with its reason.
            // A second parent thus costs one more node than `any_of` over the parents would;
            // the one-parent case, by far the common one, takes no handle it would drop again.
            Parents::One(first) => Parents::Many(alloc::vec![first, token.clone()]),
            Parents::Many(mut parents) => {
                parents.push(token.clone());
                Parents::Many(parents)
            }
        };
        self
    }

    /// Makes this operation a child of another one (of either flavor): cancelled with it (like
    /// [`parent`](OperationBuilder::parent) with its token) and listed with its id as
    /// `parent_id`.
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::future;
    ///
    /// future::block_on(Operation::new("outer").run(|outer| async move {
    ///     let inner = Operation::new("inner").child_of(&outer).run(|cx| async move {
    ///         Ok(cx.parent_id())
    ///     });
    ///     assert_eq!(inner.await?.as_ref(), Some(outer.id()));
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    #[inline]
    pub fn child_of<J: Flavor>(mut self, parent: &OperationContext<J>) -> Self {
        self.parent_id = Some(parent.id().clone());
        self.parent(parent.token())
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
    /// `body` is called at the first poll, inside the operation (so [`current()`](crate::current)
    /// in it is this operation), and not at all if the operation is cancelled or dropped
    /// before. With `std`, an operation first polled inside another one's body (awaited or
    /// joined there) records that one as its `parent_id`, unless it has one from
    /// [`child_of`](OperationBuilder::child_of), and is cancelled with it, with its reason,
    /// wherever it runs afterwards. First polled inside a shield, it is the shield's token that
    /// reaches it: the shield protects it too. An operation first polled outside every
    /// operation (spawned onto an executor) has no such parent: use `child_of` for one.
    /// The returned future holds `body` until that first poll, so it is `Send` when both the
    /// closure and its future are (as with a closure that captures `Send` values).
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::future;
    ///
    /// let n = future::block_on(Operation::new("t").run(|_| async { Ok(5) }));
    /// assert_eq!(n, Ok(5));
    ///
    /// // The closure is called at the first poll, not here.
    /// let run = Operation::new("lazy").run(|_| -> future::Ready<Result<(), _>> {
    ///     unreachable!("never polled")
    /// });
    /// drop(run);
    /// ```
    #[inline]
    pub fn run<F, Fut, T>(self, body: F) -> Run<F, Fut, K>
    where
        F: FnOnce(OperationContext<K>) -> Fut,
        Fut: Future<Output = Result<T, Cancelled>>,
    {
        let (cx, sources) = self.start();
        Run::new(cx, body, sources)
    }

    /// Starts the operation with a fallible body. An `Err(e)` records `Failed` with `e`'s text
    /// and comes back as [`OperationError::Failed`](crate::OperationError::Failed); a
    /// cancelation comes back as [`OperationError::Cancelled`](crate::OperationError::Cancelled)
    /// (also an error the body returns after the operation was cancelled: that is the
    /// cancelation seen through `?`).
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
    #[inline]
    pub fn try_run<F, Fut, T, E>(self, body: F) -> TryRun<F, Fut, K>
    where
        F: FnOnce(OperationContext<K>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let (cx, sources) = self.start();
        TryRun::new(cx, body, sources)
    }

    fn start(self) -> (OperationContext<K>, Vec<BoxedSource<K>>) {
        let token = match self.parents {
            Parents::None => CancellationToken::new(),
            Parents::One(token) => token,
            Parents::Many(parents) => CancellationToken::any_of(&parents),
        };
        // The id is made when first asked for, unless a registry lists the operation now.
        #[cfg(feature = "std")]
        let (id, registration) = match self.registry {
            Some(registry) => {
                let (registration, id) = crate::registry::Registration::new(registry, self.id);
                (Some(id), Some(registration))
            }
            None => (self.id, None),
        };
        #[cfg(not(feature = "std"))]
        let id = self.id;
        // The span shows the id from its start.
        #[cfg(feature = "tracing")]
        let id = Some(id.unwrap_or_else(OperationId::generate));
        let shared = Arc::new(Shared::new(SharedInit {
            id,
            name: self.name,
            metadata: self.metadata,
            parent_id: self.parent_id,
            token,
            callbacks: self.callbacks,
            #[cfg(feature = "std")]
            registration,
        }));
        #[cfg(feature = "std")]
        K::register(&shared);
        (
            OperationContext {
                shared,
                shield: None,
            },
            self.sources,
        )
    }
}

impl<K: Flavor> fmt::Debug for OperationBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("id", &self.id)
            .field(
                "metadata",
                &self.metadata.as_deref().unwrap_or(&BTreeMap::new()),
            )
            .field("parents", &self.parents.len())
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

/// The parents given with [`OperationBuilder::parent`]: nearly always none or one, kept without
/// a `Vec`.
enum Parents {
    None,
    /// The operation's token, already made: a child of the only parent.
    One(CancellationToken),
    /// A child of the first parent, then the others: the token will be cancelled by any of them.
    Many(Vec<CancellationToken>),
}

impl Parents {
    fn len(&self) -> usize {
        match self {
            Parents::None => 0,
            Parents::One(_) => 1,
            Parents::Many(parents) => parents.len(),
        }
    }
}
