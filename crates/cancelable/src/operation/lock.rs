//! The lock of operation records and registries: the crate's [`Mutex`](crate::sync::Mutex)
//! (`parking_lot` with `std`, the node lock without), and loom's under loom, so that the models
//! of the records' and registries' races see every wait.

#[cfg(not(loom))]
pub(crate) use crate::sync::Mutex as Lock;

/// Loom's mutex behind the same `with` as the crate's.
#[cfg(loom)]
pub(crate) struct Lock<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Lock<T> {
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
