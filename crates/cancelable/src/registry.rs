//! [`Registry`]: the live operations of a process (or of one service) and a bounded history of
//! finished ones, for listing, dashboards and cancel-by-id.
//!
//! Locking: the live operations are spread over [`SHARDS`] shards by the hash of their id, each
//! behind a lock of its own, so registering operations on different threads does not meet on one
//! lock; the history and the counts of finished operations have their own lock, taken when an
//! operation ends. Calls that look at every operation (`list`, `cancel_all`, `stats`) take the
//! shard locks in order, then the history's, so they see one moment. An operation's record lock
//! may be taken inside these (never the other way round), and none is held while tokens are
//! cancelled or callbacks run.

use std::collections::hash_map::Entry;
#[cfg(not(loom))]
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::string::String;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::operation::{
    Flavor, OperationId, OperationSnapshot, OperationStatus, RecordCopy, Sendable, Shared, next_seq,
};
use crate::reason::CancelReason;
use crate::sync::{Arc, Guarded};
use crate::token::CancellationToken;

/// How many finished operations a registry keeps by default.
pub const DEFAULT_HISTORY: usize = 1000;

/// How many locks the live operations of a registry are spread over.
#[cfg(not(loom))]
const SHARDS: usize = 16;
/// Loom replays each interleaving, so an operation must be in the same shard every time, whatever
/// its generated id: the models see one.
#[cfg(loom)]
const SHARDS: usize = 1;

/// Hashes ids: with a key per registry, so that ids chosen by clients cannot be made to collide;
/// a fixed one under loom, which replays each interleaving.
#[cfg(not(loom))]
type IdHasher = RandomState;
#[cfg(loom)]
type IdHasher = BuildHasherDefault<std::hash::DefaultHasher>;

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
    inner: Arc<Inner>,
}

struct Inner {
    hasher: IdHasher,
    shards: [Padded<Guarded<Shard>>; SHARDS],
    history: Guarded<History>,
}

/// Keeps each shard's lock on cache lines of its own.
#[repr(align(128))]
struct Padded<T>(T);

/// Live operations by the hash of their id; ids need not be unique (and hashes may collide),
/// so a slot may hold several.
type Shard = HashMap<u64, Slot, BuildHasherDefault<Prehashed>>;

struct History {
    /// Copies of the finished operations' records, oldest first: a snapshot is made of one when
    /// it is read.
    finished: VecDeque<RecordCopy>,
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
            inner: Arc::new(Inner {
                hasher: IdHasher::default(),
                shards: core::array::from_fn(|_| Padded(Guarded::new(Shard::default()))),
                history: Guarded::new(History {
                    finished: VecDeque::with_capacity(capacity.min(DEFAULT_HISTORY)),
                    capacity,
                    completed: 0,
                    cancelled: 0,
                    failed: 0,
                    completed_time: Duration::ZERO,
                }),
            }),
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
        let (mut live, finished) = self.inner.with_all(|shards, history| {
            let live: Vec<_> = live_entries(shards)
                .filter(|entry| {
                    filter.matches_static(&entry.op.name, entry.op.parent_id().as_ref())
                })
                .map(|entry| (entry.seq, entry.op.clone()))
                .collect();
            let finished: Vec<_> = if filter.active_only {
                Vec::new()
            } else {
                history
                    .finished
                    .iter()
                    .filter(|copy| {
                        filter.matches_parts(&copy.name, copy.parent_id.as_ref(), copy.status)
                    })
                    .map(RecordCopy::snapshot)
                    .collect()
            };
            (live, finished)
        });
        // Records are read outside the registry's locks; an operation that ends meanwhile is
        // shown with its final status (and may then also be in `finished`: keep one).
        live.sort_by_key(|(seq, _)| *seq);
        let mut out: Vec<_> = live
            .iter()
            .map(|(_, op)| op.snapshot())
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
        let live = self.inner.with_live(id, |entries| {
            entries
                .max_by_key(|entry| entry.seq)
                .map(|entry| entry.op.clone())
        });
        // An operation leaves its shard only once its snapshot is in the history.
        match live {
            Some(op) => Some(op.snapshot()),
            None => {
                let history = self.inner.history.lock();
                history
                    .finished
                    .iter()
                    .rev()
                    .find(|copy| copy.id == *id)
                    .map(RecordCopy::snapshot)
            }
        }
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
        let tokens: Vec<_> = self.inner.with_live(id.as_ref(), |entries| {
            entries.map(|entry| entry.op.token.clone()).collect()
        });
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
        let tokens: Vec<_> = self.inner.with_all(|shards, _| {
            live_entries(shards)
                .map(|entry| entry.op.token.clone())
                .collect()
        });
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
        self.inner.with_all(|shards, history| {
            let (mut pending, mut running) = (0, 0);
            for entry in live_entries(shards) {
                match entry.op.status() {
                    OperationStatus::Pending => pending += 1,
                    OperationStatus::Running => running += 1,
                    // Ended a moment ago and about to leave its shard (it is counted below).
                    _ => {}
                }
            }
            RegistryStats {
                pending,
                running,
                completed: history.completed,
                cancelled: history.cancelled,
                failed: history.failed,
                history: history.finished.len(),
                average_duration: (history.completed > 0).then(|| {
                    let nanos = history.completed_time.as_nanos() / u128::from(history.completed);
                    Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
                }),
            }
        })
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
        let now = Instant::now();
        let mut history = self.inner.history.lock();
        let before = history.finished.len();
        history.finished.retain(|copy| {
            let age = copy
                .ended()
                .map_or(Duration::ZERO, |ended| now.saturating_duration_since(ended));
            !(older_than.is_zero() || age > older_than)
        });
        before - history.finished.len()
    }
}

impl Inner {
    fn shard(&self, hash: u64) -> &Guarded<Shard> {
        // Not the low bits: the shard's map places its entries by those.
        &self.shards[(hash >> 32) as usize % SHARDS].0
    }

    /// Runs `f` over the live entries with this id, under their shard's lock.
    fn with_live<R>(&self, id: &str, f: impl FnOnce(&mut dyn Iterator<Item = &Live>) -> R) -> R {
        let hash = self.hasher.hash_one(id);
        let shard = self.shard(hash).lock();
        let mut entries = shard
            .get(&hash)
            .into_iter()
            .flat_map(Slot::iter)
            .filter(|entry| entry.op.id() == id);
        f(&mut entries)
    }

    /// Runs `f` with every shard and the history locked (in that order).
    fn with_all<R>(&self, f: impl FnOnce(&[&mut Shard], &mut History) -> R) -> R {
        let mut guards: Vec<_> = self.shards.iter().map(|shard| shard.0.lock()).collect();
        let mut history = self.history.lock();
        let shards: Vec<&mut Shard> = guards.iter_mut().map(|guard| &mut **guard).collect();
        f(&shards, &mut history)
    }
}

/// Every live entry of these shards.
fn live_entries<'a>(shards: &'a [&mut Shard]) -> impl Iterator<Item = &'a Live> {
    shards
        .iter()
        .flat_map(|shard| shard.values())
        .flat_map(Slot::iter)
}

/// Where a registered operation is listed: made before the operation, so that its id (needed
/// now) and its place in the registry are computed once.
pub(crate) struct Registration {
    registry: Registry,
    hash: u64,
    seq: u64,
}

impl Registration {
    /// The registration in `registry` of an operation with the id `id`, or a generated one;
    /// returns it with the id.
    pub(crate) fn new(registry: Registry, id: Option<OperationId>) -> (Self, OperationId) {
        let seq = next_seq();
        let id = id.unwrap_or_else(|| OperationId::from_seq(seq));
        let hash = registry.inner.hasher.hash_one(id.as_str());
        (
            Self {
                registry,
                hash,
                seq,
            },
            id,
        )
    }

    /// Lists the operation.
    pub(crate) fn insert(&self, op: &Arc<Shared<Sendable>>) {
        let live = Live {
            seq: self.seq,
            op: op.clone(),
        };
        match self.registry.inner.shard(self.hash).lock().entry(self.hash) {
            Entry::Occupied(mut slot) => slot.get_mut().push(live),
            Entry::Vacant(slot) => {
                slot.insert(Slot::One(live));
            }
        }
    }

    /// Moves a finished operation from its shard to the history: the history first, so that
    /// the operation is always in one of them.
    pub(crate) fn finished<K: Flavor>(&self, op: &Shared<K>, copy: RecordCopy) {
        let inner = &self.registry.inner;
        {
            let mut history = inner.history.lock();
            match copy.status {
                OperationStatus::Completed => {
                    history.completed += 1;
                    history.completed_time += copy.duration().unwrap_or_default();
                }
                OperationStatus::Cancelled => history.cancelled += 1,
                _ => history.failed += 1,
            }
            if history.capacity > 0 {
                if history.finished.len() == history.capacity {
                    history.finished.pop_front();
                }
                history.finished.push_back(copy);
            }
        }
        let mut shard = inner.shard(self.hash).lock();
        // Only this operation's own entry: other live ones may share its id.
        if let Some(slot) = shard.get_mut(&self.hash) {
            if slot.remove((op as *const Shared<K>).cast()) {
                shard.remove(&self.hash);
            }
        }
    }
}

/// Cancels each token with `reason`; returns how many were not cancelled before (one cancelled
/// meanwhile through another counts: it was live and uncancelled when the call began).
fn cancel_each(tokens: Vec<CancellationToken>, reason: CancelReason) -> usize {
    let fresh: Vec<_> = tokens
        .into_iter()
        .filter(|token| !token.is_cancelled())
        .collect();
    // Outside the registry's locks: cancel callbacks run on this thread and may use it.
    for token in &fresh {
        token.cancel_with(reason.clone());
    }
    fresh.len()
}

/// A live operation and its place in the order of registration.
struct Live {
    seq: u64,
    op: Arc<Shared<Sendable>>,
}

/// The live operations under one hash: nearly always one, kept without a `Vec`.
enum Slot {
    One(Live),
    Many(Vec<Live>),
}

impl Slot {
    fn iter(&self) -> core::slice::Iter<'_, Live> {
        match self {
            Slot::One(live) => core::slice::from_ref(live).iter(),
            Slot::Many(all) => all.iter(),
        }
    }

    fn push(&mut self, live: Live) {
        match self {
            Slot::One(_) => {
                let Slot::One(first) = core::mem::replace(self, Slot::Many(Vec::new())) else {
                    unreachable!()
                };
                *self = Slot::Many(std::vec![first, live]);
            }
            Slot::Many(all) => all.push(live),
        }
    }

    /// Removes the operation whose record is at `op`; `true` if the slot is empty then.
    fn remove(&mut self, op: *const ()) -> bool {
        let is = |live: &Live| core::ptr::eq(Arc::as_ptr(&live.op).cast(), op);
        match self {
            Slot::One(live) => is(live),
            Slot::Many(all) => {
                all.retain(|live| !is(live));
                all.is_empty()
            }
        }
    }
}

/// The hasher of a shard's map, whose keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("a shard's keys are `u64` hashes")
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Registry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (live, history, capacity) = self.inner.with_all(|shards, history| {
            (
                live_entries(shards).count(),
                history.finished.len(),
                history.capacity,
            )
        });
        f.debug_struct("Registry")
            .field("live", &live)
            .field("history", &history)
            .field("capacity", &capacity)
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
        self.matches_parts(&snapshot.name, snapshot.parent_id.as_ref(), snapshot.status)
    }

    fn matches_parts(
        &self,
        name: &str,
        parent: Option<&OperationId>,
        status: OperationStatus,
    ) -> bool {
        self.matches_static(name, parent)
            && self.status.is_none_or(|wanted| wanted == status)
            && (!self.active_only || status.is_active())
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
