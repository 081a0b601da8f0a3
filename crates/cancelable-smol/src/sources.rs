//! Cancelation sources for the operations builder: each is a [`cancelable::Source`], a future
//! plus the reason it cancels with, ready for `Operation::cancel_on(source)`.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::{CancelKind, Operation};
//!
//! let run = Operation::new("fetch")
//!     .cancel_on(cancelable_smol::sources::timeout(Duration::from_millis(1)))
//!     .run(|_| std::future::pending::<Result<(), _>>());
//! let err = smol::block_on(run).unwrap_err();
//! assert_eq!(err.reason().kind(), CancelKind::Timeout);
//!
//! // The parts stay public, for use without an operation.
//! let source = cancelable_smol::sources::timeout(Duration::from_millis(1));
//! assert_eq!(source.reason.kind(), CancelKind::Timeout);
//! smol::block_on(source.future); // resolves once the time is up
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use cancelable::{CancelReason, Source};
use smol::Timer;

/// Fires after `duration`, with a `Timeout` reason (`"deadline of 3s elapsed"`).
///
/// ```
/// let source = cancelable_smol::sources::timeout(std::time::Duration::from_millis(1));
/// smol::block_on(source.future);
/// ```
pub fn timeout(duration: Duration) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: async move {
            Timer::after(duration).await;
        },
        reason: crate::timeout_reason(duration),
    }
}

/// Fires at `deadline`, with a `Timeout` reason giving the time left when it was made.
///
/// ```
/// use std::time::{Duration, Instant};
/// let source = cancelable_smol::sources::deadline(Instant::now() + Duration::from_millis(1));
/// smol::block_on(source.future);
/// ```
pub fn deadline(deadline: Instant) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: async move {
            Timer::at(deadline).await;
        },
        reason: crate::deadline_reason(deadline.saturating_duration_since(Instant::now())),
    }
}

/// Fires when one of `signals` arrives (an empty set means SIGINT and SIGTERM), with a `Signal`
/// reason naming the set (`"SIGINT or SIGTERM received"`). The handlers are installed by this
/// call, so a signal that arrives before the future is first polled is not missed; they are
/// removed when the future is dropped.
///
/// ```
/// let source = cancelable_smol::sources::signals([cancelable_smol::Signal::Usr2]).unwrap();
/// assert_eq!(source.reason.to_string(), "signal: SIGUSR2 received");
/// ```
#[cfg(unix)]
pub fn signals(
    signals: impl IntoIterator<Item = crate::Signal>,
) -> std::io::Result<Source<impl Future<Output = ()> + Send + 'static>> {
    let (signals, names) = crate::install_signals(signals)?;
    Ok(Source {
        future: async move {
            crate::next_signal(signals).await;
        },
        reason: CancelReason::signal().with_message(format!("{names} received")),
    })
}

/// Fires once `predicate` returns `true`: checked at once, then every `interval`, with a
/// `Condition` reason. A panicking predicate is reported (see [`cancel_when`](crate::cancel_when))
/// and checking goes on.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
///
/// static READY: AtomicBool = AtomicBool::new(true);
/// let source = cancelable_smol::sources::condition(|| READY.load(Ordering::Relaxed), Duration::from_millis(10));
/// smol::block_on(source.future);
/// ```
pub fn condition(
    mut predicate: impl FnMut() -> bool + Send + 'static,
    interval: Duration,
) -> Source<impl Future<Output = ()> + Send + 'static> {
    Source {
        future: crate::condition_met(move || std::future::ready(predicate()), interval),
        reason: crate::condition_reason(interval),
    }
}
