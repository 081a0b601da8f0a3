//! The one place that chooses synchronisation primitives.
//!
//! The tree algorithm in `tree.rs` is written once against this module and model-checked as is:
//!
//! | build                       | atomics               | node lock                               |
//! |-----------------------------|-----------------------|-----------------------------------------|
//! | `--cfg loom`                | `loom`                | `loom::sync::Mutex` (waits are modelled) |
//! | `std` (default)             | `core`                | `parking_lot::RawMutex` (1 byte, parks)  |
//! | `critical-section`          | `core` / portable     | spin lock inside a critical section      |
//! | `no_std`                    | `core` / portable     | spin lock                                |
//!
//! The lock guards only a few pointer writes (list links), never user code, so a spin lock is
//! enough where nothing can park; the `critical-section` variant also keeps an interrupt handler on
//! the same core from spinning forever on a lock its own core holds.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

#[cfg(all(not(loom), feature = "portable-atomic"))]
pub(crate) use portable_atomic::{AtomicU32, AtomicUsize, Ordering, fence};

#[cfg(all(not(loom), not(feature = "portable-atomic")))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use AtomicUsize as StaticAtomicUsize;
/// For `static`s (a process-wide counter): loom's atomics cannot be built in a `const`, and such
/// a counter is no race of the tree, so under loom it stays a plain atomic.
#[cfg(loom)]
pub(crate) use core::sync::atomic::AtomicUsize as StaticAtomicUsize;

#[cfg(feature = "portable-atomic")]
pub(crate) use portable_atomic_util::Arc;

#[cfg(not(feature = "portable-atomic"))]
pub(crate) use alloc::sync::Arc;

/// A cell whose accesses are protected by a lock the caller holds.
///
/// Under loom this is loom's `UnsafeCell`, so a missing lock shows up as a data race in the
/// models instead of going unnoticed.
pub(crate) struct LockedCell<T> {
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    inner: core::cell::UnsafeCell<T>,
}

impl<T> LockedCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(loom)]
            inner: loom::cell::UnsafeCell::new(value),
            #[cfg(not(loom))]
            inner: core::cell::UnsafeCell::new(value),
        }
    }

    /// Puts `value` in the cell and returns the old value.
    ///
    /// # Safety
    /// The caller holds the lock that protects this cell, or has exclusive access.
    pub(crate) unsafe fn replace(&self, value: T) -> T {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller: no concurrent reader or writer.
        return self
            .inner
            .with_mut(|p| unsafe { core::ptr::replace(p, value) });
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller: no concurrent reader or writer.
        unsafe {
            core::ptr::replace(self.inner.get(), value)
        }
    }

    /// Reads the value in place.
    ///
    /// # Safety
    /// The caller holds the lock that protects this cell, or has exclusive access.
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller: no concurrent writer.
        return self.inner.with(|p| f(unsafe { &*p }));
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller: no concurrent writer.
        f(unsafe { &*self.inner.get() })
    }
}

impl<T: Copy> LockedCell<T> {
    /// # Safety
    /// The caller holds the lock that protects this cell, or has exclusive access.
    pub(crate) unsafe fn get(&self) -> T {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller: no concurrent writer.
        return self.inner.with(|p| unsafe { *p });
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller: no concurrent writer.
        unsafe {
            *self.inner.get()
        }
    }

    /// # Safety
    /// The caller holds the lock that protects this cell, or has exclusive access.
    pub(crate) unsafe fn set(&self, value: T) {
        #[cfg(loom)]
        // SAFETY: forwarded to the caller: no concurrent reader or writer.
        self.inner.with_mut(|p| unsafe { *p = value });
        #[cfg(not(loom))]
        // SAFETY: forwarded to the caller: no concurrent reader or writer.
        unsafe {
            *self.inner.get() = value
        }
    }
}

/// A mutual-exclusion lock without data: it guards the intrusive lists of one node.
pub(crate) struct RawLock {
    #[cfg(loom)]
    inner: loom::sync::Mutex<()>,
    #[cfg(all(not(loom), feature = "std", not(feature = "critical-section")))]
    inner: parking_lot::RawMutex,
    #[cfg(all(not(loom), any(not(feature = "std"), feature = "critical-section")))]
    inner: spin::SpinLock,
}

/// Proof that the lock is held; unlocks on drop.
pub(crate) struct LockGuard<'a> {
    #[cfg(loom)]
    _guard: loom::sync::MutexGuard<'a, ()>,
    #[cfg(not(loom))]
    lock: &'a RawLock,
    #[cfg(all(not(loom), feature = "critical-section"))]
    restore: critical_section::RestoreState,
}

impl RawLock {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(()),
            #[cfg(all(not(loom), feature = "std", not(feature = "critical-section")))]
            inner: <parking_lot::RawMutex as parking_lot::lock_api::RawMutex>::INIT,
            #[cfg(all(not(loom), any(not(feature = "std"), feature = "critical-section")))]
            inner: spin::SpinLock::new(),
        }
    }

    /// Under loom, a blocked thread is modelled as blocked, not as spinning.
    #[cfg(loom)]
    pub(crate) fn lock(&self) -> LockGuard<'_> {
        LockGuard {
            _guard: self.inner.lock().unwrap(),
        }
    }

    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_> {
        #[cfg(feature = "critical-section")]
        // SAFETY: the matching `release` runs in `LockGuard::drop`, in LIFO order with any
        // other critical section because the guard borrows the lock for its whole life.
        let restore = unsafe { critical_section::acquire() };
        #[cfg(all(feature = "std", not(feature = "critical-section")))]
        parking_lot::lock_api::RawMutex::lock(&self.inner);
        #[cfg(any(not(feature = "std"), feature = "critical-section"))]
        self.inner.lock();
        LockGuard {
            lock: self,
            #[cfg(feature = "critical-section")]
            restore,
        }
    }
}

#[cfg(not(loom))]
impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(all(feature = "std", not(feature = "critical-section")))]
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe {
            parking_lot::lock_api::RawMutex::unlock(&self.lock.inner)
        };
        #[cfg(any(not(feature = "std"), feature = "critical-section"))]
        self.lock.inner.unlock();
        #[cfg(feature = "critical-section")]
        // SAFETY: `restore` came from the `acquire` in `RawLock::lock` for this guard.
        unsafe {
            critical_section::release(self.restore)
        };
    }
}

/// A mutex around a small record (an operation's status, progress and times): a `parking_lot`
/// mutex with `std`, loom's under loom (so the models of the records' races see every wait);
/// without `std` the node lock above (a spin lock, or a critical section with the
/// `critical-section` feature), so operations work on bare-metal targets too. It is held for a
/// few field writes, never around user code.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

#[cfg(all(feature = "std", not(loom)))]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(parking_lot::Mutex::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}

#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) struct Mutex<T> {
    lock: RawLock,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the value is only reached through `with`, which holds the lock, so at most one thread
// touches it at a time; moving the mutex moves the value, hence `T: Send` for both.
#[cfg(all(not(feature = "std"), not(loom)))]
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above, the mutex owns the value.
#[cfg(all(not(feature = "std"), not(loom)))]
unsafe impl<T: Send> Send for Mutex<T> {}

#[cfg(all(not(feature = "std"), not(loom)))]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            lock: RawLock::new(),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _guard = self.lock.lock();
        // SAFETY: `_guard` holds the lock until the end of this block, and `with` is the only
        // path to the value, so this is the only reference to it.
        f(unsafe { &mut *self.value.get() })
    }
}

#[cfg(all(not(loom), any(not(feature = "std"), feature = "critical-section")))]
mod spin {
    #[cfg(not(feature = "portable-atomic"))]
    use core::sync::atomic::AtomicBool;
    #[cfg(feature = "portable-atomic")]
    use portable_atomic::AtomicBool;

    use super::Ordering;

    pub(crate) struct SpinLock(AtomicBool);

    impl SpinLock {
        pub(crate) fn new() -> Self {
            Self(AtomicBool::new(false))
        }

        pub(crate) fn lock(&self) {
            while self
                .0
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                while self.0.load(Ordering::Relaxed) {
                    core::hint::spin_loop();
                }
            }
        }

        pub(crate) fn unlock(&self) {
            self.0.store(false, Ordering::Release);
        }
    }
}

/// Runs `f`, catching a panic where `std` can; returns the panic payload.
#[cfg(feature = "std")]
pub(crate) fn catch<F: FnOnce()>(f: F) -> Option<std::boxed::Box<dyn core::any::Any + Send>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()
}

/// Without `std` a panic cannot be caught: it unwinds (or aborts) out of `cancel` as it is.
#[cfg(not(feature = "std"))]
pub(crate) fn catch<F: FnOnce()>(f: F) -> Option<core::convert::Infallible> {
    f();
    None
}

/// Resumes a panic caught by [`catch`].
/// Resumes a panic caught during a cancel walk, once the walk is finished, unless this thread
/// is unwinding already (a `PanicGuard` or `DropGuard` cancelling from a destructor): a second
/// panic there would abort the process. The panic was reported by the panic hook when it
/// happened; its payload is dropped.
#[cfg(feature = "std")]
pub(crate) fn resume(payload: std::boxed::Box<dyn core::any::Any + Send>) {
    if std::thread::panicking() {
        discard(payload);
    } else {
        std::panic::resume_unwind(payload)
    }
}

#[cfg(not(feature = "std"))]
pub(crate) fn resume(payload: core::convert::Infallible) {
    match payload {}
}

/// Drops a panic payload that will not be resumed. A payload whose own `Drop` panics must not
/// escape the walk either: the payload of that panic is dropped the same way, and after a few
/// such levels (only a payload built to panic forever gets there) the rest is leaked.
#[cfg(feature = "std")]
pub(crate) fn discard(payload: std::boxed::Box<dyn core::any::Any + Send>) {
    let mut payload = payload;
    for _ in 0..8 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
            Ok(()) => return,
            Err(inner) => payload = inner,
        }
    }
    core::mem::forget(payload);
}

#[cfg(not(feature = "std"))]
pub(crate) fn discard(payload: core::convert::Infallible) {
    match payload {}
}

/// Ends the process at once, like `Arc` on reference-count overflow: for states that a panic
/// would unwind through half-done. Without `std` there is no `abort` in `core`, so a panic is
/// raised while another unwinds, which every panic runtime turns into an abort (and a
/// `panic = "abort"` build aborts at the first one).
#[cold]
#[inline(never)]
pub(crate) fn abort(why: &str) -> ! {
    #[cfg(feature = "std")]
    {
        std::eprintln!("cancelable: {why}; aborting");
        std::process::abort()
    }
    #[cfg(not(feature = "std"))]
    {
        struct Bomb<'a>(&'a str);
        impl Drop for Bomb<'_> {
            fn drop(&mut self) {
                panic!("cancelable: {}; aborting", self.0);
            }
        }
        let _bomb = Bomb(why);
        panic!("cancelable: {why}");
    }
}

#[cfg(loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

/// A mutex with guards, for holding several at once (a registry's shards): `parking_lot`'s, or
/// loom's under loom.
#[cfg(feature = "std")]
pub(crate) struct Guarded<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(feature = "std")]
impl<T> Guarded<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> impl core::ops::DerefMut<Target = T> + '_ {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().unwrap();
    }
}
