//! What an operation is doing: [`OperationStatus`], its [`OperationId`] and the plain-data
//! [`OperationSnapshot`].

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::borrow::Borrow;
use core::fmt;

use crate::reason::CancelReason;
use crate::sync::Arc;

use super::progress::Progress;

/// Where an operation is in its life: `Pending → Running → Completed | Cancelled | Failed`.
///
/// The last three are terminal: once reached, nothing changes the status again (a cancel that
/// arrives after completion leaves `Completed`).
///
/// ```
/// use cancelable::OperationStatus;
///
/// assert_eq!(OperationStatus::Cancelled.as_str(), "cancelled");
/// assert!(OperationStatus::Failed.is_terminal());
/// assert!(!OperationStatus::Running.is_terminal());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum OperationStatus {
    /// Built, not polled yet.
    Pending,
    /// The body is being driven.
    Running,
    /// The body finished with a value.
    Completed,
    /// The operation was cancelled (see the snapshot's `reason`).
    Cancelled,
    /// The body returned an error or panicked (see the snapshot's `error`).
    Failed,
}

impl OperationStatus {
    /// The status in snake case, as used in JSON: `pending`, `running`, `completed`,
    /// `cancelled`, `failed`.
    ///
    /// ```
    /// assert_eq!(cancelable::OperationStatus::Running.as_str(), "running");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Completed => "completed",
            OperationStatus::Cancelled => "cancelled",
            OperationStatus::Failed => "failed",
        }
    }

    /// `true` for `Completed`, `Cancelled` and `Failed`.
    ///
    /// ```
    /// assert!(cancelable::OperationStatus::Completed.is_terminal());
    /// ```
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Completed | OperationStatus::Cancelled | OperationStatus::Failed
        )
    }

    /// `true` for `Pending` and `Running`.
    ///
    /// ```
    /// assert!(cancelable::OperationStatus::Pending.is_active());
    /// ```
    pub const fn is_active(self) -> bool {
        !self.is_terminal()
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identifier of an operation: cheap to clone, compared and hashed as its text.
///
/// Generated ids are 16 hex digits, unique within the process (a counter passed through a
/// bijective mix, so they do not look sequential). They are not secret: when an id is shown to
/// untrusted clients (a job URL), pass a random one with [`Operation::id`](crate::Operation::id).
///
/// ```
/// use cancelable::OperationId;
///
/// let a = OperationId::generate();
/// let b = OperationId::generate();
/// assert_ne!(a, b);
/// assert_eq!(a.as_str().len(), 16);
/// assert_eq!(OperationId::from("job-7").as_str(), "job-7");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationId(Arc<str>);

impl OperationId {
    /// A new id, different from every id generated before in this process.
    ///
    /// ```
    /// assert_ne!(cancelable::OperationId::generate(), cancelable::OperationId::generate());
    /// ```
    pub fn generate() -> Self {
        let (id, _) = generate();
        id
    }

    /// The id as text.
    ///
    /// ```
    /// assert_eq!(cancelable::OperationId::from("a").as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A generated id and the sequence number it came from (the registry lists in that order).
pub(crate) fn generate() -> (OperationId, u64) {
    use crate::sync::{Ordering, StaticAtomicUsize};
    static NEXT: StaticAtomicUsize = StaticAtomicUsize::new(0);
    let seq = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
    // splitmix64's finaliser is a bijection of u64, so distinct counters give distinct ids;
    // the per-process seed only makes ids differ between runs.
    let mut z = seq.wrapping_add(seed());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (OperationId(Arc::from(alloc::format!("{z:016x}"))), seq)
}

#[cfg(feature = "std")]
fn seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u8))
}

#[cfg(not(feature = "std"))]
fn seed() -> u64 {
    0x2545_f491_4f6c_dd1d
}

impl From<&str> for OperationId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl From<String> for OperationId {
    fn from(id: String) -> Self {
        Self(Arc::from(id))
    }
}

impl Borrow<str> for OperationId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for OperationId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for OperationId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for OperationId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for OperationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for OperationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(OperationId::from)
    }
}

/// A copy of an operation's record at one moment: plain data, for listing, dashboards and
/// history.
///
/// With the `serde` feature it serialises as
/// `{"id", "name", "status", "reason", "reason_message", "error", "progress", "metadata",
/// "parent_id", "started_at_ms", "ended_at_ms", "duration_secs"}`, with `status` and `reason` as
/// snake-case strings (`"cancelled"`, `"timeout"`) and times in milliseconds since the Unix epoch.
///
/// ```
/// use cancelable::{CancelKind, CancelReason, Operation, OperationStatus};
/// use futures_lite::future;
///
/// let result = future::block_on(
///     Operation::new("import")
///         .metadata("file", "rows.csv")
///         .run(|cx| async move {
///             cx.report_progress(3, Some(10), "rows");
///             cx.token().cancel_with(CancelReason::timeout().with_message("too slow"));
///             cx.check()?;
///             Ok(())
///         }),
/// );
/// let err = result.unwrap_err();
/// assert_eq!(err.reason().kind(), CancelKind::Timeout);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OperationSnapshot {
    /// The operation's id.
    pub id: OperationId,
    /// Its name.
    pub name: String,
    /// Its status when the snapshot was taken.
    pub status: OperationStatus,
    /// Why it was cancelled; `Some` exactly when `status` is `Cancelled`.
    pub reason: Option<CancelReason>,
    /// The error's text (or the panic message); `Some` exactly when `status` is `Failed`.
    pub error: Option<String>,
    /// The latest progress report, if any.
    pub progress: Option<Progress>,
    /// The builder's metadata.
    pub metadata: BTreeMap<String, String>,
    /// The operation this one was made a child of or first polled in; its cancelation reaches
    /// this one.
    pub parent_id: Option<OperationId>,
    /// When it started running (wall clock).
    #[cfg(feature = "std")]
    pub started_at: Option<std::time::SystemTime>,
    /// When it ended (wall clock).
    #[cfg(feature = "std")]
    pub ended_at: Option<std::time::SystemTime>,
    /// Time from start to end, or to the snapshot while it runs (monotonic clock).
    #[cfg(feature = "std")]
    pub duration: Option<core::time::Duration>,
}

impl OperationSnapshot {
    /// A snapshot with these three fields and nothing else recorded (no reason, error,
    /// progress, metadata, parent or times): for tests, mocks and snapshots from elsewhere.
    /// The fields are public, so set the rest directly.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason, OperationSnapshot, OperationStatus, Progress};
    ///
    /// let mut snap = OperationSnapshot::new("job-1", "nightly import", OperationStatus::Cancelled);
    /// snap.reason = Some(CancelReason::timeout().with_message("took over 1h"));
    /// snap.progress = Some(Progress::new(40, Some(100), "rows"));
    /// assert_eq!(snap.id, "job-1");
    /// assert_eq!(snap.reason.unwrap().kind(), CancelKind::Timeout);
    /// ```
    pub fn new(
        id: impl Into<OperationId>,
        name: impl Into<String>,
        status: OperationStatus,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            status,
            reason: None,
            error: None,
            progress: None,
            metadata: BTreeMap::new(),
            parent_id: None,
            #[cfg(feature = "std")]
            started_at: None,
            #[cfg(feature = "std")]
            ended_at: None,
            #[cfg(feature = "std")]
            duration: None,
        }
    }
}

#[cfg(feature = "serde")]
mod snapshot_serde {
    use super::*;
    use crate::reason::CancelKind;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Repr {
        id: OperationId,
        name: String,
        status: OperationStatus,
        reason: Option<CancelKind>,
        reason_message: Option<String>,
        error: Option<String>,
        progress: Option<Progress>,
        metadata: BTreeMap<String, String>,
        parent_id: Option<OperationId>,
        #[cfg(feature = "std")]
        started_at_ms: Option<u64>,
        #[cfg(feature = "std")]
        ended_at_ms: Option<u64>,
        #[cfg(feature = "std")]
        duration_secs: Option<f64>,
    }

    #[cfg(feature = "std")]
    fn to_ms(t: std::time::SystemTime) -> u64 {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    #[cfg(feature = "std")]
    fn from_ms(ms: u64) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + core::time::Duration::from_millis(ms)
    }

    impl serde::Serialize for OperationSnapshot {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Repr {
                id: self.id.clone(),
                name: self.name.clone(),
                status: self.status,
                reason: self.reason.as_ref().map(CancelReason::kind),
                reason_message: self
                    .reason
                    .as_ref()
                    .and_then(|r| r.message().map(String::from)),
                error: self.error.clone(),
                progress: self.progress.clone(),
                metadata: self.metadata.clone(),
                parent_id: self.parent_id.clone(),
                #[cfg(feature = "std")]
                started_at_ms: self.started_at.map(to_ms),
                #[cfg(feature = "std")]
                ended_at_ms: self.ended_at.map(to_ms),
                #[cfg(feature = "std")]
                duration_secs: self.duration.map(|d| d.as_secs_f64()),
            }
            .serialize(serializer)
        }
    }

    impl<'de> serde::Deserialize<'de> for OperationSnapshot {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let r = Repr::deserialize(deserializer)?;
            Ok(OperationSnapshot {
                id: r.id,
                name: r.name,
                status: r.status,
                reason: r.reason.map(|kind| match r.reason_message {
                    Some(m) => CancelReason::new(kind).with_message(m),
                    None => CancelReason::new(kind),
                }),
                error: r.error,
                progress: r.progress,
                metadata: r.metadata,
                parent_id: r.parent_id,
                #[cfg(feature = "std")]
                started_at: r.started_at_ms.map(from_ms),
                #[cfg(feature = "std")]
                ended_at: r.ended_at_ms.map(from_ms),
                #[cfg(feature = "std")]
                duration: r.duration_secs.map(core::time::Duration::from_secs_f64),
            })
        }
    }
}
