//! The "second signal wins" convention of `cancel_on_signals`: once the token is cancelled, a
//! SIGINT or SIGTERM ends the process at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_signal::Signal;
use cancelable::{CancellationToken, WeakCancellationToken};
use signal_hook::SigId;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::low_level::unregister;

/// What a SIGINT or SIGTERM of the set does once the token of
/// `cancel_on_signals_with` is cancelled.
///
/// ```
/// use cancelable::CancellationToken;
/// use cancelable_smol::SecondSignal;
///
/// assert_eq!(SecondSignal::default(), SecondSignal::Exit);
/// smol::block_on(async {
///     // A library's own scope: a signal cancels it, the process is not the library's to end.
///     let scope = CancellationToken::new();
///     let _signals = cancelable_smol::cancel_on_signals_with(&scope, [], SecondSignal::Ignore)?;
///     std::io::Result::Ok(())
/// }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecondSignal {
    /// End the process at once with exit code 128 + the signal's number: 130 for SIGINT, 143
    /// for SIGTERM. What `cancel_on_signals` does.
    #[default]
    Exit,
    /// Leave the process running: once the token is cancelled, the signals are no longer
    /// listened for, and a later one is ignored unless something else listens for it. For
    /// libraries and embedders that do not own the process.
    Ignore,
}

/// The exit actions of one `cancel_on_signals` call, for the SIGINT and SIGTERM of its set.
///
/// Each such signal gets two actions in the process's signal handler: "exit if armed", then
/// "arm". So the first delivery arms and the next one exits, right in the handler, even if no
/// thread of the program can run any more. Dropping this (when the watch ends) arms for good if
/// the token was cancelled, keeping the exit actions for the rest of the process; if the token
/// was dropped uncancelled it removes them.
pub(crate) struct ExitOnSecondSignal {
    token: WeakCancellationToken,
    armed: Arc<AtomicBool>,
    exits: Vec<SigId>,
    arms: Vec<SigId>,
}

impl ExitOnSecondSignal {
    /// Installs the actions for the SIGINT and SIGTERM of `set` (none if it has neither).
    pub(crate) fn install(set: &[Signal], token: &CancellationToken) -> io::Result<Self> {
        let mut this = Self {
            token: token.downgrade(),
            armed: Arc::new(AtomicBool::new(false)),
            exits: Vec::new(),
            arms: Vec::new(),
        };
        let numbers: Vec<i32> = [(Signal::Int, SIGINT), (Signal::Term, SIGTERM)]
            .into_iter()
            .filter(|(signal, _)| set.contains(signal))
            .map(|(_, number)| number)
            .collect();
        // The registry runs a signal's actions in the order they were registered: the exits
        // come first, so the delivery that arms does not also exit.
        for &number in &numbers {
            let exit =
                flag::register_conditional_shutdown(number, 128 + number, this.armed.clone())?;
            this.exits.push(exit);
        }
        for &number in &numbers {
            this.arms.push(flag::register(number, this.armed.clone())?);
        }
        Ok(this)
    }
}

impl Drop for ExitOnSecondSignal {
    fn drop(&mut self) {
        for id in self.arms.drain(..) {
            unregister(id);
        }
        if self.token.is_cancelled() {
            // The program is shutting down: from now on a SIGINT or SIGTERM ends it.
            self.armed.store(true, Ordering::SeqCst);
        } else {
            for id in self.exits.drain(..) {
                unregister(id);
            }
        }
    }
}
