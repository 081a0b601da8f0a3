//! The record one operation shares between its run future, its contexts and a registry, and
//! the [`OperationContext`] handle a body works with.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::future::Future;

use futures_core::Stream;

use crate::reason::{CancelReason, Cancelled};
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::token::CancellationToken;

use super::flavor::{Callbacks, Flavor, Metadata, ProgressFn, Sendable, StatusFn, sealed::Sealed};
use super::progress::{Progress, ProgressStream};
use super::record::{Record, RecordCopy};
use super::shield::Shield;
use super::status::{OperationId, OperationSnapshot, OperationStatus};

/// Everything known about one operation. Immutable fields are set by the builder; what changes
/// lives in the [`Record`], whose lock is never held while user code (callbacks) runs.
pub struct Shared<K: Sealed> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) metadata: Metadata,
    /// The operation's own token: cancelled by its parents, its sources, a registry or the user.
    pub(crate) token: CancellationToken,
    pub(crate) record: Record,
    callbacks: Option<Box<Callbacks<K>>>,
    /// Shields of this operation being polled: while it is not zero the body is not dropped.
    pub(crate) shield_depth: AtomicUsize,
    /// Polls of the body in progress, for shields to know they run inside it (with `std` the
    /// `current()` stack answers that exactly, per thread).
    #[cfg(not(feature = "std"))]
    pub(crate) body_polls: AtomicUsize,
    /// Polls of this operation's shields in progress, for a shield to know it is nested in
    /// another one (with `std` the `current()` stack answers that).
    #[cfg(not(feature = "std"))]
    pub(crate) shield_polls: AtomicUsize,
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
    #[cfg(feature = "std")]
    pub(crate) registration: Option<crate::registry::Registration>,
}

pub(crate) struct SharedInit<K: Sealed> {
    /// `None`: generated when first asked for.
    pub(crate) id: Option<OperationId>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) metadata: Metadata,
    pub(crate) parent_id: Option<OperationId>,
    pub(crate) token: CancellationToken,
    pub(crate) callbacks: Option<Box<Callbacks<K>>>,
    #[cfg(feature = "std")]
    pub(crate) registration: Option<crate::registry::Registration>,
}

impl<K: Flavor> Shared<K> {
    #[inline]
    pub(crate) fn new(init: SharedInit<K>) -> Self {
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "operation",
            id = %init.id.as_ref().expect("made with the `tracing` feature"),
            name = %init.name
        );
        Self {
            name: init.name,
            metadata: init.metadata,
            token: init.token,
            record: Record::new(init.id, init.parent_id),
            callbacks: init.callbacks,
            shield_depth: AtomicUsize::new(0),
            #[cfg(not(feature = "std"))]
            body_polls: AtomicUsize::new(0),
            #[cfg(not(feature = "std"))]
            shield_polls: AtomicUsize::new(0),
            #[cfg(feature = "tracing")]
            span,
            #[cfg(feature = "std")]
            registration: init.registration,
        }
    }

    /// The operation's id (made now if nobody asked for it before).
    pub(crate) fn id(&self) -> &OperationId {
        self.record.id()
    }

    pub(crate) fn parent_id(&self) -> Option<OperationId> {
        self.record.parent_id()
    }

    pub(crate) fn status(&self) -> OperationStatus {
        self.record.status()
    }

    pub(crate) fn snapshot(&self) -> OperationSnapshot {
        self.copy().into_snapshot()
    }

    /// A copy of the operation's record now.
    pub(crate) fn copy(&self) -> RecordCopy {
        self.record
            .copy(self.id().clone(), self.name.clone(), self.metadata.clone())
    }

    fn on_status(&self) -> &[StatusFn<K>] {
        self.callbacks.as_deref().map_or(&[], |c| &c.on_status)
    }

    fn on_progress(&self) -> &[ProgressFn<K>] {
        self.callbacks.as_deref().map_or(&[], |c| &c.on_progress)
    }

    /// `Pending → Running`, on the first poll of the run future, recording `parent` as the
    /// parent unless the operation has one (from `child_of`); `true` if it recorded it.
    ///
    /// # Safety
    /// Only the operation's run future calls it, and [`finish`](Self::finish) (it owns them
    /// exclusively, so they never run at the same time).
    pub(crate) unsafe fn start(&self, parent: Option<OperationId>) -> bool {
        // SAFETY: forwarded to the caller.
        let (changed, adopted) = unsafe { self.record.start(parent) };
        if changed {
            self.announce(OperationStatus::Running);
        }
        adopted
    }

    /// Records the terminal status, once: later calls change nothing and return `false`.
    ///
    /// The clock is read only if someone can see the end time: a registry, a status callback,
    /// or a handle other than the caller's `this` (a clone of the context, which a later
    /// snapshot could be made from). While `this` is the only handle, no other can be made:
    /// there is no weak handle, and `current()` only clones a context that is being polled.
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    pub(crate) unsafe fn finish(
        this: &Arc<Self>,
        status: OperationStatus,
        reason: Option<CancelReason>,
        error: Option<String>,
    ) -> bool {
        #[cfg(feature = "std")]
        let timed =
            this.registration.is_some() || this.callbacks.is_some() || Arc::strong_count(this) > 1;
        // Without `std` there is no clock.
        #[cfg(not(feature = "std"))]
        let timed = false;
        // SAFETY: forwarded to the caller.
        let changed = unsafe { this.record.finish(status, reason, error, timed) };
        if changed {
            this.announce(status);
        }
        changed
    }

    /// Records `Cancelled` with the token's reason, cancelling the token with `fallback` first
    /// so that the record and the token always agree.
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    pub(crate) unsafe fn finish_cancelled(this: &Arc<Self>, fallback: CancelReason) -> Cancelled {
        this.token.cancel_with(fallback);
        let reason = this.token.reason().unwrap_or_default();
        // SAFETY: forwarded to the caller.
        unsafe { Self::finish(this, OperationStatus::Cancelled, Some(reason.clone()), None) };
        Cancelled::new(reason)
    }

    /// Tells tracing, the registry and the status callbacks, in that order, so that a callback
    /// that looks the operation up finds it where its status says.
    #[inline]
    fn announce(&self, status: OperationStatus) {
        #[cfg(feature = "std")]
        let registered = self.registration.is_some() && status.is_terminal();
        #[cfg(not(feature = "std"))]
        let registered = false;
        if cfg!(feature = "tracing") || registered || self.callbacks.is_some() {
            self.tell(status);
        }
    }

    #[inline(never)]
    #[cfg_attr(
        not(any(feature = "std", feature = "tracing")),
        allow(unused_variables)
    )]
    fn tell(&self, status: OperationStatus) {
        #[cfg(feature = "tracing")]
        {
            let (reason, error) = self.record.outcome();
            tracing::info!(
                parent: &self.span,
                status = status.as_str(),
                reason = %OptDisplay(reason),
                error = error.unwrap_or(""),
                "operation status changed"
            );
        }
        // One copy of the record serves the registry's history and the callbacks' snapshot.
        #[cfg(feature = "std")]
        let finished = (self.registration.as_ref())
            .filter(|_| status.is_terminal())
            .map(|registration| (registration, self.copy()));
        let snapshot = (!self.on_status().is_empty()).then(|| {
            #[cfg(feature = "std")]
            if let Some((_, copy)) = &finished {
                return copy.snapshot();
            }
            self.snapshot()
        });
        #[cfg(feature = "std")]
        if let Some((registration, copy)) = finished {
            registration.finished(self, copy);
        }
        let Some(snapshot) = snapshot else {
            return;
        };
        for callback in self.on_status() {
            // A panicking callback is a bug in that callback; the operation and the other
            // callbacks go on (without `std` the panic cannot be caught).
            let _panic = crate::sync::catch(|| callback(&snapshot));
        }
    }

    pub(crate) fn report(&self, progress: Progress) {
        #[cfg(feature = "tracing")]
        tracing::trace!(parent: &self.span, progress = %progress, "operation progress");
        if self.on_progress().is_empty() {
            self.record.set_progress(progress);
            return;
        }
        self.record.set_progress(progress.clone());
        for callback in self.on_progress() {
            let _panic = crate::sync::catch(|| callback(self.id(), &progress));
        }
    }

    /// The token of the operation's body is cancelled and no shield holds it back.
    pub(crate) fn must_stop(&self) -> bool {
        self.token.is_cancelled() && self.shield_depth.load(Ordering::Acquire) == 0
    }
}

impl<K: Flavor> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("id", self.id())
            .field("name", &self.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Counts one poll in progress (of a body or a shield) until dropped, also when the poll unwinds.
#[cfg(not(feature = "std"))]
pub(crate) struct Polling<'a>(&'a AtomicUsize);

#[cfg(not(feature = "std"))]
impl<'a> Polling<'a> {
    pub(crate) fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

#[cfg(not(feature = "std"))]
impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(feature = "tracing")]
struct OptDisplay<'a>(Option<&'a CancelReason>);

#[cfg(feature = "tracing")]
impl fmt::Display for OptDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(reason) => fmt::Display::fmt(reason, f),
            None => Ok(()),
        }
    }
}

/// The handle a body gets from [`Operation::run`](crate::Operation::run): its token, its
/// identity, progress reports and shields. Cheap to clone (one reference count, two inside a
/// shield); clones may go to other tasks and threads.
///
/// Inside a [shield](OperationContext::shield_with) the context is the same operation with the
/// shield's own token, which the operation's cancelation does not reach.
///
/// ```
/// use cancelable::{CancelReason, Operation, OperationStatus};
/// use futures_lite::future;
///
/// let out = future::block_on(Operation::new("resize").run(|cx| async move {
///     assert_eq!(cx.name(), "resize");
///     assert_eq!(cx.status(), OperationStatus::Running);
///     cx.report_progress(1, Some(2), "images");
///     cx.check()?; // `Err(Cancelled)` once the operation is cancelled
///     Ok(cx.snapshot().progress.unwrap().done)
/// }));
/// assert_eq!(out, Ok(1));
/// ```
///
/// A [`LocalOperation`](crate::LocalOperation)'s body gets an
/// `OperationContext<Local<'_>>` ([`LocalOperationContext`](crate::LocalOperationContext)): the
/// same methods, but it stays on its thread, since its callbacks need not be `Send`.
pub struct OperationContext<K: Flavor = Sendable> {
    pub(crate) shared: Arc<Shared<K>>,
    /// Inside a shield, the shield's own token; `None` for the operation's own context, whose
    /// token is the operation's (so a context costs one reference count).
    pub(crate) shield: Option<CancellationToken>,
}

/// The context a [`LocalOperation`](crate::LocalOperation)'s body gets: not `Send`, valid
/// for `'a`.
///
/// ```
/// use cancelable::{LocalOperation, LocalOperationContext};
///
/// async fn step(cx: &LocalOperationContext<'_>) {
///     cx.report_progress(1, None, "step");
/// }
/// futures_lite::future::block_on(LocalOperation::new("t").run(|cx| async move {
///     step(&cx).await;
///     Ok(())
/// }))
/// .unwrap();
/// ```
pub type LocalOperationContext<'a> = OperationContext<super::flavor::Local<'a>>;

impl<K: Flavor> Clone for OperationContext<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            shield: self.shield.clone(),
        }
    }
}

impl<K: Flavor> OperationContext<K> {
    /// The token this context runs under: the operation's, or inside a shield the shield's.
    ///
    /// ```
    /// use cancelable::{FutureExt, Operation};
    /// use futures_lite::future;
    ///
    /// future::block_on(Operation::new("t").run(|cx| async move {
    ///     // Hand the token to code that knows nothing about operations.
    ///     async { 1 }.cancelable(cx.token()).await
    /// }))
    /// .unwrap();
    /// ```
    pub fn token(&self) -> &CancellationToken {
        self.shield.as_ref().unwrap_or(&self.shared.token)
    }

    /// The operation's id.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let id = futures_lite::future::block_on(
    ///     Operation::new("t").id("job-1").run(|cx| async move { Ok(cx.id().clone()) }),
    /// );
    /// assert_eq!(id.unwrap(), "job-1");
    /// ```
    pub fn id(&self) -> &OperationId {
        self.shared.id()
    }

    /// The operation's name.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let name = futures_lite::future::block_on(
    ///     Operation::new("t").run(|cx| async move { Ok(cx.name().to_owned()) }),
    /// );
    /// assert_eq!(name.unwrap(), "t");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The id of the operation this one was made a child of, or (with `std`) first polled in;
    /// `None` before the first poll unless it came from
    /// [`child_of`](crate::OperationBuilder::child_of). The parent's cancelation reaches this
    /// operation (see [`run`](crate::OperationBuilder::run)).
    ///
    /// ```
    /// use cancelable::Operation;
    /// let parent = futures_lite::future::block_on(
    ///     Operation::new("t").run(|cx| async move { Ok(cx.parent_id()) }),
    /// );
    /// assert_eq!(parent.unwrap(), None);
    /// ```
    pub fn parent_id(&self) -> Option<OperationId> {
        self.shared.parent_id()
    }

    /// `Err(Cancelled)` with the reason once this context's token is cancelled: a checkpoint
    /// for `?`.
    ///
    /// ```
    /// use cancelable::{CancelKind, Operation};
    /// let out: Result<(), _> = futures_lite::future::block_on(Operation::new("t").run(|cx| async move {
    ///     cx.token().cancel_with(CancelKind::Shutdown);
    ///     cx.check()?;
    ///     unreachable!()
    /// }));
    /// assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    /// ```
    pub fn check(&self) -> Result<(), Cancelled> {
        self.token().check()
    }

    /// `true` once this context's token is cancelled.
    ///
    /// ```
    /// use cancelable::Operation;
    /// futures_lite::future::block_on(Operation::new("t").run(|cx| async move {
    ///     assert!(!cx.is_cancelled());
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.token().is_cancelled()
    }

    /// Records progress (snapshots show the latest report) and calls the progress callbacks
    /// with the operation's id. A panicking callback does not reach the body or the other
    /// callbacks (with `std`).
    ///
    /// ```
    /// use cancelable::{Operation, Progress};
    /// let last = futures_lite::future::block_on(Operation::new("t").run(|cx| async move {
    ///     for i in 1..=3 {
    ///         cx.report_progress(i, Some(3), "steps");
    ///     }
    ///     Ok(cx.snapshot().progress)
    /// }));
    /// assert_eq!(last.unwrap(), Some(Progress::new(3, Some(3), "steps")));
    /// ```
    pub fn report_progress(
        &self,
        done: u64,
        total: Option<u64>,
        message: impl Into<Cow<'static, str>>,
    ) {
        self.shared.report(Progress::new(done, total, message));
    }

    /// Records a whole progress report, with its metadata, like
    /// [`report_progress`](Self::report_progress).
    ///
    /// ```
    /// use cancelable::{Operation, Progress};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let files = Arc::new(Mutex::new(Vec::new()));
    /// let seen = files.clone();
    /// futures_lite::future::block_on(
    ///     Operation::new("upload")
    ///         .on_progress(move |_, p| seen.lock().unwrap().push(p.metadata["file"].clone()))
    ///         .run(|cx| async move {
    ///             for (i, file) in ["a.csv", "b.csv"].into_iter().enumerate() {
    ///                 cx.report(Progress::new(i as u64 + 1, Some(2), "files").with_metadata("file", file));
    ///             }
    ///             Ok(())
    ///         }),
    /// )
    /// .unwrap();
    /// assert_eq!(*files.lock().unwrap(), ["a.csv", "b.csv"]);
    /// ```
    pub fn report(&self, progress: Progress) {
        self.shared.report(progress);
    }

    /// Cancels this context's token with `reason`: the operation's (its body is then dropped at
    /// its next await, unless a shield holds it), or inside a shield the shield's. A shortcut
    /// for `cx.token().cancel_with(reason)`; `true` if this call cancelled it.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason, Operation, OperationStatus};
    /// use futures_lite::future;
    ///
    /// let run = Operation::new("search").run(|cx| async move {
    ///     cx.cancel(CancelReason::condition().with_message("found it"));
    ///     future::yield_now().await; // stopped here
    ///     unreachable!()
    /// });
    /// let cx = run.context().clone();
    /// let err: Result<(), _> = future::block_on(run);
    /// assert_eq!(err.unwrap_err().reason().message(), Some("found it"));
    /// assert_eq!(cx.status(), OperationStatus::Cancelled);
    /// assert!(!cx.cancel(CancelKind::Manual), "cancelled already");
    /// ```
    pub fn cancel(&self, reason: impl Into<CancelReason>) -> bool {
        self.token().cancel_with(reason)
    }

    /// Runs `future` to completion even if the operation is cancelled meanwhile; if it was,
    /// the body stops right at the shield's end (the code after the shield does not run).
    ///
    /// A cancelation of the operation is held back while any of its shields runs. Nested
    /// shields end innermost first: a cancel that arrives during a shield takes effect at the
    /// end of the outermost shield of the body, whichever context (a clone of `cx`, a helper
    /// given `&cx`) opened the inner ones. Side by side shields (joined) all finish, and the
    /// code after none of them runs. Code in the shield that wants a token should use
    /// [`shield_with`](Self::shield_with) or [`current()`](crate::current): the operation's
    /// own `cx` stays cancelled.
    ///
    /// ```
    /// use cancelable::{CancelKind, Operation};
    /// use futures_lite::future;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// static FLUSHED: AtomicBool = AtomicBool::new(false);
    /// let out: Result<(), _> = future::block_on(Operation::new("save").run(|cx| async move {
    ///     let token = cx.token().clone();
    ///     cx.shield(async move {
    ///         token.cancel_with(CancelKind::Shutdown); // arrives mid-flush
    ///         future::yield_now().await;
    ///         FLUSHED.store(true, Ordering::SeqCst);
    ///     })
    ///     .await;
    ///     unreachable!("the operation was cancelled during the shield");
    /// }));
    /// assert!(FLUSHED.load(Ordering::SeqCst));
    /// assert_eq!(out.unwrap_err().reason().kind(), CancelKind::Shutdown);
    /// ```
    pub fn shield<F: Future>(&self, future: F) -> Shield<F, K> {
        self.shield_with(|_| future)
    }

    /// Like [`shield`](Self::shield), handing the shielded code its own context: same
    /// operation (id, progress), with a fresh token that the operation's cancelation does not
    /// reach but that the code can cancel or give to its own sources.
    ///
    /// ```
    /// use cancelable::{FutureExt, Operation};
    /// use futures_lite::future;
    ///
    /// let out = future::block_on(Operation::new("save").run(|cx| async move {
    ///     cx.token().cancel();
    ///     let flushed = cx
    ///         .shield_with(|shielded| async move {
    ///             assert!(shielded.check().is_ok()); // not reached by the cancel above
    ///             async { "flushed" }.cancelable(shielded.token()).await
    ///         })
    ///         .await;
    ///     Ok(flushed)
    /// }));
    /// assert!(out.is_err()); // the body stopped at the shield's end
    /// ```
    pub fn shield_with<F, Fut>(&self, f: F) -> Shield<Fut, K>
    where
        F: FnOnce(OperationContext<K>) -> Fut,
        Fut: Future,
    {
        let shielded = OperationContext {
            shared: self.shared.clone(),
            shield: Some(CancellationToken::new()),
        };
        let future = f(shielded.clone());
        Shield::new(future, shielded, self.is_main())
    }

    /// Wraps `stream`: it yields the same items, reports progress after every `every` items
    /// (and once at its end, with the final count), and ends when this context's token is
    /// cancelled. The total is the stream's exact size hint, if it has one. `every == 0` counts
    /// as 1.
    ///
    /// ```
    /// use cancelable::Operation;
    /// use futures_lite::{StreamExt, future, stream};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// future::block_on(
    ///     Operation::new("lines")
    ///         .on_progress(move |_, p| log.lock().unwrap().push(p.done))
    ///         .run(|cx| async move {
    ///             let mut lines = cx.progress_stream(stream::iter(0..25), 10);
    ///             while lines.next().await.is_some() {}
    ///             Ok(())
    ///         }),
    /// )
    /// .unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [10, 20, 25]);
    /// ```
    pub fn progress_stream<S: Stream>(&self, stream: S, every: u64) -> ProgressStream<S, K> {
        ProgressStream::new(stream, self, every)
    }

    /// The operation's status now.
    ///
    /// ```
    /// use cancelable::{Operation, OperationStatus};
    /// futures_lite::future::block_on(Operation::new("t").run(|cx| async move {
    ///     assert_eq!(cx.status(), OperationStatus::Running);
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn status(&self) -> OperationStatus {
        self.shared.status()
    }

    /// A copy of the operation's whole record now.
    ///
    /// ```
    /// use cancelable::Operation;
    /// let snap = futures_lite::future::block_on(
    ///     Operation::new("t").metadata("k", "v").run(|cx| async move { Ok(cx.snapshot()) }),
    /// )
    /// .unwrap();
    /// assert_eq!(snap.metadata["k"], "v");
    /// ```
    pub fn snapshot(&self) -> OperationSnapshot {
        self.shared.snapshot()
    }

    pub(crate) fn is_main(&self) -> bool {
        self.shield.is_none()
    }
}

impl OperationContext {
    /// The innermost operation whose body (or shield) is being polled on this thread; `None`
    /// outside every operation. The same as [`current()`](crate::current).
    ///
    /// ```
    /// use cancelable::{Operation, OperationContext};
    /// assert!(OperationContext::current().is_none());
    /// futures_lite::future::block_on(Operation::new("t").run(|_| async move {
    ///     assert_eq!(OperationContext::current().unwrap().name(), "t");
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    #[cfg(feature = "std")]
    pub fn current() -> Option<OperationContext> {
        super::current::current()
    }
}

impl<K: Flavor> fmt::Debug for OperationContext<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationContext")
            .field("id", self.id())
            .field("name", &self.shared.name)
            .field("shielded", &!self.is_main())
            .field("token", self.token())
            .finish()
    }
}
