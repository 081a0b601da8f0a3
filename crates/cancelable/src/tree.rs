//! The cancelation tree: nodes, their lists, and the walk that cancels a subtree.
//!
//! Everything that touches raw pointers lives here; `token.rs`, `wait.rs` and `callback.rs` use
//! the small safe surface of [`NodeRef`], [`Node`], [`WaitEntry`] and the callback registration
//! functions.
//!
//! # Layout
//!
//! A [`Node`] is 64 bytes on 64-bit targets: a state word, a reference count, a one-byte lock, the
//! heads of its two lists, its parent pointer (tagged once the node lingers, invariant 4) and its
//! own position in the parent's list. The
//! entries of the lists are told apart by the tag of the pointer that leads to them
//! ([`LinkPtr`]):
//!
//! * the *children* list (`head`), which cancelation walks and leaves in place:
//!   * `CHILD`: a child node, linked through its embedded `sib` link;
//!   * `UPLINK`: a heap [`Uplink`] that ties an [`any_of`](NodeRef::any_of) node to this parent;
//! * the *signals* list (`signals`), which the cancelling walk takes out:
//!   * `CALLBACK`: a heap [`CallbackHeader`] registered by `on_cancel`;
//!   * `WAITER`: a [`WaitEntry`] embedded in a pinned `cancelled()` future or on the stack of a
//!     blocking wait, so that waiting allocates nothing. Their wakers are taken 32 at a time
//!     into an array on the walk's stack and woken with the lock released.
//!
//! The state word holds a flag in bit 0 (`HAS_ENTRIES`) and, once the node is cancelled, a
//! [`PackedReason`] in the bits above. "Cancelled" is "the reason bits are non-zero", so
//! `is_cancelled` is one `Acquire` load and the reason is published by the same
//! compare-and-swap that cancels.
//!
//! # Invariants
//!
//! 1. The reason bits of `state` are written once, by the CAS that cancels the node, and stay until
//!    the node is freed. Flags only ever get set.
//! 2. A node's lists, and the `prev`/`next` links of every entry in them, are read and written
//!    only under that node's lock. No code path holds two node locks at once.
//! 3. An entry is *committed* to a live node's list when it is linked under the lock and the node's
//!    state was seen with `HAS_ENTRIES` and without a reason, after the link. The walker that
//!    cancels the node saw `HAS_ENTRIES` in the state it replaced, so it takes the lock after the
//!    committer released it and finds the entry. An entry that cannot be committed is unlinked
//!    before the lock is released, so no walker ever sees it; its owner handles the cancelation.
//! 4. A callback handle, an owned future and a borrowed one (through a token) hold a reference
//!    on their node, so a node whose count reached zero has no signals but weak waiters, and no
//!    new entry can come. Children and `any_of` nodes hold no reference on their parents (a
//!    child costs its parent no count traffic); instead a node whose count reaches zero while
//!    its children list is not empty *lingers*: it is tagged `LINGERING` under its own lock and
//!    stays in the tree, still reached by its ancestors' cancelation and still reaching its
//!    children, until the last of them leaves its list; that one takes it out (invariant 12).
//!    So a node is in the tree, and its parent pointer valid, while it is in its parent's list.
//! 5. A node is freed only after it has left its parents' lists, under their locks, and a node
//!    leaves its parent's list only once its own children list is empty for good. So a node
//!    reached through a list, under the list owner's lock, is valid memory.
//! 6. The walker takes a weak reference (which keeps the memory, not the life) before it leaves a
//!    parent's lock holding a child it still has to visit: the child may be dead and lingering
//!    for children of its own. A dead node it visits after that has empty lists.
//! 7. A waiter is an entry like any other, committed by 3: either the walker finds it and wakes it,
//!    or the waiter sees the cancelation itself. No lost wake-up.
//! 8. No lock is held while user code runs: callbacks, and a waker's `clone`, `wake` and `drop`
//!    (a waker's drop may free a task whose futures lock this very node; its clone may create a
//!    child of it).
//! 9. Nothing recurses: the walk keeps an explicit stack of nodes still to visit, and the death
//!    of the last child of a chain of lingering nodes loops up the chain.
//! 10. `DONE` is set on a node only when every descendant is cancelled: in the cancelling CAS of a
//!     node without entries, or when a walk leaves a node whose subtree it finished (depth
//!     first). A walk that meets a cancelled node without `DONE` enters it too (*helps*),
//!     propagating that node's own reason, so a `cancel` never returns while part of the subtree
//!     below it is still live, even if another thread's walk got there first. Callbacks and
//!     waiters of a node are taken by whichever walk enters it first; a walk cut short by a
//!     panic (without `std`) leaves what it did not take, and the nodes it did not finish
//!     (not `DONE`), to the next cancel that reaches them.
//! 11. A callback entry runs only if its walk wins `TAKEN -> RUNNING` on its `claim`, and its
//!     closure is dropped unrun only by the handle that won `LISTED`/`TAKEN -> REMOVED`: exactly
//!     one of the two, so `unregister() == true` means the callback never runs.
//! 12. A node dies when its strong count reaches zero. The thread that brought it there takes the
//!     weak waiters of its signals list (the only signals a dead node can have, by 4) under its
//!     lock, so that a weak waiter registering later sees the zero count under that lock and does
//!     not wait; a node that never had an entry and has no weak reference skips the lock. In the
//!     same lock hold it decides, from its children list, whether the node lingers (4). Then
//!     exactly one thread takes the node out of the tree: that one, or, for a lingering node, the
//!     thread that removes the last entry of its list, which sees the tag under the same lock.
//!     Taking out is leaving the parents' lists and giving up the strong references' weak
//!     reference; the memory lives on while other weak references do (weak handles, walkers).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::mem::offset_of;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll, Waker};

use crate::reason::{CancelReason, PackedReason, REASON_MASK};
use crate::sync::{AtomicU32, AtomicUsize, LockedCell, Ordering, RawLock, fence};

/// The node's list is, or was once, non-empty. Sticky: it is never cleared.
const HAS_ENTRIES: usize = 0b01;
/// The node is cancelled and so is every descendant: the walk that cancelled it, or one that
/// helped, has finished its subtree (invariant 10). Set once, never cleared.
const DONE: usize = 0b10;

/// Value of `Node::parent` for a root (and for a child born cancelled).
const NO_PARENT: *const Node = ptr::null();
/// Value of `Node::parent` for the node of a [`Linked`] (an `any_of` node): an address no node
/// can have.
const LINKED: *const Node = ptr::without_provenance(1);
/// Tag bit of `Node::parent`: the node's strong count reached zero while children or `any_of`
/// nodes were still in its list, so it *lingers* in the tree for them (invariant 4). Set under
/// the node's lock, never cleared. Nodes are at least 4-aligned, so the bit is free in a parent
/// pointer and in `LINKED`.
const LINGERING: usize = 0b10;

/// Beyond this many references a count could overflow; like `Arc`, refuse.
const MAX_REFS: usize = isize::MAX as usize;
/// The same for weak references.
const MAX_WEAK: u32 = i32::MAX as u32;

/// One node of the tree. See the module docs for the layout and the invariants.
#[repr(C)]
pub(crate) struct Node {
    state: AtomicUsize,
    refs: AtomicUsize,
    lock: RawLock,
    /// Weak references ([`WeakNodeRef`]), plus one held by all the strong ones together: the
    /// node's memory is freed when this reaches zero (invariant 12). Sits in the padding after
    /// the one-byte lock, so it costs no space on 64-bit targets.
    weak: AtomicU32,
    /// First child or up-link of this node's list (invariant 2).
    head: LockedCell<LinkPtr>,
    /// First callback or waiter: the *signals* of this node, taken out by the walk that
    /// cancels it (invariant 2).
    signals: LockedCell<LinkPtr>,
    /// `NO_PARENT`, `LINKED`, or a pointer to the parent node, tagged `LINGERING` under this
    /// node's lock once it lingers. Otherwise written only while the node is private to one
    /// thread (creation); read by the thread that takes the dead node out of the tree
    /// (invariant 12), which synchronised with the tagging through this node's lock.
    parent: LockedCell<*const Node>,
    /// This node's place in its parent's list, guarded by the parent's lock.
    sib: Link,
    /// Under loom, a model fails if a node is never freed.
    #[cfg(loom)]
    _track: loom::alloc::Track<()>,
}

/// An `any_of` node: a [`Node`] plus the chain of its up-links, one per parent.
#[repr(C)]
struct Linked {
    node: Node,
    /// Written while the node is being built by one thread, read when it is freed.
    uplinks: LockedCell<*mut Uplink>,
}

/// The entry of an `any_of` node in one parent's list.
#[repr(C)]
struct Uplink {
    link: Link,
    parent: NonNull<Node>,
    child: NonNull<Node>,
    next_up: *mut Uplink,
    /// Under loom, a model fails if an up-link is never freed.
    #[cfg(loom)]
    _track: loom::alloc::Track<()>,
}

/// A doubly linked list link; the pointers are guarded by the lock of the list's owner.
pub(crate) struct Link {
    prev: LockedCell<LinkPtr>,
    next: LockedCell<LinkPtr>,
}

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            prev: LockedCell::new(LinkPtr::NULL),
            next: LockedCell::new(LinkPtr::NULL),
        }
    }
}

/// A pointer to a [`Link`] with the kind of its entry in the two low bits (tagged with
/// `map_addr`, so the pointer keeps its provenance).
#[derive(Clone, Copy, PartialEq, Eq)]
struct LinkPtr(*const Link);

const KIND_CHILD: usize = 0;
const KIND_UPLINK: usize = 1;
const KIND_CALLBACK: usize = 2;
const KIND_WAITER: usize = 3;
const KIND_MASK: usize = 0b11;

impl LinkPtr {
    const NULL: LinkPtr = LinkPtr(ptr::null());

    fn new(link: *const Link, kind: usize) -> Self {
        debug_assert_eq!(link.addr() & KIND_MASK, 0);
        LinkPtr(link.map_addr(|addr| addr | kind))
    }

    fn is_null(self) -> bool {
        self.link().is_null()
    }

    fn kind(self) -> usize {
        self.0.addr() & KIND_MASK
    }

    fn link(self) -> *const Link {
        self.0.map_addr(|addr| addr & !KIND_MASK)
    }
}

/// Links `entry` at the front of the list starting at `head`.
///
/// # Safety
/// The caller holds the lock of the list's owner; `entry` is valid and in no list.
unsafe fn push_front(head: &LockedCell<LinkPtr>, entry: LinkPtr) {
    // SAFETY: the lock is held (caller), so the links of the list and of `entry` are ours.
    unsafe {
        let first = head.get();
        let link = &*entry.link();
        link.prev.set(LinkPtr::NULL);
        link.next.set(first);
        if !first.is_null() {
            (*first.link()).prev.set(entry);
        }
        head.set(entry);
    }
}

/// Removes `entry` from the list starting at `head`.
///
/// # Safety
/// The caller holds the lock of the list's owner; `entry` is in that list.
unsafe fn unlink(head: &LockedCell<LinkPtr>, entry: LinkPtr) {
    // SAFETY: the lock is held (caller), and every entry of the list is valid (invariant 5).
    unsafe {
        let link = &*entry.link();
        let prev = link.prev.get();
        let next = link.next.get();
        if prev.is_null() {
            head.set(next);
        } else {
            (*prev.link()).next.set(next);
        }
        if !next.is_null() {
            (*next.link()).prev.set(prev);
        }
    }
}

impl Node {
    fn new(parent: *const Node) -> Self {
        Node {
            state: AtomicUsize::new(0),
            refs: AtomicUsize::new(1),
            lock: RawLock::new(),
            weak: AtomicU32::new(1),
            head: LockedCell::new(LinkPtr::NULL),
            signals: LockedCell::new(LinkPtr::NULL),
            parent: LockedCell::new(parent),
            sib: Link::new(),
            #[cfg(loom)]
            _track: loom::alloc::Track::new(()),
        }
    }

    /// One `Acquire` load: the reason, if any, is visible once this returns `true`.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) & REASON_MASK != 0
    }

    /// The reason this node was cancelled with.
    #[inline]
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        let bits = self.state.load(Ordering::Acquire) & REASON_MASK;
        // SAFETY: a reason stays in the state while the node lives (invariant 1), and `&self`
        // keeps the node alive.
        (bits != 0).then(|| unsafe { PackedReason::read(bits) })
    }

    /// Cancels this node alone with `reason` (a packed reason whose owner outlives the call).
    /// Returns the flags the node had, or `Err` with its state if it was cancelled already.
    fn set_reason(&self, reason: &PackedReason) -> Result<usize, usize> {
        let bits = reason.share();
        // Acquire, also on failure: a caller that sees `DONE` relies on seeing the cancelled
        // subtree behind it (invariant 10).
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & REASON_MASK != 0 {
                // SAFETY: `bits` is the count `share` just took; give it back.
                drop(unsafe { PackedReason::from_bits(bits) });
                return Err(cur);
            }
            // A node without entries has no subtree: it is done as soon as it is cancelled.
            let done = if cur & HAS_ENTRIES == 0 { DONE } else { 0 };
            match self.state.compare_exchange_weak(
                cur,
                cur | bits | done,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes a reference unless the count is zero (the node is dying).
    fn try_acquire(&self) -> bool {
        let mut cur = self.refs.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            if cur > MAX_REFS {
                crate::sync::abort("too many handles to one cancellation token");
            }
            match self.refs.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes a reference; the caller already holds one.
    ///
    /// Past `MAX_REFS` the process aborts, as `Arc` does: a panic here would unwind through
    /// callers that have half-linked an entry (a child, a waiter) and count on this reference.
    #[inline]
    fn acquire(&self) {
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFS {
            crate::sync::abort("too many handles to one cancellation token");
        }
    }

    /// Commits `entry` to this node's list (invariant 3) unless the node is cancelled; then
    /// returns the reason bits, which stay valid while the caller holds a reference.
    ///
    /// # Safety
    /// `entry` is valid, in no list, and stays valid while it is in this node's list.
    unsafe fn register(&self, entry: LinkPtr) -> Result<(), usize> {
        let bits = self.state.load(Ordering::Acquire) & REASON_MASK;
        if bits != 0 {
            return Err(bits);
        }
        let _guard = self.lock.lock();
        // SAFETY: the lock is held; the rest is forwarded to the caller.
        unsafe { self.commit(entry) }
    }

    /// The locked half of [`Node::register`].
    ///
    /// # Safety
    /// As for [`Node::register`], and the caller holds this node's lock.
    unsafe fn commit(&self, entry: LinkPtr) -> Result<(), usize> {
        let list = self.list_of(entry);
        // SAFETY: the lock is held and `entry` is in no list (caller).
        unsafe { push_front(list, entry) };
        let mut state = self.state.load(Ordering::Acquire);
        if state & (HAS_ENTRIES | REASON_MASK) == 0 {
            state = self.state.fetch_or(HAS_ENTRIES, Ordering::AcqRel);
        }
        let bits = state & REASON_MASK;
        if bits != 0 {
            // SAFETY: linked just above, under the same lock.
            unsafe { unlink(list, entry) };
            return Err(bits);
        }
        Ok(())
    }
}

impl Node {
    /// `NO_PARENT`, `LINKED` or the parent, without the `LINGERING` tag.
    ///
    /// # Safety
    /// As for reading `parent` (see the field).
    unsafe fn parent(&self) -> *const Node {
        // SAFETY: forwarded to the caller.
        unsafe { self.parent.get() }.map_addr(|addr| addr & !LINGERING)
    }

    /// The list an entry of this kind belongs to.
    fn list_of(&self, entry: LinkPtr) -> &LockedCell<LinkPtr> {
        match entry.kind() {
            KIND_CHILD | KIND_UPLINK => &self.head,
            _ => &self.signals,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let bits = self.state.load(Ordering::Relaxed) & REASON_MASK;
        if bits != 0 {
            // SAFETY: the node owns the count of the reason stored in its state (invariant 1).
            drop(unsafe { PackedReason::from_bits(bits) });
        }
    }
}

/// A counted reference to a [`Node`]: what a token is.
pub(crate) struct NodeRef {
    ptr: NonNull<Node>,
}

// SAFETY: a node is shared through atomics, and through cells guarded by its lock (invariant 2);
// nothing in it is tied to a thread.
unsafe impl Send for NodeRef {}
// SAFETY: as above; `&NodeRef` only gives `&Node`, whose methods synchronise.
unsafe impl Sync for NodeRef {}

impl NodeRef {
    /// A new root node.
    pub(crate) fn new_root() -> Self {
        Self::from_box(Box::new(Node::new(NO_PARENT)))
    }

    fn from_box(node: Box<Node>) -> Self {
        NodeRef {
            // SAFETY: `Box::into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(Box::into_raw(node)) },
        }
    }

    #[inline]
    pub(crate) fn node(&self) -> &Node {
        // SAFETY: this reference keeps the node alive.
        unsafe { self.ptr.as_ref() }
    }

    /// The node's address: token identity.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// A new child of this node, born cancelled if this node is.
    pub(crate) fn child(&self) -> NodeRef {
        let parent = self.node();
        let bits = parent.state.load(Ordering::Acquire) & REASON_MASK;
        if bits != 0 {
            return born_cancelled(bits);
        }
        let child = NodeRef::from_box(Box::new(Node::new(self.ptr.as_ptr())));
        let entry = LinkPtr::new(sib_of(child.ptr), KIND_CHILD);
        // No reference on the parent: while the child is in its list, a parent whose count
        // reaches zero lingers (invariant 4).
        // SAFETY: the child's link is in no list, and the child leaves the list before it is
        // freed (`die`).
        match unsafe { parent.register(entry) } {
            Ok(()) => child,
            Err(bits) => {
                // SAFETY: the child is private to this thread: it never got committed.
                unsafe { child.node().parent.set(NO_PARENT) };
                // SAFETY: the parent, kept alive by `self`, owns `bits`.
                let shared = unsafe { PackedReason::clone_bits(bits) };
                child.node().state.store(shared | DONE, Ordering::Release);
                child
            }
        }
    }

    /// A node cancelled whenever any of `parents` is, with the reason of the first one.
    pub(crate) fn any_of<'a>(parents: impl IntoIterator<Item = &'a NodeRef>) -> NodeRef {
        let linked = Box::new(Linked {
            node: Node::new(LINKED),
            uplinks: LockedCell::new(ptr::null_mut()),
        });
        // `node` is the first field of the `#[repr(C)]` `Linked`, so the pointers agree;
        // `die` frees it as a `Linked` because its parent field says `LINKED`.
        let raw = Box::into_raw(linked).cast::<Node>();
        // SAFETY: `Box::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(raw) };
        let this = NodeRef { ptr };
        let linked = this.ptr.as_ptr().cast::<Linked>();
        for parent in parents {
            let uplink = Box::into_raw(Box::new(Uplink {
                link: Link::new(),
                parent: parent.ptr,
                child: this.ptr,
                next_up: ptr::null_mut(),
                #[cfg(loom)]
                _track: loom::alloc::Track::new(()),
            }));
            // Like a child, the up-link holds no reference on its parent (invariant 4).
            // SAFETY: the uplink is in no list, and `die` unlinks it before freeing it.
            match unsafe {
                parent
                    .node()
                    .register(LinkPtr::new(uplink.cast(), KIND_UPLINK))
            } {
                Ok(()) => {
                    // SAFETY: `linked` is being built by this thread alone (the walkers that can
                    // already reach it never read `uplinks`).
                    unsafe {
                        (*uplink).next_up = (*linked).uplinks.get();
                        (*linked).uplinks.set(uplink);
                    }
                }
                Err(bits) => {
                    // SAFETY: never committed, so this thread owns the uplink.
                    drop(unsafe { Box::from_raw(uplink) });
                    // SAFETY: `parent` keeps the owner of `bits` alive.
                    let reason = unsafe { PackedReason::from_bits(PackedReason::clone_bits(bits)) };
                    // A fresh node: nothing can have cancelled it but another parent.
                    let _ = this.node().set_reason(&reason);
                    // Born cancelled: further links could never fire.
                    break;
                }
            }
        }
        this
    }

    /// Cancels this node and every live descendant. `false` if it was cancelled already; even
    /// then, when this returns every descendant is cancelled (it helps a walk still under way).
    pub(crate) fn cancel(&self, reason: CancelReason) -> bool {
        let node = self.node();
        let state = node.state.load(Ordering::Acquire);
        if state & REASON_MASK != 0 {
            help(self.ptr, state);
            return false;
        }
        let reason = PackedReason::new(reason);
        let flags = match node.set_reason(&reason) {
            Ok(flags) => flags,
            Err(state) => {
                help(self.ptr, state);
                return false;
            }
        };
        if flags & HAS_ENTRIES != 0 {
            let mut walk = Walk::new(&reason);
            walk.run(self.ptr);
            walk.finish();
        }
        true
    }

    /// Registers a callback entry; on `Err` the node is cancelled and the entry was not linked.
    ///
    /// # Safety
    /// `header` is valid and stays valid until it leaves the list: taken by a walker or removed
    /// by [`NodeRef::unregister`].
    pub(crate) unsafe fn register_callback(
        &self,
        header: NonNull<CallbackHeader>,
    ) -> Result<(), CancelReason> {
        // SAFETY: forwarded to the caller.
        unsafe {
            self.node()
                .register(LinkPtr::new(header.as_ptr().cast(), KIND_CALLBACK))
        }
        // SAFETY: `self` keeps the node, which owns `bits`, alive.
        .map_err(|bits| unsafe { PackedReason::read(bits) })
    }

    /// Makes sure a callback entry never runs, if it has not started: removes it from the list,
    /// or, if a walk took it out already, claims it before the walk runs it.
    ///
    /// # Safety
    /// `header` was registered on this node with [`NodeRef::register_callback`], and the caller
    /// owns the handle's share of it.
    pub(crate) unsafe fn unregister(&self, header: NonNull<CallbackHeader>) -> Unregistered {
        // SAFETY: the caller's share keeps the entry alive.
        let claim = unsafe { &header.as_ref().claim };
        {
            let node = self.node();
            let _guard = node.lock.lock();
            // `LISTED` only changes under the lock, and never comes back.
            if claim.load(Ordering::Relaxed) == LISTED {
                claim.store(REMOVED, Ordering::Relaxed);
                // SAFETY: the lock is held and the entry is in the list (`LISTED`).
                unsafe {
                    unlink(
                        &node.signals,
                        LinkPtr::new(header.as_ptr().cast(), KIND_CALLBACK),
                    )
                };
                return Unregistered::FromList;
            }
        }
        match claim.compare_exchange(TAKEN, REMOVED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Unregistered::FromWalk,
            Err(_) => Unregistered::Started,
        }
    }
}

impl Clone for NodeRef {
    #[inline]
    fn clone(&self) -> Self {
        self.node().acquire();
        NodeRef { ptr: self.ptr }
    }
}

impl Drop for NodeRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference.
        unsafe { release(self.ptr) }
    }
}

/// A weak reference to a [`Node`]: keeps its memory, not its life (invariant 12).
pub(crate) struct WeakNodeRef {
    ptr: NonNull<Node>,
}

// SAFETY: as for `NodeRef`: only atomics and lock-guarded cells are reached through it.
unsafe impl Send for WeakNodeRef {}
// SAFETY: as above.
unsafe impl Sync for WeakNodeRef {}

impl NodeRef {
    /// A weak reference to this node.
    pub(crate) fn downgrade(&self) -> WeakNodeRef {
        self.node().acquire_weak();
        WeakNodeRef { ptr: self.ptr }
    }
}

impl Node {
    /// Takes a weak reference; the caller holds a reference of either kind.
    fn acquire_weak(&self) {
        if self.weak.fetch_add(1, Ordering::Relaxed) > MAX_WEAK {
            crate::sync::abort("too many weak handles to one cancellation token");
        }
    }

    /// The node died: its last strong reference is gone (or going, on another thread).
    pub(crate) fn is_dead(&self) -> bool {
        self.refs.load(Ordering::Acquire) == 0
    }
}

impl WeakNodeRef {
    #[inline]
    pub(crate) fn node(&self) -> &Node {
        // SAFETY: a weak reference keeps the node's memory, and a dead node's fields stay valid
        // (the reason stays in the state until the memory is freed, invariant 1).
        unsafe { self.ptr.as_ref() }
    }

    /// A strong reference, unless the node died.
    pub(crate) fn upgrade(&self) -> Option<NodeRef> {
        // `then`, not `then_some`: a handle built eagerly would be dropped on failure, taking a
        // reference the dead node never gave.
        self.node().try_acquire().then(|| NodeRef { ptr: self.ptr })
    }

    /// The node's address: the same as its strong handles'.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }
}

impl Clone for WeakNodeRef {
    fn clone(&self) -> Self {
        self.node().acquire_weak();
        WeakNodeRef { ptr: self.ptr }
    }
}

impl Drop for WeakNodeRef {
    fn drop(&mut self) {
        // SAFETY: this handle owns one weak reference.
        unsafe { release_weak(self.ptr) }
    }
}

/// The address of a node's `sib` link, with the provenance of the whole node so that the walker
/// can step back from the link to the node.
fn sib_of(node: NonNull<Node>) -> *const Link {
    // SAFETY: a field projection of a valid node pointer; nothing is read.
    unsafe { &raw const (*node.as_ptr()).sib }
}

/// A root already cancelled with the reason in `bits` (owned by a node the caller keeps alive).
fn born_cancelled(bits: usize) -> NodeRef {
    let mut node = Node::new(NO_PARENT);
    // SAFETY: the caller keeps the owner of `bits` alive.
    node.state = AtomicUsize::new(unsafe { PackedReason::clone_bits(bits) } | DONE);
    NodeRef::from_box(Box::new(node))
}

/// Drops one reference; the last one takes the node out of the tree and frees it (see
/// [`free`]). Inlined: dropping a handle that is not the last is one atomic decrement.
///
/// # Safety
/// The caller owns one reference on `node` and gives it up.
#[inline]
unsafe fn release(node: NonNull<Node>) {
    // SAFETY: the caller's reference keeps the node alive until the decrement.
    if unsafe { node.as_ref() }
        .refs
        .fetch_sub(1, Ordering::Release)
        == 1
    {
        // SAFETY: that was the last reference.
        unsafe { free(node) }
    }
}

/// The last strong reference of `node` is gone (invariant 12): its weak waiters are woken, and
/// unless it lingers for its children it leaves its parents' lists and is freed, followed by
/// every lingering ancestor whose list it empties, in a loop (invariant 9).
///
/// # Safety
/// The strong count of `node` is zero, and this thread brought it there.
#[inline(never)]
unsafe fn free(node: NonNull<Node>) {
    fence(Ordering::Acquire);
    // SAFETY: the fence makes every entry committed by a holder of a strong reference visible,
    // and no new one can come (invariant 4). Nothing frees the node before this thread lets it
    // die or linger.
    let this = unsafe { node.as_ref() };
    // The common case, two loads and no lock: a node that never had an entry. A weak waiter
    // commits without a strong reference, so `HAS_ENTRIES` alone could miss one; but it holds a
    // weak reference while it is registered. Acquire: synchronises with the drop of the last
    // other weak reference (and so with its waiter's unlinking).
    if this.state.load(Ordering::Relaxed) & HAS_ENTRIES == 0
        && this.weak.load(Ordering::Acquire) == 1
    {
        // SAFETY: no entry, so it does not linger; this thread alone takes it out.
        unsafe { die(node) }
    } else {
        // SAFETY: forwarded.
        unsafe { abandon(node) }
    }
}

/// [`free`] for a node that has, or had, entries or is watched by weak references: under its
/// lock, its weak waiters are taken (and woken after the lock), and, once none is left, it is
/// tagged `LINGERING` if its children list is not empty; otherwise it dies at once. A weak
/// waiter that registers later sees the zero count under the lock and does not wait
/// (invariant 12).
///
/// # Safety
/// As for [`free`], after its fence.
#[cold]
#[inline(never)]
unsafe fn abandon(node: NonNull<Node>) {
    // SAFETY: nothing frees the node before this thread lets it die or linger.
    let this = unsafe { node.as_ref() };
    let mut taken = Chain::new();
    let mut wakers = WakeBatch::new();
    let mut panic = None;
    let lingers = loop {
        let (more, lingers) = {
            let _guard = this.lock.lock();
            // SAFETY: the lock is held; a dead node's signals are weak waiters only
            // (invariant 4). The tag is written under the lock that the node's children take
            // to leave its list, so exactly one side sees the other: the last child to leave
            // a tagged node takes it out of the tree, or this thread does.
            unsafe {
                let more = take_signals(this, &mut taken, &mut wakers);
                let lingers = !more && !this.head.get().is_null();
                if lingers {
                    this.parent
                        .set(this.parent.get().map_addr(|addr| addr | LINGERING));
                }
                (more, lingers)
            }
        };
        // From here a lingering node may be freed by its last child: it is not touched again.
        debug_assert!(
            taken.is_empty(),
            "a callback entry holds a strong reference"
        );
        wakers.wake_all(&mut panic);
        if !more {
            break lingers;
        }
    };
    if !lingers {
        // SAFETY: its children list is empty and stays so; this thread alone takes it out.
        unsafe { die(node) };
    }
    if let Some(payload) = panic {
        crate::sync::resume(payload);
    }
}

/// Takes a dead node out of the tree: it leaves its parents' lists, then its memory is freed
/// unless weak references keep it. A lingering parent whose list it empties dies next, in the
/// same loop (invariant 9).
///
/// # Safety
/// The strong count of `node` is zero, its children list is empty and stays so, its weak
/// waiters were taken, and no other thread takes it out of the tree.
#[inline(always)]
unsafe fn die(node: NonNull<Node>) {
    let mut next = Some(node);
    while let Some(ptr) = next {
        // SAFETY: forwarded from the caller for `node`, and from `leave` for a lingering
        // parent that the previous node emptied.
        unsafe {
            if ptr.as_ref().parent() == LINKED {
                return die_linked(ptr);
            }
            next = leave_parent(ptr);
        }
    }
}

/// [`die`] from an `any_of` node on: such a node can empty several lingering parents at once,
/// so the nodes still to take out are kept in a list (which allocates only then).
///
/// # Safety
/// As for [`die`].
#[cold]
#[inline(never)]
unsafe fn die_linked(node: NonNull<Node>) {
    let mut next = Some(node);
    let mut more: Vec<NonNull<Node>> = Vec::new();
    while let Some(ptr) = next.take().or_else(|| more.pop()) {
        // SAFETY: as for `die`; an `any_of` node's up-links are its own, and each is in its
        // parent's list until it leaves it here.
        unsafe {
            if ptr.as_ref().parent() != LINKED {
                next = leave_parent(ptr);
                continue;
            }
            let linked = ptr.as_ptr().cast::<Linked>();
            let mut up = (*linked).uplinks.get();
            while !up.is_null() {
                let Uplink {
                    parent, next_up, ..
                } = *up;
                if leave(parent, LinkPtr::new(up.cast(), KIND_UPLINK)) {
                    match next {
                        None => next = Some(parent),
                        Some(_) => more.push(parent),
                    }
                }
                drop(Box::from_raw(up));
                up = next_up;
            }
            release_memory::<Linked>(ptr);
        }
    }
}

/// Takes a dead node that is not an `any_of` node out of its parent's list (a root has none) and
/// frees it; returns the parent if it lingers and this emptied its list.
///
/// # Safety
/// As for [`die`], and `node` was allocated as a `Box<Node>`.
#[inline(always)]
unsafe fn leave_parent(node: NonNull<Node>) -> Option<NonNull<Node>> {
    // SAFETY: the caller alone takes the node out; its parent is alive while it is in its list.
    unsafe {
        let parent = node.as_ref().parent();
        if parent == NO_PARENT {
            release_memory::<Node>(node);
            return None;
        }
        let parent = NonNull::new_unchecked(parent.cast_mut());
        let emptied = leave(parent, LinkPtr::new(sib_of(node), KIND_CHILD));
        release_memory::<Node>(node);
        emptied.then_some(parent)
    }
}

/// The last step of a node's death, once it left its parents' lists: with no weak reference
/// left (the common case, one load) it is freed at once, as the `T` it was allocated as (`Node`,
/// or `Linked` for an `any_of` node); otherwise the strong references' weak reference is given
/// up, and the last weak reference frees it.
///
/// # Safety
/// The node is dead and left its parents' lists, and it was allocated as a `Box<T>` whose first
/// field is the node.
#[inline(always)]
unsafe fn release_memory<T>(node: NonNull<Node>) {
    // Acquire: synchronises with the drop of the last other weak reference. With the count at
    // one, none can appear: a weak reference is made from a strong one or another weak one,
    // and a walker takes one only while the node is in a list (invariant 6).
    // SAFETY: the weak reference of the strong ones keeps the memory alive.
    if unsafe { node.as_ref() }.weak.load(Ordering::Acquire) == 1 {
        // SAFETY: no reference of either kind is left; the allocation is a `Box<T>` (caller).
        drop(unsafe { Box::from_raw(node.as_ptr().cast::<T>()) });
    } else {
        // SAFETY: the strong references' weak reference, given up now.
        unsafe { release_weak(node) };
    }
}

/// Drops one weak reference; the last one frees the node's memory.
///
/// # Safety
/// The caller owns one weak reference on `node` and gives it up.
unsafe fn release_weak(node: NonNull<Node>) {
    // SAFETY: the caller's weak reference keeps the memory alive until the decrement.
    if unsafe { node.as_ref() }
        .weak
        .fetch_sub(1, Ordering::Release)
        == 1
    {
        fence(Ordering::Acquire);
        // SAFETY: no reference of either kind is left.
        unsafe { dealloc(node) };
    }
}

/// Frees a dead node's memory, as the type it was allocated as.
///
/// # Safety
/// No strong or weak reference to `node` is left.
unsafe fn dealloc(node: NonNull<Node>) {
    // SAFETY: nobody else can reach the node; `parent` says how it was allocated (`any_of`).
    unsafe {
        if node.as_ref().parent() == LINKED {
            drop(Box::from_raw(node.as_ptr().cast::<Linked>()));
        } else {
            drop(Box::from_raw(node.as_ptr()));
        }
    }
}

/// Removes `entry` from the list of `parent`, under its lock. Returns `true` if `parent`
/// lingers and this was the last entry of its list: then the caller takes it out of the tree
/// (invariant 12).
///
/// # Safety
/// `entry` is in the list of `parent`, which is therefore alive (invariant 5).
unsafe fn leave(parent: NonNull<Node>, entry: LinkPtr) -> bool {
    // SAFETY: alive (caller).
    let parent = unsafe { parent.as_ref() };
    let _guard = parent.lock.lock();
    // SAFETY: the lock is held and `entry` is in this list (caller); the tag is written under
    // the same lock.
    unsafe {
        unlink(&parent.head, entry);
        parent.head.get().is_null() && parent.parent.get().addr() & LINGERING != 0
    }
}

/// Finishes the subtree of a node that is already cancelled, unless it is done: another thread's
/// walk may still be on its way down (invariant 10).
fn help(node: NonNull<Node>, state: usize) {
    if state & DONE != 0 {
        return;
    }
    // SAFETY: the caller's handle keeps the node, which owns these bits, alive.
    let reason = unsafe { PackedReason::from_bits(PackedReason::clone_bits(state & REASON_MASK)) };
    let mut walk = Walk::new(&reason);
    walk.run(node);
    walk.finish();
}

/// The state of one `cancel` call: the nodes still to visit and the callbacks still to run.
struct Walk<'a> {
    reason: &'a PackedReason,
    /// What is left to do, depth first: nodes to enter, and nodes to leave (mark done) once
    /// their subtree is finished.
    stack: Vec<Frame>,
    callbacks: Chain,
    panic: Option<Payload>,
}

/// One step of a walk, on a node the walk holds a weak reference on (invariant 6) until it
/// leaves it.
struct Frame {
    node: NonNull<Node>,
    step: Step,
}

enum Step {
    /// Cancel the node's children, take its callbacks and wake its waiters.
    Enter,
    /// The node's subtree is finished: mark it done.
    Leave,
}

/// A caught panic: what [`crate::sync::catch`] returns.
#[cfg(feature = "std")]
type Payload = Box<dyn core::any::Any + Send>;
#[cfg(not(feature = "std"))]
type Payload = core::convert::Infallible;

impl<'a> Walk<'a> {
    fn new(reason: &'a PackedReason) -> Self {
        Walk {
            reason,
            stack: Vec::new(),
            callbacks: Chain::new(),
            panic: None,
        }
    }

    /// Walks the subtree of `start` (cancelled already), depth first, marking each node done
    /// once everything below it is cancelled. This is where cancelation reaches a grandchild: a
    /// child with entries of its own is entered in turn.
    fn run(&mut self, start: NonNull<Node>) {
        // SAFETY: the caller keeps `start` alive.
        let start = unsafe { start.as_ref() };
        self.visit(start);
        while let Some(frame) = self.stack.pop() {
            // SAFETY: every frame holds a weak reference (invariant 6) until it is left.
            let node = unsafe { frame.node.as_ref() };
            match frame.step {
                Step::Enter => {
                    self.stack.push(Frame {
                        step: Step::Leave,
                        ..frame
                    });
                    self.visit(node);
                }
                Step::Leave => {
                    node.state.fetch_or(DONE, Ordering::Release);
                    // SAFETY: the weak reference taken when the frame was pushed.
                    unsafe { release_weak(frame.node) };
                }
            }
        }
        start.state.fetch_or(DONE, Ordering::Release);
    }

    /// Enters a cancelled node: cancels its children and linked nodes with the node's own
    /// reason, wakes its waiters and takes its callbacks. Whichever walk enters a cancelled node
    /// first takes its signals, so a walk cut short by a panic (without `std`) leaves them to the
    /// next cancel that reaches the node (invariant 10).
    ///
    /// The node's reason is the walk's, except where the walk helps finish a subtree that
    /// another cancelation reached first: there the descendants get that cancelation's reason
    /// (invariant 10), and the callbacks taken there run at once, with it.
    fn visit(&mut self, node: &Node) {
        let bits = node.state.load(Ordering::Acquire) & REASON_MASK;
        let foreign;
        let reason = if bits == self.reason.bits() {
            self.reason
        } else {
            // SAFETY: the node, alive for the whole visit, owns these bits.
            foreign = unsafe { PackedReason::from_bits(PackedReason::clone_bits(bits)) };
            &foreign
        };
        let mut guard = node.lock.lock();
        // SAFETY: the lock is held (invariant 2), and every entry of the lists is valid
        // (invariant 5).
        unsafe {
            self.cancel_children(node, reason);
            if node.signals.get().is_null() {
                return;
            }
        }
        let mut taken = Chain::new();
        let mut wakers = WakeBatch::new();
        loop {
            // SAFETY: as above; the lock is held again on every round.
            let more = unsafe { take_signals(node, &mut taken, &mut wakers) };
            drop(guard);
            wakers.wake_all(&mut self.panic);
            if !more {
                break;
            }
            guard = node.lock.lock();
        }
        if core::ptr::eq(reason, self.reason) {
            self.callbacks.append(taken);
        } else {
            // SAFETY: `reason` is alive for the call.
            let reason = unsafe { PackedReason::read(reason.bits()) };
            run_callbacks(&mut taken, &reason, &mut self.panic);
        }
    }

    /// Cancels the children and linked nodes of `node`; those with entries of their own go on
    /// the stack.
    ///
    /// # Safety
    /// The caller holds `node`'s lock.
    unsafe fn cancel_children(&mut self, node: &Node, reason: &PackedReason) {
        // SAFETY: the lock is held (caller), so the list is ours to walk; every entry is valid
        // (invariant 5). Children stay linked: they leave the list when they are freed.
        unsafe {
            let mut cur = node.head.get();
            while !cur.is_null() {
                let child = if cur.kind() == KIND_CHILD {
                    cur.link()
                        .byte_sub(offset_of!(Node, sib))
                        .cast::<Node>()
                        .cast_mut()
                } else {
                    (*cur.link().cast::<Uplink>()).child.as_ptr()
                };
                let child = NonNull::new_unchecked(child);
                let enter = match child.as_ref().set_reason(reason) {
                    // A leaf is done with the CAS; a node with entries is entered.
                    Ok(flags) => flags & HAS_ENTRIES != 0,
                    // Cancelled by someone else: help unless its subtree is done already.
                    Err(state) => state & DONE == 0,
                };
                if enter {
                    // A weak reference: the child may be dead and lingering for children of its
                    // own, which the walk still has to reach (invariant 6).
                    child.as_ref().acquire_weak();
                    self.stack.push(Frame {
                        node: child,
                        step: Step::Enter,
                    });
                }
                cur = (*cur.link()).next.get();
            }
        }
    }

    /// Runs the callbacks taken by the walk, in order, and resumes the first panic (unless the
    /// thread is unwinding already: see [`crate::sync::resume`]).
    fn finish(mut self) {
        if !self.callbacks.is_empty() {
            // SAFETY: `self.reason` is alive for the whole walk.
            let reason = unsafe { PackedReason::read(self.reason.bits()) };
            run_callbacks(&mut self.callbacks, &reason, &mut self.panic);
        }
        if let Some(payload) = self.panic.take() {
            crate::sync::resume(payload);
        }
    }
}

/// Only reached with frames left when a panic unwinds out of the walk (without `std`): the
/// nodes they stand for are cancelled but not `DONE`, so the next cancel that reaches them
/// finishes their subtrees; the references the frames hold are let go here.
impl Drop for Walk<'_> {
    fn drop(&mut self) {
        while let Some(frame) = self.stack.pop() {
            // SAFETY: each frame holds one weak reference (invariant 6).
            unsafe { release_weak(frame.node) };
        }
    }
}

/// Runs the callbacks of `chain` in order with `reason`; remembers the first panic and runs the
/// rest anyway.
fn run_callbacks(chain: &mut Chain, reason: &CancelReason, panic: &mut Option<Payload>) {
    while let Some(header) = chain.pop_front() {
        // SAFETY: the walk took the entry out of its list, so it owns the list's share of it.
        if let Some(payload) = crate::sync::catch(|| unsafe { CallbackHeader::run(header, reason) })
        {
            keep_first(panic, payload);
        }
    }
}

/// Wakers woken per lock hold: the walk collects them on its stack, so waking any number of
/// waiters allocates nothing.
const WAKE_BATCH: usize = 32;

/// Takes the signals of a cancelled node from the front of its list: every callback into
/// `taken`, waiters' wakers into `wakers` until it is full. Returns whether signals are left.
///
/// The taken entries are cut off the list in one piece (the head and one `prev` are written once
/// per batch); their own links are left as they are, since `claim`/`linked` tell their owners
/// they are out.
///
/// # Safety
/// The caller holds `node`'s lock; `wakers` is empty.
unsafe fn take_signals(node: &Node, taken: &mut Chain, wakers: &mut WakeBatch) -> bool {
    debug_assert_eq!(wakers.filled, 0);
    // Counted in a register, and bounded by `>=` so that the slot index needs no other check.
    let mut filled = 0;
    // SAFETY: the lock is held (caller), so the list and the guarded fields of its entries are
    // ours; every entry is valid (invariant 5).
    unsafe {
        let mut cur = node.signals.get();
        let more = loop {
            if cur.is_null() {
                break false;
            }
            let next = (*cur.link()).next.get();
            if cur.kind() == KIND_CALLBACK {
                let header = cur.link().cast::<CallbackHeader>().cast_mut();
                // Under the lock: `unregister` reads `LISTED` under it before unlinking.
                (*header).claim.store(TAKEN, Ordering::Relaxed);
                taken.push_front(NonNull::new_unchecked(header));
            } else {
                if filled >= WAKE_BATCH {
                    break true;
                }
                // Only the header's guarded fields are touched: the owner may hold `&mut` to the
                // rest, and the header is the same for both kinds of waiter. A linked waiter
                // always has a waker.
                let entry = cur.link().cast::<WaitHeader>();
                (*entry).linked.set(false);
                if let Some(waker) = (*entry).waker.replace(None) {
                    wakers.wakers[filled].write(waker);
                    filled += 1;
                }
            }
            cur = next;
        };
        node.signals.set(cur);
        if !cur.is_null() {
            (*cur.link()).prev.set(LinkPtr::NULL);
        }
        wakers.filled = filled;
        more
    }
}

/// Wakers taken out of a node's list under its lock, to be woken once it is released
/// (invariant 8): up to [`WAKE_BATCH`] of them, kept on the stack so that waking any number of
/// waiters allocates nothing.
struct WakeBatch {
    wakers: [MaybeUninit<Waker>; WAKE_BATCH],
    /// `wakers[woken..filled]` are initialised and not woken yet.
    woken: usize,
    filled: usize,
}

impl WakeBatch {
    fn new() -> Self {
        WakeBatch {
            wakers: [const { MaybeUninit::uninit() }; WAKE_BATCH],
            woken: 0,
            filled: 0,
        }
    }

    /// Wakes every waker of the batch and empties it. With `std` a panicking waker is
    /// remembered in `panic` (the first one) and the rest are woken anyway. Without `std` the
    /// panic unwinds at once, and dropping the batch on the way wakes the rest: those tasks,
    /// already out of the list, would otherwise never learn of the cancelation (another panic
    /// among them aborts, as any panic during unwinding does).
    fn wake_all(&mut self, panic: &mut Option<Payload>) {
        #[cfg(feature = "std")]
        while self.woken < self.filled {
            if let Some(payload) = crate::sync::catch(|| self.wake_rest()) {
                keep_first(panic, payload);
            }
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = panic;
            self.wake_rest();
        }
        self.woken = 0;
        self.filled = 0;
    }

    fn wake_rest(&mut self) {
        while self.woken < self.filled {
            // SAFETY: `wakers[woken..filled]` are initialised, and `woken` moves past this one
            // before it is woken, so it is read once even if its `wake` panics.
            let waker = unsafe { self.wakers[self.woken].assume_init_read() };
            self.woken += 1;
            waker.wake();
        }
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        self.wake_rest();
    }
}

/// Remembers `payload` unless an earlier panic is remembered already; a later payload is
/// dropped so that its own `Drop` cannot escape either.
fn keep_first(panic: &mut Option<Payload>, payload: Payload) {
    match panic {
        None => *panic = Some(payload),
        Some(_) => crate::sync::discard(payload),
    }
}

/// A singly linked chain of callback entries taken out of their lists, through their now unused
/// `next` links. The chain owns the walk's share of each entry: one that is dropped before
/// running them all (a panic unwinding out of the walk without `std`) lets those shares go
/// without running them, and their handles can still unregister them (`TAKEN`).
struct Chain {
    head: *mut CallbackHeader,
    tail: *mut CallbackHeader,
}

impl Chain {
    fn new() -> Self {
        Chain {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `header` left its list and belongs to the walk.
    unsafe fn push_front(&mut self, header: NonNull<CallbackHeader>) {
        // SAFETY: the entry is out of every list, so its `next` link is the walk's to use.
        unsafe {
            header
                .as_ref()
                .link
                .next
                .set(LinkPtr::new(self.head.cast(), KIND_CALLBACK));
        }
        if self.tail.is_null() {
            self.tail = header.as_ptr();
        }
        self.head = header.as_ptr();
    }

    fn append(&mut self, mut other: Chain) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            core::mem::swap(self, &mut other);
            return;
        }
        // SAFETY: `tail` is an entry of this chain, owned by the walk.
        unsafe {
            (*self.tail)
                .link
                .next
                .set(LinkPtr::new(other.head.cast(), KIND_CALLBACK))
        };
        self.tail = other.tail;
        other.head = ptr::null_mut();
        other.tail = ptr::null_mut();
    }

    /// The entry at the front, which leaves the chain (the caller takes over the walk's share).
    fn pop_front(&mut self) -> Option<NonNull<CallbackHeader>> {
        let header = NonNull::new(self.head)?;
        // SAFETY: entries of the chain belong to the walk; `next` was set by `push_front`.
        self.head = unsafe {
            header
                .as_ref()
                .link
                .next
                .get()
                .link()
                .cast::<CallbackHeader>()
        }
        .cast_mut();
        if self.head.is_null() {
            self.tail = ptr::null_mut();
        }
        Some(header)
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        while let Some(header) = self.pop_front() {
            drop(Share(header));
        }
    }
}

/// The type-erased head of an `on_cancel` registration (`callback.rs` owns the typed entry).
///
/// It has two owners, the list (then the walk that takes it) and the `CancelCallback` handle;
/// the last of them to let go frees it. Who runs or drops the closure is decided by `claim`:
///
/// ```text
/// LISTED --walk, under the lock--> TAKEN --walk, CAS--> RUNNING        (the closure runs)
///    |                               |
///    +--unregister, under the lock---+--unregister, CAS--> REMOVED     (the closure is dropped)
/// ```
///
/// So `unregister` returns `true` exactly when the closure never runs, and never waits: a walk
/// that took the entry out but has not started it loses the entry to `unregister`.
#[repr(C)]
pub(crate) struct CallbackHeader {
    link: Link,
    claim: AtomicUsize,
    owners: AtomicUsize,
    vtable: &'static CallbackVTable,
}

/// In the node's list.
const LISTED: usize = 0;
/// Taken out of the list by a walk that has not started it yet.
const TAKEN: usize = 1;
/// Started by the walk.
const RUNNING: usize = 2;
/// Removed by its handle before it started: it never runs.
const REMOVED: usize = 3;

/// What [`NodeRef::unregister`] did.
pub(crate) enum Unregistered {
    /// Unlinked from the list: the caller owns the closure and the list's share.
    FromList,
    /// Claimed from a walk that took it out: the caller owns the closure; the walk lets go of
    /// its share when it gets there.
    FromWalk,
    /// It has run or is running.
    Started,
}

/// What the tree needs to know of a typed callback entry.
pub(crate) struct CallbackVTable {
    /// Runs the closure, consuming it.
    pub(crate) call: unsafe fn(NonNull<CallbackHeader>, &CancelReason),
    /// Drops the closure without running it.
    pub(crate) drop_closure: unsafe fn(NonNull<CallbackHeader>),
    /// Frees the entry; the closure was run or dropped before.
    pub(crate) dealloc: unsafe fn(NonNull<CallbackHeader>),
}

impl CallbackHeader {
    pub(crate) fn new(vtable: &'static CallbackVTable) -> Self {
        CallbackHeader {
            link: Link::new(),
            claim: AtomicUsize::new(LISTED),
            owners: AtomicUsize::new(2),
            vtable,
        }
    }

    /// Runs the closure of an entry taken by a walk unless its handle claimed it first, then
    /// drops the walk's share.
    ///
    /// # Safety
    /// The caller took the entry out of its list (so it owns the list's share).
    unsafe fn run(header: NonNull<CallbackHeader>, reason: &CancelReason) {
        // Let the share go even if the closure panics.
        let share = Share(header);
        // SAFETY: the share keeps the entry alive.
        let claim = unsafe { &header.as_ref().claim };
        if claim
            .compare_exchange(TAKEN, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: winning `TAKEN -> RUNNING` hands the closure to this walk, once.
            unsafe { (header.as_ref().vtable.call)(share.0, reason) };
        }
    }

    /// Drops the closure of an entry that was removed from its list without running.
    ///
    /// # Safety
    /// [`NodeRef::unregister`] gave the closure to the caller (`FromList` or `FromWalk`).
    pub(crate) unsafe fn drop_closure(header: NonNull<CallbackHeader>) {
        // SAFETY: forwarded to the caller.
        unsafe { (header.as_ref().vtable.drop_closure)(header) }
    }

    /// Gives up one share; the last one frees the entry.
    ///
    /// # Safety
    /// The caller owns one of the two shares.
    pub(crate) unsafe fn release(header: NonNull<CallbackHeader>) {
        // SAFETY: our share keeps the entry alive until the decrement.
        let owners = unsafe { &header.as_ref().owners };
        if owners.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            // SAFETY: no share is left: nobody else can reach the entry.
            unsafe { (header.as_ref().vtable.dealloc)(header) }
        }
    }
}

/// One share of a callback entry, let go when dropped (also while unwinding).
pub(crate) struct Share(pub(crate) NonNull<CallbackHeader>);

impl Drop for Share {
    fn drop(&mut self) {
        // SAFETY: the guard owns the share it was made with.
        unsafe { CallbackHeader::release(self.0) }
    }
}

/// The part of a waiter that the node's list and its walkers touch, the same for both kinds of
/// [`WaitEntry`]. `linked` and `waker` are guarded by the lock of the node the entry is
/// registered on; the walker that takes the entry out of the list clears `linked` and takes the
/// waker under that lock, then wakes it after the lock is released.
#[repr(C)]
struct WaitHeader {
    link: Link,
    linked: LockedCell<bool>,
    waker: LockedCell<Option<Waker>>,
}

/// A task waiting for a node's cancelation: an entry of the node's list embedded in a pinned
/// future (or pinned on the stack of a blocking wait), so waiting allocates nothing.
///
/// `A` is what keeps the node in memory while the entry is registered: a [`NodeRef`] for
/// `cancelled()`, a [`WeakNodeRef`] for `released()`, which must not keep the node alive and
/// also resolves when it dies. It is a type parameter, not a runtime choice, so the common
/// `cancelled()` path pays nothing for weak waiting.
#[repr(C)]
pub(crate) struct WaitEntry<A: Anchor = NodeRef> {
    header: WaitHeader,
    /// The node the entry is registered on, as a counted reference, so that the node (or, for
    /// a weak waiter, its memory) outlives the entry's membership of its list. Only the owner of
    /// the entry touches it.
    node: Option<A>,
    _pinned: PhantomPinned,
}

/// A counted reference that keeps a node in memory: what a [`WaitEntry`] is registered with.
pub(crate) trait Anchor: Clone {
    /// Weak waiters also resolve when the node dies (its strong count reaches zero).
    const WEAK: bool;
    fn node(&self) -> &Node;
}

impl Anchor for NodeRef {
    const WEAK: bool = false;
    fn node(&self) -> &Node {
        NodeRef::node(self)
    }
}

impl Anchor for WeakNodeRef {
    const WEAK: bool = true;
    fn node(&self) -> &Node {
        WeakNodeRef::node(self)
    }
}

// SAFETY: the header is only touched under the registered node's lock (or by the owner while
// unregistered); `node` only by the owner through `Pin<&mut Self>`, and it is `Send`.
unsafe impl<A: Anchor + Send> Send for WaitEntry<A> {}
// SAFETY: `&WaitEntry` gives access to nothing without the node's lock.
unsafe impl<A: Anchor + Sync> Sync for WaitEntry<A> {}

impl<A: Anchor> Default for WaitEntry<A> {
    fn default() -> Self {
        WaitEntry {
            header: WaitHeader {
                link: Link::new(),
                linked: LockedCell::new(false),
                waker: LockedCell::new(None),
            },
            node: None,
            _pinned: PhantomPinned,
        }
    }
}

impl WaitEntry<NodeRef> {
    /// Ready once `node` is cancelled; otherwise makes sure `cx`'s waker will be woken then.
    pub(crate) fn poll_cancelled(
        self: Pin<&mut Self>,
        node: &NodeRef,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        self.poll_wait(node, cx)
    }
}

impl WaitEntry<WeakNodeRef> {
    /// Ready once the node is cancelled or dead (its last strong handle dropped); otherwise
    /// makes sure `cx`'s waker will be woken then. The entry holds only a weak reference.
    pub(crate) fn poll_released(
        self: Pin<&mut Self>,
        weak: &WeakNodeRef,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        self.poll_wait(weak, cx)
    }
}

impl<A: Anchor> WaitEntry<A> {
    /// Whether a node that a waiter of this kind waits on is done with.
    fn resolved(target: &Node) -> bool {
        target.is_cancelled() || (A::WEAK && target.is_dead())
    }

    fn poll_wait(self: Pin<&mut Self>, anchor: &A, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out of the entry; its address is what the list links to, and
        // `Drop` unlinks it before the memory can go away.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(registered) = &this.node else {
            return this.register(anchor, cx);
        };
        let target = registered.node();
        let header = &this.header;
        let linked = {
            let _guard = target.lock.lock();
            // SAFETY: the lock of the node the entry is registered on is held. `will_wake` only
            // compares the two wakers' data and vtable pointers: no user code runs.
            unsafe {
                let linked = header.linked.get();
                if linked
                    && header
                        .waker
                        .with(|w| w.as_ref().is_some_and(|w| w.will_wake(cx.waker())))
                {
                    return Poll::Pending;
                }
                linked
            }
        };
        let linked = linked && {
            // Another waker: clone it with the lock released (invariant 8), then swap it in
            // unless a walk took the entry meanwhile.
            let fresh = cx.waker().clone();
            let (unused, linked) = {
                let _guard = target.lock.lock();
                // SAFETY: as above.
                unsafe {
                    if header.linked.get() {
                        (header.waker.replace(Some(fresh)), true)
                    } else {
                        (Some(fresh), false)
                    }
                }
            };
            // The old waker, or the unused new one, is dropped after the lock (invariant 8).
            drop(unused);
            linked
        };
        if linked {
            Poll::Pending
        } else {
            this.node = None;
            Poll::Ready(())
        }
    }

    /// The tagged pointer the list holds: derived from the whole entry (whose first field is
    /// the header, whose first field is the link), so that the walker can reach the header's
    /// other fields through it.
    fn link_ptr(&self) -> LinkPtr {
        LinkPtr::new(ptr::from_ref(self).cast::<Link>(), KIND_WAITER)
    }

    fn register(&mut self, anchor: &A, cx: &mut Context<'_>) -> Poll<()> {
        let target = anchor.node();
        if Self::resolved(target) {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        let entry = self.link_ptr();
        let header = &self.header;
        let refused = {
            let _guard = target.lock.lock();
            // SAFETY: the lock is held, and the entry is in no list. It is pinned, so it stays
            // at this address until `Drop` unlinks it.
            unsafe {
                header.linked.set(true);
                let previous = header.waker.replace(Some(waker));
                debug_assert!(previous.is_none());
                // A weak waiter sees a dead node dead under its lock once the death has taken
                // the lock to wake weak waiters (invariant 12).
                let dead = A::WEAK && target.refs.load(Ordering::Relaxed) == 0;
                match if dead { Err(0) } else { target.commit(entry) } {
                    Ok(()) => None,
                    Err(_) => {
                        header.linked.set(false);
                        header.waker.replace(None)
                    }
                }
            }
        };
        match refused {
            // Cancelled (or dead) meanwhile; the unused waker is dropped here, after the lock.
            Some(_waker) => Poll::Ready(()),
            None => {
                self.node = Some(anchor.clone());
                Poll::Pending
            }
        }
    }
}

impl<A: Anchor> Drop for WaitEntry<A> {
    /// Inlined: most entries are dropped unregistered (the guarded future was ready on its
    /// first poll, or the wait ended), which costs one test.
    #[inline]
    fn drop(&mut self) {
        if self.node.is_some() {
            self.unregister();
        }
    }
}

impl<A: Anchor> WaitEntry<A> {
    /// Takes a registered entry out of its node's list, for `Drop`.
    #[inline(never)]
    fn unregister(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let waker = {
            let target = node.node();
            let _guard = target.lock.lock();
            // SAFETY: the lock of the node the entry is registered on is held; if still linked,
            // the entry is in its list.
            unsafe {
                if self.header.linked.get() {
                    self.header.linked.set(false);
                    unlink(&target.signals, self.link_ptr());
                }
                self.header.waker.replace(None)
            }
        };
        drop(waker);
        drop(node);
    }
}

#[cfg(all(test, not(loom), not(miri), unix))]
mod tests {
    //! What cannot be reached through the public API: a reference count at its limit. The
    //! process must abort, as `Arc` does, so each case runs in a child process of this test
    //! binary and the parent checks how it died.

    extern crate std;

    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    const CASE: &str = "CANCELABLE_OVERFLOW_CASE";

    /// Runs `case` in a child process (the same test, selected by `CASE`) and asserts that it
    /// aborted instead of panicking through half-linked states.
    fn aborts(test: &str, case: impl FnOnce()) {
        if std::env::var_os(CASE).is_some() {
            case();
            return;
        }
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(CASE, "1")
            .status()
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(6),
            "expected SIGABRT, the child ended with {status}"
        );
    }

    fn saturated_root() -> NodeRef {
        let root = NodeRef::new_root();
        root.node().refs.store(MAX_REFS + 1, Ordering::Relaxed);
        root
    }

    #[test]
    fn children_and_any_of_nodes_take_no_reference_on_their_parents() {
        // So a parent at the limit still gets children, and its count stays where it was.
        let root = saturated_root();
        let child = root.child();
        let linked = NodeRef::any_of([&root, &child]);
        assert_eq!(root.node().refs.load(Ordering::Relaxed), MAX_REFS + 1);
        assert_eq!(child.node().refs.load(Ordering::Relaxed), 1);
        drop((linked, child));
        root.node().refs.store(1, Ordering::Relaxed);
    }

    #[test]
    fn waiting_on_a_node_with_too_many_references_aborts() {
        aborts(
            "tree::tests::waiting_on_a_node_with_too_many_references_aborts",
            || {
                let root = saturated_root();
                let mut entry = core::pin::pin!(WaitEntry::default());
                let _ = entry
                    .as_mut()
                    .poll_cancelled(&root, &mut Context::from_waker(Waker::noop()));
            },
        );
    }

    #[test]
    fn cloning_a_handle_of_a_node_with_too_many_references_aborts() {
        aborts(
            "tree::tests::cloning_a_handle_of_a_node_with_too_many_references_aborts",
            || drop(saturated_root().clone()),
        );
    }
}
