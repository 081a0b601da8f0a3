//! Cancelation sources for the operations builder: each is a future plus the reason it cancels
//! with, ready for `Operation::cancel_on(source.future, source.reason)`.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::CancelKind;
//! use cancelable_smol::SmolRuntime;
//!
//! let source = cancelable_rt::sources::timeout::<SmolRuntime>(Duration::from_millis(1));
//! assert_eq!(source.reason.kind(), CancelKind::Timeout);
//! smol::block_on(source.future); // resolves once the time is up
//! ```

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use cancelable::CancelReason;

use crate::Runtime;
use crate::timeout::{deadline_reason, timeout_reason};
use crate::watcher::{condition_met, condition_reason};

/// A future that cancels an operation when it completes, and the reason it cancels with.
///
/// ```
/// let source = cancelable_smol::sources::timeout(std::time::Duration::from_secs(3));
/// assert_eq!(source.reason.to_string(), "timeout: deadline of 3s elapsed");
/// ```
pub struct Source<F> {
    /// Completes when the operation should be cancelled.
    pub future: F,
    /// The reason to cancel with.
    pub reason: CancelReason,
}

impl<F> fmt::Debug for Source<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("reason", &self.reason)
            .finish()
    }
}

/// Fires after `duration` on `R`'s timers, with a `Timeout` reason (`"deadline of 3s elapsed"`).
///
/// ```
/// use cancelable_smol::SmolRuntime;
///
/// let source = cancelable_rt::sources::timeout::<SmolRuntime>(std::time::Duration::from_millis(1));
/// smol::block_on(source.future);
/// ```
pub fn timeout<R: Runtime>(
    duration: Duration,
) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: R::sleep(duration),
        reason: timeout_reason(duration),
    }
}

/// Fires at `deadline` on `R`'s timers, with a `Timeout` reason giving the time left when it
/// was made.
///
/// ```
/// use std::time::{Duration, Instant};
/// use cancelable_smol::SmolRuntime;
///
/// let source = cancelable_rt::sources::deadline::<SmolRuntime>(Instant::now() + Duration::from_millis(1));
/// smol::block_on(source.future);
/// ```
pub fn deadline<R: Runtime>(
    deadline: Instant,
) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: R::sleep_until(deadline),
        reason: deadline_reason(deadline.saturating_duration_since(Instant::now())),
    }
}

/// Fires when one of `signals` arrives (an empty set means SIGINT and SIGTERM), with a `Signal`
/// reason naming the set (`"SIGINT or SIGTERM received"`). The handlers are installed by this
/// call, so a signal that arrives before the future is first polled is not missed; they are
/// removed when the future is dropped. A source only cancels: it never ends the process.
///
/// ```
/// let source = cancelable_rt::sources::signals([cancelable_rt::Signal::Usr2]).unwrap();
/// assert_eq!(source.reason.to_string(), "signal: SIGUSR2 received");
/// ```
#[cfg(unix)]
pub fn signals(
    signals: impl IntoIterator<Item = crate::Signal>,
) -> std::io::Result<Source<impl Future<Output = ()> + Send + 'static>> {
    let (signals, names) = crate::signals::install(&crate::signals::signal_set(signals))?;
    Ok(Source {
        future: async move {
            crate::signals::next_signal(signals).await;
        },
        reason: CancelReason::signal().with_message(format!("{names} received")),
    })
}

/// Fires once `predicate` returns `true`: checked at once, then every `interval` on `R`'s
/// timers, with a `Condition` reason. A panicking predicate is reported (see
/// [`cancel_when`](crate::cancel_when)) and checking goes on.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use cancelable_smol::SmolRuntime;
///
/// static READY: AtomicBool = AtomicBool::new(true);
/// let source = cancelable_rt::sources::condition::<SmolRuntime>(|| READY.load(Ordering::Relaxed), Duration::from_millis(10));
/// smol::block_on(source.future);
/// ```
pub fn condition<R: Runtime>(
    mut predicate: impl FnMut() -> bool + Send + 'static,
    interval: Duration,
) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: condition_met::<R, _, _>(move || std::future::ready(predicate()), interval),
        reason: condition_reason(interval),
    }
}
