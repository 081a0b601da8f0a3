//! [`Registry`]: the live operations of a process (or of one service) and a bounded history of
//! finished ones, for listing, dashboards and cancel-by-id.
//!
//! Locking: one `parking_lot` mutex per registry, taken for map and history updates; an
//! operation's own record lock may be taken inside it (never the other way round), and neither
//! is held while tokens are cancelled or callbacks run.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::string::String;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use std::vec::Vec;

use parking_lot::Mutex;

use crate::operation::{Flavor, OperationId, OperationSnapshot, OperationStatus, Sendable, Shared};
use crate::reason::CancelReason;
use crate::sync::Arc;
use crate::token::CancellationToken;

/// How many finished operations a registry keeps by default.
pub const DEFAULT_HISTORY: usize = 1000;

/// A thread-safe registry of operations: those registered with
/// [`Operation::register`](crate::Operation::register) are listed from `run` until they end,
/// then their final snapshot is kept in a bounded history. `Clone` shares the registry.
///
/// ```
/// use cancelable::{CancelReason, Operation, OperationFilter, OperationStatus, Registry};
/// use futures_lite::future;
///
/// let registry = Registry::new();
/// let run = Operation::new("import").register(&registry).run(|_| future::pending::<Result<(), _>>());
/// let id = run.context().id().clone();
///
/// assert_eq!(registry.list(&OperationFilter::new().name_contains("IMP")).len(), 1);
/// assert!(registry.cancel(&id, CancelReason::manual().with_message("from the dashboard")));
/// assert!(future::block_on(run).is_err());
///
/// let done = registry.get(&id).unwrap();
/// assert_eq!(done.status, OperationStatus::Cancelled);
/// assert_eq!(done.reason.unwrap().message(), Some("from the dashboard"));
/// assert!(!registry.cancel(&id, CancelReason::manual())); // finished: nothing to cancel
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    /// Live operations by id; ids need not be unique, so a slot may hold several.
    live: HashMap<OperationId, Slot>,
    history: VecDeque<OperationSnapshot>,
    capacity: usize,
    completed: u64,
    cancelled: u64,
    failed: u64,
    completed_time: Duration,
}

impl Registry {
    /// An empty registry keeping the last [`DEFAULT_HISTORY`] (1,000) finished operations.
    ///
    /// ```
    /// assert_eq!(cancelable::Registry::new().stats().active(), 0);
    /// ```
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// An empty registry keeping the last `capacity` finished operations (0 keeps none).
    ///
    /// ```
    /// use cancelable::{Operation, Registry};
    /// let registry = Registry::with_history(1);
    /// for _ in 0..3 {
    ///     futures_lite::future::block_on(
    ///         Operation::new("t").register(&registry).run(|_| async { Ok(()) }),
    ///     )
    ///     .unwrap();
    /// }
    /// assert_eq!(registry.stats().history, 1);
    /// assert_eq!(registry.stats().completed, 3);
    /// ```
    pub fn with_history(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                live: HashMap::new(),
                history: VecDeque::with_capacity(capacity.min(DEFAULT_HISTORY)),
                capacity,
                completed: 0,
                cancelled: 0,
                failed: 0,
                completed_time: Duration::ZERO,
            })),
        }
    }

    /// The process-wide registry, for code that has no registry of its own to pass around.
    ///
    /// ```
    /// use cancelable::{Operation, Registry};
    /// let run = Operation::new("global job").register(Registry::global()).run(|_| async { Ok(()) });
    /// let id = run.context().id().clone();
    /// futures_lite::future::block_on(run).unwrap();
    /// assert!(Registry::global().get(&id).is_some());
    /// ```
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Snapshots of the operations that match `filter`: the live ones in the order they were
    /// started, then the finished ones in the history, oldest first.
    ///
    /// ```
    /// use cancelable::{Operation, OperationFilter, OperationStatus, Registry};
    /// let registry = Registry::new();
    /// let _pending = Operation::new("a").register(&registry).run(|_| async { Ok(()) });
    /// let active = OperationFilter::new().status(OperationStatus::Pending);
    /// assert_eq!(registry.list(&active)[0].name, "a");
    /// ```
    pub fn list(&self, filter: &OperationFilter) -> Vec<OperationSnapshot> {
        let (mut live, finished) = {
            let inner = self.inner.lock();
            let live: Vec<_> = inner
                .live
                .values()
                .flat_map(Slot::iter)
                .filter(|op| filter.matches_static(&op.name, op.parent_id().as_ref()))
                .cloned()
                .collect();
            let finished: Vec<_> = if filter.active_only {
                Vec::new()
            } else {
                inner
                    .history
                    .iter()
                    .filter(|snap| filter.matches(snap))
                    .cloned()
                    .collect()
            };
            (live, finished)
        };
        // Records are read outside the registry lock; an operation that ends meanwhile is
        // shown with its final status (and may then also be in `finished`: keep one).
        live.sort_by_key(|op| op.seq);
        let mut out: Vec<_> = live
            .iter()
            .map(|op| op.snapshot())
            .filter(|snap| filter.matches(snap))
            .collect();
        out.retain(|snap| snap.status.is_active() || !finished.iter().any(|f| f.id == snap.id));
        out.extend(finished);
        out
    }

    /// A snapshot of the operation with this id: live (the latest started, if several live
    /// operations share the id), or else the latest in the history.
    ///
    /// ```
    /// assert!(cancelable::Registry::new().get("no such id").is_none());
    /// ```
    pub fn get(&self, id: impl AsRef<str>) -> Option<OperationSnapshot> {
        let id = id.as_ref();
        let live = {
            let inner = self.inner.lock();
            match inner.live.get(id) {
                Some(slot) => slot.latest().clone(),
                None => return inner.history.iter().rev().find(|s| s.id == *id).cloned(),
            }
        };
        Some(live.snapshot())
    }

    /// Cancels the live operations with this id (one, unless explicit ids were reused) with
    /// `reason`; `true` if this call cancelled one. It counts like
    /// [`cancel_all`](Registry::cancel_all): `false` for an unknown id, a finished operation,
    /// and a live one cancelled already (a shield may keep it live for a while).
    ///
    /// ```
    /// use cancelable::{CancelKind, Operation, Registry};
    /// let registry = Registry::new();
    /// let run = Operation::new("job").id("job-1").register(&registry).run(|_| async { Ok(()) });
    /// assert!(registry.cancel("job-1", CancelKind::Manual));
    /// assert!(!registry.cancel("job-1", CancelKind::Manual)); // cancelled already
    /// assert!(!registry.cancel("no such id", CancelKind::Manual));
    /// # drop(run);
    /// ```
    pub fn cancel(&self, id: impl AsRef<str>, reason: impl Into<CancelReason>) -> bool {
        let tokens: Vec<_> = match self.inner.lock().live.get(id.as_ref()) {
            Some(slot) => slot.iter().map(|op| op.token.clone()).collect(),
            None => return false,
        };
        cancel_each(tokens, reason.into()) > 0
    }

    /// Cancels every live operation with `reason`; returns how many this call cancelled: those
    /// live and not cancelled yet when it began. An operation cancelled already is not
    /// counted; one cancelled through its parent during the call is (the count does not depend
    /// on the order in which the registry visits them).
    ///
    /// ```
    /// use cancelable::{CancelKind, Operation, Registry};
    /// let registry = Registry::new();
    /// let a = Operation::new("a").register(&registry).run(|_| async { Ok(()) });
    /// let b = Operation::new("b").register(&registry).run(|_| async { Ok(()) });
    /// assert_eq!(registry.cancel_all(CancelKind::Shutdown), 2);
    /// assert!(futures_lite::future::block_on(a).is_err());
    /// # drop(b);
    /// ```
    pub fn cancel_all(&self, reason: impl Into<CancelReason>) -> usize {
        let tokens: Vec<_> = self
            .inner
            .lock()
            .live
            .values()
            .flat_map(Slot::iter)
            .map(|op| op.token.clone())
            .collect();
        cancel_each(tokens, reason.into())
    }

    /// Counts of live operations by status, of finished ones by outcome (since the registry
    /// was made, not only those in the history), and the mean duration of completed ones.
    ///
    /// ```
    /// use cancelable::{Operation, Registry};
    /// let registry = Registry::new();
    /// futures_lite::future::block_on(Operation::new("t").register(&registry).run(|_| async { Ok(()) }))
    ///     .unwrap();
    /// let stats = registry.stats();
    /// assert_eq!((stats.active(), stats.completed), (0, 1));
    /// assert!(stats.average_duration.is_some());
    /// ```
    pub fn stats(&self) -> RegistryStats {
        let inner = self.inner.lock();
        let (mut pending, mut running) = (0, 0);
        for op in inner.live.values().flat_map(Slot::iter) {
            match op.status() {
                OperationStatus::Pending => pending += 1,
                OperationStatus::Running => running += 1,
                // Ended a moment ago and about to leave the live map.
                _ => {}
            }
        }
        RegistryStats {
            pending,
            running,
            completed: inner.completed,
            cancelled: inner.cancelled,
            failed: inner.failed,
            history: inner.history.len(),
            average_duration: (inner.completed > 0).then(|| {
                let nanos = inner.completed_time.as_nanos() / u128::from(inner.completed);
                Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
            }),
        }
    }

    /// Removes finished operations that ended more than `older_than` ago from the history
    /// (`Duration::ZERO`: all of them); returns how many it removed. Live operations and the
    /// statistics' counters are untouched.
    ///
    /// ```
    /// use cancelable::{Operation, Registry};
    /// use std::time::Duration;
    ///
    /// let registry = Registry::new();
    /// futures_lite::future::block_on(Operation::new("t").register(&registry).run(|_| async { Ok(()) }))
    ///     .unwrap();
    /// assert_eq!(registry.cleanup(Duration::from_secs(3600)), 0);
    /// assert_eq!(registry.cleanup(Duration::ZERO), 1);
    /// assert_eq!(registry.stats().history, 0);
    /// ```
    pub fn cleanup(&self, older_than: Duration) -> usize {
        let now = SystemTime::now();
        let mut inner = self.inner.lock();
        let before = inner.history.len();
        inner.history.retain(|snap| {
            let age = snap
                .ended_at
                .and_then(|ended| now.duration_since(ended).ok())
                .unwrap_or(Duration::ZERO);
            !(older_than.is_zero() || age > older_than)
        });
        before - inner.history.len()
    }

    pub(crate) fn insert(&self, op: &Arc<Shared<Sendable>>) {
        let mut inner = self.inner.lock();
        match inner.live.entry(op.id.clone()) {
            Entry::Occupied(mut slot) => slot.get_mut().push(op.clone()),
            Entry::Vacant(slot) => {
                slot.insert(Slot::One(op.clone()));
            }
        }
    }

    /// Moves a finished operation from the live map to the history.
    pub(crate) fn finished<K: Flavor>(&self, op: &Shared<K>, snapshot: OperationSnapshot) {
        let mut inner = self.inner.lock();
        // Only this operation's own entry: other live ones may share its id.
        if let Some(slot) = inner.live.get_mut(&op.id) {
            if slot.remove((op as *const Shared<K>).cast()) {
                inner.live.remove(&op.id);
            }
        }
        match snapshot.status {
            OperationStatus::Completed => {
                inner.completed += 1;
                inner.completed_time += snapshot.duration.unwrap_or_default();
            }
            OperationStatus::Cancelled => inner.cancelled += 1,
            _ => inner.failed += 1,
        }
        if inner.capacity == 0 {
            return;
        }
        if inner.history.len() == inner.capacity {
            inner.history.pop_front();
        }
        inner.history.push_back(snapshot);
    }
}

/// Cancels each token with `reason`; returns how many were not cancelled before (one cancelled
/// meanwhile through another counts: it was live and uncancelled when the call began).
fn cancel_each(tokens: Vec<CancellationToken>, reason: CancelReason) -> usize {
    let fresh: Vec<_> = tokens
        .into_iter()
        .filter(|token| !token.is_cancelled())
        .collect();
    // Outside the registry's lock: cancel callbacks run on this thread and may use it.
    for token in &fresh {
        token.cancel_with(reason.clone());
    }
    fresh.len()
}

/// The live operations that share one id: nearly always one, kept without a `Vec`.
enum Slot {
    One(Arc<Shared<Sendable>>),
    Many(Vec<Arc<Shared<Sendable>>>),
}

impl Slot {
    fn iter(&self) -> core::slice::Iter<'_, Arc<Shared<Sendable>>> {
        match self {
            Slot::One(op) => core::slice::from_ref(op).iter(),
            Slot::Many(ops) => ops.iter(),
        }
    }

    /// The latest started.
    fn latest(&self) -> &Arc<Shared<Sendable>> {
        self.iter()
            .max_by_key(|op| op.seq)
            .expect("a slot is never empty")
    }

    fn push(&mut self, op: Arc<Shared<Sendable>>) {
        match self {
            Slot::One(first) => *self = Slot::Many(std::vec![first.clone(), op]),
            Slot::Many(ops) => ops.push(op),
        }
    }

    /// Removes the operation whose record is at `op`; `true` if the slot is empty then.
    fn remove(&mut self, op: *const ()) -> bool {
        let is = |live: &Arc<Shared<Sendable>>| core::ptr::eq(Arc::as_ptr(live).cast(), op);
        match self {
            Slot::One(live) => is(live),
            Slot::Many(ops) => {
                ops.retain(|live| !is(live));
                ops.is_empty()
            }
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Registry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Registry")
            .field("live", &inner.live.len())
            .field("history", &inner.history.len())
            .field("capacity", &inner.capacity)
            .finish()
    }
}

/// Which operations [`Registry::list`] returns; every condition set must hold.
///
/// ```
/// use cancelable::{OperationFilter, OperationStatus};
/// let running_imports = OperationFilter::new()
///     .status(OperationStatus::Running)
///     .name_contains("import");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationFilter {
    status: Option<OperationStatus>,
    name: Option<String>,
    parent: Option<OperationId>,
    active_only: bool,
}

impl OperationFilter {
    /// A filter that matches every operation, live or finished.
    ///
    /// ```
    /// assert!(cancelable::Registry::new().list(&cancelable::OperationFilter::new()).is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only operations with this status.
    ///
    /// ```
    /// let f = cancelable::OperationFilter::new().status(cancelable::OperationStatus::Failed);
    /// ```
    pub fn status(mut self, status: OperationStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only operations whose name contains `text`, ignoring case.
    ///
    /// ```
    /// let f = cancelable::OperationFilter::new().name_contains("Import");
    /// ```
    pub fn name_contains(mut self, text: impl Into<String>) -> Self {
        self.name = Some(text.into().to_lowercase());
        self
    }

    /// Only operations whose `parent_id` is `parent`.
    ///
    /// ```
    /// let f = cancelable::OperationFilter::new().parent("job-1");
    /// ```
    pub fn parent(mut self, parent: impl Into<OperationId>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Only live operations (`Pending` or `Running`), not the history.
    ///
    /// ```
    /// let f = cancelable::OperationFilter::new().active();
    /// ```
    pub fn active(mut self) -> Self {
        self.active_only = true;
        self
    }

    /// `true` if `snapshot` passes every condition of the filter.
    ///
    /// ```
    /// use cancelable::{Operation, OperationFilter};
    /// futures_lite::future::block_on(Operation::new("Nightly import").run(|cx| async move {
    ///     assert!(OperationFilter::new().name_contains("IMPORT").matches(&cx.snapshot()));
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn matches(&self, snapshot: &OperationSnapshot) -> bool {
        self.matches_static(&snapshot.name, snapshot.parent_id.as_ref())
            && self.status.is_none_or(|status| status == snapshot.status)
            && (!self.active_only || snapshot.status.is_active())
    }

    /// The conditions on what never changes, checked before taking a snapshot.
    fn matches_static(&self, name: &str, parent: Option<&OperationId>) -> bool {
        self.name
            .as_ref()
            .is_none_or(|needle| name.to_lowercase().contains(needle.as_str()))
            && self
                .parent
                .as_ref()
                .is_none_or(|wanted| parent == Some(wanted))
    }
}

/// What [`Registry::stats`] returns.
///
/// ```
/// let stats = cancelable::Registry::new().stats();
/// assert_eq!((stats.pending, stats.running, stats.completed), (0, 0, 0));
/// assert_eq!(stats.average_duration, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RegistryStats {
    /// Live operations not polled yet.
    pub pending: usize,
    /// Live operations running.
    pub running: usize,
    /// Operations that completed, since the registry was made.
    pub completed: u64,
    /// Operations that were cancelled, since the registry was made.
    pub cancelled: u64,
    /// Operations that failed, since the registry was made.
    pub failed: u64,
    /// Finished operations in the history now.
    pub history: usize,
    /// Mean duration of the completed operations.
    pub average_duration: Option<Duration>,
}

impl RegistryStats {
    /// Live operations: `pending + running`.
    ///
    /// ```
    /// assert_eq!(cancelable::Registry::new().stats().active(), 0);
    /// ```
    pub fn active(&self) -> usize {
        self.pending + self.running
    }
}
