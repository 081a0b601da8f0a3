//! Guards that cancel a token when they go out of scope.

use core::fmt;

use crate::token::CancellationToken;

/// Cancels its token (with a `Manual` reason) when dropped, unless disarmed.
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// {
///     let _guard = token.clone().drop_guard();
/// }
/// assert!(token.is_cancelled());
///
/// let kept = CancellationToken::new();
/// let guard = kept.clone().drop_guard();
/// let _token = guard.disarm();
/// assert!(!kept.is_cancelled());
/// ```
#[must_use = "the token is cancelled as soon as the guard is dropped"]
pub struct DropGuard {
    token: Option<CancellationToken>,
}

impl DropGuard {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self { token: Some(token) }
    }

    /// Gives the token back without cancelling it.
    ///
    /// ```
    /// let guard = cancelable::CancellationToken::new().drop_guard();
    /// assert!(!guard.disarm().is_cancelled());
    /// ```
    pub fn disarm(mut self) -> CancellationToken {
        self.token
            .take()
            .expect("a DropGuard always holds its token until disarmed")
    }

    /// The guarded token.
    ///
    /// ```
    /// let guard = cancelable::CancellationToken::new().drop_guard();
    /// let child = guard.token().child_token();
    /// drop(guard);
    /// assert!(child.is_cancelled());
    /// ```
    pub fn token(&self) -> &CancellationToken {
        self.token
            .as_ref()
            .expect("a DropGuard always holds its token until disarmed")
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("token", &self.token)
            .finish()
    }
}

/// The borrowed form of [`DropGuard`], from [`CancellationToken::drop_guard_ref`].
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// {
///     let _guard = token.drop_guard_ref();
/// }
/// assert!(token.is_cancelled());
/// ```
#[must_use = "the token is cancelled as soon as the guard is dropped"]
pub struct DropGuardRef<'a> {
    token: Option<&'a CancellationToken>,
}

impl<'a> DropGuardRef<'a> {
    pub(crate) fn new(token: &'a CancellationToken) -> Self {
        Self { token: Some(token) }
    }

    /// The guarded token.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let guard = token.drop_guard_ref();
    /// assert_eq!(guard.token(), &token);
    /// # guard.disarm();
    /// ```
    pub fn token(&self) -> &CancellationToken {
        self.token
            .expect("a DropGuardRef always holds its token until disarmed")
    }

    /// Gives the token back without cancelling it.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// token.drop_guard_ref().disarm();
    /// assert!(!token.is_cancelled());
    /// ```
    pub fn disarm(mut self) -> &'a CancellationToken {
        self.token
            .take()
            .expect("a DropGuardRef always holds its token until disarmed")
    }
}

impl Drop for DropGuardRef<'_> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}

impl fmt::Debug for DropGuardRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuardRef")
            .field("token", &self.token)
            .finish()
    }
}

/// Cancels its token only if dropped while the thread is panicking: a worker that dies takes its
/// subtree down with it, a worker that returns normally does not.
///
/// The reason is `Manual` with the message `"thread panicked"`. The cancelation runs while the
/// thread unwinds, so a callback or waker that panics during it cannot be resumed (that would
/// abort the process): it is reported by the panic hook, the rest of the tree is still
/// cancelled, and the thread's own panic goes on.
///
/// ```
/// use cancelable::CancellationToken;
///
/// let token = CancellationToken::new();
/// let worker = token.clone();
/// let result = std::thread::spawn(move || {
///     let _guard = worker.panic_guard();
///     panic!("boom");
/// })
/// .join();
/// assert!(result.is_err());
/// assert_eq!(token.reason().unwrap().message(), Some("thread panicked"));
///
/// let calm = CancellationToken::new();
/// drop(calm.panic_guard());
/// assert!(!calm.is_cancelled());
/// ```
#[cfg(feature = "std")]
#[must_use = "the guard does its work when dropped during a panic"]
pub struct PanicGuard {
    token: Option<CancellationToken>,
}

#[cfg(feature = "std")]
impl PanicGuard {
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self { token: Some(token) }
    }

    /// Gives the token back; a later panic no longer cancels it.
    ///
    /// ```
    /// let token = cancelable::CancellationToken::new();
    /// let guard = token.panic_guard();
    /// assert_eq!(guard.disarm(), token);
    /// ```
    pub fn disarm(mut self) -> CancellationToken {
        self.token
            .take()
            .expect("a PanicGuard always holds its token until disarmed")
    }
}

#[cfg(feature = "std")]
impl Drop for PanicGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            if std::thread::panicking() {
                token.cancel_with(crate::CancelReason::manual().with_message("thread panicked"));
            }
        }
    }
}

#[cfg(feature = "std")]
impl fmt::Debug for PanicGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicGuard")
            .field("token", &self.token)
            .finish()
    }
}
