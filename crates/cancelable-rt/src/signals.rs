//! Unix signals as cancelations with a `Signal` reason naming the signal. Signals come through
//! async-signal, whose stream runs on any executor.

use std::io;

use cancelable::{CancelReason, CancellationToken};
use futures_lite::StreamExt as _;

use crate::second_signal::ExitOnSecondSignal;
use crate::{Runtime, SecondSignal, Watcher};

/// A signal that `cancel_on_signals` and `sources::signals` listen for (async-signal's).
pub use async_signal::Signal;

/// Cancels `token` with a `Signal` reason naming the signal (`"SIGUSR1 received"`) when one of
/// `signals` arrives (an empty set means SIGINT and SIGTERM); then, with
/// [`SecondSignal::Exit`], a SIGINT or SIGTERM of the set ends the process at once with exit
/// code 128 + its number. The adapters' `cancel_on_signals` and `cancel_on_signals_with`
/// document the whole behaviour.
///
/// ```
/// use cancelable::CancellationToken;
/// use cancelable_rt::{SecondSignal, Signal};
/// use cancelable_smol::SmolRuntime;
///
/// smol::block_on(async {
///     let token = CancellationToken::new();
///     let watcher = cancelable_rt::cancel_on_signals::<SmolRuntime>(&token, [Signal::Hup], SecondSignal::Exit)?;
///     drop(token); // dropped uncancelled: the handler goes away
///     assert!(!watcher.await);
///     std::io::Result::Ok(())
/// }).unwrap();
/// ```
pub fn cancel_on_signals<R: Runtime>(
    token: &CancellationToken,
    signals: impl IntoIterator<Item = Signal>,
    second: SecondSignal,
) -> io::Result<Watcher<R>> {
    let set = signal_set(signals);
    let (signals, _) = install(&set)?;
    let exit = match second {
        SecondSignal::Exit => Some(ExitOnSecondSignal::install(&set, token)?),
        SecondSignal::Ignore => None,
    };
    Ok(Watcher::spawn(token, move |weak| async move {
        // Dropped when the watch ends, which is when the token is cancelled or dropped.
        let _exit = exit;
        let signal = next_signal(signals).await;
        let reason =
            CancelReason::signal().with_message(format!("{} received", signal_name(signal)));
        weak.upgrade()
            .is_some_and(|token| token.cancel_with(reason))
    }))
}

/// The set a listener of `signals` listens for: SIGINT and SIGTERM when empty.
pub(crate) fn signal_set(signals: impl IntoIterator<Item = Signal>) -> Vec<Signal> {
    let set: Vec<Signal> = signals.into_iter().collect();
    if set.is_empty() {
        vec![Signal::Int, Signal::Term]
    } else {
        set
    }
}

/// Installs handlers for `set`; also returns their names for a reason's message, like
/// `SIGINT or SIGTERM`.
pub(crate) fn install(set: &[Signal]) -> io::Result<(async_signal::Signals, String)> {
    let names = set
        .iter()
        .map(|&s| signal_name(s))
        .collect::<Vec<_>>()
        .join(" or ");
    Ok((async_signal::Signals::new(set)?, names))
}

/// The next signal; a failure to read one is reported, and then nothing ever arrives.
pub(crate) async fn next_signal(mut signals: async_signal::Signals) -> Signal {
    match signals.next().await {
        Some(Ok(signal)) => signal,
        Some(Err(error)) => {
            std::eprintln!(
                "cancel_on_signals: reading signals failed ({error}); no longer listening"
            );
            std::future::pending().await
        }
        // async-signal's stream never ends.
        None => std::future::pending().await,
    }
}

/// The C name of a signal: `SIGUSR1`.
fn signal_name(signal: Signal) -> String {
    match signal {
        // The four whose Rust names are not the C name without `SIG`.
        Signal::Abort => "SIGABRT".into(),
        Signal::Alarm => "SIGALRM".into(),
        Signal::Child => "SIGCHLD".into(),
        Signal::Vtalarm => "SIGVTALRM".into(),
        other => format!("SIG{other:?}").to_uppercase(),
    }
}
