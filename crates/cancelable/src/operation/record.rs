//! What an operation has recorded: its status, times, reason or error, progress and parent, and
//! its id, made the first time it is asked for.
//!
//! The run future is the only writer of the status and of what the status covers (times,
//! reason, error): it changes them from its `poll` and its `drop`, which own it exclusively, so
//! two changes never race. Each of those fields is written once, before the status that shows
//! it is stored (`Release`), and read only by whoever loaded that status (`Acquire`). So a
//! transition costs a store and reading the status a load, with no lock. Progress and the
//! parent, which any thread may change, and the making of the id are behind the record's lock.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;

use crate::reason::CancelReason;
use crate::sync::{AtomicU32, Ordering};

use super::flavor::Metadata;
use super::progress::Progress;
use super::status::{OperationId, OperationSnapshot, OperationStatus};
use crate::sync::Mutex as Lock;

#[cfg(feature = "std")]
use std::time::{Instant, SystemTime};

pub(crate) struct Record {
    /// An [`OperationStatus`] as a number ([`encode`]).
    status: AtomicU32,
    #[cfg(feature = "std")]
    started: Published<Option<Instant>>,
    #[cfg(feature = "std")]
    ended: Published<Option<Instant>>,
    /// `Some` exactly when the status is `Cancelled`.
    reason: Published<Option<CancelReason>>,
    /// `Some` exactly when the status is `Failed`.
    error: Published<Option<String>>,
    /// 1 once `id` holds the id: set under `changing`'s lock, after the id is written.
    id_made: AtomicU32,
    id: Published<Option<OperationId>>,
    /// 1 once `changing` holds a parent or a progress report (set under its lock): until then
    /// copies of the record need not take the lock.
    changed: AtomicU32,
    changing: Lock<Changing>,
}

/// What other threads may change at any time.
struct Changing {
    /// The operation this one was made a child of or (with `std`) first polled in.
    parent_id: Option<OperationId>,
    /// Boxed: an operation that never reports holds a null pointer; a report after the first
    /// reuses the box.
    progress: Option<Box<Progress>>,
}

impl Record {
    /// A `Pending` record; `id` is `None` to generate one when first asked for.
    pub(crate) fn new(id: Option<OperationId>, parent_id: Option<OperationId>) -> Self {
        Self {
            status: AtomicU32::new(encode(OperationStatus::Pending)),
            #[cfg(feature = "std")]
            started: Published::new(None),
            #[cfg(feature = "std")]
            ended: Published::new(None),
            reason: Published::new(None),
            error: Published::new(None),
            id_made: AtomicU32::new(u32::from(id.is_some())),
            id: Published::new(id),
            changed: AtomicU32::new(u32::from(parent_id.is_some())),
            changing: Lock::new(Changing {
                parent_id,
                progress: None,
            }),
        }
    }

    pub(crate) fn status(&self) -> OperationStatus {
        decode(self.status.load(Ordering::Acquire))
    }

    /// The operation's id, generated now if this is the first time anyone asks.
    pub(crate) fn id(&self) -> &OperationId {
        if self.id_made.load(Ordering::Acquire) == 0 {
            self.changing.with(|_| {
                if self.id_made.load(Ordering::Relaxed) == 0 {
                    // SAFETY: only this lock's holder writes the id, and only while `id_made`
                    // is 0, when nobody reads it (readers first see `id_made` at 1).
                    unsafe { self.id.set(Some(OperationId::generate())) };
                    self.id_made.store(1, Ordering::Release);
                }
            });
        }
        // SAFETY: `id_made` is 1: this thread saw it so (`Acquire`) or set it, or took the lock
        // after the thread that set it; the id was written before and is never written again.
        match unsafe { self.id.get() } {
            Some(id) => id,
            None => unreachable!("the id is made before `id_made` is set"),
        }
    }

    pub(crate) fn parent_id(&self) -> Option<OperationId> {
        if self.changed.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.changing.with(|c| c.parent_id.clone())
    }

    pub(crate) fn set_progress(&self, progress: Progress) {
        self.changing.with(|c| {
            match &mut c.progress {
                Some(latest) => **latest = progress,
                None => c.progress = Some(Box::new(progress)),
            }
            self.changed.store(1, Ordering::Release);
        });
    }

    /// `Pending → Running`, recording `parent` as the parent unless there is one; returns
    /// whether the status changed and whether `parent` was recorded.
    ///
    /// # Safety
    /// No other `start` or `finish` of this record runs at the same time (only the operation's
    /// run future calls them).
    pub(crate) unsafe fn start(&self, parent: Option<OperationId>) -> (bool, bool) {
        let adopted = parent.is_some()
            && self.changing.with(|c| {
                let adopt = c.parent_id.is_none();
                if adopt {
                    c.parent_id = parent;
                    self.changed.store(1, Ordering::Release);
                }
                adopt
            });
        if self.status.load(Ordering::Relaxed) != encode(OperationStatus::Pending) {
            return (false, adopted);
        }
        // SAFETY: the status is `Pending`, so no reader looks at `started`, and the caller
        // promises no other writer.
        #[cfg(feature = "std")]
        unsafe {
            self.started.set(Some(Instant::now()))
        };
        self.status
            .store(encode(OperationStatus::Running), Ordering::Release);
        (true, adopted)
    }

    /// Records the terminal `status` with its reason (`Cancelled`) or error (`Failed`), once:
    /// later calls change nothing and return `false`. Without `timed` the clock is not read
    /// (for a record nobody can copy any more).
    ///
    /// # Safety
    /// As for [`start`](Self::start).
    pub(crate) unsafe fn finish(
        &self,
        status: OperationStatus,
        reason: Option<CancelReason>,
        error: Option<String>,
        #[cfg_attr(not(feature = "std"), allow(unused_variables))] timed: bool,
    ) -> bool {
        debug_assert!(status.is_terminal());
        let before = decode(self.status.load(Ordering::Relaxed));
        if before.is_terminal() {
            return false;
        }
        // SAFETY: the status is not terminal, so no reader looks at what is written here (a
        // reader of a `Running` status looks at `started` only, which is written here only when
        // the status is `Pending`), and the caller promises no other writer.
        unsafe {
            #[cfg(feature = "std")]
            if timed {
                let now = Instant::now();
                if before == OperationStatus::Pending {
                    self.started.set(Some(now));
                }
                self.ended.set(Some(now));
            }
            self.reason.set(reason);
            self.error.set(error);
        }
        self.status.store(encode(status), Ordering::Release);
        true
    }

    /// The reason and the error once the status is terminal (both `None` before).
    #[cfg(feature = "tracing")]
    pub(crate) fn outcome(&self) -> (Option<&CancelReason>, Option<&str>) {
        self.outcome_at(self.status())
    }

    /// [`outcome`](Self::outcome) for a status loaded from this record.
    fn outcome_at(&self, status: OperationStatus) -> (Option<&CancelReason>, Option<&str>) {
        if !status.is_terminal() {
            return (None, None);
        }
        // SAFETY: `status` was loaded from the record (`Acquire`) and is terminal: both were
        // written before it was stored and are never written again.
        unsafe { (self.reason.get().as_ref(), self.error.get().as_deref()) }
    }

    /// A copy of the record, with the fields the record does not keep.
    pub(crate) fn copy(
        &self,
        id: OperationId,
        name: Cow<'static, str>,
        metadata: Metadata,
    ) -> RecordCopy {
        let status = self.status();
        // Nothing to read under the lock for an operation without a parent or progress.
        let (parent_id, progress) = if self.changed.load(Ordering::Acquire) == 0 {
            (None, None)
        } else {
            self.changing
                .with(|c| (c.parent_id.clone(), c.progress.clone()))
        };
        let (reason, error) = self.outcome_at(status);
        #[cfg(feature = "std")]
        // SAFETY: `started` is read only when the status loaded above is past `Pending`, and
        // `ended` only when it is terminal: each was written before that status was stored and
        // is never written again.
        let (started, ended) = unsafe {
            (
                if status == OperationStatus::Pending {
                    None
                } else {
                    *self.started.get()
                },
                if status.is_terminal() {
                    *self.ended.get()
                } else {
                    None
                },
            )
        };
        RecordCopy {
            id,
            name,
            status,
            reason: reason.cloned(),
            error: error.map(String::from),
            progress,
            metadata,
            parent_id,
            #[cfg(feature = "std")]
            started,
            #[cfg(feature = "std")]
            ended,
        }
    }
}

/// A copy of an operation's record at one moment, with its id, name and metadata: what a
/// snapshot is made from, and what a registry's history keeps of a finished operation (cheaper
/// to make and to keep than the snapshot, which it makes when someone reads it).
#[derive(Clone)]
pub(crate) struct RecordCopy {
    pub(crate) id: OperationId,
    pub(crate) name: Cow<'static, str>,
    pub(crate) status: OperationStatus,
    reason: Option<CancelReason>,
    error: Option<String>,
    progress: Option<Box<Progress>>,
    metadata: Metadata,
    pub(crate) parent_id: Option<OperationId>,
    #[cfg(feature = "std")]
    started: Option<Instant>,
    #[cfg(feature = "std")]
    ended: Option<Instant>,
}

impl RecordCopy {
    /// When it ended (monotonic clock).
    #[cfg(feature = "std")]
    pub(crate) fn ended(&self) -> Option<Instant> {
        self.ended
    }

    /// From start to end.
    #[cfg(feature = "std")]
    pub(crate) fn duration(&self) -> Option<core::time::Duration> {
        Some(self.ended?.duration_since(self.started?))
    }

    /// The snapshot, leaving the copy as it is.
    #[cfg(feature = "std")]
    pub(crate) fn snapshot(&self) -> OperationSnapshot {
        self.clone().into_snapshot()
    }

    /// The snapshot, made of the copy.
    pub(crate) fn into_snapshot(self) -> OperationSnapshot {
        let mut snapshot = OperationSnapshot::new(self.id, self.name.into_owned(), self.status);
        snapshot.reason = self.reason;
        snapshot.error = self.error;
        snapshot.progress = self.progress.map(|progress| *progress);
        snapshot.metadata = self.metadata.map(|metadata| *metadata).unwrap_or_default();
        snapshot.parent_id = self.parent_id;
        #[cfg(feature = "std")]
        set_times(&mut snapshot, self.started, self.ended);
        snapshot
    }
}

/// Fills the snapshot's times from the monotonic readings (a running operation's duration is
/// up to now).
#[cfg(feature = "std")]
fn set_times(snapshot: &mut OperationSnapshot, started: Option<Instant>, ended: Option<Instant>) {
    let Some(start) = started else { return };
    let duration = match ended {
        Some(end) => end.duration_since(start),
        None => start.elapsed(),
    };
    let started_at = wall_clock(start);
    snapshot.started_at = Some(started_at);
    snapshot.ended_at = ended.map(|_| started_at + duration);
    snapshot.duration = Some(duration);
}

const fn encode(status: OperationStatus) -> u32 {
    match status {
        OperationStatus::Pending => 0,
        OperationStatus::Running => 1,
        OperationStatus::Completed => 2,
        OperationStatus::Cancelled => 3,
        OperationStatus::Failed => 4,
    }
}

fn decode(status: u32) -> OperationStatus {
    match status {
        0 => OperationStatus::Pending,
        1 => OperationStatus::Running,
        2 => OperationStatus::Completed,
        3 => OperationStatus::Cancelled,
        _ => OperationStatus::Failed,
    }
}

/// The wall-clock time of the monotonic reading `at`: one clock is read per transition, and
/// the wall clock is the monotonic one shifted by their difference when the process first
/// needed it (a later step of the wall clock does not move the times of operations).
#[cfg(feature = "std")]
fn wall_clock(at: Instant) -> SystemTime {
    static ANCHOR: std::sync::OnceLock<(Instant, SystemTime)> = std::sync::OnceLock::new();
    let &(mono, wall) = ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    match at.checked_duration_since(mono) {
        Some(after) => wall.checked_add(after),
        None => wall.checked_sub(mono.duration_since(at)),
    }
    .unwrap_or(wall)
}

/// A cell written at most a few times by one writer at a time, and read without a lock by
/// whoever saw (through an atomic) that it will not be written again. Loom's cell under loom,
/// so that the models check exactly that.
struct Published<T> {
    #[cfg(loom)]
    value: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: every access goes through `set` and `get`, whose callers guarantee that a write never
// overlaps another access; the value itself then moves or is shared like a `T`.
unsafe impl<T: Send + Sync> Sync for Published<T> {}

impl<T> Published<T> {
    fn new(value: T) -> Self {
        Self {
            #[cfg(loom)]
            value: loom::cell::UnsafeCell::new(value),
            #[cfg(not(loom))]
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// # Safety
    /// Nothing else reads or writes the cell during this call, nor holds a reference from `get`.
    unsafe fn set(&self, value: T) {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller.
        self.value.with_mut(|p| unsafe { *p = value });
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller.
        unsafe {
            *self.value.get() = value
        };
    }

    /// # Safety
    /// Nothing writes the cell while the returned reference lives.
    unsafe fn get(&self) -> &T {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller.
        return self.value.with(|p| unsafe { &*p });
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller.
        unsafe {
            &*self.value.get()
        }
    }
}
