//! Cancelation sources for the operations builder: each is a [`cancelable::Source`], a future
//! plus the reason it cancels with, ready for `Operation::cancel_on(source)`.
//!
//! ```
//! use std::time::Duration;
//! use cancelable::{CancelKind, Operation};
//! use cancelable_smol::SmolRuntime;
//!
//! let run = Operation::new("fetch")
//!     .cancel_on(cancelable_rt::sources::timeout::<SmolRuntime>(Duration::from_millis(1)))
//!     .run(|_| std::future::pending::<Result<(), _>>());
//! let err = smol::block_on(run).unwrap_err();
//! assert_eq!(err.reason().kind(), CancelKind::Timeout);
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use cancelable::{CancelReason, Source};

use crate::Runtime;
use crate::timeout::{deadline_reason, timeout_reason};
use crate::watcher::{condition_met, condition_reason};

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
    Source::new(R::sleep(duration), timeout_reason(duration))
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
    let left = deadline.saturating_duration_since(Instant::now());
    Source::new(R::sleep_until(deadline), deadline_reason(left))
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
    let fired = async move {
        crate::signals::next_signal(signals).await;
    };
    Ok(Source::new(
        fired,
        CancelReason::signal().with_message(format!("{names} received")),
    ))
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
    let met = condition_met::<R, _, _>(move || std::future::ready(predicate()), interval);
    Source::new(met, condition_reason(interval))
}
