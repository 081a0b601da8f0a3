//! A token tree stopped by a hardware interrupt: app → two sensor tasks → one child token per
//! sample. SysTick cancels the app from its handler; both sensors see it, stop, and their
//! callbacks run with the reason, in the handler; the main task waits on a `TaskTracker` until
//! both tasks are gone.

use core::cell::RefCell;

use cancelable::{CancelReason, CancellationToken, DropGuard, TaskTracker, TaskTrackerToken};
use cancelable_firmware::checks::Checks;
use cancelable_firmware::{check, println};
use critical_section::Mutex;
use embassy_executor::Spawner;
use embassy_time::{Duration, Instant, Timer, with_timeout};

use crate::alarm;

/// One sample: a timer wait standing in for an ADC conversion.
const SAMPLE: Duration = Duration::from_millis(10);
/// How long the sensors sample before the SysTick alarm cancels the app.
const WINDOW: Duration = Duration::from_millis(100);

const NAMES: [&str; 2] = ["a", "b"];

/// What one sensor task recorded: its `on_cancel` callback, and how the task ended.
struct Log {
    callback_runs: u32,
    callback_reason: Option<CancelReason>,
    callback_in_systick: bool,
    stop: Option<Stop>,
}

struct Stop {
    samples: u32,
    /// The reason of the sample token that was in flight when the app was cancelled.
    sample_reason: Option<CancelReason>,
    at: Instant,
    /// Sensor a: the token its drop guard cancels was still live when the task stopped.
    guard_live: bool,
}

static LOGS: [Mutex<RefCell<Log>>; 2] = [const {
    Mutex::new(RefCell::new(Log {
        callback_runs: 0,
        callback_reason: None,
        callback_in_systick: false,
        stop: None,
    }))
}; 2];

fn log<R>(sensor: usize, f: impl FnOnce(&mut Log) -> R) -> R {
    critical_section::with(|cs| f(&mut LOGS[sensor].borrow_ref_mut(cs)))
}

/// Registered by each sensor on its token: runs once, where the cancel happens.
fn on_cancel(sensor: usize, reason: &CancelReason) {
    let in_systick = alarm::in_systick();
    log(sensor, |log| {
        log.callback_runs += 1;
        log.callback_reason = Some(reason.clone());
        log.callback_in_systick = in_systick;
    });
    println!("# sensor {}: on_cancel ({reason})", NAMES[sensor]);
}

fn stopped(sensor: usize, samples: u32, sample: &CancellationToken, guard_live: bool) {
    let stop = Stop {
        samples,
        sample_reason: sample.reason(),
        at: Instant::now(),
        guard_live,
    };
    log(sensor, |log| log.stop = Some(stop));
}

/// Samples until its token is cancelled, each sample under a child token raced against the
/// timer with `run_until_cancelled`. Holds a guard that cancels `done` when the task ends.
#[embassy_executor::task]
async fn sensor_a(token: CancellationToken, done: DropGuard, _tracked: TaskTrackerToken) {
    let _callback = token.on_cancel(|reason| on_cancel(0, reason));
    let mut samples = 0;
    let sample = loop {
        let sample = token.child_token();
        if sample
            .run_until_cancelled(Timer::after(SAMPLE))
            .await
            .is_none()
        {
            break sample;
        }
        samples += 1;
    };
    stopped(0, samples, &sample, !done.token().is_cancelled());
}

/// Samples until its token is cancelled, each sample waiting for `cancelled()` under a timeout.
#[embassy_executor::task]
async fn sensor_b(token: CancellationToken, _tracked: TaskTrackerToken) {
    let _callback = token.on_cancel(|reason| on_cancel(1, reason));
    let mut samples = 0;
    let sample = loop {
        let sample = token.child_token();
        if with_timeout(SAMPLE, sample.cancelled()).await.is_ok() {
            break sample;
        }
        samples += 1;
    };
    stopped(1, samples, &sample, true);
}

/// Runs the sensors until SysTick stops them, and checks what everybody saw.
pub async fn run(spawner: Spawner, checks: &mut Checks) {
    let app = CancellationToken::new();
    // A stop button a user could press: sensor b stops on either. Nobody presses it here.
    let button = CancellationToken::new();
    let a = app.child_token();
    let b = CancellationToken::any_of([&app, &button]);
    let a_done = CancellationToken::new();
    let tracker = TaskTracker::new();
    spawner.spawn(sensor_a(a, a_done.clone().drop_guard(), tracker.token()).expect("one sensor a"));
    spawner.spawn(sensor_b(b.clone(), tracker.token()).expect("one sensor b"));
    tracker.close();

    let reason = CancelReason::timeout().with_message("sampling window of 100 ms is over");
    // The broken variant arms the alarm on a token nobody listens to: the checks must see it.
    let target = if cfg!(feature = "broken") {
        CancellationToken::new()
    } else {
        app.clone()
    };
    let at = Instant::now() + WINDOW;
    alarm::cancel_at(at, target, reason.clone());
    println!(
        "# sensors a and b sample every {} ms; SysTick cancels the app at tick {}",
        SAMPLE.as_millis(),
        at.as_ticks()
    );

    let wait = with_timeout(WINDOW * 10, tracker.wait()).await;
    check!(
        checks,
        wait.is_ok() && tracker.is_empty(),
        "TaskTracker: wait() resolved once both sensor tasks had stopped"
    );

    let fired = alarm::fired();
    check!(
        checks,
        fired.is_some_and(|f| f.performed && f.in_systick),
        "SysTick: the interrupt handler cancelled the app token (cancel_with returned true)"
    );
    if let Some(fired) = fired {
        println!(
            "# the cancel in the SysTick handler made {} heap allocations (callbacks included)",
            fired.allocations
        );
    }
    check!(
        checks,
        app.reason().as_ref() == Some(&reason),
        "the app token carries the reason \"{reason}\""
    );
    for (sensor, name) in NAMES.into_iter().enumerate() {
        log(sensor, |log| {
            check!(
                checks,
                log.callback_runs == 1
                    && log.callback_in_systick
                    && log.callback_reason.as_ref() == Some(&reason),
                "sensor {name}: on_cancel ran once, in the SysTick handler, with the app's reason"
            );
            let stop = log.stop.as_ref();
            match stop {
                Some(stop) => check!(
                    checks,
                    stop.samples > 0 && stop.sample_reason.as_ref() == Some(&reason),
                    "sensor {name}: stopped after {} samples; the sample in flight inherited the reason",
                    stop.samples
                ),
                None => check!(
                    checks,
                    false,
                    "sensor {name}: stopped (it is still sampling)"
                ),
            };
            if let (Some(stop), Some(fired)) = (stop, fired) {
                println!(
                    "# sensor {name} stopped {} ms after the interrupt",
                    (stop.at - fired.at).as_millis()
                );
            }
        });
    }
    check!(
        checks,
        b.reason().as_ref() == Some(&reason) && !button.is_cancelled(),
        "any_of: sensor b's token (app or button) took the app's reason; the button stayed live"
    );
    check!(
        checks,
        a_done
            .reason()
            .is_some_and(|r| r.kind() == cancelable::CancelKind::Manual)
            && log(0, |log| log.stop.as_ref().is_some_and(|s| s.guard_live)),
        "DropGuard: sensor a's guard cancelled its `done` token (manual) when the task ended"
    );
}
