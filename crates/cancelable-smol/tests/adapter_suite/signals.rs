//! What a process does on SIGINT and SIGTERM under `cancel_on_signals`, checked on a real child
//! process: the test binary runs itself again, with only [`signal_child_process`] selected and
//! the scenario in an environment variable. The child reports each step on standard error
//! (`child: ready`, ...), so the parent sends each signal only once the child is where the
//! scenario needs it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cancelable::{CancelKind, CancellationToken, TaskTracker};

use super::{adapter, block_on, spawn_detached};

/// The environment variable naming the scenario the child plays.
const SCENARIO: &str = "CANCELABLE_SIGNAL_SCENARIO";

/// How long the parent waits for a step of the child, or for its exit. Loose: a child that
/// should exit "at once" takes milliseconds, one that never does is caught all the same.
const PATIENCE: Duration = Duration::from_secs(20);

/// A child process playing one scenario of [`signal_child_process`]; killed when dropped, so a
/// failing test leaves nothing running.
struct Scenario {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Scenario {
    fn start(scenario: &str) -> Self {
        // `module_path!()` starts with the test crate's name, which test names leave out.
        let module = module_path!().split_once("::").unwrap().1;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("{module}::signal_child_process"),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SCENARIO, scenario)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child process");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the child's next step starting with `step`; returns the whole line.
    fn expect(&mut self, step: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let wanted = format!("child: {step}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(&wanted) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the child never reported {wanted:?} (exit status: {:?}); its standard error:\n{}",
                    self.child.try_wait(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` (a `kill -s` name: `INT`, `TERM`, `USR1`) to the child.
    fn send(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits for the child to end on its own and returns how it ended.
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child was still running {PATIENCE:?} later; its standard error:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if self.child.try_wait().is_ok_and(|status| status.is_none()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A child's step, read by [`Scenario::expect`].
fn report(step: &str) {
    eprintln!("child: {step}");
}

/// A shutdown that never ends: the thread blocks until the parent closes standard input, so
/// only the signal handler itself can end the process meanwhile.
fn stuck_shutdown() {
    report("stuck in its shutdown");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    report("shutdown ended");
}

/// The child half: plays the scenario named by [`SCENARIO`]. Never run on its own.
#[test]
#[ignore = "the child process of the signal tests, which run it with a scenario"]
fn signal_child_process() {
    let scenario = std::env::var(SCENARIO)
        .expect("the signal tests run this in a child process, with CANCELABLE_SIGNAL_SCENARIO");
    block_on(async {
        let token = CancellationToken::new();
        match scenario.as_str() {
            // The default set; after the first signal, a shutdown that never ends.
            "stuck" => {
                let _signals = adapter::cancel_on_signals(&token, []).unwrap();
                report("ready");
                token.cancelled().await;
                report(&format!("cancelled ({})", token.reason().unwrap()));
                stuck_shutdown();
            }
            // The default set; after the first signal, a shutdown that ends as it should.
            "graceful" => {
                let _signals = adapter::cancel_on_signals(&token, []).unwrap();
                let tracker = TaskTracker::new();
                let worker = token.child_token();
                spawn_detached(tracker.track_future(async move {
                    worker.cancelled().await;
                    futures_lite::future::yield_now().await; // its cleanup
                }));
                report("ready");
                token.cancelled().await;
                let reason = token.reason().unwrap();
                report(&format!("cancelled ({reason})"));
                let stopped =
                    adapter::shutdown(&token, reason, &tracker, Duration::from_secs(10)).await;
                report(&format!("stopped ({stopped})"));
            }
            // The token is cancelled by the program itself, not by a signal.
            "cancelled_otherwise" => {
                let watcher = adapter::cancel_on_signals(&token, []).unwrap();
                token.cancel_with(CancelKind::Shutdown);
                assert!(!watcher.await, "the watcher ended without cancelling");
                report("cancelled (by the program)");
                stuck_shutdown();
            }
            // A custom set with SIGUSR1 and SIGINT; a second SIGUSR1 is acknowledged by a
            // listener of the child's own.
            "custom_set" => {
                let set = [adapter::Signal::Usr1, adapter::Signal::Int];
                let _signals = adapter::cancel_on_signals(&token, set).unwrap();
                report("ready");
                token.cancelled().await;
                let again = adapter::sources::signals([adapter::Signal::Usr1]).unwrap();
                report(&format!("cancelled ({})", token.reason().unwrap()));
                again.future.await;
                report("still running after a second SIGUSR1");
                stuck_shutdown();
            }
            // A set without SIGINT: SIGINT is not ours to change.
            "without_sigint" => {
                let _signals = adapter::cancel_on_signals(&token, [adapter::Signal::Usr1]).unwrap();
                report("ready");
                token.cancelled().await;
                report(&format!("cancelled ({})", token.reason().unwrap()));
                stuck_shutdown();
            }
            // The opt-out; a second signal is acknowledged by a listener of the child's own.
            "ignore" => {
                let second = adapter::SecondSignal::Ignore;
                let _signals = adapter::cancel_on_signals_with(&token, [], second).unwrap();
                report("ready");
                token.cancelled().await;
                let again = adapter::sources::signals([]).unwrap();
                report(&format!("cancelled ({})", token.reason().unwrap()));
                again.future.await;
                report("still running after a second signal");
            }
            other => panic!("unknown scenario {other:?}"),
        }
    });
}

/// Sends `first`, waits until the child's token is cancelled by it, then sends `second` while
/// the child is stuck in its shutdown.
fn two_signals(first: &str, second: &str) -> ExitStatus {
    let mut child = Scenario::start("stuck");
    child.expect("ready");
    child.send(first);
    let cancelled = child.expect("cancelled");
    assert_eq!(
        cancelled,
        format!("child: cancelled (signal: SIG{first} received)")
    );
    child.expect("stuck in its shutdown");
    child.send(second);
    child.exit()
}

#[test]
fn a_second_sigint_ends_a_stuck_shutdown_at_once_with_exit_code_130() {
    assert_eq!(two_signals("INT", "INT").code(), Some(130));
}

#[test]
fn a_second_sigterm_ends_a_stuck_shutdown_at_once_with_exit_code_143() {
    assert_eq!(two_signals("TERM", "TERM").code(), Some(143));
}

#[test]
fn the_second_signal_may_differ_from_the_first_and_sets_the_exit_code() {
    assert_eq!(two_signals("INT", "TERM").code(), Some(143));
    assert_eq!(two_signals("TERM", "INT").code(), Some(130));
}

#[test]
fn one_signal_cancels_and_the_process_exits_cleanly_after_its_shutdown() {
    let mut child = Scenario::start("graceful");
    child.expect("ready");
    child.send("TERM");
    assert_eq!(
        child.expect("cancelled"),
        "child: cancelled (signal: SIGTERM received)"
    );
    assert!(
        child
            .expect("stopped")
            .starts_with("child: stopped (every task stopped within")
    );
    assert_eq!(child.exit().code(), Some(0));
}

#[test]
fn once_the_token_is_cancelled_otherwise_the_first_sigint_ends_the_process() {
    let mut child = Scenario::start("cancelled_otherwise");
    child.expect("stuck in its shutdown");
    child.send("INT");
    assert_eq!(child.exit().code(), Some(130));
}

#[test]
fn other_signals_of_a_custom_set_cancel_once_and_never_end_the_process() {
    let mut child = Scenario::start("custom_set");
    child.expect("ready");
    child.send("USR1");
    assert_eq!(
        child.expect("cancelled"),
        "child: cancelled (signal: SIGUSR1 received)"
    );
    child.send("USR1");
    child.expect("still running after a second SIGUSR1");
    child.expect("stuck in its shutdown");
    // SIGINT is in the set: the token is cancelled, so it ends the process.
    child.send("INT");
    assert_eq!(child.exit().code(), Some(130));
}

#[test]
fn a_set_without_sigint_leaves_sigint_its_default_action() {
    use std::os::unix::process::ExitStatusExt as _;

    let mut child = Scenario::start("without_sigint");
    child.expect("ready");
    child.send("USR1");
    child.expect("stuck in its shutdown");
    child.send("INT");
    let status = child.exit();
    assert_eq!(
        status.signal(),
        Some(2),
        "killed by SIGINT itself: {status}"
    );
}

#[test]
fn with_second_signal_ignore_a_second_signal_leaves_the_process_running() {
    let mut child = Scenario::start("ignore");
    child.expect("ready");
    child.send("INT");
    assert_eq!(
        child.expect("cancelled"),
        "child: cancelled (signal: SIGINT received)"
    );
    child.send("INT");
    child.expect("still running after a second signal");
    assert_eq!(child.exit().code(), Some(0));
}
