//! On-device self-checks: each prints one line, `ok N - what` or `not ok N - what`, and the run
//! ends with `firmware: N passed, M failed` and an exit status that says the same.

use core::fmt;

use crate::println;

/// The running tally of one firmware run.
#[derive(Debug, Default)]
pub struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// No checks yet.
    pub const fn new() -> Self {
        Self {
            passed: 0,
            failed: 0,
        }
    }

    /// Records and prints one check; returns `ok` so that later steps can depend on it.
    pub fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) -> bool {
        let number = self.passed + self.failed + 1;
        if ok {
            self.passed += 1;
            println!("ok {number} - {what}");
        } else {
            self.failed += 1;
            println!("not ok {number} - {what}");
        }
        ok
    }

    /// Prints the summary line and ends the emulation, successfully only if every check passed
    /// (and there was at least one).
    pub fn finish(self) -> ! {
        println!("firmware: {} passed, {} failed", self.passed, self.failed);
        crate::exit(self.failed == 0 && self.passed > 0)
    }
}

/// `check!(checks, condition, "what {}", args)`: one self-check, printed.
#[macro_export]
macro_rules! check {
    ($checks:expr, $ok:expr, $($what:tt)+) => {
        $checks.check($ok, format_args!($($what)+))
    };
}
