//! Why a token was cancelled: [`CancelKind`], [`CancelReason`] and the [`Cancelled`] error.

use alloc::borrow::Cow;

use core::fmt;

use crate::sync::Arc;

/// The broad cause of a cancelation.
///
/// `#[non_exhaustive]`: match with a wildcard arm, new kinds may be added.
///
/// ```
/// use cancelable::{CancelKind, CancellationToken};
///
/// let token = CancellationToken::new();
/// token.cancel_with(CancelKind::Timeout);
/// assert_eq!(token.reason().unwrap().kind(), CancelKind::Timeout);
/// assert_eq!(CancelKind::Timeout.to_string(), "timeout");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum CancelKind {
    /// Someone called [`cancel`](crate::CancellationToken::cancel) or dropped a
    /// [`DropGuard`](crate::DropGuard).
    Manual,
    /// A deadline passed.
    Timeout,
    /// The process received a signal (SIGINT, SIGTERM, ...).
    Signal,
    /// A watched condition became true.
    Condition,
    /// The peer (an HTTP client, a socket) went away.
    Disconnected,
    /// The service is shutting down.
    Shutdown,
}

impl CancelKind {
    const ALL: &'static [CancelKind] = &[
        CancelKind::Manual,
        CancelKind::Timeout,
        CancelKind::Signal,
        CancelKind::Condition,
        CancelKind::Disconnected,
        CancelKind::Shutdown,
    ];

    /// Every kind, in declaration order: for per-kind counters and tables. A slice, because the
    /// enum is `#[non_exhaustive]` and may grow.
    ///
    /// ```
    /// use cancelable::CancelKind;
    /// assert_eq!(CancelKind::all().first(), Some(&CancelKind::Manual));
    /// assert!(CancelKind::all().contains(&CancelKind::Disconnected));
    /// ```
    pub const fn all() -> &'static [CancelKind] {
        Self::ALL
    }

    /// The kind in snake case, as shown by `Display` and used in JSON.
    ///
    /// ```
    /// assert_eq!(cancelable::CancelKind::Disconnected.as_str(), "disconnected");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelKind::Manual => "manual",
            CancelKind::Timeout => "timeout",
            CancelKind::Signal => "signal",
            CancelKind::Condition => "condition",
            CancelKind::Disconnected => "disconnected",
            CancelKind::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for CancelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was cancelled: a [`CancelKind`] and an optional message.
///
/// Cheap to clone (a static message is copied, an owned one is shared). Every descendant of a
/// cancelled token carries the reason of the ancestor whose cancelation reached it.
///
/// ```
/// use cancelable::{CancelKind, CancelReason, CancellationToken};
///
/// let parent = CancellationToken::new();
/// let child = parent.child_token();
/// parent.cancel_with(CancelReason::timeout().with_message(format!("no reply in {}s", 3)));
///
/// let reason = child.reason().unwrap();
/// assert_eq!(reason.kind(), CancelKind::Timeout);
/// assert_eq!(reason.message(), Some("no reply in 3s"));
/// assert_eq!(reason.to_string(), "timeout: no reply in 3s");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CancelReason {
    kind: CancelKind,
    message: Option<Message>,
}

#[derive(Clone)]
enum Message {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Message {
    fn as_str(&self) -> &str {
        match self {
            Message::Static(s) => s,
            Message::Shared(s) => s,
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Message {}

impl core::hash::Hash for Message {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl CancelReason {
    /// A reason of `kind` without a message.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason};
    /// assert_eq!(CancelReason::new(CancelKind::Signal).to_string(), "signal");
    /// ```
    pub const fn new(kind: CancelKind) -> Self {
        Self {
            kind,
            message: None,
        }
    }

    /// `CancelReason::new(CancelKind::Manual)`, the reason of [`cancel`](crate::CancellationToken::cancel).
    ///
    /// ```
    /// assert_eq!(cancelable::CancelReason::manual().kind(), cancelable::CancelKind::Manual);
    /// ```
    pub const fn manual() -> Self {
        Self::new(CancelKind::Manual)
    }

    /// `CancelReason::new(CancelKind::Timeout)`.
    ///
    /// ```
    /// assert_eq!(cancelable::CancelReason::timeout().to_string(), "timeout");
    /// ```
    pub const fn timeout() -> Self {
        Self::new(CancelKind::Timeout)
    }

    /// `CancelReason::new(CancelKind::Signal)`.
    ///
    /// ```
    /// let r = cancelable::CancelReason::signal().with_message("SIGTERM");
    /// assert_eq!(r.to_string(), "signal: SIGTERM");
    /// ```
    pub const fn signal() -> Self {
        Self::new(CancelKind::Signal)
    }

    /// `CancelReason::new(CancelKind::Condition)`.
    ///
    /// ```
    /// assert_eq!(cancelable::CancelReason::condition().to_string(), "condition");
    /// ```
    pub const fn condition() -> Self {
        Self::new(CancelKind::Condition)
    }

    /// `CancelReason::new(CancelKind::Disconnected)`.
    ///
    /// ```
    /// assert_eq!(cancelable::CancelReason::disconnected().to_string(), "disconnected");
    /// ```
    pub const fn disconnected() -> Self {
        Self::new(CancelKind::Disconnected)
    }

    /// `CancelReason::new(CancelKind::Shutdown)`.
    ///
    /// ```
    /// assert_eq!(cancelable::CancelReason::shutdown().to_string(), "shutdown");
    /// ```
    pub const fn shutdown() -> Self {
        Self::new(CancelKind::Shutdown)
    }

    /// The same kind with `message` attached (a `&'static str` is stored as is, a `String` is
    /// shared between clones).
    ///
    /// ```
    /// use cancelable::CancelReason;
    /// let fixed = CancelReason::shutdown().with_message("deploy");
    /// let built = CancelReason::shutdown().with_message(String::from("deploy"));
    /// assert_eq!(fixed, built);
    /// ```
    pub fn with_message(self, message: impl Into<Cow<'static, str>>) -> Self {
        let message = match message.into() {
            Cow::Borrowed(s) => Message::Static(s),
            Cow::Owned(s) => Message::Shared(Arc::from(s)),
        };
        Self {
            kind: self.kind,
            message: Some(message),
        }
    }

    /// The kind of cancelation.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancelReason};
    /// assert_eq!(CancelReason::timeout().kind(), CancelKind::Timeout);
    /// ```
    pub fn kind(&self) -> CancelKind {
        self.kind
    }

    /// The message, if one was attached.
    ///
    /// ```
    /// use cancelable::CancelReason;
    /// assert_eq!(CancelReason::manual().message(), None);
    /// assert_eq!(CancelReason::manual().with_message("user").message(), Some("user"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(Message::as_str)
    }
}

impl Default for CancelReason {
    /// [`CancelReason::manual()`].
    fn default() -> Self {
        Self::manual()
    }
}

impl From<CancelKind> for CancelReason {
    fn from(kind: CancelKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(message) => write!(f, "{}: {}", self.kind, message),
            None => fmt::Display::fmt(&self.kind, f),
        }
    }
}

impl fmt::Debug for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelReason")
            .field("kind", &self.kind)
            .field("message", &self.message())
            .finish()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CancelReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("CancelReason", 2)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("message", &self.message())?;
        s.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for CancelReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Repr {
            kind: CancelKind,
            #[serde(default)]
            message: Option<alloc::string::String>,
        }
        let repr = Repr::deserialize(deserializer)?;
        let reason = CancelReason::new(repr.kind);
        Ok(match repr.message {
            Some(message) => reason.with_message(message),
            None => reason,
        })
    }
}

/// The error of an operation stopped by cancelation; carries the [`CancelReason`].
///
/// ```
/// use cancelable::{CancelReason, CancellationToken, Cancelled};
///
/// fn step(token: &CancellationToken) -> Result<u32, Cancelled> {
///     token.check()?;
///     Ok(42)
/// }
///
/// let token = CancellationToken::new();
/// assert_eq!(step(&token).unwrap(), 42);
/// token.cancel_with(CancelReason::shutdown().with_message("deploy"));
/// let err = step(&token).unwrap_err();
/// assert_eq!(err.to_string(), "operation cancelled (shutdown: deploy)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    reason: CancelReason,
}

impl Cancelled {
    /// An error carrying `reason`.
    ///
    /// ```
    /// use cancelable::{CancelKind, Cancelled};
    /// let err = Cancelled::new(CancelKind::Timeout);
    /// assert_eq!(err.reason().kind(), CancelKind::Timeout);
    /// ```
    pub fn new(reason: impl Into<CancelReason>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why the operation was cancelled.
    ///
    /// ```
    /// use cancelable::{CancelKind, CancellationToken};
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// assert_eq!(token.check().unwrap_err().reason().kind(), CancelKind::Manual);
    /// ```
    pub fn reason(&self) -> &CancelReason {
        &self.reason
    }

    /// Turns the error back into its reason.
    ///
    /// ```
    /// use cancelable::{CancelReason, Cancelled};
    /// assert_eq!(Cancelled::new(CancelReason::signal()).into_reason(), CancelReason::signal());
    /// ```
    pub fn into_reason(self) -> CancelReason {
        self.reason
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation cancelled ({})", self.reason)
    }
}

impl core::error::Error for Cancelled {}

impl From<Cancelled> for CancelReason {
    fn from(err: Cancelled) -> Self {
        err.reason
    }
}

/// A reason packed into one machine word, the form the tree stores in a node's state.
///
/// The two low bits are left free for the node's flags (see `tree.rs`); a packed reason is never
/// zero, so "state has a reason" is "the node is cancelled".
///
/// * kind only: `(kind + 1) << 3 | KIND_TAG`, no allocation (the common `cancel()` case);
/// * with a message: a pointer from `Arc::<Aligned>::into_raw`; [`Aligned`] makes it 8-aligned on
///   every pointer width, so bits 0–2 are zero; the word owns one strong count.
pub(crate) struct PackedReason(usize);

/// A reason with a message, as the heap block a packed reason points to. Heap blocks are only
/// 4-aligned on 32-bit targets, where bit 2 of an `Arc<CancelReason>` pointer could be set and
/// read back as `KIND_TAG`; the alignment keeps it free on every target.
#[repr(align(8))]
struct Aligned(CancelReason);

const KIND_TAG: usize = 0b100;
/// Bits of a state word that belong to the packed reason.
pub(crate) const REASON_MASK: usize = !0b11;

impl PackedReason {
    pub(crate) fn new(reason: CancelReason) -> Self {
        if reason.message.is_none() {
            return Self(((reason.kind as usize) + 1) << 3 | KIND_TAG);
        }
        // The word travels through an atomic integer shared with the node's flags, so the
        // pointer's provenance is exposed here and picked up again in `read` and `drop`.
        let ptr = Arc::into_raw(Arc::new(Aligned(reason))).expose_provenance();
        debug_assert_eq!(ptr & !REASON_MASK, 0);
        debug_assert_eq!(ptr & KIND_TAG, 0);
        Self(ptr)
    }

    pub(crate) fn bits(&self) -> usize {
        self.0
    }

    /// A second owner of the same reason, for storing in another node.
    pub(crate) fn share(&self) -> usize {
        if self.0 & KIND_TAG == 0 {
            // SAFETY: the bits came from `Arc::into_raw` and `self` still owns that count.
            unsafe { Arc::increment_strong_count(as_arc(self.0)) };
        }
        self.0
    }

    /// Clones the reason out of packed `bits` owned by someone else (a node).
    ///
    /// # Safety
    /// `bits` is a packed reason whose owner stays alive during the call.
    pub(crate) unsafe fn read(bits: usize) -> CancelReason {
        if bits & KIND_TAG != 0 {
            return CancelReason::new(CancelKind::ALL[(bits >> 3) - 1]);
        }
        // SAFETY: the owner keeps one strong count, so the `Arc`'s value is alive.
        unsafe { (*as_arc(bits)).0.clone() }
    }

    /// Another owner of packed `bits` owned by someone else (a node), for storing elsewhere.
    ///
    /// # Safety
    /// `bits` is a packed reason whose owner stays alive during the call.
    pub(crate) unsafe fn clone_bits(bits: usize) -> usize {
        if bits & KIND_TAG == 0 {
            // SAFETY: the owner keeps one strong count of this `Arc` (caller).
            unsafe { Arc::increment_strong_count(as_arc(bits)) };
        }
        bits
    }

    /// Takes over the ownership of packed `bits` (to drop it).
    ///
    /// # Safety
    /// `bits` is a packed reason owned by the caller, which gives that ownership up.
    pub(crate) unsafe fn from_bits(bits: usize) -> Self {
        Self(bits)
    }
}

impl Drop for PackedReason {
    fn drop(&mut self) {
        if self.0 & KIND_TAG == 0 {
            // SAFETY: the bits came from `Arc::into_raw` and `self` owns one strong count.
            unsafe { Arc::decrement_strong_count(as_arc(self.0)) };
        }
    }
}

/// The `Arc` pointer of packed bits without `KIND_TAG`, with the provenance exposed in `new`.
fn as_arc(bits: usize) -> *const Aligned {
    core::ptr::with_exposed_provenance(bits)
}
