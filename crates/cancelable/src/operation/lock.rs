//! The lock around one operation's mutable record.
//!
//! With `std` it is a `parking_lot` mutex. Without `std` it is the core's node lock (a spin lock,
//! or a critical section with the `critical-section` feature), so operations keep working on
//! bare-metal targets; the record is only held for a few field writes, never around user code.

#[cfg(feature = "std")]
pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

#[cfg(feature = "std")]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(parking_lot::Mutex::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}

#[cfg(not(feature = "std"))]
pub(crate) struct Mutex<T> {
    lock: crate::sync::RawLock,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the value is only reached through `with`, which holds the lock, so at most one thread
// touches it at a time; moving the mutex moves the value, hence `T: Send` for both.
#[cfg(not(feature = "std"))]
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above, the mutex owns the value.
#[cfg(not(feature = "std"))]
unsafe impl<T: Send> Send for Mutex<T> {}

#[cfg(not(feature = "std"))]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            lock: crate::sync::RawLock::new(),
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
